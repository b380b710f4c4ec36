//! What an idle HTTP/1 keep-alive connection costs: its task's future must hold the
//! idle connection alone, not the exchange's state machine nor the session (both live
//! in a boxed future that exists while requests are served). The future was 6.6 KiB
//! (release) when 10,000 idle connections cost 13.5 KiB each, then 1.9 KiB with a boxed
//! session beside it (3.45 KiB each), now 648 bytes; see docs/reliability.md.

use pingora_core::protocols::{ClientAddr, ConnectionInfo, Stream};
use pingora_core::service::ServerApp;
use pingora_core::shutdown::ShutdownController;
use pingora_proxy::prelude::*;

struct Unused;

impl ProxyHttp for Unused {
    type Ctx = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<HttpPeer> {
        Err(Error::new(ErrorKind::NoUpstream, Side::Internal, "unused"))
    }
}

/// A client connection as the listener hands it to the app (only its size matters here:
/// nothing is served on it).
async fn accepted_connection() -> (Stream, ConnectionInfo) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    (
        Stream::Tcp(client),
        ConnectionInfo::new(ClientAddr::Tcp(addr)),
    )
}

/// Largest accepted size of a connection's future, in bytes (648 measured in a release
/// build).
const MAX_CONNECTION_FUTURE: usize = 1024;

#[tokio::test]
async fn a_connection_task_holds_no_exchange_state_while_idle() {
    let app = HttpProxy::new(Unused, ProxyOptions::default(), Default::default());
    let shutdown = ShutdownController::new();
    let (stream, conn) = accepted_connection().await;
    let connection = app.process_connection(stream, conn, shutdown.watch());
    let size = std::mem::size_of_val(&connection);
    eprintln!("a connection future: {size} bytes");
    assert!(
        size <= MAX_CONNECTION_FUTURE,
        "a connection's future is {size} bytes: something large is held inline again"
    );
}

/// Most bytes the per-client connection limit may add to a connection's future (its
/// guard and a discriminant; 32 measured).
const MAX_LIMIT_OVERHEAD: usize = 64;

#[tokio::test]
async fn the_connection_limit_adds_only_its_guard_to_a_connection_task() {
    let shutdown = ShutdownController::new();
    let plain = HttpProxy::new(Unused, ProxyOptions::default(), Default::default());
    let limited = pingora_proxy::modules::PerClientConnections::new(
        HttpProxy::new(Unused, ProxyOptions::default(), Default::default()),
        Some(10),
    );
    let (stream, conn) = accepted_connection().await;
    let plain_size =
        std::mem::size_of_val(&plain.process_connection(stream, conn, shutdown.watch()));
    let (stream, conn) = accepted_connection().await;
    let limited_size =
        std::mem::size_of_val(&limited.process_connection(stream, conn, shutdown.watch()));
    eprintln!("a connection future: {plain_size} bytes, {limited_size} with the limit");
    assert!(
        limited_size <= plain_size + MAX_LIMIT_OVERHEAD,
        "the limit makes a connection's future {limited_size} bytes from {plain_size}"
    );
}
