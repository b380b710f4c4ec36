//! SO_PEERCRED checks against a peer running as another user.
//!
//! The peer runs as uid/gid 65534 in a child process: this test binary, run
//! again with one of the helper tests below selected. Running a process as
//! another user needs root, so the two tests are ignored in a normal run (the
//! output says "needs root"); `scripts/test-as-root` runs them, and they fail,
//! never pass, when they cannot do what they check.

mod common;

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{assert_handed, join_within, quick_opts, spawn, tcp_listener, TempDir};
use pingora_upgrade::{send_listeners, SendOptions, UpgradeError, UpgradeReceiver};

const CHILD_PATH_ENV: &str = "PGUP_TEST_CHILD_SOCKET";
const OTHER_UID: u32 = 65534;
const LIMIT: Duration = Duration::from_secs(30);

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Fails the test unless it runs as root (it was selected with `--ignored`).
fn require_root() {
    assert!(
        is_root(),
        "needs root to run a peer as uid {OTHER_UID}; run it through scripts/test-as-root"
    );
}

/// Runs the helper test `name` as [`OTHER_UID`]; panics when the test binary cannot
/// be executed as that user (e.g. a target directory other users cannot enter).
fn run_helper_as_other_user(name: &'static str, socket: &Path) -> Output {
    let socket = socket.to_path_buf();
    let output = join_within(
        spawn(move || {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    name,
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_PATH_ENV, socket)
                .uid(OTHER_UID)
                .gid(OTHER_UID)
                .output()
        }),
        LIMIT,
    );
    output.unwrap_or_else(|e| {
        panic!(
            "could not run the test binary as uid {OTHER_UID}: {e} (every directory above it must be searchable by that user)"
        )
    })
}

fn assert_helper_passed(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "helper failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

#[test]
#[ignore = "helper: run as another user by receiver_refuses_a_sender_of_another_user"]
fn helper_sender_as_other_user() {
    let path = std::env::var(CHILD_PATH_ENV).expect("helper run without its socket path");
    let (listener, addr) = tcp_listener();
    let opts = SendOptions {
        connect_retries: 0,
        ..quick_opts()
    };
    match send_listeners(&path, &[(addr.as_str(), listener.as_fd())], opts) {
        Err(UpgradeError::Refused { reason, .. }) => {
            assert!(reason.contains(&format!("uid {OTHER_UID}")), "{reason}")
        }
        other => panic!("expected a refusal naming our uid, got {other:?}"),
    }
}

#[test]
#[ignore = "helper: run as another user by sender_refuses_a_receiver_of_another_user"]
fn helper_receiver_as_other_user() {
    let path = std::env::var(CHILD_PATH_ENV).expect("helper run without its socket path");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let err = receiver.receive(Duration::from_secs(2)).unwrap_err();
    // The root sender hung up on us without sending anything.
    assert!(err.to_string().contains("closed the connection"), "{err}");
}

#[test]
#[ignore = "needs root: runs the sending peer as uid 65534 (scripts/test-as-root)"]
fn receiver_refuses_a_sender_of_another_user() {
    require_root();
    let dir = TempDir::new("peer-uid-sender");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    // Mode 0600 alone keeps other users out; open it up to reach the uid check.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let receiving = spawn(move || receiver.receive(Duration::from_secs(20)));

    assert_helper_passed(&run_helper_as_other_user(
        "helper_sender_as_other_user",
        &path,
    ));

    // The receiver kept waiting and still takes a legitimate hand-over.
    let (listener, addr) = tcp_listener();
    send_listeners(&path, &[(addr.as_str(), listener.as_fd())], quick_opts()).unwrap();
    assert_handed(join_within(receiving, LIMIT).unwrap(), &[addr]);
}

#[test]
#[ignore = "needs root: runs the receiving peer as uid 65534 (scripts/test-as-root)"]
fn sender_refuses_a_receiver_of_another_user() {
    require_root();
    let dir = TempDir::new("peer-uid-receiver");
    let sock_dir = dir.join("open");
    std::fs::create_dir(&sock_dir).unwrap();
    std::fs::set_permissions(&sock_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = sock_dir.join("upgrade.sock");

    let helper_path = path.clone();
    let helper =
        spawn(move || run_helper_as_other_user("helper_receiver_as_other_user", &helper_path));
    let (listener, addr) = tcp_listener();
    let opts = SendOptions {
        connect_retries: 500,
        ..quick_opts()
    };
    let result = send_listeners(&path, &[(addr.as_str(), listener.as_fd())], opts);
    assert_helper_passed(&join_within(helper, LIMIT));
    match result {
        Err(UpgradeError::PeerUid { uid, own }) => {
            assert_eq!(uid, OTHER_UID);
            assert_eq!(own, 0);
        }
        other => panic!("expected a peer uid refusal, got {other:?}"),
    }
}
