//! The whole file: Pingora's server keys, this binary's `services` and `admin`, and loading.

use std::path::{Path, PathBuf};

use crate::decode;
use crate::error::{describe_io_error, ConfigError, ConfigErrorKind};
use crate::listen_addr::ListenAddr;
use crate::locate::PositionIndex;
use crate::observability::{AccessLogConf, LogLevel};
use crate::service::ServiceConf;
use crate::validate::{self, Reporter};

/// The configuration file: every key of Pingora's `ServerConf` plus `services` and `admin`.
///
/// `Default` gives the documented defaults (and no services).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "RawServerConf")]
pub struct ServerConf {
    /// Schema version; only 1 exists.
    pub version: usize,
    /// Detach into the background at start (same as `-d`).
    pub daemon: bool,
    /// Worker threads per service runtime.
    pub threads: usize,
    /// One work-stealing runtime per service (true) or `threads` single-threaded runtimes (false).
    pub work_stealing: bool,
    /// Accept tasks per listening socket.
    pub listener_tasks_per_fd: usize,
    /// Where the serving process writes its PID.
    pub pid_file: PathBuf,
    /// The server's own log; `None` logs to stderr.
    pub error_log: Option<PathBuf>,
    /// Unix socket used to hand listening sockets to a new instance.
    pub upgrade_sock: PathBuf,
    /// One-second retries of each side of the socket hand-over.
    pub upgrade_sock_connect_accept_max_retries: usize,
    /// User to switch to after binding, when started as root.
    pub user: Option<String>,
    /// Group to switch to after binding, when started as root.
    pub group: Option<String>,
    /// Working directory of the daemon.
    pub working_directory: Option<PathBuf>,
    /// CA bundle (PEM) for verifying upstream TLS; `None` uses the system roots.
    pub ca_file: Option<PathBuf>,
    /// Seconds the old instance keeps accepting after a hand-over, before shutdown begins.
    pub grace_period_seconds: Option<u64>,
    /// Most seconds given to in-flight work after accepting stops.
    pub graceful_shutdown_timeout_seconds: Option<u64>,
    /// Idle upstream connections kept, per service.
    pub upstream_keepalive_pool_size: usize,
    /// Number of dedicated thread pools for upstream connects.
    pub upstream_connect_offload_threadpools: Option<usize>,
    /// Threads in each upstream-connect pool.
    pub upstream_connect_offload_thread_per_pool: Option<usize>,
    /// Local IPv4 addresses upstream connections are bound to (one picked per connection).
    pub client_bind_to_ipv4: Vec<String>,
    /// Local IPv6 addresses upstream connections are bound to (one picked per connection).
    pub client_bind_to_ipv6: Vec<String>,
    /// Write upstream TLS session keys to `$SSLKEYLOGFILE`.
    pub upstream_debug_ssl_keylog: bool,
    /// Cap on retries of a retryable upstream failure.
    pub max_retries: usize,
    /// Cap of each runtime's blocking thread pool; `None` keeps tokio's default.
    /// `tokio: { blocking_threads: N }` is accepted as an alias.
    pub max_blocking_threads: Option<usize>,
    /// Seconds an idle blocking thread lives; `None` keeps tokio's default.
    pub blocking_threads_ttl_seconds: Option<u64>,
    /// With `daemon`, the foreground parent exits only once the child is ready.
    pub daemon_wait_for_ready: bool,
    /// Most seconds the foreground parent waits for the daemon to be ready.
    pub daemon_ready_timeout_seconds: u64,
    /// Most seconds the daemon retries telling its parent it is ready.
    pub daemon_notify_timeout_seconds: u64,
    /// The proxy services this binary runs.
    pub services: Vec<ServiceConf>,
    /// The optional admin listener (`GET /health`, `GET /metrics`).
    pub admin: Option<AdminConf>,
    /// The per-request access log (off unless it has a `path`).
    pub access_log: AccessLogConf,
    /// The least severe message kept in `error_log` (`PINGORA_LOG` overrides it).
    pub log_level: LogLevel,
}

impl ServerConf {
    /// The top-level YAML keys (including the `tokio` alias section).
    pub const FIELDS: &'static [&'static str] = &[
        "version",
        "daemon",
        "threads",
        "work_stealing",
        "listener_tasks_per_fd",
        "pid_file",
        "error_log",
        "upgrade_sock",
        "upgrade_sock_connect_accept_max_retries",
        "user",
        "group",
        "working_directory",
        "ca_file",
        "grace_period_seconds",
        "graceful_shutdown_timeout_seconds",
        "upstream_keepalive_pool_size",
        "upstream_connect_offload_threadpools",
        "upstream_connect_offload_thread_per_pool",
        "client_bind_to_ipv4",
        "client_bind_to_ipv6",
        "upstream_debug_ssl_keylog",
        "max_retries",
        "max_blocking_threads",
        "tokio",
        "blocking_threads_ttl_seconds",
        "daemon_wait_for_ready",
        "daemon_ready_timeout_seconds",
        "daemon_notify_timeout_seconds",
        "services",
        "admin",
        "access_log",
        "log_level",
    ];

    /// Reads, parses and validates the file at `path` (with TLS support assumed).
    pub fn load(path: impl AsRef<Path>) -> Result<ServerConf, ConfigError> {
        ServerConf::load_with(path, &ValidateOptions::default())
    }

    /// Reads, parses and validates the file at `path` under `opts`.
    pub fn load_with(
        path: impl AsRef<Path>,
        opts: &ValidateOptions,
    ) -> Result<ServerConf, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| {
            ConfigError::new(
                &file,
                ConfigErrorKind::Read,
                "",
                format!(
                    "cannot read the configuration file: {}",
                    describe_io_error(&err)
                ),
            )
            .caused_by(err)
        })?;
        ServerConf::from_yaml_str_with(&text, &file, opts)
    }

    /// Parses and validates YAML `yaml`; `origin` names it in errors (e.g. `<string>`).
    pub fn from_yaml_str(yaml: &str, origin: &str) -> Result<ServerConf, ConfigError> {
        ServerConf::from_yaml_str_with(yaml, origin, &ValidateOptions::default())
    }

    /// Parses and validates YAML `yaml` under `opts`; `origin` names it in errors.
    pub fn from_yaml_str_with(
        yaml: &str,
        origin: &str,
        opts: &ValidateOptions,
    ) -> Result<ServerConf, ConfigError> {
        let index = PositionIndex::build(yaml).map_err(|err| {
            ConfigError::new(
                origin,
                ConfigErrorKind::Syntax,
                "",
                format!("invalid YAML: {}", err.message),
            )
            .at(Some(err.position))
        })?;
        let raw: RawServerConf = if index.is_empty() {
            RawServerConf::default()
        } else {
            decode::decode(yaml, origin, &index)?
        };
        let reporter = Reporter::new(origin, Some(&index));
        let conf = raw.into_server_conf().map_err(|msg| {
            reporter.error(ConfigErrorKind::Invalid, "tokio.blocking_threads", msg)
        })?;
        validate::validate_server(&conf, opts, &reporter)?;
        Ok(conf)
    }

    /// Checks every rule of the schema that types alone do not enforce, and that the files
    /// it names (TLS certificates and keys, `ca_file`) exist and are readable.
    ///
    /// Errors carry key paths but no line numbers (there is no source text here) and name the
    /// file `<config>`; `load` and `from_yaml_str` report the same errors with positions.
    pub fn validate(&self, opts: &ValidateOptions) -> Result<(), ConfigError> {
        validate::validate_server(self, opts, &Reporter::new("<config>", None))
    }

    /// Worker threads of `service`: its own `threads`, else the top-level `threads`.
    pub fn effective_threads(&self, service: &ServiceConf) -> usize {
        service.threads.unwrap_or(self.threads)
    }
}

impl Default for ServerConf {
    fn default() -> Self {
        ServerConf {
            version: 1,
            daemon: false,
            threads: 1,
            work_stealing: true,
            listener_tasks_per_fd: 1,
            pid_file: PathBuf::from("/tmp/pingora.pid"),
            error_log: None,
            upgrade_sock: PathBuf::from("/tmp/pingora_upgrade.sock"),
            upgrade_sock_connect_accept_max_retries: 5,
            user: None,
            group: None,
            working_directory: None,
            ca_file: None,
            grace_period_seconds: None,
            graceful_shutdown_timeout_seconds: None,
            upstream_keepalive_pool_size: 128,
            upstream_connect_offload_threadpools: None,
            upstream_connect_offload_thread_per_pool: None,
            client_bind_to_ipv4: Vec::new(),
            client_bind_to_ipv6: Vec::new(),
            upstream_debug_ssl_keylog: false,
            max_retries: 16,
            max_blocking_threads: None,
            blocking_threads_ttl_seconds: None,
            daemon_wait_for_ready: false,
            daemon_ready_timeout_seconds: 600,
            daemon_notify_timeout_seconds: 60,
            services: Vec::new(),
            admin: None,
            access_log: AccessLogConf::default(),
            log_level: LogLevel::default(),
        }
    }
}

/// What validation may assume about the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateOptions {
    /// Whether the binary can do TLS; when false any `tls:` section is an error.
    pub tls_supported: bool,
    /// Whether the binary has load balancing; when false an `lb` other than
    /// `round_robin` and any `health_check` are errors.
    pub lb_supported: bool,
    /// Whether the binary can compress responses; when false any `compression:`
    /// section is an error.
    pub compression_supported: bool,
    /// Whether the binary can keep rate limits on Redis; when false any
    /// `backend: redis` is an error.
    pub redis_supported: bool,
    /// Whether the binary can serve HTTP/3; when false any `http3: true` is an error.
    pub http3_supported: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            tls_supported: true,
            lb_supported: true,
            compression_supported: true,
            redis_supported: true,
            http3_supported: true,
        }
    }
}

/// The admin listener (`admin:`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConf {
    /// `IP:PORT` or `unix:/path` of the admin endpoint.
    pub addr: ListenAddr,
    /// A file holding the bearer token every `POST` (and every `GET` from off
    /// loopback) must carry. Without it, `POST`s are accepted from loopback only.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl AdminConf {
    /// The YAML keys of the `admin` section.
    pub const FIELDS: &'static [&'static str] = &["addr", "token_file"];
}

impl Default for AdminConf {
    /// `127.0.0.1:9901`.
    fn default() -> Self {
        AdminConf {
            addr: ListenAddr::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], 9901))),
            token_file: None,
        }
    }
}

/// The token in an `admin.token_file`: the file's text without surrounding whitespace
/// (so a final newline does not count). Validation refuses an empty token, inner
/// whitespace and control characters.
pub fn read_token_file(path: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}

/// The `tokio:` section, an alias for tokio-related top-level keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokioConf {
    /// Same as the top-level `max_blocking_threads`.
    pub blocking_threads: Option<usize>,
}

impl TokioConf {
    /// The YAML keys of the `tokio` section.
    pub const FIELDS: &'static [&'static str] = &["blocking_threads"];
}

/// The file as written, before the `tokio` alias is folded in.
#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawServerConf {
    version: usize,
    daemon: bool,
    threads: usize,
    work_stealing: bool,
    listener_tasks_per_fd: usize,
    pid_file: PathBuf,
    error_log: Option<PathBuf>,
    upgrade_sock: PathBuf,
    upgrade_sock_connect_accept_max_retries: usize,
    user: Option<String>,
    group: Option<String>,
    working_directory: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    grace_period_seconds: Option<u64>,
    graceful_shutdown_timeout_seconds: Option<u64>,
    upstream_keepalive_pool_size: usize,
    upstream_connect_offload_threadpools: Option<usize>,
    upstream_connect_offload_thread_per_pool: Option<usize>,
    client_bind_to_ipv4: Vec<String>,
    client_bind_to_ipv6: Vec<String>,
    upstream_debug_ssl_keylog: bool,
    max_retries: usize,
    max_blocking_threads: Option<usize>,
    tokio: Option<TokioConf>,
    blocking_threads_ttl_seconds: Option<u64>,
    daemon_wait_for_ready: bool,
    daemon_ready_timeout_seconds: u64,
    daemon_notify_timeout_seconds: u64,
    services: Vec<ServiceConf>,
    admin: Option<AdminConf>,
    access_log: AccessLogConf,
    log_level: LogLevel,
}

impl Default for RawServerConf {
    fn default() -> Self {
        let d = ServerConf::default();
        RawServerConf {
            version: d.version,
            daemon: d.daemon,
            threads: d.threads,
            work_stealing: d.work_stealing,
            listener_tasks_per_fd: d.listener_tasks_per_fd,
            pid_file: d.pid_file,
            error_log: d.error_log,
            upgrade_sock: d.upgrade_sock,
            upgrade_sock_connect_accept_max_retries: d.upgrade_sock_connect_accept_max_retries,
            user: d.user,
            group: d.group,
            working_directory: d.working_directory,
            ca_file: d.ca_file,
            grace_period_seconds: d.grace_period_seconds,
            graceful_shutdown_timeout_seconds: d.graceful_shutdown_timeout_seconds,
            upstream_keepalive_pool_size: d.upstream_keepalive_pool_size,
            upstream_connect_offload_threadpools: d.upstream_connect_offload_threadpools,
            upstream_connect_offload_thread_per_pool: d.upstream_connect_offload_thread_per_pool,
            client_bind_to_ipv4: d.client_bind_to_ipv4,
            client_bind_to_ipv6: d.client_bind_to_ipv6,
            upstream_debug_ssl_keylog: d.upstream_debug_ssl_keylog,
            max_retries: d.max_retries,
            max_blocking_threads: d.max_blocking_threads,
            tokio: None,
            blocking_threads_ttl_seconds: d.blocking_threads_ttl_seconds,
            daemon_wait_for_ready: d.daemon_wait_for_ready,
            daemon_ready_timeout_seconds: d.daemon_ready_timeout_seconds,
            daemon_notify_timeout_seconds: d.daemon_notify_timeout_seconds,
            services: d.services,
            admin: d.admin,
            access_log: d.access_log,
            log_level: d.log_level,
        }
    }
}

impl RawServerConf {
    /// Folds `tokio.blocking_threads` into `max_blocking_threads`; both set is an error.
    fn into_server_conf(self) -> Result<ServerConf, String> {
        let alias = self.tokio.and_then(|t| t.blocking_threads);
        let max_blocking_threads = match (self.max_blocking_threads, alias) {
            (Some(_), Some(_)) => {
                return Err("`tokio.blocking_threads` is an alias of `max_blocking_threads`; set only one of them".to_string());
            }
            (direct, alias) => direct.or(alias),
        };
        Ok(ServerConf {
            version: self.version,
            daemon: self.daemon,
            threads: self.threads,
            work_stealing: self.work_stealing,
            listener_tasks_per_fd: self.listener_tasks_per_fd,
            pid_file: self.pid_file,
            error_log: self.error_log,
            upgrade_sock: self.upgrade_sock,
            upgrade_sock_connect_accept_max_retries: self.upgrade_sock_connect_accept_max_retries,
            user: self.user,
            group: self.group,
            working_directory: self.working_directory,
            ca_file: self.ca_file,
            grace_period_seconds: self.grace_period_seconds,
            graceful_shutdown_timeout_seconds: self.graceful_shutdown_timeout_seconds,
            upstream_keepalive_pool_size: self.upstream_keepalive_pool_size,
            upstream_connect_offload_threadpools: self.upstream_connect_offload_threadpools,
            upstream_connect_offload_thread_per_pool: self.upstream_connect_offload_thread_per_pool,
            client_bind_to_ipv4: self.client_bind_to_ipv4,
            client_bind_to_ipv6: self.client_bind_to_ipv6,
            upstream_debug_ssl_keylog: self.upstream_debug_ssl_keylog,
            max_retries: self.max_retries,
            max_blocking_threads,
            blocking_threads_ttl_seconds: self.blocking_threads_ttl_seconds,
            daemon_wait_for_ready: self.daemon_wait_for_ready,
            daemon_ready_timeout_seconds: self.daemon_ready_timeout_seconds,
            daemon_notify_timeout_seconds: self.daemon_notify_timeout_seconds,
            services: self.services,
            admin: self.admin,
            access_log: self.access_log,
            log_level: self.log_level,
        })
    }
}

impl TryFrom<RawServerConf> for ServerConf {
    type Error = String;

    fn try_from(raw: RawServerConf) -> Result<Self, Self::Error> {
        raw.into_server_conf()
    }
}
