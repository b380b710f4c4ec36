//! `-u`: receiving the listening sockets of the running instance.

use std::time::Duration;

use pingora_config::ServerConf;
use pingora_upgrade::{UpgradeError, UpgradeReceiver};

use super::privileges::Identity;
use crate::listener::{BoundListener, ListenAddr, UDP_HANDOVER_PREFIX};

/// Waits on `upgrade_sock` (one second per `upgrade_sock_connect_accept_max_retries`)
/// for the running instance to hand its listeners over. `identity` is the user the
/// old instance may already run as.
pub fn receive_listeners(
    conf: &ServerConf,
    identity: &Identity,
) -> Result<Vec<BoundListener>, UpgradeError> {
    let mut receiver = UpgradeReceiver::bind(&conf.upgrade_sock)?;
    if let Some(uid) = identity.uid {
        receiver = receiver.allow_uid(uid.as_raw());
    }
    let wait = Duration::from_secs(conf.upgrade_sock_connect_accept_max_retries.max(1) as u64);
    log::info!(
        "waiting up to {}s for the running instance on {}",
        wait.as_secs(),
        conf.upgrade_sock.display()
    );
    let handed = receiver.receive(wait)?;
    let mut listeners: Vec<BoundListener> = Vec::with_capacity(handed.len());
    let mut udp = Vec::new();
    for h in handed {
        if let Some(addr) = h.addr.strip_prefix(UDP_HANDOVER_PREFIX) {
            udp.push((addr.to_string(), h.fd));
            continue;
        }
        match h.addr.parse::<ListenAddr>() {
            Ok(addr) => listeners.push(BoundListener::from_fd(addr, h.fd)),
            Err(_) => log::warn!(
                "ignoring handed-over listener with unknown address {}",
                h.addr
            ),
        }
    }
    // A UDP socket (HTTP/3) goes with the listener of the same address.
    for (addr, fd) in udp {
        match listeners.iter_mut().find(|l| l.addr().to_string() == addr) {
            Some(l) => l.set_udp_fd(fd),
            None => log::warn!("ignoring handed-over UDP socket of unknown listener {addr}"),
        }
    }
    log::info!("received {} listener(s)", listeners.len());
    Ok(listeners)
}
