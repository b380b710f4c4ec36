//! Shared set-up of the binary's black-box tests: the binary path and a config builder
//! for one `web` service in front of one origin.

#![allow(dead_code)] // each test file uses a different part of this module

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use test_support::{free_addr, ProxyProcess, RawClient};

/// The `pingora` binary built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pingora"))
}

/// The repository's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Time any single exchange in these tests may take before it counts as hung.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// A config for one service `web` on a fresh port, routing `/hello` to a fixed
/// response and everything else to the upstream `origin`.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Where the proxy listens.
    pub listen: SocketAddr,
    origin: SocketAddr,
    service_extra: Vec<String>,
    upstream_extra: Vec<String>,
    top_extra: Vec<String>,
    connect_timeout_ms: u64,
    read_timeout_ms: u64,
}

impl Setup {
    /// The minimal test service in front of `origin`.
    pub fn new(origin: SocketAddr) -> Setup {
        Setup {
            listen: free_addr(),
            origin,
            service_extra: Vec::new(),
            upstream_extra: Vec::new(),
            top_extra: Vec::new(),
            connect_timeout_ms: 500,
            read_timeout_ms: 1000,
        }
    }

    /// Adds a `key: value` line to the service.
    pub fn service(mut self, line: &str) -> Setup {
        self.service_extra.push(line.to_string());
        self
    }

    /// Adds a `key: value` line to the `origin` upstream.
    pub fn upstream(mut self, line: &str) -> Setup {
        self.upstream_extra.push(line.to_string());
        self
    }

    /// Adds a top-level `key: value` line.
    pub fn top(mut self, line: &str) -> Setup {
        self.top_extra.push(line.to_string());
        self
    }

    /// Sets the upstream's `read_timeout_ms`.
    pub fn read_timeout_ms(mut self, ms: u64) -> Setup {
        self.read_timeout_ms = ms;
        self
    }

    /// The YAML text (`{dir}` is filled in by [`ProxyProcess`]).
    pub fn yaml(&self) -> String {
        let mut y = String::from(
            "version: 1\npid_file: {dir}/pingora.pid\nupgrade_sock: {dir}/upgrade.sock\n",
        );
        for l in &self.top_extra {
            y.push_str(&format!("{l}\n"));
        }
        y.push_str(&format!(
            "services:\n  - name: web\n    listeners: [ {{ addr: \"{}\" }} ]\n    health_path: /healthz\n",
            self.listen
        ));
        for l in &self.service_extra {
            y.push_str(&format!("    {l}\n"));
        }
        y.push_str(&format!(
            "    routes:\n      - match: {{ path_prefix: /hello }}\n        respond: {{ status: 200, body: \"hi\\n\" }}\n      - upstream: origin\n    upstreams:\n      origin:\n        peers: [\"{}\"]\n        connect_timeout_ms: {}\n        read_timeout_ms: {}\n",
            self.origin, self.connect_timeout_ms, self.read_timeout_ms
        ));
        for l in &self.upstream_extra {
            y.push_str(&format!("        {l}\n"));
        }
        y
    }

    /// Starts the proxy and waits until it accepts connections.
    pub fn start(self) -> Proxy {
        let yaml = self.yaml();
        let process = ProxyProcess::start(bin(), &yaml, &[self.listen])
            .unwrap_or_else(|e| panic!("proxy did not start: {e}\nconfig:\n{yaml}"));
        Proxy {
            process,
            addr: self.listen,
        }
    }
}

/// A running proxy and the address of its `web` listener.
#[derive(Debug)]
pub struct Proxy {
    /// The process.
    pub process: ProxyProcess,
    /// The listener address.
    pub addr: SocketAddr,
}

impl Proxy {
    /// A new client connection to the proxy.
    pub fn client(&self) -> RawClient {
        let c = RawClient::connect(self.addr)
            .unwrap_or_else(|e| panic!("cannot connect to proxy: {e}"));
        c.set_read_timeout(EXCHANGE_TIMEOUT)
            .expect("set read timeout");
        c
    }

    /// The proxy's stderr so far.
    pub fn log(&self) -> String {
        self.process.stderr_text()
    }
}

/// Bytes of a minimal `GET path` with `Host: test`.
pub fn get_bytes(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}
