//! Who may take part in a hand-over: the peer's uid from `SO_PEERCRED`.

use std::os::unix::net::UnixStream;

use nix::sys::socket::{getsockopt, sockopt};

use crate::error::{Result, UpgradeError};

/// Whether a peer running as `peer_uid` may hand sockets to (or receive them
/// from) a process whose effective uid is `own_uid`: only the same user or root.
pub fn peer_uid_allowed(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == own_uid || peer_uid == 0
}

/// Our own effective uid.
pub(crate) fn own_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Reads the peer's uid from the connected stream and applies [`peer_uid_allowed`];
/// `also_allowed` is one more uid to accept (the user a new instance will drop to).
pub(crate) fn check_peer(stream: &UnixStream, also_allowed: Option<u32>) -> Result<()> {
    let creds = getsockopt(stream, sockopt::PeerCredentials).map_err(|e| {
        UpgradeError::io(
            "reading the peer's credentials (SO_PEERCRED)",
            std::io::Error::from(e),
        )
    })?;
    let own = own_uid();
    if peer_uid_allowed(creds.uid(), own) || Some(creds.uid()) == also_allowed {
        Ok(())
    } else {
        Err(UpgradeError::PeerUid {
            uid: creds.uid(),
            own,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_user_and_root_are_allowed_others_are_not() {
        assert!(peer_uid_allowed(1000, 1000));
        assert!(peer_uid_allowed(0, 1000));
        assert!(peer_uid_allowed(0, 0));
        assert!(!peer_uid_allowed(1001, 1000));
        assert!(!peer_uid_allowed(65534, 0));
    }

    #[test]
    fn a_socket_pair_in_one_process_passes_the_check() {
        let (a, _b) = UnixStream::pair().unwrap();
        check_peer(&a, None).unwrap();
    }
}
