//! The HTTP/2 server session against the `h2` crate's client, over real TCP on
//! 127.0.0.1: streamed bodies both ways, trailers, concurrency, h2c prefix hand-over,
//! resets, flow control and draining.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use pingora_core::protocols::http::v1::server::{
    H1ServerSession, NextRequest, ServerSessionOptions,
};
use pingora_core::protocols::http::v1::BodyFraming;
use pingora_core::protocols::http::v2::server::{
    H2ServerConnection, H2ServerOptions, H2ServerStream,
};
use pingora_core::protocols::http::ResponseHeader;
use pingora_core::protocols::{ClientAddr, Stream};
use pingora_core::shutdown::{Phase, ShutdownController};
use pingora_core::{ErrorKind, Side};
use test_support::{checksum, deterministic_bytes, Checksum, LARGE_STREAM_SEED};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

/// What handlers report back to the test.
#[derive(Debug)]
enum Seen {
    Request {
        framing: BodyFraming,
        host: Option<String>,
        path: String,
        version: http::Version,
        index: u64,
    },
    BodyError {
        side: Side,
    },
    WriteError {
        kind: ErrorKind,
        side: Side,
    },
}

struct Server {
    addr: SocketAddr,
    shutdown: ShutdownController,
    seen: mpsc::UnboundedReceiver<Seen>,
    release: std::sync::Arc<Notify>,
    /// One message per connection when its accept loop ended.
    ended: mpsc::UnboundedReceiver<u64>,
}

/// How the server takes the first bytes of a connection.
#[derive(Clone, Copy)]
enum Sniff {
    /// Straight to the HTTP/2 handshake.
    None,
    /// Read by the HTTP/1 session (h2c prior knowledge on), hand the bytes over.
    Preface,
    /// Read exactly this many bytes by hand, hand them over.
    Exact(usize),
}

async fn start(opts: H2ServerOptions, sniff: Sniff) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = ShutdownController::new();
    let watch = shutdown.watch();
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let (ended_tx, ended) = mpsc::unbounded_channel();
    let release = std::sync::Arc::new(Notify::new());
    let rel = release.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = listener.accept().await.unwrap();
            let watch = watch.clone();
            let seen_tx = seen_tx.clone();
            let ended_tx = ended_tx.clone();
            let rel = rel.clone();
            tokio::spawn(async move {
                let mut stream = Stream::Tcp(tcp);
                let prefix = match sniff {
                    Sniff::None => Bytes::new(),
                    Sniff::Preface => {
                        let (tunnel, buf) = sniff_h2c(stream, peer, watch.clone()).await;
                        stream = tunnel;
                        buf
                    }
                    Sniff::Exact(n) => {
                        use tokio::io::AsyncReadExt;
                        let mut buf = vec![0; n];
                        stream.read_exact(&mut buf).await.unwrap();
                        Bytes::from(buf)
                    }
                };
                let mut conn = H2ServerConnection::handshake(
                    stream,
                    prefix,
                    ClientAddr::Tcp(peer),
                    opts,
                    watch,
                )
                .await
                .unwrap();
                while let Some(next) = conn.accept().await {
                    let Ok(s) = next else { break };
                    tokio::spawn(handle(s, seen_tx.clone(), rel.clone()));
                }
                let _ = ended_tx.send(conn.requests_served());
            });
        }
    });
    Server {
        addr,
        shutdown,
        seen,
        release,
        ended,
    }
}

/// The test handler: `/bytes/<n>` sends deterministic bytes, `/hold` waits for a
/// release, `/no-read` answers without reading and never ends, anything else echoes
/// the body with trailers (request trailers plus the body checksum).
async fn handle(
    mut s: H2ServerStream,
    seen: mpsc::UnboundedSender<Seen>,
    release: std::sync::Arc<Notify>,
) {
    let req = s.req_header().clone();
    let path = req.uri.path().to_string();
    let _ = seen.send(Seen::Request {
        framing: s.req_body_framing(),
        host: req.host().map(str::to_string),
        path: req.uri.to_string(),
        version: req.version,
        index: s.requests_served(),
    });
    if path == "/hold" {
        release.notified().await;
    }
    let mut resp = ResponseHeader::new(StatusCode::OK);
    for (name, value) in [
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("x-kept", "yes"),
    ] {
        resp.headers.insert(name, HeaderValue::from_static(value));
    }
    if path == "/early-hints" {
        let mut hint = ResponseHeader::new(StatusCode::EARLY_HINTS);
        hint.headers
            .insert("link", HeaderValue::from_static("</a.css>; rel=preload"));
        s.write_response_header(&mut hint).await.unwrap();
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let n: usize = n.parse().unwrap();
        resp.headers.insert("content-length", HeaderValue::from(n));
        s.write_response_header(&mut resp).await.unwrap();
        let data = Bytes::from(deterministic_bytes(n, LARGE_STREAM_SEED));
        let mut off = 0;
        while off < n {
            let end = (off + 100_000).min(n);
            match s.write_body(&data.slice(off..end)).await {
                Ok(()) => {}
                Err(e) => {
                    let _ = seen.send(Seen::WriteError {
                        kind: e.kind,
                        side: e.side,
                    });
                    return;
                }
            }
            off = end;
        }
        s.finish_response(None).await.unwrap();
        return;
    }
    s.write_response_header(&mut resp).await.unwrap();
    let mut sum = Checksum::new();
    loop {
        match s.read_body().await {
            Ok(Some(data)) => {
                sum.update(&data);
                if s.write_body(&data).await.is_err() {
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = seen.send(Seen::BodyError { side: e.side });
                return;
            }
        }
    }
    let mut trailers = s.req_trailers().cloned().unwrap_or_default();
    trailers.insert("x-body-checksum", HeaderValue::from(sum.value()));
    trailers.insert("connection", HeaderValue::from_static("close"));
    s.finish_response(Some(&trailers)).await.unwrap();
    assert_eq!(s.body_bytes().0, sum.len());
}

async fn client(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

fn request(method: Method, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("http://example.test:8080{path}"))
        .body(())
        .unwrap()
}

/// Sends `data` in pieces within the granted window, then ends with `trailers`.
async fn send_body(send: &mut SendStream<Bytes>, data: Bytes, trailers: Option<HeaderMap>) {
    let mut rest = data;
    while !rest.is_empty() {
        send.reserve_capacity(rest.len().min(256 * 1024));
        let cap = std::future::poll_fn(|cx| loop {
            if send.capacity() > 0 {
                return std::task::Poll::Ready(send.capacity());
            }
            match send.poll_capacity(cx) {
                std::task::Poll::Ready(Some(Ok(_))) => continue,
                std::task::Poll::Ready(other) => panic!("no capacity: {other:?}"),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
        })
        .await;
        send.send_data(rest.split_to(cap.min(rest.len())), false)
            .unwrap();
    }
    match trailers {
        Some(t) => send.send_trailers(t).unwrap(),
        None => send.send_data(Bytes::new(), true).unwrap(),
    }
}

/// Reads a body to its end: (length, checksum, trailers).
async fn recv_body(body: &mut RecvStream) -> (u64, u64, Option<HeaderMap>) {
    let mut sum = Checksum::new();
    while let Some(data) = body.data().await {
        let data = data.unwrap();
        body.flow_control().release_capacity(data.len()).unwrap();
        sum.update(&data);
    }
    let trailers = body.trailers().await.unwrap();
    (sum.len(), sum.value(), trailers)
}

async fn next_request(
    server: &mut Server,
) -> (BodyFraming, Option<String>, String, http::Version, u64) {
    match timeout(T, server.seen.recv()).await.unwrap().unwrap() {
        Seen::Request {
            framing,
            host,
            path,
            version,
            index,
        } => (framing, host, path, version, index),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn large_bodies_stream_both_ways_with_checksums_and_trailers() {
    let mut server = start(H2ServerOptions::default(), Sniff::None).await;
    let mut h2 = client(server.addr).await.ready().await.unwrap();
    let len = 8 << 20;
    let payload = Bytes::from(deterministic_bytes(len, 7));
    let (resp, mut send) = h2
        .send_request(request(Method::POST, "/echo"), false)
        .unwrap();
    let mut client_trailers = HeaderMap::new();
    client_trailers.insert("x-client-trailer", HeaderValue::from_static("sent"));
    let sender = send_body(&mut send, payload.clone(), Some(client_trailers));
    let receiver = async {
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        for gone in ["connection", "keep-alive", "transfer-encoding"] {
            assert!(!resp.headers().contains_key(gone), "{gone} was forwarded");
        }
        assert_eq!(resp.headers()["x-kept"], "yes");
        let mut body = resp.into_body();
        recv_body(&mut body).await
    };
    let (_, (got_len, got_sum, trailers)) =
        timeout(T, futures_join(sender, receiver)).await.unwrap();
    assert_eq!(got_len, len as u64);
    assert_eq!(got_sum, checksum(&payload));
    let trailers = trailers.expect("response trailers");
    assert_eq!(trailers["x-client-trailer"], "sent");
    assert_eq!(trailers["x-body-checksum"], checksum(&payload).to_string());
    assert!(!trailers.contains_key("connection"));
    let (framing, host, path, version, _) = next_request(&mut server).await;
    assert_eq!(framing, BodyFraming::Chunked);
    assert_eq!(host.as_deref(), Some("example.test:8080"));
    assert_eq!(path, "/echo");
    assert_eq!(version, http::Version::HTTP_2);

    // And a large response on its own, with a length.
    let (resp, _) = h2
        .send_request(request(Method::GET, "/bytes/6000000"), true)
        .unwrap();
    let resp = timeout(T, resp).await.unwrap().unwrap();
    assert_eq!(resp.headers()["content-length"], "6000000");
    let mut body = resp.into_body();
    let (n, sum, _) = timeout(T, recv_body(&mut body)).await.unwrap();
    assert_eq!(n, 6_000_000);
    assert_eq!(
        sum,
        test_support::deterministic_checksum(6_000_000, LARGE_STREAM_SEED)
    );
    let (framing, ..) = next_request(&mut server).await;
    assert_eq!(framing, BodyFraming::Empty);
}

/// Runs two futures to completion concurrently.
async fn futures_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    tokio::join!(a, b)
}

#[tokio::test]
async fn content_length_gives_length_framing_and_head_conversion() {
    let mut server = start(H2ServerOptions::default(), Sniff::None).await;
    let mut h2 = client(server.addr).await.ready().await.unwrap();
    let mut req = request(Method::PUT, "/p/q?x=1&y=2");
    req.headers_mut()
        .insert("content-length", HeaderValue::from_static("5"));
    let (resp, mut send) = h2.send_request(req, false).unwrap();
    send_body(&mut send, Bytes::from_static(b"hello"), None).await;
    let resp = timeout(T, resp).await.unwrap().unwrap();
    let mut body = resp.into_body();
    let (n, sum, _) = timeout(T, recv_body(&mut body)).await.unwrap();
    assert_eq!((n, sum), (5, checksum(b"hello")));
    let (framing, host, path, ..) = next_request(&mut server).await;
    assert_eq!(framing, BodyFraming::Length(5));
    assert_eq!(host.as_deref(), Some("example.test:8080"));
    assert_eq!(path, "/p/q?x=1&y=2");

    // HEAD: the head arrives with END_STREAM and no body, content-length kept.
    let (resp, _) = h2
        .send_request(request(Method::HEAD, "/bytes/1234"), true)
        .unwrap();
    let resp = timeout(T, resp).await.unwrap().unwrap();
    assert_eq!(resp.headers()["content-length"], "1234");
    assert!(resp.body().is_end_stream());

    // An interim 103 reaches the client before the final head.
    let (mut resp, _) = h2
        .send_request(request(Method::GET, "/early-hints"), true)
        .unwrap();
    let hint = timeout(T, std::future::poll_fn(|cx| resp.poll_informational(cx)))
        .await
        .unwrap()
        .expect("an informational response")
        .unwrap();
    assert_eq!(hint.status(), StatusCode::EARLY_HINTS);
    assert_eq!(hint.headers()["link"], "</a.css>; rel=preload");
    let resp = timeout(T, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn many_concurrent_streams_on_one_connection() {
    let mut server = start(H2ServerOptions::default(), Sniff::None).await;
    let h2 = client(server.addr).await;
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let h2 = h2.clone();
        tasks.push(tokio::spawn(async move {
            let mut h2 = h2.ready().await.unwrap();
            let payload = Bytes::from(deterministic_bytes(10_000 + i as usize * 997, i));
            let (resp, mut send) = h2
                .send_request(request(Method::POST, "/echo"), false)
                .unwrap();
            send_body(&mut send, payload.clone(), None).await;
            let mut body = resp.await.unwrap().into_body();
            let (n, sum, _) = recv_body(&mut body).await;
            assert_eq!(
                (n, sum),
                (payload.len() as u64, checksum(&payload)),
                "stream {i}"
            );
        }));
    }
    for t in tasks {
        timeout(T, t).await.unwrap().unwrap();
    }
    let mut indexes = Vec::new();
    for _ in 0..40 {
        indexes.push(next_request(&mut server).await.4);
    }
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        (1..=40).collect::<Vec<_>>(),
        "all on one connection"
    );
}

async fn echo_once(addr: SocketAddr) {
    let mut h2 = client(addr).await.ready().await.unwrap();
    let (resp, mut send) = h2
        .send_request(request(Method::POST, "/echo"), false)
        .unwrap();
    send_body(&mut send, Bytes::from_static(b"after the preface"), None).await;
    let mut body = timeout(T, resp).await.unwrap().unwrap().into_body();
    let (n, sum, _) = timeout(T, recv_body(&mut body)).await.unwrap();
    assert_eq!((n, sum), (17, checksum(b"after the preface")));
}

#[tokio::test]
async fn h2c_preface_read_by_the_sniffer_is_handed_over() {
    let server = start(H2ServerOptions::default(), Sniff::Preface).await;
    echo_once(server.addr).await;
}

#[tokio::test]
async fn part_of_the_preface_handed_over_as_prefix() {
    for n in [1, 10, 23, 24, 30] {
        let server = start(H2ServerOptions::default(), Sniff::Exact(n)).await;
        echo_once(server.addr).await;
    }
}

/// Reads the start of `stream` with an HTTP/1 session that knows h2c: it must report
/// HTTP/2 and hand back the stream and the bytes it read.
async fn sniff_h2c(
    stream: Stream,
    peer: SocketAddr,
    watch: pingora_core::shutdown::ShutdownWatch,
) -> (Stream, Bytes) {
    let mut h1 = H1ServerSession::new(stream, ClientAddr::Tcp(peer), h2c_on(), watch);
    let next = timeout(T, h1.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Http2), "{next:?}");
    let (stream, buf) = h1.into_tunnel();
    (stream, buf.freeze())
}

fn h2c_on() -> ServerSessionOptions {
    ServerSessionOptions {
        h2c_prior_knowledge: true,
        ..ServerSessionOptions::default()
    }
}

#[tokio::test]
async fn sniffer_tells_http1_apart_after_few_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = ShutdownController::new();
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (tcp, peer) = listener.accept().await.unwrap();
    let mut h1 = H1ServerSession::new(
        Stream::Tcp(tcp),
        ClientAddr::Tcp(peer),
        h2c_on(),
        shutdown.watch(),
    );
    let next = timeout(T, h1.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Request), "{next:?}");
    assert_eq!(h1.req_header().method, Method::POST);
    // A client that closes before the preface is decided sent half a head.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"PRI * HT").await.unwrap();
    drop(c);
    let (tcp, peer) = listener.accept().await.unwrap();
    let mut h1 = H1ServerSession::new(
        Stream::Tcp(tcp),
        ClientAddr::Tcp(peer),
        h2c_on(),
        shutdown.watch(),
    );
    let err = timeout(T, h1.read_request()).await.unwrap().unwrap_err();
    assert_eq!(err.kind, ErrorKind::ConnectionClosed, "{err}");
}

#[tokio::test]
async fn client_reset_is_a_downstream_error_and_the_connection_goes_on() {
    let mut server = start(H2ServerOptions::default(), Sniff::None).await;
    let mut h2 = client(server.addr).await.ready().await.unwrap();
    let (resp, mut send) = h2
        .send_request(request(Method::POST, "/echo"), false)
        .unwrap();
    send.send_data(Bytes::from_static(b"part"), false).unwrap();
    let resp = timeout(T, resp).await.unwrap().unwrap();
    send.send_reset(Reason::CANCEL);
    drop(resp);
    next_request(&mut server).await;
    match timeout(T, server.seen.recv()).await.unwrap().unwrap() {
        Seen::BodyError { side } => assert_eq!(side, Side::Downstream),
        other => panic!("unexpected {other:?}"),
    }
    let mut h2 = h2.ready().await.unwrap();
    let (resp, _) = h2
        .send_request(request(Method::GET, "/bytes/10"), true)
        .unwrap();
    let resp = timeout(T, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn response_waits_for_window_and_times_out_without_it() {
    let opts = H2ServerOptions {
        write_timeout: Duration::from_millis(300),
        ..H2ServerOptions::default()
    };
    let mut server = start(opts, Sniff::None).await;
    // The client never reads: only its initial 64 KiB window is ever granted.
    let mut h2 = client(server.addr).await.ready().await.unwrap();
    let (resp, _) = h2
        .send_request(request(Method::GET, "/bytes/4000000"), true)
        .unwrap();
    let _resp = timeout(T, resp).await.unwrap().unwrap();
    next_request(&mut server).await;
    match timeout(T, server.seen.recv()).await.unwrap().unwrap() {
        Seen::WriteError { kind, side } => {
            assert_eq!(kind, ErrorKind::WriteTimeout);
            assert_eq!(side, Side::Downstream);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn draining_sends_goaway_and_lets_open_streams_finish() {
    let mut server = start(H2ServerOptions::default(), Sniff::None).await;
    let mut h2 = client(server.addr).await.ready().await.unwrap();
    let (resp, _) = h2
        .send_request(request(Method::GET, "/hold"), true)
        .unwrap();
    next_request(&mut server).await;
    server.shutdown.advance(Phase::Draining);
    // New streams are refused once the GOAWAY arrived; poll until it did.
    let refused = timeout(T, async {
        loop {
            let mut ready = match h2.clone().ready().await {
                Ok(r) => r,
                Err(_) => return,
            };
            match ready.send_request(request(Method::GET, "/bytes/1"), true) {
                Err(_) => return,
                Ok((r, _)) => {
                    if r.await.is_err() {
                        return;
                    }
                }
            }
            tokio::task::yield_now().await;
        }
    });
    refused.await.expect("GOAWAY seen by the client");
    server.release.notify_one();
    let resp = timeout(T, resp).await.unwrap().unwrap();
    let mut body = resp.into_body();
    timeout(T, recv_body(&mut body)).await.unwrap();
    let served = timeout(T, server.ended.recv()).await.unwrap().unwrap();
    assert!(served >= 1);
}

#[tokio::test]
async fn idle_connection_is_closed_after_the_idle_timeout() {
    let opts = H2ServerOptions {
        idle_timeout: Duration::from_millis(200),
        ..H2ServerOptions::default()
    };
    let mut server = start(opts, Sniff::None).await;
    let _h2 = client(server.addr).await;
    let served = timeout(T, server.ended.recv()).await.unwrap().unwrap();
    assert_eq!(served, 0);
}

#[tokio::test]
async fn keepalive_ping_ends_a_connection_whose_client_went_silent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A client that sends its preface and SETTINGS, then nothing (no PING answers).
    let mut silent = TcpStream::connect(addr).await.unwrap();
    silent
        .write_all(pingora_core::protocols::http::v2::H2C_PREFACE)
        .await
        .unwrap();
    silent
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let (tcp, peer) = listener.accept().await.unwrap();
    let opts = H2ServerOptions {
        keepalive_ping: Some(pingora_core::protocols::http::v2::KeepalivePing {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(200),
        }),
        ..H2ServerOptions::default()
    };
    let shutdown = ShutdownController::new();
    let mut conn = H2ServerConnection::handshake(
        Stream::Tcp(tcp),
        Bytes::new(),
        ClientAddr::Tcp(peer),
        opts,
        shutdown.watch(),
    )
    .await
    .unwrap();
    let e = timeout(T, conn.accept())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ReadTimeout);
    assert_eq!(e.side, Side::Downstream);
    assert!(timeout(T, conn.accept()).await.unwrap().is_none());
    drop(silent);
}
