//! pingora-cache: the HTTP cache of the pingora proxy.
//!
//! Not implemented yet: this crate reserves its place in the workspace. See the README.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
