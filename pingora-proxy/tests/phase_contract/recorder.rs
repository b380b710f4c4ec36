//! The recording `ProxyHttp` and the in-process proxy that runs it.
//!
//! Behaviour is chosen per request by `x-test-*` request headers, so one implementation
//! serves every test:
//! - `x-test-refuse: 403`: `request_filter` raises `Error::http_status(403)`;
//! - `x-test-custom: NAME`: `request_filter` raises `Error::custom`;
//! - `x-test-early-fail: 1`: `early_request_filter` raises an error;
//! - `x-test-answer: 1`: `request_filter` answers by itself (`Ok(true)`);
//! - `x-test-shout: 1`: the request body is upper-cased and `!` is added at its end
//!   (its `Content-Length` removed in `upstream_request_filter`);
//! - `x-test-json: 1`: the response body (JSON) is rewritten whole at its end, with
//!   `"proxied":true` added (`Content-Length` removed in `response_filter`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use pingora_proxy::pingora_core::connector::Connector;
use pingora_proxy::pingora_core::protocols::{ClientAddr, Stream};
use pingora_proxy::pingora_core::service::ServerApp;
use pingora_proxy::pingora_core::shutdown::ShutdownController;
use pingora_proxy::prelude::*;
use pingora_proxy::UpstreamConnection;
use test_support::wait_until;

/// How long a test waits for something the proxy does after the client got its answer.
pub const WAIT: Duration = Duration::from_secs(10);

/// One request's phase calls, in order, as its `logging` saw them.
#[derive(Debug, Clone)]
pub struct Record {
    /// The request path (tests give each request its own).
    pub path: String,
    /// The calls, each written `phase` or `phase(detail)`.
    pub calls: Vec<String>,
    /// The error `logging` got, as `kind` (`http_status 403` for a status).
    pub error: Option<String>,
}

impl Record {
    /// The phase names only (details dropped), without body-piece calls: the order a
    /// request went through. A body filter's end-of-stream call stays, as
    /// `NAME(end)`.
    pub fn order(&self) -> Vec<String> {
        self.calls
            .iter()
            .filter(|c| !c.contains("(piece"))
            .map(|c| {
                if c.ends_with(",end)") || c.contains("(end") {
                    format!("{}(end)", name(c))
                } else {
                    name(c).to_string()
                }
            })
            .collect()
    }

    /// The calls of phase `phase`, with their details.
    pub fn calls_of(&self, phase: &str) -> Vec<&str> {
        self.calls
            .iter()
            .filter(|c| name(c) == phase)
            .map(String::as_str)
            .collect()
    }
}

fn name(call: &str) -> &str {
    call.split('(').next().unwrap_or(call)
}

/// The shared log of finished requests.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Record>>>);

impl Log {
    fn lock(&self) -> MutexGuard<'_, Vec<Record>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The records of `path` so far.
    pub fn records(&self, path: &str) -> Vec<Record> {
        self.lock()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The one record of `path`: waits for it (logging runs after the answer went
    /// out), then checks that no second one comes.
    pub fn one(&self, path: &str) -> Record {
        assert!(
            wait_until(WAIT, || !self.records(path).is_empty()),
            "no logging call for {path}; log: {:#?}",
            self.lock()
        );
        // A second call would come right after the first: give it a moment.
        std::thread::sleep(Duration::from_millis(50));
        let records = self.records(path);
        assert_eq!(records.len(), 1, "logging calls for {path}: {records:#?}");
        records.into_iter().next().unwrap()
    }
}

/// A `ProxyHttp` that writes down every phase call.
pub struct Recorder {
    /// Peers in order of preference: `upstream_peer` names the first that has not
    /// failed during the request (the last one when all have).
    pub peers: Vec<HttpPeer>,
    /// What `retry_rule` returns.
    pub rule: Option<RetryRule>,
    /// Where finished requests go.
    pub log: Log,
}

impl Recorder {
    /// A recorder in front of `origins`, in that order of preference.
    pub fn new(origins: &[SocketAddr]) -> Self {
        let peers = origins
            .iter()
            .map(|a| HttpPeer::parse(&a.to_string()).expect("a peer address"))
            .collect();
        Recorder {
            peers,
            rule: None,
            log: Log::default(),
        }
    }

    /// With `rule` as the retry rule.
    pub fn with_rule(mut self, rule: RetryRule) -> Self {
        self.rule = Some(rule);
        self
    }
}

/// Per-request state: the calls so far, and what the `x-test-*` headers asked for.
pub struct Ctx {
    calls: Vec<String>,
    shout: bool,
    json: bool,
    json_body: BytesMut,
}

fn header<'a>(session: &'a Session, name: &str) -> Option<&'a str> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
}

fn piece(body: &Option<Bytes>, end: bool) -> String {
    match (body, end) {
        (Some(b), false) => format!("piece {}", b.len()),
        (None, false) => "piece none".to_string(),
        (Some(b), true) => format!("end {}", b.len()),
        (None, true) => "end none".to_string(),
    }
}

fn error_text(e: &Error) -> String {
    match e.kind {
        ErrorKind::HttpStatus(s) => format!("http_status {}", s.as_u16()),
        kind => kind.as_str().to_string(),
    }
}

impl ProxyHttp for Recorder {
    type Ctx = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            calls: vec!["new_ctx".to_string()],
            shout: false,
            json: false,
            json_body: BytesMut::new(),
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        ctx.calls.push("early_request_filter".into());
        ctx.shout = header(session, "x-test-shout").is_some();
        ctx.json = header(session, "x-test-json").is_some();
        if header(session, "x-test-early-fail").is_some() {
            return Err(Error::custom("early", "refused before anything else"));
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.calls.push("request_filter".into());
        if let Some(code) = header(session, "x-test-refuse") {
            let status = code.parse::<StatusCode>().expect("a status");
            return Err(Error::http_status(status, "refused by the test"));
        }
        if let Some(kind) = header(session, "x-test-custom") {
            let kind: &'static str = if kind == "quota" { "quota" } else { "custom" };
            return Err(Error::custom(kind, "the test's own failure"));
        }
        if header(session, "x-test-answer").is_some() {
            let body = Bytes::from_static(b"answered by request_filter");
            session.respond(StatusCode::OK, "text/plain", body).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<HttpPeer> {
        let failed: Vec<String> = session
            .upstream_failures()
            .iter()
            .map(|f| f.peer.to_string())
            .collect();
        ctx.calls
            .push(format!("upstream_peer(failed=[{}])", failed.join(",")));
        let fresh = self
            .peers
            .iter()
            .find(|p| !failed.contains(&p.address.to_string()));
        fresh
            .or(self.peers.last())
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::NoUpstream, Side::Internal, "no peers"))
    }

    fn retry_rule(&self, _session: &Session, ctx: &mut Ctx) -> Option<RetryRule> {
        ctx.calls.push("retry_rule".into());
        self.rule
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.calls.push("upstream_request_filter".into());
        if ctx.shout {
            up.headers.remove(http::header::CONTENT_LENGTH);
        }
        Ok(())
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        c: &UpstreamConnection<'_>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.calls.push(format!(
            "connected_to_upstream(reused={},attempt={})",
            c.reused, c.attempt
        ));
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.calls
            .push(format!("request_body_filter({})", piece(body, end)));
        if ctx.shout {
            if let Some(b) = body.as_mut() {
                *b = Bytes::from(b.to_ascii_uppercase());
            }
            if end {
                *body = Some(Bytes::from_static(b"!"));
            }
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.calls.push(format!(
            "upstream_response_filter({})",
            resp.status.as_u16()
        ));
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.calls
            .push(format!("response_filter({})", resp.status.as_u16()));
        if ctx.json {
            resp.headers.remove(http::header::CONTENT_LENGTH);
        }
        Ok(())
    }

    async fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.calls.push(format!(
            "upstream_response_body_filter({})",
            piece(body, end)
        ));
        Ok(())
    }

    async fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.calls
            .push(format!("response_body_filter({})", piece(body, end)));
        if ctx.json {
            if let Some(b) = body.take() {
                ctx.json_body.extend_from_slice(&b);
            }
            if end {
                let text = String::from_utf8_lossy(&ctx.json_body);
                let inner = text.trim().trim_end_matches('}');
                *body = Some(Bytes::from(format!("{inner},\"proxied\":true}}")));
            }
        }
        Ok(())
    }

    async fn response_trailer_filter(
        &self,
        _session: &mut Session,
        trailers: &mut HeaderMap,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.calls
            .push(format!("response_trailer_filter({})", trailers.len()));
        trailers.insert("x-trailer-seen", http::HeaderValue::from_static("1"));
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        error: Error,
        ctx: &mut Ctx,
    ) -> Error {
        ctx.calls.push(format!(
            "fail_to_connect({},retry={})",
            error_text(&error),
            error.retry
        ));
        error
    }

    fn error_while_proxy(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        error: Error,
        ctx: &mut Ctx,
    ) -> Error {
        ctx.calls.push(format!(
            "error_while_proxy({},retry={},started={})",
            error_text(&error),
            error.retry,
            session.response_started()
        ));
        error
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        error: &Error,
        ctx: &mut Ctx,
    ) -> FailureAnswer {
        let answer = session.respond_error_for(error).await;
        ctx.calls
            .push(format!("fail_to_proxy({},{answer})", error_text(error)));
        answer
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut Ctx) {
        ctx.calls.push("logging".into());
        let record = Record {
            path: session.req_header().uri.path().to_string(),
            calls: std::mem::take(&mut ctx.calls),
            error: error.map(error_text),
        };
        self.log.lock().push(record);
    }
}

/// An `HttpProxy` running a [`Recorder`] on 127.0.0.1, on a runtime of its own, in the
/// test's process. Stops when dropped.
pub struct InProcessProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The recorder's log.
    pub log: Log,
    shutdown: ShutdownController,
    runtime: Option<tokio::runtime::Runtime>,
}

impl InProcessProxy {
    /// Starts a proxy running `recorder` with default options.
    pub fn start(recorder: Recorder) -> Self {
        let log = recorder.log.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("a local address");
        let proxy = HttpProxy::new(recorder, ProxyOptions::default(), Connector::default());
        let shutdown = ShutdownController::new();
        let watch = shutdown.watch();
        runtime.spawn(async move {
            while let Ok((tcp, client)) = listener.accept().await {
                let proxy = proxy.clone();
                let watch = watch.clone();
                tokio::spawn(async move {
                    (proxy)
                        .process_connection(Stream::Tcp(tcp), ClientAddr::Tcp(client).into(), watch)
                        .await;
                });
            }
        });
        InProcessProxy {
            addr,
            log,
            shutdown,
            runtime: Some(runtime),
        }
    }
}

impl Drop for InProcessProxy {
    fn drop(&mut self) {
        self.shutdown.advance(Phase::Closing);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}
