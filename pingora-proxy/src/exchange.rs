//! One request/response exchange with an upstream: connect (with retries), send the
//! request head and body, stream the response back, all while both sides may talk.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode, Version};
use pingora_core::connector::{HttpPeer, PeerAddress};
use pingora_core::protocols::http::v1::client::H1ClientSession;
use pingora_core::protocols::http::v1::{is_upgrade_request, BodyFraming};
use pingora_core::protocols::http::v2::H2BodyWriter;
use pingora_core::protocols::http::ClientSession;
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};
use pingora_core::{Error, ErrorKind, Result, Side};

use crate::headers::{append_forwarded_for, strip_hop_by_hop};
use crate::phases::ProxyHttp;
use crate::proxy::HttpProxy;
use crate::session::Session;

/// How an exchange ended, when it did not fail.
pub(crate) enum Outcome {
    /// The response was sent in full.
    Done,
    /// The upstream switched protocols: relay raw bytes from now on.
    Tunnel(Box<H1ClientSession>),
}

/// The state of proxying one request.
pub(crate) struct Exchange<'a, P: ProxyHttp> {
    proxy: &'a HttpProxy<P>,
    session: &'a mut Session,
    ctx: &'a mut P::Ctx,
    /// Whether any request body was taken from the client (then no retry is possible).
    body_started: bool,
    /// The cache's part in this exchange, when the request goes through a cache.
    #[cfg(feature = "cache")]
    cache: Option<&'a mut crate::cache::CacheRun>,
}

impl<'a, P: ProxyHttp> Exchange<'a, P> {
    pub(crate) fn new(
        proxy: &'a HttpProxy<P>,
        session: &'a mut Session,
        ctx: &'a mut P::Ctx,
    ) -> Self {
        Exchange {
            proxy,
            session,
            ctx,
            body_started: false,
            #[cfg(feature = "cache")]
            cache: None,
        }
    }

    /// An exchange watched by the cache: `cache` sees the request head, the response
    /// head and the body.
    #[cfg(feature = "cache")]
    pub(crate) fn with_cache(
        proxy: &'a HttpProxy<P>,
        session: &'a mut Session,
        ctx: &'a mut P::Ctx,
        cache: &'a mut crate::cache::CacheRun,
    ) -> Self {
        let mut exchange = Exchange::new(proxy, session, ctx);
        exchange.cache = Some(cache);
        exchange
    }

    pub(crate) async fn run(mut self) -> Result<Outcome> {
        let framing = self.session.downstream.req_body_framing();
        let upgrade = is_upgrade_request(self.session.req_header());
        let mut up_req = self.upstream_request(upgrade);
        #[cfg(feature = "cache")]
        if let Some(cache) = self.cache.as_deref_mut() {
            cache.prepare_upstream_request(&mut up_req);
        }
        let mut filtered = false;
        let mut retries = 0;
        let mut allow_reuse = true;
        let mut refused_before = false;
        let mut last_failed: Option<(HttpPeer, ErrorKind)> = None;
        loop {
            let peer = self
                .proxy
                .phases()
                .upstream_peer(self.session, self.ctx)
                .await?;
            self.session.set_upstream(peer.address.to_string());
            if !filtered {
                if !up_req.headers.contains_key(header::HOST) {
                    // An HTTP/1.0 client may send none; HTTP/1.1 and HTTP/2 need one.
                    set_host_from_peer(&mut up_req, &peer);
                }
                self.proxy
                    .phases()
                    .upstream_request_filter(self.session, &mut up_req, self.ctx)
                    .await?;
                filtered = true;
            }
            if let Some((failed, ErrorKind::ConnectTimeout)) = &last_failed {
                if failed.address == peer.address {
                    return Err(Error::new(
                        ErrorKind::ConnectTimeout,
                        Side::Upstream,
                        format!(
                            "connecting to {} timed out; no other peer to try",
                            peer.address
                        ),
                    ));
                }
            }
            let (mut up, reused) = match self.proxy.connect(&peer, allow_reuse).await {
                Ok(c) => c,
                Err(e) => {
                    let e = self
                        .proxy
                        .phases()
                        .fail_to_connect(self.session, &peer, self.ctx, e);
                    if e.retry && retries < self.proxy.max_retries() {
                        retries += 1;
                        log::info!("retry {retries} after: {e}");
                        last_failed = Some((peer, e.kind));
                        continue;
                    }
                    return Err(e);
                }
            };
            self.session.set_upstream_reused(reused);
            match self.exchange(&mut up, &mut up_req, framing, upgrade).await {
                Ok(ExchangeEnd::Done) => {
                    self.proxy.release(&peer, up);
                    return Ok(Outcome::Done);
                }
                Ok(ExchangeEnd::Tunnel) => match up.into_http1() {
                    Some(h1) => return Ok(Outcome::Tunnel(Box::new(h1))),
                    None => {
                        return Err(Error::new(
                            ErrorKind::InvalidHead,
                            Side::Upstream,
                            "switching protocols over HTTP/2 is not supported",
                        ))
                    }
                },
                Err(e)
                    if e.kind == ErrorKind::H2StreamRefused
                        && !self.body_started
                        && retries < self.proxy.max_retries() =>
                {
                    // The upstream did not process the stream (GOAWAY, REFUSED_STREAM):
                    // safe to send again. The pool no longer offers a connection that
                    // got GOAWAY, but it still offers one that refused a stream, which
                    // may refuse every retry: after a second refusal, use a new one.
                    retries += 1;
                    if refused_before {
                        allow_reuse = false;
                    }
                    refused_before = true;
                    log::debug!("retry {retries} after: {e}");
                }
                Err(e)
                    if reused
                        && allow_reuse
                        && e.side == Side::Upstream
                        && !up.received_any()
                        && !self.body_started =>
                {
                    // The pooled connection was closed by the upstream while idle.
                    log::debug!(
                        "reused connection to {} was dead ({e}); retrying on a new one",
                        peer.address
                    );
                    allow_reuse = false;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The request head to send upstream: hop-by-hop headers removed, `X-Forwarded-For`
    /// appended, `Expect` dropped (the proxy answers `100 Continue` itself).
    fn upstream_request(&self, upgrade: bool) -> RequestHeader {
        let mut req = self.session.req_header().clone();
        strip_hop_by_hop(&mut req.headers, upgrade);
        req.headers.remove(header::EXPECT);
        if let Some(ip) = self.session.client_addr().ip() {
            append_forwarded_for(&mut req.headers, ip);
        }
        req.version = Version::HTTP_11;
        req
    }

    async fn exchange(
        &mut self,
        up: &mut ClientSession,
        up_req: &mut RequestHeader,
        framing: BodyFraming,
        upgrade: bool,
    ) -> Result<ExchangeEnd> {
        up.write_request_header(up_req, framing).await?;
        let mut req_done = framing == BodyFraming::Empty;
        if !req_done {
            self.session.downstream.send_continue().await?;
        }
        // Towards HTTP/2 the body goes out through its own writer, piece by piece as
        // the window allows, while the response is read.
        let mut h2_out = if req_done {
            None
        } else {
            up.take_body_writer().map(H2BodyOut::new)
        };
        let mut resp = loop {
            tokio::select! {
                biased;
                r = up.read_response_header() => {
                    let mut head = r?;
                    if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS {
                        // 100 is ours to send (Expect is not forwarded); pass other interim heads.
                        if head.status != StatusCode::CONTINUE {
                            strip_hop_by_hop(&mut head.headers, false);
                            self.session.downstream.write_response_header(&mut head).await?;
                        }
                        continue;
                    }
                    break head;
                }
                r = self.session.downstream.read_body(), if !req_done && H2BodyOut::can_take(&h2_out) => {
                    self.body_started = true;
                    req_done = self.take_request_body(up, &mut h2_out, r?).await?;
                }
                r = H2BodyOut::send(&mut h2_out), if H2BodyOut::has_pending(&h2_out) => {
                    r?;
                    req_done = self.finish_h2_body(&mut h2_out)?;
                }
            }
        };
        self.session.set_upstream_status(resp.status);
        if resp.status == StatusCode::SWITCHING_PROTOCOLS {
            if !upgrade {
                return Err(Error::new(
                    ErrorKind::InvalidHead,
                    Side::Upstream,
                    "upstream switched protocols without being asked",
                ));
            }
            self.prepare_response(&mut resp, true).await?;
            self.session
                .downstream
                .write_response_header(&mut resp)
                .await?;
            self.session.downstream.flush().await?;
            return Ok(ExchangeEnd::Tunnel);
        }
        self.filter_upstream_response(&mut resp, false)?;
        #[cfg(feature = "cache")]
        if self.cache_response_head(&mut resp) {
            // The client is answered from the cache once this exchange is over.
            if resp.status == StatusCode::NOT_MODIFIED {
                while up.read_body().await?.is_some() {}
            } else {
                up.set_no_reuse();
            }
            return Ok(ExchangeEnd::Done);
        }
        self.proxy
            .phases()
            .response_filter(self.session, &mut resp, self.ctx)
            .await?;
        self.session
            .downstream
            .write_response_header(&mut resp)
            .await?;
        if !up.has_buffered_body() {
            self.session.downstream.flush().await?;
        }
        loop {
            tokio::select! {
                biased;
                r = up.read_body() => {
                    let mut chunk = r?;
                    let end = chunk.is_none();
                    #[cfg(feature = "cache")]
                    if let (Some(cache), Some(data)) = (self.cache.as_deref_mut(), chunk.as_ref()) {
                        cache.on_body(data);
                    }
                    self.proxy.phases().response_body_filter(self.session, &mut chunk, end, self.ctx)?;
                    if let Some(data) = chunk {
                        self.session.downstream.write_body(&data).await?;
                    }
                    if end {
                        let trailers = up.take_trailers();
                        #[cfg(feature = "cache")]
                        if let Some(cache) = self.cache.as_deref_mut() {
                            cache.on_body_end(trailers.as_ref());
                        }
                        self.session.downstream.finish_response(trailers.as_ref()).await?;
                        break;
                    }
                }
                r = self.session.downstream.read_body(), if !req_done && H2BodyOut::can_take(&h2_out) => {
                    self.body_started = true;
                    let sent = self.take_request_body(up, &mut h2_out, r?).await;
                    req_done = self.upstream_took_body(up, sent)?;
                }
                r = H2BodyOut::send(&mut h2_out), if H2BodyOut::has_pending(&h2_out) => {
                    let sent = r.and_then(|()| self.finish_h2_body(&mut h2_out));
                    req_done = self.upstream_took_body(up, sent)?;
                }
            }
        }
        Ok(ExchangeEnd::Done)
    }

    /// Whether the request body is all sent, after an attempt to send more of it. An
    /// upstream that stopped reading the body is answering anyway: its response goes
    /// through, then both connections close.
    fn upstream_took_body(&mut self, up: &mut ClientSession, sent: Result<bool>) -> Result<bool> {
        match sent {
            Ok(done) => Ok(done),
            Err(e) if e.side == Side::Upstream => {
                log::debug!("upstream stopped reading the request body: {e}");
                up.set_no_reuse();
                self.session.downstream.set_keepalive(false);
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// Takes one piece of request body from the client: sent at once through `up`
    /// (HTTP/1.x), or left in `h2_out` to be sent as the window allows (HTTP/2).
    /// True once the body ended and was sent.
    async fn take_request_body(
        &mut self,
        up: &mut ClientSession,
        h2_out: &mut Option<H2BodyOut>,
        chunk: Option<Bytes>,
    ) -> Result<bool> {
        let Some(out) = h2_out.as_mut() else {
            return self.forward_request_body(up, chunk).await;
        };
        let end = chunk.is_none();
        let mut chunk = chunk;
        self.proxy
            .phases()
            .request_body_filter(self.session, &mut chunk, end, self.ctx)
            .await?;
        if let Some(data) = chunk {
            out.pending = data;
        }
        out.ended = end;
        self.finish_h2_body(h2_out)
    }

    /// Ends the HTTP/2 request body once the client's ended and all of it was sent;
    /// true then.
    fn finish_h2_body(&self, h2_out: &mut Option<H2BodyOut>) -> Result<bool> {
        match h2_out {
            Some(out) if out.ended && out.pending.is_empty() => {
                out.writer.finish(self.session.downstream.req_trailers())?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Runs the body filter on one piece of request body and sends it upstream;
    /// true once the body ended.
    async fn forward_request_body(
        &mut self,
        up: &mut ClientSession,
        chunk: Option<Bytes>,
    ) -> Result<bool> {
        let end = chunk.is_none();
        let mut chunk = chunk;
        self.proxy
            .phases()
            .request_body_filter(self.session, &mut chunk, end, self.ctx)
            .await?;
        if let Some(data) = chunk {
            up.write_body(&data).await?;
        }
        if end {
            let trailers = self.session.downstream.req_trailers().cloned();
            up.finish_body(trailers.as_ref()).await?;
        }
        Ok(end)
    }

    /// Fixes the upstream response head for the client and runs the response phases.
    async fn prepare_response(&mut self, resp: &mut ResponseHeader, tunnel: bool) -> Result<()> {
        self.filter_upstream_response(resp, tunnel)?;
        self.proxy
            .phases()
            .response_filter(self.session, resp, self.ctx)
            .await
    }

    /// Removes hop-by-hop headers from the upstream response head and runs
    /// `upstream_response_filter` on it.
    fn filter_upstream_response(&mut self, resp: &mut ResponseHeader, tunnel: bool) -> Result<()> {
        let reframed = resp.headers.contains_key(header::TRANSFER_ENCODING);
        strip_hop_by_hop(&mut resp.headers, tunnel);
        if reframed {
            // A transfer-coded body has no trustworthy length.
            resp.headers.remove(header::CONTENT_LENGTH);
        }
        self.proxy
            .phases()
            .upstream_response_filter(self.session, resp, self.ctx)
    }

    /// Shows the response head to the cache; true when the client is to be answered
    /// from the cache instead of with this response.
    #[cfg(feature = "cache")]
    fn cache_response_head(&mut self, resp: &mut ResponseHeader) -> bool {
        match self.cache.as_deref_mut() {
            Some(cache) => {
                cache.on_response_head(self.proxy.phases(), self.session, self.ctx, resp)
            }
            None => false,
        }
    }
}

/// Names the upstream peer in `Host` (as nginx's `proxy_pass` does): its `host:port`,
/// or `localhost` for a unix socket.
fn set_host_from_peer(req: &mut RequestHeader, peer: &HttpPeer) {
    let host = match &peer.address {
        PeerAddress::Unix(_) => HeaderValue::from_static("localhost"),
        other => match HeaderValue::try_from(other.to_string()) {
            Ok(v) => v,
            Err(_) => return,
        },
    };
    req.headers.insert(header::HOST, host);
}

/// The request body on its way to an HTTP/2 upstream.
struct H2BodyOut {
    writer: H2BodyWriter,
    /// Taken from the client, not yet sent.
    pending: Bytes,
    /// The client's body ended: the stream ends once `pending` is sent.
    ended: bool,
}

impl H2BodyOut {
    fn new(writer: H2BodyWriter) -> Self {
        H2BodyOut {
            writer,
            pending: Bytes::new(),
            ended: false,
        }
    }

    /// Whether another piece may be taken from the client (HTTP/1.x: always).
    fn can_take(out: &Option<H2BodyOut>) -> bool {
        out.as_ref()
            .is_none_or(|o| o.pending.is_empty() && !o.ended)
    }

    fn has_pending(out: &Option<H2BodyOut>) -> bool {
        out.as_ref().is_some_and(|o| !o.pending.is_empty())
    }

    /// Sends what the window allows of the pending piece. Cancel-safe.
    async fn send(out: &mut Option<H2BodyOut>) -> Result<()> {
        match out {
            Some(o) => o.writer.send_some(&mut o.pending).await,
            None => std::future::pending().await,
        }
    }
}

enum ExchangeEnd {
    Done,
    Tunnel,
}
