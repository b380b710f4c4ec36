//! The one error type of this crate: where a configuration problem is, and what it is.

use std::fmt;
use std::sync::Arc;

/// What kind of problem a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The configuration file itself could not be read.
    Read,
    /// The text is not well-formed YAML.
    Syntax,
    /// A key that the schema does not know.
    UnknownKey,
    /// A value of the wrong type or shape (string where a number belongs, bad enum value, ...).
    Type,
    /// Well-typed values that break a rule of the schema (duplicate names, zero timeouts, ...).
    Invalid,
    /// A file the configuration refers to (TLS certificate, key, CA bundle) is missing or unreadable.
    File,
}

/// A configuration error: file, position, key path, message and an optional suggestion.
///
/// Its `Display` is one line, e.g.
/// ``conf.yaml:3:1: unknown key `thread` (did you mean `threads`?)`` or
/// ``conf.yaml:12:9: services[0].upstreams.api.lb: unknown variant `x`, expected one of ...``.
///
/// The details are boxed (keeping `Result`s small) and reachable as fields through `Deref`:
/// `err.line`, `err.key_path`, `err.suggestion`, ...
#[derive(Debug, Clone)]
pub struct ConfigError(Box<ConfigErrorDetails>);

/// The parts of a [`ConfigError`].
#[derive(Debug, Clone)]
pub struct ConfigErrorDetails {
    /// The configuration file name, or the origin given to `from_yaml_str` (e.g. `<string>`).
    pub file: String,
    /// 1-based line of the offending node, when known.
    pub line: Option<usize>,
    /// 1-based column of the offending node, when known.
    pub column: Option<usize>,
    /// Key path of the offending value, like `services[0].upstreams.api.lb` (empty for the root).
    pub key_path: String,
    /// What is wrong, without position or suggestion.
    pub message: String,
    /// A close, valid alternative to what was written (shown as "did you mean `X`?").
    pub suggestion: Option<String>,
    /// The category of the problem.
    pub kind: ConfigErrorKind,
    /// The underlying I/O error for [`ConfigErrorKind::Read`] and [`ConfigErrorKind::File`].
    pub cause: Option<Arc<std::io::Error>>,
}

// Written by hand rather than derived: the cause sits inside the boxed details.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl std::ops::Deref for ConfigError {
    type Target = ConfigErrorDetails;

    fn deref(&self) -> &ConfigErrorDetails {
        &self.0
    }
}

impl ConfigError {
    /// A new error of `kind` at `key_path` with no position, no suggestion and no cause.
    pub fn new(
        file: impl Into<String>,
        kind: ConfigErrorKind,
        key_path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError(Box::new(ConfigErrorDetails {
            file: file.into(),
            line: None,
            column: None,
            key_path: key_path.into(),
            message: message.into(),
            suggestion: None,
            kind,
            cause: None,
        }))
    }

    /// Sets the 1-based line and column.
    #[must_use]
    pub fn at(mut self, position: Option<(usize, usize)>) -> Self {
        if let Some((line, column)) = position {
            self.0.line = Some(line);
            self.0.column = Some(column);
        }
        self
    }

    /// Sets the "did you mean" suggestion.
    #[must_use]
    pub fn suggest(mut self, suggestion: Option<String>) -> Self {
        self.0.suggestion = suggestion;
        self
    }

    /// Attaches the I/O error that caused this one.
    #[must_use]
    pub fn caused_by(mut self, cause: std::io::Error) -> Self {
        self.0.cause = Some(Arc::new(cause));
        self
    }

    /// The details of this error, owned.
    pub fn into_details(self) -> ConfigErrorDetails {
        *self.0
    }

    fn write_to(&self, out: &mut impl fmt::Write) -> fmt::Result {
        write!(out, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(out, ":{line}")?;
            if let Some(column) = self.column {
                write!(out, ":{column}")?;
            }
        }
        write!(out, ": ")?;
        if !self.key_path.is_empty() {
            write!(out, "{}: ", self.key_path)?;
        }
        write!(out, "{}", self.message)?;
        if let Some(suggestion) = &self.suggestion {
            write!(out, " (did you mean `{suggestion}`?)")?;
        }
        Ok(())
    }
}

/// Describes an I/O error in a few words, for messages about files.
pub(crate) fn describe_io_error(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_position_path_and_suggestion() {
        let err = ConfigError::new(
            "conf.yaml",
            ConfigErrorKind::Type,
            "services[0].upstreams.api.lb",
            "unknown variant `round_robbin`",
        )
        .at(Some((12, 9)))
        .suggest(Some("round_robin".into()));
        assert_eq!(
            err.to_string(),
            "conf.yaml:12:9: services[0].upstreams.api.lb: unknown variant `round_robbin` (did you mean `round_robin`?)"
        );
    }

    #[test]
    fn display_without_position_or_path() {
        let err = ConfigError::new("<string>", ConfigErrorKind::Invalid, "", "bad");
        assert_eq!(err.to_string(), "<string>: bad");
    }

    #[test]
    fn io_cause_is_the_source() {
        let err = ConfigError::new("c.yaml", ConfigErrorKind::Read, "", "cannot read")
            .caused_by(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(std::error::Error::source(&err).is_some());
    }
}
