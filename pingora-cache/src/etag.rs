//! Entity tags (RFC 9110 §8.8.3): reading them from `ETag`, `If-None-Match` and
//! `If-Range`, and the weak and strong comparisons (§8.8.3.2).

use http::header::{HeaderMap, HeaderName};

/// One entity tag: whether it is weak (`W/`), and its opaque part with the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntityTag<'a> {
    pub(crate) weak: bool,
    pub(crate) opaque: &'a [u8],
}

impl<'a> EntityTag<'a> {
    /// Reads one entity tag from `value` (surrounding whitespace ignored); `None` when it
    /// is not one (no quotes, text after the closing quote).
    pub(crate) fn parse(value: &'a [u8]) -> Option<EntityTag<'a>> {
        let value = value.trim_ascii();
        let (weak, rest) = match value.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let valid = rest.len() >= 2
            && rest[0] == b'"'
            && rest[rest.len() - 1] == b'"'
            && !rest[1..rest.len() - 1].contains(&b'"');
        valid.then_some(EntityTag { weak, opaque: rest })
    }

    /// Weak comparison: the opaque parts are equal, weak or not.
    pub(crate) fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }

    /// Strong comparison: both strong and the opaque parts equal.
    pub(crate) fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }
}

/// What an `If-None-Match` (or `If-Match`) field list holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TagList<'a> {
    /// `*`: any current representation.
    Any,
    /// The entity tags listed (malformed members skipped).
    Tags(Vec<EntityTag<'a>>),
}

/// The entity tags of every `name` field of `headers`; `None` without such a field.
/// Commas inside the quotes of a tag belong to the tag.
pub(crate) fn tag_list<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<TagList<'a>> {
    let mut fields = headers.get_all(name).iter().peekable();
    fields.peek()?;
    let mut tags = Vec::new();
    for field in fields {
        let mut rest = field.as_bytes();
        loop {
            rest = rest.trim_ascii_start();
            while let Some(r) = rest.strip_prefix(b",") {
                rest = r.trim_ascii_start();
            }
            if rest.is_empty() {
                break;
            }
            if rest[0] == b'*' {
                return Some(TagList::Any);
            }
            let weak_len = if rest.starts_with(b"W/") { 2 } else { 0 };
            let quoted = &rest[weak_len..];
            let end = if quoted.first() == Some(&b'"') {
                quoted[1..]
                    .iter()
                    .position(|&b| b == b'"')
                    .map(|i| weak_len + i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    if let Some(tag) = EntityTag::parse(&rest[..end]) {
                        tags.push(tag);
                    }
                    rest = &rest[end..];
                }
                None => {
                    // Not a tag: skip to the next member.
                    let next = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
                    rest = &rest[next..];
                }
            }
        }
    }
    Some(TagList::Tags(tags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::IF_NONE_MATCH;
    use http::HeaderValue;

    fn tags(values: &[&'static str]) -> Option<Vec<(bool, String)>> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(IF_NONE_MATCH, HeaderValue::from_static(v));
        }
        match tag_list(&h, &IF_NONE_MATCH)? {
            TagList::Any => Some(vec![(false, "*".into())]),
            TagList::Tags(t) => Some(
                t.iter()
                    .map(|t| (t.weak, String::from_utf8_lossy(t.opaque).into_owned()))
                    .collect(),
            ),
        }
    }

    #[test]
    fn lists_are_split_outside_quotes() {
        assert_eq!(tags(&[]), None);
        assert_eq!(
            tags(&["\"a\", W/\"b,c\"", "\"d\""]).unwrap(),
            [
                (false, "\"a\"".to_string()),
                (true, "\"b,c\"".to_string()),
                (false, "\"d\"".to_string())
            ]
        );
        assert_eq!(tags(&["*"]).unwrap(), [(false, "*".to_string())]);
        assert_eq!(
            tags(&["bogus, \"ok\", \"unterminated"]).unwrap(),
            [(false, "\"ok\"".to_string())]
        );
    }

    #[test]
    fn weak_and_strong_comparison() {
        let strong = EntityTag::parse(b"\"v1\"").unwrap();
        let weak = EntityTag::parse(b"W/\"v1\"").unwrap();
        let other = EntityTag::parse(b"\"v2\"").unwrap();
        assert!(strong.weak_eq(&weak) && weak.weak_eq(&weak));
        assert!(strong.strong_eq(&strong));
        assert!(!strong.strong_eq(&weak) && !weak.strong_eq(&weak));
        assert!(!strong.weak_eq(&other));
        assert!(EntityTag::parse(b"v1").is_none());
        assert!(EntityTag::parse(b"\"a\"b\"").is_none());
    }
}
