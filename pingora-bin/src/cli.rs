//! The command line.

use std::path::PathBuf;

use clap::Parser;

/// pingora: a reverse proxy configured by one YAML file.
#[derive(Debug, Parser)]
#[command(name = "pingora", version, about, long_about = None)]
pub struct Args {
    /// The YAML configuration file (built-in defaults without it).
    #[arg(short = 'c', long = "conf", value_name = "FILE")]
    pub conf: Option<PathBuf>,

    /// Detach: double fork, new session, stdio to /dev/null, write pid_file.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,

    /// Take over the listening sockets of the running instance via upgrade_sock.
    #[arg(short = 'u', long = "upgrade")]
    pub upgrade: bool,

    /// Test the configuration and exit: 0 if valid, 2 otherwise. Binds nothing.
    #[arg(short = 't', long = "test")]
    pub test: bool,
}
