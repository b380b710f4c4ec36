//! The shortest complete proxy: every request to one origin (`$ORIGIN`), listening on `$LISTEN`, with `-c -d -u -t`, daemon, pid file and graceful upgrade.
use pingora_proxy::prelude::*;

struct OneOrigin(HttpPeer);

impl ProxyHttp for OneOrigin {
    type Ctx = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<HttpPeer> {
        Ok(self.0.clone())
    }
}

fn main() -> Result<std::process::ExitCode> {
    let env = |name, default: &str| std::env::var(name).unwrap_or(default.into());
    let mut server = Server::from_args();
    let origin = HttpPeer::parse(&env("ORIGIN", "127.0.0.1:9000"))?;
    let mut proxy = http_proxy_service("proxy", OneOrigin(origin));
    proxy.add_tcp(&env("LISTEN", "0.0.0.0:8080"))?;
    server.add_service(proxy);
    Ok(server.run_forever())
}
