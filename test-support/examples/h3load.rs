//! A small HTTP/3 load generator for measuring the proxy's CPU per request over QUIC
//! (h2load in Debian is built without HTTP/3). Not a test.
//!
//! ```text
//! cargo run --release -p test-support --features http3 --example h3load -- \
//!     ADDR SERVER_NAME CA_PEM_FILE CONNECTIONS STREAMS SECONDS PATH
//! ```
//!
//! Opens CONNECTIONS QUIC connections, each keeping STREAMS requests of `GET PATH` in
//! flight (in rounds: STREAMS at once, then the next STREAMS), for SECONDS; prints the
//! requests answered 2xx, the failures and requests per second.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use test_support::{H2Body, H3Client};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 7 {
        eprintln!("usage: h3load ADDR SERVER_NAME CA_PEM_FILE CONNECTIONS STREAMS SECONDS PATH");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[0].parse().expect("ADDR");
    let name = args[1].clone();
    let ca = std::fs::read_to_string(&args[2]).expect("CA_PEM_FILE");
    let conns: usize = args[3].parse().expect("CONNECTIONS");
    let streams: usize = args[4].parse().expect("STREAMS");
    let secs: u64 = args[5].parse().expect("SECONDS");
    let path = args[6].clone();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            let (name, ca, path) = (name.clone(), ca.clone(), path.clone());
            std::thread::spawn(move || {
                let client = match H3Client::connect(addr, &name, &ca) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("connect: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let batch = (0..streams)
                        .map(|_| ("GET".to_string(), path.clone(), H2Body::Empty))
                        .collect();
                    for r in client.request_all(batch) {
                        match r {
                            Ok(r) if (200..300).contains(&r.status) => {
                                ok.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    println!(
        "requests: {ok} succeeded, {} failed, {:.0} req/s",
        failed.load(Ordering::Relaxed),
        ok as f64 / elapsed
    );
}
