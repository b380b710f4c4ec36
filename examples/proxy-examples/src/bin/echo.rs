//! Two services in one server: the HTTP proxy on `$LISTEN` (to `$ORIGIN`) and a plain
//! TCP service on `$ECHO` that sends back every byte it gets. Both get the server's
//! life: `-d`, graceful upgrade (every listener is handed over), drain on SIGTERM.
use pingora_proxy::pingora_core::protocols::{ConnectionInfo, Stream};
use pingora_proxy::pingora_core::service::ServerApp;
use pingora_proxy::prelude::*;

/// Echoes a connection until the client closes it, or the server's drain ends.
struct Echo;

impl ServerApp for Echo {
    async fn process_connection(
        &self,
        stream: Stream,
        _: ConnectionInfo,
        mut shutdown: ShutdownWatch,
    ) {
        let (mut from_client, mut to_client) = tokio::io::split(stream);
        tokio::select! {
            _ = tokio::io::copy(&mut from_client, &mut to_client) => {}
            _ = shutdown.reached(Phase::Closing) => {}
        }
    }
}

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
    let mut echo = ListeningService::new("echo", Echo);
    echo.add_tcp(&env("ECHO", "0.0.0.0:7007"))?;
    server.add_service(echo);
    Ok(server.run_forever())
}
