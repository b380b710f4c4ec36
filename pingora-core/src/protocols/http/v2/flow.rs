//! Moving body bytes through an HTTP/2 stream under flow control, shared by both sides.
//!
//! Sending waits for window the peer granted and sends at most that much, so a body is
//! never queued whole in memory; receiving hands out one DATA payload at a time and
//! gives the window back as soon as the payload is taken.

use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use http::HeaderMap;

use crate::error::{Error, ErrorKind, Side};

/// Most window asked for at once while sending one piece of body.
const MAX_RESERVE: usize = 1 << 20;

/// Why moving body bytes failed, before it is told apart per side.
#[derive(Debug)]
pub(crate) enum FlowError {
    /// The deadline passed while waiting for the peer.
    Timeout,
    /// The stream was closed or reset; the reason when the peer gave one.
    Closed(Option<Reason>),
    /// `h2` reported an error.
    H2(h2::Error),
}

/// Sends `data` on `send` in pieces no larger than the window granted, waiting up to
/// `timeout` each time for more window.
pub(crate) async fn send_data(
    send: &mut SendStream<Bytes>,
    data: &Bytes,
    timeout: Duration,
) -> Result<(), FlowError> {
    let mut rest = data.clone();
    while !rest.is_empty() {
        send_some(send, &mut rest, timeout).await?;
    }
    Ok(())
}

/// Sends as much of `data` as the window allows, waiting up to `timeout` until it
/// allows some; what was sent is taken off the front of `data`. Cancel-safe: if
/// dropped while waiting, nothing was sent.
pub(crate) async fn send_some(
    send: &mut SendStream<Bytes>,
    data: &mut Bytes,
    timeout: Duration,
) -> Result<(), FlowError> {
    if data.is_empty() {
        return Ok(());
    }
    send.reserve_capacity(data.len().min(MAX_RESERVE));
    let granted = tokio::time::timeout(timeout, wait_capacity(send))
        .await
        .map_err(|_| FlowError::Timeout)??;
    let piece = data.split_to(granted.min(data.len()));
    send.send_data(piece, false).map_err(FlowError::H2)
}

/// Waits until `send` has window (the amount granted), or the stream ends. Cancel-safe.
async fn wait_capacity(send: &mut SendStream<Bytes>) -> Result<usize, FlowError> {
    poll_fn(|cx| loop {
        let cap = send.capacity();
        if cap > 0 {
            return Poll::Ready(Ok(cap));
        }
        match send.poll_capacity(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(_))) => continue,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(FlowError::H2(e))),
            Poll::Ready(None) => {
                let reason = match send.poll_reset(cx) {
                    Poll::Ready(Ok(r)) => Some(r),
                    _ => None,
                };
                return Poll::Ready(Err(FlowError::Closed(reason)));
            }
        }
    })
    .await
}

/// Ends the stream: with `trailers` when there are any, else an empty DATA frame
/// flagged END_STREAM.
pub(crate) fn finish(
    send: &mut SendStream<Bytes>,
    trailers: Option<&HeaderMap>,
) -> Result<(), FlowError> {
    match trailers {
        Some(t) if !t.is_empty() => send
            .send_trailers(super::convert::trailers_to_h2(t))
            .map_err(FlowError::H2),
        _ => send.send_data(Bytes::new(), true).map_err(FlowError::H2),
    }
}

/// The next DATA payload of `body` (`None` at its end), waiting at most `timeout`.
/// The window it used is given back at once. Cancel-safe.
pub(crate) async fn recv_data(
    body: &mut RecvStream,
    timeout: Duration,
) -> Result<Option<Bytes>, FlowError> {
    loop {
        let next = tokio::time::timeout(timeout, poll_fn(|cx| body.poll_data(cx)))
            .await
            .map_err(|_| FlowError::Timeout)?;
        match next {
            None => return Ok(None),
            Some(Err(e)) => return Err(FlowError::H2(e)),
            Some(Ok(data)) => {
                // Giving the window back fails only if the stream is gone, which the
                // next read reports.
                let _ = body.flow_control().release_capacity(data.len());
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// The trailers of `body`, once its data was read to the end.
pub(crate) async fn recv_trailers(
    body: &mut RecvStream,
    timeout: Duration,
) -> Result<Option<HeaderMap>, FlowError> {
    tokio::time::timeout(timeout, poll_fn(|cx| body.poll_trailers(cx)))
        .await
        .map_err(|_| FlowError::Timeout)?
        .map_err(FlowError::H2)
}

/// A crate error for an `h2` error on `side`, classified: I/O errors as by
/// [`Error::from_io`], stream resets as `ConnectionReset`, GOAWAY as `ConnectionClosed`,
/// misuse as `Internal`.
pub(crate) fn h2_error(side: Side, context: &str, e: h2::Error) -> Error {
    if e.is_io() {
        return match e.into_io() {
            Some(io) => Error::from_io(side, context.to_string(), io),
            None => Error::new(ErrorKind::Io, side, context.to_string()),
        };
    }
    let kind = if e.is_go_away() {
        ErrorKind::ConnectionClosed
    } else if e.is_reset() || e.reason().is_some() {
        ErrorKind::ConnectionReset
    } else {
        // A user error: something this process asked h2 to do that it refused.
        return Error::because(ErrorKind::Internal, Side::Internal, context.to_string(), e);
    };
    Error::because(kind, side, context.to_string(), e)
}

/// A crate error for a failure while moving body bytes on `side`; `what` says which
/// way (`"reading the request body"`...).
pub(crate) fn flow_error(side: Side, what: &str, e: FlowError) -> Error {
    match e {
        FlowError::Timeout => {
            let kind = if what.starts_with("reading") {
                ErrorKind::ReadTimeout
            } else {
                ErrorKind::WriteTimeout
            };
            Error::new(kind, side, format!("{what}: timed out"))
        }
        FlowError::Closed(reason) => Error::new(
            ErrorKind::ConnectionReset,
            side,
            match reason {
                Some(r) => format!("{what}: the stream was reset ({r:?})"),
                None => format!("{what}: the stream was closed"),
            },
        ),
        FlowError::H2(e) => h2_error(side, what, e),
    }
}
