//! Deciding how a message body is delimited (RFC 9112 §6), and connection semantics.

use http::{header, HeaderMap, Method, StatusCode, Version};

use crate::error::{Error, ErrorKind, Result, Side};
use crate::protocols::http::{RequestHeader, ResponseHeader};

/// How a message body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// The framing of a request body. Rejects (as `InvalidHead`): `Transfer-Encoding` with
/// `Content-Length`, differing or malformed `Content-Length` values, a
/// `Transfer-Encoding` that does not end in `chunked` or names it twice, and
/// `Transfer-Encoding` on HTTP/1.0.
pub fn request_framing(req: &RequestHeader) -> Result<BodyFraming> {
    let side = Side::Downstream;
    let cl = content_length(&req.headers, side)?;
    if req.headers.contains_key(header::TRANSFER_ENCODING) {
        if req.version == Version::HTTP_10 {
            return Err(invalid(side, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        if cl.is_some() {
            return Err(invalid(side, "both Content-Length and Transfer-Encoding"));
        }
        return match chunked_is_final(&req.headers) {
            Some(true) => Ok(BodyFraming::Chunked),
            Some(false) => Err(invalid(side, "Transfer-Encoding does not end with chunked")),
            None => Err(invalid(side, "chunked applied more than once")),
        };
    }
    Ok(match cl {
        Some(0) | None => BodyFraming::Empty,
        Some(n) => BodyFraming::Length(n),
    })
}

/// The framing of a response body to a request with `req_method`.
pub fn response_framing(req_method: &Method, resp: &ResponseHeader) -> Result<BodyFraming> {
    let status = resp.status;
    if req_method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(BodyFraming::Empty);
    }
    if req_method == Method::CONNECT && status.is_success() {
        return Ok(BodyFraming::UntilClose);
    }
    if resp.headers.contains_key(header::TRANSFER_ENCODING) {
        return Ok(match chunked_is_final(&resp.headers) {
            Some(true) => BodyFraming::Chunked,
            _ => BodyFraming::UntilClose,
        });
    }
    Ok(match content_length(&resp.headers, Side::Upstream)? {
        Some(0) => BodyFraming::Empty,
        Some(n) => BodyFraming::Length(n),
        None => BodyFraming::UntilClose,
    })
}

/// The value of `Content-Length`: identical repeats (as headers or a comma list) collapse;
/// differing or non-numeric values are an error.
fn content_length(headers: &HeaderMap, side: Side) -> Result<Option<u64>> {
    let mut found: Option<u64> = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(invalid(side, "malformed Content-Length"));
            }
            let n = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| invalid(side, "Content-Length out of range"))?;
            match found {
                Some(prev) if prev != n => {
                    return Err(invalid(side, "differing Content-Length values"))
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// Some(true) when the last transfer coding is `chunked` (and only the last);
/// Some(false) when it is not last or absent; None when it appears twice.
fn chunked_is_final(headers: &HeaderMap) -> Option<bool> {
    let mut chunked_seen = 0;
    let mut last_is_chunked = false;
    for v in headers.get_all(header::TRANSFER_ENCODING) {
        for coding in v.as_bytes().split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            if coding.is_empty() {
                continue;
            }
            last_is_chunked = coding.eq_ignore_ascii_case(b"chunked");
            if last_is_chunked {
                chunked_seen += 1;
            }
        }
    }
    if chunked_seen > 1 {
        None
    } else {
        Some(last_is_chunked)
    }
}

/// Whether the connection may stay open after this message: HTTP/1.1 unless
/// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
pub fn wants_keepalive(version: Version, headers: &HeaderMap) -> bool {
    if connection_has_token(headers, "close") {
        return false;
    }
    version == Version::HTTP_11 || connection_has_token(headers, "keep-alive")
}

/// Whether `Connection` lists `token` (case-insensitive, across repeated headers).
pub fn connection_has_token(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Whether the request asks for `Expect: 100-continue`.
pub fn expects_continue(req: &RequestHeader) -> bool {
    req.version == Version::HTTP_11
        && req
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Whether the request asks to switch protocols (`Connection: upgrade` and `Upgrade`).
pub fn is_upgrade_request(req: &RequestHeader) -> bool {
    req.version == Version::HTTP_11
        && req.headers.contains_key(header::UPGRADE)
        && connection_has_token(&req.headers, "upgrade")
}

fn invalid(side: Side, msg: &str) -> Error {
    Error::new(ErrorKind::InvalidHead, side, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::http::v1::{parse_request, HeadLimits};
    use bytes::BytesMut;

    fn framing(head: &str) -> Result<BodyFraming> {
        let raw = format!("POST / HTTP/1.1\r\nHost: x\r\n{head}\r\n");
        let req = parse_request(&mut BytesMut::from(raw.as_bytes()), &HeadLimits::default())
            .unwrap()
            .unwrap();
        request_framing(&req)
    }

    #[test]
    fn request_rules() {
        assert_eq!(framing("").unwrap(), BodyFraming::Empty);
        assert_eq!(
            framing("Content-Length: 5\r\n").unwrap(),
            BodyFraming::Length(5)
        );
        assert_eq!(
            framing("Content-Length: 5, 5\r\n").unwrap(),
            BodyFraming::Length(5)
        );
        assert_eq!(
            framing("Content-Length: 5\r\nContent-Length: 5\r\n").unwrap(),
            BodyFraming::Length(5)
        );
        assert_eq!(
            framing("Transfer-Encoding: chunked\r\n").unwrap(),
            BodyFraming::Chunked
        );
        assert_eq!(
            framing("Transfer-Encoding: gzip, chunked\r\n").unwrap(),
            BodyFraming::Chunked
        );
        for bad in [
            "Content-Length: 5, 6\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 0x10\r\n",
            "Content-Length: 99999999999999999999999\r\n",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked, gzip\r\n",
            "Transfer-Encoding: chunked, chunked\r\n",
            "Transfer-Encoding: gzip\r\n",
        ] {
            assert_eq!(
                framing(bad).unwrap_err().kind,
                ErrorKind::InvalidHead,
                "{bad}"
            );
        }
    }

    #[test]
    fn response_rules() {
        let mut r = ResponseHeader::new(StatusCode::OK);
        assert_eq!(
            response_framing(&Method::GET, &r).unwrap(),
            BodyFraming::UntilClose
        );
        r.headers
            .insert(header::CONTENT_LENGTH, "10".parse().unwrap());
        assert_eq!(
            response_framing(&Method::GET, &r).unwrap(),
            BodyFraming::Length(10)
        );
        assert_eq!(
            response_framing(&Method::HEAD, &r).unwrap(),
            BodyFraming::Empty
        );
        r.headers
            .insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        assert_eq!(
            response_framing(&Method::GET, &r).unwrap(),
            BodyFraming::Chunked
        );
        for s in [204, 304, 103] {
            let r = ResponseHeader::new(StatusCode::from_u16(s).unwrap());
            assert_eq!(
                response_framing(&Method::GET, &r).unwrap(),
                BodyFraming::Empty
            );
        }
    }

    #[test]
    fn connection_tokens() {
        let mut h = HeaderMap::new();
        assert!(wants_keepalive(Version::HTTP_11, &h));
        assert!(!wants_keepalive(Version::HTTP_10, &h));
        h.insert(header::CONNECTION, "Keep-Alive".parse().unwrap());
        assert!(wants_keepalive(Version::HTTP_10, &h));
        h.insert(header::CONNECTION, "foo, Close".parse().unwrap());
        assert!(!wants_keepalive(Version::HTTP_11, &h));
    }
}
