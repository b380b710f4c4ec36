//! Cache-Control, Age, HTTP-date and Vary parsing: never a panic, bounded values, and
//! HTTP-dates that survive a format / parse round trip.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use pingora_cache::freshness::{age_field, freshness_lifetime, initial_age, AgeField};
use pingora_cache::rules::vary_names;
use pingora_cache::{http_date, CacheControl};

const FIELDS: [&str; 7] = [
    "cache-control",
    "pragma",
    "age",
    "date",
    "expires",
    "vary",
    "last-modified",
];

/// Input: lines; each line's first byte picks a field of [`FIELDS`], the rest is its
/// value (repeats allowed, as on the wire).
pub fn cache_headers(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some((&pick, value)) = line.split_first() else {
            continue;
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            let name = HeaderName::from_static(FIELDS[usize::from(pick) % FIELDS.len()]);
            headers.append(name, value);
        }
        if let Ok(text) = std::str::from_utf8(value) {
            check_date(text);
        }
    }
    let cc = CacheControl::from_headers(&headers);
    let _ = CacheControl::from_request_headers(&headers);
    for secs in [
        cc.max_age,
        cc.s_maxage,
        cc.stale_while_revalidate,
        cc.stale_if_error,
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            secs <= 1 << 31,
            "delta-seconds past the RFC 9111 cap: {secs}"
        );
    }
    if let AgeField::Valid(age) = age_field(&headers) {
        assert!(age <= Duration::from_secs(1 << 31));
    }
    let now = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    let _ = freshness_lifetime(&cc, &headers, now);
    let _ = initial_age(&headers, now - Duration::from_secs(1), now);
    let _ = initial_age(&headers, now + Duration::from_secs(1), now);
    if let Some(names) = vary_names(&headers) {
        assert!(names.windows(2).all(|w| w[0].as_str() < w[1].as_str()));
    }
}

/// A date that parses formats back to a date that parses to the same second.
fn check_date(text: &str) {
    let Some(t) = http_date::parse(text) else {
        return;
    };
    let formatted = http_date::format(t);
    let again = http_date::parse(&formatted).expect("our own HTTP-date parses");
    let secs = |t: SystemTime| match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i128,
        Err(e) => -(e.duration().as_secs() as i128),
    };
    assert_eq!(secs(again), secs(t), "{text:?} -> {formatted:?}");
}
