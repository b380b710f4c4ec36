//! The Prometheus text exposition format as the admin listener serves it: a strict
//! parser ([`parse_metrics`]) and a scrape of `/metrics` to look samples up in
//! ([`Metrics`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use crate::client::get;

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name, with any `_bucket`/`_sum`/`_count` suffix.
    pub name: String,
    /// The labels.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// Why an exposition text was refused: the offending line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedMetrics {
    /// The line.
    pub line: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl fmt::Display for MalformedMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.reason, self.line)
    }
}

impl std::error::Error for MalformedMetrics {}

/// Parses the exposition text; any malformed line, unknown type or sample before its
/// `# TYPE` line is an error.
pub fn parse_metrics(text: &str) -> Result<Vec<Sample>, MalformedMetrics> {
    let mut samples = Vec::new();
    let mut typed: Vec<&str> = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let bad = |reason| MalformedMetrics {
            line: line.to_string(),
            reason,
        };
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            let kind = words.next();
            let name = words.next().ok_or_else(|| bad("comment without a name"))?;
            if kind == Some("TYPE") {
                let t = words.next().ok_or_else(|| bad("TYPE without a type"))?;
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                    return Err(bad("unknown type"));
                }
                typed.push(name);
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| bad("no value"))?;
        let value: f64 = value.parse().map_err(|_| bad("bad value"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .ok_or_else(|| bad("unclosed labels"))?;
                (name, parse_labels(body).ok_or_else(|| bad("bad labels"))?)
            }
            None => (series, BTreeMap::new()),
        };
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !name_ok {
            return Err(bad("bad metric name"));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| typed.contains(base))
            .unwrap_or(name);
        if !typed.contains(&family) {
            return Err(bad("sample before its # TYPE line"));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(samples)
}

/// Parses `k="v",k2="v2"` (values may hold `\"`, `\\`, `\n`); None when malformed.
fn parse_labels(body: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()? {
                    (_, 'n') => value.push('\n'),
                    (_, c) => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.to_string(), value);
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Some(labels)
}

/// The metrics of a running proxy at one moment.
#[derive(Debug, Clone)]
pub struct Metrics(pub Vec<Sample>);

impl Metrics {
    /// `GET /metrics` on the admin listener at `admin`; panics unless it answers 200
    /// with the exposition content type and a well-formed text.
    pub fn scrape(admin: SocketAddr) -> Metrics {
        let r = get(admin, "/metrics").unwrap_or_else(|e| panic!("GET /metrics: {e}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
            "content-type {:?}",
            r.header("content-type")
        );
        let text = r.text();
        Metrics(parse_metrics(&text).unwrap_or_else(|e| panic!("{e}\nin:\n{text}")))
    }

    /// The value of the sample `name` whose labels include every pair of `labels`
    /// (the first such sample), if any.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
            })
            .map(|s| s.value)
    }

    /// The value of the sample `name` with exactly `labels`; panics if there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_text_parses() {
        let ok = parse_metrics(
            "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\\\"q\",b=\"\"} 3\n\
             # TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 4);
        assert_eq!(ok[0].labels["k"], "v\"q");
        assert_eq!(ok[0].labels["b"], "");
        assert_eq!(ok[0].value, 3.0);
        let m = Metrics(ok);
        assert_eq!(m.find("a_total", &[("k", "v\"q")]), Some(3.0));
        assert_eq!(m.find("a_total", &[("k", "other")]), None);
        assert_eq!(m.value("h_count", &[]), 2.0);
    }

    #[test]
    fn what_is_malformed_is_refused_with_the_reason() {
        for (bad, reason) in [
            ("a_total 1\n", "sample before its # TYPE line"),
            ("# TYPE a counter\na{k=\"v\" 1\n", "unclosed labels"),
            ("# TYPE a counter\na{k=\"v\"} one\n", "bad value"),
            ("# TYPE a counter\na-b 1\n", "bad metric name"),
            ("# TYPE a counter\na{k=\"v} 1\n", "bad labels"),
            ("# TYPE a gauge2\n", "unknown type"),
        ] {
            assert_eq!(
                parse_metrics(bad).map_err(|e| e.reason),
                Err(reason),
                "{bad:?}"
            );
        }
    }
}
