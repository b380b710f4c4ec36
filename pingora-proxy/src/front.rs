//! The proxy as a service in one call.

use pingora_core::connector::Connector;
use pingora_core::service::ListeningService;

use crate::phases::ProxyHttp;
use crate::proxy::{HttpProxy, ProxyOptions};

/// The listening service of an HTTP proxy running `app`'s phases, with default
/// options and connector; add its listeners (`add_tcp`, `add_unix`, `add_tls`) and
/// give it to the server.
pub fn http_proxy_service<P: ProxyHttp>(
    name: impl Into<String>,
    app: P,
) -> ListeningService<HttpProxy<P>> {
    http_proxy_service_with(name, app, ProxyOptions::default(), Connector::default())
}

/// As [`http_proxy_service`], with the proxy's options and the connector to upstreams.
pub fn http_proxy_service_with<P: ProxyHttp>(
    name: impl Into<String>,
    app: P,
    opts: ProxyOptions,
    connector: Connector,
) -> ListeningService<HttpProxy<P>> {
    ListeningService::new(name, HttpProxy::new(app, opts, connector))
}
