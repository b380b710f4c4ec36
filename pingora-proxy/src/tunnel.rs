//! Passing bytes both ways after a `101 Switching Protocols` (WebSocket and friends):
//! between an HTTP/1.1 client connection, or the stream of an HTTP/2 extended CONNECT
//! (RFC 8441), and the upstream's HTTP/1.1 connection.

use pingora_core::protocols::http::v1::client::H1ClientSession;
use pingora_core::protocols::http::v1::server::H1ServerSession;
use pingora_core::protocols::http::v2::server::H2ServerStream;
use pingora_core::protocols::ClientAddr;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Relays bytes between an HTTP/1.1 client and the upstream until both sides are done.
pub(crate) async fn run(downstream: H1ServerSession, upstream: H1ClientSession) {
    let client = downstream.peer().clone();
    let (down, early_from_client) = downstream.into_tunnel();
    relay(down, &early_from_client, upstream, &client).await;
}

/// Relays bytes between the stream of an HTTP/2 extended CONNECT and the upstream.
pub(crate) async fn run_h2(downstream: H2ServerStream, upstream: H1ClientSession) {
    let client = downstream.peer().clone();
    match downstream.into_tunnel() {
        Some(down) => relay(down, &[], upstream, &client).await,
        None => log::debug!("tunnel for {client}: the HTTP/2 stream did not open"),
    }
}

async fn relay<D>(
    mut down: D,
    early_from_client: &[u8],
    upstream: H1ClientSession,
    client: &ClientAddr,
) where
    D: AsyncRead + AsyncWrite + Unpin,
{
    let (mut up, early_from_upstream) = upstream.into_tunnel();
    let result = async {
        if !early_from_client.is_empty() {
            up.write_all(early_from_client).await?;
        }
        if !early_from_upstream.is_empty() {
            down.write_all(&early_from_upstream).await?;
        }
        tokio::io::copy_bidirectional(&mut down, &mut up).await
    }
    .await;
    match result {
        Ok((to_up, to_down)) => {
            log::debug!("tunnel for {client} closed: {to_up} bytes up, {to_down} bytes down")
        }
        Err(e) => log::info!("tunnel for {client} ended: {e}"),
    }
}
