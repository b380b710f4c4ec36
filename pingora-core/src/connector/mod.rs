//! Upstream connections, in one place: who a peer is, dialling it, and keeping idle
//! connections to it for reuse, for HTTP/1.x and HTTP/2.
//!
//! The front door is [`HttpConnector`]: [`HttpConnector::session`] gives a session to
//! a peer (reused when it can be, HTTP/2 streams multiplexed on shared connections)
//! and [`HttpConnector::release`] takes it back once its exchange is over. A program
//! that only proxies uses it through `pingora-proxy`; any other program can use it
//! directly.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`HttpConnector`]: sessions to peers, the one entry point |
//! | `peer.rs` | [`HttpPeer`], [`PeerAddress`], [`PeerOptions`]: who a peer is and how to talk to it |
//! | `peer_parse.rs` | [`HttpPeer::parse`], [`HttpPeer::parse_tls`]: a peer from a string |
//! | `dial.rs` | [`Connector`], [`BindAddrs`]: new TCP, unix and TLS connections |
//! | `pool.rs` | [`pool::ConnectionPool`]: idle connections taken for one exchange (HTTP/1.x) |
//! | `h1.rs` | HTTP/1.x sessions from that pool or from the dialler |
//! | `h2.rs` | [`h2::H2Pool`] of shared HTTP/2 connections, and who opens a new one |
//! | `reaper.rs` | one task per pool closing idle connections when their timeout passes or the peer closes them |
//!
//! ```no_run
//! # async fn demo() -> pingora_core::Result<()> {
//! use http::{Method, Uri};
//! use pingora_core::connector::{Connector, HttpConnector, HttpPeer, PeerAddress, PeerOptions};
//! use pingora_core::protocols::http::v1::BodyFraming;
//! use pingora_core::protocols::http::RequestHeader;
//!
//! let upstreams = HttpConnector::new(Connector::default(), 128);
//! let address = PeerAddress::parse("127.0.0.1:8000").expect("an address");
//! let peer = HttpPeer::new(address, PeerOptions::default());
//! let (mut session, _reused) = upstreams.session(&peer, true).await?;
//! let mut req = RequestHeader::new(Method::GET, Uri::from_static("/"));
//! req.headers.insert("host", "example.com".parse().expect("a header value"));
//! session.write_request_header(&mut req, BodyFraming::Empty).await?;
//! let resp = session.read_response_header().await?;
//! while let Some(_chunk) = session.read_body().await? {}
//! println!("{}", resp.status);
//! upstreams.release(&peer, session); // kept for the next request if it can be
//! # Ok(())
//! # }
//! ```

mod dial;
mod h1;
pub mod h2;
mod peer;
mod peer_parse;
pub mod pool;
mod reaper;

pub use dial::{BindAddrs, Connector};
pub use h2::H2Pool;
pub use peer::{HttpPeer, PeerAddress, PeerOptions};

use crate::error::Result;
use crate::protocols::http::ClientSession;
use h1::H1Sessions;
use h2::H2Sessions;

/// Sessions to upstream peers: HTTP/1.x connections from a keep-alive pool (or new
/// ones), and HTTP/2 streams on connections shared by concurrent requests. Shared by
/// every request of a service; all methods take `&self`.
pub struct HttpConnector {
    dial: Connector,
    h1: H1Sessions,
    h2: H2Sessions,
}

impl std::fmt::Debug for HttpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConnector")
            .field("dial", &self.dial)
            .field("idle", &self.idle_count())
            .finish_non_exhaustive()
    }
}

impl HttpConnector {
    /// A connector dialling with `dial` and keeping at most `h1_pool_size` idle
    /// HTTP/1.x connections in all (0: none are reused). HTTP/2 connections are kept up
    /// to 8 per peer.
    pub fn new(dial: Connector, h1_pool_size: usize) -> Self {
        HttpConnector {
            dial,
            h1: H1Sessions::new(h1_pool_size),
            h2: H2Sessions::new(),
        }
    }

    /// A session to `peer`: reused (an idle pooled HTTP/1.x connection, or a stream on
    /// a pooled HTTP/2 connection) when `allow_reuse` and one is there, else on a new
    /// connection. The flag in the result says whether the connection was reused: a
    /// reused one may turn out to have been closed by the peer, and the request can
    /// then be sent again with `allow_reuse == false`.
    ///
    /// HTTP/2 is spoken when [`PeerOptions::http2`] is set: with prior knowledge on
    /// plain TCP, by ALPN over TLS (an HTTP/1.1 session when the peer chose that).
    pub async fn session(
        &self,
        peer: &HttpPeer,
        allow_reuse: bool,
    ) -> Result<(ClientSession, bool)> {
        // A connection that carried a PROXY header describes one client: it is never
        // taken from the pools, nor shared (see `release` for the other half).
        let private = peer.sends_proxy_header();
        if allow_reuse && !private {
            if let Some(s) = self.h1.reused(peer) {
                return Ok((s.into(), true));
            }
        }
        // Opening a connection (and the HTTP/2 paths) are boxed: inline, their state
        // machines would size the future of every request, reused connection or not.
        if !peer.options.http2 {
            let connected = Box::pin(self.h1.connect(&self.dial, peer)).await?;
            return Ok((connected.into(), false));
        }
        if private {
            return Box::pin(self.h2.private_session(&self.dial, peer)).await;
        }
        Box::pin(self.h2.session(&self.dial, peer, allow_reuse)).await
    }

    /// Gives a session back once its exchange is over: an HTTP/1.x connection goes to
    /// the keep-alive pool when it can carry another exchange (else it is closed); an
    /// HTTP/2 stream just ends (its connection stays pooled). A connection that
    /// carried a PROXY header is closed instead ([`HttpPeer::sends_proxy_header`]).
    pub fn release(&self, peer: &HttpPeer, session: ClientSession) {
        if peer.sends_proxy_header() {
            return;
        }
        if let Some(h1) = session.into_http1() {
            self.h1.release(peer, h1);
        }
    }

    /// Idle connections pooled now: HTTP/1.x connections waiting for an exchange, and
    /// HTTP/2 connections with no stream open.
    pub fn idle_count(&self) -> usize {
        self.h1.idle_count() + self.h2.idle_count()
    }
}
