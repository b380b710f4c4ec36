//! The request-smuggling and desync corpus: every file of `smuggling/` is one case, sent
//! by a raw client through the binary to an origin that frames what it receives with
//! its own strict reader ([`RecordingOrigin`]). For every case, whatever its verdict:
//! the origin never receives a byte the proxy did not frame itself (no violation),
//! and at most the expected number of requests. The verdict then says what the client
//! sees. File format: `smuggling/README.md`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use test_support::{H2Outcome, Proxy, ProxyConfig, RawH2, RecordingOrigin};

use crate::bin;

/// What a case expects.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// HTTP/1: exactly this status, then the connection closes; HTTP/2: this status, or
    /// (status 0) a reset stream or GOAWAY. The origin gets nothing.
    Reject(u16),
    /// The client gets this many `200 ok` responses; the origin frames exactly this
    /// many requests.
    Forward(usize),
    /// Only the invariant: the origin frames at most this many requests.
    AtMost(usize),
}

#[derive(Debug)]
struct Case {
    name: String,
    h2: bool,
    verdict: Verdict,
    origin_body: Option<Vec<u8>>,
    origin_lacks: Vec<String>,
    payload: Vec<String>,
}

/// `\r \n \t \0 \\ \xHH` escapes; everything else as it is.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let (byte, used) = match b[i + 1] {
                b'r' => (b'\r', 2),
                b'n' => (b'\n', 2),
                b't' => (b'\t', 2),
                b'0' => (0, 2),
                b'\\' => (b'\\', 2),
                b'x' if i + 3 < b.len() + 1 => {
                    let hex = std::str::from_utf8(&b[i + 2..(i + 4).min(b.len())]).unwrap_or("");
                    (u8::from_str_radix(hex, 16).expect("\\xHH escape"), 4)
                }
                other => panic!("unknown escape \\{}", other as char),
            };
            out.push(byte);
            i += used;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn load(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).expect("reading a case");
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let (meta, payload) = text
        .split_once("\n---\n")
        .unwrap_or_else(|| panic!("{name}: no --- line"));
    let mut case = Case {
        name: name.clone(),
        h2: false,
        verdict: Verdict::AtMost(0),
        origin_body: None,
        origin_lacks: Vec::new(),
        payload: payload.lines().map(str::to_string).collect(),
    };
    let mut verdict = None;
    for line in meta
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (key, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{name}: bad line {line:?}"));
        let value = value.trim();
        match key.trim() {
            "protocol" => case.h2 = value == "h2",
            "verdict" => {
                let mut words = value.split_whitespace();
                let n = |w: Option<&str>| w.map_or(0, |w| w.parse().expect("a number"));
                verdict = Some(match words.next() {
                    Some("reject") => Verdict::Reject(n(words.next()) as u16),
                    Some("forward") => Verdict::Forward(n(words.next())),
                    Some("at-most") => Verdict::AtMost(n(words.next())),
                    _ => panic!("{name}: unknown verdict {value:?}"),
                });
            }
            "origin-body" => case.origin_body = Some(unescape(value)),
            "origin-lacks" => case.origin_lacks.push(value.to_ascii_lowercase()),
            other => panic!("{name}: unknown key {other:?}"),
        }
    }
    case.verdict = verdict.unwrap_or_else(|| panic!("{name}: no verdict"));
    case
}

fn cases() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/smuggling");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the corpus directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load(p)).collect()
}

/// Runs one case; returns what the client saw and the origin framed, or what went wrong.
fn run(case: &Case, proxy: &Proxy, origin: &RecordingOrigin) -> Result<String, String> {
    let before = origin.requests().len();
    let violations_before = origin.violations().len();
    let client_result = if case.h2 {
        run_h2(case, proxy)
    } else {
        run_h1(case, proxy)
    };
    // Let the origin read whatever the proxy sent before judging it.
    std::thread::sleep(Duration::from_millis(100));
    let violations = origin.violations().split_off(violations_before);
    if !violations.is_empty() {
        return Err(format!(
            "the origin received bytes the proxy did not frame: {violations:?}"
        ));
    }
    let got: Vec<_> = origin.requests().split_off(before);
    let allowed = match case.verdict {
        Verdict::Reject(_) => 0,
        Verdict::Forward(n) | Verdict::AtMost(n) => n,
    };
    if got.len() > allowed {
        return Err(format!(
            "the origin framed {} requests, at most {allowed} allowed: {got:?}",
            got.len()
        ));
    }
    if let Verdict::Forward(n) = case.verdict {
        if got.len() != n {
            return Err(format!("the origin framed {} requests, not {n}", got.len()));
        }
    }
    if let (Some(body), Some(first)) = (&case.origin_body, got.first()) {
        if &first.body != body {
            return Err(format!(
                "the origin got body {:?}",
                String::from_utf8_lossy(&first.body)
            ));
        }
    }
    for name in &case.origin_lacks {
        if let Some(r) = got.iter().find(|r| !r.header_all(name).is_empty()) {
            return Err(format!("the origin got {name}: {:?}", r.headers));
        }
    }
    client_result.map(|seen| format!("client: {seen}; origin: {} request(s)", got.len()))
}

fn run_h1(case: &Case, proxy: &Proxy) -> Result<String, String> {
    let raw: Vec<u8> = case.payload.iter().flat_map(|l| unescape(l)).collect();
    let mut c = proxy.client_with_timeout(Duration::from_secs(3));
    c.send(&raw).map_err(|e| format!("sending: {e}"))?;
    match case.verdict {
        Verdict::Reject(status) => {
            let r = c
                .read_final_response()
                .map_err(|e| format!("no response: {e}"))?;
            if r.status != status {
                return Err(format!(
                    "status {} ({:?}), not {status}",
                    r.status,
                    r.text()
                ));
            }
            if !c.is_closed_by_peer(Duration::from_secs(3)) {
                return Err("the connection stayed open after the rejection".into());
            }
            Ok(format!("{} and close", r.status))
        }
        Verdict::Forward(n) => {
            for i in 0..n {
                let r = c
                    .read_final_response()
                    .map_err(|e| format!("response {i}: {e}"))?;
                if (r.status, r.text().as_str()) != (200, "ok") {
                    return Err(format!("response {i}: {} {:?}", r.status, r.text()));
                }
            }
            Ok(format!("{n} x 200"))
        }
        Verdict::AtMost(_) => {
            let raw = c
                .read_available(Duration::from_millis(300))
                .unwrap_or_default();
            let statuses: Vec<String> = raw
                .windows(9)
                .enumerate()
                .filter(|(_, w)| w.starts_with(b"HTTP/1."))
                .filter_map(|(i, _)| raw.get(i + 9..i + 12))
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            Ok(format!("statuses {statuses:?}"))
        }
    }
}

fn run_h2(case: &Case, proxy: &Proxy) -> Result<String, String> {
    let mut c = RawH2::connect(proxy.addr).map_err(|e| format!("connecting: {e}"))?;
    let mut fields = Vec::new();
    let mut data = Vec::new();
    for line in &case.payload {
        if let Some(d) = line.strip_prefix("@data-end ") {
            data.push((unescape(d), true));
        } else if let Some(d) = line.strip_prefix("@data ") {
            data.push((unescape(d), false));
        } else if !line.is_empty() {
            // The separator is the first ": " after the name's first byte (so that
            // pseudo-header names keep their colon).
            let at = line[1..]
                .find(": ")
                .map(|i| i + 1)
                .unwrap_or_else(|| panic!("{}: field line {line:?}", case.name));
            fields.push((unescape(&line[..at]), unescape(&line[at + 2..])));
        }
    }
    let io = |e: std::io::Error| format!("h2: {e}");
    c.headers(1, &fields, data.is_empty()).map_err(io)?;
    for (d, end) in &data {
        match c.data(1, d, *end) {
            Ok(()) => {}
            // The proxy refused the head and closed before the body was written: its
            // answer (a GOAWAY or a reset) is read below.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(io(e)),
        }
    }
    let outcome = c.outcome(1, Duration::from_secs(3)).map_err(io)?;
    let ok = match (&case.verdict, &outcome) {
        (Verdict::Reject(0), H2Outcome::Reset(_) | H2Outcome::GoAway(_)) => true,
        (Verdict::Reject(_), H2Outcome::Response(s)) => (400..500).contains(s),
        (Verdict::Reject(_), H2Outcome::Reset(_) | H2Outcome::GoAway(_)) => true,
        (Verdict::Forward(_), H2Outcome::Response(200)) => true,
        (Verdict::AtMost(_), _) => true,
        _ => false,
    };
    if ok {
        Ok(format!("{outcome:?}"))
    } else {
        Err(format!("the client saw {outcome:?}"))
    }
}

#[test]
fn every_case_is_rejected_or_forwarded_as_exactly_the_requests_the_proxy_framed() {
    let cases = cases();
    assert!(
        cases.len() >= 60,
        "the corpus shrank to {} cases",
        cases.len()
    );
    let origin = RecordingOrigin::start();
    let mut proxy = ProxyConfig::new(origin.addr()).start(bin());
    let mut failures = Vec::new();
    for case in &cases {
        match run(case, &proxy, &origin) {
            // Shown with --nocapture: what each case did (docs/reliability.md).
            Ok(seen) => eprintln!("{}: {:?}: {seen}", case.name, case.verdict),
            Err(why) => {
                failures.push(format!("{}: {why}", case.name));
                // A fresh proxy, so that one failure does not spill into the next case.
                drop(proxy);
                proxy = ProxyConfig::new(origin.addr()).start(bin());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
