//! [`ExchangeHooks`]: how something that watches an exchange (the cache) attaches to
//! it, without the exchange knowing what it is.

use bytes::Bytes;
use http::HeaderMap;
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};

use crate::phases::ProxyHttp;
use crate::session::Session;

/// What the exchange does with the upstream response once its hooks saw the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterHead {
    /// Relay it to the client (the usual case).
    Relay,
    /// Do not: the client is answered by the hooks' owner once the exchange is over
    /// (for example from the cache after a `304`).
    AnsweredElsewhere,
}

/// Calls into an exchange at the request head, the response head and each piece of the
/// response body. Every method does nothing by default; `()` is the exchange without
/// hooks.
pub(crate) trait ExchangeHooks<P: ProxyHttp> {
    /// The request head about to be sent upstream (before `upstream_request_filter`).
    fn upstream_request(&mut self, _req: &mut RequestHeader) {}

    /// The upstream response head, after `upstream_response_filter`.
    fn response_head(
        &mut self,
        _phases: &P,
        _session: &Session,
        _ctx: &mut P::Ctx,
        _resp: &mut ResponseHeader,
    ) -> AfterHead {
        AfterHead::Relay
    }

    /// A piece of the upstream response body (always `Some` when called), before
    /// `response_body_filter`. The hooks see the whole piece and may replace what the
    /// client gets of it, or take it away (`None`), as a range answered in flight does.
    fn body(&mut self, _chunk: &mut Option<Bytes>) {}

    /// The upstream response body ended, with these trailers.
    fn body_end(&mut self, _trailers: Option<&HeaderMap>) {}
}

impl<P: ProxyHttp> ExchangeHooks<P> for () {}

impl<P: ProxyHttp, H: ExchangeHooks<P>> ExchangeHooks<P> for &mut H {
    fn upstream_request(&mut self, req: &mut RequestHeader) {
        (**self).upstream_request(req)
    }

    fn response_head(
        &mut self,
        phases: &P,
        session: &Session,
        ctx: &mut P::Ctx,
        resp: &mut ResponseHeader,
    ) -> AfterHead {
        (**self).response_head(phases, session, ctx, resp)
    }

    fn body(&mut self, chunk: &mut Option<Bytes>) {
        (**self).body(chunk)
    }

    fn body_end(&mut self, trailers: Option<&HeaderMap>) {
        (**self).body_end(trailers)
    }
}
