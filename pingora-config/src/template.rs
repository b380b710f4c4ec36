//! The template syntax of header values, `redirect.location` and `rewrite.replace`:
//! literal text with `$name` variables.
//!
//! Pure syntax, no request in sight: the config validator rejects an unknown variable
//! at `-t`, and the proxy modules render parsed templates against a request.
//!
//! - `$host`, `$scheme`, `$request_uri`, `$path`, `$query`, `$client_ip`,
//!   `$request_id`, `$server_port`, `$ssl_client_verify`, `$ssl_client_s_dn`: see [`Var`].
//! - `$http_NAME`: the request header `NAME`, `_` standing for `-` (`$http_user_agent`).
//! - `$1` .. `$9`: a capture of a regular expression (one digit: `$10` is `$1` then `0`).
//! - `${name}` delimits a name from the text after it (`${host}_x`); `$$` is one `$`.

use crate::error::{ConfigError, ConfigErrorKind};

/// A variable of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `$host`: the request's host, without port, lowercase as written.
    Host,
    /// `$scheme`: `http` or `https`.
    Scheme,
    /// `$request_uri`: path and query as received.
    RequestUri,
    /// `$path`: the path as received, without query.
    Path,
    /// `$query`: the query as received, without `?` (empty when none).
    Query,
    /// `$client_ip`: the client's address (after trusted `X-Forwarded-For`).
    ClientIp,
    /// `$request_id`: the request's id (accepted or generated).
    RequestId,
    /// `$server_port`: the port the request came in on.
    ServerPort,
    /// `$ssl_client_verify`: `SUCCESS`, `NONE` or `FAILED:reason`, the client
    /// certificate's verification on a listener with `client_auth` (`NONE` elsewhere).
    SslClientVerify,
    /// `$ssl_client_s_dn`: the client certificate's subject (RFC 2253), empty without one.
    SslClientSubject,
    /// `$http_NAME`: a request header, by its lowercase name with `-` for `_`.
    Header(String),
    /// `$1` .. `$9`: a capture group of a regular expression.
    Capture(u8),
}

impl Var {
    /// The names of the variables that are not `$http_*` or `$1`..`$9`.
    pub const NAMES: &'static [&'static str] = &[
        "host",
        "scheme",
        "request_uri",
        "path",
        "query",
        "client_ip",
        "request_id",
        "server_port",
        "ssl_client_verify",
        "ssl_client_s_dn",
    ];

    fn from_name(name: &str) -> Option<Var> {
        Some(match name {
            "host" => Var::Host,
            "scheme" => Var::Scheme,
            "request_uri" => Var::RequestUri,
            "path" => Var::Path,
            "query" => Var::Query,
            "client_ip" => Var::ClientIp,
            "request_id" => Var::RequestId,
            "server_port" => Var::ServerPort,
            "ssl_client_verify" => Var::SslClientVerify,
            "ssl_client_s_dn" => Var::SslClientSubject,
            _ => {
                let header = name.strip_prefix("http_")?;
                if header.is_empty() {
                    return None;
                }
                Var::Header(header.to_ascii_lowercase().replace('_', "-"))
            }
        })
    }
}

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text copied as is.
    Literal(String),
    /// A value taken from the request.
    Var(Var),
}

/// A parsed template: literal text and variables, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `text`; an unknown variable, a lone `$` or an unclosed `${` is an error
    /// (kind [`ConfigErrorKind::Invalid`], no file or position: the caller adds them).
    pub fn parse(text: &str) -> Result<Template, ConfigError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            let (var, consumed) = parse_var(after)?;
            match var {
                None => literal.push('$'),
                Some(var) => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Var(var));
                }
            }
            rest = &after[consumed..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template { pieces })
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The text when the template has no variable (`Some("")` for an empty one).
    pub fn as_literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// The variables used, in order.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(v),
            Piece::Literal(_) => None,
        })
    }

    /// The highest `$N` used (0 when none).
    pub fn max_capture(&self) -> u8 {
        self.vars()
            .filter_map(|v| match v {
                Var::Capture(n) => Some(*n),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }
}

impl std::str::FromStr for Template {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Template, ConfigError> {
        Template::parse(s)
    }
}

fn template_error(message: String) -> ConfigError {
    ConfigError::new("template", ConfigErrorKind::Invalid, "", message)
}

/// Parses what follows a `$`: the variable (None for `$$`) and the bytes consumed.
fn parse_var(after: &str) -> Result<(Option<Var>, usize), ConfigError> {
    let bytes = after.as_bytes();
    match bytes.first() {
        Some(b'$') => Ok((None, 1)),
        Some(d @ b'0'..=b'9') => {
            if *d == b'0' {
                return Err(template_error(
                    "`$0` is not a variable: captures are `$1` to `$9`".to_string(),
                ));
            }
            Ok((Some(Var::Capture(d - b'0')), 1))
        }
        Some(b'{') => {
            let close = after
                .find('}')
                .ok_or_else(|| template_error("`${` without its closing `}`".to_string()))?;
            let name = &after[1..close];
            if name.len() == 1 && name.as_bytes()[0].is_ascii_digit() {
                let (var, _) = parse_var(name)?;
                return Ok((var, close + 1));
            }
            Ok((Some(named(name)?), close + 1))
        }
        Some(b) if is_name_byte(*b) => {
            let len = bytes.iter().take_while(|b| is_name_byte(**b)).count();
            Ok((Some(named(&after[..len])?), len))
        }
        _ => Err(template_error(
            "`$` must be followed by a variable name (write `$$` for a literal `$`)".to_string(),
        )),
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn named(name: &str) -> Result<Var, ConfigError> {
    if let Some(var) = Var::from_name(name) {
        if let Var::Header(h) = &var {
            if http_token(h) {
                return Ok(var);
            }
        } else {
            return Ok(var);
        }
    }
    let suggestion =
        crate::suggest::closest(name, Var::NAMES.iter().copied().chain(["http_NAME", "1"]));
    Err(template_error(format!(
        "unknown variable `${name}`; known: ${}, $http_NAME, $1..$9",
        Var::NAMES.join(", $")
    ))
    .suggest(suggestion.map(|s| format!("${s}"))))
}

fn http_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-!#$%&'*+.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<Piece> {
        Template::parse(text).expect("parses").pieces
    }

    fn lit(s: &str) -> Piece {
        Piece::Literal(s.to_string())
    }

    #[test]
    fn literals_and_variables() {
        assert_eq!(
            pieces("https://$host$request_uri"),
            vec![
                lit("https://"),
                Piece::Var(Var::Host),
                Piece::Var(Var::RequestUri)
            ]
        );
        assert_eq!(pieces("plain"), vec![lit("plain")]);
        assert_eq!(pieces(""), vec![]);
        assert_eq!(
            Template::parse("x").unwrap().as_literal(),
            Some("x"),
            "a template without variables is a literal"
        );
    }

    #[test]
    fn captures_headers_braces_and_dollars() {
        assert_eq!(
            pieces("/u/$1/$23"),
            vec![
                lit("/u/"),
                Piece::Var(Var::Capture(1)),
                lit("/"),
                Piece::Var(Var::Capture(2)),
                lit("3")
            ]
        );
        assert_eq!(
            pieces("$http_x_user_id"),
            vec![Piece::Var(Var::Header("x-user-id".into()))]
        );
        assert_eq!(pieces("${host}_a"), vec![Piece::Var(Var::Host), lit("_a")]);
        assert_eq!(pieces("${1}0"), vec![Piece::Var(Var::Capture(1)), lit("0")]);
        assert_eq!(pieces("cost: $$5"), vec![lit("cost: $5")]);
        assert_eq!(Template::parse("$9$1").unwrap().max_capture(), 9);
    }

    #[test]
    fn unknown_and_malformed_variables() {
        let e = Template::parse("$hots").unwrap_err();
        assert!(e.message.contains("unknown variable `$hots`"), "{e}");
        assert_eq!(e.suggestion.as_deref(), Some("$host"));
        assert!(Template::parse("$http_").is_err());
        assert!(Template::parse("a $").is_err());
        assert!(Template::parse("$ x").is_err());
        assert!(Template::parse("${host").is_err());
        assert!(Template::parse("$0").is_err());
    }
}
