//! [`Session`]: one client request as the proxy phases see it.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use pingora_core::protocols::http::{RequestHeader, ResponseHeader, ServerSession};
use pingora_core::protocols::tls::ClientCertInfo;
use pingora_core::protocols::ClientAddr;
use pingora_core::Error;

use crate::status;

/// The client connection and what is known about its current request.
pub struct Session {
    /// The client side of the request (an HTTP/1.x connection or an HTTP/2 stream).
    pub downstream: ServerSession,
    client_cert: Option<Arc<ClientCertInfo>>,
    started: Instant,
    upstream_status: Option<StatusCode>,
    upstream_addr: Option<String>,
    upstream_reused: Option<bool>,
    upstream_attempts: usize,
}

impl Session {
    pub(crate) fn new(downstream: ServerSession, client_cert: Option<Arc<ClientCertInfo>>) -> Self {
        Session {
            downstream,
            client_cert,
            started: Instant::now(),
            upstream_status: None,
            upstream_addr: None,
            upstream_reused: None,
            upstream_attempts: 0,
        }
    }

    pub(crate) fn into_downstream(self) -> ServerSession {
        self.downstream
    }

    pub(crate) fn begin_request(&mut self) {
        self.started = Instant::now();
        self.upstream_status = None;
        self.upstream_addr = None;
        self.upstream_reused = None;
        self.upstream_attempts = 0;
    }

    /// The request head as the client sent it.
    pub fn req_header(&self) -> &RequestHeader {
        self.downstream.req_header()
    }

    /// The request head, to change before it is proxied.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        self.downstream.req_header_mut()
    }

    /// The client's address.
    pub fn client_addr(&self) -> &ClientAddr {
        self.downstream.peer()
    }

    /// What the client's TLS certificate showed, on a listener that asks for one
    /// (`None` on plain connections and TLS listeners without client certificates).
    pub fn client_cert(&self) -> Option<&ClientCertInfo> {
        self.client_cert.as_deref()
    }

    /// Whether the client connected from loopback (127.0.0.0/8, ::1, or an IPv4-mapped
    /// loopback address). Unix-socket clients are not.
    pub fn client_is_loopback(&self) -> bool {
        self.client_addr().ip().is_some_and(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback(),
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        })
    }

    /// When the current request head was read.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The status the upstream answered with, once it did.
    pub fn upstream_status(&self) -> Option<StatusCode> {
        self.upstream_status
    }

    /// The upstream address the request went to, once chosen.
    pub fn upstream_addr(&self) -> Option<&str> {
        self.upstream_addr.as_deref()
    }

    pub(crate) fn set_upstream(&mut self, addr: String) {
        self.upstream_addr = Some(addr);
    }

    /// Whether the upstream connection of the last attempt came from the keep-alive
    /// pool (`Some(true)`) or was opened for it (`Some(false)`); `None` if none was used.
    pub fn upstream_reused(&self) -> Option<bool> {
        self.upstream_reused
    }

    pub(crate) fn set_upstream_reused(&mut self, reused: bool) {
        self.upstream_reused = Some(reused);
    }

    /// How many upstream attempts the request took so far (connections asked for,
    /// pooled or new; retries included); 0 if it never went upstream.
    pub fn upstream_attempts(&self) -> usize {
        self.upstream_attempts
    }

    pub(crate) fn set_upstream_attempts(&mut self, attempts: usize) {
        self.upstream_attempts = attempts;
    }

    pub(crate) fn set_upstream_status(&mut self, status: StatusCode) {
        self.upstream_status = Some(status);
    }

    /// The status sent to the client, once a response head was written.
    pub fn response_status(&self) -> Option<StatusCode> {
        self.downstream.response_status()
    }

    /// Answers the request with a complete small response.
    pub async fn respond(
        &mut self,
        status: StatusCode,
        content_type: &str,
        body: Bytes,
    ) -> pingora_core::Result<()> {
        self.downstream.respond(status, content_type, body).await
    }

    /// Answers with a full response head and body (the head's framing headers are set
    /// from the body length).
    pub async fn respond_with(
        &mut self,
        mut head: ResponseHeader,
        body: Bytes,
    ) -> pingora_core::Result<()> {
        head.headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(body.len()),
        );
        self.downstream.write_response_header(&mut head).await?;
        self.downstream.write_body(&body).await?;
        self.downstream.finish_response(None).await
    }

    /// Answers with the status [`status::for_error`] maps `error` to, unless a response
    /// was already started; returns the status sent, or 0.
    pub async fn respond_error_for(&mut self, error: &Error) -> u16 {
        if self.downstream.response_started() {
            return 0;
        }
        let status = status::for_error(error);
        match self.downstream.respond_error(status).await {
            Ok(()) => status.as_u16(),
            Err(_) => 0,
        }
    }
}
