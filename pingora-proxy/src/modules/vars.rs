//! Rendering templates against a request: [`RequestVars`] holds what the variables read,
//! [`Expander`] is a template ready to render.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::HeaderName;
use http::HeaderValue;
use pingora_config::template::{Piece, Template, Var};
use pingora_core::protocols::http::RequestHeader;
use pingora_core::protocols::tls::ClientCertInfo;
use pingora_core::{Error, ErrorKind, Result, Side};

/// Most capture groups a template can use: `$1`..`$9` (slot 0 is the whole match).
pub const MAX_CAPTURES: usize = 10;

/// Where the capture groups of a regular expression matched in a text, kept as byte
/// ranges in a fixed array: no allocation per request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Captures {
    spans: [Option<(u32, u32)>; MAX_CAPTURES],
}

impl Captures {
    /// Runs `regex` on `text`; the captures when it matches.
    pub fn of(regex: &regex::Regex, text: &str) -> Option<Captures> {
        let caps = regex.captures(text)?;
        let mut out = Captures::default();
        for (slot, m) in out.spans.iter_mut().zip(caps.iter()) {
            *slot = m
                .and_then(|m| Some((u32::try_from(m.start()).ok()?, u32::try_from(m.end()).ok()?)));
        }
        Some(out)
    }

    /// The text of group `n` (0: the whole match) within `text`, the string they were
    /// taken from; empty when the group did not take part.
    pub fn get<'t>(&self, text: &'t str, n: usize) -> &'t str {
        self.spans
            .get(n)
            .copied()
            .flatten()
            .and_then(|(a, b)| text.get(a as usize..b as usize))
            .unwrap_or("")
    }
}

/// What the variables of a template read for one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestVars<'a> {
    /// The request as the client sent it.
    pub req: &'a RequestHeader,
    /// `$client_ip`.
    pub client_ip: Option<IpAddr>,
    /// `$scheme`: `http` or `https`.
    pub scheme: &'a str,
    /// `$server_port`.
    pub server_port: Option<u16>,
    /// `$request_id`.
    pub request_id: Option<&'a str>,
    /// `$1`..`$9`: captures taken from `capture_text`.
    pub captures: Option<(&'a Captures, &'a str)>,
    /// `$ssl_client_verify` and `$ssl_client_s_dn`: the connection's client
    /// certificate, on a listener that asks for one.
    pub client_cert: Option<&'a ClientCertInfo>,
}

impl<'a> RequestVars<'a> {
    /// Variables of `req` with nothing else known (`$scheme` is `http`).
    pub fn new(req: &'a RequestHeader) -> Self {
        RequestVars {
            req,
            client_ip: None,
            scheme: "http",
            server_port: None,
            request_id: None,
            captures: None,
            client_cert: None,
        }
    }

    /// The request's host without port, as written.
    pub fn host(&self) -> &'a str {
        self.req.host().map(strip_port).unwrap_or("")
    }
}

/// `host` without its `:port` (and `[v6]` without brackets).
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(host, |(h, _)| h);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// One part of an [`Expander`].
#[derive(Debug, Clone)]
enum Part {
    Literal(Box<str>),
    Var(Var),
    Header(HeaderName),
}

/// A template ready to render: header names resolved, literal values prepared.
#[derive(Debug, Clone)]
pub struct Expander {
    parts: Box<[Part]>,
    /// The value when the template has no variable.
    literal: Option<HeaderValue>,
}

impl Expander {
    /// Prepares `template`. Fails on a `$http_NAME` that is not a header name.
    pub fn new(template: &Template) -> Result<Expander> {
        let mut parts = Vec::with_capacity(template.pieces().len());
        for piece in template.pieces() {
            parts.push(match piece {
                Piece::Literal(s) => Part::Literal(s.as_str().into()),
                Piece::Var(Var::Header(name)) => {
                    Part::Header(HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                        Error::new(
                            ErrorKind::Internal,
                            Side::Internal,
                            format!("`$http_{name}`: not a header name"),
                        )
                    })?)
                }
                Piece::Var(v) => Part::Var(v.clone()),
            });
        }
        let literal = template
            .as_literal()
            .and_then(|s| HeaderValue::from_str(s).ok());
        Ok(Expander {
            parts: parts.into(),
            literal,
        })
    }

    /// Parses and prepares `text` (see [`pingora_config::template`] for the syntax).
    pub fn parse(text: &str) -> Result<Expander> {
        let template = Template::parse(text)
            .map_err(|e| Error::new(ErrorKind::Internal, Side::Internal, e.message.clone()))?;
        Expander::new(&template)
    }

    /// The prepared value when the template has no variable.
    pub fn literal(&self) -> Option<&HeaderValue> {
        self.literal.as_ref()
    }

    /// Whether the template uses `$1`..`$9`.
    pub fn uses_captures(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(Var::Capture(_))))
    }

    /// Appends the rendered text to `out`.
    pub fn render_into(&self, vars: &RequestVars<'_>, out: &mut String) {
        for part in self.parts.iter() {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Header(name) => {
                    if let Some(v) = vars.req.headers.get(name).and_then(|v| v.to_str().ok()) {
                        out.push_str(v);
                    }
                }
                Part::Var(var) => render_var(var, vars, out),
            }
        }
    }

    /// The rendered text.
    pub fn render(&self, vars: &RequestVars<'_>) -> String {
        let mut out = String::new();
        self.render_into(vars, &mut out);
        out
    }

    /// The rendered text as a header value (the prepared one when there is no variable);
    /// None when the text is not a valid header value.
    pub fn header_value(&self, vars: &RequestVars<'_>) -> Option<HeaderValue> {
        if let Some(v) = &self.literal {
            return Some(v.clone());
        }
        HeaderValue::try_from(self.render(vars)).ok()
    }
}

fn render_var(var: &Var, vars: &RequestVars<'_>, out: &mut String) {
    match var {
        Var::Host => {
            for c in vars.host().chars() {
                out.push(c.to_ascii_lowercase());
            }
        }
        Var::Scheme => out.push_str(vars.scheme),
        Var::RequestUri => out.push_str(vars.req.path_and_query()),
        Var::Path => out.push_str(vars.req.uri.path()),
        Var::Query => out.push_str(vars.req.uri.query().unwrap_or("")),
        Var::ClientIp => {
            if let Some(ip) = vars.client_ip {
                let _ = write!(out, "{ip}");
            }
        }
        Var::RequestId => out.push_str(vars.request_id.unwrap_or("")),
        Var::ServerPort => {
            if let Some(port) = vars.server_port {
                let _ = write!(out, "{port}");
            }
        }
        Var::SslClientVerify => {
            out.push_str(vars.client_cert.map_or("NONE", |c| c.verify_text()));
        }
        Var::SslClientSubject => {
            out.push_str(vars.client_cert.and_then(|c| c.subject()).unwrap_or(""));
        }
        Var::Header(name) => {
            if let Some(v) = vars
                .req
                .headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
            {
                out.push_str(v);
            }
        }
        Var::Capture(n) => {
            if let Some((caps, text)) = vars.captures {
                out.push_str(caps.get(text, usize::from(*n)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn req(uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::new(Method::GET, uri.parse().unwrap());
        for (k, v) in headers {
            r.headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        r
    }

    #[test]
    fn renders_every_variable() {
        let r = req(
            "/a/b?x=1",
            &[("host", "Example.COM:8443"), ("user-agent", "curl/8")],
        );
        let re = regex::Regex::new("^/a/(.*)$").unwrap();
        let caps = Captures::of(&re, r.uri.path()).unwrap();
        let vars = RequestVars {
            client_ip: Some("10.1.2.3".parse().unwrap()),
            scheme: "https",
            server_port: Some(8443),
            request_id: Some("id-1"),
            captures: Some((&caps, r.uri.path())),
            ..RequestVars::new(&r)
        };
        let e = Expander::parse(
            "$scheme://$host:$server_port$request_uri $path $query $client_ip $request_id $http_user_agent [$1] [$2]",
        )
        .unwrap();
        assert_eq!(
            e.render(&vars),
            "https://example.com:8443/a/b?x=1 /a/b x=1 10.1.2.3 id-1 curl/8 [b] []"
        );
        assert!(e.uses_captures());
        assert!(e.literal().is_none());
    }

    #[test]
    fn renders_the_client_certificate() {
        use pingora_core::protocols::tls::ClientCertVerify;
        let r = req("/", &[]);
        let e = Expander::parse("[$ssl_client_verify] [$ssl_client_s_dn]").unwrap();
        assert_eq!(e.render(&RequestVars::new(&r)), "[NONE] []");
        let cert = ClientCertInfo::new(ClientCertVerify::Success, Some("CN=alice,O=Ex".into()));
        let vars = RequestVars {
            client_cert: Some(&cert),
            ..RequestVars::new(&r)
        };
        assert_eq!(e.render(&vars), "[SUCCESS] [CN=alice,O=Ex]");
    }

    #[test]
    fn literal_values_are_prepared_once() {
        let e = Expander::parse("max-age=63072000").unwrap();
        let r = req("/", &[]);
        assert_eq!(
            e.header_value(&RequestVars::new(&r)).unwrap(),
            "max-age=63072000"
        );
        assert!(e.literal().is_some());
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("[::1]"), "::1");
    }
}
