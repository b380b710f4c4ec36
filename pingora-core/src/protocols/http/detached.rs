//! [`DetachedRequest`]: a request the proxy makes on its own behalf, with no client
//! waiting for the answer (for example a background cache refresh).

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::v1::BodyFraming;
use super::{RequestHeader, ResponseHeader};
use crate::error::Result;
use crate::protocols::{ClientAddr, ConnectionInfo};

/// The client side of a request nobody waits for: it has a head and no body, and the
/// response written to it is counted and dropped.
pub struct DetachedRequest {
    req: RequestHeader,
    conn: ConnectionInfo,
    status: Option<StatusCode>,
    body_bytes_sent: u64,
}

impl DetachedRequest {
    /// A request with head `req`, made on behalf of the client at `peer`.
    pub fn new(req: RequestHeader, conn: impl Into<ConnectionInfo>) -> Self {
        DetachedRequest {
            req,
            conn: conn.into(),
            status: None,
            body_bytes_sent: 0,
        }
    }

    /// The address of the client the request is made for.
    pub fn peer(&self) -> &ClientAddr {
        self.conn.client()
    }

    /// The connection of the client the request is made for.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.conn
    }

    /// The request head.
    pub fn req_header(&self) -> &RequestHeader {
        &self.req
    }

    /// The request head, to edit in place.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.req
    }

    /// Always [`BodyFraming::Empty`]: a detached request has no body.
    pub fn req_body_framing(&self) -> BodyFraming {
        BodyFraming::Empty
    }

    /// Does nothing: nobody waits for `100 Continue`.
    pub async fn send_continue(&mut self) -> Result<()> {
        Ok(())
    }

    /// Always the end of the (empty) body.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        Ok(None)
    }

    /// None: there is no request body.
    pub fn req_trailers(&self) -> Option<&HeaderMap> {
        None
    }

    /// Does nothing: there is no connection.
    pub fn set_keepalive(&mut self, _keepalive: bool) {}

    /// Records the final status; interim heads are dropped.
    pub async fn write_response_header(&mut self, resp: &mut ResponseHeader) -> Result<()> {
        if !resp.status.is_informational() {
            self.status = Some(resp.status);
        }
        Ok(())
    }

    /// The status of the response, once one was written.
    pub fn response_status(&self) -> Option<StatusCode> {
        self.status
    }

    /// Whether a final response head was written.
    pub fn response_started(&self) -> bool {
        self.status.is_some()
    }

    /// Counts and drops a piece of the response body.
    pub async fn write_body(&mut self, data: &Bytes) -> Result<()> {
        self.body_bytes_sent += data.len() as u64;
        Ok(())
    }

    /// Does nothing: the response is complete.
    pub async fn finish_response(&mut self, _trailers: Option<&HeaderMap>) -> Result<()> {
        Ok(())
    }

    /// Does nothing.
    pub async fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Records `status` as the answer.
    pub async fn respond(&mut self, status: StatusCode, _ct: &str, body: Bytes) -> Result<()> {
        self.status = Some(status);
        self.body_bytes_sent += body.len() as u64;
        Ok(())
    }

    /// Records `status` as the answer.
    pub async fn respond_error(&mut self, status: StatusCode) -> Result<()> {
        self.status = Some(status);
        Ok(())
    }

    /// Body bytes received (none) and dropped.
    pub fn body_bytes(&self) -> (u64, u64) {
        (0, self.body_bytes_sent)
    }
}
