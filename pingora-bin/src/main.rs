//! `pingora`: a reverse proxy configured by one YAML file.
//!
//! Exit codes: 0 clean exit; 2 bad usage or invalid configuration; 1 any other
//! failure at start-up.
#![warn(missing_docs)]

mod access_log;
mod admin;
mod cli;
mod lifecycle;
mod log;
mod metrics;
mod router;
mod tls;
#[cfg_attr(not(feature = "lb"), path = "upstreams_basic.rs")]
mod upstreams;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pingora_config::ServerConf;
use pingora_core::listener::{BoundListener, ListenAddr};
use pingora_core::process::daemon::{daemonize, DaemonOptions};
use pingora_core::process::pid_file::PidFile;
use pingora_core::process::privileges::{drop_privileges, Identity};
use pingora_core::server::{Signals, UpgradeOptions};

use crate::cli::Args;
use crate::lifecycle::BinLifecycle;

/// Exit code for bad usage or an invalid configuration.
const EXIT_CONFIG: u8 = 2;
/// Exit code for any other start-up failure.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let args = Args::parse();
    let conf = match load_config(&args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("pingora: {msg}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.test {
        let name = args
            .conf
            .as_ref()
            .map_or("built-in defaults".to_string(), |p| p.display().to_string());
        println!("pingora: configuration {name} is valid");
        return ExitCode::SUCCESS;
    }
    match run(&args, conf) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            ::log::error!("{msg}");
            if log::logs_to_file() || !log::is_installed() {
                eprintln!("pingora: {msg}");
            }
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn load_config(args: &Args) -> Result<ServerConf, String> {
    match &args.conf {
        Some(path) => {
            let conf = ServerConf::load_with(path, &wire::validate_options())
                .map_err(|e| e.to_string())?;
            // Certificates and keys are read and matched here, so that `-t` catches a bad
            // PEM file as a configuration error.
            tls::check(&conf).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(conf)
        }
        None => Ok(ServerConf::default()),
    }
}

fn run(args: &Args, conf: ServerConf) -> Result<(), String> {
    log::init(conf.error_log.as_deref(), conf.log_level.as_str()).map_err(|e| {
        format!(
            "cannot open error_log {}: {e}",
            conf.error_log
                .as_deref()
                .unwrap_or("stderr".as_ref())
                .display()
        )
    })?;
    access_log::init(&conf.access_log).map_err(|e| {
        format!(
            "cannot open access_log {}: {e}",
            conf.access_log
                .path
                .as_deref()
                .unwrap_or("-".as_ref())
                .display()
        )
    })?;
    // Absolute, so that a reload still finds it after the daemon's chdir.
    let conf_path: Option<PathBuf> = args
        .conf
        .as_ref()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
    let daemon = args.daemon || conf.daemon;

    let identity = Identity::resolve(conf.user.as_deref(), conf.group.as_deref())
        .map_err(|e| e.to_string())?;
    let (mut server, health_checks) = wire::build_server(&conf)?;
    let mut inherited = if args.upgrade {
        receive_listeners(&conf, &identity)?
    } else {
        Vec::new()
    };
    server
        .bind_listeners(&mut inherited)
        .map_err(|e| e.to_string())?;
    for dropped in inherited {
        ::log::info!("closing {}: not in the new configuration", dropped.addr());
    }

    let notifier = if daemon {
        daemonize(&DaemonOptions {
            wait_for_ready: conf.daemon_wait_for_ready,
            ready_timeout: Duration::from_secs(conf.daemon_ready_timeout_seconds),
            notify_timeout: Duration::from_secs(conf.daemon_notify_timeout_seconds),
            working_directory: conf.working_directory.clone(),
            output: conf.error_log.clone(),
        })
        .map_err(|e| e.to_string())?
    } else {
        None
    };

    drop_privileges(&identity).map_err(|e| e.to_string())?;
    access_log::start().map_err(|e| format!("cannot start the access_log writer: {e}"))?;

    // Caught from here on: a SIGTERM sent as soon as the pid file appears is graceful.
    let signals = Signals::install().map_err(|e| e.to_string())?;
    let mut running = server.start().map_err(|e| e.to_string())?;
    upstreams::spawn_health_checks(health_checks)
        .map_err(|e| format!("cannot start health checks: {e}"))?;
    running.set_upgrade(UpgradeOptions {
        sock: conf.upgrade_sock.clone(),
        connect_retries: u32::try_from(conf.upgrade_sock_connect_accept_max_retries)
            .unwrap_or(u32::MAX),
    });
    let pid_file = PidFile::write(&conf.pid_file)
        .map_err(|e| format!("cannot write pid_file {}: {e}", conf.pid_file.display()))?;
    ::log::info!(
        "pingora {} started (pid {}, {} service(s))",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        conf.services.len()
    );
    let mut hooks = BinLifecycle {
        conf_path,
        daemon,
        upgraded: args.upgrade,
        notifier,
        handed_over: false,
        pid_file: conf.pid_file.clone(),
        next_pid_file: None,
        new_instance_timeout: Duration::from_secs(conf.daemon_ready_timeout_seconds.min(60)),
    };
    let result = running.run(signals, &mut hooks).map_err(|e| e.to_string());
    access_log::finish(Duration::from_secs(2));
    // After a hand-over the new instance writes its own pid there, possibly at this
    // very moment: removing "our" file could delete the new one's (read, then unlink).
    if !hooks.handed_over {
        pid_file.remove();
    }
    ::log::info!("pingora exiting");
    result
}

/// `-u`: waits on `upgrade_sock` for the running instance to hand its listeners over.
fn receive_listeners(conf: &ServerConf, identity: &Identity) -> Result<Vec<BoundListener>, String> {
    let mut receiver =
        pingora_upgrade::UpgradeReceiver::bind(&conf.upgrade_sock).map_err(|e| e.to_string())?;
    // The old instance may already run as the configured user.
    if let Some(uid) = identity.uid {
        receiver = receiver.allow_uid(uid.as_raw());
    }
    let wait = Duration::from_secs(conf.upgrade_sock_connect_accept_max_retries.max(1) as u64);
    ::log::info!(
        "waiting up to {}s for the running instance on {}",
        wait.as_secs(),
        conf.upgrade_sock.display()
    );
    let handed = receiver.receive(wait).map_err(|e| e.to_string())?;
    let mut listeners = Vec::with_capacity(handed.len());
    for h in handed {
        match ListenAddr::parse(&h.addr) {
            Some(addr) => listeners.push(BoundListener::from_fd(addr, h.fd)),
            None => ::log::warn!(
                "ignoring handed-over listener with unknown address {}",
                h.addr
            ),
        }
    }
    ::log::info!("received {} listener(s)", listeners.len());
    Ok(listeners)
}
