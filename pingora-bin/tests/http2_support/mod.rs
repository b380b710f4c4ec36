//! Shared set-up of the HTTP/2 black-box tests (`http2.rs`, `http2_upstream.rs`):
//! deadlines, proxies in front of HTTP/1 and HTTP/2 origins, clients, and concurrent
//! HTTP/1 requests.

#![allow(dead_code)] // each test file uses a different part of this module

use std::io::Write;
use std::net::TcpStream;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::common::{Proxy, Setup};
use test_support::{ByteStream, H2Client, H2Origin, H2Response, RawClient, Response};

/// Deadline of one HTTP/2 exchange (large bodies included) and of HTTP/1 reads.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// Most time to wait for a state the test drives towards (requests held, ...).
pub const SETTLE: Duration = Duration::from_secs(10);
/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;
/// Seed of the request bodies tests send.
pub const SEED: u64 = 0x2f2f_4832;

/// Starts the proxy of `setup`, with a read timeout that fits large bodies.
pub fn proxy_to(setup: Setup) -> Proxy {
    setup.read_timeout_ms(15_000).start()
}

/// A proxy whose upstream `origin` speaks HTTP/2 (h2c) at `origin`.
pub fn h2_upstream_proxy(origin: &H2Origin) -> Proxy {
    proxy_to(Setup::new(origin.addr()).upstream("http2: true"))
}

/// A new h2c (prior knowledge) connection to the proxy.
pub fn h2_client(proxy: &Proxy) -> H2Client {
    H2Client::connect(proxy.addr, DEADLINE).unwrap_or_else(|e| {
        panic!(
            "h2c connection to the proxy: {e}\nproxy log:\n{}",
            proxy.log()
        )
    })
}

/// The response, or a panic with the proxy's log.
pub fn must(proxy: &Proxy, r: std::io::Result<H2Response>) -> H2Response {
    r.unwrap_or_else(|e| panic!("HTTP/2 request failed: {e}\nproxy log:\n{}", proxy.log()))
}

/// A new HTTP/1 connection to the proxy, reads bounded by [`DEADLINE`].
pub fn h1_client(proxy: &Proxy) -> RawClient {
    let c = proxy.client();
    c.set_read_timeout(DEADLINE).expect("read timeout");
    c
}

/// Writes `len` bytes of the stream seeded with [`SEED`], raw or in 64 KiB chunks.
pub fn spawn_body_writer(mut w: TcpStream, len: u64, chunked: bool) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut gen = ByteStream::new(SEED);
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            gen.fill(&mut buf[..n]);
            if chunked {
                w.write_all(format!("{n:x}\r\n").as_bytes())
                    .expect("chunk size");
                w.write_all(&buf[..n]).expect("chunk");
                w.write_all(b"\r\n").expect("chunk end");
            } else {
                w.write_all(&buf[..n]).expect("body");
            }
            left -= n as u64;
        }
        if chunked {
            w.write_all(b"0\r\n\r\n").expect("last chunk");
        }
    })
}

/// Runs `count` HTTP/1.1 GETs of `path(i)` at once, each on its own connection, with
/// `x-request-id: i`; returns the threads (joined by [`join_all`]).
pub fn spawn_h1_gets(
    proxy: &Proxy,
    count: usize,
    path: impl Fn(usize) -> String,
) -> Vec<JoinHandle<std::io::Result<Response>>> {
    (0..count)
        .map(|i| {
            let mut c = h1_client(proxy);
            let req = format!(
                "GET {} HTTP/1.1\r\nHost: test\r\nx-request-id: {i}\r\n\r\n",
                path(i)
            );
            thread::spawn(move || {
                c.send(req.as_bytes())?;
                c.read_final_response()
            })
        })
        .collect()
}

/// Joins the threads of [`spawn_h1_gets`]: every request must be a 200 with its own
/// `x-request-id` back.
pub fn join_all(
    proxy: &Proxy,
    threads: Vec<JoinHandle<std::io::Result<Response>>>,
) -> Vec<Response> {
    threads
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let r = t.join().expect("client thread");
            let r = r.unwrap_or_else(|e| panic!("request {i} failed: {e}\nlog:\n{}", proxy.log()));
            assert_eq!(r.status, 200, "request {i}: {r:?}\nlog:\n{}", proxy.log());
            assert_eq!(r.header("x-request-id"), Some(i.to_string().as_str()));
            r
        })
        .collect()
}
