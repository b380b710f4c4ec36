//! The command line: version/help, `-t` config checking, usage errors, start-up failures.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use test_support::{free_addr, run_command, CommandOutput, TestDir};

use crate::{bin, examples_dir};

const RUN_TIMEOUT: Duration = Duration::from_secs(10);

fn run(args: &[&str]) -> CommandOutput {
    run_command(bin(), args, RUN_TIMEOUT).unwrap_or_else(|e| panic!("pingora {args:?}: {e}"))
}

fn check(path: &Path) -> CommandOutput {
    run(&["-t", "-c", &path.display().to_string()])
}

#[test]
fn version_and_help_exit_zero() {
    let v = run(&["--version"]);
    assert_eq!(v.code(), Some(0), "stderr: {}", v.stderr);
    assert!(
        v.stdout.contains(env!("CARGO_PKG_VERSION")),
        "version output: {:?}",
        v.stdout
    );

    let h = run(&["--help"]);
    assert_eq!(h.code(), Some(0), "stderr: {}", h.stderr);
    for flag in ["--conf", "--daemon", "--upgrade", "--test", "--version"] {
        assert!(
            h.stdout.contains(flag),
            "--help does not mention {flag}: {}",
            h.stdout
        );
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = run(&["--no-such-flag"]);
    assert_eq!(
        out.code(),
        Some(2),
        "stdout: {} stderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains("--no-such-flag"),
        "stderr: {}",
        out.stderr
    );
}

#[test]
#[cfg_attr(
    not(feature = "lb"),
    ignore = "needs the lb feature: the examples choose load-balancing algorithms"
)]
fn every_example_config_is_valid() {
    let mut checked = 0;
    let entries = std::fs::read_dir(examples_dir()).expect("examples/ exists");
    for entry in entries {
        let path = entry.expect("readable examples/ entry").path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let out = check(&path);
            assert_eq!(
                out.code(),
                Some(0),
                "{} is invalid: {}",
                path.display(),
                out.stderr
            );
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no example configs found in {}",
        examples_dir().display()
    );
}

#[test]
fn test_flag_binds_nothing() {
    // Hold the port the config names: if `-t` tried to bind it, it would fail.
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");
    let dir = TestDir::new().expect("temp dir");
    let yaml = format!(
        "version: 1\nservices:\n  - name: web\n    listeners: [ {{ addr: \"{addr}\" }} ]\n    routes:\n      - respond: {{ status: 200, body: ok }}\n"
    );
    let path = dir.write("ok.yaml", &yaml).expect("write config");
    let started = Instant::now();
    let out = check(&path);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "-t took {:?}",
        started.elapsed()
    );
}

/// Runs `-t` on `yaml` and checks exit code 2 and a message naming the file, the line
/// (when given) and every one of `needles`.
fn assert_invalid(yaml: &str, line: Option<usize>, needles: &[&str]) -> String {
    let dir = TestDir::new().expect("temp dir");
    let path = dir.write("bad.yaml", yaml).expect("write config");
    let out = check(&path);
    let msg = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code(), Some(2), "config:\n{yaml}\noutput: {msg}");
    let file = path.display().to_string();
    assert!(
        msg.contains(&file),
        "message does not name the file {file}: {msg}"
    );
    if let Some(line) = line {
        assert!(
            msg.contains(&format!("{file}:{line}")) || msg.contains(&format!("line {line}")),
            "message does not name line {line}: {msg}"
        );
    }
    for n in needles {
        assert!(msg.contains(n), "message does not mention {n:?}: {msg}");
    }
    msg
}

fn service_yaml(port: u16, extra_service: &str) -> String {
    format!(
        "version: 1\nservices:\n  - name: web\n    listeners: [ {{ addr: \"127.0.0.1:{port}\" }} ]\n{extra_service}    routes:\n      - upstream: origin\n    upstreams:\n      origin:\n        peers: [\"127.0.0.1:1\"]\n"
    )
}

#[test]
fn unknown_key_names_it_and_suggests_the_right_one() {
    let yaml = service_yaml(free_addr().port(), "    helth_path: /healthz\n");
    // line 5: `helth_path`
    assert_invalid(&yaml, Some(5), &["helth_path", "health_path"]);

    let yaml = "version: 1\nthreds: 2\n";
    assert_invalid(yaml, Some(2), &["threds", "threads"]);
}

#[test]
fn wrong_type_names_the_key() {
    let yaml = "version: 1\nthreads: many\n";
    assert_invalid(yaml, Some(2), &["threads"]);
}

#[test]
fn duplicate_service_name_is_rejected() {
    let a = service_yaml(free_addr().port(), "");
    let second = format!(
        "  - name: web\n    listeners: [ {{ addr: \"127.0.0.1:{}\" }} ]\n    routes:\n      - respond: {{ status: 200 }}\n",
        free_addr().port()
    );
    let yaml = format!("{a}{second}");
    // The second `name: web` is on the line right after the first service.
    let line = a.lines().count() + 1;
    assert_invalid(&yaml, Some(line), &["web"]);
}

#[test]
fn route_to_undefined_upstream_is_rejected() {
    let yaml = format!(
        "version: 1\nservices:\n  - name: web\n    listeners: [ {{ addr: \"127.0.0.1:{}\" }} ]\n    routes:\n      - upstream: nowhere\n",
        free_addr().port()
    );
    assert_invalid(&yaml, Some(6), &["nowhere"]);
}

#[test]
fn missing_tls_file_is_rejected() {
    let yaml = format!(
        "version: 1\nservices:\n  - name: web\n    listeners:\n      - addr: \"127.0.0.1:{}\"\n        tls: {{ cert: /nonexistent/cert.pem, key: /nonexistent/key.pem }}\n    routes:\n      - respond: {{ status: 200 }}\n",
        free_addr().port()
    );
    assert_invalid(&yaml, Some(6), &["tls"]);
}

#[test]
fn yaml_syntax_error_is_rejected() {
    let yaml = "version: 1\nservices:\n  - name: web\n    listeners: [ { addr: \"127.0.0.1:1\" }\n    routes: [\n";
    assert_invalid(yaml, None, &[]);
}

#[test]
fn port_in_use_exits_one_with_one_clear_line() {
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");
    let dir = TestDir::new().expect("temp dir");
    let yaml = format!(
        "version: 1\npid_file: {}/p.pid\nupgrade_sock: {}/u.sock\nservices:\n  - name: web\n    listeners: [ {{ addr: \"{addr}\" }} ]\n    routes:\n      - respond: {{ status: 200 }}\n",
        dir.path().display(),
        dir.path().display()
    );
    let path = dir.write("inuse.yaml", &yaml).expect("write config");
    let out = run(&["-c", &path.display().to_string()]);
    assert_eq!(
        out.code(),
        Some(1),
        "stdout: {} stderr: {}",
        out.stdout,
        out.stderr
    );
    let port = addr.port().to_string();
    let mentioning: Vec<&str> = out.stderr.lines().filter(|l| l.contains(&port)).collect();
    assert_eq!(
        mentioning.len(),
        1,
        "expected one line naming the address, stderr:\n{}",
        out.stderr
    );
    let line = mentioning[0].to_ascii_lowercase();
    assert!(line.contains("in use"), "line does not say why: {line}");
}

#[test]
fn test_flag_without_config_checks_the_defaults() {
    let out = run(&["-t"]);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
}

#[test]
fn missing_config_file_is_a_config_error() {
    let dir = TestDir::new().expect("temp dir");
    let path = dir.join("absent.yaml");
    let out = check(&path);
    assert_eq!(out.code(), Some(2), "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains(&path.display().to_string()),
        "stderr: {}",
        out.stderr
    );
}

#[cfg(not(feature = "http3"))]
#[test]
fn a_build_without_http3_refuses_http3() {
    let dir = TestDir::new().unwrap();
    let yaml = format!(
        "version: 1\nservices:\n  - name: web\n    listeners:\n      - addr: \"{}\"\n        http3: true\n    routes: [ {{ upstream: origin }} ]\n    upstreams:\n      origin: {{ peers: [\"{}\"] }}\n",
        free_addr(),
        free_addr()
    );
    let out = check(&dir.write("h3.yaml", &yaml).unwrap());
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("services[0].listeners[0].http3"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("built without HTTP/3 support"),
        "{}",
        out.stderr
    );
}

#[cfg(not(feature = "tls"))]
#[test]
fn a_build_without_tls_refuses_tls_sections() {
    let dir = TestDir::new().unwrap();
    // Placeholders: the section is refused before any file is read.
    let cert = dir.write("web.crt", "").unwrap();
    let key = dir.write("web.key", "").unwrap();
    let yaml = format!(
        "version: 1\nservices:\n  - name: web\n    listeners:\n      - addr: \"{}\"\n        tls: {{ cert: {}, key: {} }}\n    routes: [ {{ upstream: origin }} ]\n    upstreams:\n      origin: {{ peers: [\"{}\"] }}\n",
        free_addr(),
        cert.display(),
        key.display(),
        free_addr()
    );
    let out = check(&dir.write("tls.yaml", &yaml).unwrap());
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("services[0].listeners[0].tls"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("built without TLS support"),
        "{}",
        out.stderr
    );
}
