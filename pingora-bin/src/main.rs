//! `pingora`: a reverse proxy configured by one YAML file.
//!
//! The process life (command line, `-t`, upgrade, daemon, privileges, signals, pid
//! file, exit codes) is pingora-core's bootstrap; this binary adds the YAML services,
//! its logs, metrics and admin endpoint.
//!
//! Exit codes: 0 clean exit; 2 bad usage or invalid configuration; 1 any other
//! failure at start-up.
#![warn(missing_docs)]

mod access_log;
mod admin;
#[cfg(feature = "cache")]
mod cache;
mod cli;
mod error;
mod lifecycle;
mod limits;
mod log;
mod metrics;
mod policy;
mod retry;
mod router;
mod tls;
#[cfg_attr(not(feature = "lb"), path = "upstreams_basic.rs")]
mod upstreams;
mod wire;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pingora_config::ServerConf;
use pingora_core::process::ConfigRules;
use pingora_core::server::Server;

use crate::error::BinError;
use crate::lifecycle::BinHooks;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    // Certificates and keys are loaded here too, so that `-t` and a reload catch a bad
    // PEM file as a configuration error.
    let rules = ConfigRules::new(wire::validate_options())
        .with_check(|conf| tls::check(conf).map_err(Into::into));
    let server = Server::with_rules(args.server, rules);
    let result = match server
        .configuration()
        .filter(|_| !server.args().test)
        .cloned()
    {
        // `-t`, or a file that does not load: the bootstrap says so (exit 0 or 2).
        None => server.run_with(&mut ()).map_err(BinError::from),
        Some(conf) => run(server, &conf),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ::log::error!("{e}");
            if log::logs_to_file() || !log::is_installed() {
                eprintln!("pingora: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// Opens the logs, adds the configured services and runs the server until it stops.
fn run(mut server: Server, conf: &ServerConf) -> Result<(), BinError> {
    let error_log = conf.error_log.as_deref();
    log::init(error_log, conf.log_level.as_str()).map_err(|source| BinError::ErrorLog {
        path: error_log.unwrap_or("stderr".as_ref()).to_path_buf(),
        source,
    })?;
    access_log::init(&conf.access_log).map_err(|source| BinError::AccessLog {
        path: conf.access_log.path.clone().unwrap_or_else(|| "-".into()),
        source,
    })?;
    let mut hooks = BinHooks::default();
    wire::add_services(&mut server, conf, &mut hooks)?;
    let result = server.run_with(&mut hooks);
    hooks.exiting();
    access_log::finish(Duration::from_secs(2));
    log::flush_suppressed();
    Ok(result?)
}
