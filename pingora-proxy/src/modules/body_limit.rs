//! [`BodyLimit`]: the largest request body accepted. A declared length beyond it is
//! refused before any body is read; a body that grows beyond it (chunked, HTTP/2) is cut
//! before the excess is forwarded.

use bytes::Bytes;
use http::header;
use pingora_core::protocols::http::RequestHeader;
use pingora_core::{Error, ErrorKind, Result, Side};

/// A request body limit in bytes. Its errors have [`ErrorKind::BodyTooLarge`], which
/// the default [`crate::ProxyHttp::fail_to_proxy`] answers with `413`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit {
    max: u64,
}

impl BodyLimit {
    /// At most `max` bytes of request body.
    pub fn new(max: u64) -> Self {
        BodyLimit { max }
    }

    /// The limit in bytes.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Refuses a request whose `Content-Length` is larger than the limit (call it in
    /// `request_filter`, then answer `413` without reading the body).
    pub fn check_head(&self, req: &RequestHeader) -> Result<()> {
        let declared = req
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match declared {
            Some(len) if len > self.max => Err(self.too_large(len)),
            _ => Ok(()),
        }
    }

    /// Counts one piece of body (call it in `request_body_filter` with the request's
    /// [`BodyCount`]): an error, and the piece dropped, once the body passes the limit.
    pub fn count(&self, seen: &mut BodyCount, chunk: &mut Option<Bytes>) -> Result<()> {
        let len = chunk.as_ref().map_or(0, |c| c.len() as u64);
        seen.0 = seen.0.saturating_add(len);
        if seen.0 > self.max {
            // Nothing past the limit goes upstream.
            *chunk = None;
            return Err(self.too_large(seen.0));
        }
        Ok(())
    }

    fn too_large(&self, len: u64) -> Error {
        Error::new(
            ErrorKind::BodyTooLarge,
            Side::Downstream,
            format!(
                "request body of at least {len} bytes is over the limit of {} bytes",
                self.max
            ),
        )
    }
}

/// Request body bytes seen so far (per request state for [`BodyLimit::count`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyCount(pub u64);

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method};

    #[test]
    fn declared_and_streamed() {
        let limit = BodyLimit::new(10);
        let mut req = RequestHeader::new(Method::POST, "/".parse().unwrap());
        req.headers
            .insert("content-length", HeaderValue::from_static("11"));
        let e = limit.check_head(&req).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BodyTooLarge);
        assert_eq!(crate::status::for_error(&e), 413);
        req.headers
            .insert("content-length", HeaderValue::from_static("10"));
        assert!(limit.check_head(&req).is_ok());

        let mut seen = BodyCount::default();
        let mut chunk = Some(Bytes::from_static(b"123456"));
        assert!(limit.count(&mut seen, &mut chunk).is_ok());
        assert!(chunk.is_some());
        let mut chunk = Some(Bytes::from_static(b"12345"));
        assert!(limit.count(&mut seen, &mut chunk).is_err());
        assert!(chunk.is_none(), "the piece over the limit is not forwarded");
    }
}
