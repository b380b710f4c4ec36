//! The command line: pingora-core's standard options under this binary's name.

use clap::Parser;
use pingora_core::process::ServerArgs;

/// pingora: a reverse proxy configured by one YAML file.
#[derive(Debug, Parser)]
#[command(name = "pingora", version, about, long_about = None)]
pub struct Args {
    /// `-c FILE`, `-d`, `-u`, `-t`.
    #[command(flatten)]
    pub server: ServerArgs,
}
