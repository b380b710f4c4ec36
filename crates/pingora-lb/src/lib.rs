//! pingora-lb: load balancing, health checks and discovery for the pingora proxy.
//!
//! Not implemented yet: this crate reserves its place in the workspace. See the README.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
