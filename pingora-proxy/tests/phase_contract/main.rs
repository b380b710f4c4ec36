//! The phase contract of `ProxyHttp`, checked in process: a [`recorder::Recorder`]
//! implementation writes down every phase call of every request, and an
//! [`recorder::InProcessProxy`] runs it on a real listener in front of real origins
//! (test-support), reached by real HTTP/1.1 and HTTP/2 clients.
//!
//! - `order`: which phases run, in which order, for HTTP/1.1 and HTTP/2.
//! - `bodies`: the body filters' `end_of_stream` contract, and bodies changed both ways
//!   with the framing kept right.
//! - `retries`: `upstream_peer` asked again with the failed peer known; the retry rule.
//! - `errors`: the error phases, errors raised by phases, and `logging` exactly once.

mod bodies;
mod errors;
mod order;
mod recorder;
mod retries;
