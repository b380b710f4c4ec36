//! [`HttpPeer`] from a string: the one-call constructors of an upstream peer.
//!
//! Kept apart from `peer.rs` so that the peer's plumbing and these conveniences
//! can move independently.

use std::sync::Arc;

use super::peer::{HttpPeer, PeerAddress, PeerOptions};
use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::tls::{UpstreamTls, UpstreamTlsOptions};

impl HttpPeer {
    /// A plain-HTTP peer at `addr`: `IP:PORT`, `host:port` (resolved when connecting)
    /// or `unix:/path`, with default timeouts.
    pub fn parse(addr: &str) -> Result<HttpPeer> {
        Ok(HttpPeer::new(parse_address(addr)?, PeerOptions::default()))
    }

    /// A TLS peer at `addr` (as for [`HttpPeer::parse`]) whose certificate is verified
    /// against the system's roots for the name `sni`, which is also sent in SNI (an
    /// empty `sni` uses the host of `addr`). Fails without the `tls` feature.
    pub fn parse_tls(addr: &str, sni: &str) -> Result<HttpPeer> {
        let address = parse_address(addr)?;
        let tls = UpstreamTls::new(UpstreamTlsOptions {
            sni: (!sni.is_empty()).then(|| sni.to_string()),
            ..UpstreamTlsOptions::default()
        })?;
        let options = PeerOptions {
            tls: Some(Arc::new(tls)),
            ..PeerOptions::default()
        };
        Ok(HttpPeer::new(address, options))
    }
}

fn parse_address(addr: &str) -> Result<PeerAddress> {
    PeerAddress::parse(addr).ok_or_else(|| {
        Error::new(
            ErrorKind::Internal,
            Side::Internal,
            format!(
                "invalid peer address `{addr}`: expected `host:port`, `IP:PORT` or `unix:/path`"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_peers() {
        let peer = HttpPeer::parse("127.0.0.1:8000").unwrap();
        assert_eq!(
            peer.address,
            PeerAddress::Inet("127.0.0.1:8000".parse().unwrap())
        );
        assert!(peer.options.tls.is_none());
        let named = HttpPeer::parse("origin.example:80").unwrap();
        assert_eq!(named.address, PeerAddress::Host("origin.example:80".into()));
        assert!(HttpPeer::parse("no-port").is_err());
        assert!(HttpPeer::parse("").is_err());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_peers_carry_their_sni_and_pool_apart() {
        let tls = HttpPeer::parse_tls("127.0.0.1:443", "one.example").unwrap();
        let options = tls.options.tls.as_ref().unwrap().options();
        assert_eq!(options.sni.as_deref(), Some("one.example"));
        assert!(options.verify);
        let plain = HttpPeer::parse("127.0.0.1:443").unwrap();
        assert_ne!(tls.pool_key(), plain.pool_key());
    }
}
