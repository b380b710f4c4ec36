//! TLS of the configuration turned into pingora-core's acceptors and upstream settings.
//!
//! Without the `tls` feature the configuration validation refuses every `tls:` section,
//! so nothing here is ever asked to build TLS in such a build.

use std::sync::Arc;
use std::time::Duration;

use crate::error::BinError;
use pingora_config::{ClientAuthConf, ListenerTlsConf, ServerConf, ServiceConf, UpstreamConf};
use pingora_core::protocols::tls::{
    ClientAuth, ClientAuthMode, ClientCertificate, ServerAlpn, TicketKeys, TlsAcceptor,
    TlsAcceptorOptions, TlsCertificate, TrustRoots, UpstreamTls, UpstreamTlsOptions,
};

/// What TLS listeners offer in ALPN: HTTP/2 (preferred) and HTTP/1.1.
pub const LISTENER_ALPN: ServerAlpn = ServerAlpn::H2AndHttp1;

/// Most time a client gets for the TLS handshake (less if the service's
/// `client_header_timeout_ms` is shorter).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client-certificate settings of a `client_auth` section.
fn client_auth(conf: &ClientAuthConf) -> ClientAuth {
    let mode = match conf.mode {
        pingora_config::ClientAuthMode::Require => ClientAuthMode::Require,
        pingora_config::ClientAuthMode::Optional => ClientAuthMode::Optional,
    };
    ClientAuth::from_ca_file(mode, conf.ca_file.clone())
}

/// The acceptor of a TLS listener of `service`: its certificates (the default first),
/// loaded and checked (PEM parsed, each key matching its certificate, each OCSP
/// response matching its certificate and fresh), client certificates, ticket keys.
pub fn listener_acceptor(
    service: &ServiceConf,
    tls: &ListenerTlsConf,
) -> Result<Arc<TlsAcceptor>, BinError> {
    let mut certs = Vec::new();
    for entry in tls.all_certs() {
        let mut cert = TlsCertificate::from_files(&entry.cert, &entry.key)?;
        if let Some(ocsp) = &entry.ocsp_file {
            cert = cert.with_ocsp_file(ocsp)?;
        }
        if let Some(auth) = &entry.client_auth {
            cert = cert.with_client_auth(client_auth(auth));
        }
        certs.push(cert);
    }
    let ticket_keys = match &tls.ticket_key_file {
        Some(path) => Some(TicketKeys::from_file(path)?),
        None => None,
    };
    let opts = TlsAcceptorOptions {
        alpn: LISTENER_ALPN,
        handshake_timeout: HANDSHAKE_TIMEOUT
            .min(Duration::from_millis(service.client_header_timeout_ms)),
        client_auth: tls.client_auth.as_ref().map(client_auth),
        ticket_keys,
    };
    Ok(Arc::new(TlsAcceptor::new(certs, opts)?))
}

/// The TLS settings of an upstream (`None`: plain), built once and shared by its peers.
/// Trusts the upstream's `ca_file`, else the server's, else the system roots.
pub fn upstream_tls(
    conf: &ServerConf,
    upstream: &UpstreamConf,
) -> Result<Option<Arc<UpstreamTls>>, BinError> {
    let Some(tls) = &upstream.tls else {
        return Ok(None);
    };
    let roots = match tls.ca_file.as_ref().or(conf.ca_file.as_ref()) {
        Some(path) => TrustRoots::File(path.clone()),
        None => TrustRoots::System,
    };
    let client_cert = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => Some(ClientCertificate::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let options = UpstreamTlsOptions {
        sni: tls.sni.clone(),
        verify: tls.verify,
        roots,
        client_cert,
        keylog: conf.upstream_debug_ssl_keylog,
    };
    Ok(Some(Arc::new(UpstreamTls::new(options)?)))
}

/// Loads every TLS certificate, key and CA bundle the configuration names, so that a bad
/// PEM file is a configuration error (`-t` included) rather than a failure at start.
pub fn check(conf: &ServerConf) -> Result<(), BinError> {
    let at = |key: String| {
        move |e: BinError| BinError::Tls {
            key,
            source: Box::new(e),
        }
    };
    for (i, service) in conf.services.iter().enumerate() {
        for (j, listener) in service.listeners.iter().enumerate() {
            if let Some(tls) = &listener.tls {
                listener_acceptor(service, tls)
                    .map_err(at(format!("services[{i}].listeners[{j}].tls")))?;
            }
        }
        for (name, upstream) in service.upstreams.iter() {
            upstream_tls(conf, upstream)
                .map_err(at(format!("services[{i}].upstreams.{name}.tls")))?;
        }
    }
    Ok(())
}
