//! A rate limiter: each client address may send `$BURST` requests at once, refilled at
//! `$RATE` per second (a token bucket); over it, `request_filter` answers `429 Too Many
//! Requests` with `Retry-After` before anything goes upstream. Proxies to `$ORIGIN`,
//! listens on `$LISTEN`. (A small limiter of the example's own: the buckets live in one
//! map and are never evicted; pingora-proxy's rate-limit module is the real thing.)
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use pingora_proxy::prelude::*;

struct Limited {
    origin: HttpPeer,
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// The tokens a client has, as of `at`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Limited {
    /// Takes a token for `client`; without one, how long until there is one.
    fn take(&self, client: IpAddr) -> std::result::Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refilled = bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = refilled.min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
    }
}

impl ProxyHttp for Limited {
    type Ctx = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        let Some(client) = session.client_addr().ip() else {
            return Ok(false); // a unix-socket client: not limited
        };
        let Err(wait) = self.take(client) else {
            return Ok(false);
        };
        // The lock is released: answering waits on the client.
        let mut head = ResponseHeader::new(StatusCode::TOO_MANY_REQUESTS);
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        head.headers
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        head.headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        session
            .respond_with(head, Bytes::from_static(b"slow down\n"))
            .await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<HttpPeer> {
        Ok(self.origin.clone())
    }
}

fn main() -> Result<std::process::ExitCode> {
    let env = |name, default: &str| std::env::var(name).unwrap_or(default.into());
    let mut server = Server::from_args();
    let limited = Limited {
        origin: HttpPeer::parse(&env("ORIGIN", "127.0.0.1:9000"))?,
        rate: env("RATE", "10").parse().unwrap_or(10.0),
        burst: env("BURST", "20").parse().unwrap_or(20.0),
        buckets: Mutex::new(HashMap::new()),
    };
    let mut proxy = http_proxy_service("rate-limiter", limited);
    proxy.add_tcp(&env("LISTEN", "0.0.0.0:8080"))?;
    server.add_service(proxy);
    Ok(server.run_forever())
}
