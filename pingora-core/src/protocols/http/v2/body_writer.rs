//! [`H2BodyWriter`]: the sending half of an HTTP/2 request body, taken out of its
//! [`H2ClientStream`](super::client::H2ClientStream) so that the body can be sent while
//! the response is read (an upstream may answer before it has read the whole body).

use std::time::Duration;

use bytes::Bytes;
use h2::SendStream;
use http::HeaderMap;

use super::flow;
use crate::error::{Result, Side};

/// Sends the rest of a request body on its own, under flow control.
pub struct H2BodyWriter {
    send: SendStream<Bytes>,
    timeout: Duration,
}

impl H2BodyWriter {
    pub(crate) fn new(send: SendStream<Bytes>, timeout: Duration) -> Self {
        H2BodyWriter { send, timeout }
    }

    /// Sends as much of `data` as the upstream's window allows, waiting (up to the
    /// write timeout) until it allows some; what was sent is taken off the front of
    /// `data`. Cancel-safe: if dropped while waiting, nothing was sent.
    pub async fn send_some(&mut self, data: &mut Bytes) -> Result<()> {
        flow::send_some(&mut self.send, data, self.timeout)
            .await
            .map_err(|e| flow::flow_error(Side::Upstream, "writing the request body", e))
    }

    /// Ends the body: with `trailers` when there are any, else END_STREAM.
    pub fn finish(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        flow::finish(&mut self.send, trailers)
            .map_err(|e| flow::flow_error(Side::Upstream, "ending the request body", e))
    }
}
