//! Semantic rules of the `tls` sections: listener certificates and upstream TLS.

use crate::error::ConfigError;
use crate::locate::{join_index, join_key};
use crate::server::ValidateOptions;
use crate::service::{ClientAuthConf, ListenerTlsConf};
use crate::upstream::UpstreamTlsConf;
use crate::validate::Reporter;

/// Validates a listener's `tls` section written at `path` (`...listeners[i].tls`).
pub(crate) fn validate_listener_tls(
    tls: &ListenerTlsConf,
    path: &str,
    opts: &ValidateOptions,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    if !opts.tls_supported {
        return Err(r.tls_unsupported(path));
    }
    r.readable_file(&join_key(path, "cert"), "TLS certificate", &tls.cert)?;
    r.readable_file(&join_key(path, "key"), "TLS key", &tls.key)?;
    if let Some(ocsp) = &tls.ocsp_file {
        r.readable_file(&join_key(path, "ocsp_file"), "OCSP response", ocsp)?;
    }
    if let Some(auth) = &tls.client_auth {
        validate_client_auth(auth, &join_key(path, "client_auth"), r)?;
    }
    if let Some(keys) = &tls.ticket_key_file {
        r.readable_file(&join_key(path, "ticket_key_file"), "ticket key", keys)?;
    }
    for (i, extra) in tls.certs.iter().enumerate() {
        let at = join_index(&join_key(path, "certs"), i);
        r.readable_file(&join_key(&at, "cert"), "TLS certificate", &extra.cert)?;
        r.readable_file(&join_key(&at, "key"), "TLS key", &extra.key)?;
        if let Some(ocsp) = &extra.ocsp_file {
            r.readable_file(&join_key(&at, "ocsp_file"), "OCSP response", ocsp)?;
        }
        if let Some(auth) = &extra.client_auth {
            validate_client_auth(auth, &join_key(&at, "client_auth"), r)?;
        }
    }
    Ok(())
}

/// Validates a `client_auth` section written at `path`: its CA file must be readable.
fn validate_client_auth(
    auth: &ClientAuthConf,
    path: &str,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    r.readable_file(&join_key(path, "ca_file"), "client CA", &auth.ca_file)
}

/// Validates an upstream's `tls` section written at `path` (`...upstreams.NAME.tls`).
pub(crate) fn validate_upstream_tls(
    tls: &UpstreamTlsConf,
    path: &str,
    opts: &ValidateOptions,
    r: &Reporter<'_>,
) -> Result<(), ConfigError> {
    let at = |key: &str| join_key(path, key);
    if !opts.tls_supported {
        return Err(r.tls_unsupported(path));
    }
    if let Some(sni) = &tls.sni {
        if sni.is_empty() || sni.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(r.invalid(
                &at("sni"),
                format!("`{}` is not a host name", sni.escape_debug()),
            ));
        }
    }
    if let Some(ca_file) = &tls.ca_file {
        r.readable_file(&at("ca_file"), "CA file", ca_file)?;
    }
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            r.readable_file(&at("cert"), "TLS client certificate", cert)?;
            r.readable_file(&at("key"), "TLS client key", key)?;
        }
        (Some(_), None) => {
            return Err(r.invalid(
                &at("cert"),
                "a client certificate needs its private key: add `key`",
            ))
        }
        (None, Some(_)) => {
            return Err(r.invalid(
                &at("key"),
                "a private key without its certificate: add `cert`",
            ))
        }
        (None, None) => {}
    }
    Ok(())
}
