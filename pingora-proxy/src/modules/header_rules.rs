//! [`HeaderRules`]: header edits (remove, set, add) with template values, for requests
//! sent upstream or responses sent to the client.

use http::header::{HeaderMap, HeaderName};

use super::vars::{Expander, RequestVars};

/// Header edits, applied in the order: remove, set, add. A value whose template renders
/// to something that is not a valid header value is skipped.
#[derive(Debug, Clone, Default)]
pub struct HeaderRules {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, Expander)>,
    add: Vec<(HeaderName, Expander)>,
}

impl HeaderRules {
    /// No edits.
    pub fn new() -> Self {
        HeaderRules::default()
    }

    /// Removes every `name` header.
    pub fn remove(mut self, name: HeaderName) -> Self {
        self.remove.push(name);
        self
    }

    /// Replaces every `name` header with one of this value (or adds it).
    pub fn set(mut self, name: HeaderName, value: Expander) -> Self {
        self.set.push((name, value));
        self
    }

    /// Adds a `name` header beside any already there.
    pub fn add(mut self, name: HeaderName, value: Expander) -> Self {
        self.add.push((name, value));
        self
    }

    /// Whether there are no edits.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Whether a value uses `$1`..`$9`.
    pub fn uses_captures(&self) -> bool {
        self.set
            .iter()
            .chain(&self.add)
            .any(|(_, v)| v.uses_captures())
    }

    /// Edits `headers`; values are rendered with `vars`.
    pub fn apply(&self, headers: &mut HeaderMap, vars: &RequestVars<'_>) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            match value.header_value(vars) {
                Some(v) => {
                    headers.insert(name.clone(), v);
                }
                None => log::debug!("header {name}: rendered value is not a header value"),
            }
        }
        for (name, value) in &self.add {
            match value.header_value(vars) {
                Some(v) => {
                    headers.append(name.clone(), v);
                }
                None => log::debug!("header {name}: rendered value is not a header value"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method};
    use pingora_core::protocols::http::RequestHeader;

    #[test]
    fn remove_then_set_then_add() {
        let rules = HeaderRules::new()
            .remove(HeaderName::from_static("server"))
            .set(
                HeaderName::from_static("x-env"),
                Expander::parse("prod").unwrap(),
            )
            .add(
                HeaderName::from_static("x-via"),
                Expander::parse("$host").unwrap(),
            );
        let mut req = RequestHeader::new(Method::GET, "/".parse().unwrap());
        req.headers
            .insert("host", HeaderValue::from_static("Web.example:80"));
        let mut h = HeaderMap::new();
        h.insert("server", HeaderValue::from_static("origin"));
        h.append("x-env", HeaderValue::from_static("a"));
        h.append("x-env", HeaderValue::from_static("b"));
        h.insert("x-via", HeaderValue::from_static("first"));
        rules.apply(&mut h, &RequestVars::new(&req));
        assert!(h.get("server").is_none());
        assert_eq!(h.get_all("x-env").iter().collect::<Vec<_>>(), ["prod"]);
        assert_eq!(
            h.get_all("x-via").iter().collect::<Vec<_>>(),
            ["first", "web.example"]
        );
    }
}
