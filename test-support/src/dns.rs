//! A small DNS server on 127.0.0.1 (UDP) for discovery tests: answers A, AAAA and SRV
//! queries from records the test sets and changes while it runs, counts the queries,
//! and can be told to fail.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The record types the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsType {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
    /// Service records.
    Srv,
}

impl DnsType {
    fn of(record_type: RecordType) -> Option<DnsType> {
        match record_type {
            RecordType::A => Some(DnsType::A),
            RecordType::AAAA => Some(DnsType::Aaaa),
            RecordType::SRV => Some(DnsType::Srv),
            _ => None,
        }
    }
}

/// One SRV record: `priority weight port target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is preferred.
    pub priority: u16,
    /// Relative share among records of one priority.
    pub weight: u16,
    /// The service's port on the target.
    pub port: u16,
    /// The target host name.
    pub target: String,
}

/// How the server misbehaves, when told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsFailure {
    /// Every query gets SERVFAIL.
    ServFail,
    /// Queries are read and never answered (the client times out).
    Silent,
}

#[derive(Default)]
struct Zone {
    /// (lower-case name with a final dot, type) -> (TTL, data).
    records: HashMap<(String, DnsType), (u32, Vec<RData>)>,
    failure: Option<DnsFailure>,
    queries: HashMap<(String, DnsType), usize>,
}

/// The DNS server; stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// `name` in the form keys use: lower case, with a final dot.
fn key(name: &str) -> String {
    let mut name = name.to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

impl DnsServer {
    /// Starts a server on a free UDP port of 127.0.0.1 with no records.
    pub fn start() -> std::io::Result<DnsServer> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let addr = socket.local_addr()?;
        let zone = Arc::new(Mutex::new(Zone::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (z, s) = (zone.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("test-dns".into())
            .spawn(move || serve(&socket, &z, &s))?;
        Ok(DnsServer {
            addr,
            zone,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens (UDP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn zone(&self) -> MutexGuard<'_, Zone> {
        self.zone.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, name: &str, kind: DnsType, ttl: u32, data: Vec<RData>) {
        let mut zone = self.zone();
        if data.is_empty() {
            zone.records.remove(&(key(name), kind));
        } else {
            zone.records.insert((key(name), kind), (ttl, data));
        }
    }

    /// Sets the A records of `name` (none: removes them).
    pub fn set_a(&self, name: &str, ttl: u32, ips: &[Ipv4Addr]) {
        let data = ips.iter().map(|ip| RData::A(A(*ip))).collect();
        self.set(name, DnsType::A, ttl, data);
    }

    /// Sets the AAAA records of `name` (none: removes them).
    pub fn set_aaaa(&self, name: &str, ttl: u32, ips: &[Ipv6Addr]) {
        let data = ips.iter().map(|ip| RData::AAAA(AAAA(*ip))).collect();
        self.set(name, DnsType::Aaaa, ttl, data);
    }

    /// Sets the SRV records of `name` (none: removes them).
    ///
    /// # Panics
    /// When a target is not a valid DNS name (a mistake in the test).
    pub fn set_srv(&self, name: &str, ttl: u32, records: &[SrvRecord]) {
        let data = records
            .iter()
            .map(|r| {
                let target = Name::from_str(&key(&r.target))
                    .unwrap_or_else(|e| panic!("bad SRV target {}: {e}", r.target));
                RData::SRV(SRV::new(r.priority, r.weight, r.port, target))
            })
            .collect();
        self.set(name, DnsType::Srv, ttl, data);
    }

    /// Makes every query fail this way from now on (`None`: answer again).
    pub fn fail(&self, failure: Option<DnsFailure>) {
        self.zone().failure = failure;
    }

    /// How many queries for `name` and `kind` arrived so far.
    pub fn queries(&self, name: &str, kind: DnsType) -> usize {
        self.zone()
            .queries
            .get(&(key(name), kind))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(socket: &UdpSocket, zone: &Mutex<Zone>, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let Ok((len, peer)) = socket.recv_from(&mut buf) else {
            continue; // read timeout: look at `stop` again
        };
        let Ok(query) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let reply = {
            let mut zone = zone.lock().unwrap_or_else(PoisonError::into_inner);
            answer(&query, &mut zone)
        };
        if let Some(bytes) = reply.and_then(|m| m.to_vec().ok()) {
            let _ = socket.send_to(&bytes, peer);
        }
    }
}

/// The response to `query`, or `None` to stay silent.
fn answer(query: &Message, zone: &mut Zone) -> Option<Message> {
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    for q in query.queries() {
        reply.add_query(q.clone());
    }
    let Some(q) = query.queries().first() else {
        reply.set_response_code(ResponseCode::FormErr);
        return Some(reply);
    };
    let name = key(&q.name().to_ascii());
    let kind = DnsType::of(q.query_type());
    if let Some(kind) = kind {
        *zone.queries.entry((name.clone(), kind)).or_insert(0) += 1;
    }
    match zone.failure {
        Some(DnsFailure::Silent) => return None,
        Some(DnsFailure::ServFail) => {
            reply.set_response_code(ResponseCode::ServFail);
            return Some(reply);
        }
        None => {}
    }
    let known_name = zone.records.keys().any(|(n, _)| *n == name);
    match kind.and_then(|k| zone.records.get(&(name, k))) {
        Some((ttl, data)) => {
            for rdata in data {
                reply.add_answer(Record::from_rdata(q.name().clone(), *ttl, rdata.clone()));
            }
        }
        // The name exists without records of this type: an empty answer (NODATA).
        None if known_name => {}
        None => {
            reply.set_response_code(ResponseCode::NXDomain);
        }
    }
    Some(reply)
}
