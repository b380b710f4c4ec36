//! Discovery: a static list, and a watched file whose changes reach the load balancer
//! while it serves (a bad or empty file keeps the current set).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pingora_lb::{
    run_discovery, Algorithm, Backend, Discovery, FileDiscovery, LbError, LoadBalancer,
    StaticDiscovery,
};
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(5);

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("pingora-lb-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn addrs(lb: &LoadBalancer) -> Vec<String> {
    lb.backends().into_iter().map(|b| b.addr).collect()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn static_discovery_gives_its_list() {
    let list = vec![Backend::new("a:1"), Backend::new("b:2").with_weight(4)];
    assert_eq!(
        StaticDiscovery::new(list.clone()).discover().await.unwrap(),
        list
    );
}

#[tokio::test]
async fn file_discovery_follows_the_file() {
    let dir = TempDir::new("file");
    let path = dir.0.join("backends.txt");
    std::fs::write(&path, "127.0.0.1:8001\n127.0.0.1:8002 2\n").unwrap();
    let lb = Arc::new(LoadBalancer::new(
        vec![Backend::new("127.0.0.1:8001")],
        Algorithm::Weighted,
    ));
    lb.set_healthy(0, false);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run_discovery(
        lb.clone(),
        FileDiscovery::new(&path),
        Duration::from_millis(10),
        async {
            let _ = stopped.await;
        },
    ));
    wait_for("first read", || lb.len() == 2).await;
    assert_eq!(addrs(&lb), ["127.0.0.1:8001", "127.0.0.1:8002"]);
    assert_eq!(lb.backends()[1].weight, 2);
    assert!(!lb.is_healthy(0), "a known backend kept its health");
    assert_eq!(lb.select(b"").map(|(i, _)| i), Some(1));

    // A broken file and an empty one are ignored: the set stays.
    std::fs::write(&path, "127.0.0.1:8001\nnot-an-address\n").unwrap();
    let err = FileDiscovery::new(&path).discover().await.unwrap_err();
    assert!(matches!(err, LbError::Parse { line: 2, .. }), "{err}");
    std::fs::write(&path, "# nothing\n").unwrap();
    // A later good edit is picked up (so the broken ones were read and skipped).
    std::fs::write(&path, "127.0.0.1:8003\n").unwrap();
    wait_for("second edit", || addrs(&lb) == ["127.0.0.1:8003"]).await;
    std::fs::write(&path, "").unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        addrs(&lb),
        ["127.0.0.1:8003"],
        "an empty file emptied the set"
    );

    // A missing file is an error naming it; the set stays.
    std::fs::remove_file(&path).unwrap();
    let err = FileDiscovery::new(&path).discover().await.unwrap_err();
    assert!(err.to_string().contains("backends.txt"), "{err}");
    assert_eq!(lb.len(), 1);

    let _ = stop.send(());
    tokio::time::timeout(WAIT, task)
        .await
        .expect("discovery stops")
        .expect("discovery task");
}
