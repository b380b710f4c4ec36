//! Deciding how a message body is delimited (RFC 9112 §6), and connection semantics.

use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Version};

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

/// The framing of a request body (RFC 9112 §6): chunked, a length, or none
/// (`Content-Length: 0` is `Empty`). Rejects (as `InvalidHead`, side `Downstream`):
/// `Transfer-Encoding` with `Content-Length`, differing or malformed `Content-Length`
/// values, a `Transfer-Encoding` that does not end in `chunked` or names it twice, and
/// `Transfer-Encoding` on HTTP/1.0. A coding before `chunked` (`gzip, chunked`) is
/// `NotImplemented` (answer 501, RFC 9112 §6.1): the proxy re-frames bodies and would
/// forward the coded bytes as if they were plain.
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
            Some(true) if only_chunked(&req.headers) => Ok(BodyFraming::Chunked),
            Some(true) => Err(Error::new(
                ErrorKind::NotImplemented,
                side,
                "a transfer coding other than chunked",
            )),
            Some(false) => Err(invalid(side, "Transfer-Encoding does not end with chunked")),
            None => Err(invalid(side, "chunked applied more than once")),
        };
    }
    Ok(match cl {
        Some(0) | None => BodyFraming::Empty,
        Some(n) => BodyFraming::Length(n),
    })
}

/// The framing of a response body to a request with `req_method` (RFC 9112 §6.3):
/// none for HEAD, 1xx, 204 and 304; a tunnel (`UntilClose`) for a 2xx to CONNECT;
/// chunked when `Transfer-Encoding` ends in `chunked` (it wins over `Content-Length`),
/// close-delimited when it ends in another coding; then `Content-Length`; else
/// close-delimited. Errors (`InvalidHead`, side `Upstream`): a malformed or conflicting
/// `Content-Length`, or `chunked` applied twice.
pub fn response_framing(req_method: &Method, resp: &ResponseHeader) -> Result<BodyFraming> {
    let side = Side::Upstream;
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
        return match chunked_is_final(&resp.headers) {
            Some(true) => Ok(BodyFraming::Chunked),
            Some(false) => Ok(BodyFraming::UntilClose),
            None => Err(invalid(side, "chunked applied more than once")),
        };
    }
    Ok(match content_length(&resp.headers, side)? {
        Some(0) => BodyFraming::Empty,
        Some(n) => BodyFraming::Length(n),
        None => BodyFraming::UntilClose,
    })
}

/// The value of `Content-Length`: identical repeats (as headers or a comma list) collapse;
/// differing, empty, signed, non-decimal or overflowing values are an error.
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
/// Some(false) when it is not last or absent; None when it appears twice. Codings are
/// comma separated, across repeated headers; empty list elements are ignored.
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

/// Makes a request's framing fields say exactly `body`, whatever the client sent, so
/// the next hop frames the body as this proxy does: chunked (and close-delimited,
/// which a request cannot be) gets `Transfer-Encoding: chunked` and no
/// `Content-Length`; a length gets one `Content-Length` and no `Transfer-Encoding`;
/// no body gets no `Transfer-Encoding`, and `Content-Length: 0` only if the client
/// sent a `Content-Length` (an HTTP/2 client may send one, even several, with a
/// request that has no body).
pub fn set_request_framing_headers(headers: &mut HeaderMap, body: BodyFraming) {
    match body {
        BodyFraming::Chunked | BodyFraming::UntilClose => {
            headers.remove(header::CONTENT_LENGTH);
            headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
        BodyFraming::Length(n) => {
            headers.remove(header::TRANSFER_ENCODING);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        BodyFraming::Empty => {
            headers.remove(header::TRANSFER_ENCODING);
            if headers.contains_key(header::CONTENT_LENGTH) {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            }
        }
    }
}

/// Whether `chunked` is the only transfer coding named (empty list elements aside).
fn only_chunked(headers: &HeaderMap) -> bool {
    headers.get_all(header::TRANSFER_ENCODING).iter().all(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .all(|c| c.is_empty() || c.eq_ignore_ascii_case(b"chunked"))
    })
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

/// The protocol an upgrade request asks for: the first token of its `Upgrade` field
/// (`websocket`), if it has one.
pub fn upgrade_protocol(req: &RequestHeader) -> Option<&str> {
    let upgrade = req.headers.get(header::UPGRADE)?.to_str().ok()?;
    let first = upgrade.split(',').next()?.trim();
    (!first.is_empty()).then_some(first)
}

fn invalid(side: Side, msg: &str) -> Error {
    Error::new(ErrorKind::InvalidHead, side, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::http::v1::{parse_request, HeadLimits};
    use bytes::BytesMut;

    #[test]
    fn framing_headers_say_exactly_the_proxys_framing() {
        let framing_of = |pairs: &[(&str, &str)], body| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.append(
                    http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            set_request_framing_headers(&mut h, body);
            let all = |name| {
                h.get_all(name)
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            };
            (all(header::CONTENT_LENGTH), all(header::TRANSFER_ENCODING))
        };
        // Found by fuzzing the HTTP/2 -> HTTP/1 path: a body-less HTTP/2 request with
        // `content-length: 0` and `content-length: 5` went upstream with both.
        let conflicting = [("content-length", "0"), ("content-length", "5")];
        assert_eq!(
            framing_of(&conflicting, BodyFraming::Empty),
            (vec!["0".into()], vec![])
        );
        assert_eq!(framing_of(&[], BodyFraming::Empty), (vec![], vec![]));
        assert_eq!(
            framing_of(&[("transfer-encoding", "gzip")], BodyFraming::Length(3)),
            (vec!["3".into()], vec![])
        );
        assert_eq!(
            framing_of(&conflicting, BodyFraming::Chunked),
            (vec![], vec!["chunked".into()])
        );
    }

    fn request(version: &str, head: &str) -> RequestHeader {
        let raw = format!("POST / {version}\r\nHost: x\r\n{head}\r\n");
        parse_request(&mut BytesMut::from(raw.as_bytes()), &HeadLimits::default())
            .unwrap()
            .unwrap()
    }

    fn framing(head: &str) -> Result<BodyFraming> {
        request_framing(&request("HTTP/1.1", head))
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::new(StatusCode::from_u16(status).unwrap());
        for (n, v) in headers {
            r.headers.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        r
    }

    #[test]
    fn request_framings() {
        let ok = [
            ("", BodyFraming::Empty),
            ("Content-Length: 0\r\n", BodyFraming::Empty),
            ("Content-Length: 5\r\n", BodyFraming::Length(5)),
            ("Content-Length: 007\r\n", BodyFraming::Length(7)),
            ("Content-Length: 5, 5\r\n", BodyFraming::Length(5)),
            (
                "Content-Length: 5\r\nContent-Length: 5\r\n",
                BodyFraming::Length(5),
            ),
            (
                "Content-Length: 18446744073709551615\r\n",
                BodyFraming::Length(u64::MAX),
            ),
            ("Transfer-Encoding: chunked\r\n", BodyFraming::Chunked),
            ("Transfer-Encoding: CHUNKED\r\n", BodyFraming::Chunked),
            ("Transfer-Encoding: , chunked\r\n", BodyFraming::Chunked),
        ];
        for (head, want) in ok {
            assert_eq!(framing(head).unwrap(), want, "{head}");
        }
    }

    #[test]
    fn codings_before_chunked_are_not_implemented() {
        // The proxy re-frames request bodies: forwarding `gzip, chunked` as `chunked`
        // would hand the origin gzip bytes as if they were the body (the smuggling
        // corpus's te-gzip-chunked and te-identity-chunked cases).
        for head in [
            "Transfer-Encoding: gzip, chunked\r\n",
            "Transfer-Encoding: identity, chunked\r\n",
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        ] {
            assert_eq!(
                framing(head).unwrap_err().kind,
                ErrorKind::NotImplemented,
                "{head}"
            );
        }
    }

    #[test]
    fn request_framing_errors() {
        for bad in [
            "Content-Length: 5, 6\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 5,\r\n",
            "Content-Length:\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 0x10\r\n",
            "Content-Length: 5 5\r\n",
            "Content-Length: 1e3\r\n",
            "Content-Length: 18446744073709551616\r\n",
            "Content-Length: 99999999999999999999999\r\n",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
            "Transfer-Encoding: chunked, gzip\r\n",
            "Transfer-Encoding: chunked, chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: gzip\r\n",
            "Transfer-Encoding: identity\r\n",
            "Transfer-Encoding: \r\n",
            "Transfer-Encoding: xchunked\r\n",
        ] {
            let err = framing(bad).unwrap_err();
            assert_eq!(
                (err.kind, err.side),
                (ErrorKind::InvalidHead, Side::Downstream),
                "{bad}"
            );
        }
    }

    #[test]
    fn transfer_encoding_needs_http11() {
        let r = request("HTTP/1.0", "Transfer-Encoding: chunked\r\n");
        assert_eq!(
            request_framing(&r).unwrap_err().kind,
            ErrorKind::InvalidHead
        );
        let r = request("HTTP/1.0", "Content-Length: 3\r\n");
        assert_eq!(request_framing(&r).unwrap(), BodyFraming::Length(3));
    }

    #[test]
    fn responses_without_a_body() {
        let chunked = [("transfer-encoding", "chunked")];
        let sized = [("content-length", "10")];
        for status in [100, 101, 103, 199, 204, 304] {
            for headers in [&chunked[..], &sized[..], &[]] {
                let r = response(status, headers);
                assert_eq!(
                    response_framing(&Method::GET, &r).unwrap(),
                    BodyFraming::Empty,
                    "{status}"
                );
            }
        }
        for headers in [&chunked[..], &sized[..], &[]] {
            let r = response(200, headers);
            assert_eq!(
                response_framing(&Method::HEAD, &r).unwrap(),
                BodyFraming::Empty
            );
        }
    }

    #[test]
    fn response_framings() {
        let get = Method::GET;
        type Case<'a> = (u16, &'a [(&'a str, &'a str)], BodyFraming);
        let cases: &[Case<'_>] = &[
            (200, &[], BodyFraming::UntilClose),
            (200, &[("content-length", "10")], BodyFraming::Length(10)),
            (200, &[("content-length", "0")], BodyFraming::Empty),
            (200, &[("content-length", "3, 3")], BodyFraming::Length(3)),
            (
                200,
                &[("transfer-encoding", "chunked")],
                BodyFraming::Chunked,
            ),
            (
                200,
                &[("transfer-encoding", "chunked"), ("content-length", "4")],
                BodyFraming::Chunked,
            ),
            (
                200,
                &[("transfer-encoding", "gzip")],
                BodyFraming::UntilClose,
            ),
            (
                200,
                &[("transfer-encoding", "chunked, gzip")],
                BodyFraming::UntilClose,
            ),
            (404, &[("content-length", "2")], BodyFraming::Length(2)),
            (500, &[], BodyFraming::UntilClose),
        ];
        for (status, headers, want) in cases {
            let r = response(*status, headers);
            assert_eq!(response_framing(&get, &r).unwrap(), *want, "{headers:?}");
        }
    }

    #[test]
    fn connect_responses() {
        let tunnel = response(200, &[("content-length", "5")]);
        assert_eq!(
            response_framing(&Method::CONNECT, &tunnel).unwrap(),
            BodyFraming::UntilClose
        );
        let refused = response(407, &[("content-length", "5")]);
        assert_eq!(
            response_framing(&Method::CONNECT, &refused).unwrap(),
            BodyFraming::Length(5)
        );
    }

    #[test]
    fn response_framing_errors() {
        for headers in [
            &[("content-length", "5, 6")][..],
            &[("content-length", "5"), ("content-length", "6")],
            &[("content-length", "abc")],
            &[("transfer-encoding", "chunked, chunked")],
        ] {
            let err = response_framing(&Method::GET, &response(200, headers)).unwrap_err();
            assert_eq!(
                (err.kind, err.side),
                (ErrorKind::InvalidHead, Side::Upstream),
                "{headers:?}"
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
        assert!(connection_has_token(&h, "keep-alive"));
        h.insert(header::CONNECTION, "foo, Close".parse().unwrap());
        assert!(!wants_keepalive(Version::HTTP_11, &h));
        assert!(connection_has_token(&h, "foo"));
        assert!(!connection_has_token(&h, "fo"));
        h.append(header::CONNECTION, "upgrade".parse().unwrap());
        assert!(connection_has_token(&h, "UPGRADE"));
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, close".parse().unwrap());
        assert!(!wants_keepalive(Version::HTTP_10, &h));
    }

    #[test]
    fn expect_continue() {
        let r = request("HTTP/1.1", "Expect: 100-Continue\r\nContent-Length: 1\r\n");
        assert!(expects_continue(&r));
        let r = request("HTTP/1.0", "Expect: 100-continue\r\n");
        assert!(!expects_continue(&r));
        let r = request("HTTP/1.1", "Expect: something-else\r\n");
        assert!(!expects_continue(&r));
        let r = request("HTTP/1.1", "");
        assert!(!expects_continue(&r));
    }

    #[test]
    fn upgrade_requests() {
        let r = request(
            "HTTP/1.1",
            "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n",
        );
        assert!(is_upgrade_request(&r));
        let r = request("HTTP/1.1", "Upgrade: websocket\r\n");
        assert!(!is_upgrade_request(&r));
        let r = request("HTTP/1.1", "Connection: upgrade\r\n");
        assert!(!is_upgrade_request(&r));
        let r = request("HTTP/1.0", "Connection: upgrade\r\nUpgrade: websocket\r\n");
        assert!(!is_upgrade_request(&r));
    }
}
