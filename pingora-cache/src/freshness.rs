//! Freshness (RFC 9111 §4.2): how long a stored response is fresh, how old it is, and
//! how long it may be served stale.

use std::time::{Duration, Instant, SystemTime};

use http::header::{HeaderMap, AGE, DATE, EXPIRES};

use crate::cache_control::CacheControl;
use crate::http_date;

/// What the cache needs to know about a stored response to decide how to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMeta {
    /// When the response was received (the start of its time in the cache).
    pub stored_at: Instant,
    /// Its age when received (RFC 9111 §4.2.3 `corrected_initial_age`).
    pub initial_age: Duration,
    /// How long it is fresh, from its creation at the origin.
    pub lifetime: Duration,
    /// `no-cache`: every use must be revalidated with the origin first.
    pub always_revalidate: bool,
    /// `must-revalidate`, `proxy-revalidate` or `s-maxage`: never served stale.
    pub never_stale: bool,
    /// `stale-while-revalidate` window past expiry.
    pub stale_while_revalidate: Duration,
    /// `stale-if-error` window past expiry.
    pub stale_if_error: Duration,
    /// `public`, `s-maxage` or `must-revalidate`: may answer requests with `Authorization`.
    pub shareable_with_auth: bool,
}

impl CacheMeta {
    /// The response's current age (RFC 9111 §4.2.3 `current_age`).
    pub fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.stored_at)
    }

    /// Fresh, and may be served without asking the origin.
    pub fn is_fresh(&self, now: Instant) -> bool {
        !self.always_revalidate && self.age(now) < self.lifetime
    }

    /// How long past its freshness lifetime it is (zero while fresh).
    pub fn staleness(&self, now: Instant) -> Duration {
        self.age(now).saturating_sub(self.lifetime)
    }

    /// May be served stale while another request revalidates it.
    pub fn serve_stale_while_revalidating(&self, now: Instant) -> bool {
        !self.never_stale
            && !self.always_revalidate
            && !self.stale_while_revalidate.is_zero()
            && self.staleness(now) <= self.stale_while_revalidate
    }

    /// May be served stale because the origin failed.
    pub fn serve_stale_on_error(&self, now: Instant) -> bool {
        !self.never_stale
            && !self.stale_if_error.is_zero()
            && self.staleness(now) <= self.stale_if_error
    }

    /// How long until it becomes stale (zero when it already is).
    pub fn fresh_for(&self, now: Instant) -> Duration {
        self.lifetime.saturating_sub(self.age(now))
    }
}

/// The explicit freshness lifetime of a response (RFC 9111 §4.2.1): `s-maxage` (a shared
/// cache's own), else `max-age`, else `Expires` minus `Date` (or minus the time it was
/// received without a `Date`). `None` when the response gives none: this cache uses no
/// heuristic freshness. An invalid `Expires` means already expired.
pub fn freshness_lifetime(
    cc: &CacheControl,
    headers: &HeaderMap,
    response_time: SystemTime,
) -> Option<Duration> {
    if let Some(s) = cc.s_maxage {
        return Some(Duration::from_secs(s));
    }
    if let Some(s) = cc.max_age {
        return Some(Duration::from_secs(s));
    }
    let expires = headers.get(EXPIRES)?;
    let Some(expires) = expires.to_str().ok().and_then(http_date::parse) else {
        return Some(Duration::ZERO);
    };
    let date = date_value(headers).unwrap_or(response_time);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

/// The age of a response when it was received (RFC 9111 §4.2.3), in whole seconds:
/// the larger of the apparent age (`response_time - Date`) and the `Age` header plus
/// the time the request took.
pub fn initial_age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let whole = |d: Duration| Duration::from_secs(d.as_secs());
    let apparent = match date_value(headers) {
        Some(date) => {
            // Both to whole seconds, as the Date header has no fraction.
            let received =
                http_date::parse(&http_date::format(response_time)).unwrap_or(response_time);
            received.duration_since(date).unwrap_or(Duration::ZERO)
        }
        None => Duration::ZERO,
    };
    let age_value = match age_field(headers) {
        AgeField::Valid(age) => age,
        AgeField::Absent | AgeField::Invalid => Duration::ZERO,
    };
    let delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    let corrected = if age_value.is_zero() {
        Duration::ZERO
    } else {
        whole(age_value + delay)
    };
    apparent.max(corrected)
}

/// What a response's `Age` field says (RFC 9111 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeField {
    /// No `Age` field.
    Absent,
    /// One field holding one non-negative integer (capped at 2^31 seconds, as RFC 9111
    /// §1.2.2 caps delta-seconds: such a response is stale for any lifetime).
    Valid(Duration),
    /// Not a non-negative integer (`abc`, `-1`, `1.5`, `7200;x=y`), a list (`0, 7200`)
    /// or repeated in several fields. The response's age cannot be trusted, so
    /// [`crate::rules`] treats it as stale (a conservative reading of §5.1, which
    /// suggests using the first member or ignoring the field: either could serve a
    /// response older than its lifetime).
    Invalid,
}

/// Reads the `Age` field of `headers`.
pub fn age_field(headers: &HeaderMap) -> AgeField {
    let mut fields = headers.get_all(AGE).iter();
    let Some(value) = fields.next() else {
        return AgeField::Absent;
    };
    if fields.next().is_some() {
        return AgeField::Invalid;
    }
    let text = value.as_bytes().trim_ascii();
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return AgeField::Invalid;
    }
    let seconds = std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(u64::MAX)
        .min(1 << 31);
    AgeField::Valid(Duration::from_secs(seconds))
}

fn date_value(headers: &HeaderMap) -> Option<SystemTime> {
    headers
        .get(DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(http_date::parse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn lifetime(pairs: &[(&str, &str)], now: SystemTime) -> Option<Duration> {
        let h = headers(pairs);
        freshness_lifetime(&CacheControl::from_headers(&h), &h, now)
    }

    const NOW: u64 = 1_700_000_000;
    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn s_maxage_wins_over_max_age_wins_over_expires() {
        let now = at(NOW);
        let expires = http_date::format(at(NOW + 500));
        let date = http_date::format(at(NOW));
        let all = [
            ("cache-control", "max-age=10, s-maxage=20"),
            ("expires", expires.as_str()),
            ("date", date.as_str()),
        ];
        assert_eq!(lifetime(&all, now), Some(Duration::from_secs(20)));
        assert_eq!(lifetime(&all[1..], now), Some(Duration::from_secs(500)));
        let max_age = [
            ("cache-control", "max-age=10"),
            ("expires", expires.as_str()),
        ];
        assert_eq!(lifetime(&max_age, now), Some(Duration::from_secs(10)));
    }

    #[test]
    fn expires_counts_from_date_or_receipt() {
        let expires = http_date::format(at(NOW + 100));
        let date = http_date::format(at(NOW - 50));
        let with_date = [("expires", expires.as_str()), ("date", date.as_str())];
        assert_eq!(
            lifetime(&with_date, at(NOW)),
            Some(Duration::from_secs(150))
        );
        let without = [("expires", expires.as_str())];
        assert_eq!(lifetime(&without, at(NOW)), Some(Duration::from_secs(100)));
        assert_eq!(lifetime(&[("expires", "0")], at(NOW)), Some(Duration::ZERO));
        let past = http_date::format(at(NOW - 10));
        assert_eq!(
            lifetime(&[("expires", past.as_str())], at(NOW)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn no_explicit_freshness_means_none() {
        assert_eq!(lifetime(&[], at(NOW)), None);
        assert_eq!(lifetime(&[("cache-control", "public")], at(NOW)), None);
        assert_eq!(
            lifetime(
                &[("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")],
                at(NOW)
            ),
            None
        );
    }

    #[test]
    fn initial_age_from_date_and_age() {
        let req = at(NOW - 2);
        let resp = at(NOW);
        assert_eq!(initial_age(&headers(&[]), req, resp), Duration::ZERO);
        let date = http_date::format(at(NOW - 30));
        assert_eq!(
            initial_age(&headers(&[("date", date.as_str())]), req, resp),
            Duration::from_secs(30)
        );
        // Age plus the request's round trip.
        assert_eq!(
            initial_age(&headers(&[("age", "100")]), req, resp),
            Duration::from_secs(102)
        );
        // The larger of the two.
        assert_eq!(
            initial_age(
                &headers(&[("age", "10"), ("date", date.as_str())]),
                req,
                resp
            ),
            Duration::from_secs(30)
        );
        // A Date in the future counts as age 0; a bad Age is ignored.
        let future = http_date::format(at(NOW + 60));
        assert_eq!(
            initial_age(
                &headers(&[("date", future.as_str()), ("age", "x")]),
                req,
                resp
            ),
            Duration::ZERO
        );
    }

    #[test]
    fn age_must_be_one_non_negative_integer() {
        let age = |values: &[&str]| {
            let pairs: Vec<(&str, &str)> = values.iter().map(|v| ("age", *v)).collect();
            age_field(&headers(&pairs))
        };
        assert_eq!(age(&[]), AgeField::Absent);
        assert_eq!(age(&["7200"]), AgeField::Valid(Duration::from_secs(7200)));
        assert_eq!(age(&[" 5 "]), AgeField::Valid(Duration::from_secs(5)));
        assert_eq!(
            age(&["99999999999999999999999"]),
            AgeField::Valid(Duration::from_secs(1 << 31))
        );
        for bad in [
            &["abc"][..],
            &["-7200"],
            &["7200.0"],
            &[""],
            &["7200, 0"],
            &["0, 7200"],
            &["7200;foo=bar"],
            &["0", "0"],
            &["7200", "0"],
        ] {
            assert_eq!(age(bad), AgeField::Invalid, "{bad:?}");
        }
    }

    fn meta(lifetime: u64, initial: u64) -> CacheMeta {
        CacheMeta {
            stored_at: Instant::now(),
            initial_age: Duration::from_secs(initial),
            lifetime: Duration::from_secs(lifetime),
            always_revalidate: false,
            never_stale: false,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            shareable_with_auth: false,
        }
    }

    #[test]
    fn fresh_then_stale_with_windows() {
        let m = meta(10, 4);
        let t0 = m.stored_at;
        assert!(m.is_fresh(t0));
        assert_eq!(m.fresh_for(t0), Duration::from_secs(6));
        assert!(m.is_fresh(t0 + Duration::from_secs(5)));
        assert!(!m.is_fresh(t0 + Duration::from_secs(6)));
        assert_eq!(
            m.staleness(t0 + Duration::from_secs(9)),
            Duration::from_secs(3)
        );
        assert!(!m.serve_stale_on_error(t0 + Duration::from_secs(7)));

        let mut m = meta(10, 0);
        m.stale_if_error = Duration::from_secs(5);
        m.stale_while_revalidate = Duration::from_secs(2);
        assert!(m.serve_stale_on_error(t0 + Duration::from_secs(15)));
        assert!(!m.serve_stale_on_error(t0 + Duration::from_secs(16)));
        assert!(m.serve_stale_while_revalidating(t0 + Duration::from_secs(12)));
        assert!(!m.serve_stale_while_revalidating(t0 + Duration::from_secs(13)));
        m.never_stale = true;
        assert!(!m.serve_stale_on_error(t0 + Duration::from_secs(11)));
        assert!(!m.serve_stale_while_revalidating(t0 + Duration::from_secs(11)));

        let mut m = meta(10, 0);
        m.always_revalidate = true;
        assert!(!m.is_fresh(t0));
    }
}
