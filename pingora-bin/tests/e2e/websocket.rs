//! WebSocket upgrades: the 101 passes through and bytes then flow both ways.

use std::io::Write;
use std::time::Duration;

use test_support::{checksum, deterministic_bytes, request_bytes, Origin, ProxyConfig, Reply};

use crate::bin;

#[test]
fn upgrade_is_tunnelled_both_ways() {
    let origin = Origin::start(|_| Reply::WebSocketEcho);
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes(
        "GET",
        "/ws",
        &[
            ("Host", "test"),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
        b"",
    ))
    .unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 101, "response: {r:?}");
    assert!(
        r.has_token("upgrade", "websocket"),
        "headers: {:?}",
        r.headers
    );
    assert!(
        r.has_token("connection", "upgrade"),
        "headers: {:?}",
        r.headers
    );

    let got = origin.last_received().unwrap();
    assert!(got
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket")));
    assert_eq!(
        got.header("sec-websocket-key"),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );

    c.send(b"\x81\x05hello").unwrap();
    assert_eq!(c.read_exact_raw(7).unwrap(), b"\x81\x05hello");

    // A bigger payload written from another thread while this one reads the echo.
    let payload = deterministic_bytes(2 * 1024 * 1024, 9);
    let expected = checksum(&payload);
    let mut w = c.writer_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&payload));
    let echoed = c.read_exact_raw(2 * 1024 * 1024).unwrap();
    writer
        .join()
        .expect("writer thread")
        .expect("payload written");
    assert_eq!(checksum(&echoed), expected);

    // Closing our side ends the origin's echo, which ends the tunnel.
    c.shutdown_write().unwrap();
    assert!(
        c.is_closed_by_peer(Duration::from_secs(3)),
        "tunnel not closed after both sides ended"
    );
}
