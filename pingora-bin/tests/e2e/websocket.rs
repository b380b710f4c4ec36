//! WebSocket upgrades: the 101 passes through and bytes then flow both ways, to HTTP/1.1
//! origins and (as an extended CONNECT) to HTTP/2 origins; a WebSocket still open when
//! the server's drain runs out gets a close frame.

use std::io::Write;
use std::time::Duration;

use test_support::{
    checksum, deterministic_bytes, request_bytes, wait_until, H2Origin, Origin, ProxyConfig,
    RawClient, Reply, Signal, DRAIN_EXIT_DEADLINE,
};

use crate::bin;

/// Sends a WebSocket upgrade request on `c`.
fn send_upgrade(c: &mut RawClient) {
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
}

#[test]
fn upgrade_is_tunnelled_both_ways() {
    let origin = Origin::start(|_| Reply::WebSocketEcho);
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    send_upgrade(&mut c);
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

    echo_then_close(&mut c, 2 * 1024 * 1024, 9);
}

/// Through an open tunnel to an echoing origin: a small frame, then `len` bytes written
/// from another thread while this one reads the echo; then closing our side ends the
/// origin's echo, which ends the tunnel.
fn echo_then_close(c: &mut RawClient, len: usize, seed: u64) {
    c.send(b"\x81\x05hello").unwrap();
    assert_eq!(c.read_exact_raw(7).unwrap(), b"\x81\x05hello");
    let payload = deterministic_bytes(len, seed);
    let expected = checksum(&payload);
    let mut w = c.writer_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&payload));
    let echoed = c.read_exact_raw(len).unwrap();
    writer
        .join()
        .expect("writer thread")
        .expect("payload written");
    assert_eq!(checksum(&echoed), expected);
    c.shutdown_write().unwrap();
    assert!(
        c.is_closed_by_peer(Duration::from_secs(3)),
        "tunnel not closed after both sides ended"
    );
}

/// A WebSocket open when the server's drain runs out (here after SIGTERM; the same
/// happens in the old instance after an upgrade) is ended with a close frame, 1001
/// "going away", after the last whole frame, not cut.
#[test]
fn a_websocket_open_at_the_end_of_the_drain_gets_a_close_frame() {
    let origin = Origin::start(|_| Reply::WebSocketEcho);
    let mut proxy = ProxyConfig::new(origin.addr())
        .set("graceful_shutdown_timeout_seconds", "1")
        .start(bin());
    let mut c = proxy.client();
    send_upgrade(&mut c);
    assert_eq!(c.read_response().unwrap().status, 101);
    c.send(b"\x81\x05hello").unwrap();
    assert_eq!(c.read_exact_raw(7).unwrap(), b"\x81\x05hello");

    proxy.process.signal(Signal::SIGTERM);
    // The tunnel is kept through the drain...
    c.send(b"\x81\x02hi").unwrap();
    assert_eq!(c.read_exact_raw(4).unwrap(), b"\x81\x02hi");
    // ...and when it runs out (1 s), the client gets a close frame: FIN + close, an
    // unmasked payload of the code 1001 and a reason.
    let head = c
        .read_exact_raw(2)
        .unwrap_or_else(|e| panic!("no close frame after the drain: {e}\nlog:\n{}", proxy.log()));
    assert_eq!(head[0], 0x88, "not a close frame: {head:?}");
    let len = usize::from(head[1]);
    assert!((2..=125).contains(&len), "payload length {len}");
    let payload = c.read_exact_raw(len).unwrap();
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1001);
    assert!(
        c.is_closed_by_peer(Duration::from_secs(3)),
        "the connection stayed open after the close frame"
    );
    let status = proxy.process.wait_exit(DRAIN_EXIT_DEADLINE);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", proxy.log());
    assert!(
        proxy
            .log()
            .contains("close frame sent to: client, upstream"),
        "{}",
        proxy.log()
    );
}

/// A WebSocket towards an HTTP/2 origin (`http2: true`): the upgrade goes upstream as
/// an extended CONNECT (RFC 8441), and the origin's 200 comes back to the HTTP/1.1
/// client as the `101` it stands for, with the `Sec-WebSocket-Accept` of its key.
#[test]
fn a_websocket_to_an_http2_origin_goes_as_an_extended_connect() {
    let origin = H2Origin::start();
    let proxy = ProxyConfig::new(origin.addr())
        .upstream("http2: true")
        .start(bin());
    let mut c = proxy.client();
    send_upgrade(&mut c);
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 101, "response: {r:?}\nlog:\n{}", proxy.log());
    assert!(r.has_token("upgrade", "websocket"), "{:?}", r.headers);
    assert!(r.has_token("connection", "upgrade"), "{:?}", r.headers);
    // RFC 6455's example key and its answer.
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    // What the origin saw (it says so in its response headers).
    assert_eq!(r.header("x-method"), Some("CONNECT"));
    assert_eq!(r.header("x-protocol"), Some("websocket"));
    assert_eq!(r.header("x-path"), Some("/ws"));

    // The origin echoes the stream: frames pass both ways through the HTTP/2 stream.
    echo_then_close(&mut c, 1024 * 1024, 5);
    // The proxy's HTTP/2 connection to the origin goes on serving plain requests.
    let mut plain = proxy.client();
    let r = plain.get("/after", true).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-method"), Some("GET"));
}

/// An HTTP/2 origin that does not accept extended CONNECT: the upgrade fails with 502
/// and a log line saying why.
#[test]
fn a_websocket_to_an_http2_origin_without_extended_connect_is_a_502() {
    let origin = H2Origin::builder().without_extended_connect().start();
    let proxy = ProxyConfig::new(origin.addr())
        .upstream("http2: true")
        .start(bin());
    let mut c = proxy.client();
    send_upgrade(&mut c);
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 502, "response: {r:?}");
    // The failure line may be written just after the answer.
    assert!(
        wait_until(Duration::from_secs(5), || proxy
            .log()
            .contains("does not accept extended CONNECT")),
        "{}",
        proxy.log()
    );
}
