//! The second wave of listener TLS through the real binary, with real clients: client
//! certificates with curl (`require`, `optional`, `$ssl_client_verify` /
//! `$ssl_client_s_dn` in header rules and the access log, `access.client_cert`), OCSP
//! stapling seen by `openssl s_client -status` and `curl --cert-status`, bad OCSP and
//! ticket key files refused by `-t` and by a SIGHUP reload (the old instance keeps
//! serving), and TLS sessions resumed on the new instance after a SIGQUIT upgrade.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use test_support::{
    free_addr, run_command, send_signal, wait_pid_file, wait_until, CommandOutput, OcspSpec,
    Origin, ProxyProcess, Reply, Signal, Strays, TestCa, TestCert, TestDir, TlsClient,
    TlsClientConfig, DRAIN_EXIT_DEADLINE, SETTLE_TIMEOUT,
};

use crate::bin;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One test's CAs and files.
struct Pki {
    dir: TestDir,
    server_ca: TestCa,
    client_ca: TestCa,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: TestDir::new().expect("temp dir"),
            server_ca: TestCa::new("server CA"),
            client_ca: TestCa::new("client CA"),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The server certificate for `site.test`, written with its CA as the chain.
    fn server(&self) -> TestCert {
        let cert = self.server_ca.issue(&["site.test"]);
        cert.with_issuer(&self.server_ca)
            .write(self.dir.path(), "site")
            .expect("write");
        self.server_ca.write(self.dir.path(), "server-ca").unwrap();
        self.client_ca.write(self.dir.path(), "client-ca").unwrap();
        cert
    }

    fn client(&self, ca: &TestCa, stem: &str, name: &str) -> (String, String) {
        ca.issue_client(name).write(self.dir.path(), stem).unwrap();
        (
            self.path(&format!("{stem}.crt")),
            self.path(&format!("{stem}.key")),
        )
    }
}

/// The YAML of service `web` with TLS on `listen` (`tls_extra` lines indented by 10
/// under `tls:`), routes `routes` (indented by 6), in front of `origin`.
fn yaml(
    pki: &Pki,
    listen: SocketAddr,
    tls_extra: &str,
    routes: &str,
    origin: SocketAddr,
) -> String {
    let dir = pki.dir.path().display();
    format!(
        "version: 1\npid_file: {dir}/pingora.pid\nupgrade_sock: {dir}/upgrade.sock\n\
         grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 2\n\
         access_log: {{ path: {dir}/access.log }}\nservices:\n  - name: web\n    listeners:\n\
         \x20     - addr: \"{listen}\"\n        tls:\n          cert: {dir}/site.crt\n\
         \x20         key: {dir}/site.key\n{tls_extra}    routes:\n{routes}\
         \x20     - upstream: origin\n        request_headers:\n          set:\n\
         \x20           X-Client-Verify: \"$ssl_client_verify\"\n\
         \x20           X-Client-DN: \"$ssl_client_s_dn\"\n    upstreams:\n      origin:\n\
         \x20       peers: [\"{origin}\"]\n"
    )
}

fn write_config(pki: &Pki, text: &str) -> PathBuf {
    pki.dir.write("pingora.yaml", text).expect("write config")
}

fn start(pki: &Pki, config: &Path, listen: SocketAddr, name: &str, args: &[&str]) -> ProxyProcess {
    let mut p = ProxyProcess::spawn(bin(), pki.dir.path(), name, config, args);
    p.wait_ready(&[listen], SETTLE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
    p
}

fn curl(pki: &Pki, listen: SocketAddr, path: &str, extra: &[&str]) -> CommandOutput {
    let resolve = format!("site.test:{}:127.0.0.1", listen.port());
    let url = format!("https://site.test:{}{path}", listen.port());
    let ca = pki.path("server-ca.crt");
    let mut args = vec![
        "-sS",
        "--max-time",
        "20",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    run_command(Path::new("curl"), &args, COMMAND_TIMEOUT).expect("curl runs")
}

fn echo_origin() -> Origin {
    Origin::start(|req| {
        let h = |n: &str| req.header(n).unwrap_or("(none)").to_string();
        Reply::ok(format!("{}|{}", h("x-client-verify"), h("x-client-dn")))
    })
}

/// What the origin saw of the last request: `verify|dn`.
fn origin_saw(origin: &Origin) -> (String, String) {
    let got = origin.last_received().expect("the origin got a request");
    (
        got.header("x-client-verify").unwrap_or("").to_string(),
        got.header("x-client-dn").unwrap_or("").to_string(),
    )
}

#[test]
fn required_client_certificates_with_curl() {
    let pki = Pki::new();
    pki.server();
    let origin = echo_origin();
    let listen = free_addr();
    let extra = format!(
        "          client_auth: {{ mode: require, ca_file: {} }}\n",
        pki.path("client-ca.crt")
    );
    let config = write_config(&pki, &yaml(&pki, listen, &extra, "", origin.addr()));
    let proxy = start(&pki, &config, listen, "proxy", &[]);

    let (cert, key) = pki.client(&pki.client_ca, "alice", "alice");
    let ok = curl(&pki, listen, "/", &["--cert", &cert, "--key", &key]);
    assert_eq!(ok.stdout, "200", "{}\nlog:\n{}", ok.stderr, proxy.log());
    assert_eq!(origin_saw(&origin), ("SUCCESS".into(), "CN=alice".into()));

    // No certificate, or one another CA signed: the handshake fails, with a TLS alert.
    let none = curl(&pki, listen, "/", &[]);
    assert_ne!(
        none.code(),
        Some(0),
        "no certificate was accepted: {}",
        none.stdout
    );
    let (bad_cert, bad_key) = pki.client(&TestCa::new("rogue CA"), "mallory", "mallory");
    let wrong = curl(&pki, listen, "/", &["--cert", &bad_cert, "--key", &bad_key]);
    // (With TLS 1.3 the client finishes first; the server's alert and close then show
    // in curl as an alert or a reset, depending on timing.)
    assert_ne!(wrong.code(), Some(0), "a rogue certificate was accepted");
    // The listener is not hurt by the failures.
    let again = curl(&pki, listen, "/", &["--cert", &cert, "--key", &key]);
    assert_eq!(again.stdout, "200", "{}", again.stderr);

    let access = std::fs::read_to_string(pki.dir.join("access.log")).unwrap_or_default();
    assert!(
        access.contains("ssl_client_verify=\"SUCCESS\" ssl_client_s_dn=\"CN=alice\""),
        "access log:\n{access}"
    );
}

#[test]
fn optional_client_certificates_and_access_rules() {
    let pki = Pki::new();
    pki.server();
    let origin = echo_origin();
    let listen = free_addr();
    let extra = format!(
        "          client_auth: {{ mode: optional, ca_file: {} }}\n",
        pki.path("client-ca.crt")
    );
    let routes = "      - match: { path_prefix: /private }\n        upstream: origin\n        \
                  access: { client_cert: required }\n        request_headers:\n          \
                  set: { X-Client-Verify: \"$ssl_client_verify\", X-Client-DN: \"$ssl_client_s_dn\" }\n";
    let config = write_config(&pki, &yaml(&pki, listen, &extra, routes, origin.addr()));
    let proxy = start(&pki, &config, listen, "proxy", &[]);

    let anonymous = curl(&pki, listen, "/public", &[]);
    assert_eq!(
        anonymous.stdout,
        "200",
        "{}\nlog:\n{}",
        anonymous.stderr,
        proxy.log()
    );
    assert_eq!(origin_saw(&origin), ("NONE".into(), String::new()));
    assert_eq!(curl(&pki, listen, "/private", &[]).stdout, "403");

    let (bad_cert, bad_key) = pki.client(&TestCa::new("rogue CA"), "mallory", "mallory");
    let rogue = ["--cert", bad_cert.as_str(), "--key", bad_key.as_str()];
    assert_eq!(curl(&pki, listen, "/public", &rogue).stdout, "200");
    let (verify, dn) = origin_saw(&origin);
    assert!(verify.starts_with("FAILED:"), "{verify}");
    assert_eq!(dn, "CN=mallory");
    assert_eq!(curl(&pki, listen, "/private", &rogue).stdout, "403");

    let (cert, key) = pki.client(&pki.client_ca, "alice", "alice");
    let good = ["--cert", cert.as_str(), "--key", key.as_str()];
    assert_eq!(curl(&pki, listen, "/private", &good).stdout, "200");
    assert_eq!(origin_saw(&origin), ("SUCCESS".into(), "CN=alice".into()));
}

fn openssl_status(listen: SocketAddr, ca: &str) -> CommandOutput {
    let connect = format!("127.0.0.1:{}", listen.port());
    run_command(
        Path::new("openssl"),
        &[
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "site.test",
            "-status",
            "-CAfile",
            ca,
        ],
        COMMAND_TIMEOUT,
    )
    .expect("openssl runs")
}

#[test]
fn ocsp_is_stapled_and_bad_responses_are_refused_at_t_and_reload() {
    let pki = Pki::new();
    let cert = pki.server();
    let fresh = pki.server_ca.ocsp_response(&cert, &OcspSpec::fresh());
    std::fs::write(pki.dir.join("site.ocsp"), &fresh).unwrap();
    let origin = echo_origin();
    let listen = free_addr();
    let extra = format!("          ocsp_file: {}\n", pki.path("site.ocsp"));
    let text = yaml(&pki, listen, &extra, "", origin.addr());
    let config = write_config(&pki, &text);
    let strays = Strays::default();
    let mut first = start(&pki, &config, listen, "first", &[]);
    let pid_file = pki.dir.join("pingora.pid");
    let first_pid = wait_pid_file(&pid_file, SETTLE_TIMEOUT, |_| true).expect("pid file");

    let seen = openssl_status(listen, &pki.path("server-ca.crt"));
    assert!(
        seen.stdout.contains("OCSP Response Status: successful")
            && seen.stdout.contains("Cert Status: good"),
        "openssl s_client -status:\n{}\n{}",
        seen.stdout,
        seen.stderr
    );
    // curl checks the stapled response against the CA itself.
    let checked = curl(&pki, listen, "/", &["--cert-status"]);
    assert_eq!(
        checked.stdout, "200",
        "curl --cert-status: {}",
        checked.stderr
    );

    // An expired response: `-t` refuses it with the key path and the reason.
    std::fs::write(
        pki.dir.join("site.ocsp"),
        pki.server_ca.ocsp_response(&cert, &OcspSpec::expired()),
    )
    .unwrap();
    let t = run_command(
        bin(),
        &["-t", "-c", &config.display().to_string()],
        COMMAND_TIMEOUT,
    )
    .unwrap();
    assert_eq!(t.code(), Some(2), "{}{}", t.stdout, t.stderr);
    let said = format!("{}{}", t.stdout, t.stderr);
    assert!(
        said.contains("services[0].listeners[0].tls") && said.contains("expired"),
        "{said}"
    );

    // ... and so does a reload: the serving instance stays, still stapling.
    send_signal(first_pid, Signal::SIGHUP).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || first
            .log()
            .contains("reload refused")),
        "no refusal logged; log:\n{}",
        first.log()
    );
    assert!(first.log().contains("expired"), "log:\n{}", first.log());
    assert_eq!(test_support::read_pid(&pid_file), Some(first_pid));
    let still = openssl_status(listen, &pki.path("server-ca.crt"));
    assert!(
        still.stdout.contains("Cert Status: good"),
        "{}",
        still.stdout
    );

    // A response for another certificate is refused the same way.
    let other = pki.server_ca.issue(&["other.test"]);
    std::fs::write(
        pki.dir.join("site.ocsp"),
        pki.server_ca.ocsp_response(&other, &OcspSpec::fresh()),
    )
    .unwrap();
    let t = run_command(
        bin(),
        &["-t", "-c", &config.display().to_string()],
        COMMAND_TIMEOUT,
    )
    .unwrap();
    assert_eq!(t.code(), Some(2));
    assert!(
        format!("{}{}", t.stdout, t.stderr).contains("not for this certificate"),
        "{}{}",
        t.stdout,
        t.stderr
    );
    strays.add(first_pid);
    first.signal(Signal::SIGTERM);
    assert!(first.wait_exit(DRAIN_EXIT_DEADLINE).is_some());
}

fn ticket_key(seed: u8) -> Vec<u8> {
    (0..80u8)
        .map(|i| i.wrapping_mul(13).wrapping_add(seed))
        .collect()
}

#[test]
fn sessions_resume_on_the_new_instance_after_an_upgrade() {
    let pki = Pki::new();
    pki.server();
    let origin = echo_origin();
    let listen = free_addr();
    std::fs::write(pki.dir.join("ticket.key"), ticket_key(1)).unwrap();
    let extra = format!("          ticket_key_file: {}\n", pki.path("ticket.key"));
    let config = write_config(&pki, &yaml(&pki, listen, &extra, "", origin.addr()));
    let mut old = start(&pki, &config, listen, "old", &[]);
    let pid_file = pki.dir.join("pingora.pid");
    let old_pid = wait_pid_file(&pid_file, SETTLE_TIMEOUT, |_| true).expect("pid file");

    let client = TlsClient::new(TlsClientConfig {
        ca_pem: Some(pki.server_ca.cert_pem().to_string()),
        ..TlsClientConfig::default()
    });
    let request = b"GET /a HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n";
    let mut first = client.connect(listen, "site.test").unwrap();
    let answer = first.exchange(request).unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(client.has_session());
    let mut same = client.connect_resuming(listen, "site.test").unwrap();
    same.exchange(request).unwrap();
    assert!(same.session_reused(), "resumption on the same instance");

    // Rotate: a new key first, the old one kept; then upgrade.
    let mut rotated = ticket_key(2);
    rotated.extend(ticket_key(1));
    std::fs::write(pki.dir.join("ticket.key"), rotated).unwrap();
    old.signal(Signal::SIGQUIT);
    assert!(
        old.wait_for_log("SIGQUIT", Duration::from_secs(5)),
        "{}",
        old.log()
    );
    let new = ProxyProcess::spawn(bin(), pki.dir.path(), "new", &config, &["-u"]);
    let new_pid = new.pid();
    assert!(
        wait_pid_file(&pid_file, SETTLE_TIMEOUT, |p| p == new_pid).is_some(),
        "new instance did not take over; old log:\n{}\nnew log:\n{}",
        old.log(),
        new.log()
    );
    assert!(
        old.wait_exit(DRAIN_EXIT_DEADLINE).is_some(),
        "old did not exit"
    );
    assert_ne!(old_pid, new_pid);

    let mut resumed = client.connect_resuming(listen, "site.test").unwrap();
    let answer = resumed.exchange(request).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    assert!(
        resumed.session_reused(),
        "the session of the old instance resumes on the new one; new log:\n{}",
        new.log()
    );
    new.signal(Signal::SIGTERM);
}

#[test]
fn a_truncated_ticket_key_file_is_a_config_error() {
    let pki = Pki::new();
    pki.server();
    let listen = free_addr();
    std::fs::write(pki.dir.join("ticket.key"), &ticket_key(1)[..79]).unwrap();
    let extra = format!("          ticket_key_file: {}\n", pki.path("ticket.key"));
    let config = write_config(&pki, &yaml(&pki, listen, &extra, "", free_addr()));
    let t = run_command(
        bin(),
        &["-t", "-c", &config.display().to_string()],
        COMMAND_TIMEOUT,
    )
    .unwrap();
    assert_eq!(t.code(), Some(2), "{}{}", t.stdout, t.stderr);
    let said = format!("{}{}", t.stdout, t.stderr);
    assert!(
        said.contains("ticket_key_file") || said.contains("ticket key file"),
        "{said}"
    );
    assert!(
        said.contains("79 bytes") && said.contains("truncated"),
        "{said}"
    );
}
