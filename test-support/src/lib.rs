//! Blocking, thread-based helpers for tests that use real sockets on 127.0.0.1:
//! an HTTP/1.1 origin server ([`Origin`]), a raw HTTP/1 client ([`RawClient`]),
//! port helpers, deterministic payloads with checksums, control of a running
//! `pingora` binary ([`ProxyProcess`]), and TLS: test certificates minted on the fly
//! ([`TestCa`]), a blocking TLS client ([`TlsClient`]) and a TLS front for origins
//! ([`TlsFront`], which runs its own small tokio runtime).

mod client;
mod data;
mod dns;
mod h2_client;
mod h2_origin;
mod net;
mod origin;
mod process;
mod reply;
mod tls;
mod tls_client;
mod tls_front;
mod wire;

pub use client::{
    chunked_body, get, request, request_bytes, RawClient, Response, DEFAULT_READ_TIMEOUT,
};
pub use data::{
    checksum, deterministic_bytes, deterministic_checksum, ByteStream, Checksum, LARGE_STREAM_SEED,
};
pub use dns::{DnsFailure, DnsServer, DnsType, SrvRecord};
pub use h2_client::{
    h2_client_runtime, H2Body, H2Client, H2Request, H2Response, DEFAULT_H2_TIMEOUT, MAX_KEPT_BODY,
};
pub use h2_origin::{H2Origin, H2OriginBuilder};
pub use net::{free_addr, free_port, port_accepts, wait_for_port, wait_until};
pub use origin::{Origin, OriginBuilder, ReceivedRequest, RequestHead, MAX_STORED_BODY};
pub use process::{
    process_memory, run_command, CommandOutput, ProcessMemory, ProxyProcess, Signal, TestDir,
};
pub use reply::{owned, reason, Reply};
pub use tls::{TestCa, TestCert};
pub use tls_client::{TlsClient, TlsClientConfig, TlsConnection};
pub use tls_front::{FrontHandshake, TlsFront, TlsFrontBuilder};
pub use wire::{has_token, header, header_all, Framing, Headers, WireReader, MAX_HEAD_BYTES};
