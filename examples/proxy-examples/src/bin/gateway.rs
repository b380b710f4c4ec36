//! A gateway routing by path: `/api/...` goes to `$API` without its `/api` prefix,
//! `/static/...` to `$STATIC`; `/admin...` is refused with 403 and anything else with
//! 404, both raised as errors from `request_filter`. Listens on `$LISTEN`.
use http::StatusCode;
use pingora_proxy::modules::{PathRewrite, RequestVars};
use pingora_proxy::prelude::*;

/// Where a request goes.
enum Route {
    Api,
    Static,
}

struct Gateway {
    api: HttpPeer,
    static_files: HttpPeer,
    strip_api: PathRewrite,
}

impl ProxyHttp for Gateway {
    type Ctx = Option<Route>;

    fn new_ctx(&self) -> Self::Ctx {
        None
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::Ctx) -> Result<bool> {
        let path = session.req_header().uri.path();
        *ctx = Some(if path.starts_with("/api/") {
            Route::Api
        } else if path.starts_with("/static/") {
            Route::Static
        } else if path.starts_with("/admin") {
            return Err(Error::http_status(
                StatusCode::FORBIDDEN,
                "the admin pages are internal",
            ));
        } else {
            return Err(Error::http_status(StatusCode::NOT_FOUND, "no route"));
        });
        Ok(false)
    }

    async fn upstream_peer(&self, _: &mut Session, ctx: &mut Self::Ctx) -> Result<HttpPeer> {
        match ctx {
            Some(Route::Api) => Ok(self.api.clone()),
            _ => Ok(self.static_files.clone()),
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::Ctx,
    ) -> Result<()> {
        if let Some(Route::Api) = ctx {
            let vars = RequestVars::new(session.req_header());
            self.strip_api.apply(upstream_request, &vars)?; // /api/users -> /users
        }
        Ok(())
    }
}

fn main() -> Result<std::process::ExitCode> {
    let env = |name, default: &str| std::env::var(name).unwrap_or(default.into());
    let mut server = Server::from_args();
    let gateway = Gateway {
        api: HttpPeer::parse(&env("API", "127.0.0.1:9001"))?,
        static_files: HttpPeer::parse(&env("STATIC", "127.0.0.1:9002"))?,
        strip_api: PathRewrite::StripPrefix("/api".into()),
    };
    let mut proxy = http_proxy_service("gateway", gateway);
    proxy.add_tcp(&env("LISTEN", "0.0.0.0:8080"))?;
    server.add_service(proxy);
    Ok(server.run_forever())
}
