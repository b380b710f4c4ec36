//! The process around the server, from the command line to the exit code.
//!
//! [`Server::from_args`](crate::server::Server::from_args) and
//! [`Server::run_forever`](crate::server::Server::run_forever) give any server built
//! on these crates the whole deployment life, in this order: load the configuration
//! file (`-c`) and stop there with `-t`; receive the listening sockets of the running
//! instance (`-u`); bind the rest; daemonize (`-d`, waiting for readiness when
//! configured); drop privileges; catch TERM, INT, QUIT, HUP and USR1; start the
//! services and background work; write the pid file; tell systemd and a waiting parent
//! that the server is ready; hand the listeners over on SIGQUIT (and on SIGHUP after
//! re-reading the file); drain; exit 0, 2 (bad usage or configuration) or 1 (any other
//! start-up failure).
//!
//! The steps are also public one by one: daemon mode, pid file, privilege drop and
//! readiness notification (to a waiting parent and to systemd).

mod args;
mod bootstrap;
mod config;
mod error;
mod hooks;
mod receive;
mod reload;
pub(crate) mod setup;
mod supervisor;

pub mod daemon;
pub mod notify;
pub mod pid_file;
pub mod privileges;

pub use args::ServerArgs;
pub use config::{ConfigCheck, ConfigLoadError, ConfigRules};
pub use error::{BootstrapError, EXIT_CONFIG, EXIT_FAILURE};
pub use hooks::ProcessHooks;
pub use receive::receive_listeners;
pub use reload::current_exe;
