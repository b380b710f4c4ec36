//! Passing bytes both ways after a `101 Switching Protocols` (WebSocket and friends):
//! between an HTTP/1.1 client connection, or the stream of an HTTP/2 extended CONNECT
//! (RFC 8441), and the upstream's HTTP/1.1 connection or HTTP/2 extended CONNECT
//! stream.
//!
//! A tunnel lasts until either side ends it, or until the server's drain runs out
//! ([`Phase::Closing`]). Then a WebSocket tunnel is ended properly: each direction
//! finishes the frame it is in (for a moment at most), and both sides get a close frame
//! (1001, going away) before the connection closes, so that clients reconnect at once
//! (to the new instance after an upgrade) instead of seeing a broken connection.

mod websocket;

use std::time::Duration;

use pingora_core::protocols::http::v1::server::H1ServerSession;
use pingora_core::protocols::http::v2::server::H2ServerStream;
use pingora_core::protocols::http::{RequestHeader, UpstreamTunnel};
use pingora_core::protocols::ClientAddr;
use pingora_core::shutdown::{Phase, ShutdownWatch};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use websocket::{close_frame, FrameBoundary, GOING_AWAY};

/// Longest wait, once the drain ran out, for a direction to finish the frame it is in
/// (the server gives every connection 500 ms to end after that).
const FINISH_FRAME: Duration = Duration::from_millis(250);
/// Bytes read at once in a WebSocket tunnel.
const PUMP_BUFFER: usize = 16 * 1024;

/// What is carried through a tunnel, as far as the tunnel needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carried {
    /// WebSocket frames (`Upgrade: websocket`): ended with close frames at shutdown.
    WebSocket,
    /// Anything else: bytes, cut at shutdown.
    Bytes,
}

impl Carried {
    /// What the request that opened the tunnel asked to switch to.
    pub(crate) fn of(req: &RequestHeader) -> Carried {
        let websocket = req
            .headers
            .get_all(http::header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("websocket"));
        if websocket {
            Carried::WebSocket
        } else {
            Carried::Bytes
        }
    }
}

/// Relays bytes between an HTTP/1.1 client and the upstream until both sides are done.
pub(crate) async fn run(downstream: H1ServerSession, upstream: UpstreamTunnel, carried: Carried) {
    let client = downstream.peer().clone();
    let shutdown = downstream.shutdown_watch().clone();
    let (down, early_from_client) = downstream.into_tunnel();
    relay(
        down,
        &early_from_client,
        upstream,
        &client,
        carried,
        shutdown,
    )
    .await;
}

/// Relays bytes between the stream of an HTTP/2 extended CONNECT and the upstream.
pub(crate) async fn run_h2(
    downstream: H2ServerStream,
    upstream: UpstreamTunnel,
    carried: Carried,
    shutdown: ShutdownWatch,
) {
    let client = downstream.peer().clone();
    match downstream.into_tunnel() {
        Some(down) => relay(down, &[], upstream, &client, carried, shutdown).await,
        None => log::debug!("tunnel for {client}: the HTTP/2 stream did not open"),
    }
}

async fn relay<D>(
    down: D,
    early_from_client: &[u8],
    upstream: UpstreamTunnel,
    client: &ClientAddr,
    carried: Carried,
    shutdown: ShutdownWatch,
) where
    D: AsyncRead + AsyncWrite + Unpin,
{
    match upstream {
        UpstreamTunnel::H1(up, early) => {
            let early = (early_from_client, &early[..]);
            relay_to(down, up, early, client, carried, shutdown).await
        }
        UpstreamTunnel::H2(up) => {
            let early = (early_from_client, &[][..]);
            relay_to(down, up, early, client, carried, shutdown).await
        }
    }
}

async fn relay_to<D, U>(
    mut down: D,
    mut up: U,
    (early_from_client, early_from_upstream): (&[u8], &[u8]),
    client: &ClientAddr,
    carried: Carried,
    mut shutdown: ShutdownWatch,
) where
    D: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    if carried == Carried::WebSocket {
        let early = (early_from_client, early_from_upstream);
        return relay_websocket(down, up, early, client, shutdown).await;
    }
    let result = async {
        if !early_from_client.is_empty() {
            up.write_all(early_from_client).await?;
        }
        if !early_from_upstream.is_empty() {
            down.write_all(early_from_upstream).await?;
        }
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut down, &mut up) => r.map(Some),
            _ = shutdown.reached(Phase::Closing) => Ok(None),
        }
    }
    .await;
    match result {
        Ok(Some((to_up, to_down))) => {
            log::debug!("tunnel for {client} closed: {to_up} bytes up, {to_down} bytes down")
        }
        Ok(None) => log::info!("tunnel for {client} cut: the server's drain ran out"),
        Err(e) => log::info!("tunnel for {client} ended: {e}"),
    }
}

/// How one direction of a WebSocket tunnel stopped.
enum Stopped {
    /// Its sender closed (or the connection failed): nothing to add.
    Ended,
    /// The drain ran out; whether the bytes passed on end with a whole frame.
    AtShutdown { whole_frames: bool },
}

async fn relay_websocket<D, U>(
    down: D,
    up: U,
    (early_from_client, early_from_upstream): (&[u8], &[u8]),
    client: &ClientAddr,
    shutdown: ShutdownWatch,
) where
    D: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut down_read, mut down_write) = tokio::io::split(down);
    let (mut up_read, mut up_write) = tokio::io::split(up);
    let mut to_up = FrameBoundary::default();
    let mut to_down = FrameBoundary::default();
    let early = async {
        up_write.write_all(early_from_client).await?;
        to_up.advance(early_from_client);
        down_write.write_all(early_from_upstream).await?;
        to_down.advance(early_from_upstream);
        Ok::<_, std::io::Error>(())
    };
    if let Err(e) = early.await {
        log::info!("tunnel for {client} ended: {e}");
        return;
    }
    let (upward, downward) = tokio::join!(
        pump(&mut down_read, &mut up_write, &mut to_up, shutdown.clone()),
        pump(&mut up_read, &mut down_write, &mut to_down, shutdown),
    );
    let mut closed = Vec::new();
    // Towards the client, unmasked; towards the origin, masked (any key will do: it
    // only keeps intermediaries from reading frames as other protocols).
    if let Stopped::AtShutdown { whole_frames: true } = downward {
        let frame = close_frame(GOING_AWAY, "server shutting down", None);
        if down_write.write_all(&frame).await.is_ok() {
            closed.push("client");
        }
    }
    if let Stopped::AtShutdown { whole_frames: true } = upward {
        let frame = close_frame(GOING_AWAY, "proxy shutting down", Some(mask_key()));
        if up_write.write_all(&frame).await.is_ok() {
            closed.push("upstream");
        }
    }
    let _ = down_write.shutdown().await;
    let _ = up_write.shutdown().await;
    match (upward, downward) {
        (Stopped::Ended, Stopped::Ended) => log::debug!("WebSocket tunnel for {client} closed"),
        _ => {
            log::info!(
            "WebSocket tunnel for {client} ended by the server's drain; close frame sent to: {}",
            if closed.is_empty() { "none (cut mid-frame)".to_string() } else { closed.join(", ") }
        )
        }
    }
}

/// Passes bytes from `from` to `to` until `from` ends or the drain runs out; then
/// finishes the frame in progress if it comes within [`FINISH_FRAME`].
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    frames: &mut FrameBoundary,
    mut shutdown: ShutdownWatch,
) -> Stopped
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; PUMP_BUFFER];
    loop {
        // Reading is cancel-safe: a read stopped by the shutdown loses nothing.
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return Stopped::Ended;
                }
                Ok(n) => n,
            },
            _ = shutdown.reached(Phase::Closing) => break,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return Stopped::Ended;
        }
        frames.advance(&buf[..n]);
    }
    let finish = async {
        while !frames.at_boundary() {
            let want = usize::try_from(frames.left_in_frame())
                .unwrap_or(usize::MAX)
                .clamp(1, buf.len());
            match from.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return false;
                    }
                    frames.advance(&buf[..n]);
                }
            }
        }
        true
    };
    let whole_frames = tokio::time::timeout(FINISH_FRAME, finish)
        .await
        .unwrap_or(false);
    Stopped::AtShutdown { whole_frames }
}

/// A mask key for a frame sent towards the origin.
fn mask_key() -> [u8; 4] {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    let v = h.finish().to_le_bytes();
    [v[0], v[1], v[2], v[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_is_recognised_in_the_upgrade_header() {
        let with = |upgrade: Option<&'static str>| {
            let mut req = RequestHeader::new(http::Method::GET, http::Uri::from_static("/ws"));
            if let Some(v) = upgrade {
                req.headers
                    .insert(http::header::UPGRADE, http::HeaderValue::from_static(v));
            }
            Carried::of(&req)
        };
        assert_eq!(with(None), Carried::Bytes);
        assert_eq!(with(Some("h2c, WebSocket")), Carried::WebSocket);
        assert_eq!(with(Some("tls/1.3")), Carried::Bytes);
    }
}
