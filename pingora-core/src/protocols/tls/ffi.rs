//! The two BoringSSL calls the `boring` crate does not wrap: session tickets sealed with
//! keys of our own ([`TicketKeys`]), and a stapled OCSP response on a context.
//!
//! The only `unsafe` of the TLS code lives here, each block with why it is sound.
#![allow(unsafe_code)]

use std::os::raw::c_int;
use std::sync::{Arc, OnceLock};

use boring::ex_data::Index;
use boring::ssl::{SslContext, SslContextBuilder, SslRef};
use boring_sys as ffi;
use foreign_types::ForeignTypeRef;

use super::ticket_keys::{TicketKeys, AES_LEN, HMAC_LEN, NAME_LEN};

/// Where a context keeps its ticket keys.
fn ticket_keys_index() -> Option<Index<SslContext, Arc<TicketKeys>>> {
    static INDEX: OnceLock<Option<Index<SslContext, Arc<TicketKeys>>>> = OnceLock::new();
    *INDEX.get_or_init(|| SslContext::new_ex_index().ok())
}

/// Seals and opens the session tickets of contexts built by `builder` with `keys`.
pub(super) fn set_ticket_keys(
    builder: &mut SslContextBuilder,
    keys: Arc<TicketKeys>,
) -> Result<(), String> {
    let index = ticket_keys_index().ok_or("cannot allocate the ticket keys' slot")?;
    builder.replace_ex_data(index, keys);
    // SAFETY: `builder.as_ptr()` is a live SSL_CTX owned by the builder, and
    // `ticket_key_callback` has the signature BoringSSL expects. The callback reads the
    // keys from the context's ex_data, which lives as long as the context itself.
    let ok = unsafe {
        ffi::SSL_CTX_set_tlsext_ticket_key_cb(builder.as_ptr(), Some(ticket_key_callback))
    };
    if ok == 1 {
        Ok(())
    } else {
        Err("BoringSSL refused the ticket key callback".into())
    }
}

/// Staples `der` on the handshakes of the context being built (when the client asks).
pub(super) fn set_ocsp_response(builder: &mut SslContextBuilder, der: &[u8]) -> Result<(), String> {
    // SAFETY: a live SSL_CTX and a valid slice; BoringSSL copies the bytes.
    let ok = unsafe { ffi::SSL_CTX_set_ocsp_response(builder.as_ptr(), der.as_ptr(), der.len()) };
    if ok == 1 {
        Ok(())
    } else {
        Err("BoringSSL refused the OCSP response".into())
    }
}

/// BoringSSL's ticket key callback (`SSL_CTX_set_tlsext_ticket_key_cb`): on `encrypt`,
/// fills in the sealing key's name and a random IV and sets up AES-256-CBC and
/// HMAC-SHA256 with it; otherwise finds the key named in the ticket. Returns 1 (done),
/// 2 (opened with an older key: issue a new ticket), 0 (unknown key: full handshake)
/// or -1 (error).
unsafe extern "C" fn ticket_key_callback(
    ssl: *mut ffi::SSL,
    key_name: *mut u8,
    iv: *mut u8,
    cipher_ctx: *mut ffi::EVP_CIPHER_CTX,
    hmac_ctx: *mut ffi::HMAC_CTX,
    encrypt: c_int,
) -> c_int {
    // SAFETY: BoringSSL passes the live SSL of the handshake in progress.
    let ssl = unsafe { SslRef::from_ptr(ssl) };
    let Some(keys) = ticket_keys_index().and_then(|i| ssl.ssl_context().ex_data(i)) else {
        return -1;
    };
    // SAFETY: BoringSSL hands 16 bytes of key name and EVP_MAX_IV_LENGTH (16) bytes of
    // IV, writable on encrypt, read-only in effect on decrypt (we only read them then).
    let name = unsafe { std::slice::from_raw_parts_mut(key_name, NAME_LEN) };
    let iv = unsafe { std::slice::from_raw_parts_mut(iv, 16) };
    let (key, renew) = if encrypt == 1 {
        let key = keys.sealing();
        if boring::rand::rand_bytes(iv).is_err() {
            return -1;
        }
        name.copy_from_slice(&key.name);
        (key, false)
    } else {
        match keys.find(name) {
            Some((key, sealing)) => (key, !sealing),
            None => return 0,
        }
    };
    // SAFETY: the contexts are the ones BoringSSL allocated for this ticket; the keys
    // are AES_LEN and HMAC_LEN bytes long as AES-256 and our HMAC secret need.
    let ready = unsafe {
        let cipher = ffi::EVP_aes_256_cbc();
        let cipher_ok = if encrypt == 1 {
            ffi::EVP_EncryptInit_ex(
                cipher_ctx,
                cipher,
                std::ptr::null_mut(),
                key.aes.as_ptr(),
                iv.as_ptr(),
            )
        } else {
            ffi::EVP_DecryptInit_ex(
                cipher_ctx,
                cipher,
                std::ptr::null_mut(),
                key.aes.as_ptr(),
                iv.as_ptr(),
            )
        };
        cipher_ok == 1
            && ffi::HMAC_Init_ex(
                hmac_ctx,
                key.hmac.as_ptr().cast(),
                HMAC_LEN,
                ffi::EVP_sha256(),
                std::ptr::null_mut(),
            ) == 1
    };
    debug_assert_eq!(key.aes.len(), AES_LEN);
    match (ready, renew) {
        (false, _) => -1,
        (true, false) => 1,
        (true, true) => 2,
    }
}
