//! The standard command line of a server: `-c FILE -d -u -t`.

use std::path::PathBuf;

/// The command-line options every server understands.
///
/// With the `cli` feature, [`ServerArgs::parse_args`] reads them from the process's
/// arguments (`--help` and `--version` included), and a clap application of its own can
/// embed them with `#[command(flatten)]`. Without it, or with another parser, fill the
/// fields yourself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ServerArgs {
    /// The YAML configuration file (built-in defaults without it).
    #[cfg_attr(feature = "cli", arg(short = 'c', long = "conf", value_name = "FILE"))]
    pub conf: Option<PathBuf>,

    /// Detach: double fork, new session, stdio to /dev/null, write pid_file.
    #[cfg_attr(feature = "cli", arg(short = 'd', long = "daemon"))]
    pub daemon: bool,

    /// Take over the listening sockets of the running instance via upgrade_sock.
    #[cfg_attr(feature = "cli", arg(short = 'u', long = "upgrade"))]
    pub upgrade: bool,

    /// Test the configuration and exit: 0 if valid, 2 otherwise. Binds nothing.
    #[cfg_attr(feature = "cli", arg(short = 't', long = "test"))]
    pub test: bool,
}

#[cfg(feature = "cli")]
impl ServerArgs {
    /// Parses the process's arguments. `--help` and `--version` (`-V`) print and exit
    /// 0; a bad argument prints why and exits 2. The program is named after the file
    /// it runs from; its version is pingora-core's.
    pub fn parse_args() -> Self {
        use clap::{Args, FromArgMatches};
        let command = clap::Command::new(program_name())
            .version(concat!("(pingora-core ", env!("CARGO_PKG_VERSION"), ")"))
            .about("A proxy server built on pingora-core");
        let matches = ServerArgs::augment_args(command).get_matches();
        ServerArgs::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// The file name this program runs from (for messages), `server` if unknown.
pub(crate) fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "server".to_string())
}
