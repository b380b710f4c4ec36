//! A caching proxy: responses of `$ORIGIN` are stored in memory (64 MiB) by the HTTP
//! caching rules (Cache-Control, Expires, Vary, validators) and answered from there
//! while fresh; every response says `X-Cache-Status` (MISS, HIT, STALE, ...).
//! Listens on `$LISTEN`. Needs pingora-proxy's `cache` feature.
use std::sync::Arc;
use std::time::Duration;

use pingora_proxy::pingora_cache::HttpCache;
use pingora_proxy::prelude::*;

struct Cached {
    origin: HttpPeer,
    cache: Arc<HttpCache>,
}

impl ProxyHttp for Cached {
    type Ctx = ();

    fn new_ctx(&self) {}

    fn request_cache_filter(&self, _: &mut Session, _: &mut ()) -> Result<Option<Arc<HttpCache>>> {
        Ok(Some(Arc::clone(&self.cache))) // every request may use it
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<HttpPeer> {
        Ok(self.origin.clone())
    }
}

fn main() -> Result<std::process::ExitCode> {
    let env = |name, default: &str| std::env::var(name).unwrap_or(default.into());
    let mut server = Server::from_args();
    let cached = Cached {
        origin: HttpPeer::parse(&env("ORIGIN", "127.0.0.1:9000"))?,
        // Concurrent misses for one key wait up to 2 s for the first fetch.
        cache: Arc::new(HttpCache::in_memory(64 << 20, Duration::from_secs(2))),
    };
    let mut proxy = http_proxy_service("cache", cached);
    proxy.add_tcp(&env("LISTEN", "0.0.0.0:8080"))?;
    server.add_service(proxy);
    Ok(server.run_forever())
}
