//! The file format of one disk entry, and the name of its file.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "PGRCACH1" (format version 1)
//! 8       4     meta_len: bytes of the meta section (little-endian, as every number)
//! 12      8     body_len: bytes of the body
//! 20      4     CRC-32 (IEEE) of the meta section followed by the body
//! 24      ...   meta section: key, then the response head, freshness and trailers
//!               (or a variant index)
//! 24+meta ...   body
//! ```
//!
//! A file is accepted only when its length is exactly `24 + meta_len + body_len`, its
//! checksum matches and its key is the one asked for; anything else is corrupt (a
//! truncated write, a bad disk) and is never served.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use pingora_core::protocols::http::ResponseHeader;

use crate::freshness::CacheMeta;
use crate::key::CacheKey;
use crate::object::{CachedResponse, Entry, VaryIndex};

const MAGIC: [u8; 8] = *b"PGRCACH1";
/// Bytes before the meta section.
pub(crate) const FIXED_LEN: usize = 24;

const KIND_RESPONSE: u8 = 1;
const KIND_VARIANTS: u8 = 2;

const FLAG_ALWAYS_REVALIDATE: u8 = 1;
const FLAG_NEVER_STALE: u8 = 2;
const FLAG_SHAREABLE_WITH_AUTH: u8 = 4;

/// The name of the file of `key`: a 64-bit FNV-1a hash of its text, stable across
/// builds and processes (unlike std's hasher). Two keys sharing a hash share a file;
/// the key stored inside tells them apart.
pub(crate) fn file_hash(key: &CacheKey) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_str().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Why a file was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Truncated, damaged or of another format: remove it.
    Corrupt(&'static str),
    /// A valid entry of another key with the same file hash.
    OtherKey,
}

/// An entry ready to be written: the fixed header and meta section (checksum filled
/// in), then the body, written after it as is.
pub(crate) struct Encoded {
    pub(crate) head: Vec<u8>,
    pub(crate) body: Bytes,
}

impl Encoded {
    /// Bytes the file takes.
    pub(crate) fn len(&self) -> u64 {
        (self.head.len() + self.body.len()) as u64
    }
}

/// Encodes `entry` stored under `key`. Freshness is kept as wall-clock time, so an
/// entry read back by a later process has the right age.
pub(crate) fn encode(key: &CacheKey, entry: &Entry) -> Encoded {
    let mut w = Vec::with_capacity(FIXED_LEN + key.as_str().len() + 512);
    w.extend_from_slice(&[0; FIXED_LEN]);
    put_bytes32(&mut w, key.as_str().as_bytes());
    let body = match entry {
        Entry::Response(r) => {
            w.push(KIND_RESPONSE);
            encode_response(&mut w, r);
            r.body.clone()
        }
        Entry::Variants(v) => {
            w.push(KIND_VARIANTS);
            w.extend_from_slice(&v.generation.to_le_bytes());
            put_u32(&mut w, v.names.len() as u32);
            for name in &v.names {
                put_bytes32(&mut w, name.as_str().as_bytes());
            }
            Bytes::new()
        }
    };
    let meta_len = (w.len() - FIXED_LEN) as u32;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&w[FIXED_LEN..]);
    crc.update(&body);
    w[0..8].copy_from_slice(&MAGIC);
    w[8..12].copy_from_slice(&meta_len.to_le_bytes());
    w[12..20].copy_from_slice(&(body.len() as u64).to_le_bytes());
    w[20..24].copy_from_slice(&crc.finalize().to_le_bytes());
    Encoded { head: w, body }
}

fn encode_response(w: &mut Vec<u8>, r: &CachedResponse) {
    w.extend_from_slice(&r.head.status.as_u16().to_le_bytes());
    w.push(version_code(r.head.version));
    match &r.head.reason {
        Some(reason) => {
            w.push(1);
            put_bytes32(w, reason);
        }
        None => w.push(0),
    }
    let m = &r.meta;
    let now = Instant::now();
    let stored_wall = SystemTime::now()
        .checked_sub(now.saturating_duration_since(m.stored_at))
        .unwrap_or(UNIX_EPOCH);
    for d in [
        stored_wall.duration_since(UNIX_EPOCH).unwrap_or_default(),
        m.initial_age,
        m.lifetime,
        m.stale_while_revalidate,
        m.stale_if_error,
    ] {
        w.extend_from_slice(&(d.as_millis().min(u128::from(u64::MAX)) as u64).to_le_bytes());
    }
    let mut flags = 0;
    if m.always_revalidate {
        flags |= FLAG_ALWAYS_REVALIDATE;
    }
    if m.never_stale {
        flags |= FLAG_NEVER_STALE;
    }
    if m.shareable_with_auth {
        flags |= FLAG_SHAREABLE_WITH_AUTH;
    }
    w.push(flags);
    put_headers(w, &r.head.headers);
    match &r.trailers {
        Some(t) => {
            w.push(1);
            put_headers(w, t);
        }
        None => w.push(0),
    }
}

/// Keys are at most this long in a file read for its key alone (a longer length field
/// means the file is damaged).
const MAX_KEY_LEN: usize = 1 << 20;

/// The key stored in the file at `path`, read from its first bytes only (the content is
/// not checked: a purge reads keys to choose files to remove, never to serve them).
/// `None` when the file is gone or is not an entry of this format.
pub(crate) fn read_key(path: &std::path::Path) -> Option<CacheKey> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut fixed = [0u8; FIXED_LEN + 4];
    file.read_exact(&mut fixed).ok()?;
    if fixed[0..8] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(fixed[FIXED_LEN..].try_into().ok()?) as usize;
    if len > MAX_KEY_LEN {
        return None;
    }
    let mut key = vec![0u8; len];
    file.read_exact(&mut key).ok()?;
    String::from_utf8(key).ok().map(CacheKey::new)
}

/// Decodes a whole file read for `key`.
pub(crate) fn decode(file: Bytes, key: &CacheKey) -> Result<Entry, Rejected> {
    use Rejected::Corrupt;
    if file.len() < FIXED_LEN || file[0..8] != MAGIC {
        return Err(Corrupt("not an entry of this format"));
    }
    let meta_len = u32::from_le_bytes(file[8..12].try_into().unwrap_or_default()) as u64;
    let body_len = u64::from_le_bytes(file[12..20].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(file[20..24].try_into().unwrap_or_default());
    let expected = (FIXED_LEN as u64)
        .checked_add(meta_len)
        .and_then(|n| n.checked_add(body_len));
    if expected != Some(file.len() as u64) {
        return Err(Corrupt("length does not match the header (truncated?)"));
    }
    if crc32fast::hash(&file[FIXED_LEN..]) != crc {
        return Err(Corrupt("checksum mismatch"));
    }
    let meta_end = FIXED_LEN + meta_len as usize;
    let mut r = Reader {
        buf: &file[FIXED_LEN..meta_end],
    };
    if r.bytes32()? != key.as_str().as_bytes() {
        return Err(Rejected::OtherKey);
    }
    let entry = match r.u8()? {
        KIND_RESPONSE => {
            let mut response = decode_response(&mut r)?;
            response.body = file.slice(meta_end..);
            Entry::Response(std::sync::Arc::new(response))
        }
        KIND_VARIANTS => {
            let generation = r.u64()?;
            let count = r.u32()?;
            let mut names = Vec::new();
            for _ in 0..count {
                names.push(
                    HeaderName::from_bytes(r.bytes32()?).map_err(|_| Corrupt("header name"))?,
                );
            }
            Entry::Variants(VaryIndex { names, generation })
        }
        _ => return Err(Corrupt("unknown entry kind")),
    };
    if !r.buf.is_empty() {
        return Err(Corrupt("trailing bytes in the meta section"));
    }
    Ok(entry)
}

fn decode_response(r: &mut Reader<'_>) -> Result<CachedResponse, Rejected> {
    let status = StatusCode::from_u16(r.u16()?).map_err(|_| Rejected::Corrupt("status"))?;
    let mut head = ResponseHeader::new(status);
    head.version = version_from_code(r.u8()?)?;
    if r.u8()? == 1 {
        head.reason = Some(Bytes::copy_from_slice(r.bytes32()?));
    }
    let ms = |r: &mut Reader<'_>| r.u64().map(Duration::from_millis);
    let stored_wall = UNIX_EPOCH + ms(r)?;
    let initial_age = ms(r)?;
    let lifetime = ms(r)?;
    let stale_while_revalidate = ms(r)?;
    let stale_if_error = ms(r)?;
    let flags = r.u8()?;
    head.headers = r.headers()?;
    let trailers = match r.u8()? {
        0 => None,
        _ => Some(r.headers()?),
    };
    // The time spent on disk (or in another process) is added to the initial age.
    let elapsed = SystemTime::now()
        .duration_since(stored_wall)
        .unwrap_or_default();
    Ok(CachedResponse {
        head,
        body: Bytes::new(),
        trailers,
        meta: CacheMeta {
            stored_at: Instant::now(),
            initial_age: initial_age + Duration::from_secs(elapsed.as_secs()),
            lifetime,
            always_revalidate: flags & FLAG_ALWAYS_REVALIDATE != 0,
            never_stale: flags & FLAG_NEVER_STALE != 0,
            stale_while_revalidate,
            stale_if_error,
            shareable_with_auth: flags & FLAG_SHAREABLE_WITH_AUTH != 0,
        },
    })
}

fn version_code(v: Version) -> u8 {
    match v {
        Version::HTTP_09 => 0,
        Version::HTTP_10 => 1,
        Version::HTTP_2 => 3,
        Version::HTTP_3 => 4,
        _ => 2,
    }
}

fn version_from_code(code: u8) -> Result<Version, Rejected> {
    Ok(match code {
        0 => Version::HTTP_09,
        1 => Version::HTTP_10,
        2 => Version::HTTP_11,
        3 => Version::HTTP_2,
        4 => Version::HTTP_3,
        _ => return Err(Rejected::Corrupt("HTTP version")),
    })
}

fn put_u32(w: &mut Vec<u8>, n: u32) {
    w.extend_from_slice(&n.to_le_bytes());
}

fn put_bytes32(w: &mut Vec<u8>, b: &[u8]) {
    put_u32(w, b.len() as u32);
    w.extend_from_slice(b);
}

fn put_headers(w: &mut Vec<u8>, h: &HeaderMap) {
    put_u32(w, h.len() as u32);
    for (name, value) in h {
        put_bytes32(w, name.as_str().as_bytes());
        put_bytes32(w, value.as_bytes());
    }
}

/// Reads the meta section, failing (as corrupt) instead of reading past its end.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Rejected> {
        if self.buf.len() < n {
            return Err(Rejected::Corrupt("meta section cut short"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Rejected> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Rejected> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Rejected> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Rejected> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Rejected> {
        self.take(N)?
            .try_into()
            .map_err(|_| Rejected::Corrupt("meta section cut short"))
    }

    fn bytes32(&mut self) -> Result<&'a [u8], Rejected> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn headers(&mut self) -> Result<HeaderMap, Rejected> {
        let count = self.u32()?;
        let mut h = HeaderMap::new();
        for _ in 0..count {
            let name = HeaderName::from_bytes(self.bytes32()?)
                .map_err(|_| Rejected::Corrupt("header name"))?;
            let value = HeaderValue::from_bytes(self.bytes32()?)
                .map_err(|_| Rejected::Corrupt("header value"))?;
            h.append(name, value);
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn response() -> Entry {
        let mut head = ResponseHeader::new(StatusCode::NOT_FOUND);
        head.reason = Some(Bytes::from_static(b"Nope"));
        head.headers.append("x-a", HeaderValue::from_static("1"));
        head.headers.append("x-a", HeaderValue::from_static("2"));
        head.headers
            .insert("etag", HeaderValue::from_static("\"v1\""));
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", HeaderValue::from_static("abc"));
        Entry::Response(Arc::new(CachedResponse {
            head,
            body: Bytes::from_static(b"hello body"),
            trailers: Some(trailers),
            meta: CacheMeta {
                stored_at: Instant::now() - Duration::from_secs(5),
                initial_age: Duration::from_secs(10),
                lifetime: Duration::from_secs(60),
                always_revalidate: false,
                never_stale: true,
                stale_while_revalidate: Duration::from_secs(3),
                stale_if_error: Duration::from_secs(4),
                shareable_with_auth: true,
            },
        }))
    }

    fn file(e: &Encoded) -> Bytes {
        let mut v = e.head.clone();
        v.extend_from_slice(&e.body);
        Bytes::from(v)
    }

    #[test]
    fn a_response_round_trips_with_its_age() {
        let key = CacheKey::new("GET\nexample.com\n/x");
        let encoded = encode(&key, &response());
        let Entry::Response(r) = decode(file(&encoded), &key).unwrap() else {
            panic!("a response")
        };
        assert_eq!(r.head.status, StatusCode::NOT_FOUND);
        assert_eq!(r.head.reason.as_deref(), Some(&b"Nope"[..]));
        let xa: Vec<_> = r.head.headers.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
        assert_eq!(&r.body[..], b"hello body");
        assert_eq!(r.trailers.as_ref().unwrap()["x-sum"], "abc");
        let age = r.meta.age(Instant::now()).as_secs();
        assert!((15..=16).contains(&age), "age {age}");
        assert!(r.meta.never_stale && r.meta.shareable_with_auth && !r.meta.always_revalidate);
        assert_eq!(r.meta.stale_if_error, Duration::from_secs(4));
    }

    #[test]
    fn variants_round_trip() {
        let key = CacheKey::new("k");
        let index = Entry::Variants(VaryIndex {
            names: vec![HeaderName::from_static("accept-encoding")],
            generation: 77,
        });
        let Entry::Variants(v) = decode(file(&encode(&key, &index)), &key).unwrap() else {
            panic!("variants")
        };
        assert_eq!(v.generation, 77);
        assert_eq!(v.names, [HeaderName::from_static("accept-encoding")]);
    }

    #[test]
    fn truncated_damaged_or_foreign_files_are_refused() {
        let key = CacheKey::new("k");
        let whole = file(&encode(&key, &response()));
        for cut in [0, 10, FIXED_LEN, whole.len() - 1] {
            assert!(
                matches!(decode(whole.slice(..cut), &key), Err(Rejected::Corrupt(_))),
                "cut at {cut}"
            );
        }
        for at in [3, 15, FIXED_LEN + 2, whole.len() - 2] {
            let mut damaged = whole.to_vec();
            damaged[at] ^= 0x40;
            assert!(
                matches!(
                    decode(Bytes::from(damaged), &key),
                    Err(Rejected::Corrupt(_))
                ),
                "flipped byte {at}"
            );
        }
        assert_eq!(
            decode(whole.clone(), &CacheKey::new("other")).unwrap_err(),
            Rejected::OtherKey
        );
        assert!(decode(whole, &key).is_ok());
    }

    #[test]
    fn file_hash_is_stable() {
        // Fixed values: file names must not change between builds.
        assert_eq!(file_hash(&CacheKey::new("")), 0xcbf2_9ce4_8422_2325);
        assert_eq!(file_hash(&CacheKey::new("a")), 0xaf63_dc4c_8601_ec8c);
    }
}
