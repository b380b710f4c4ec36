//! [`RequestBodyPump`]: moves the request body from the client to the upstream while
//! the response is awaited and relayed, the same way for both HTTP versions upstream.
//!
//! The exchange races [`RequestBodyPump::ready`] against the upstream's response (its
//! head, then its body) and hands whatever it reports to [`RequestBodyPump::handle`].
//! Towards HTTP/1.x each piece is written at once; towards HTTP/2 it is left pending and
//! sent piece by piece as the stream's window allows, so that a full window never
//! keeps the response from being read.

use bytes::Bytes;
use pingora_core::protocols::http::v1::BodyFraming;
use pingora_core::protocols::http::v2::H2BodyWriter;
use pingora_core::protocols::http::{ClientSession, ServerSession};
use pingora_core::Result;

use crate::phases::ProxyHttp;
use crate::session::Session;

/// What the pump has to do next, as reported by [`RequestBodyPump::ready`].
pub(super) enum PumpEvent {
    /// A piece of body from the client (`None`: its end).
    Piece(Option<Bytes>),
    /// (HTTP/2) Part of the pending piece went out, or sending it failed.
    Sent(Result<()>),
}

/// The request body on its way upstream.
pub(super) struct RequestBodyPump {
    /// Towards HTTP/2: the stream's body writer and what waits for window.
    h2: Option<H2BodyOut>,
    /// The whole body was sent (or there is none, or sending stopped).
    done: bool,
    /// Some of the body was taken from the client: the request cannot be sent again.
    started: bool,
}

impl RequestBodyPump {
    /// The pump for a request body framed as `framing`.
    pub(super) fn new(framing: BodyFraming) -> Self {
        RequestBodyPump {
            h2: None,
            done: framing == BodyFraming::Empty,
            started: false,
        }
    }

    /// Sends through `up` from now on: once its request head is written, an HTTP/2
    /// upstream hands over the stream's body writer.
    pub(super) fn attach(&mut self, up: &mut ClientSession) {
        if !self.done {
            self.h2 = up.take_body_writer().map(H2BodyOut::new);
        }
    }

    /// Whether the whole body was sent (or there is none).
    pub(super) fn is_done(&self) -> bool {
        self.done
    }

    /// Whether any of the body was taken from the client.
    pub(super) fn started(&self) -> bool {
        self.started
    }

    /// Stops sending (the upstream stopped reading): nothing more is taken from the
    /// client or sent.
    pub(super) fn stop(&mut self) {
        self.done = true;
        if let Some(out) = self.h2.as_mut() {
            out.pending = Bytes::new();
        }
    }

    /// Waits until there is work: a piece of body from the client (when the pump can
    /// take one), or some of the pending piece sent (HTTP/2). Never completes once the
    /// body is sent. Cancel-safe once `send_continue` was called on the client side.
    pub(super) async fn ready(&mut self, downstream: &mut ServerSession) -> Result<PumpEvent> {
        let can_take = !self.done && self.h2.as_ref().is_none_or(H2BodyOut::can_take);
        let has_pending = self.h2.as_ref().is_some_and(|o| !o.pending.is_empty());
        tokio::select! {
            biased;
            r = downstream.read_body(), if can_take => {
                self.started = true;
                Ok(PumpEvent::Piece(r?))
            }
            r = H2BodyOut::send(&mut self.h2), if has_pending => Ok(PumpEvent::Sent(r)),
            else => std::future::pending().await,
        }
    }

    /// Does what `event` calls for: runs `request_body_filter` on a new piece and sends
    /// it (HTTP/1.x: at once, HTTP/2: as the window allows), and ends the body upstream
    /// (with the client's trailers) once all of it went out.
    pub(super) async fn handle<P: ProxyHttp>(
        &mut self,
        event: PumpEvent,
        phases: &P,
        session: &mut Session,
        ctx: &mut P::Ctx,
        up: &mut ClientSession,
    ) -> Result<()> {
        let mut chunk = match event {
            PumpEvent::Piece(chunk) => chunk,
            PumpEvent::Sent(sent) => {
                sent?;
                return self.finish_h2(&session.downstream);
            }
        };
        let end = chunk.is_none();
        phases
            .request_body_filter(session, &mut chunk, end, ctx)
            .await?;
        match self.h2.as_mut() {
            Some(out) => {
                if let Some(data) = chunk {
                    out.pending = data;
                }
                out.ended = end;
                self.finish_h2(&session.downstream)
            }
            None => {
                if let Some(data) = chunk {
                    up.write_body(&data).await?;
                }
                if end {
                    let trailers = session.downstream.req_trailers().cloned();
                    up.finish_body(trailers.as_ref()).await?;
                    self.done = true;
                }
                Ok(())
            }
        }
    }

    /// (HTTP/2) Ends the stream's body once the client's ended and all of it was sent.
    fn finish_h2(&mut self, downstream: &ServerSession) -> Result<()> {
        if let Some(out) = self.h2.as_mut() {
            if out.ended && out.pending.is_empty() && !self.done {
                out.writer.finish(downstream.req_trailers())?;
                self.done = true;
            }
        }
        Ok(())
    }
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

    /// Whether another piece may be taken from the client.
    fn can_take(&self) -> bool {
        self.pending.is_empty() && !self.ended
    }

    /// Sends what the window allows of the pending piece. Cancel-safe.
    async fn send(out: &mut Option<H2BodyOut>) -> Result<()> {
        match out {
            Some(o) => o.writer.send_some(&mut o.pending).await,
            None => std::future::pending().await,
        }
    }
}
