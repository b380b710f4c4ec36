//! Passing bytes both ways after a `101 Switching Protocols` (WebSocket and friends).

use pingora_core::protocols::http::v1::client::H1ClientSession;
use pingora_core::protocols::http::v1::server::H1ServerSession;
use tokio::io::AsyncWriteExt;

/// Relays bytes between the client and the upstream until both sides are done.
pub(crate) async fn run(downstream: H1ServerSession, upstream: H1ClientSession) {
    let client = downstream.peer().clone();
    let (mut down, early_from_client) = downstream.into_tunnel();
    let (mut up, early_from_upstream) = upstream.into_tunnel();
    let result = async {
        if !early_from_client.is_empty() {
            up.write_all(&early_from_client).await?;
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
