//! Everything a proxy application needs, in one `use pingora_proxy::prelude::*;`.
//!
//! The phases ([`ProxyHttp`], [`Session`]), the service ([`http_proxy_service`]),
//! upstream peers ([`HttpPeer`]), the server and its process life ([`Server`],
//! [`ServerArgs`], [`ProcessHooks`]), background work ([`BackgroundService`]) and the
//! error type.

pub use crate::front::{http_proxy_service, http_proxy_service_with};
pub use crate::proxy::{HttpProxy, ProxyOptions};
pub use crate::{FailureAnswer, ProxyHttp, RetryOn, RetryRule, Session, UpstreamConnection};
pub use pingora_core::connector::{HttpPeer, PeerOptions};
pub use pingora_core::listener::ListenAddr;
pub use pingora_core::process::{ProcessHooks, ServerArgs};
pub use pingora_core::protocols::http::{RequestHeader, ResponseHeader};
pub use pingora_core::server::{Server, ServerOptions};
pub use pingora_core::service::{BackgroundService, ListeningService};
pub use pingora_core::shutdown::{Phase, ShutdownWatch};
pub use pingora_core::{Error, ErrorKind, Result, Side};
