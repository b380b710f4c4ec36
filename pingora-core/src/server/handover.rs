//! Handing every listening socket to a new instance (SIGQUIT, SIGHUP).

use crate::listener::{BoundListener, UDP_HANDOVER_PREFIX};

/// Where listening sockets are handed to a new instance during an upgrade.
#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    /// The unix socket the new instance listens on.
    pub sock: std::path::PathBuf,
    /// One-second retries of connecting to it.
    pub connect_retries: u32,
}

/// Sends a copy of every listener to the new instance; true when it took them. Every
/// failure is logged, and the caller goes on serving.
pub(super) async fn hand_over(
    upgrade: Option<&UpgradeOptions>,
    listeners: &[BoundListener],
) -> bool {
    let Some(upgrade) = upgrade.cloned() else {
        log::error!("no upgrade socket configured; still serving");
        return false;
    };
    let mut copies = Vec::with_capacity(listeners.len());
    for l in listeners {
        match l.try_clone() {
            Ok(c) => copies.push(c),
            Err(e) => {
                log::error!("cannot prepare hand-over: {e}; still serving");
                return false;
            }
        }
    }
    let sock = upgrade.sock.clone();
    let sent = tokio::task::spawn_blocking(move || {
        // Each listener by its address; its UDP socket (HTTP/3), if any, after it as
        // `udp:ADDRESS`.
        let mut named = Vec::with_capacity(copies.len());
        for l in &copies {
            named.push((l.addr().to_string(), l.as_fd()));
            if let Some(udp) = l.udp_fd() {
                named.push((format!("{UDP_HANDOVER_PREFIX}{}", l.addr()), udp));
            }
        }
        let fds: Vec<(&str, std::os::fd::BorrowedFd<'_>)> =
            named.iter().map(|(n, fd)| (n.as_str(), *fd)).collect();
        let opts = pingora_upgrade::SendOptions {
            connect_retries: upgrade.connect_retries,
            ..pingora_upgrade::SendOptions::default()
        };
        pingora_upgrade::send_listeners(&upgrade.sock, &fds, opts)
    })
    .await;
    match sent {
        Ok(Ok(())) => {
            log::info!(
                "{} listener(s) handed over through {}",
                listeners.len(),
                sock.display()
            );
            true
        }
        Ok(Err(e)) => {
            log::error!("hand-over failed, still serving: {e}");
            false
        }
        Err(e) => {
            log::error!("hand-over task failed, still serving: {e}");
            false
        }
    }
}
