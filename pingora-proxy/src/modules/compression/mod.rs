//! Response compression: gzip, Brotli and Zstandard, chosen from the client's
//! `Accept-Encoding` (q-values, then the proxy's preference), streamed piece by piece.
//!
//! [`ResponseCompression`] holds the settings and decides, in `response_filter`, whether
//! a response is compressed; when it is, [`ResponseCompression::start`] edits the head
//! and returns a [`BodyCompressor`] to keep in the request's context and call from
//! `response_body_filter`:
//!
//! ```
//! use pingora_proxy::modules::compression::{BodyCompressor, Encoding, ResponseCompression};
//! use pingora_proxy::prelude::*;
//!
//! struct Compressing {
//!     compression: ResponseCompression,
//! }
//!
//! impl ProxyHttp for Compressing {
//!     type Ctx = Option<BodyCompressor>;
//!
//!     fn new_ctx(&self) -> Self::Ctx {
//!         None
//!     }
//!
//!     async fn upstream_peer(&self, _s: &mut Session, _c: &mut Self::Ctx) -> Result<HttpPeer> {
//!         HttpPeer::parse("127.0.0.1:9000")
//!     }
//!
//!     async fn response_filter(
//!         &self,
//!         session: &mut Session,
//!         resp: &mut ResponseHeader,
//!         ctx: &mut Self::Ctx,
//!     ) -> Result<()> {
//!         *ctx = self.compression.start(session.req_header(), resp)?;
//!         Ok(())
//!     }
//!
//!     async fn response_body_filter(
//!         &self,
//!         _session: &mut Session,
//!         body: &mut Option<bytes::Bytes>,
//!         end_of_stream: bool,
//!         ctx: &mut Self::Ctx,
//!     ) -> Result<()> {
//!         match ctx {
//!             Some(compressor) => compressor.filter(body, end_of_stream),
//!             None => Ok(()),
//!         }
//!     }
//! }
//!
//! let proxy = Compressing {
//!     compression: ResponseCompression::new([Encoding::Br, Encoding::Gzip])
//!         .min_bytes(512)
//!         .types(["text/*", "application/json"])
//!         .level(Encoding::Gzip, 5),
//! };
//! # let _ = proxy;
//! ```
//!
//! Each piece of body is compressed and flushed as it arrives, so a slow stream (server
//! sent events, a long poll) reaches the client as promptly as it would uncompressed;
//! memory per response is the encoder's state (about 256 KiB for gzip, 512 KiB windows
//! for Brotli and Zstandard), never the body.

mod encoder;
mod negotiate;

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, VARY,
};
use http::{Method, StatusCode};
use pingora_core::protocols::http::{RequestHeader, ResponseHeader};
use pingora_core::{Error, ErrorKind, Result, Side};

pub use negotiate::negotiate;
/// A content coding the proxy produces: `zstd`, `br` or `gzip`.
pub use pingora_config::CompressionAlgorithm as Encoding;

use encoder::Encoder;

/// What to compress and how: the encodings in order of preference, the smallest body
/// worth it, the media types, and a level per encoding.
#[derive(Debug, Clone)]
pub struct ResponseCompression {
    algorithms: Vec<Encoding>,
    min_bytes: u64,
    /// Lower-cased `type/subtype` or `type/*` (`*/*` for all).
    types: Vec<String>,
    /// Levels indexed like [`Encoding::ALL`].
    levels: [u32; 3],
}

impl ResponseCompression {
    /// Compression with `algorithms` in order of preference, and the defaults of the
    /// YAML key: bodies of at least 1024 bytes, `text/*`, `application/json`,
    /// `application/javascript` and `image/svg+xml`, gzip 6, Brotli 4, Zstandard 3.
    pub fn new(algorithms: impl IntoIterator<Item = Encoding>) -> Self {
        let defaults = pingora_config::CompressionConf::default();
        let mut c = Self::from_conf(&defaults);
        c.algorithms = algorithms.into_iter().collect();
        c
    }

    /// The settings of a `compression` section.
    pub fn from_conf(conf: &pingora_config::CompressionConf) -> Self {
        ResponseCompression {
            algorithms: conf.algorithms.clone(),
            min_bytes: conf.min_bytes,
            types: conf.types.iter().map(|t| t.to_ascii_lowercase()).collect(),
            levels: Encoding::ALL.map(|e| conf.level.of(e)),
        }
    }

    /// Leaves bodies shorter than `n` bytes (when their length is known) as they are.
    pub fn min_bytes(mut self, n: u64) -> Self {
        self.min_bytes = n;
        self
    }

    /// Compresses only these media types (`type/subtype`, `type/*` or `*/*`).
    pub fn types<S: AsRef<str>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.types = types
            .into_iter()
            .map(|t| t.as_ref().to_ascii_lowercase())
            .collect();
        self
    }

    /// Sets the level of `encoding` (clamped to its range: gzip 1-9, Brotli 0-11,
    /// Zstandard 1-19).
    pub fn level(mut self, encoding: Encoding, level: u32) -> Self {
        let (min, max) = pingora_config::CompressionLevelConf::range(encoding);
        self.levels[index(encoding)] = level.clamp(min, max);
        self
    }

    /// The encodings in order of preference.
    pub fn algorithms(&self) -> &[Encoding] {
        &self.algorithms
    }

    /// Decides for the response `resp` to `req`. A response that could be compressed
    /// gets `Vary: Accept-Encoding` (whatever this client accepts); when an encoding is
    /// chosen, the head gets its `Content-Encoding`, loses `Content-Length` and
    /// `Accept-Ranges`, its strong `ETag` becomes weak, and the compressor of the body
    /// is returned. Left alone: `HEAD`, `1xx`, `204`, `206`, `304`, a response that has
    /// a `Content-Encoding` already, `Cache-Control: no-transform`, other media types,
    /// and bodies declared shorter than `min_bytes`.
    pub fn start(
        &self,
        req: &RequestHeader,
        resp: &mut ResponseHeader,
    ) -> Result<Option<BodyCompressor>> {
        if !self.compressible(req, resp) {
            return Ok(None);
        }
        add_vary(resp);
        let Some(encoding) = negotiate(&req.headers, &self.algorithms) else {
            return Ok(None);
        };
        let encoder = Encoder::new(encoding, self.levels[index(encoding)]).map_err(|e| {
            Error::because(
                ErrorKind::Internal,
                Side::Internal,
                "compression encoder",
                e,
            )
        })?;
        let h = &mut resp.headers;
        h.insert(
            CONTENT_ENCODING,
            HeaderValue::from_static(encoding.as_str()),
        );
        h.remove(CONTENT_LENGTH);
        h.remove(ACCEPT_RANGES);
        if let Some(weak) = h.get(ETAG).and_then(weakened) {
            h.insert(ETAG, weak);
        }
        Ok(Some(BodyCompressor {
            encoding,
            encoder,
            bytes_in: 0,
            bytes_out: 0,
        }))
    }

    /// Whether the response may be compressed at all (before asking the client).
    fn compressible(&self, req: &RequestHeader, resp: &ResponseHeader) -> bool {
        if self.algorithms.is_empty() || req.method == Method::HEAD {
            return false;
        }
        let status = resp.status;
        if status.is_informational()
            || matches!(
                status,
                StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
            )
        {
            return false;
        }
        let h = &resp.headers;
        if h.contains_key(CONTENT_ENCODING) || h.contains_key(CONTENT_RANGE) {
            return false;
        }
        let no_transform = h.get_all(CACHE_CONTROL).iter().any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|d| trim(d).eq_ignore_ascii_case(b"no-transform"))
        });
        if no_transform {
            return false;
        }
        let declared = h
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|len| len < self.min_bytes) {
            return false;
        }
        h.get(CONTENT_TYPE)
            .is_some_and(|ct| self.type_matches(ct.as_bytes()))
    }

    /// Whether a `Content-Type` value is one of the configured media types.
    fn type_matches(&self, content_type: &[u8]) -> bool {
        let media = content_type
            .split(|b| *b == b';')
            .next()
            .map(trim)
            .unwrap_or_default();
        let Some(slash) = media.iter().position(|b| *b == b'/') else {
            return false;
        };
        let main = &media[..slash];
        self.types.iter().any(|t| {
            let t = t.as_bytes();
            if t == b"*/*" {
                return true;
            }
            match t.strip_suffix(b"/*") {
                Some(prefix) => prefix.eq_ignore_ascii_case(main),
                None => t.eq_ignore_ascii_case(media),
            }
        })
    }
}

/// Compresses one response body: call [`BodyCompressor::filter`] with every piece.
pub struct BodyCompressor {
    encoding: Encoding,
    encoder: Encoder,
    bytes_in: u64,
    bytes_out: u64,
}

impl std::fmt::Debug for BodyCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyCompressor")
            .field("encoding", &self.encoding)
            .field("bytes_in", &self.bytes_in)
            .field("bytes_out", &self.bytes_out)
            .finish()
    }
}

impl BodyCompressor {
    /// Replaces `body` (a piece of the response body, `None` at the end) with its
    /// compressed form, flushed so that the client can decode everything so far; at
    /// `end_of_stream`, with the end of the compressed stream too.
    pub fn filter(&mut self, body: &mut Option<Bytes>, end_of_stream: bool) -> Result<()> {
        let input = body.take().unwrap_or_default();
        self.bytes_in += input.len() as u64;
        let mut out = if input.is_empty() && !end_of_stream {
            Bytes::new()
        } else {
            self.encoder.push(&input).map_err(compress_error)?
        };
        if end_of_stream {
            let tail = self.encoder.finish().map_err(compress_error)?;
            out = if out.is_empty() {
                tail
            } else {
                let mut joined = bytes::BytesMut::with_capacity(out.len() + tail.len());
                joined.extend_from_slice(&out);
                joined.extend_from_slice(&tail);
                joined.freeze()
            };
        }
        self.bytes_out += out.len() as u64;
        if !out.is_empty() {
            *body = Some(out);
        }
        Ok(())
    }

    /// The encoding produced.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Body bytes taken in so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Compressed bytes given out so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }
}

fn compress_error(e: std::io::Error) -> Error {
    Error::because(
        ErrorKind::Internal,
        Side::Internal,
        "compressing the response body",
        e,
    )
}

fn index(e: Encoding) -> usize {
    Encoding::ALL.iter().position(|a| *a == e).unwrap_or(0)
}

/// Adds `Accept-Encoding` to `Vary` unless it is there (or `Vary: *`).
fn add_vary(resp: &mut ResponseHeader) {
    let listed = resp.headers.get_all(VARY).iter().any(|v| {
        v.as_bytes().split(|b| *b == b',').any(|name| {
            let name = trim(name);
            name == b"*" || name.eq_ignore_ascii_case(b"accept-encoding")
        })
    });
    if !listed {
        resp.headers
            .append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// `W/"x"` for a strong `"x"`; `None` when already weak (or not an entity tag).
fn weakened(etag: &HeaderValue) -> Option<HeaderValue> {
    let v = etag.as_bytes();
    if v.starts_with(b"W/") || !v.starts_with(b"\"") {
        return None;
    }
    let mut weak = Vec::with_capacity(v.len() + 2);
    weak.extend_from_slice(b"W/");
    weak.extend_from_slice(v);
    HeaderValue::from_bytes(&weak).ok()
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests;
