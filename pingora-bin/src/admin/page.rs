//! The status page (`GET /`): one self-contained HTML document (inline style, inline
//! SVG charts, no external asset), complete without JavaScript; with JavaScript it
//! refreshes itself every two seconds and its drain/enable buttons post in place.

use std::fmt::Write;

use pingora_core::protocols::http::RequestHeader;

use super::history::Point;
use super::status::{BackendJson, ServiceStatus, Status};

/// The page's Content-Security-Policy: nothing from outside, scripts and styles only
/// inline, fetches and forms only to this endpoint, never framed.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
connect-src 'self'; form-action 'self'; img-src data:; base-uri 'none'; frame-ancestors 'none'";

/// Whether the request comes from a browser page (a form without script): it prefers
/// HTML to JSON.
pub fn wants_page(req: &RequestHeader) -> bool {
    (req.headers.get(http::header::ACCEPT))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// Text made safe for HTML content and attribute values.
struct Esc<'a>(&'a str);

impl std::fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A path segment with everything but unreserved characters and `:` percent-encoded.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:[]".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d232b}\
header{background:#1d232b;color:#fff;padding:10px 18px;display:flex;gap:18px;flex-wrap:wrap;align-items:baseline}\
header h1{font-size:18px;margin:0}main{padding:12px 18px}\
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;margin:0 0 14px;padding:10px 14px}\
h2{font-size:16px;margin:0 0 6px}h3{font-size:14px;margin:10px 0 4px}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eceff2}\
th{font-weight:600;color:#56606b}.n{text-align:right;font-variant-numeric:tabular-nums}\
.badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600}\
.up{background:#d7f5dd;color:#135d22}.down{background:#fbd9d9;color:#8a1212}\
.backed_off{background:#fdecc8;color:#7a4b00}.draining{background:#dfe3f7;color:#27317a}\
.charts{display:flex;gap:16px;flex-wrap:wrap}.chart{font-size:12px;color:#56606b}\
.muted{color:#56606b}form{display:inline;margin:0}button{font-size:12px}";

/// JavaScript: refresh `#main` from the page itself every two seconds, and post the
/// drain/enable forms without leaving the page.
const SCRIPT: &str = r#"(function(){
var busy=false;
function refresh(){if(busy)return;busy=true;
fetch('/',{headers:{'Accept':'text/html'},cache:'no-store'}).then(function(r){
if(!r.ok)throw new Error(r.status);return r.text();}).then(function(t){
var d=new DOMParser().parseFromString(t,'text/html');var m=d.getElementById('main');
if(m){document.getElementById('main').replaceWith(m);}
document.getElementById('refreshed').textContent='refreshed '+new Date().toLocaleTimeString();
}).catch(function(e){document.getElementById('refreshed').textContent='refresh failed: '+e.message;
}).finally(function(){busy=false;});}
document.addEventListener('submit',function(ev){var f=ev.target;ev.preventDefault();
fetch(f.action,{method:'POST',headers:{'Accept':'application/json'}}).then(function(r){
return r.json().then(function(j){if(!r.ok)alert(j.error||r.status);});}).finally(refresh);});
document.getElementById('refreshed').textContent='refreshing every 2 s';
setInterval(refresh,2000);})();"#;

/// The whole page.
pub fn render(s: &Status) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write_page(&mut out, s);
    out
}

fn write_page(o: &mut String, s: &Status) -> std::fmt::Result {
    write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>pingora status</title><style>{STYLE}</style></head><body>"
    )?;
    write!(
        o,
        "<header><h1>pingora {}</h1><span>pid {}</span><span id=\"refreshed\" class=\"muted\">\
static page: reload to refresh</span></header>",
        Esc(s.version),
        s.pid
    )?;
    o.push_str("<main id=\"main\">");
    write_server(o, s)?;
    for svc in &s.services {
        write_service(o, svc)?;
    }
    write_events(o, s)?;
    o.push_str("</main>");
    write!(o, "<script>{SCRIPT}</script></body></html>")
}

fn write_server(o: &mut String, s: &Status) -> std::fmt::Result {
    let (state, class) = if s.draining {
        ("draining", "draining")
    } else {
        ("serving", "up")
    };
    write!(
        o,
        "<section id=\"server\"><h2>Server <span class=\"badge {class}\" id=\"server-state\">{state}</span></h2>\
<table><tr><th>uptime</th><td>{}</td><th>started</th><td>{}</td></tr>\
<tr><th>config file</th><td>{}</td><th>loaded</th><td>{}</td></tr>\
<tr><th>client connections</th><td>{}</td><th>changes</th><td>{}</td></tr></table></section>",
        uptime(s.uptime_seconds),
        Esc(&s.started_at),
        Esc(s.config_file.as_deref().unwrap_or("(built-in defaults)")),
        Esc(&s.config_loaded_at),
        s.connections_active,
        if s.token_required {
            "need the admin token"
        } else {
            "accepted from loopback"
        },
    )
}

fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else {
        format!("{m}m {s}s")
    }
}

fn seconds(v: Option<f64>) -> String {
    match v {
        None => "–".to_string(),
        Some(s) if s < 1.0 => format!("{:.1} ms", s * 1000.0),
        Some(s) => format!("{s:.2} s"),
    }
}

fn write_service(o: &mut String, s: &ServiceStatus) -> std::fmt::Result {
    let c = &s.status_classes;
    let l = &s.latency_seconds;
    write!(
        o,
        "<section class=\"service\" data-service=\"{name}\"><h2>Service {name}</h2>\
<p class=\"muted\">listening on {listeners}</p>\
<table><tr><th class=\"n\">requests</th><th class=\"n\">req/s (10 s)</th><th class=\"n\">2xx</th>\
<th class=\"n\">3xx</th><th class=\"n\">4xx</th><th class=\"n\">5xx</th><th class=\"n\">1xx</th>\
<th class=\"n\">no answer</th><th class=\"n\">p50</th><th class=\"n\">p90</th><th class=\"n\">p99 (1 min)</th></tr>\
<tr><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr></table>",
        s.requests_total,
        s.requests_per_second,
        c.c2,
        c.c3,
        c.c4,
        c.c5,
        c.c1,
        c.none,
        seconds(l.p50),
        seconds(l.p90),
        seconds(l.p99),
        name = Esc(&s.name),
        listeners = Esc(&s.listeners.join(", ")),
    )?;
    o.push_str("<div class=\"charts\">");
    chart(o, "requests/s", "#2a6fdb", &s.history, |p| {
        p.requests_per_second
    })?;
    chart(o, "5xx/s", "#c62828", &s.history, |p| p.errors_per_second)?;
    o.push_str("</div>");
    if let Some(cache) = &s.cache {
        write!(
            o,
            "<h3>Cache <span class=\"muted\">(hit ratio {:.1} %)</span></h3><table><tr><th>tier</th>\
<th class=\"n\">entries</th><th class=\"n\">bytes</th><th class=\"n\">hits</th><th class=\"n\">evictions</th></tr>",
            cache.hit_ratio * 100.0
        )?;
        let tiers = std::iter::once(("memory", &cache.memory))
            .chain(cache.disk.iter().map(|d| ("disk", d)));
        for (name, t) in tiers {
            write!(
                o,
                "<tr><td>{name}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                t.entries, t.bytes, t.hits, t.evictions
            )?;
        }
        o.push_str("</table>");
    }
    for u in &s.upstreams {
        write!(
            o,
            "<h3>Upstream {} <span class=\"muted\">({})</span></h3><table class=\"backends\">\
<tr><th>backend</th><th>state</th><th>last check</th><th>back-off</th><th class=\"n\">in flight</th>\
<th class=\"n\">requests</th><th class=\"n\">errors</th><th></th></tr>",
            Esc(&u.name),
            u.lb
        )?;
        for b in &u.backends {
            write_backend(o, &s.name, &u.name, b)?;
        }
        o.push_str("</table>");
    }
    o.push_str("</section>");
    Ok(())
}

fn write_backend(
    o: &mut String,
    service: &str,
    upstream: &str,
    b: &BackendJson,
) -> std::fmt::Result {
    let check = match &b.last_check {
        None => "–".to_string(),
        Some(c) => format!(
            "{} {:.0} s ago",
            if c.passed { "passed" } else { "failed" },
            c.age_seconds
        ),
    };
    let backoff = if b.backed_off {
        format!("{:.0} s left", b.backoff_remaining_seconds.ceil())
    } else {
        "–".to_string()
    };
    let (action, label) = if b.draining {
        ("enable", "Enable")
    } else {
        ("drain", "Drain")
    };
    write!(
        o,
        "<tr data-backend=\"{addr}\" data-state=\"{state}\"><td>{addr}</td>\
<td><span class=\"badge {state}\">{state_text}</span></td><td>{check}</td><td>{backoff}</td>\
<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
<td><form method=\"post\" action=\"/upstreams/{}/{}/{}/{action}\"><button>{label}</button></form></td></tr>",
        b.in_flight,
        b.requests_total,
        b.errors_total,
        path_segment(service),
        path_segment(upstream),
        path_segment(&b.addr),
        addr = Esc(&b.addr),
        state = b.state,
        state_text = b.state.replace('_', " "),
    )
}

/// A small line chart of `value` over the samples, as inline SVG.
fn chart(
    o: &mut String,
    title: &str,
    color: &str,
    points: &[Point],
    value: impl Fn(&Point) -> f64,
) -> std::fmt::Result {
    const W: f64 = 300.0;
    const H: f64 = 60.0;
    let max = points.iter().map(&value).fold(0.0, f64::max);
    let last = points.last().map_or(0.0, &value);
    write!(
        o,
        "<div class=\"chart\">{title}: now {last:.1}, peak {max:.1} (last {} min)<br>\
<svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{title}\">\
<rect width=\"{W}\" height=\"{H}\" fill=\"#fafbfc\" stroke=\"#dde1e6\"/>",
        (super::history::KEPT as u64 * super::history::SAMPLE_EVERY.as_secs()).div_ceil(60),
    )?;
    if points.len() >= 2 {
        let scale = if max > 0.0 { (H - 4.0) / max } else { 0.0 };
        let step = W / (super::history::KEPT - 1) as f64;
        let start = W - step * (points.len() - 1) as f64;
        o.push_str("<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"");
        o.push_str(color);
        o.push_str("\" points=\"");
        for (i, p) in points.iter().enumerate() {
            let x = start + step * i as f64;
            let y = H - 2.0 - value(p) * scale;
            write!(o, "{x:.1},{y:.1} ")?;
        }
        o.push_str("\"/>");
    }
    o.push_str("</svg></div>");
    Ok(())
}

fn write_events(o: &mut String, s: &Status) -> std::fmt::Result {
    o.push_str("<section id=\"events\"><h2>Changes</h2>");
    if s.events.is_empty() {
        o.push_str(
            "<p class=\"muted\">None since start (a reload starts afresh from the file).</p>",
        );
    } else {
        o.push_str("<table><tr><th>time</th><th>by</th><th>change</th></tr>");
        for e in &s.events {
            write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                Esc(&e.time),
                Esc(&e.client),
                Esc(&e.message)
            )?;
        }
        o.push_str("</table>");
    }
    o.push_str("</section>");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_path_segments() {
        assert_eq!(
            Esc("<a href=\"x\">&'").to_string(),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(path_segment("10.0.0.1:80"), "10.0.0.1:80");
        assert_eq!(path_segment("unix:/run/a b"), "unix:%2Frun%2Fa%20b");
        assert_eq!(uptime(3725), "1h 2m 5s");
    }
}
