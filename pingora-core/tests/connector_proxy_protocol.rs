//! Upstream connections that start with a PROXY header (`PeerOptions::proxy_protocol`):
//! the header names the client set on the peer, and such a connection is never taken
//! from the pool nor put back, while the same peer without the option reuses as usual.
//! A real HTTP/1.1 origin on 127.0.0.1 that reads the header with the harness's own
//! parser, the real `HttpConnector`.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, Uri};
use pingora_core::connector::{Connector, HttpConnector, HttpPeer, PeerAddress, PeerOptions};
use pingora_core::protocols::http::v1::BodyFraming;
use pingora_core::protocols::http::{ClientSession, RequestHeader};
use pingora_core::protocols::proxy_protocol::{encode, parse, Parsed, ProxyVersion};
use pingora_core::protocols::{ClientAddr, ConnectionInfo};
use test_support::{Origin, Reply};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(10);

async fn exchange(session: &mut ClientSession) {
    let mut req = RequestHeader::new(Method::GET, Uri::from_static("/"));
    req.headers.insert("host", "test".parse().unwrap());
    timeout(T, async {
        session
            .write_request_header(&mut req, BodyFraming::Empty)
            .await
            .unwrap();
        assert_eq!(session.read_response_header().await.unwrap().status, 200);
        while session.read_body().await.unwrap().is_some() {}
    })
    .await
    .expect("the exchange finished in time");
}

#[tokio::test]
async fn a_peer_sending_proxy_headers_never_reuses_a_connection() {
    let origin = Origin::builder()
        .expect_proxy_header()
        .start(|_| Reply::ok("ok"));
    let connector = HttpConnector::new(Connector::default(), 16);
    let options = PeerOptions {
        proxy_protocol: Some(ProxyVersion::V2),
        ..PeerOptions::default()
    };
    let mut peer = HttpPeer::new(PeerAddress::Inet(origin.addr()), options);
    assert!(peer.sends_proxy_header());
    let client: SocketAddr = "203.0.113.5:6000".parse().unwrap();
    peer.set_proxy_client(&ConnectionInfo::new(ClientAddr::Tcp(client)));
    // No local address known: the header names nobody (LOCAL).
    assert_eq!(peer.proxy_client(), None);
    for _ in 0..3 {
        let (mut session, reused) = connector.session(&peer, true).await.unwrap();
        assert!(!reused);
        exchange(&mut session).await;
        connector.release(&peer, session);
        assert_eq!(connector.idle_count(), 0, "not pooled");
    }
    assert_eq!(origin.connections(), 3);
    assert!(origin
        .received()
        .iter()
        .all(|r| r.proxy.as_ref().is_some_and(|h| h.local)));
    assert!(origin.errors().is_empty(), "{:?}", origin.errors());
}

#[tokio::test]
async fn the_header_names_the_client_and_where_it_connected() {
    let origin = Origin::builder()
        .expect_proxy_header()
        .start(|_| Reply::ok("ok"));
    let connector = HttpConnector::new(Connector::default(), 16);
    let options = PeerOptions {
        proxy_protocol: Some(ProxyVersion::V1),
        ..PeerOptions::default()
    };
    // A client connection that itself came with a header: its client and destination
    // are passed on.
    let incoming = encode(
        ProxyVersion::V2,
        Some(pingora_core::protocols::proxy_protocol::ProxyAddresses {
            source: "198.51.100.7:1234".parse().unwrap(),
            destination: "192.0.2.1:443".parse().unwrap(),
        }),
    );
    let Ok(Parsed::Header { header, .. }) = parse(&incoming) else {
        panic!("a header")
    };
    let conn = ConnectionInfo::new(ClientAddr::Tcp("127.0.0.9:1".parse().unwrap()))
        .with_proxy_header(header);
    let mut peer = HttpPeer::new(PeerAddress::Inet(origin.addr()), options);
    peer.set_proxy_client(&conn);
    let (mut session, _) = connector.session(&peer, true).await.unwrap();
    exchange(&mut session).await;
    let seen = origin.last_received().unwrap().proxy.unwrap();
    assert_eq!(seen.version, 1);
    assert_eq!(seen.source, Some("198.51.100.7:1234".parse().unwrap()));
    assert_eq!(seen.destination, Some("192.0.2.1:443".parse().unwrap()));
}

#[tokio::test]
async fn without_the_option_connections_are_reused() {
    let origin = Origin::start(|_| Reply::ok("ok"));
    let connector = HttpConnector::new(Connector::default(), 16);
    let peer = HttpPeer::new(PeerAddress::Inet(origin.addr()), PeerOptions::default());
    for i in 0..3 {
        let (mut session, reused) = connector.session(&peer, true).await.unwrap();
        assert_eq!(reused, i > 0);
        exchange(&mut session).await;
        connector.release(&peer, session);
    }
    assert_eq!(origin.connections(), 1);
}
