//! The whole life of a server process, in order: [`Server::run_with`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use pingora_config::ServerConf;

use super::args::ServerArgs;
use super::config::ConfigRules;
use super::daemon::{daemonize, DaemonOptions};
use super::error::BootstrapError;
use super::hooks::ProcessHooks;
use super::pid_file::PidFile;
use super::privileges::{drop_privileges, Identity};
use super::receive::receive_listeners;
use super::setup::Setup;
use super::supervisor::Supervisor;
use crate::server::{Server, ServerOptions, Signals, UpgradeOptions};

impl Server {
    /// A server set up from the process's command line (`-c FILE -d -u -t`,
    /// `--version`, `--help`; see [`ServerArgs::parse_args`]) and the server keys of
    /// the configuration file it names. A file that does not load is reported by
    /// [`Server::run_forever`] (exit code 2).
    #[cfg(feature = "cli")]
    pub fn from_args() -> Server {
        Server::with_args(ServerArgs::parse_args())
    }

    /// A server set up from command-line options parsed elsewhere.
    pub fn with_args(args: ServerArgs) -> Server {
        Server::with_rules(args, ConfigRules::default())
    }

    /// A server set up from `args`, loading the configuration file under `rules` (the
    /// application's own validation, also applied on `-t` and before a reload).
    pub fn with_rules(args: ServerArgs, rules: ConfigRules) -> Server {
        let setup = Setup::load(args, rules);
        let opts = setup
            .conf
            .as_ref()
            .map(ServerOptions::from)
            .unwrap_or_default();
        Server::with_setup(opts, setup)
    }

    /// The configuration file as loaded (built-in defaults without `-c`), `None` when
    /// it was refused. It holds every key of the file, so an application can read keys
    /// of its own schema (such as `services`) from it.
    pub fn configuration(&self) -> Option<&ServerConf> {
        self.setup.conf.as_ref().ok()
    }

    /// The command-line options the server was set up with.
    pub fn args(&self) -> &ServerArgs {
        &self.setup.args
    }

    /// Runs the process until it is told to stop, and returns its exit code: see
    /// [`Server::run_with`]. A failure is logged (to stderr when no logger is installed).
    pub fn run_forever(self) -> ExitCode {
        let program = self.setup.program.clone();
        match self.run_with(&mut ()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                if log::max_level() == log::LevelFilter::Off {
                    eprintln!("{program}: {e}");
                } else {
                    log::error!("{e}");
                }
                ExitCode::from(e.exit_code())
            }
        }
    }

    /// Runs the whole life of the process, with the application's `hooks`:
    ///
    /// 1. the configuration file: a refused one is an error (exit code 2); with `-t`,
    ///    prints that it is valid and returns;
    /// 2. with `-u`, receives the listening sockets of the running instance over
    ///    `upgrade_sock`;
    /// 3. binds every other listener (handed-over ones not configured any more are closed);
    /// 4. with `-d` or `daemon: true`, daemonizes (the foreground parent waits for
    ///    readiness with `daemon_wait_for_ready`);
    /// 5. switches to `user`/`group`, then [`ProcessHooks::after_daemonize`];
    /// 6. catches SIGTERM, SIGINT, SIGQUIT, SIGHUP and SIGUSR1;
    /// 7. starts the services and background services;
    /// 8. writes `pid_file`;
    /// 9. once every listener accepts, tells systemd and a waiting parent;
    /// 10. serves: SIGQUIT hands the listeners to a new instance started with `-u`,
    ///     SIGHUP re-reads the file and starts that instance itself, SIGTERM drains,
    ///     SIGINT stops at once, SIGUSR1 reopens logs;
    /// 11. drains, removes `pid_file` (unless the new instance owns it now) and returns.
    ///
    /// Errors carry their exit code ([`BootstrapError::exit_code`]).
    pub fn run_with(mut self, hooks: &mut dyn ProcessHooks) -> Result<(), BootstrapError> {
        let setup = std::mem::replace(&mut self.setup, Setup::empty());
        let conf = setup.conf?;
        let args = setup.args;
        if args.test {
            let name = args
                .conf
                .as_ref()
                .map_or("built-in defaults".to_string(), |p| p.display().to_string());
            println!("{}: configuration {name} is valid", setup.program);
            return Ok(());
        }
        // Absolute, so that a reload still finds it after the daemon's chdir.
        let conf_path: Option<PathBuf> = args
            .conf
            .as_ref()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
        let daemon = args.daemon || conf.daemon;
        let identity = Identity::resolve(conf.user.as_deref(), conf.group.as_deref())?;

        let mut inherited = if args.upgrade {
            receive_listeners(&conf, &identity)?
        } else {
            Vec::new()
        };
        self.bind_listeners(&mut inherited)?;
        for dropped in inherited {
            log::info!("closing {}: not in the new configuration", dropped.addr());
        }

        let notifier = if daemon {
            daemonize(&DaemonOptions::from(&conf))?
        } else {
            None
        };
        drop_privileges(&identity)?;
        hooks
            .after_daemonize()
            .map_err(BootstrapError::Application)?;

        // Caught from here on: a SIGTERM sent as soon as the pid file appears is graceful.
        let signals = Signals::install()?;
        let services = self.service_count();
        let mut running = self.start()?;
        running.set_upgrade(UpgradeOptions::from(&conf));
        let pid_file =
            PidFile::write(&conf.pid_file).map_err(|source| BootstrapError::PidFile {
                path: conf.pid_file.clone(),
                source,
            })?;
        log::info!(
            "{} {} started (pid {}, {services} service(s))",
            setup.program,
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
        );
        let mut supervisor = Supervisor {
            conf_path,
            rules: setup.rules,
            daemon,
            upgraded: args.upgrade,
            notifier,
            handed_over: false,
            pid_file: conf.pid_file.clone(),
            next_pid_file: None,
            new_instance_timeout: Duration::from_secs(conf.daemon_ready_timeout_seconds.min(60)),
            app: hooks,
        };
        let result = running.run(signals, &mut supervisor);
        // After a hand-over the new instance writes its own pid there, possibly at this
        // very moment: removing "our" file could delete the new one's (read, then unlink).
        if !supervisor.handed_over {
            pid_file.remove();
        }
        log::info!("{} exiting", setup.program);
        Ok(result?)
    }
}
