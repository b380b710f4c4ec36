//! An HTTP/1 connection between requests as [`H1IdleConnection`], over real TCP on
//! 127.0.0.1: when a session can become one, what it waits for, and that the session
//! it turns back into reads the next request as if it had never been idle.

use std::time::Duration;

use pingora_core::protocols::http::v1::server::{
    H1ServerSession, NextRequest, ServerSessionOptions,
};
use pingora_core::protocols::http::v1::H1IdleConnection;
use pingora_core::protocols::{ClientAddr, Stream};
use pingora_core::shutdown::{Phase, ShutdownController};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Bound on any one step: nothing here should come near it.
const T: Duration = Duration::from_secs(10);

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

/// Serves the request `session` has read and returns it idle.
async fn answer_and_idle(session: H1ServerSession, client: &mut TcpStream) -> H1IdleConnection {
    let mut session = session;
    session
        .respond(http::StatusCode::OK, "text/plain", "ok".into())
        .await
        .unwrap();
    assert!(read_answer(client).await.starts_with("HTTP/1.1 200"));
    assert!(session.can_idle());
    session
        .into_idle()
        .expect("a finished keep-alive exchange with nothing buffered goes idle")
}

#[tokio::test]
async fn an_idle_connection_resumes_into_a_session_that_reads_the_next_request() {
    let opts = ServerSessionOptions::default();
    let (mut client, mut session, shutdown) = pair(opts).await;
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let next = timeout(T, session.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Request), "{next:?}");
    let mut idle = answer_and_idle(session, &mut client).await;

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
    let (mut client, mut session, _shutdown) = pair(ServerSessionOptions::default()).await;
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let next = timeout(T, session.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Request), "{next:?}");
    session
        .respond(http::StatusCode::OK, "text/plain", "ok".into())
        .await
        .unwrap();
    // /b is buffered: the session stays whole and reads it.
    assert!(!session.can_idle());
    let next = timeout(T, session.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Request), "{next:?}");
    assert_eq!(session.req_header().uri.path(), "/b");
}

#[tokio::test]
async fn a_session_that_will_close_does_not_go_idle() {
    let (mut client, mut session, _shutdown) = pair(ServerSessionOptions::default()).await;
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let next = timeout(T, session.read_request()).await.unwrap().unwrap();
    assert!(matches!(next, NextRequest::Request), "{next:?}");
    session
        .respond(http::StatusCode::OK, "text/plain", "ok".into())
        .await
        .unwrap();
    assert!(!session.can_idle());
    assert!(session.into_idle().is_none());
}

#[tokio::test]
async fn an_idle_connection_ends_at_the_keepalive_timeout_the_client_close_and_shutdown() {
    let opts = ServerSessionOptions::default();
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    // Idle past the keep-alive timeout.
    let (mut client, mut session, shutdown) = pair(opts).await;
    client.write_all(request).await.unwrap();
    timeout(T, session.read_request()).await.unwrap().unwrap();
    let mut idle = answer_and_idle(session, &mut client).await;
    let mut watch = shutdown.watch();
    let started = std::time::Instant::now();
    let arrived = timeout(T, idle.wait(Duration::from_millis(200), &mut watch))
        .await
        .unwrap();
    assert!(!arrived);
    assert!(started.elapsed() >= Duration::from_millis(200));

    // The client closes while idle.
    let (mut client, mut session, shutdown) = pair(opts).await;
    client.write_all(request).await.unwrap();
    timeout(T, session.read_request()).await.unwrap().unwrap();
    let mut idle = answer_and_idle(session, &mut client).await;
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
    let (mut client, mut session, shutdown) = pair(opts).await;
    client.write_all(request).await.unwrap();
    timeout(T, session.read_request()).await.unwrap().unwrap();
    let mut idle = answer_and_idle(session, &mut client).await;
    let mut watch = shutdown.watch();
    let waiting = tokio::spawn(async move { idle.wait(Duration::from_secs(60), &mut watch).await });
    shutdown.advance(Phase::Closing);
    assert!(!timeout(T, waiting).await.unwrap().unwrap());
}
