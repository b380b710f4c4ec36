//! Successful hand-overs between a sender and a receiver on real sockets.

mod common;

use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::{
    assert_handed, join_within, quick_opts, spawn, tcp_listener, unix_listener, within, TempDir,
};
use pingora_upgrade::{send_listeners, UpgradeReceiver};

const LIMIT: Duration = Duration::from_secs(20);

/// Three TCP listeners and one unix listener, with their address strings.
struct OldInstance {
    tcp: Vec<TcpListener>,
    unix: UnixListener,
    addrs: Vec<String>,
}

impl OldInstance {
    fn new(dir: &TempDir) -> OldInstance {
        let mut tcp = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..3 {
            let (listener, addr) = tcp_listener();
            tcp.push(listener);
            addrs.push(addr);
        }
        let (unix, addr) = unix_listener(&dir.join("app.sock"));
        addrs.push(addr);
        OldInstance { tcp, unix, addrs }
    }

    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds: Vec<BorrowedFd<'_>> = self.tcp.iter().map(|l| l.as_fd()).collect();
        fds.push(self.unix.as_fd());
        fds
    }

    /// Sends every listener to `path` on another thread.
    fn send_in_background(
        self,
        path: std::path::PathBuf,
    ) -> std::sync::mpsc::Receiver<pingora_upgrade::Result<()>> {
        spawn(move || {
            let fds = self.fds();
            let pairs: Vec<(&str, BorrowedFd<'_>)> = self
                .addrs
                .iter()
                .map(String::as_str)
                .zip(fds.iter().copied())
                .collect();
            send_listeners(&path, &pairs, quick_opts())
        })
    }
}

#[test]
fn receiver_first_gets_tcp_and_unix_listeners_with_their_addresses() {
    let dir = TempDir::new("recv-first");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let receiving = spawn(move || receiver.receive(Duration::from_secs(10)));

    let old = OldInstance::new(&dir);
    let expected = old.addrs.clone();
    let sending = old.send_in_background(path.clone());

    join_within(sending, LIMIT).unwrap();
    let received = join_within(receiving, LIMIT).unwrap();
    assert_handed(received, &expected);
    assert!(
        !path.exists(),
        "the socket file is removed with the receiver"
    );
}

#[test]
fn sender_first_retries_until_the_receiver_appears() {
    let dir = TempDir::new("send-first");
    let path = dir.join("upgrade.sock");
    let old = OldInstance::new(&dir);
    let expected = old.addrs.clone();
    let sending = old.send_in_background(path.clone());

    // Let the sender fail a few connection attempts before the receiver exists.
    std::thread::sleep(Duration::from_millis(150));
    assert!(!path.exists());
    let received = within(LIMIT, move || {
        let receiver = UpgradeReceiver::bind(&path).unwrap();
        receiver.receive(Duration::from_secs(10))
    })
    .unwrap();

    join_within(sending, LIMIT).unwrap();
    assert_handed(received, &expected);
}

/// With the default one-second retry interval, a sender that started before the
/// receiver must not wait out a whole interval once the receiver listens: the
/// hand-over of a reload should take effect in well under a second.
#[test]
fn sender_first_connects_soon_after_the_receiver_appears_with_default_options() {
    let dir = TempDir::new("send-first-default");
    let path = dir.join("upgrade.sock");
    let (listener, addr) = tcp_listener();
    let sender_path = path.clone();
    let sending = spawn(move || {
        send_listeners(
            &sender_path,
            &[(addr.as_str(), listener.as_fd())],
            pingora_upgrade::SendOptions::default(),
        )
    });
    std::thread::sleep(Duration::from_millis(100));
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let bound = std::time::Instant::now();
    let received = within(LIMIT, move || receiver.receive(Duration::from_secs(10))).unwrap();
    let waited = bound.elapsed();
    join_within(sending, LIMIT).unwrap();
    assert_eq!(received.len(), 1);
    // The back-off is capped at MAX_CONNECT_BACKOFF (25 ms); a sender still pausing a
    // whole second between attempts takes about 900 ms here.
    assert!(
        waited < Duration::from_millis(500),
        "the sender connected {waited:?} after the receiver listened"
    );
}

#[test]
fn socket_file_has_mode_0600_and_is_removed_on_drop() {
    let dir = TempDir::new("mode");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    assert_eq!(receiver.path(), path.as_path());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode was {mode:o}");
    drop(receiver);
    assert!(!path.exists());
}

#[test]
fn more_listeners_than_fit_in_one_message_arrive_intact() {
    const COUNT: usize = 300;
    let dir = TempDir::new("many");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let receiving = spawn(move || receiver.receive(Duration::from_secs(10)));

    let listeners: Vec<(TcpListener, String)> = (0..COUNT).map(|_| tcp_listener()).collect();
    let expected: Vec<String> = listeners.iter().map(|(_, a)| a.clone()).collect();
    let pairs: Vec<(&str, BorrowedFd<'_>)> = listeners
        .iter()
        .map(|(l, a)| (a.as_str(), l.as_fd()))
        .collect();
    send_listeners(&path, &pairs, quick_opts()).unwrap();

    let received = join_within(receiving, LIMIT).unwrap();
    assert_eq!(received.len(), COUNT);
    assert_handed(received, &expected);
}

#[test]
fn zero_listeners_is_a_valid_hand_over() {
    let dir = TempDir::new("zero");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let receiving = spawn(move || receiver.receive(Duration::from_secs(10)));
    send_listeners(&path, &[], quick_opts()).unwrap();
    assert!(join_within(receiving, LIMIT).unwrap().is_empty());
}

#[test]
fn addresses_travel_byte_for_byte() {
    let dir = TempDir::new("addrs");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let receiving = spawn(move || receiver.receive(Duration::from_secs(10)));

    // The strings are opaque to the protocol: IPv6, unicode and max length all pass.
    let long = format!("unix:/{}", "d".repeat(1024 - 6));
    let names = [
        "[::]:8443",
        "0.0.0.0:8080",
        "unix:/run/ünïcode.sock",
        long.as_str(),
    ];
    let listeners: Vec<TcpListener> = names.iter().map(|_| tcp_listener().0).collect();
    let pairs: Vec<(&str, BorrowedFd<'_>)> = names
        .iter()
        .copied()
        .zip(listeners.iter().map(|l| l.as_fd()))
        .collect();
    send_listeners(&path, &pairs, quick_opts()).unwrap();

    let received = join_within(receiving, LIMIT).unwrap();
    let got: Vec<&str> = received.iter().map(|l| l.addr.as_str()).collect();
    assert_eq!(got, names);
    for (handed, original) in received.into_iter().zip(&listeners) {
        let handed = TcpListener::from(handed.fd);
        assert_eq!(handed.local_addr().unwrap(), original.local_addr().unwrap());
    }
}

#[test]
fn stale_socket_file_is_replaced() {
    let dir = TempDir::new("stale");
    let path = dir.join("upgrade.sock");
    // A socket file whose listener is gone, as a crashed instance leaves behind.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());

    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let receiving = spawn(move || receiver.receive(Duration::from_secs(10)));
    let (listener, addr) = tcp_listener();
    send_listeners(&path, &[(addr.as_str(), listener.as_fd())], quick_opts()).unwrap();
    assert_handed(join_within(receiving, LIMIT).unwrap(), &[addr]);
}

#[test]
fn received_descriptors_are_close_on_exec() {
    let dir = TempDir::new("cloexec");
    let path = dir.join("upgrade.sock");
    let receiver = UpgradeReceiver::bind(&path).unwrap();
    let receiving = spawn(move || receiver.receive(Duration::from_secs(10)));
    let (listener, addr) = tcp_listener();
    send_listeners(&path, &[(addr.as_str(), listener.as_fd())], quick_opts()).unwrap();
    let received = join_within(receiving, LIMIT).unwrap();
    let flags = nix::fcntl::fcntl(&received[0].fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(flags & libc::FD_CLOEXEC, 0);
}
