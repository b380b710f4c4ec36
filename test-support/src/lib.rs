//! The one test harness of the workspace: blocking, thread-based helpers for tests that
//! use real sockets on 127.0.0.1.
//!
//! - Origins: an HTTP/1.1 origin ([`Origin`]), an HTTP/2 one ([`H2Origin`]), a DNS
//!   server ([`DnsServer`]).
//! - Clients: a raw HTTP/1 client over TCP or a unix socket ([`RawClient`], [`Target`]),
//!   an HTTP/2 client ([`H2Client`]), bounded load with a report ([`Load`]).
//! - The `pingora` binary: its config ([`ProxyConfig`]), a running process with its log
//!   and signals ([`ProxyProcess`], [`Proxy`]), processes known by pid ([`Strays`],
//!   [`read_pid`], ...), one-shot commands ([`run_command`]), its metrics ([`Metrics`]).
//! - The PROXY protocol, written independently of pingora-core ([`v1_header`],
//!   [`v2_header`], [`read_proxy_header`]; origins that expect it:
//!   [`OriginBuilder::expect_proxy_header`]).
//! - Deterministic payloads with checksums, free ports, readiness polls.
//! - With the `tls` feature (BoringSSL): test certificates minted on the fly
//!   (`TestCa`), a blocking TLS client (`TlsClient`) and a TLS front for origins
//!   (`TlsFront`).

mod client;
mod command;
mod config;
mod data;
mod dir;
mod dns;
mod h2_client;
mod h2_origin;
mod h2_websocket;
#[cfg(feature = "http3")]
mod h3_client;
mod haproxy;
mod load;
mod memory;
mod net;
mod origin;
mod pids;
mod process;
mod prom;
mod proxy;
mod proxy_header;
mod raw_h2;
mod recording_origin;
mod reply;
mod stream;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tls")]
mod tls_client;
#[cfg(feature = "tls")]
mod tls_front;
#[cfg(feature = "tls")]
mod tls_ocsp;
mod wire;

pub use client::{
    chunked_body, get, request, request_bytes, RawClient, Response, DEFAULT_READ_TIMEOUT,
};
pub use command::{run_command, CommandOutput};
pub use config::{write_atomically, ProxyConfig, DRAIN_EXIT_DEADLINE, DRAIN_TIMEOUT};
pub use data::{
    checksum, deterministic_bytes, deterministic_checksum, spawn_pattern_writer, ByteStream,
    Checksum, LARGE_STREAM_SEED, MIB, REQUEST_BODY_SEED,
};
pub use dir::TestDir;
pub use dns::{DnsFailure, DnsServer, DnsType, SrvRecord};
pub use h2_client::{
    h2_client_runtime, H2Body, H2Client, H2Request, H2Response, DEFAULT_H2_TIMEOUT, MAX_KEPT_BODY,
};
pub use h2_origin::{H2Origin, H2OriginBuilder};
pub use h2_websocket::{H2WebSocket, H2WebSocketRefused, WebSocketEchoOrigin};
#[cfg(feature = "http3")]
pub use h3_client::{H3Client, H3Response, DEFAULT_H3_TIMEOUT};
pub use haproxy::Haproxy;
pub use load::{heavy, Load, LoadReport};
pub use memory::{process_memory, ProcessMemory};
pub use net::{free_addr, free_port, port_accepts, wait_for_port, wait_until};
pub use origin::{Origin, OriginBuilder, ReceivedRequest, RequestHead, MAX_STORED_BODY};
pub use pids::{is_pingora, is_running, read_pid, send_signal, wait_gone, wait_pid_file, Strays};
pub use process::{ProxyProcess, Signal, SETTLE_TIMEOUT};
pub use prom::{parse_metrics, MalformedMetrics, Metrics, Sample};
pub use proxy::{ConcurrentGets, Proxy, EXCHANGE_TIMEOUT, LARGE_EXCHANGE_TIMEOUT};
pub use proxy_header::{read_proxy_header, v1_header, v2_header, SeenProxyHeader};
pub use raw_h2::{H2Outcome, RawH2};
pub use recording_origin::{frame_request, FramedRequest, RecordingOrigin};
pub use reply::{owned, reason, Gate, Reply, GATE_TIMEOUT};
pub use stream::{ClientStream, Target, TARGET_IO_TIMEOUT};
#[cfg(feature = "tls")]
pub use tls::{OcspCertStatus, OcspSpec, TestCa, TestCert};
#[cfg(feature = "tls")]
pub use tls_client::{TlsClient, TlsClientConfig, TlsConnection};
#[cfg(feature = "tls")]
pub use tls_front::{FrontHandshake, TlsFront, TlsFrontBuilder};
pub use wire::{has_token, header, header_all, Framing, Headers, WireReader, MAX_HEAD_BYTES};
