//! Files named by the configuration (TLS certificate and key, `ca_file`) and the TLS switch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{assert_err, ok};
use crate::ConfigErrorKind::{File, Invalid};
use crate::{ServerConf, ValidateOptions};

/// A scratch directory removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> ScratchDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pingora-config-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, "-----BEGIN TEST-----\n").unwrap();
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tls_listener(cert: &Path, key: &Path) -> String {
    format!(
        "services:\n  - name: a\n    listeners:\n      - addr: 127.0.0.1:8443\n        tls:\n          cert: {}\n          key: {}\n    routes: [{{respond: {{}}}}]\n",
        cert.display(),
        key.display()
    )
}

#[test]
fn tls_listener_with_readable_files_is_valid() {
    let dir = ScratchDir::new();
    let (cert, key) = (dir.file("cert.pem"), dir.file("key.pem"));
    let conf = ok(&tls_listener(&cert, &key));
    let tls = conf.services[0].listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.cert, cert);
    assert_eq!(tls.key, key);
}

#[test]
fn missing_tls_files_are_reported() {
    let dir = ScratchDir::new();
    let cert = dir.file("cert.pem");
    let missing = dir.0.join("nope.pem");
    let e = assert_err(
        &tls_listener(&missing, &cert),
        File,
        6,
        "services[0].listeners[0].tls.cert",
        "cannot read TLS certificate",
    );
    assert!(e.message.ends_with(": no such file"), "{e}");
    assert!(std::error::Error::source(&e).is_some());
    assert_err(
        &tls_listener(&cert, &missing),
        File,
        7,
        "services[0].listeners[0].tls.key",
        "cannot read TLS key",
    );
    // A directory is not a readable file.
    assert_err(
        &tls_listener(&cert, &dir.0),
        File,
        7,
        "services[0].listeners[0].tls.key",
        "is a directory",
    );
}

#[test]
fn unreadable_tls_file_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = ScratchDir::new();
    let cert = dir.file("cert.pem");
    let key = dir.file("key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&key).is_ok() {
        // Running as root: permissions do not stop reads; the directory case above covers
        // unreadable files then.
        return;
    }
    assert_err(
        &tls_listener(&cert, &key),
        File,
        7,
        "services[0].listeners[0].tls.key",
        "permission denied",
    );
}

#[test]
fn ca_file_must_exist() {
    let dir = ScratchDir::new();
    let ca = dir.file("ca.pem");
    ok(&format!("ca_file: {}\n", ca.display()));
    let missing = dir.0.join("missing-ca.pem");
    assert_err(
        &format!("threads: 1\nca_file: {}\n", missing.display()),
        File,
        2,
        "ca_file",
        "cannot read CA file",
    );
}

#[test]
fn tls_rejected_when_the_binary_has_no_tls() {
    let dir = ScratchDir::new();
    let (cert, key) = (dir.file("c.pem"), dir.file("k.pem"));
    let no_tls = ValidateOptions {
        tls_supported: false,
        ..ValidateOptions::default()
    };
    let e =
        ServerConf::from_yaml_str_with(&tls_listener(&cert, &key), "t.yaml", &no_tls).unwrap_err();
    assert_eq!(e.kind, Invalid);
    assert_eq!(e.line, Some(5));
    assert_eq!(e.key_path, "services[0].listeners[0].tls");
    assert!(
        e.message
            .contains("built without TLS support (feature `tls`)"),
        "{e}"
    );

    let upstream = "services:\n  - name: a\n    listeners: [{addr: \"127.0.0.1:1\"}]\n    routes: [{upstream: u}]\n    upstreams:\n      u:\n        peers: [\"a:1\"]\n        tls: {verify: true}\n";
    ok(upstream);
    let e = ServerConf::from_yaml_str_with(upstream, "t.yaml", &no_tls).unwrap_err();
    assert_eq!(
        (e.line, e.key_path.as_str()),
        (Some(8), "services[0].upstreams.u.tls")
    );
    assert!(e.message.contains("without TLS support"), "{e}");
}

#[test]
fn load_reads_files_and_reports_missing_ones() {
    let dir = ScratchDir::new();
    let path = dir.0.join("conf.yaml");
    std::fs::write(&path, "---\nversion: 1\nthreads: 3\n").unwrap();
    assert_eq!(ServerConf::load(&path).unwrap().threads, 3);

    std::fs::write(&path, "threads: 3\nthreds: 4\n").unwrap();
    let e = ServerConf::load(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2:1: unknown key `threds` (did you mean `threads`?)",
            path.display()
        )
    );

    let missing = dir.0.join("absent.yaml");
    let e = ServerConf::load(&missing).unwrap_err();
    assert_eq!(e.kind, crate::ConfigErrorKind::Read);
    assert_eq!(e.file, missing.display().to_string());
    assert!(e.message.contains("no such file"), "{e}");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn load_balancing_rejected_when_the_binary_has_no_lb() {
    let no_lb = ValidateOptions {
        lb_supported: false,
        ..ValidateOptions::default()
    };
    let yaml = "services:\n  - name: web\n    listeners: [ { addr: \"127.0.0.1:8080\" } ]\n    routes: [ { upstream: a } ]\n    upstreams:\n      a:\n        peers: [\"127.0.0.1:9000\"]\n        lb: p2c\n";
    let e = ServerConf::from_yaml_str_with(yaml, "t.yaml", &no_lb).unwrap_err();
    assert_eq!(e.kind, Invalid);
    assert_eq!(e.line, Some(8));
    assert_eq!(e.key_path, "services[0].upstreams.a.lb");
    assert!(e.to_string().contains("feature `lb`"), "{e}");
    let plain = yaml.replace("        lb: p2c\n", "");
    ServerConf::from_yaml_str_with(&plain, "t.yaml", &no_lb).unwrap();
}

#[test]
fn purge_allow_networks() {
    let yaml = "services:\n  - name: web\n    listeners: [ { addr: \"127.0.0.1:8080\" } ]\n    cache: { purge_allow: [\"10.0.0.0/8\", \"192.168.1.7\", \"fd00::/8\"] }\n    routes: [ { respond: { status: 200 } } ]\n";
    let conf = ServerConf::from_yaml_str(yaml, "t.yaml").unwrap();
    let nets = conf.services[0].cache.as_ref().unwrap().purge_networks();
    let ok = |ip: &str| nets.iter().any(|n| n.contains(ip.parse().unwrap()));
    assert!(ok("10.200.1.1"));
    assert!(ok("::ffff:10.1.2.3"));
    assert!(ok("192.168.1.7"));
    assert!(!ok("192.168.1.8"));
    assert!(ok("fd12::1"));
    assert!(!ok("11.0.0.1"));
    let bad = yaml.replace("10.0.0.0/8", "10.0.0.0/40");
    let e = ServerConf::from_yaml_str(&bad, "t.yaml").unwrap_err();
    assert_eq!(e.key_path, "services[0].cache.purge_allow[0]");
    assert_eq!(e.line, Some(4));
}

#[test]
fn listener_sni_certificates_are_listed_and_checked() {
    let dir = ScratchDir::new();
    let (cert, key) = (dir.file("cert.pem"), dir.file("key.pem"));
    let (api_cert, api_key) = (dir.file("api.pem"), dir.file("api.key"));
    let yaml = format!(
        "services:\n  - name: a\n    listeners:\n      - addr: 127.0.0.1:8443\n        tls:\n          cert: {}\n          key: {}\n          certs:\n            - {{ cert: {}, key: {} }}\n    routes: [{{respond: {{}}}}]\n",
        cert.display(),
        key.display(),
        api_cert.display(),
        api_key.display()
    );
    let conf = ok(&yaml);
    let tls = conf.services[0].listeners[0].tls.as_ref().unwrap();
    let all = tls.all_certs();
    assert_eq!(all.len(), 2);
    assert_eq!((&all[0].cert, &all[0].key), (&cert, &key));
    assert_eq!((&all[1].cert, &all[1].key), (&api_cert, &api_key));

    let missing = dir.0.join("gone.key");
    assert_err(
        &yaml.replace(
            &api_key.display().to_string(),
            &missing.display().to_string(),
        ),
        File,
        9,
        "services[0].listeners[0].tls.certs[0].key",
        "cannot read TLS key",
    );
    // An entry needs both files.
    let half = format!(
        "services:\n  - name: a\n    listeners:\n      - addr: 127.0.0.1:8443\n        tls:\n          cert: {}\n          key: {}\n          certs:\n            - cert: {}\n    routes: [{{respond: {{}}}}]\n",
        cert.display(),
        key.display(),
        api_cert.display()
    );
    let e = super::err(&half);
    assert_eq!(e.line, Some(9), "{e}");
    assert!(e.message.contains("key"), "{e}");
}

fn tls_upstream(tls: &str) -> String {
    format!(
        "services:\n  - name: a\n    listeners: [{{addr: \"127.0.0.1:1\"}}]\n    routes: [{{upstream: u}}]\n    upstreams:\n      u:\n        peers: [\"a:1\"]\n        tls:\n{tls}"
    )
}

#[test]
fn upstream_tls_files() {
    let dir = ScratchDir::new();
    let (ca, cert, key) = (dir.file("ca.pem"), dir.file("c.pem"), dir.file("k.pem"));
    let conf = ok(&tls_upstream(&format!(
        "          sni: api.test\n          ca_file: {}\n          cert: {}\n          key: {}\n",
        ca.display(),
        cert.display(),
        key.display()
    )));
    let tls = conf.services[0]
        .upstreams
        .get("u")
        .unwrap()
        .tls
        .clone()
        .unwrap();
    assert_eq!(tls.ca_file.as_ref(), Some(&ca));
    assert_eq!(tls.cert.as_ref(), Some(&cert));
    assert_eq!(tls.key.as_ref(), Some(&key));
    assert!(tls.verify);

    let missing = dir.0.join("none.pem");
    assert_err(
        &tls_upstream(&format!("          ca_file: {}\n", missing.display())),
        File,
        9,
        "services[0].upstreams.u.tls.ca_file",
        "cannot read CA file",
    );
    assert_err(
        &tls_upstream(&format!(
            "          cert: {}\n          key: {}\n",
            cert.display(),
            missing.display()
        )),
        File,
        10,
        "services[0].upstreams.u.tls.key",
        "cannot read TLS client key",
    );
    assert_err(
        &tls_upstream(&format!(
            "          verify: true\n          cert: {}\n",
            cert.display()
        )),
        Invalid,
        10,
        "services[0].upstreams.u.tls.cert",
        "needs its private key",
    );
    assert_err(
        &tls_upstream(&format!("          key: {}\n", key.display())),
        Invalid,
        9,
        "services[0].upstreams.u.tls.key",
        "without its certificate",
    );
    let e = assert_err(
        &tls_upstream("          sni: api.test\n          ca_flie: /x\n"),
        crate::ConfigErrorKind::UnknownKey,
        10,
        "services[0].upstreams.u.tls",
        "unknown key",
    );
    assert!(e.to_string().contains("did you mean `ca_file`"), "{e}");
}

fn admin_with_token(path: &Path) -> String {
    format!(
        "admin:\n  addr: 127.0.0.1:9901\n  token_file: {}\n",
        path.display()
    )
}

#[test]
fn admin_token_file_is_read_and_checked() {
    let dir = ScratchDir::new();
    let good = dir.0.join("token");
    std::fs::write(&good, "s3cret-Token_1\n").unwrap();
    let conf = ok(&admin_with_token(&good));
    let admin = conf.admin.as_ref().unwrap();
    assert_eq!(admin.token_file.as_deref(), Some(good.as_path()));
    assert_eq!(crate::read_token_file(&good).unwrap(), "s3cret-Token_1");

    let missing = dir.0.join("absent");
    assert_err(
        &admin_with_token(&missing),
        File,
        3,
        "admin.token_file",
        "cannot read admin token file",
    );
    let empty = dir.0.join("empty");
    std::fs::write(&empty, "  \n").unwrap();
    assert_err(
        &admin_with_token(&empty),
        Invalid,
        3,
        "admin.token_file",
        "holds no token",
    );
    let spaced = dir.0.join("spaced");
    std::fs::write(&spaced, "two words\n").unwrap();
    assert_err(
        &admin_with_token(&spaced),
        Invalid,
        3,
        "admin.token_file",
        "one word of printable ASCII",
    );
}

#[test]
fn http3_on_a_tls_listener_is_valid() {
    let dir = ScratchDir::new();
    let (cert, key) = (dir.file("cert.pem"), dir.file("key.pem"));
    let yaml = tls_listener(&cert, &key).replace("    routes:", "        http3: true\n    routes:");
    let conf = ok(&yaml);
    assert!(conf.services[0].listeners[0].http3);
    // Off unless asked for.
    assert!(!ok(&tls_listener(&cert, &key)).services[0].listeners[0].http3);
}

#[test]
fn http3_needs_tls_a_tcp_listener_and_no_client_certificates() {
    assert_err(
        "services:\n  - name: a\n    listeners:\n      - addr: 127.0.0.1:8080\n        http3: true\n    routes: [{respond: {}}]\n",
        Invalid,
        5,
        "services[0].listeners[0].http3",
        "needs TLS",
    );
    let dir = ScratchDir::new();
    let (cert, key) = (dir.file("cert.pem"), dir.file("key.pem"));
    let ca = dir.file("ca.pem");
    let yaml = tls_listener(&cert, &key).replace(
        "    routes:",
        &format!(
            "          client_auth: {{ mode: require, ca_file: {} }}\n        http3: true\n    routes:",
            ca.display()
        ),
    );
    assert_err(
        &yaml,
        Invalid,
        9,
        "services[0].listeners[0].http3",
        "client certificates",
    );
}

#[test]
fn http3_rejected_when_the_binary_has_no_http3() {
    let dir = ScratchDir::new();
    let (cert, key) = (dir.file("c.pem"), dir.file("k.pem"));
    let no_h3 = ValidateOptions {
        http3_supported: false,
        ..ValidateOptions::default()
    };
    let yaml = tls_listener(&cert, &key).replace("    routes:", "        http3: true\n    routes:");
    let e = ServerConf::from_yaml_str_with(&yaml, "t.yaml", &no_h3).unwrap_err();
    assert_eq!(e.kind, Invalid);
    assert_eq!(e.line, Some(8));
    assert_eq!(e.key_path, "services[0].listeners[0].http3");
    assert!(e.message.contains("without HTTP/3 support"), "{e}");
}
