//! Session-ticket keys read from a file, so that every process serving a listener (the
//! instances before and after an upgrade, the members of a fleet) can resume the
//! others' TLS sessions.
//!
//! # File format
//!
//! One or more keys of exactly [`TicketKeys::KEY_LEN`] (80) bytes each, concatenated,
//! binary, nothing else. Each key is, in order:
//!
//! | bytes | what |
//! |---|---|
//! | 0..16 | the key name, sent in the clear in every ticket to find the key again |
//! | 16..48 | the HMAC-SHA256 secret that authenticates a ticket |
//! | 48..80 | the AES-256-CBC key that encrypts a ticket |
//!
//! This is the layout of nginx's 80-byte `ssl_session_ticket_key` files, so `openssl rand
//! 80 > ticket.key` makes one. The **first** key encrypts new tickets; **every** key
//! decrypts. A ticket sealed with a key other than the first is accepted and replaced
//! by a new one. To rotate: put a new key first, keep the old ones after it, reload.

use std::fmt;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result, Side};

/// Length of a key name, in bytes.
pub(crate) const NAME_LEN: usize = 16;
/// Length of the HMAC-SHA256 secret, in bytes.
pub(crate) const HMAC_LEN: usize = 32;
/// Length of the AES-256 key, in bytes.
pub(crate) const AES_LEN: usize = 32;

/// One ticket key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TicketKey {
    pub(crate) name: [u8; NAME_LEN],
    pub(crate) hmac: [u8; HMAC_LEN],
    pub(crate) aes: [u8; AES_LEN],
}

/// Session-ticket keys shared by processes: the first seals new tickets, all open them.
///
/// A key file holds one or more 80-byte keys, concatenated, binary: 16 bytes of key
/// name, 32 bytes of HMAC-SHA256 secret, 32 bytes of AES-256-CBC key (nginx's 80-byte
/// `ssl_session_ticket_key` layout; `openssl rand 80` makes one).
#[derive(Clone, PartialEq, Eq)]
pub struct TicketKeys {
    keys: Vec<TicketKey>,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secrets; the names are public (every ticket carries one).
        f.debug_struct("TicketKeys")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

fn key_error(what: String) -> Error {
    Error::new(ErrorKind::TlsConfig, Side::Internal, what)
}

impl TicketKeys {
    /// Length of one key in the file, in bytes.
    pub const KEY_LEN: usize = NAME_LEN + HMAC_LEN + AES_LEN;
    /// Most keys a file may hold.
    pub const MAX_KEYS: usize = 64;

    /// Keys from the bytes of a key file. Fails when the length is not a whole number
    /// (1 to [`TicketKeys::MAX_KEYS`]) of 80-byte keys, or when two keys share a name.
    pub fn from_bytes(bytes: &[u8]) -> Result<TicketKeys> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(Self::KEY_LEN) {
            return Err(key_error(format!(
                "{} bytes: a ticket key file holds one or more keys of exactly {} bytes \
                 (make one with `openssl rand 80`); it may be truncated",
                bytes.len(),
                Self::KEY_LEN
            )));
        }
        let count = bytes.len() / Self::KEY_LEN;
        if count > Self::MAX_KEYS {
            return Err(key_error(format!(
                "{count} keys: at most {} are accepted",
                Self::MAX_KEYS
            )));
        }
        let mut keys: Vec<TicketKey> = Vec::with_capacity(count);
        for (i, raw) in bytes.chunks_exact(Self::KEY_LEN).enumerate() {
            let (name, rest) = raw.split_at(NAME_LEN);
            let (hmac, aes) = rest.split_at(HMAC_LEN);
            let mut key = TicketKey {
                name: [0; NAME_LEN],
                hmac: [0; HMAC_LEN],
                aes: [0; AES_LEN],
            };
            key.name.copy_from_slice(name);
            key.hmac.copy_from_slice(hmac);
            key.aes.copy_from_slice(aes);
            if keys.iter().any(|k| k.name == key.name) {
                return Err(key_error(format!(
                    "key {} has the same name (first 16 bytes) as an earlier key",
                    i + 1
                )));
            }
            keys.push(key);
        }
        Ok(TicketKeys { keys })
    }

    /// Keys read from the key file at `path` (see [`TicketKeys::from_bytes`]).
    pub fn from_file(path: &Path) -> Result<TicketKeys> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::because(
                ErrorKind::TlsConfig,
                Side::Internal,
                format!("cannot read the ticket key file {}", path.display()),
                e,
            )
        })?;
        Self::from_bytes(&bytes)
            .map_err(|e| key_error(format!("ticket key file {}: {}", path.display(), e.context)))
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a value holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key that seals new tickets.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn sealing(&self) -> &TicketKey {
        &self.keys[0]
    }

    /// The key named `name` and whether it is the sealing one.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn find(&self, name: &[u8]) -> Option<(&TicketKey, bool)> {
        self.keys
            .iter()
            .enumerate()
            .find(|(_, k)| k.name == name)
            .map(|(i, k)| (k, i == 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> Vec<u8> {
        (0..80u8)
            .map(|i| i.wrapping_mul(7).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn whole_keys_only() {
        assert!(TicketKeys::from_bytes(&[]).is_err());
        let k = key(1);
        let e = TicketKeys::from_bytes(&k[..79]).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let one = TicketKeys::from_bytes(&k).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one.sealing().name[..], k[..16]);
        assert_eq!(one.sealing().hmac[..], k[16..48]);
        assert_eq!(one.sealing().aes[..], k[48..80]);
    }

    #[test]
    fn first_seals_all_open() {
        let mut bytes = key(1);
        bytes.extend(key(2));
        let keys = TicketKeys::from_bytes(&bytes).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.find(&bytes[..16]).unwrap().1);
        assert!(!keys.find(&bytes[80..96]).unwrap().1);
        assert!(keys.find(&[0; 16]).is_none());
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut bytes = key(1);
        bytes.extend(key(1));
        assert!(TicketKeys::from_bytes(&bytes).is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let keys = TicketKeys::from_bytes(&key(3)).unwrap();
        assert_eq!(format!("{keys:?}"), "TicketKeys { keys: 1, .. }");
    }
}
