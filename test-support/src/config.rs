//! [`ProxyConfig`]: the YAML of the black-box tests' usual set-up, one service `web`
//! in front of one origin.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::net::free_addr;
use crate::process::ProxyProcess;
use crate::proxy::Proxy;
use crate::stream::Target;

/// `graceful_shutdown_timeout_seconds` of [`ProxyConfig::lifecycle`].
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a process configured by [`ProxyConfig::lifecycle`] may take to exit once
/// it starts draining: [`DRAIN_TIMEOUT`] plus a margin for a loaded machine.
pub const DRAIN_EXIT_DEADLINE: Duration = Duration::from_secs(6);

/// A config with one service `web`: `GET /hello` answered by the proxy itself (body
/// `hi\n` unless [`ProxyConfig::marker`] says otherwise, which tells instances apart),
/// `health_path: /healthz`, optional extra routes, and everything else proxied to the
/// upstream `origin` (connect timeout 500 ms, read timeout 1 s).
///
/// `pid_file` and `upgrade_sock` live in the config's directory: the one given to
/// [`ProxyConfig::in_dir`], else the `{dir}` placeholder that [`ProxyProcess::start`]
/// fills with its private directory. `{dir}` may be used in values too.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    dir: Option<PathBuf>,
    top: Vec<(String, String)>,
    listeners: Vec<Target>,
    service: Vec<String>,
    marker: String,
    routes: Vec<String>,
    peers: String,
    connect_timeout_ms: u64,
    read_timeout_ms: u64,
    upstream: Vec<String>,
    upstreams: Vec<String>,
    cached: bool,
}

impl ProxyConfig {
    /// The service on a fresh TCP port in front of `origin`.
    pub fn new(origin: SocketAddr) -> ProxyConfig {
        let top = [
            ("version", "1"),
            ("pid_file", "{dir}/pingora.pid"),
            ("upgrade_sock", "{dir}/upgrade.sock"),
        ];
        ProxyConfig {
            dir: None,
            top: top
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            listeners: vec![Target::Tcp(free_addr())],
            service: Vec::new(),
            marker: "hi\n".to_string(),
            routes: Vec::new(),
            peers: format!("peers: [\"{origin}\"]"),
            connect_timeout_ms: 500,
            read_timeout_ms: 1000,
            upstream: Vec::new(),
            upstreams: Vec::new(),
            cached: false,
        }
    }

    /// The settings of the process-lifecycle tests (upgrade, reload, signals, daemon):
    /// two worker threads, no grace period, a [`DRAIN_TIMEOUT`] drain, and upstream
    /// timeouts (1 s connect, 5 s read) that fit responses held across a hand-over.
    pub fn lifecycle(self) -> ProxyConfig {
        self.set("threads", "2")
            .set("grace_period_seconds", "0")
            .set(
                "graceful_shutdown_timeout_seconds",
                &DRAIN_TIMEOUT.as_secs().to_string(),
            )
            .connect_timeout_ms(1000)
            .read_timeout_ms(5000)
    }

    /// A [`ProxyConfig::lifecycle`] config with its files in `dir`, listening on
    /// `listen`, in front of `origin`.
    pub fn lifecycle_at(dir: &Path, listen: impl Into<Target>, origin: SocketAddr) -> ProxyConfig {
        ProxyConfig::new(origin)
            .lifecycle()
            .in_dir(dir)
            .listen(listen)
    }

    /// Puts the config's files (pid_file, upgrade_sock, `{dir}`) in `dir`.
    pub fn in_dir(mut self, dir: &Path) -> ProxyConfig {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// Listens on `target` instead of the fresh TCP port.
    pub fn listen(mut self, target: impl Into<Target>) -> ProxyConfig {
        self.listeners[0] = target.into();
        self
    }

    /// Adds another listener to the service.
    pub fn also_listen(mut self, target: impl Into<Target>) -> ProxyConfig {
        self.listeners.push(target.into());
        self
    }

    /// The first listener.
    pub fn target(&self) -> Target {
        self.listeners[0].clone()
    }

    /// The first listener's TCP address (panics when it is a unix socket).
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0].tcp_addr()
    }

    /// Sets (or adds) a top-level `key: value`; the value is YAML as written.
    pub fn set(mut self, key: &str, value: &str) -> ProxyConfig {
        match self.top.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.top.push((key.to_string(), value.to_string())),
        }
        self
    }

    /// Adds a `key: value` line to the service.
    pub fn service(mut self, line: &str) -> ProxyConfig {
        self.service.push(line.to_string());
        self
    }

    /// Gives the service a cache (`section`: the YAML of its `cache:` key as written,
    /// e.g. `{ max_bytes: 4194304, disk: { path: "{dir}/cache" } }`) and sends the
    /// catch-all route to `origin` through it.
    pub fn cached(mut self, section: &str) -> ProxyConfig {
        self.service.push(format!("cache: {section}"));
        self.cached = true;
        self
    }

    /// The body `/hello` answers with.
    pub fn marker(mut self, body: &str) -> ProxyConfig {
        self.marker = body.to_string();
        self
    }

    /// Adds a route answered by the proxy: `path_prefix` -> 200 `body`.
    pub fn respond_route(mut self, path_prefix: &str, body: &str) -> ProxyConfig {
        self.routes.push(format!(
            "{{ match: {{ path_prefix: {path_prefix} }}, respond: {{ status: 200, body: {} }} }}",
            quoted(body)
        ));
        self
    }

    /// Adds an upstream `name` with one peer and a route `path_prefix` to it.
    pub fn upstream_route(
        mut self,
        path_prefix: &str,
        name: &str,
        peer: SocketAddr,
    ) -> ProxyConfig {
        self.routes.push(format!(
            "{{ match: {{ path_prefix: {path_prefix} }}, upstream: {name} }}"
        ));
        self.upstreams.push(format!(
            "{name}: {{ peers: [\"{peer}\"], connect_timeout_ms: 500, read_timeout_ms: 2000 }}"
        ));
        self
    }

    /// Replaces the line saying where the `origin` upstream's peers come from (by
    /// default `peers: ["<origin>"]`), YAML as written: another `peers:` list (e.g.
    /// `peers: [{ addr: "127.0.0.1:1", weight: 3 }, "127.0.0.1:2"]`) or a `discovery:`.
    pub fn peers_from(mut self, line: &str) -> ProxyConfig {
        self.peers = line.to_string();
        self
    }

    /// Adds a `key: value` line to the `origin` upstream.
    pub fn upstream(mut self, line: &str) -> ProxyConfig {
        self.upstream.push(line.to_string());
        self
    }

    /// Sets the `origin` upstream's `connect_timeout_ms`.
    pub fn connect_timeout_ms(mut self, ms: u64) -> ProxyConfig {
        self.connect_timeout_ms = ms;
        self
    }

    /// Sets the `origin` upstream's `read_timeout_ms`.
    pub fn read_timeout_ms(mut self, ms: u64) -> ProxyConfig {
        self.read_timeout_ms = ms;
        self
    }

    /// The pid_file (needs [`ProxyConfig::in_dir`]).
    pub fn pid_file(&self) -> PathBuf {
        self.dir_or_panic().join("pingora.pid")
    }

    /// The upgrade_sock (needs [`ProxyConfig::in_dir`]).
    pub fn upgrade_sock(&self) -> PathBuf {
        self.dir_or_panic().join("upgrade.sock")
    }

    fn dir_or_panic(&self) -> &Path {
        self.dir
            .as_deref()
            .expect("the config has no directory: call ProxyConfig::in_dir first")
    }

    /// The YAML text (with `{dir}` filled in when the config has a directory).
    pub fn yaml(&self) -> String {
        let mut y = String::new();
        for (k, v) in &self.top {
            y.push_str(&format!("{k}: {v}\n"));
        }
        y.push_str("services:\n  - name: web\n    listeners:\n");
        for l in &self.listeners {
            y.push_str(&format!("      - {{ addr: \"{l}\" }}\n"));
        }
        y.push_str("    health_path: /healthz\n");
        for l in &self.service {
            y.push_str(&format!("    {l}\n"));
        }
        y.push_str("    routes:\n");
        y.push_str(&format!(
            "      - {{ match: {{ path_prefix: /hello }}, respond: {{ status: 200, body: {} }} }}\n",
            quoted(&self.marker)
        ));
        for r in &self.routes {
            y.push_str(&format!("      - {r}\n"));
        }
        let cache = if self.cached { ", cache: true" } else { "" };
        y.push_str(&format!(
            "      - {{ upstream: origin{cache} }}\n    upstreams:\n      origin:\n"
        ));
        y.push_str(&format!(
            "        {}\n        connect_timeout_ms: {}\n        read_timeout_ms: {}\n",
            self.peers, self.connect_timeout_ms, self.read_timeout_ms
        ));
        for l in &self.upstream {
            y.push_str(&format!("        {l}\n"));
        }
        for u in &self.upstreams {
            y.push_str(&format!("      {u}\n"));
        }
        match &self.dir {
            Some(dir) => y.replace("{dir}", &dir.display().to_string()),
            None => y,
        }
    }

    /// Writes the YAML to `name` in the config's directory (needs
    /// [`ProxyConfig::in_dir`]), atomically: a process reading it at that moment sees
    /// the old or the new file. Returns the path.
    pub fn write(&self, name: &str) -> PathBuf {
        write_atomically(&self.dir_or_panic().join(name), &self.yaml())
    }

    /// Starts `bin` on this config (in a private directory unless the config has one
    /// for its files) and waits until the first listener, which must be TCP, accepts.
    /// Panics with the config and the log if it does not start.
    pub fn start(self, bin: &Path) -> Proxy {
        let addr = self.addr();
        let yaml = self.yaml();
        let process = ProxyProcess::start(bin, &yaml, &[addr])
            .unwrap_or_else(|e| panic!("proxy did not start: {e}\nconfig:\n{yaml}"));
        Proxy { process, addr }
    }
}

/// `text` as a double-quoted YAML string.
fn quoted(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// Replaces `path` by `text` through a temporary file and a rename; returns the path.
pub fn write_atomically(path: &Path, text: &str) -> PathBuf {
    let tmp = path.with_extension("tmp-write");
    fs::write(&tmp, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("cannot rename to {}: {e}", path.display()));
    path.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_yaml_names_every_part_in_order() {
        let origin: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let c = ProxyConfig::new(origin)
            .in_dir(Path::new("/d"))
            .listen(Target::Unix("/d/web.sock".into()))
            .also_listen("127.0.0.1:8".parse::<SocketAddr>().unwrap())
            .set("threads", "2")
            .set("threads", "3")
            .service("keepalive_timeout_ms: 300")
            .marker("say \"x\"")
            .respond_route("/f", "on")
            .upstream_route("/dead", "dead", origin)
            .upstream("http2: true");
        let y = c.yaml();
        let expected = [
            "version: 1",
            "pid_file: /d/pingora.pid",
            "upgrade_sock: /d/upgrade.sock",
            "threads: 3",
            "services:",
            "  - name: web",
            "    listeners:",
            "      - { addr: \"unix:/d/web.sock\" }",
            "      - { addr: \"127.0.0.1:8\" }",
            "    health_path: /healthz",
            "    keepalive_timeout_ms: 300",
            "    routes:",
            "      - { match: { path_prefix: /hello }, respond: { status: 200, body: \"say \\\"x\\\"\" } }",
            "      - { match: { path_prefix: /f }, respond: { status: 200, body: \"on\" } }",
            "      - { match: { path_prefix: /dead }, upstream: dead }",
            "      - { upstream: origin }",
            "    upstreams:",
            "      origin:",
            "        peers: [\"127.0.0.1:9\"]",
            "        connect_timeout_ms: 500",
            "        read_timeout_ms: 1000",
            "        http2: true",
            "      dead: { peers: [\"127.0.0.1:9\"], connect_timeout_ms: 500, read_timeout_ms: 2000 }",
            "",
        ]
        .join("\n");
        assert_eq!(y, expected);
        let cached = ProxyConfig::new(origin)
            .cached("{ max_bytes: 1048576 }")
            .yaml();
        assert!(
            cached.contains("    cache: { max_bytes: 1048576 }\n"),
            "{cached}"
        );
        assert!(
            cached.contains("      - { upstream: origin, cache: true }\n"),
            "{cached}"
        );
        assert_eq!(c.pid_file(), Path::new("/d/pingora.pid"));
    }

    #[test]
    fn without_a_directory_the_placeholder_stays() {
        let c = ProxyConfig::new("127.0.0.1:9".parse().unwrap());
        assert!(c.yaml().contains("pid_file: {dir}/pingora.pid\n"));
        assert!(c.yaml().contains("body: \"hi\\n\""));
    }
}
