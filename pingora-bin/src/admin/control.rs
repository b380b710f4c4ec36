//! Runtime control: draining and enabling a backend, purging the cache, and the record
//! of every change made (logged, and listed on the status page).

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

use super::{AdminState, Reply};

/// Changes kept for the status page.
const EVENTS_KEPT: usize = 100;
/// Changes listed by the status page and `/status.json`.
const EVENTS_SHOWN: usize = 20;
/// Largest request body accepted (a purge request).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One change made through the admin endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// When (UTC, RFC 3339).
    pub time: String,
    /// Who asked (the client address).
    pub client: String,
    /// What changed, in words.
    pub message: String,
}

/// The latest changes, newest last.
#[derive(Debug, Default)]
pub struct Events(Mutex<VecDeque<Event>>);

impl Events {
    /// Records and logs a change.
    pub fn record(&self, client: &str, message: String) {
        ::log::warn!("admin: {message} (asked by {client})");
        let mut ring = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == EVENTS_KEPT {
            ring.pop_front();
        }
        ring.push_back(Event {
            time: crate::log::utc_timestamp(std::time::SystemTime::now()),
            client: client.to_string(),
            message,
        });
    }

    /// The latest changes, newest first.
    pub fn latest(&self) -> Vec<Event> {
        let ring = self.0.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().rev().take(EVENTS_SHOWN).cloned().collect()
    }
}

/// A JSON answer.
fn json(status: StatusCode, value: &impl Serialize) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    Reply::new(status, super::JSON, Bytes::from(body))
}

/// A JSON error answer: `{"error": "..."}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Reply {
    #[derive(Serialize)]
    struct Error {
        error: String,
    }
    json(
        status,
        &Error {
            error: message.into(),
        },
    )
}

/// The parts of `/upstreams/{service}/{upstream}/{backend}/{drain|enable}`, decoded;
/// `None` for another path. The backend may contain `/` (`unix:/path`).
pub fn parse_backend_path(path: &str) -> Option<(String, String, String, bool)> {
    let rest = path.strip_prefix("/upstreams/")?;
    let (rest, drain) = match rest.strip_suffix("/drain") {
        Some(r) => (r, true),
        None => (rest.strip_suffix("/enable")?, false),
    };
    let (service, rest) = rest.split_once('/')?;
    let (upstream, backend) = rest.split_once('/')?;
    let decode = |s: &str| percent_decode(s).filter(|d| !d.is_empty());
    Some((decode(service)?, decode(upstream)?, decode(backend)?, drain))
}

/// `%XX` escapes decoded; `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `POST /upstreams/{service}/{upstream}/{backend}/drain|enable`.
pub fn set_draining(
    state: &AdminState,
    client: &str,
    (service, upstream, backend, drain): (String, String, String, bool),
) -> Reply {
    let Some(svc) = state.sources.services.iter().find(|s| s.name == service) else {
        return error(StatusCode::NOT_FOUND, format!("no service {service}"));
    };
    let Some(up) = svc.upstreams.iter().find(|u| u.name == upstream) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("service {service} has no upstream {upstream}"),
        );
    };
    let Some(changed) = up.set_draining(&backend, drain) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("upstream {service}/{upstream} has no backend {backend}"),
        );
    };
    let what = if drain { "drained" } else { "enabled" };
    let message = if changed {
        format!("backend {backend} of {service}/{upstream} {what}")
    } else {
        format!("backend {backend} of {service}/{upstream} {what} (it already was)")
    };
    state.events.record(client, message);
    #[derive(Serialize)]
    struct Done<'a> {
        service: &'a str,
        upstream: &'a str,
        backend: &'a str,
        draining: bool,
        changed: bool,
    }
    json(
        StatusCode::OK,
        &Done {
            service: &service,
            upstream: &upstream,
            backend: &backend,
            draining: drain,
            changed,
        },
    )
}

/// The body of `POST /cache/purge`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    service: String,
    /// Exactly this path and query.
    key: Option<String>,
    /// Every path and query starting with this.
    prefix: Option<String>,
    /// Only entries for this host (any host when absent).
    host: Option<String>,
}

/// `POST /cache/purge` with `{"service": ..., "key" | "prefix": ..., "host": ...}`.
/// The purge runs on a blocking thread: with a disk tier it reads the key of every file.
pub async fn purge(state: &AdminState, client: &str, body: &[u8]) -> Reply {
    let req: PurgeRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "expected {{\"service\": ..., \"key\" | \"prefix\": ..., \"host\"?: ...}}: {e}"
                ),
            )
        }
    };
    let target = match (&req.key, &req.prefix) {
        (Some(k), None) if k.starts_with('/') => Target::Key(k),
        (None, Some(p)) if p.starts_with('/') => Target::Prefix(p),
        (Some(_), Some(_)) | (None, None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of key and prefix",
            )
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "key and prefix are paths (with the query, for key): they start with /",
            )
        }
    };
    let Some(svc) = state
        .sources
        .services
        .iter()
        .find(|s| s.name == req.service)
    else {
        return error(StatusCode::NOT_FOUND, format!("no service {}", req.service));
    };
    let purged = match purge_in(svc, req.host.as_deref(), target).await {
        Some(n) => n,
        None => {
            return error(
                StatusCode::NOT_FOUND,
                format!("service {} has no cache", req.service),
            )
        }
    };
    let (what, value) = match target {
        Target::Key(k) => ("key", k),
        Target::Prefix(p) => ("prefix", p),
    };
    let on = req
        .host
        .as_deref()
        .map_or(String::new(), |h| format!(" on host {h}"));
    state.events.record(
        client,
        format!(
            "cache of {} purged by {what} {value}{on}: {purged} entries removed",
            req.service
        ),
    );
    #[derive(Serialize)]
    struct Done {
        purged: u64,
    }
    json(StatusCode::OK, &Done { purged })
}

#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    Key(&'a str),
    Prefix(&'a str),
}

#[cfg(feature = "cache")]
async fn purge_in(
    svc: &super::ServiceSource,
    host: Option<&str>,
    target: Target<'_>,
) -> Option<u64> {
    use pingora_cache::PurgeTarget;
    let cache = std::sync::Arc::clone(svc.cache.as_ref()?.get()?);
    let host = host.map(str::to_string);
    let (prefix, path) = match target {
        Target::Key(k) => (false, k.to_string()),
        Target::Prefix(p) => (true, p.to_string()),
    };
    let purge = move || {
        let target = if prefix {
            PurgeTarget::Prefix(&path)
        } else {
            PurgeTarget::Exact(&path)
        };
        cache.purge_target(host.as_deref(), target)
    };
    match tokio::task::spawn_blocking(purge).await {
        Ok(n) => Some(n),
        Err(e) => {
            ::log::error!("cache purge failed: {e}");
            Some(0)
        }
    }
}

#[cfg(not(feature = "cache"))]
async fn purge_in(_: &super::ServiceSource, _: Option<&str>, _: Target<'_>) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_paths() {
        assert_eq!(
            parse_backend_path("/upstreams/web/api/10.0.0.1:8080/drain"),
            Some(("web".into(), "api".into(), "10.0.0.1:8080".into(), true))
        );
        assert_eq!(
            parse_backend_path("/upstreams/web/api/10.0.0.1%3A8080/enable"),
            Some(("web".into(), "api".into(), "10.0.0.1:8080".into(), false))
        );
        assert_eq!(
            parse_backend_path("/upstreams/web/api/unix:/run/app.sock/drain").map(|p| p.2),
            Some("unix:/run/app.sock".into())
        );
        assert_eq!(
            parse_backend_path("/upstreams/web/api/[::1]:80/drain").map(|p| p.2),
            Some("[::1]:80".into())
        );
        for bad in [
            "/upstreams/web/api/drain",
            "/upstreams/web//drain",
            "/upstreams/web/api/x/stop",
            "/upstreams/web/api/%zz/drain",
            "/other/web/api/x/drain",
        ] {
            assert_eq!(parse_backend_path(bad), None, "{bad}");
        }
    }
}
