//! YAML text to typed configuration: runs serde-saphyr and turns its errors into
//! [`ConfigError`]s with a key path, a friendly message and a suggestion.

use serde::de::DeserializeOwned;
use serde_saphyr::{DefaultMessageFormatter, Error as YamlError, MessageFormatter};

use crate::error::{ConfigError, ConfigErrorKind};
use crate::locate::{parent_path, Position, PositionIndex};
use crate::suggest;

/// Decodes `text` into `T`, reporting errors against `file` with paths from `index`.
pub(crate) fn decode<T: DeserializeOwned>(
    text: &str,
    file: &str,
    index: &PositionIndex,
) -> Result<T, ConfigError> {
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options(text, options).map_err(|err| translate(&err, file, index))
}

/// The error an alias or snippet wrapper carries.
fn innermost(mut err: &YamlError) -> &YamlError {
    while let YamlError::AliasError { error, .. } | YamlError::WithSnippet { error, .. } = err {
        err = error;
    }
    err
}

/// Turns one serde-saphyr error into a [`ConfigError`].
pub(crate) fn translate(err: &YamlError, file: &str, index: &PositionIndex) -> ConfigError {
    let position: Option<Position> = err
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| (to_usize(l.line()), to_usize(l.column()).max(1)));
    let path_at = |p: Option<Position>| {
        p.and_then(|p| index.path_at(p))
            .unwrap_or_default()
            .to_string()
    };
    let inner = innermost(err);
    let (kind, key_path, message, suggestion) = match inner {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => {
            let key_path = match position.and_then(|p| index.key_at(p, field)) {
                Some(path) => parent_path(path).to_string(),
                None => parent_path(&path_at(position)).to_string(),
            };
            let suggestion = suggest::closest(field, expected.iter().copied());
            // With a suggestion the line stays short; without one, list what is valid.
            let listing = if suggestion.is_some() {
                String::new()
            } else {
                expected_list(expected, "keys")
            };
            (
                ConfigErrorKind::UnknownKey,
                key_path,
                format!("unknown key `{field}`{listing}"),
                suggestion,
            )
        }
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => (
            ConfigErrorKind::Type,
            path_at(position),
            format!(
                "unknown variant `{variant}`, expected one of {}",
                expected.join(", ")
            ),
            suggest::closest(variant, expected.iter().copied()),
        ),
        YamlError::SerdeMissingField { field, .. } => (
            ConfigErrorKind::Type,
            // Reported at the mapping's first key: the mapping is that key's parent.
            match position.and_then(|p| index.key_path_at(p)) {
                Some(key_path) => parent_path(key_path).to_string(),
                None => path_at(position),
            },
            format!("missing required key `{field}`"),
            None,
        ),
        YamlError::DuplicateMappingKey { key, .. } => {
            let path = path_at(position);
            let message = match key {
                Some(key) => format!("duplicate key `{key}`"),
                None => "duplicate key".to_string(),
            };
            (
                ConfigErrorKind::Invalid,
                parent_path(&path).to_string(),
                message,
                None,
            )
        }
        YamlError::MultipleDocuments { .. } => (
            ConfigErrorKind::Syntax,
            String::new(),
            "the file holds more than one YAML document (`---`); only one is allowed".to_string(),
            None,
        ),
        YamlError::Unexpected { expected, .. } => {
            let path = path_at(position);
            let what = match *expected {
                "sequence start" => "a list".to_string(),
                "mapping start" if path.is_empty() => {
                    "a map of keys (like `threads: 4`) at the top of the file".to_string()
                }
                "mapping start" => "a map (`key: value` lines or `{ key: value }`)".to_string(),
                other => other.to_string(),
            };
            let found = match position.and_then(|p| index.scalar_at(p)) {
                Some("" | "~" | "null") => ", found an empty value".to_string(),
                Some(text) => format!(", found `{}`", text.escape_debug()),
                None => String::new(),
            };
            (
                ConfigErrorKind::Type,
                path,
                format!("expected {what}{found}"),
                None,
            )
        }
        YamlError::InvalidScalar { ty, .. } => (
            ConfigErrorKind::Type,
            path_at(position),
            scalar_message(ty, position.and_then(|p| index.scalar_at(p))),
            None,
        ),
        other => {
            let text = DefaultMessageFormatter.format_message(other);
            let (message, suggestion) = split_suggestion(&text);
            (
                ConfigErrorKind::Type,
                path_at(position),
                message,
                suggestion,
            )
        }
    };
    ConfigError::new(file, kind, key_path, message)
        .at(position)
        .suggest(suggestion)
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn expected_list(expected: &[&str], what: &str) -> String {
    if expected.is_empty() {
        String::new()
    } else {
        format!("; valid {what} here: {}", expected.join(", "))
    }
}

/// Splits a trailing "(did you mean `X`?)" off a message produced by our own deserializers.
fn split_suggestion(text: &str) -> (String, Option<String>) {
    const OPEN: &str = " (did you mean `";
    const CLOSE: &str = "`?)";
    if let Some(start) = text.rfind(OPEN) {
        if let Some(name) = text[start + OPEN.len()..].strip_suffix(CLOSE) {
            return (text[..start].to_string(), Some(name.to_string()));
        }
    }
    (text.to_string(), None)
}

/// A readable message for a scalar that does not fit the expected type.
fn scalar_message(ty: &str, found: Option<&str>) -> String {
    let range = match ty {
        "u8" => Some(u64::from(u8::MAX)),
        "u16" => Some(u64::from(u16::MAX)),
        "u32" => Some(u64::from(u32::MAX)),
        "u64" | "usize" => Some(u64::MAX),
        _ => None,
    };
    let shown = found
        .map(|f| format!(", found `{}`", f.escape_debug()))
        .unwrap_or_default();
    match (range, found) {
        (Some(max), Some(text)) => {
            let trimmed = text.trim();
            if trimmed.starts_with('-') && trimmed[1..].chars().all(|c| c.is_ascii_digit()) {
                format!("expected a non-negative integer{shown}")
            } else if !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit()) {
                format!("integer too large, must be at most {max}{shown}")
            } else {
                format!("expected an integer{shown}")
            }
        }
        (Some(_), None) => "expected a non-negative integer".to_string(),
        (None, _) if ty == "bool" || ty == "boolean" => {
            format!("expected `true` or `false`{shown}")
        }
        (None, _) => format!("expected a value of type {ty}{shown}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_suggestions() {
        assert_eq!(
            split_suggestion("bad `x` (did you mean `y`?)"),
            ("bad `x`".to_string(), Some("y".to_string()))
        );
        assert_eq!(split_suggestion("plain"), ("plain".to_string(), None));
    }

    #[test]
    fn scalar_messages() {
        assert_eq!(
            scalar_message("u32", Some("-1")),
            "expected a non-negative integer, found `-1`"
        );
        assert_eq!(
            scalar_message("u16", Some("70000")),
            "integer too large, must be at most 65535, found `70000`"
        );
        assert_eq!(
            scalar_message("u64", Some("x")),
            "expected an integer, found `x`"
        );
        assert_eq!(
            scalar_message("bool", Some("maybe")),
            "expected `true` or `false`, found `maybe`"
        );
    }
}
