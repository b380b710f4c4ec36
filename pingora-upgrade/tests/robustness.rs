//! Refusals, timeouts and misbehaving peers.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use common::{assert_handed, join_within, quick_opts, read_refusal, spawn, tcp_listener, TempDir};
use pingora_upgrade::{send_listeners, SendOptions, UpgradeError, UpgradeReceiver};

const LIMIT: Duration = Duration::from_secs(20);

/// Sends one fresh TCP listener to `path` and checks the receiver got it.
fn real_sender_succeeds(
    path: &std::path::Path,
    receiving: std::sync::mpsc::Receiver<
        pingora_upgrade::Result<Vec<pingora_upgrade::HandedListener>>,
    >,
) {
    let (listener, addr) = tcp_listener();
    send_listeners(path, &[(addr.as_str(), listener.as_fd())], quick_opts()).unwrap();
    assert_handed(join_within(receiving, LIMIT).unwrap(), &[addr]);
}

/// Connects a raw peer, writes `bytes`, and returns the refusal text it gets back.
fn raw_peer_refusal(path: &std::path::Path, bytes: &[u8]) -> String {
    let mut peer = UnixStream::connect(path).unwrap();
    peer.write_all(bytes).unwrap();
    read_refusal(&mut peer)
}

#[test]
fn garbage_peer_is_refused_and_the_real_sender_still_gets_through() {
    let dir = TempDir::new("garbage");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let receiving = spawn(move || receiver.receive(Duration::from_secs(10)));

    let reason = raw_peer_refusal(&path, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(reason.contains("bad magic"), "{reason}");
    real_sender_succeeds(&path, receiving);
}

#[test]
fn wrong_version_is_refused_with_a_clear_message() {
    let dir = TempDir::new("version");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let receiving = spawn(move || receiver.receive(Duration::from_secs(10)));

    let reason = raw_peer_refusal(&path, b"PGUP\x00\x09\x00\x00\x00\x01");
    assert!(
        reason.contains("unsupported protocol version 9"),
        "{reason}"
    );
    real_sender_succeeds(&path, receiving);
}

#[test]
fn oversized_counts_and_lengths_are_refused() {
    let dir = TempDir::new("oversized");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let receiving = spawn(move || receiver.receive(Duration::from_secs(10)));

    let reason = raw_peer_refusal(&path, b"PGUP\x00\x01\xff\xff\xff\xff");
    assert!(reason.contains("exceeds the limit"), "{reason}");
    let reason = raw_peer_refusal(&path, b"PGUP\x00\x01\x00\x00\x00\x01\xff\xff");
    assert!(reason.contains("address length 65535"), "{reason}");
    let reason = raw_peer_refusal(&path, b"PGUP\x00\x01\x00\x00\x00\x01\x00\x02\xff\xfe");
    assert!(reason.contains("not UTF-8"), "{reason}");
    real_sender_succeeds(&path, receiving);
}

#[test]
fn peer_closing_early_does_not_end_the_wait() {
    let dir = TempDir::new("early-close");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let receiving = spawn(move || receiver.receive(Duration::from_secs(10)));

    // A hello announcing one listener, then nothing: the descriptors never come.
    let mut peer = UnixStream::connect(&path).unwrap();
    peer.write_all(b"PGUP\x00\x01\x00\x00\x00\x01\x00\x03a:1")
        .unwrap();
    drop(peer);
    real_sender_succeeds(&path, receiving);
}

#[test]
fn descriptor_that_is_not_a_listening_socket_is_refused() {
    let dir = TempDir::new("not-listening");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let receiving = spawn(move || receiver.receive(Duration::from_secs(10)));

    let (listener, addr) = tcp_listener();
    let connected = TcpStream::connect(&addr).unwrap();
    let err =
        send_listeners(&path, &[(addr.as_str(), connected.as_fd())], quick_opts()).unwrap_err();
    match &err {
        UpgradeError::Refused { reason, .. } => {
            assert!(reason.contains("not listening"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    drop(listener);
    real_sender_succeeds(&path, receiving);
}

#[test]
fn sender_without_receiver_times_out_after_its_retries() {
    let dir = TempDir::new("no-receiver");
    let opts = SendOptions {
        connect_retries: 3,
        retry_interval: Duration::from_millis(30),
        io_timeout: Duration::from_secs(1),
    };
    let (listener, addr) = tcp_listener();

    // No file at all.
    let started = Instant::now();
    let err = send_listeners(
        dir.join("missing.sock"),
        &[(addr.as_str(), listener.as_fd())],
        opts.clone(),
    )
    .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, UpgradeError::Timeout { .. }), "{err:?}");
    // It kept trying (a short back-off, not one attempt per interval) for the whole
    // connect_retries x retry_interval window.
    assert!(err.to_string().contains("attempts"), "{err}");
    assert!(elapsed >= Duration::from_millis(90), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    // A stale socket file nobody listens on.
    let stale = dir.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let err = send_listeners(&stale, &[(addr.as_str(), listener.as_fd())], opts).unwrap_err();
    assert!(matches!(err, UpgradeError::Timeout { .. }), "{err:?}");
}

#[test]
fn sender_gives_up_when_the_receiver_never_acknowledges() {
    let dir = TempDir::new("no-ack");
    let path = dir.join("upgrade.sock");
    // A plain listener that accepts nothing and never answers.
    let _silent = UnixListener::bind(&path).unwrap();
    let (listener, addr) = tcp_listener();
    let opts = SendOptions {
        io_timeout: Duration::from_millis(300),
        ..quick_opts()
    };
    let started = Instant::now();
    let err = send_listeners(&path, &[(addr.as_str(), listener.as_fd())], opts).unwrap_err();
    assert!(matches!(err, UpgradeError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("acknowledgement"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn stalled_peer_does_not_hold_the_receiver_past_its_timeout() {
    let dir = TempDir::new("stall");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let _stalled = UnixStream::connect(&path).unwrap();

    let started = Instant::now();
    let err = join_within(
        spawn(move || receiver.receive(Duration::from_millis(500))),
        LIMIT,
    )
    .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, UpgradeError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("last refused peer"), "{err}");
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
}

#[test]
fn stalled_peer_delays_a_real_sender_by_at_most_the_peer_timeout() {
    const PEER_TIMEOUT: Duration = Duration::from_millis(200);
    // The bound, with a wide margin for a loaded machine: a receiver that waited on the
    // stalled peer for seconds (or for its whole 10 s receive timeout) instead of the
    // peer timeout goes past it.
    const BOUND: Duration = Duration::from_secs(2);
    let dir = TempDir::new("stall-then-real");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path)
        .unwrap()
        .with_peer_io_timeout(PEER_TIMEOUT);
    // Connected first, so the receiver takes it first; it never sends anything.
    let stalled = UnixStream::connect(&path).unwrap();
    let started = Instant::now();
    let receiving = spawn(move || receiver.receive(Duration::from_secs(10)));
    real_sender_succeeds(&path, receiving);
    let delay = started.elapsed();
    assert!(
        delay < BOUND,
        "the real sender got through only after {delay:?}, with a peer timeout of {PEER_TIMEOUT:?}"
    );
    drop(stalled);
}

#[test]
fn receiver_with_nobody_sending_times_out() {
    let dir = TempDir::new("recv-timeout");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let started = Instant::now();
    let err = receiver.receive(Duration::from_millis(200)).unwrap_err();
    assert!(matches!(err, UpgradeError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(started.elapsed() < Duration::from_secs(2));
    // The receiver stays usable after a timeout, and a huge timeout does not
    // overflow: the arriving sender ends the wait.
    let receiving = spawn(move || receiver.receive(Duration::MAX));
    real_sender_succeeds(&path, receiving);
}

#[test]
fn second_receiver_on_the_same_path_is_refused_while_one_waits() {
    let dir = TempDir::new("second");
    let path = dir.join("upgrade.sock");
    let first = UpgradeReceiver::bind(&path).unwrap();
    let receiving = spawn(move || first.receive(Duration::from_secs(10)));

    let err = UpgradeReceiver::bind(&path).unwrap_err();
    assert!(
        matches!(err, UpgradeError::AlreadyWaiting { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "another instance is already waiting for an upgrade at {}",
            path.display()
        )
    );
    // The refused second receiver must not have removed the first one's file.
    assert!(path.exists());
    real_sender_succeeds(&path, receiving);
}

#[test]
fn a_path_that_is_not_a_socket_is_left_alone() {
    let dir = TempDir::new("not-socket");
    let path = dir.join("upgrade.sock");
    std::fs::write(&path, b"precious").unwrap();
    let err = UpgradeReceiver::bind(&path).unwrap_err();
    assert!(matches!(err, UpgradeError::NotASocket { .. }), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn invalid_listeners_are_rejected_before_connecting() {
    let dir = TempDir::new("invalid");
    let (listener, _) = tcp_listener();
    let long = "x".repeat(2000);
    for addr in ["", long.as_str()] {
        let err = send_listeners(
            dir.join("none.sock"),
            &[(addr, listener.as_fd())],
            quick_opts(),
        )
        .unwrap_err();
        assert!(
            matches!(err, UpgradeError::InvalidListener { .. }),
            "{err:?}"
        );
    }
}
