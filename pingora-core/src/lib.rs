#![doc = include_str!("../README.md")]
//!
//! Layers, bottom up (each module only uses the ones above it in this list):
//! [`error`]; [`protocols`] (streams and the HTTP/1 codec and sessions); [`listener`];
//! [`connector`] and [`pool`] (upstream connections); [`shutdown`], [`runtime`],
//! [`service`] and [`server`] (the process around it all).
#![warn(missing_docs)]

pub mod connector;
pub mod error;
pub mod listener;
pub mod log_limit;
pub mod pool;
pub mod process;
pub mod protocols;
pub mod runtime;
pub mod server;
pub mod service;
pub mod shutdown;

pub use error::{Error, ErrorKind, Result, Side};
