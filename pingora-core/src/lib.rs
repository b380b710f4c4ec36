#![doc = include_str!("../README.md")]
//!
//! Layers, bottom up (each module only uses the ones above it in this list):
//! [`error`]; [`protocols`] (streams, the HTTP/1 and HTTP/2 sessions, TLS); [`listener`];
//! [`connector`] (upstream connections: peers, dialling and the pools); [`shutdown`],
//! [`runtime`], [`service`] and [`server`]; [`process`] (the process around it all:
//! command line, configuration file, daemon, pid file, upgrade, exit codes).
#![warn(missing_docs)]

mod background;
pub mod connector;
pub mod error;
pub mod listener;
pub mod log_limit;
pub mod process;
pub mod protocols;
pub mod runtime;
pub mod server;
pub mod service;
pub mod shutdown;

pub use error::{Error, ErrorKind, Result, Side};
