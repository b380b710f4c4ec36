//! [`Proxy`]: a started [`crate::ProxyConfig`], with clients for its `web` listener.

use std::io;
use std::net::SocketAddr;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::client::{RawClient, Response};
use crate::h2_client::{H2Client, H2Response};
use crate::process::ProxyProcess;

/// Time any single small exchange may take before it counts as hung.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Time one exchange with large bodies (tens of MiB, debug build) may take.
pub const LARGE_EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running proxy and the address of its `web` listener.
#[derive(Debug)]
pub struct Proxy {
    /// The process.
    pub process: ProxyProcess,
    /// The listener address.
    pub addr: SocketAddr,
}

impl Proxy {
    /// A new HTTP/1 connection to the proxy, reads bounded by [`EXCHANGE_TIMEOUT`].
    pub fn client(&self) -> RawClient {
        self.client_with_timeout(EXCHANGE_TIMEOUT)
    }

    /// A new HTTP/1 connection to the proxy, reads bounded by `timeout`.
    pub fn client_with_timeout(&self, timeout: Duration) -> RawClient {
        let c = RawClient::connect(self.addr)
            .unwrap_or_else(|e| panic!("cannot connect to proxy: {e}\nlog:\n{}", self.log()));
        c.set_read_timeout(timeout).expect("set read timeout");
        c
    }

    /// A new h2c (prior knowledge) connection to the proxy, each exchange bounded by
    /// [`LARGE_EXCHANGE_TIMEOUT`].
    pub fn h2_client(&self) -> H2Client {
        H2Client::connect(self.addr, LARGE_EXCHANGE_TIMEOUT)
            .unwrap_or_else(|e| panic!("h2c connection to the proxy: {e}\nlog:\n{}", self.log()))
    }

    /// The HTTP/2 response, or a panic with the proxy's log.
    pub fn expect_h2(&self, r: io::Result<H2Response>) -> H2Response {
        r.unwrap_or_else(|e| panic!("HTTP/2 request failed: {e}\nlog:\n{}", self.log()))
    }

    /// The proxy's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Sends `count` HTTP/1.1 GETs of `path(i)` at once, each on its own connection
    /// (reads bounded by [`LARGE_EXCHANGE_TIMEOUT`]), with `x-request-id: i`.
    pub fn spawn_gets(&self, count: usize, path: impl Fn(usize) -> String) -> ConcurrentGets {
        let threads = (0..count)
            .map(|i| {
                let mut c = self.client_with_timeout(LARGE_EXCHANGE_TIMEOUT);
                let req = format!(
                    "GET {} HTTP/1.1\r\nHost: test\r\nx-request-id: {i}\r\n\r\n",
                    path(i)
                );
                thread::spawn(move || {
                    c.send(req.as_bytes())?;
                    c.read_final_response()
                })
            })
            .collect();
        ConcurrentGets { threads }
    }

    /// Waits for the requests of [`Proxy::spawn_gets`]: every one must be a 200 with
    /// its own `x-request-id` back. The responses, in request order.
    pub fn join_gets(&self, gets: ConcurrentGets) -> Vec<Response> {
        gets.threads
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let r = t.join().expect("client thread");
                let r =
                    r.unwrap_or_else(|e| panic!("request {i} failed: {e}\nlog:\n{}", self.log()));
                assert_eq!(r.status, 200, "request {i}: {r:?}\nlog:\n{}", self.log());
                assert_eq!(r.header("x-request-id"), Some(i.to_string().as_str()));
                r
            })
            .collect()
    }
}

/// HTTP/1 requests in flight on their own threads ([`Proxy::spawn_gets`]).
#[derive(Debug)]
pub struct ConcurrentGets {
    threads: Vec<JoinHandle<io::Result<Response>>>,
}
