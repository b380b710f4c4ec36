//! The response side of an exchange: reading the upstream response head (passing
//! interim heads on), the response phases on it, and relaying the body to the client,
//! while the request body keeps flowing the other way.

use bytes::Bytes;
use http::{header, StatusCode};
use pingora_core::protocols::http::v1::BodyFraming;
use pingora_core::protocols::http::{ClientSession, RequestHeader, ResponseHeader};
use pingora_core::{Error, ErrorKind, Result, Side};

use super::body::RequestBodyPump;
use super::hooks::{AfterHead, ExchangeHooks};
use super::Exchange;
use crate::headers::strip_hop_by_hop;
use crate::phases::ProxyHttp;

/// How an exchange on one upstream connection ended, when it did not fail.
pub(super) enum ExchangeEnd {
    /// The response was relayed (or is answered elsewhere): the connection may go back
    /// to the pool.
    Done,
    /// The upstream switched protocols: the connection becomes a tunnel.
    Tunnel,
}

impl<P: ProxyHttp, H: ExchangeHooks<P>> Exchange<'_, P, H> {
    /// Sends the request head on `up` (the body framed as `framing`) and reads the
    /// response head, pumping the request body meanwhile.
    pub(super) async fn send_and_read_head(
        &mut self,
        up: &mut ClientSession,
        body: &mut RequestBodyPump,
        up_req: &mut RequestHeader,
        framing: BodyFraming,
    ) -> Result<ResponseHeader> {
        up.write_request_header(up_req, framing).await?;
        body.attach(up);
        if !body.is_done() {
            self.session.downstream.send_continue().await?;
        }
        self.read_head(up, body).await
    }

    /// Relays the response whose head is `resp` to the client, pumping the request
    /// body meanwhile: the response phases on the head, then the body.
    pub(super) async fn relay(
        &mut self,
        up: &mut ClientSession,
        body: &mut RequestBodyPump,
        mut resp: ResponseHeader,
        upgrade: bool,
    ) -> Result<ExchangeEnd> {
        if resp.status == StatusCode::SWITCHING_PROTOCOLS {
            return self.switch_protocols(resp, upgrade).await;
        }
        self.filter_upstream_response(&mut resp, false).await?;
        let after = (self.hooks).response_head(self.phases, self.session, self.ctx, &mut resp);
        if after == AfterHead::AnsweredElsewhere {
            if resp.status == StatusCode::NOT_MODIFIED {
                while up.read_body().await?.is_some() {}
            } else {
                up.set_no_reuse();
            }
            return Ok(ExchangeEnd::Done);
        }
        (self.phases)
            .response_filter(self.session, &mut resp, self.ctx)
            .await?;
        self.session
            .downstream
            .write_response_header(&mut resp)
            .await?;
        if !up.has_buffered_body() {
            self.session.downstream.flush().await?;
        }
        self.relay_body(up, body).await?;
        Ok(ExchangeEnd::Done)
    }

    /// Reads the final response head, passing interim heads (other than `100`, which
    /// the proxy sends itself) to the client; the request body flows meanwhile.
    async fn read_head(
        &mut self,
        up: &mut ClientSession,
        body: &mut RequestBodyPump,
    ) -> Result<ResponseHeader> {
        loop {
            tokio::select! {
                biased;
                r = up.read_response_header() => {
                    let mut head = r?;
                    if !head.status.is_informational() || head.status == StatusCode::SWITCHING_PROTOCOLS {
                        return Ok(head);
                    }
                    if head.status != StatusCode::CONTINUE {
                        strip_hop_by_hop(&mut head.headers, false);
                        self.session.downstream.write_response_header(&mut head).await?;
                    }
                }
                event = body.ready(&mut self.session.downstream) => {
                    body.handle(event?, self.phases, self.session, self.ctx, up).await?;
                }
            }
        }
    }

    /// Relays the response body to the client; the request body flows meanwhile. An
    /// upstream that stops reading the request body is answering anyway: its response
    /// goes through, then both connections close.
    async fn relay_body(
        &mut self,
        up: &mut ClientSession,
        body: &mut RequestBodyPump,
    ) -> Result<()> {
        loop {
            tokio::select! {
                biased;
                r = up.read_body() => {
                    let mut chunk = r?;
                    let end = chunk.is_none();
                    if self.relay_piece(&mut chunk, end).await? {
                        let mut trailers = up.take_trailers();
                        self.hooks.body_end(trailers.as_ref());
                        if let Some(fields) = trailers.as_mut() {
                            (self.phases).response_trailer_filter(self.session, fields, self.ctx).await?;
                        }
                        let trailers = trailers.filter(|t| !t.is_empty());
                        return self.session.downstream.finish_response(trailers.as_ref()).await;
                    }
                }
                event = body.ready(&mut self.session.downstream) => {
                    let sent = body.handle(event?, self.phases, self.session, self.ctx, up).await;
                    match sent {
                        Err(e) if e.side == Side::Upstream => {
                            log::debug!("upstream stopped reading the request body: {e}");
                            body.stop();
                            up.set_no_reuse();
                            self.session.downstream.set_keepalive(false);
                        }
                        other => other?,
                    }
                }
            }
        }
    }

    /// One piece of the upstream response body (`end`: its end) through the upstream
    /// body filter, the cache and the response body filter, then to the client.
    /// Returns `end`.
    async fn relay_piece(&mut self, chunk: &mut Option<Bytes>, end: bool) -> Result<bool> {
        (self.phases)
            .upstream_response_body_filter(self.session, chunk, end, self.ctx)
            .await?;
        if chunk.is_some() {
            // The hooks (the cache) see what the origin's body became, and may take it.
            self.hooks.body(chunk);
        }
        (self.phases)
            .response_body_filter(self.session, chunk, end, self.ctx)
            .await?;
        if let Some(data) = chunk.take() {
            self.session.downstream.write_body(&data).await?;
        }
        Ok(end)
    }

    /// Passes a `101 Switching Protocols` to the client (when it asked for an upgrade).
    async fn switch_protocols(
        &mut self,
        mut resp: ResponseHeader,
        upgrade: bool,
    ) -> Result<ExchangeEnd> {
        if !upgrade {
            return Err(Error::new(
                ErrorKind::InvalidHead,
                Side::Upstream,
                "upstream switched protocols without being asked",
            ));
        }
        self.filter_upstream_response(&mut resp, true).await?;
        (self.phases)
            .response_filter(self.session, &mut resp, self.ctx)
            .await?;
        self.session
            .downstream
            .write_response_header(&mut resp)
            .await?;
        self.session.downstream.flush().await?;
        Ok(ExchangeEnd::Tunnel)
    }

    /// Removes hop-by-hop headers from the upstream response head and runs
    /// `upstream_response_filter` on it.
    async fn filter_upstream_response(
        &mut self,
        resp: &mut ResponseHeader,
        tunnel: bool,
    ) -> Result<()> {
        let reframed = resp.headers.contains_key(header::TRANSFER_ENCODING);
        strip_hop_by_hop(&mut resp.headers, tunnel);
        if reframed {
            // A transfer-coded body has no trustworthy length.
            resp.headers.remove(header::CONTENT_LENGTH);
        }
        (self.phases)
            .upstream_response_filter(self.session, resp, self.ctx)
            .await
    }
}
