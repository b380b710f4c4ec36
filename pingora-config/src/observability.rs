//! This binary's observability keys: `access_log` and `log_level`.

use std::path::PathBuf;

/// The access log (`access_log:`): one line per request.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessLogConf {
    /// The file lines are appended to; `-` writes to stderr; `None` turns the log off.
    pub path: Option<PathBuf>,
    /// How each line is written.
    pub format: AccessLogFormat,
}

impl AccessLogConf {
    /// The YAML keys of the `access_log` section.
    pub const FIELDS: &'static [&'static str] = &["path", "format"];

    /// Whether a line is written per request.
    pub fn is_enabled(&self) -> bool {
        self.path.is_some()
    }

    /// Whether lines go to stderr rather than a file (`path: "-"`).
    pub fn is_stderr(&self) -> bool {
        self.path.as_deref().is_some_and(|p| p.as_os_str() == "-")
    }
}

/// The layout of an access log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    /// Space-separated fields, like the combined log format with extra `key=value` fields.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl AccessLogFormat {
    /// The YAML spellings of the formats.
    pub const NAMES: &'static [&'static str] = &["text", "json"];
}

/// The least severe message the server's own log (`error_log`) keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// Also start, stop, signals and other events of the server's life.
    #[default]
    Info,
    /// Also per-connection details useful when debugging.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The YAML spellings of the levels, least verbose first.
    pub const NAMES: &'static [&'static str] = &["error", "warn", "info", "debug", "trace"];

    /// The YAML spelling of this level.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_as_str() {
        let all = [
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
            LogLevel::Trace,
        ];
        let names: Vec<&str> = all.iter().map(|l| l.as_str()).collect();
        assert_eq!(names, LogLevel::NAMES);
    }

    fn parse(yaml: &str) -> Result<crate::ServerConf, crate::ConfigError> {
        crate::ServerConf::from_yaml_str(yaml, "t.yaml")
    }

    #[test]
    fn keys_parse_with_defaults() {
        let d = parse("").unwrap();
        assert_eq!(d.log_level, LogLevel::Info);
        assert!(!d.access_log.is_enabled());
        assert_eq!(d.access_log.format, AccessLogFormat::Text);
        let c =
            parse("log_level: debug\naccess_log: { path: /tmp/a.log, format: json }\n").unwrap();
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.access_log.path, Some(PathBuf::from("/tmp/a.log")));
        assert_eq!(c.access_log.format, AccessLogFormat::Json);
    }

    #[test]
    fn bad_values_are_located_errors() {
        let e = parse("access_log:\n  path: /tmp/a.log\n  format: jsn\n").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("t.yaml:3"), "{text}");
        assert!(text.contains("access_log.format"), "{text}");
        assert!(text.contains("did you mean `json`"), "{text}");
        let e = parse("access_log: { path: \"\" }\n").unwrap_err();
        assert!(
            e.to_string().contains("access_log.path: must not be empty"),
            "{e}"
        );
        let e = parse("log_level: verbose\n").unwrap_err();
        assert!(e.to_string().contains("log_level"), "{e}");
        let e = parse("access_log: { file: /tmp/a.log }\n").unwrap_err();
        assert!(e.to_string().contains("unknown key `file`"), "{e}");
    }

    #[test]
    fn stderr_and_off() {
        let off = AccessLogConf::default();
        assert!(!off.is_enabled());
        let stderr = AccessLogConf {
            path: Some(PathBuf::from("-")),
            format: AccessLogFormat::Json,
        };
        assert!(stderr.is_enabled() && stderr.is_stderr());
    }
}
