//! The server keys of the configuration file: how the file is loaded and checked, and
//! what the server, the daemon and the upgrade take from it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pingora_config::{ConfigError, ServerConf, ValidateOptions};

use super::daemon::DaemonOptions;
use crate::runtime::RuntimeOptions;
use crate::server::{BoxError, ServerOptions, UpgradeOptions};

/// An application's own check of a loaded configuration (for example that its TLS
/// certificates load), run after the schema's validation, at start-up, with `-t` and
/// before a reload.
pub type ConfigCheck = dyn Fn(&ServerConf) -> Result<(), BoxError> + Send + Sync;

/// How a configuration file is loaded: what validation may assume, and an optional
/// check of the application's own. The same rules apply at start-up, with `-t` and on
/// SIGHUP.
#[derive(Clone)]
pub struct ConfigRules {
    validate: ValidateOptions,
    check: Option<Arc<ConfigCheck>>,
}

impl fmt::Debug for ConfigRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigRules")
            .field("validate", &self.validate)
            .field("check", &self.check.is_some())
            .finish()
    }
}

impl Default for ConfigRules {
    /// TLS sections are accepted when this build has TLS (feature `tls`).
    fn default() -> Self {
        ConfigRules::new(ValidateOptions {
            tls_supported: crate::protocols::tls::supported(),
            http3_supported: cfg!(feature = "http3"),
            ..ValidateOptions::default()
        })
    }
}

impl ConfigRules {
    /// Rules validating under `validate`, with no check of the application's own.
    pub fn new(validate: ValidateOptions) -> Self {
        ConfigRules {
            validate,
            check: None,
        }
    }

    /// Adds the application's own check, run after validation.
    pub fn with_check(
        mut self,
        check: impl Fn(&ServerConf) -> Result<(), BoxError> + Send + Sync + 'static,
    ) -> Self {
        self.check = Some(Arc::new(check));
        self
    }

    /// Reads, parses and validates the file at `path`, then runs the check.
    pub fn load(&self, path: &Path) -> Result<ServerConf, ConfigLoadError> {
        let conf = ServerConf::load_with(path, &self.validate)?;
        if let Some(check) = &self.check {
            check(&conf).map_err(|source| ConfigLoadError::Check {
                path: path.to_path_buf(),
                source,
            })?;
        }
        Ok(conf)
    }
}

/// Why a configuration file was refused (exit code 2 at start-up).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigLoadError {
    /// Unreadable, not YAML, or breaking the schema (the error names file, line and key).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The application's own check refused it.
    #[error("{}: {source}", path.display())]
    Check {
        /// The configuration file.
        path: PathBuf,
        /// What the check found.
        #[source]
        source: BoxError,
    },
}

impl From<&ServerConf> for ServerOptions {
    /// `threads`, `work_stealing`, the blocking pool, `listener_tasks_per_fd`,
    /// `grace_period_seconds` and `graceful_shutdown_timeout_seconds`.
    fn from(conf: &ServerConf) -> Self {
        let defaults = ServerOptions::default();
        ServerOptions {
            runtime: RuntimeOptions {
                threads: conf.threads,
                work_stealing: conf.work_stealing,
                max_blocking_threads: conf.max_blocking_threads,
                blocking_threads_ttl: conf.blocking_threads_ttl_seconds.map(Duration::from_secs),
            },
            listener_tasks_per_fd: conf.listener_tasks_per_fd,
            grace_period: conf
                .grace_period_seconds
                .map_or(defaults.grace_period, Duration::from_secs),
            graceful_shutdown_timeout: conf
                .graceful_shutdown_timeout_seconds
                .map_or(defaults.graceful_shutdown_timeout, Duration::from_secs),
        }
    }
}

impl From<&ServerConf> for DaemonOptions {
    /// `daemon_wait_for_ready`, `daemon_ready_timeout_seconds`,
    /// `daemon_notify_timeout_seconds`, `working_directory`, and `error_log` for output.
    fn from(conf: &ServerConf) -> Self {
        DaemonOptions {
            wait_for_ready: conf.daemon_wait_for_ready,
            ready_timeout: Duration::from_secs(conf.daemon_ready_timeout_seconds),
            notify_timeout: Duration::from_secs(conf.daemon_notify_timeout_seconds),
            working_directory: conf.working_directory.clone(),
            output: conf.error_log.clone(),
        }
    }
}

impl From<&ServerConf> for UpgradeOptions {
    /// `upgrade_sock` and `upgrade_sock_connect_accept_max_retries`.
    fn from(conf: &ServerConf) -> Self {
        UpgradeOptions {
            sock: conf.upgrade_sock.clone(),
            connect_retries: u32::try_from(conf.upgrade_sock_connect_accept_max_retries)
                .unwrap_or(u32::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_keys_map_to_options() {
        let conf = ServerConf::from_yaml_str(
            "version: 1\nthreads: 3\nwork_stealing: false\ngrace_period_seconds: 2\nupgrade_sock: /tmp/u.sock\nupgrade_sock_connect_accept_max_retries: 7\ndaemon_wait_for_ready: true\n",
            "<test>",
        )
        .unwrap();
        let server = ServerOptions::from(&conf);
        assert_eq!(server.runtime.threads, 3);
        assert!(!server.runtime.work_stealing);
        assert_eq!(server.grace_period, Duration::from_secs(2));
        assert_eq!(server.graceful_shutdown_timeout, Duration::from_secs(30));
        let upgrade = UpgradeOptions::from(&conf);
        assert_eq!(
            (upgrade.sock.as_path(), upgrade.connect_retries),
            (Path::new("/tmp/u.sock"), 7)
        );
        assert!(DaemonOptions::from(&conf).wait_for_ready);
    }

    #[test]
    fn the_application_check_names_the_file() {
        let dir = std::env::temp_dir().join(format!("config-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.yaml");
        std::fs::write(&path, "version: 1\n").unwrap();
        let rules = ConfigRules::default().with_check(|_| Err("no good".into()));
        let err = rules.load(&path).unwrap_err();
        assert_eq!(err.to_string(), format!("{}: no good", path.display()));
        assert!(matches!(
            ConfigRules::default().load(&dir.join("absent.yaml")),
            Err(ConfigLoadError::Invalid(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
