//! Every examples/*.yaml of the repository is a valid configuration.

use std::path::PathBuf;

use pingora_config::ServerConf;

fn example_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_loads() {
    let files = example_files();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["quickstart.yaml", "proxy.yaml", "production.yaml"] {
        assert!(
            names.iter().any(|n| n == expected),
            "examples/{expected} is missing"
        );
    }
    for file in &files {
        if let Err(err) = ServerConf::load(file) {
            panic!("{err}");
        }
    }
}

#[test]
fn quickstart_is_what_the_guide_says() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/quickstart.yaml");
    let conf = ServerConf::load(path).unwrap();
    assert_eq!(conf.services.len(), 1);
    let hello = &conf.services[0];
    assert_eq!(hello.name, "hello");
    assert_eq!(
        hello.listeners[0].addr,
        pingora_config::ListenAddr::Tcp("127.0.0.1:8080".parse().unwrap())
    );
    assert_eq!(hello.health_path.as_deref(), Some("/healthz"));
    let respond = hello.routes[0].respond.as_ref().unwrap();
    assert_eq!(
        (respond.status, respond.body.as_str()),
        (200, "Hello from pingora\n")
    );
    assert!(conf.pid_file.starts_with("/tmp"));
    assert!(conf.upgrade_sock.starts_with("/tmp"));
}

#[test]
fn proxy_example_routes_to_the_origin() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/proxy.yaml");
    let conf = ServerConf::load(path).unwrap();
    let proxy = &conf.services[0];
    for (_, upstream) in proxy.upstreams.iter() {
        assert_eq!(upstream.peers[0].addr, "127.0.0.1:9000");
    }
    assert!(proxy.routes.iter().any(|r| r
        .matcher
        .as_ref()
        .is_some_and(|m| m.path_prefix.as_deref() == Some("/api/"))));
}
