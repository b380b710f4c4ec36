//! Idle pooled upstream connections are closed on time, without a next request: when
//! their idle timeout passes, and as soon as the origin closes them. Real origins on
//! 127.0.0.1 (HTTP/1.1 and h2c), the real `HttpConnector`.

use std::future::Future;
use std::time::Duration;

use http::{Method, Uri};
use pingora_core::connector::{
    Connector, H2Pool, HttpConnector, HttpPeer, PeerAddress, PeerOptions,
};
use pingora_core::protocols::http::v1::BodyFraming;
use pingora_core::protocols::http::v2::{H2ClientConnection, H2ClientOptions};
use pingora_core::protocols::http::{ClientSession, RequestHeader};
use pingora_core::protocols::Stream;
use test_support::{H2Origin, Origin, Reply};
use tokio::time::timeout;

/// Most time any single step may take before the test counts as hung.
const T: Duration = Duration::from_secs(10);

fn peer(origin: std::net::SocketAddr, idle_timeout: Duration, http2: bool) -> HttpPeer {
    let options = PeerOptions {
        idle_timeout,
        http2,
        ..PeerOptions::default()
    };
    HttpPeer::new(PeerAddress::Inet(origin), options)
}

/// Sends `GET /` on `session` and reads the whole response.
async fn exchange(session: &mut ClientSession) {
    let mut req = RequestHeader::new(Method::GET, Uri::from_static("/"));
    req.headers.insert("host", "test".parse().unwrap());
    timeout(T, async {
        session
            .write_request_header(&mut req, BodyFraming::Empty)
            .await
            .unwrap();
        let resp = session.read_response_header().await.unwrap();
        assert_eq!(resp.status, 200);
        while session.read_body().await.unwrap().is_some() {}
    })
    .await
    .expect("the exchange finished in time");
}

/// Polls `cond` every 10 ms until it holds; false when `limit` passes first.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Runs `fut` on a fresh multi-threaded runtime (the pool's reaper runs beside it).
fn run<F: Future<Output = ()>>(fut: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut);
}

#[test]
fn idle_http1_connections_close_when_their_idle_timeout_passes() {
    // The origin itself would keep an idle connection open for 30 s.
    let origin = Origin::start(|_| Reply::ok("hi"));
    let peer = peer(origin.addr(), Duration::from_millis(300), false);
    let upstream = HttpConnector::new(Connector::default(), 16);
    run(async {
        // Two exchanges at once: two connections, both pooled afterwards.
        let (mut a, reused_a) = upstream.session(&peer, true).await.unwrap();
        let (mut b, reused_b) = upstream.session(&peer, true).await.unwrap();
        assert!(!reused_a && !reused_b);
        exchange(&mut a).await;
        exchange(&mut b).await;
        upstream.release(&peer, a);
        upstream.release(&peer, b);
        assert_eq!(upstream.idle_count(), 2);
        assert_eq!(origin.open_connections(), 2);

        // No further request: the timeout alone closes them.
        let closed = eventually(T, || origin.open_connections() == 0).await;
        assert!(
            closed,
            "{} idle upstream connections still open at the origin, idle timeout 300 ms",
            origin.open_connections()
        );
        assert_eq!(upstream.idle_count(), 0);

        // The pool still works afterwards.
        let (mut c, reused) = upstream.session(&peer, true).await.unwrap();
        assert!(!reused, "an expired connection was handed out");
        exchange(&mut c).await;
        upstream.release(&peer, c);
        assert_eq!(upstream.idle_count(), 1);
    });
    assert_eq!(origin.connections(), 3);
}

#[test]
fn a_pooled_http1_connection_the_origin_closes_leaves_the_pool_at_once() {
    // The origin closes a keep-alive connection after 200 ms without a request; the
    // proxy side would keep it for a minute.
    let origin = Origin::builder()
        .idle_timeout(Duration::from_millis(200))
        .start(|_| Reply::ok("hi"));
    let peer = peer(origin.addr(), Duration::from_secs(60), false);
    let upstream = HttpConnector::new(Connector::default(), 16);
    run(async {
        let (mut s, _) = upstream.session(&peer, true).await.unwrap();
        exchange(&mut s).await;
        upstream.release(&peer, s);
        assert_eq!(upstream.idle_count(), 1);
        let dropped = eventually(T, || upstream.idle_count() == 0).await;
        assert!(
            dropped,
            "the pool still counts a connection the origin closed"
        );
        assert_eq!(origin.open_connections(), 0);
    });
}

#[test]
fn idle_http2_connections_close_when_their_idle_timeout_passes() {
    let origin = H2Origin::start();
    let peer = peer(origin.addr(), Duration::from_millis(300), true);
    let upstream = HttpConnector::new(Connector::default(), 16);
    run(async {
        let (mut s, reused) = upstream.session(&peer, true).await.unwrap();
        assert!(!reused);
        assert!(matches!(s, ClientSession::H2(_)));
        exchange(&mut s).await;
        upstream.release(&peer, s);
        // The connection stays pooled, with no stream: idle.
        assert_eq!(upstream.idle_count(), 1);
        assert_eq!(origin.open_connections(), 1);

        let closed = eventually(T, || origin.open_connections() == 0).await;
        assert!(
            closed,
            "an idle HTTP/2 upstream connection is still open, idle timeout 300 ms"
        );
        assert_eq!(upstream.idle_count(), 0);
    });
    assert_eq!(origin.connections(), 1);
}

#[test]
fn an_http2_connection_the_origin_closes_leaves_the_pool_at_once() {
    let origin = H2Origin::start();
    let pool = H2Pool::new(2);
    run(async {
        let tcp = tokio::net::TcpStream::connect(origin.addr()).await.unwrap();
        let conn = timeout(
            T,
            H2ClientConnection::handshake(Stream::Tcp(tcp), H2ClientOptions::default()),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(pool.put(1, conn, Duration::from_secs(60)));
        assert_eq!((pool.connections(1), pool.idle_len()), (1, 1));
        drop(origin); // closes every connection it has
        let dropped = eventually(T, || pool.connections(1) == 0).await;
        assert!(
            dropped,
            "the pool still holds a connection the origin closed"
        );
        assert_eq!(pool.idle_len(), 0);
    });
}

/// TLS: an idle pooled connection is still handed out after the reaper looked at it
/// (the bytes of the last response do not count as "the origin sent something"), and
/// it is closed when its idle timeout passes.
#[cfg(feature = "tls")]
#[test]
fn idle_tls_connections_stay_reusable_then_close_on_time() {
    use pingora_core::protocols::tls::{TrustRoots, UpstreamTls, UpstreamTlsOptions};
    use std::sync::Arc;
    use test_support::{TestCa, TlsFront};

    let origin = Origin::start(|_| Reply::ok("hi"));
    let ca = TestCa::new("Idle CA");
    let front = TlsFront::start(origin.addr(), &ca.issue(&["idle.test"]));
    let tls = UpstreamTls::new(UpstreamTlsOptions {
        sni: Some("idle.test".to_string()),
        verify: true,
        roots: TrustRoots::Pem(ca.cert_pem().as_bytes().to_vec()),
        ..UpstreamTlsOptions::default()
    })
    .unwrap();
    let options = PeerOptions {
        idle_timeout: Duration::from_millis(400),
        tls: Some(Arc::new(tls)),
        ..PeerOptions::default()
    };
    let peer = HttpPeer::new(PeerAddress::Inet(front.addr()), options);
    let upstream = HttpConnector::new(Connector::default(), 16);
    run(async {
        for round in 0..3 {
            let (mut s, reused) = upstream.session(&peer, true).await.unwrap();
            assert_eq!(reused, round > 0, "round {round}");
            exchange(&mut s).await;
            upstream.release(&peer, s);
            assert_eq!(upstream.idle_count(), 1, "round {round}");
            // Let the reaper scan the pool with the connection in it.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let closed = eventually(T, || origin.open_connections() == 0).await;
        assert!(closed, "the idle TLS connection was not closed");
        assert_eq!(upstream.idle_count(), 0);
    });
    assert_eq!(origin.connections(), 1);
}
