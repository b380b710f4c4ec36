//! [`PathRewrite`]: changes the path of the request sent upstream; the query is kept.

use bytes::Bytes;
use http::uri::{PathAndQuery, Uri};
use pingora_core::protocols::http::RequestHeader;
use pingora_core::{Error, ErrorKind, Result, Side};
use regex::Regex;

use super::vars::{Captures, Expander, RequestVars};

/// How the path is rewritten. The query string of the request is kept: it follows the
/// new path (after `&` when the new path brings a query of its own).
#[derive(Debug, Clone)]
pub enum PathRewrite {
    /// Removes this prefix when the path starts with it (`/api/users` -> `/users`;
    /// an empty result is `/`).
    StripPrefix(Box<str>),
    /// Replaces the prefix `from` with `to` when the path starts with `from`.
    ReplacePrefix {
        /// The prefix replaced.
        from: Box<str>,
        /// What replaces it.
        to: Box<str>,
    },
    /// When `regex` matches the path, the path becomes `replace`, where `$1`..`$9` are
    /// the captures of `regex`.
    Regex {
        /// Tested on the path.
        regex: Regex,
        /// The new path.
        replace: Expander,
    },
}

impl PathRewrite {
    /// Rewrites the path of `req` (the request going upstream); `vars` describe the
    /// request as received. Returns whether the path changed.
    pub fn apply(&self, req: &mut RequestHeader, vars: &RequestVars<'_>) -> Result<bool> {
        let path = req.uri.path();
        let new_path = match self {
            PathRewrite::StripPrefix(prefix) => match path.strip_prefix(&**prefix) {
                Some(rest) if rest.starts_with('/') => rest.to_string(),
                Some(rest) => format!("/{rest}"),
                None => return Ok(false),
            },
            PathRewrite::ReplacePrefix { from, to } => match path.strip_prefix(&**from) {
                Some(rest) => format!("{to}{rest}"),
                None => return Ok(false),
            },
            PathRewrite::Regex { regex, replace } => {
                let Some(caps) = Captures::of(regex, path) else {
                    return Ok(false);
                };
                let vars = RequestVars {
                    captures: Some((&caps, path)),
                    ..*vars
                };
                let mut out = replace.render(&vars);
                if !out.starts_with('/') {
                    out.insert(0, '/');
                }
                out
            }
        };
        set_path(req, &new_path)?;
        Ok(true)
    }
}

/// Sets the path of `req`'s target, keeping its query and any scheme and authority.
fn set_path(req: &mut RequestHeader, path: &str) -> Result<()> {
    let mut target = String::with_capacity(path.len() + 32);
    target.push_str(path);
    if let Some(query) = req.uri.query() {
        target.push(if path.contains('?') { '&' } else { '?' });
        target.push_str(query);
    }
    let pq = PathAndQuery::from_maybe_shared(Bytes::from(target)).map_err(|e| {
        Error::because(
            ErrorKind::Internal,
            Side::Internal,
            format!(
                "rewritten path `{}` is not a valid request target",
                path.escape_debug()
            ),
            e,
        )
    })?;
    let mut parts = std::mem::take(&mut req.uri).into_parts();
    parts.path_and_query = Some(pq);
    req.uri = Uri::from_parts(parts)
        .map_err(|e| Error::because(ErrorKind::Internal, Side::Internal, "rewritten target", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn rewrite(rule: &PathRewrite, uri: &str) -> String {
        let original = RequestHeader::new(Method::GET, uri.parse().unwrap());
        let mut up = original.clone();
        rule.apply(&mut up, &RequestVars::new(&original)).unwrap();
        up.uri.to_string()
    }

    #[test]
    fn strip_prefix() {
        let r = PathRewrite::StripPrefix("/api".into());
        assert_eq!(rewrite(&r, "/api/users?x=1"), "/users?x=1");
        assert_eq!(rewrite(&r, "/api"), "/");
        assert_eq!(rewrite(&r, "/apix"), "/x");
        assert_eq!(rewrite(&r, "/other"), "/other");
    }

    #[test]
    fn replace_prefix() {
        let r = PathRewrite::ReplacePrefix {
            from: "/old/".into(),
            to: "/new/".into(),
        };
        assert_eq!(rewrite(&r, "/old/a?b=c"), "/new/a?b=c");
        assert_eq!(rewrite(&r, "/older"), "/older");
    }

    #[test]
    fn regex_with_captures() {
        let r = PathRewrite::Regex {
            regex: Regex::new("^/users/([0-9]+)$").unwrap(),
            replace: Expander::parse("/u/$1").unwrap(),
        };
        assert_eq!(rewrite(&r, "/users/42?v=1"), "/u/42?v=1");
        assert_eq!(rewrite(&r, "/users/x"), "/users/x");
        let with_query = PathRewrite::Regex {
            regex: Regex::new("^/s/(.*)$").unwrap(),
            replace: Expander::parse("/search?q=$1").unwrap(),
        };
        assert_eq!(
            rewrite(&with_query, "/s/cats?page=2"),
            "/search?q=cats&page=2"
        );
    }
}
