//! The HTTP/2 client session and pool against real HTTP/2 servers on 127.0.0.1: the
//! `h2`-based test origin, and a hand-written frame-level server for exact GOAWAY
//! cases.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};
use pingora_core::connector::H2Pool;
use pingora_core::protocols::http::v1::client::ClientTimeouts;
use pingora_core::protocols::http::v1::BodyFraming;
use pingora_core::protocols::http::v2::client::{
    H2ClientConnection, H2ClientOptions, H2ClientStream,
};
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};
use pingora_core::protocols::Stream;
use pingora_core::{Error, ErrorKind, Side};
use test_support::{checksum, deterministic_bytes, Checksum, H2Origin, LARGE_STREAM_SEED};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);
/// Idle timeouts of pooled connections: one no test waits for, and a short one.
const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(100);
const TIMEOUTS: ClientTimeouts = ClientTimeouts {
    read: Duration::from_secs(20),
    write: Duration::from_secs(20),
};

async fn connect(addr: SocketAddr, opts: H2ClientOptions) -> H2ClientConnection {
    let tcp = TcpStream::connect(addr).await.unwrap();
    timeout(T, H2ClientConnection::handshake(Stream::Tcp(tcp), opts))
        .await
        .unwrap()
        .unwrap()
}

fn head(method: Method, path: &str, id: Option<usize>) -> RequestHeader {
    let mut req = RequestHeader::new(method, path.parse::<Uri>().unwrap());
    req.headers
        .insert("host", HeaderValue::from_static("origin.test"));
    req.headers
        .insert("connection", HeaderValue::from_static("keep-alive"));
    if let Some(id) = id {
        req.headers.insert("x-request-id", HeaderValue::from(id));
    }
    req
}

/// Polls `cond` until it holds, within `T`.
async fn eventually(mut cond: impl FnMut() -> bool) {
    timeout(T, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("condition not reached in time");
}

/// Reads a response body to its end: (length, checksum).
async fn read_all(s: &mut H2ClientStream) -> Result<(u64, u64), Error> {
    let mut sum = Checksum::new();
    while let Some(data) = s.read_body().await? {
        sum.update(&data);
    }
    Ok((sum.len(), sum.value()))
}

/// A GET without body on `conn`: the response head and body checksum.
async fn get(
    conn: &H2ClientConnection,
    path: &str,
    id: Option<usize>,
) -> Result<(ResponseHeader, u64), Error> {
    let mut s = conn.new_stream(TIMEOUTS).await?;
    s.write_request_header(&mut head(Method::GET, path, id), BodyFraming::Empty)
        .await?;
    let resp = s.read_response_header().await?;
    let (_, sum) = read_all(&mut s).await?;
    assert!(s.is_done());
    Ok((resp, sum))
}

#[tokio::test]
async fn many_concurrent_requests_share_one_connection() {
    let origin = H2Origin::start();
    let conn = connect(origin.addr(), H2ClientOptions::default()).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let conn = conn.clone();
        tasks.push(tokio::spawn(
            async move { get(&conn, "/hold", Some(i)).await },
        ));
    }
    let o = &origin;
    eventually(|| o.held() == 50).await;
    assert_eq!(conn.in_flight(), 50);
    origin.release_held();
    for t in tasks {
        let (resp, _) = timeout(T, t).await.unwrap().unwrap().unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.version, Version::HTTP_2);
        assert_eq!(resp.headers["x-authority"], "origin.test");
        assert_eq!(resp.headers["x-scheme"], "http");
    }
    assert_eq!(origin.connections(), 1);
    assert_eq!(origin.streams(), 50);
    assert_eq!(origin.peak_concurrent_streams(), 50);
    assert_eq!(conn.in_flight(), 0);
}

#[tokio::test]
async fn large_bodies_and_trailers_both_ways() {
    let origin = H2Origin::start();
    let conn = connect(
        origin.addr(),
        H2ClientOptions {
            https: true,
            ..H2ClientOptions::default()
        },
    )
    .await;
    let len = 8 << 20;
    let payload = Bytes::from(deterministic_bytes(len, 99));
    let mut s = conn.new_stream(TIMEOUTS).await.unwrap();
    let mut req = head(Method::POST, "/sink?x=1", None);
    req.headers
        .insert("transfer-encoding", HeaderValue::from_static("chunked"));
    req.headers
        .insert("te", HeaderValue::from_static("trailers"));
    timeout(T, s.write_request_header(&mut req, BodyFraming::Chunked))
        .await
        .unwrap()
        .unwrap();
    // The origin answers its head at once, then reads the whole upload.
    let resp = timeout(T, s.read_response_header()).await.unwrap().unwrap();
    assert_eq!(resp.headers["x-scheme"], "https");
    assert_eq!(resp.headers["x-path"], "/sink?x=1");
    let upload = async {
        for piece in payload.chunks(300_000) {
            s.write_body(&payload.slice_ref(piece)).await.unwrap();
        }
        let mut t = HeaderMap::new();
        t.insert("x-client-trailer", HeaderValue::from_static("yes"));
        s.finish_body(Some(&t)).await.unwrap();
        read_all(&mut s).await.unwrap()
    };
    let (n, _) = timeout(T, upload).await.unwrap();
    assert_eq!(n, 0);
    let trailers = s.take_trailers().expect("trailers");
    assert_eq!(trailers["x-client-trailer"], "yes");
    assert_eq!(trailers["x-body-checksum"], checksum(&payload).to_string());
    assert_eq!(trailers["x-body-len"], len.to_string());

    // An echo, read while it is sent, in pieces the windows hold.
    let mut s = conn.new_stream(TIMEOUTS).await.unwrap();
    let mut req = head(Method::POST, "/echo", None);
    s.write_request_header(&mut req, BodyFraming::Length(200_000))
        .await
        .unwrap();
    let small = Bytes::from(deterministic_bytes(200_000, 5));
    s.write_body(&small).await.unwrap();
    s.finish_body(None).await.unwrap();
    let resp = timeout(T, s.read_response_header()).await.unwrap().unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    let (n, sum) = timeout(T, read_all(&mut s)).await.unwrap().unwrap();
    assert_eq!((n, sum), (200_000, checksum(&small)));

    // A large response with a length: content-length is kept.
    let mut s = conn.new_stream(TIMEOUTS).await.unwrap();
    s.write_request_header(
        &mut head(Method::GET, "/bytes/5000000", None),
        BodyFraming::Empty,
    )
    .await
    .unwrap();
    let resp = timeout(T, s.read_response_header()).await.unwrap().unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    let (n, sum) = timeout(T, read_all(&mut s)).await.unwrap().unwrap();
    assert_eq!(n, 5_000_000);
    assert_eq!(
        sum,
        test_support::deterministic_checksum(5_000_000, LARGE_STREAM_SEED)
    );
}

#[tokio::test]
async fn pool_opens_another_connection_when_one_is_full() {
    let origin = H2Origin::builder().max_concurrent_streams(4).start();
    let pool = H2Pool::new(8);
    let key = 42;
    let mut streams = Vec::new();
    for i in 0..10 {
        let conn = match pool.get(key) {
            Some(c) => c,
            None => {
                let c = connect(origin.addr(), H2ClientOptions::default()).await;
                assert_eq!(c.max_streams(), 4, "SETTINGS seen at handshake");
                assert!(pool.put(key, c.clone(), LONG));
                c
            }
        };
        let mut s = conn.new_stream(TIMEOUTS).await.unwrap();
        s.write_request_header(&mut head(Method::GET, "/hold", Some(i)), BodyFraming::Empty)
            .await
            .unwrap();
        streams.push(s);
    }
    assert_eq!(pool.connections(key), 3);
    let o = &origin;
    eventually(|| o.held() == 10).await;
    assert_eq!(origin.connections(), 3);
    origin.release_held();
    for s in &mut streams {
        let resp = timeout(T, s.read_response_header()).await.unwrap().unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        timeout(T, read_all(s)).await.unwrap().unwrap();
    }
    drop(streams);
    // All connections have room again; the least busy is handed out.
    let c = pool.get(key).expect("a pooled connection");
    assert!(c.has_capacity());
    assert_eq!(pool.connections(key), 3);
}

#[tokio::test]
async fn refused_streams_are_retryable() {
    let origin = H2Origin::builder().refuse_after(2).start();
    let conn = connect(origin.addr(), H2ClientOptions::default()).await;
    get(&conn, "/a", None).await.unwrap();
    get(&conn, "/b", None).await.unwrap();
    let e = timeout(T, get(&conn, "/c", None))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::H2StreamRefused, "{e}");
    assert!(e.retry);
    assert_eq!(e.side, Side::Upstream);
    assert_eq!(origin.refused(), 1);
}

/// Sends `id` through the pool, retrying retryable failures; returns the retries.
async fn pooled_request(pool: &H2Pool, addr: SocketAddr, id: usize) -> usize {
    let mut retries = 0;
    loop {
        let conn = match pool.get(1) {
            Some(c) => c,
            None => {
                let c = connect(addr, H2ClientOptions::default()).await;
                pool.put(1, c.clone(), LONG);
                c
            }
        };
        match get(&conn, "/echo", Some(id)).await {
            Ok((resp, _)) => {
                assert_eq!(resp.headers["x-request-id"], id.to_string());
                return retries;
            }
            Err(e) if e.retry => {
                assert_eq!(e.side, Side::Upstream);
                retries += 1;
                assert!(retries < 20, "request {id} retried too often: {e}");
            }
            Err(e) => panic!("request {id} failed without a retry allowed: {e}"),
        }
    }
}

#[tokio::test]
async fn goaway_under_load_loses_and_repeats_nothing() {
    // After 7 streams each connection says GOAWAY and refuses streams still arriving.
    let origin = H2Origin::builder().goaway_after(7).refuse_after(7).start();
    let pool = Arc::new(H2Pool::new(4));
    let total = 120;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        let next = next.clone();
        let addr = origin.addr();
        workers.push(tokio::spawn(async move {
            let mut retries = 0;
            loop {
                let id = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if id >= total {
                    return retries;
                }
                retries += pooled_request(&pool, addr, id).await;
            }
        }));
    }
    let mut retries = 0;
    for w in workers {
        retries += timeout(T, w).await.unwrap().unwrap();
    }
    let mut served = origin.served_ids();
    served.sort_by_key(|s| s.parse::<usize>().unwrap());
    let want: Vec<String> = (0..total).map(|i| i.to_string()).collect();
    assert_eq!(served, want, "every request served exactly once");
    assert!(
        retries >= origin.refused(),
        "every refused stream was retried"
    );
    assert!(origin.connections() > 1, "GOAWAY forced new connections");
    println!("{} connections, {retries} retries", origin.connections());
}

#[tokio::test]
async fn handshake_with_a_server_that_is_not_http2_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
        let _ = tcp.shutdown().await;
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let e = timeout(
        T,
        H2ClientConnection::handshake(Stream::Tcp(tcp), H2ClientOptions::default()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ConnectError, "{e}");
    assert_eq!(e.side, Side::Upstream);
    assert!(!e.retry);
}

#[tokio::test]
async fn pool_drops_closed_and_idle_connections() {
    let origin = H2Origin::start();
    let pool = H2Pool::new(2);
    let c = connect(origin.addr(), H2ClientOptions::default()).await;
    assert!(pool.put(7, c.clone(), SHORT));
    assert!(pool.put(7, c.clone(), SHORT), "putting it again is a no-op");
    assert_eq!(pool.connections(7), 1);
    get(&c, "/x", None).await.unwrap();
    drop(c);
    // Idle past the timeout: dropped from the pool, and then closed.
    let p = &pool;
    eventually(|| p.get(7).is_none()).await;
    assert_eq!(pool.connections(7), 0);
    let o = &origin;
    eventually(|| o.open_connections() == 0).await;

    // A connection whose server went away is dropped too.
    let pool = H2Pool::new(2);
    let c = connect(origin.addr(), H2ClientOptions::default()).await;
    assert!(pool.put(8, c.clone(), LONG));
    drop(origin);
    let closed = c.clone();
    eventually(move || closed.is_closed()).await;
    assert!(pool.get(8).is_none());
    let e = c.new_stream(TIMEOUTS).await.unwrap_err();
    assert!(e.retry, "nothing was sent: {e}");
    assert!(!pool.put(8, c, LONG));
}

// ---- A frame-level server for exact GOAWAY cases ----

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reads one frame: (type, flags, stream id).
async fn read_frame(tcp: &mut TcpStream) -> std::io::Result<(u8, u8, u32)> {
    let mut h = [0u8; 9];
    tcp.read_exact(&mut h).await?;
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).await?;
    let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
    Ok((h[3], h[4], id))
}

#[tokio::test]
async fn goaway_tells_unprocessed_streams_from_processed_ones() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut preface = [0u8; 24];
        tcp.read_exact(&mut preface).await.unwrap();
        tcp.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
        let mut headers = Vec::new();
        while headers.len() < 3 {
            let (kind, flags, id) = read_frame(&mut tcp).await.unwrap();
            match kind {
                0x4 if flags & 1 == 0 => tcp.write_all(&frame(0x4, 1, 0, &[])).await.unwrap(),
                0x1 => headers.push(id),
                _ => {}
            }
        }
        assert_eq!(headers, [1, 3, 5]);
        // Streams up to 3 may have been processed; 5 was not. Answer 1 (":status: 200"
        // is entry 8 of the HPACK static table), then leave without answering 3.
        let mut goaway = 3u32.to_be_bytes().to_vec();
        goaway.extend_from_slice(&0u32.to_be_bytes());
        tcp.write_all(&frame(0x7, 0, 0, &goaway)).await.unwrap();
        tcp.write_all(&frame(0x1, 0x4 | 0x1, 1, &[0x88]))
            .await
            .unwrap();
        tcp.shutdown().await.unwrap();
        let mut sink = [0u8; 1024];
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    let conn = connect(addr, H2ClientOptions::default()).await;
    let mut streams = Vec::new();
    for path in ["/one", "/three", "/five"] {
        let mut s = conn.new_stream(TIMEOUTS).await.unwrap();
        s.write_request_header(&mut head(Method::GET, path, None), BodyFraming::Empty)
            .await
            .unwrap();
        streams.push(s);
    }
    let ids: Vec<_> = streams.iter().map(|s| s.stream_id().unwrap()).collect();
    assert_eq!(ids, [1, 3, 5]);
    let first = timeout(T, streams[0].read_response_header())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        timeout(T, streams[0].read_body()).await.unwrap().unwrap(),
        None
    );
    let third = timeout(T, streams[1].read_response_header())
        .await
        .unwrap()
        .unwrap_err();
    assert!(!third.retry, "stream 3 may have been processed: {third}");
    assert_eq!(third.side, Side::Upstream);
    let fifth = timeout(T, streams[2].read_response_header())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(fifth.kind, ErrorKind::H2StreamRefused, "{fifth}");
    assert!(fifth.retry);
    assert!(conn.is_closed() && conn.received_goaway());
    assert!(!conn.has_capacity());
    let e = conn.new_stream(TIMEOUTS).await.unwrap_err();
    assert!(e.retry);
    timeout(T, server).await.unwrap().unwrap();
}

#[tokio::test]
async fn request_without_host_is_refused_before_sending() {
    let origin = H2Origin::start();
    let conn = connect(origin.addr(), H2ClientOptions::default()).await;
    let mut s = conn.new_stream(TIMEOUTS).await.unwrap();
    let mut req = RequestHeader::new(Method::GET, Uri::from_static("/"));
    let e = s
        .write_request_header(&mut req, BodyFraming::Empty)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidHead);
    assert!(!e.retry);
    drop(s);
    assert_eq!(conn.in_flight(), 0);
    get(&conn, "/still-fine", None).await.unwrap();
}

#[tokio::test]
async fn keepalive_ping_notices_a_silent_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        tcp.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
        // Then never answer anything (PINGs included) until the test ends.
        let _ = done_rx.await;
    });
    let opts = H2ClientOptions {
        keepalive_ping: Some(pingora_core::protocols::http::v2::KeepalivePing {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(200),
        }),
        ..H2ClientOptions::default()
    };
    let conn = connect(addr, opts).await;
    assert!(!conn.is_closed());
    let c = conn.clone();
    eventually(move || c.is_closed()).await;
    assert!(!conn.received_goaway());
    let e = conn.new_stream(TIMEOUTS).await.unwrap_err();
    assert!(e.retry);
    let _ = done_tx.send(());
}
