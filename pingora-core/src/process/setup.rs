//! What a server was started with: its command line and its configuration file.

use pingora_config::ServerConf;

use super::args::{program_name, ServerArgs};
use super::config::{ConfigLoadError, ConfigRules};

/// The command line, the rules the file is loaded by, and the file as loaded (or why
/// it was refused: reported when the server runs).
#[derive(Debug)]
pub(crate) struct Setup {
    pub(crate) program: String,
    pub(crate) args: ServerArgs,
    pub(crate) rules: ConfigRules,
    pub(crate) conf: Result<ServerConf, ConfigLoadError>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            program: program_name(),
            ..Setup::empty()
        }
    }
}

impl Setup {
    /// What is left behind once a run took the setup: defaults, no file read.
    pub(crate) fn empty() -> Self {
        Setup {
            program: String::new(),
            args: ServerArgs::default(),
            rules: ConfigRules::default(),
            conf: Ok(ServerConf::default()),
        }
    }

    /// Loads `-c` (built-in defaults without it) under `rules`.
    pub(crate) fn load(args: ServerArgs, rules: ConfigRules) -> Self {
        let conf = match &args.conf {
            Some(path) => rules.load(path),
            None => Ok(ServerConf::default()),
        };
        Setup {
            program: program_name(),
            args,
            rules,
            conf,
        }
    }
}
