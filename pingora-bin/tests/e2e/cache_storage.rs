//! Where the cache keeps responses, black-box: one memory budget (192 objects of
//! 16 KiB in 4 MiB all stay; an object of a quarter of `max_bytes` is stored), a disk
//! tier whose entries survive a restart and a graceful upgrade, a SIGKILL during disk
//! fills that never leads to a bad entry, purge by prefix reaching the disk, the
//! cache's metrics by tier, and cache directories refused at `-t`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use test_support::{
    free_addr, request, run_command, wait_until, Gate, Metrics, Origin, ProxyConfig, ProxyProcess,
    Reply, Response, Signal, Target, TestDir, DRAIN_EXIT_DEADLINE,
};

use crate::bin;

const KIB: usize = 1024;

/// The body of object `i`: `size` bytes that differ from one object to the next.
fn object(i: usize, size: usize) -> Vec<u8> {
    (0..size)
        .map(|j| (j.wrapping_mul(31) ^ i.wrapping_mul(7)) as u8)
        .collect()
}

/// The size in the path `/o/<size>/<i>`, and `i`.
fn parse_object_path(path: &str) -> Option<(usize, usize)> {
    let mut parts = path.trim_start_matches("/o/").split('/');
    let size = parts.next()?.parse().ok()?;
    let i = parts.next()?.parse().ok()?;
    Some((size, i))
}

/// An origin answering `/o/<size>/<i>` with [`object`], cacheable for an hour.
fn objects_origin() -> Origin {
    Origin::start(|req| match parse_object_path(&req.path) {
        Some((size, i)) => Reply::full(200, &[("cache-control", "max-age=3600")], object(i, size)),
        None => Reply::full(404, &[], "no such object"),
    })
}

fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn cache_status(r: &Response) -> &str {
    r.header("x-cache-status").unwrap_or("<none>")
}

/// Gets `/o/<size>/<i>`, checks the body, returns the `X-Cache-Status`.
fn fetch_object(addr: SocketAddr, size: usize, i: usize) -> String {
    let r = get(addr, &format!("/o/{size}/{i}"));
    assert_eq!(r.status, 200, "object {i}");
    assert!(
        r.body == object(i, size),
        "object {i}: wrong or truncated body ({} bytes)",
        r.body.len()
    );
    cache_status(&r).to_string()
}

/// The `cache:` section with a disk tier in `dir`.
fn disk_section(memory: usize, disk: &Path, extra: &str) -> String {
    format!(
        "{{ max_bytes: {memory}, disk: {{ path: \"{}\", max_bytes: 67108864 }}{extra} }}",
        disk.display()
    )
}

/// Files of entries in a cache directory (not the temporary ones).
fn entry_files(dir: &Path) -> usize {
    (0..=255u8)
        .filter_map(|sub| std::fs::read_dir(dir.join(format!("{sub:02x}"))).ok())
        .map(|files| files.count())
        .sum()
}

#[test]
fn one_budget_keeps_192_objects_of_16_kib_in_4_mib() {
    let origin = objects_origin();
    let p = ProxyConfig::new(origin.addr())
        .cached("{ max_bytes: 4194304 }")
        .start(bin());
    for i in 0..192 {
        assert_eq!(fetch_object(p.addr, 16 * KIB, i), "MISS");
    }
    for i in 0..192 {
        assert_eq!(
            fetch_object(p.addr, 16 * KIB, i),
            "HIT",
            "object {i} was evicted"
        );
    }
    // An object of a quarter of max_bytes is stored too.
    assert_eq!(fetch_object(p.addr, 1024 * KIB, 0), "MISS");
    assert_eq!(fetch_object(p.addr, 1024 * KIB, 0), "HIT");
    assert_eq!(origin.requests(), 193);
}

#[test]
fn max_object_bytes_passes_larger_responses_through() {
    let origin = objects_origin();
    let p = ProxyConfig::new(origin.addr())
        .cached("{ max_bytes: 4194304, max_object_bytes: 65536 }")
        .start(bin());
    for _ in 0..2 {
        assert_eq!(fetch_object(p.addr, 100 * KIB, 1), "MISS");
    }
    assert_eq!(fetch_object(p.addr, 60 * KIB, 1), "MISS");
    assert_eq!(fetch_object(p.addr, 60 * KIB, 1), "HIT");
}

/// A lifecycle config (pid file and upgrade socket in `dir`) caching on disk in
/// `dir/cache`.
fn disk_config(dir: &Path, origin: &Origin, listen: SocketAddr) -> ProxyConfig {
    ProxyConfig::lifecycle_at(dir, listen, origin.addr()).cached(&disk_section(
        4 << 20,
        &dir.join("cache"),
        "",
    ))
}

#[test]
fn hits_survive_a_restart_with_a_disk_tier() {
    let origin = objects_origin();
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let conf = disk_config(dir.path(), &origin, listen);
    let path = conf.write("pingora.yaml");
    let mut first = ProxyProcess::spawn(bin(), dir.path(), "first", &path, &[]);
    first.wait_serving(&Target::Tcp(listen), &conf.pid_file());
    // Small ones (memory and disk) and large ones (disk only).
    for i in 0..20 {
        assert_eq!(fetch_object(listen, 16 * KIB, i), "MISS");
    }
    for i in 0..3 {
        assert_eq!(fetch_object(listen, 1024 * KIB, i), "MISS");
    }
    // A graceful stop writes what is still queued.
    first.signal(Signal::SIGTERM);
    let status = first.wait_exit(DRAIN_EXIT_DEADLINE);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "log:\n{}",
        first.log()
    );
    let mut second = ProxyProcess::spawn(bin(), dir.path(), "second", &path, &[]);
    second.wait_serving(&Target::Tcp(listen), &conf.pid_file());
    for i in 0..20 {
        assert_eq!(fetch_object(listen, 16 * KIB, i), "HIT", "small object {i}");
    }
    for i in 0..3 {
        assert_eq!(
            fetch_object(listen, 1024 * KIB, i),
            "HIT",
            "large object {i}"
        );
    }
    assert_eq!(origin.requests(), 23, "nothing fetched again");
    second.signal(Signal::SIGTERM);
    second.wait_exit(DRAIN_EXIT_DEADLINE);
}

#[test]
fn hits_survive_a_graceful_upgrade_with_a_disk_tier() {
    let origin = objects_origin();
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let target = Target::Tcp(listen);
    let conf = disk_config(dir.path(), &origin, listen);
    let path = conf.write("pingora.yaml");
    let pid_file = conf.pid_file();
    let mut old = ProxyProcess::spawn(bin(), dir.path(), "old", &path, &[]);
    old.wait_serving(&target, &pid_file);
    for i in 0..20 {
        assert_eq!(fetch_object(listen, 16 * KIB, i), "MISS");
    }
    // The new instance indexes the files present when it starts.
    assert!(
        wait_until(Duration::from_secs(10), || entry_files(&dir.join("cache"))
            >= 20),
        "the entries reach the disk"
    );
    old.signal(Signal::SIGQUIT);
    assert!(
        old.wait_for_log("SIGQUIT", Duration::from_secs(3)),
        "log:\n{}",
        old.log()
    );
    let new = ProxyProcess::spawn(bin(), dir.path(), "new", &path, &["-u"]);
    let new_pid = new.pid();
    assert!(
        test_support::wait_pid_file(&pid_file, test_support::SETTLE_TIMEOUT, |p| p == new_pid)
            .is_some(),
        "the new instance took over; old log:\n{}\nnew log:\n{}",
        old.log(),
        new.log()
    );
    let status = old.wait_exit(DRAIN_EXIT_DEADLINE);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "log:\n{}",
        old.log()
    );
    for i in 0..20 {
        assert_eq!(
            fetch_object(listen, 16 * KIB, i),
            "HIT",
            "object {i} after the upgrade"
        );
    }
    assert_eq!(origin.requests(), 20);
    new.signal(Signal::SIGTERM);
}

#[test]
fn a_sigkill_during_disk_fills_leaves_no_bad_entry() {
    const LARGE: usize = 768 * KIB;
    const OBJECTS: usize = 48;
    let gate = Gate::new();
    let origin_gate = gate.clone();
    let gated_calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let calls = std::sync::Arc::clone(&gated_calls);
    let origin = Origin::start(move |req| {
        if req.path == "/gated" {
            let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            let body = object(99, LARGE);
            let headers = test_support::owned(&[("cache-control", "max-age=3600")]);
            return if first {
                // Cut by the SIGKILL half-way.
                Reply::Gated {
                    status: 200,
                    headers,
                    body,
                    split: LARGE / 2,
                    gate: origin_gate.clone(),
                }
            } else {
                Reply::Full {
                    status: 200,
                    headers,
                    body,
                }
            };
        }
        let (size, i) = parse_object_path(&req.path).expect("an object path");
        Reply::full(200, &[("cache-control", "max-age=3600")], object(i, size))
    });
    let dir = TestDir::new().unwrap();
    let listen = free_addr();
    let conf = disk_config(dir.path(), &origin, listen);
    let path = conf.write("pingora.yaml");
    let mut first = ProxyProcess::spawn(bin(), dir.path(), "first", &path, &[]);
    first.wait_serving(&Target::Tcp(listen), &conf.pid_file());
    // A fill cut half-way by the SIGKILL.
    let cut = std::thread::spawn(move || request(listen, "GET", "/gated", &[], b""));
    assert!(wait_until(Duration::from_secs(5), || gated_calls
        .load(std::sync::atomic::Ordering::SeqCst)
        == 1));
    // Large objects (disk only: larger than an eighth of memory), fetched by several
    // clients at once, queue many writes: the SIGKILL comes while they are written.
    // (Bodies are checked after the kill, so that it follows the last write closely.)
    let clients: Vec<_> = (0..8)
        .map(|c| {
            std::thread::spawn(move || {
                (c..OBJECTS)
                    .step_by(8)
                    .map(|i| (i, get(listen, &format!("/o/{LARGE}/{i}"))))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let filled: Vec<_> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();
    first.signal(Signal::SIGKILL);
    for (i, r) in &filled {
        assert_eq!((r.status, cache_status(r)), (200, "MISS"), "object {i}");
        assert!(r.body == object(*i, LARGE), "object {i}");
    }
    assert!(first.wait_exit(Duration::from_secs(5)).is_some(), "killed");
    if let Ok(r) = cut.join().expect("client thread") {
        assert!(
            r.body.len() < LARGE,
            "the client of the cut fill never got a whole body"
        );
    }
    gate.open();
    let killed = first.pid();
    let mut second = ProxyProcess::spawn(bin(), dir.path(), "second", &path, &[]);
    second.wait_serving(&Target::Tcp(listen), &conf.pid_file());
    // Whatever the disk holds is whole: every answer has the right body, from the
    // cache or from the origin.
    let mut hits = 0;
    for i in 0..OBJECTS {
        if fetch_object(listen, LARGE, i) == "HIT" {
            hits += 1;
        }
    }
    let gated = get(listen, "/gated");
    assert_eq!(
        cache_status(&gated),
        "MISS",
        "the cut fill was never stored"
    );
    assert!(gated.body == object(99, LARGE));
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("cache/tmp"))
        .unwrap()
        .filter_map(|f| f.ok())
        .filter(|f| {
            f.file_name()
                .to_string_lossy()
                .starts_with(&format!("{killed}-"))
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files of the killed process removed"
    );
    let log = second.log();
    assert!(
        !log.contains("dropping"),
        "no corrupt file was even found:\n{log}"
    );
    eprintln!("{hits} of {OBJECTS} entries were on disk when the process was killed");
    second.signal(Signal::SIGTERM);
    second.wait_exit(DRAIN_EXIT_DEADLINE);
}

/// A lifecycle config with 1 MiB of memory in front of `dir/cache` (`extra`: more keys
/// of the `cache:` section) and an admin listener.
fn admin_config(
    dir: &Path,
    origin: &Origin,
    (listen, admin): (SocketAddr, SocketAddr),
    extra: &str,
) -> ProxyConfig {
    ProxyConfig::lifecycle_at(dir, listen, origin.addr())
        .cached(&disk_section(1 << 20, &dir.join("cache"), extra))
        .set("admin", &format!("{{ addr: \"{admin}\" }}"))
}

#[test]
fn metrics_and_status_show_each_tier() {
    let origin = objects_origin();
    let dir = TestDir::new().unwrap();
    let (listen, admin) = (free_addr(), free_addr());
    let conf = admin_config(
        dir.path(),
        &origin,
        (listen, admin),
        ", max_object_bytes: 262144",
    );
    let path = conf.write("pingora.yaml");
    let mut proc = ProxyProcess::spawn(bin(), dir.path(), "proxy", &path, &[]);
    proc.wait_serving(&Target::Tcp(listen), &conf.pid_file());
    // 40 objects of 64 KiB in 1 MiB of memory: memory evicts, the disk keeps them all.
    for i in 0..40 {
        assert_eq!(fetch_object(listen, 64 * KIB, i), "MISS");
    }
    assert!(wait_until(Duration::from_secs(10), || entry_files(
        &dir.join("cache")
    ) >= 40));
    for i in 0..40 {
        assert_eq!(fetch_object(listen, 64 * KIB, i), "HIT", "object {i}");
    }
    // A disk hit is put back in memory: the next one is a memory hit.
    assert_eq!(fetch_object(listen, 64 * KIB, 39), "HIT");
    // Too large for max_object_bytes: refused.
    fetch_object(listen, 300 * KIB, 0);
    let m = Metrics::scrape(admin);
    let web = ("service", "web");
    let by_tier = |name: &str, tier: &str| m.value(name, &[web, ("tier", tier)]);
    assert!(
        by_tier("pingora_cache_hits_total", "disk") >= 1.0,
        "disk hits"
    );
    assert!(
        by_tier("pingora_cache_hits_total", "memory") >= 1.0,
        "memory hits"
    );
    assert!(by_tier("pingora_cache_hit_bytes_total", "disk") >= (64 * KIB) as f64);
    assert!(
        by_tier("pingora_cache_evictions_total", "memory") >= 1.0,
        "memory evicted"
    );
    assert_eq!(by_tier("pingora_cache_evictions_total", "disk"), 0.0);
    assert!(by_tier("pingora_cache_entries", "disk") >= 40.0);
    assert!(by_tier("pingora_cache_bytes", "disk") >= (40 * 64 * KIB) as f64);
    assert!(by_tier("pingora_cache_bytes", "memory") <= (1 << 20) as f64);
    assert!(m.value("pingora_cache_misses_total", &[web]) >= 41.0);
    assert!(m.value("pingora_cache_admissions_refused_total", &[web]) >= 1.0);
    assert!(m.value("pingora_cache_disk_writes_total", &[web]) >= 40.0);
    assert_eq!(m.value("pingora_cache_disk_corrupt_total", &[web]), 0.0);
    let ratio = m.value("pingora_cache_hit_ratio", &[web]);
    assert!(ratio > 0.4 && ratio < 0.6, "41 hits of 82 lookups: {ratio}");

    let status = get(admin, "/status.json");
    let s: serde_json::Value = serde_json::from_slice(&status.body).expect("JSON");
    let cache = &s["services"][0]["cache"];
    assert!(cache["entries"].as_u64().unwrap() >= 40, "{cache}");
    assert_eq!(cache["entries"], cache["disk"]["entries"], "{cache}");
    assert!(
        cache["memory"]["evictions"].as_u64().unwrap() >= 1,
        "{cache}"
    );
    assert!(cache["disk"]["hits"].as_u64().unwrap() >= 1, "{cache}");
    let page = request(admin, "GET", "/", &[("accept", "text/html")], b"")
        .unwrap()
        .text();
    assert!(
        page.contains("<td>disk</td>"),
        "the page shows the disk tier"
    );
    proc.signal(Signal::SIGTERM);
    proc.wait_exit(DRAIN_EXIT_DEADLINE);
}

#[test]
fn purge_by_prefix_reaches_the_disk_tier() {
    let origin = Origin::start(|req| {
        Reply::full(200, &[("cache-control", "max-age=3600")], req.path.clone())
    });
    let dir = TestDir::new().unwrap();
    let (listen, admin) = (free_addr(), free_addr());
    let conf = admin_config(dir.path(), &origin, (listen, admin), "");
    let path = conf.write("pingora.yaml");
    let start = |name: &str| {
        let mut p = ProxyProcess::spawn(bin(), dir.path(), name, &path, &[]);
        p.wait_serving(&Target::Tcp(listen), &conf.pid_file());
        p
    };
    let mut first = start("first");
    for p in ["/img/a", "/img/b", "/css/c"] {
        assert_eq!(cache_status(&get(listen, p)), "MISS");
    }
    first.signal(Signal::SIGTERM);
    first.wait_exit(DRAIN_EXIT_DEADLINE);
    // After a restart the entries are on disk only.
    let mut second = start("second");
    let r = request(
        admin,
        "POST",
        "/cache/purge",
        &[("content-type", "application/json")],
        br#"{"service": "web", "prefix": "/img/"}"#,
    )
    .unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"purged":2}"#));
    assert_eq!(cache_status(&get(listen, "/img/a")), "MISS");
    assert_eq!(cache_status(&get(listen, "/img/b")), "MISS");
    assert_eq!(cache_status(&get(listen, "/css/c")), "HIT");
    second.signal(Signal::SIGTERM);
    second.wait_exit(DRAIN_EXIT_DEADLINE);
}

/// `pingora -t` on `yaml` written to `dir`.
fn check(dir: &TestDir, yaml: &str) -> test_support::CommandOutput {
    let path = dir.write("pingora.yaml", yaml).unwrap();
    run_command(
        bin(),
        &["-t", "-c", &path.display().to_string()],
        Duration::from_secs(10),
    )
    .expect("pingora -t")
}

fn two_services(a: &Path, b: &Path) -> String {
    let service = |name: &str, path: &Path| {
        format!(
            "  - name: {name}\n    listeners: [{{ addr: \"{}\" }}]\n    routes: [{{ upstream: o, cache: true }}]\n    upstreams: {{ o: {{ peers: [\"127.0.0.1:9\"] }} }}\n    cache: {{ disk: {{ path: \"{}\" }} }}\n",
            free_addr(),
            path.display()
        )
    };
    format!(
        "version: 1\nservices:\n{}{}",
        service("a", a),
        service("b", b)
    )
}

#[test]
fn cache_directories_that_cannot_work_are_refused_at_check_time() {
    let dir = TestDir::new().unwrap();
    let shared: PathBuf = dir.join("cache");
    let out = check(&dir, &two_services(&shared, &dir.join("cache/./")));
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("services[1].cache.disk.path"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("already used by services[0]"),
        "{out:?}"
    );
    assert!(!shared.exists(), "-t creates nothing");
    assert_eq!(
        check(&dir, &two_services(&shared, &dir.join("other"))).code(),
        Some(0)
    );
    std::fs::write(dir.join("file"), "not a directory").unwrap();
    let out = check(&dir, &two_services(&dir.join("file/cache"), &shared));
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("services[0].cache.disk.path"),
        "{out:?}"
    );
    assert!(out.stderr.contains("is not a directory"), "{out:?}");
}

#[test]
#[ignore = "needs root: the cache directory is refused to the user the server switches to (scripts/test-as-root)"]
fn a_cache_directory_the_server_user_cannot_open_stops_the_start_with_exit_1() {
    use std::os::unix::fs::PermissionsExt;
    let origin = objects_origin();
    let dir = TestDir::new().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let cache = dir.join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    let listen = free_addr();
    let conf = disk_config(dir.path(), &origin, listen)
        .set("user", "nobody")
        .set("group", "nogroup");
    let path = conf.write("pingora.yaml");
    // Root may use the directory: the check passes...
    let out = run_command(
        bin(),
        &["-t", "-c", &path.display().to_string()],
        Duration::from_secs(10),
    )
    .expect("pingora -t");
    assert_eq!(out.code(), Some(0), "{out:?}");
    // ...but the server runs as nobody, who may not.
    let mut proc = ProxyProcess::spawn(bin(), dir.path(), "proxy", &path, &[]);
    let status = proc.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "log:\n{}",
        proc.log()
    );
    let log = proc.log();
    assert!(
        log.contains(&cache.display().to_string()),
        "names the directory:\n{log}"
    );
    assert!(log.contains("Permission denied"), "names the cause:\n{log}");
}
