//! WebSocket over HTTP/2 (RFC 8441 extended CONNECT) through the real binary: a
//! `tokio-tungstenite` client on an `h2` stream, bridged by the proxy to a real
//! WebSocket origin over HTTP/1.1 `Upgrade`; plain CONNECT is answered 501.

use std::time::Duration;

use test_support::{request_bytes, H2WebSocket, ProxyConfig, WebSocketEchoOrigin};

use crate::bin;

const STEP: Duration = Duration::from_secs(10);

#[test]
fn websocket_over_h2_is_bridged_to_an_http1_upgrade() {
    let origin = WebSocketEchoOrigin::start().expect("origin");
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut ws = H2WebSocket::connect(proxy.addr, "chat.test", "/chat?room=1", STEP)
        .unwrap_or_else(|e| panic!("extended CONNECT refused: {e:?}\nlog:\n{}", proxy.log()));

    ws.send_text("hello over h2").unwrap();
    assert_eq!(ws.recv().unwrap().as_deref(), Some(&b"hello over h2"[..]));
    // A message larger than the HTTP/2 windows and frames: flow control both ways.
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    ws.send_binary(big.clone()).unwrap();
    assert_eq!(ws.recv().unwrap().as_deref(), Some(&big[..]));
    for i in 0..20 {
        let text = format!("message {i}");
        ws.send_text(&text).unwrap();
        assert_eq!(ws.recv().unwrap(), Some(text.into_bytes()));
    }

    // The origin saw an HTTP/1.1 WebSocket upgrade for the same path and host, with a
    // key the proxy made up (HTTP/2 clients send none).
    let seen = origin.last_headers().expect("origin saw the upgrade");
    let header = |n: &str| seen.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(
        header("upgrade").eq_ignore_ascii_case("websocket"),
        "{seen:?}"
    );
    assert!(
        header("connection")
            .to_ascii_lowercase()
            .contains("upgrade"),
        "{seen:?}"
    );
    assert_eq!(header("sec-websocket-version"), "13");
    assert_eq!(header("sec-websocket-key").len(), 24, "{seen:?}");
    assert_eq!(header("host"), "chat.test");
    ws.close().unwrap();

    // The proxy keeps serving HTTP/2 and HTTP/1 after the tunnel.
    let mut again = H2WebSocket::connect(proxy.addr, "chat.test", "/again", STEP).unwrap();
    again.send_text("second").unwrap();
    assert_eq!(again.recv().unwrap().as_deref(), Some(&b"second"[..]));
}

#[test]
fn an_origin_that_does_not_switch_is_not_a_tunnel() {
    // An HTTP origin answering 200 to the upgrade: the client must not take it for an
    // open WebSocket.
    let origin = test_support::Origin::start(|_| test_support::Reply::ok("not a websocket"));
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let r = H2WebSocket::connect(proxy.addr, "x.test", "/ws", STEP);
    let e = r.expect_err("a 200 from the origin is no switch");
    assert_eq!(e.status, Some(502), "{e:?}\nlog:\n{}", proxy.log());
    assert!(
        proxy.log().contains("instead of 101 Switching Protocols"),
        "log:\n{}",
        proxy.log()
    );
}

#[test]
fn plain_connect_is_not_implemented() {
    let origin = test_support::Origin::start(|_| test_support::Reply::ok("origin"));
    let proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut c = proxy.client();
    c.send(&request_bytes(
        "CONNECT",
        "example.com:443",
        &[("Host", "example.com:443")],
        b"",
    ))
    .unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 501, "{r:?}");
    assert!(
        origin.last_received().is_none(),
        "CONNECT never reaches the origin"
    );
}

#[test]
fn websocket_over_h2_to_an_http2_origin_is_an_extended_connect_both_sides() {
    // The origin accepts extended CONNECT and echoes the stream's bytes (frames
    // through both tunnels are covered by the HTTP/1.1 client's test in websocket.rs).
    let origin = test_support::H2Origin::start();
    let proxy = ProxyConfig::new(origin.addr())
        .upstream("http2: true")
        .start(bin());
    let ws = H2WebSocket::connect(proxy.addr, "chat.test", "/chat", STEP).unwrap_or_else(|e| {
        panic!(
            "extended CONNECT to an HTTP/2 origin refused: {e:?}\nlog:\n{}",
            proxy.log()
        )
    });
    drop(ws);
    assert_eq!(origin.streams(), 1, "the origin did not get the stream");
}
