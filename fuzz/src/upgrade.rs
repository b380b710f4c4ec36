//! The upgrade socket's handshake messages (pingora-upgrade protocol): the hello the
//! new instance reads and the acknowledgement the old one reads. Never a panic, never
//! an allocation past the protocol's limits, and what decodes re-encodes identically.

use pingora_upgrade::protocol::{read_ack, read_hello, MAX_ADDR_LEN, MAX_LISTENERS};

/// Input: the first byte picks the message (even: hello, odd: ack), the rest is it.
pub fn upgrade_handshake(data: &[u8]) {
    let Some((&pick, mut msg)) = data.split_first() else {
        return;
    };
    let total = msg.len();
    if pick % 2 == 0 {
        if let Ok(addrs) = read_hello(&mut msg) {
            assert!(addrs.len() <= MAX_LISTENERS);
            let used: usize = 10 + addrs.iter().map(|a| 2 + a.len()).sum::<usize>();
            assert_eq!(
                used,
                total - msg.len(),
                "the hello's length does not add up"
            );
            for a in &addrs {
                assert!(!a.is_empty() && a.len() <= MAX_ADDR_LEN);
            }
        }
    } else if let Ok((status, text)) = read_ack(&mut msg) {
        assert!(status <= 1);
        assert!(text.len() <= 3 * 1024, "lossy text grows at most 3x");
    }
}
