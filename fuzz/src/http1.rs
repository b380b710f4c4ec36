//! HTTP/1 heads and bodies: strict parsing, incremental consistency, and that what the
//! proxy writes back out parses to the same thing with the same framing.

use bytes::{BufMut, Bytes, BytesMut};
use http::Method;
use pingora_core::protocols::http::header::is_forbidden_trailer;
use pingora_core::protocols::http::v1::{
    parse_request, parse_response, request_framing, response_framing, write_request_head,
    write_response_head, BodyDecoder, BodyEncoder, BodyEvent, BodyFraming, HeadLimits,
};
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};
use pingora_core::Result;

use crate::split_at;

/// The outcome of parsing one head: `None` = needs more, else the head and the bytes
/// it left in the buffer.
type Parsed<H> = Result<Option<(H, Bytes)>>;

fn parse_whole<H>(
    data: &[u8],
    parse: fn(&mut BytesMut, &HeadLimits) -> Result<Option<H>>,
) -> Parsed<H> {
    let mut buf = BytesMut::from(data);
    let head = parse(&mut buf, &HeadLimits::default())?;
    Ok(head.map(|h| (h, buf.freeze())))
}

/// Parses `data` delivered in two reads (split at `at`), as a socket would.
fn parse_in_two<H>(
    data: &[u8],
    at: usize,
    parse: fn(&mut BytesMut, &HeadLimits) -> Result<Option<H>>,
) -> Parsed<H> {
    let limits = HeadLimits::default();
    let mut buf = BytesMut::from(&data[..at]);
    if let Some(h) = parse(&mut buf, &limits)? {
        buf.extend_from_slice(&data[at..]);
        return Ok(Some((h, buf.freeze())));
    }
    buf.extend_from_slice(&data[at..]);
    let head = parse(&mut buf, &limits)?;
    Ok(head.map(|h| (h, buf.freeze())))
}

fn same_request(a: &RequestHeader, b: &RequestHeader) -> bool {
    a.method == b.method && a.uri == b.uri && a.version == b.version && a.headers == b.headers
}

fn same_response(a: &ResponseHeader, b: &ResponseHeader) -> bool {
    a.status == b.status && a.version == b.version && a.headers == b.headers
}

fn agree<H>(whole: &Parsed<H>, split: &Parsed<H>, same: fn(&H, &H) -> bool) {
    match (whole, split) {
        (Ok(Some((a, rest_a))), Ok(Some((b, rest_b)))) => {
            assert!(same(a, b), "the same bytes in two reads gave another head");
            assert_eq!(rest_a, rest_b, "the head consumed a different length");
        }
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
        (w, s) => panic!(
            "one read and two reads disagree: {:?} vs {:?}",
            w.as_ref().map(|o| o.is_some()).map_err(|e| e.to_string()),
            s.as_ref().map(|o| o.is_some()).map_err(|e| e.to_string())
        ),
    }
}

/// The request head parser: never panics, reads the same head however the bytes are
/// split, and a head it accepts is written back out (as the proxy sends it upstream)
/// as one head that parses to the same method, target, headers and framing, with
/// nothing left over.
pub fn http1_request_head(data: &[u8]) {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let whole = parse_whole(data, parse_request);
    let split = parse_in_two(data, split_at(selector, data.len()), parse_request);
    agree(&whole, &split, same_request);
    let Ok(Some((req, _))) = whole else { return };
    let Ok(framing) = request_framing(&req) else {
        return;
    };
    let mut out = BytesMut::new();
    write_request_head(&req, &mut out);
    let mut reparse = out.clone();
    let again = match parse_request(&mut reparse, &HeadLimits::default()) {
        Ok(Some(again)) => again,
        other => panic!(
            "the proxy wrote a head it cannot read back: {:?} from {:?}",
            other.map(|o| o.is_some()).map_err(|e| e.to_string()),
            String::from_utf8_lossy(&out)
        ),
    };
    assert!(
        reparse.is_empty(),
        "the written head holds a second message"
    );
    assert_eq!(again.method, req.method);
    assert_eq!(again.headers, req.headers);
    if req.method != Method::CONNECT {
        assert_eq!(again.uri.path(), req.uri.path());
        assert_eq!(again.uri.query(), req.uri.query());
    }
    assert_eq!(
        request_framing(&again).ok(),
        Some(framing),
        "framing changed"
    );
}

/// The response head parser (the first byte picks the request method: GET, HEAD or
/// CONNECT), as [`http1_request_head`] for requests.
pub fn http1_response_head(data: &[u8]) {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let method = match selector % 3 {
        0 => Method::GET,
        1 => Method::HEAD,
        _ => Method::CONNECT,
    };
    let whole = parse_whole(data, parse_response);
    let split = parse_in_two(data, split_at(selector, data.len()), parse_response);
    agree(&whole, &split, same_response);
    let Ok(Some((resp, _))) = whole else { return };
    let Ok(framing) = response_framing(&method, &resp) else {
        return;
    };
    let mut out = BytesMut::new();
    write_response_head(&resp, &mut out);
    let mut reparse = out.clone();
    let again = match parse_response(&mut reparse, &HeadLimits::default()) {
        Ok(Some(again)) => again,
        other => panic!(
            "the proxy wrote a head it cannot read back: {:?} from {:?}",
            other.map(|o| o.is_some()).map_err(|e| e.to_string()),
            String::from_utf8_lossy(&out)
        ),
    };
    assert!(
        reparse.is_empty(),
        "the written head holds a second message"
    );
    assert_eq!(again.status, resp.status);
    assert_eq!(again.headers, resp.headers);
    assert_eq!(response_framing(&method, &again).ok(), Some(framing));
}

/// What decoding a body produced.
#[derive(Debug, PartialEq)]
struct Decoded {
    data: Vec<u8>,
    trailers: Option<http::HeaderMap>,
    /// `Some(true)` ended, `Some(false)` error, `None` needs more bytes.
    ended: Option<bool>,
    /// Bytes after the end of the body (a pipelined message).
    rest: Vec<u8>,
}

/// Decodes `data` fed `step` bytes at a time (all at once when `step` is 0).
fn decode(framing: BodyFraming, data: &[u8], step: usize) -> Decoded {
    let mut dec = BodyDecoder::new(framing);
    let mut out = Decoded {
        data: Vec::new(),
        trailers: None,
        ended: None,
        rest: Vec::new(),
    };
    let mut buf = BytesMut::new();
    let mut fed = 0;
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(BodyEvent::Data(d))) => {
                assert!(!d.is_empty(), "an empty data event");
                out.data.extend_from_slice(&d);
            }
            Ok(Some(BodyEvent::Trailers(t))) => {
                assert!(out.trailers.is_none(), "trailers twice");
                out.trailers = Some(t);
            }
            Ok(Some(BodyEvent::End)) => {
                assert!(dec.is_done());
                out.ended = Some(true);
                break;
            }
            Ok(None) if fed < data.len() => {
                let n = if step == 0 { data.len() } else { step };
                let end = (fed + n).min(data.len());
                buf.extend_from_slice(&data[fed..end]);
                fed = end;
            }
            Ok(None) => {
                if dec.on_eof().is_err() {
                    out.ended = Some(false);
                }
                break;
            }
            Err(_) => {
                out.ended = Some(false);
                break;
            }
        }
    }
    if out.ended == Some(true) {
        out.rest = buf.to_vec();
        out.rest.extend_from_slice(&data[fed..]);
    }
    out
}

/// The body decoder (the first byte picks chunked or a length, the second the read
/// size): the same bytes give the same data, trailers, end and leftover however they
/// arrive; a decoded chunked body encoded again by the proxy's encoder decodes to the
/// same data and trailers.
pub fn chunked_decoder(data: &[u8]) {
    let [mode, step, data @ ..] = data else {
        return;
    };
    let framing = match mode % 4 {
        0 | 1 => BodyFraming::Chunked,
        2 => BodyFraming::Length(u64::from(*mode / 4)),
        _ => BodyFraming::UntilClose,
    };
    let whole = decode(framing, data, 0);
    let pieces = decode(framing, data, usize::from(*step % 17).max(1));
    if framing == BodyFraming::UntilClose {
        assert_eq!(whole.data, pieces.data);
        return;
    }
    assert_eq!(whole, pieces, "the body decoded differently in pieces");
    if framing != BodyFraming::Chunked || whole.ended != Some(true) {
        return;
    }
    let mut enc = BodyEncoder::new(BodyFraming::Chunked);
    let mut wire = BytesMut::new();
    for piece in whole.data.chunks(7) {
        let frame = enc.frame_data(piece.len()).expect("chunked takes any data");
        wire.put_slice(frame.prefix());
        wire.put_slice(piece);
        wire.put_slice(frame.suffix());
    }
    enc.finish(whole.trailers.as_ref(), &mut wire)
        .expect("chunked finishes");
    let again = decode(BodyFraming::Chunked, &wire, 0);
    assert_eq!(again.ended, Some(true), "the re-encoded body does not end");
    assert_eq!(again.data, whole.data);
    assert!(again.rest.is_empty());
    // The encoder drops the fields that may not be trailers.
    let allowed = |t: Option<http::HeaderMap>| {
        let mut t = t.unwrap_or_default();
        let forbidden: Vec<_> = t
            .keys()
            .filter(|n| is_forbidden_trailer(n))
            .cloned()
            .collect();
        for name in forbidden {
            t.remove(name);
        }
        t
    };
    assert_eq!(allowed(again.trailers), allowed(whole.trailers));
}
