//! The HTTP/1 server session's waits, over real TCP on 127.0.0.1: which timeout
//! applies when (idle before the first byte, the whole head after it, the body), and
//! that the error says which one expired; and the connection between requests as an
//! [`H1IdleConnection`]: when a session becomes one, what it waits for, and that the
//! session it turns back into reads the next request as if it had never been idle.

use std::time::Duration;

use pingora_core::protocols::http::v1::server::{
    H1ServerSession, NextRequest, ServerSessionOptions,
};
use pingora_core::protocols::http::v1::H1IdleConnection;
use pingora_core::protocols::{ClientAddr, Stream};
use pingora_core::shutdown::{Phase, ShutdownController};
use pingora_core::{ErrorKind, Side};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Bound on any one step: nothing here should come near it.
const T: Duration = Duration::from_secs(10);

fn options(header_ms: u64, keepalive_ms: u64, body_ms: u64) -> ServerSessionOptions {
    ServerSessionOptions {
        header_timeout: Duration::from_millis(header_ms),
        keepalive_timeout: Duration::from_millis(keepalive_ms),
        body_timeout: Duration::from_millis(body_ms),
        ..ServerSessionOptions::default()
    }
}

/// A connected client socket and the server session on its other end.
async fn pair(opts: ServerSessionOptions) -> (TcpStream, H1ServerSession, ShutdownController) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (tcp, peer) = listener.accept().await.unwrap();
    let shutdown = ShutdownController::new();
    let session = H1ServerSession::new(
        Stream::Tcp(tcp),
        ClientAddr::Tcp(peer),
        opts,
        shutdown.watch(),
    );
    (client, session, shutdown)
}

/// Writes `bytes` one at a time, `pause` apart, until done or the server hung up.
fn drip(mut client: TcpStream, bytes: &'static [u8], pause: Duration) {
    tokio::spawn(async move {
        for b in bytes {
            if client.write_all(std::slice::from_ref(b)).await.is_err() {
                return;
            }
            tokio::time::sleep(pause).await;
        }
        // Keep the socket open until the server gives up on it.
        tokio::time::sleep(T).await;
    });
}

#[tokio::test]
async fn a_head_dripping_in_is_cut_by_the_header_timeout_and_says_so() {
    // Every byte comes well within the header timeout, the whole head does not.
    let (client, mut session, _shutdown) = pair(options(600, 60_000, 60_000)).await;
    drip(
        client,
        b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_millis(150),
    );
    let err = timeout(T, session.read_request())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (err.kind, err.side),
        (ErrorKind::ReadTimeout, Side::Downstream)
    );
    let text = err.to_string();
    assert!(
        text.contains("client_header_timeout_ms (600ms)") && text.contains("whole request head"),
        "{text}"
    );
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_cut_by_the_header_timeout() {
    let (_client, mut session, _shutdown) = pair(options(200, 60_000, 60_000)).await;
    let err = timeout(T, session.read_request())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ReadTimeout);
    let text = err.to_string();
    assert!(
        text.contains("client_header_timeout_ms (200ms)") && text.contains("no request"),
        "{text}"
    );
}

#[tokio::test]
async fn an_idle_keepalive_connection_ends_cleanly_at_the_keepalive_timeout() {
    // A header timeout far longer than the keep-alive one: the idle wait between
    // requests must use the keep-alive timeout.
    let (mut client, mut session, _shutdown) = pair(options(60_000, 200, 60_000)).await;
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let next = timeout(T, session.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Request), "{next:?}");
    session
        .respond(http::StatusCode::OK, "text/plain", "ok".into())
        .await
        .unwrap();
    let next = timeout(T, session.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Closed), "{next:?}");
}

#[tokio::test]
async fn a_stalled_body_is_cut_by_the_body_timeout_and_says_so() {
    let (mut client, mut session, _shutdown) = pair(options(60_000, 60_000, 200)).await;
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf!")
        .await
        .unwrap();
    let next = timeout(T, session.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Request), "{next:?}");
    let first = timeout(T, session.read_body()).await.unwrap().unwrap();
    assert_eq!(first.as_deref(), Some(&b"half!"[..]));
    let err = timeout(T, session.read_body()).await.unwrap().unwrap_err();
    assert_eq!(err.kind, ErrorKind::ReadTimeout);
    let text = err.to_string();
    assert!(text.contains("client_body_timeout_ms (200ms)"), "{text}");
}

#[tokio::test]
async fn the_next_request_starts_afresh() {
    // Two requests on one connection: what the first set (its response, its body
    // framing, its keep-alive) does not leak into the second.
    let (mut client, mut session, _shutdown) = pair(ServerSessionOptions::default()).await;
    client
        .write_all(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
    let next = timeout(T, session.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Request));
    assert_eq!(session.req_header().uri.path(), "/a");
    assert!(session.has_pending_body());
    assert_eq!(
        timeout(T, session.read_body())
            .await
            .unwrap()
            .unwrap()
            .as_deref(),
        Some(&b"abc"[..])
    );
    assert_eq!(
        timeout(T, session.read_body()).await.unwrap().unwrap(),
        None
    );
    session
        .respond(http::StatusCode::CREATED, "text/plain", "made".into())
        .await
        .unwrap();
    assert!(session.can_reuse());
    assert_eq!(session.body_bytes(), (3, 4));

    let next = timeout(T, session.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Request));
    assert_eq!(session.req_header().uri.path(), "/b");
    assert!(!session.has_pending_body());
    assert!(!session.response_started());
    assert_eq!(session.response_status(), None);
    assert_eq!(session.body_bytes(), (0, 0));
    assert_eq!(session.requests_served(), 2);
    assert!(session.will_keepalive());
}

/// Reads one response (head and a 2-byte body) from `client`.
async fn read_answer(client: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\nok") {
        let n = timeout(T, client.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

/// A session that read the first request of `sent` and answered it `200 ok` (the
/// client has read the answer), with the client and the shutdown controller.
async fn answered_one(
    opts: ServerSessionOptions,
    sent: &[u8],
) -> (TcpStream, H1ServerSession, ShutdownController) {
    let (mut client, mut session, shutdown) = pair(opts).await;
    client.write_all(sent).await.unwrap();
    let next = timeout(T, session.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Request), "{next:?}");
    session
        .respond(http::StatusCode::OK, "text/plain", "ok".into())
        .await
        .unwrap();
    assert!(read_answer(&mut client).await.starts_with("HTTP/1.1 200"));
    (client, session, shutdown)
}

/// A connection that carried one `GET /a` and its answer, now idle.
async fn idle_after_one_request(
    opts: ServerSessionOptions,
) -> (TcpStream, H1IdleConnection, ShutdownController) {
    let (client, session, shutdown) =
        answered_one(opts, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(session.can_idle());
    let idle = session
        .into_idle()
        .expect("a finished keep-alive exchange with nothing buffered goes idle");
    (client, idle, shutdown)
}

#[tokio::test]
async fn an_idle_connection_resumes_into_a_session_that_reads_the_next_request() {
    let opts = ServerSessionOptions::default();
    let (mut client, mut idle, shutdown) = idle_after_one_request(opts).await;

    // The next request comes while the connection is idle.
    let mut watch = shutdown.watch();
    let waiting = tokio::spawn(async move {
        let arrived = idle.wait(Duration::from_secs(60), &mut watch).await;
        (idle, arrived)
    });
    client
        .write_all(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (idle, arrived) = timeout(T, waiting).await.unwrap().unwrap();
    assert!(arrived);
    let mut session = idle.resume(opts, shutdown.watch());
    let next = timeout(T, session.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Request), "{next:?}");
    assert_eq!(session.req_header().uri.path(), "/b");
    // The count goes on: the keep-alive timeout, not the header timeout, is the next wait.
    assert_eq!(session.requests_served(), 2);
}

#[tokio::test]
async fn a_session_with_a_pipelined_request_buffered_does_not_go_idle() {
    let (_client, mut session, _shutdown) = answered_one(
        ServerSessionOptions::default(),
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    // /b is buffered: the session stays whole and reads it.
    assert!(!session.can_idle());
    let next = timeout(T, session.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Request), "{next:?}");
    assert_eq!(session.req_header().uri.path(), "/b");
}

#[tokio::test]
async fn a_session_that_will_close_does_not_go_idle() {
    let (_client, session, _shutdown) = answered_one(
        ServerSessionOptions::default(),
        b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!session.can_idle());
    assert!(session.into_idle().is_none());
}

#[tokio::test]
async fn an_idle_connection_ends_at_the_keepalive_timeout_the_client_close_and_shutdown() {
    let opts = ServerSessionOptions::default();

    // Idle past the keep-alive timeout.
    let (_client, mut idle, shutdown) = idle_after_one_request(opts).await;
    let mut watch = shutdown.watch();
    let started = std::time::Instant::now();
    let arrived = timeout(T, idle.wait(Duration::from_millis(200), &mut watch))
        .await
        .unwrap();
    assert!(!arrived);
    assert!(started.elapsed() >= Duration::from_millis(200));

    // The client closes while idle.
    let (client, mut idle, shutdown) = idle_after_one_request(opts).await;
    drop(client);
    let mut watch = shutdown.watch();
    let arrived = timeout(T, idle.wait(Duration::from_secs(60), &mut watch))
        .await
        .unwrap();
    // The end of the stream makes the socket readable: the resumed session reads the
    // close and reports it.
    assert!(arrived);
    let mut session = idle.resume(opts, shutdown.watch());
    let next = timeout(T, session.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Closed), "{next:?}");

    // The server reaches Closing while the connection is idle.
    let (_client, mut idle, shutdown) = idle_after_one_request(opts).await;
    let mut watch = shutdown.watch();
    let waiting = tokio::spawn(async move { idle.wait(Duration::from_secs(60), &mut watch).await });
    shutdown.advance(Phase::Closing);
    assert!(!timeout(T, waiting).await.unwrap().unwrap());
}
