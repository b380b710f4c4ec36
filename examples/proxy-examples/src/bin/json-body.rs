//! Changes a JSON response body on its way to the client: every JSON object `$ORIGIN`
//! answers with gets `"served_by": "pingora"`. The body is gathered in the request's
//! context, rewritten when its end comes, and sent with the length it has then:
//! `response_filter` removes `Content-Length`, so an HTTP/1.1 client gets it chunked
//! (an HTTP/2 client without a length). Other responses pass untouched. Listens on
//! `$LISTEN`.
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use pingora_proxy::prelude::*;

/// Bodies larger than this are passed on unchanged (never held whole in memory).
const MAX_REWRITTEN: usize = 1 << 20;

struct AddField(HttpPeer);

#[derive(Default)]
struct Ctx {
    /// The response is JSON, to be rewritten.
    rewrite: bool,
    body: Vec<u8>,
}

impl ProxyHttp for AddField {
    type Ctx = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut Ctx) -> Result<HttpPeer> {
        Ok(self.0.clone())
    }

    async fn response_filter(
        &self,
        _: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let content_type = resp.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        ctx.rewrite = content_type.is_some_and(|t| t.starts_with("application/json"));
        if ctx.rewrite {
            resp.headers.remove(CONTENT_LENGTH); // the length changes
        }
        Ok(())
    }

    async fn response_body_filter(
        &self,
        _: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if !ctx.rewrite {
            return Ok(());
        }
        if let Some(piece) = body.take() {
            ctx.body.extend_from_slice(&piece);
        }
        if ctx.body.len() > MAX_REWRITTEN {
            // Too large to hold: send what was gathered as it is, and the rest as it comes.
            ctx.rewrite = false;
            *body = Some(Bytes::from(std::mem::take(&mut ctx.body)));
        } else if end_of_stream {
            *body = Some(Bytes::from(with_field(std::mem::take(&mut ctx.body))));
        }
        Ok(())
    }
}

/// The JSON object in `json` with `"served_by": "pingora"`; anything else unchanged.
fn with_field(json: Vec<u8>) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(&json) {
        Ok(serde_json::Value::Object(mut object)) => {
            object.insert("served_by".into(), "pingora".into());
            serde_json::to_vec(&object).unwrap_or(json)
        }
        _ => json,
    }
}

fn main() -> Result<std::process::ExitCode> {
    let env = |name, default: &str| std::env::var(name).unwrap_or(default.into());
    let mut server = Server::from_args();
    let origin = HttpPeer::parse(&env("ORIGIN", "127.0.0.1:9000"))?;
    let mut proxy = http_proxy_service("json-body", AddField(origin));
    proxy.add_tcp(&env("LISTEN", "0.0.0.0:8080"))?;
    server.add_service(proxy);
    Ok(server.run_forever())
}
