//! Backends named by DNS: the addresses of a name (A/AAAA) or its SRV records,
//! re-resolved when the records' TTL runs out.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{Name, ResolveError, TokioResolver};

use super::Discovery;
use crate::backend::Backend;
use crate::error::LbError;

/// Which records of the name give the backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsQuery {
    /// The name's addresses, each one a backend `ADDR:port` of weight 1.
    Addresses {
        /// The backends' port.
        port: u16,
        /// A records, AAAA records or both.
        family: AddressFamily,
    },
    /// The name's SRV records (like `_http._tcp.api.internal`): each target's
    /// addresses (A and AAAA) with the record's port, weighted by the record's weight
    /// (0 counts as 1). Only the records of the lowest priority value are used.
    Srv,
}

/// Address records to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressFamily {
    /// A records (IPv4) only.
    V4,
    /// AAAA records (IPv6) only.
    V6,
    /// Both A and AAAA records.
    #[default]
    Both,
}

/// Settings of a [`DnsDiscovery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsDiscoveryOptions {
    /// The name to resolve. Without a final `.` the resolver's search list applies, as
    /// for any lookup (write `api.internal.` to skip it).
    pub name: String,
    /// What to look up.
    pub query: DnsQuery,
    /// The DNS server to ask (UDP, then TCP for truncated answers); `None`: the servers,
    /// search list and options of the system's `/etc/resolv.conf`, and `/etc/hosts`.
    pub nameserver: Option<SocketAddr>,
    /// Shortest time between two resolutions, even when the records' TTL is shorter
    /// (or 0); also the first delay before retrying a failed or empty resolution.
    pub refresh_min: Duration,
    /// Longest time between two resolutions, even when the TTL is longer; also the
    /// longest delay between retries.
    pub refresh_max: Duration,
    /// Most time one query may take before it is retried or given up.
    pub timeout: Duration,
}

impl DnsDiscoveryOptions {
    /// Settings for `name` with the defaults: the system resolver, refresh between 1 s
    /// and 60 s, 2 s query timeout.
    pub fn new(name: impl Into<String>, query: DnsQuery) -> Self {
        DnsDiscoveryOptions {
            name: name.into(),
            query,
            nameserver: None,
            refresh_min: Duration::from_secs(1),
            refresh_max: Duration::from_secs(60),
            timeout: Duration::from_secs(2),
        }
    }
}

/// Discovers backends through DNS with an asynchronous resolver ([hickory]): nothing
/// blocks the runtime thread it runs on. Each answer says how long it stays valid (its
/// TTL); [`Discovery::refresh_after`] waits that long, kept between `refresh_min` and
/// `refresh_max`. A failed or empty resolution is retried after `refresh_min`, then
/// twice as long each time, up to `refresh_max`; [`crate::run_discovery`] keeps the
/// last good set meanwhile.
///
/// Answers are sorted by address, so a server rotating its answers does not count as
/// a change of the set.
///
/// [hickory]: https://docs.rs/hickory-resolver
pub struct DnsDiscovery {
    name: String,
    query: DnsQuery,
    resolver: TokioResolver,
    refresh_min: Duration,
    refresh_max: Duration,
    /// Milliseconds to wait before the next resolution, set by each resolution.
    next_ms: AtomicU64,
    /// Failed or empty resolutions in a row.
    failures: AtomicU32,
}

impl std::fmt::Debug for DnsDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsDiscovery")
            .field("name", &self.name)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl DnsDiscovery {
    /// A discovery with `options`. Without a `nameserver` this reads `/etc/resolv.conf`
    /// and `/etc/hosts` now (small files; call it at start-up rather than on a busy
    /// runtime thread). Needs a tokio runtime only when discovering.
    pub fn new(options: DnsDiscoveryOptions) -> Result<Self, LbError> {
        let provider = TokioConnectionProvider::default();
        let mut builder = match options.nameserver {
            Some(server) => {
                let group =
                    NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
                let mut builder = TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, Vec::new(), group),
                    provider,
                );
                // The named server answers for every name: no local hosts file.
                builder.options_mut().use_hosts_file = ResolveHosts::Never;
                builder
            }
            None => TokioResolver::builder(provider).map_err(|source| LbError::ResolverConfig {
                source: Box::new(source),
            })?,
        };
        let refresh_min = options.refresh_min.max(Duration::from_millis(1));
        let refresh_max = options.refresh_max.max(refresh_min);
        let opts = builder.options_mut();
        opts.timeout = options.timeout;
        opts.attempts = 2;
        // The resolver's cache keeps answers as long as their TTL says, within the
        // refresh bounds, so that each resolution after `refresh_after` is a fresh query.
        opts.positive_min_ttl = Some(refresh_min);
        opts.positive_max_ttl = Some(refresh_max);
        opts.negative_min_ttl = None;
        opts.negative_max_ttl = Some(refresh_min);
        opts.cache_size = 64;
        opts.try_tcp_on_error = true;
        Ok(DnsDiscovery {
            name: options.name,
            query: options.query,
            resolver: builder.build(),
            refresh_min,
            refresh_max,
            next_ms: AtomicU64::new(millis(refresh_min)),
            failures: AtomicU32::new(0),
        })
    }

    /// Resolves once: the backends sorted by address, and when the answer expires.
    async fn resolve(&self) -> Result<(Vec<Backend>, Instant), LbError> {
        match self.query {
            DnsQuery::Addresses { port, family } => {
                let (ips, valid_until) = self.addresses(&self.name, family).await?;
                let backends = ips
                    .into_iter()
                    .map(|ip| (SocketAddr::new(ip, port), 1))
                    .collect();
                Ok((merge(backends), valid_until))
            }
            DnsQuery::Srv => self.srv().await,
        }
    }

    /// The addresses of `name` and when they expire. A family without records adds
    /// nothing; both empty is [`LbError::Empty`]; any other failure fails the whole.
    async fn addresses(
        &self,
        name: &str,
        family: AddressFamily,
    ) -> Result<(Vec<IpAddr>, Instant), LbError> {
        let mut ips = Vec::new();
        let mut valid_until: Option<Instant> = None;
        let mut expire = |until: Instant| {
            valid_until = Some(valid_until.map_or(until, |v| v.min(until)));
        };
        if family != AddressFamily::V6 {
            match self.resolver.ipv4_lookup(name).await {
                Ok(found) => {
                    expire(found.valid_until());
                    ips.extend(found.iter().map(|a| IpAddr::V4(a.0)));
                }
                Err(e) if e.is_no_records_found() => {}
                Err(e) => return Err(self.error(name, e)),
            }
        }
        if family != AddressFamily::V4 {
            match self.resolver.ipv6_lookup(name).await {
                Ok(found) => {
                    expire(found.valid_until());
                    ips.extend(found.iter().map(|a| IpAddr::V6(a.0)));
                }
                Err(e) if e.is_no_records_found() => {}
                Err(e) => return Err(self.error(name, e)),
            }
        }
        match valid_until {
            Some(until) if !ips.is_empty() => Ok((ips, until)),
            _ => Err(LbError::Empty {
                source_name: format!("DNS {name}"),
            }),
        }
    }

    /// The SRV records of the name, their targets resolved.
    async fn srv(&self) -> Result<(Vec<Backend>, Instant), LbError> {
        let found = match self.resolver.srv_lookup(self.name.as_str()).await {
            Ok(found) => found,
            Err(e) if e.is_no_records_found() => {
                return Err(LbError::Empty {
                    source_name: format!("DNS {}", self.name),
                })
            }
            Err(e) => return Err(self.error(&self.name, e)),
        };
        let mut valid_until = found.as_lookup().valid_until();
        // A target of `.` means "no service here" (RFC 2782).
        let records: Vec<(u16, u16, u16, Name)> = found
            .iter()
            .filter(|srv| !srv.target().is_root())
            .map(|srv| {
                (
                    srv.priority(),
                    srv.weight(),
                    srv.port(),
                    srv.target().clone(),
                )
            })
            .collect();
        let Some(best) = records.iter().map(|r| r.0).min() else {
            return Err(LbError::Empty {
                source_name: format!("DNS {}", self.name),
            });
        };
        let mut backends = Vec::new();
        for (_, weight, port, target) in records.into_iter().filter(|r| r.0 == best) {
            let target = target.to_utf8();
            match self.addresses(&target, AddressFamily::Both).await {
                Ok((ips, until)) => {
                    valid_until = valid_until.min(until);
                    let weight = u32::from(weight.max(1));
                    backends.extend(
                        ips.into_iter()
                            .map(|ip| (SocketAddr::new(ip, port), weight)),
                    );
                }
                // A target without addresses gives no backend; the others still count.
                Err(LbError::Empty { .. }) => {
                    log::debug!("DNS {}: SRV target {target} has no address", self.name);
                }
                Err(e) => return Err(e),
            }
        }
        if backends.is_empty() {
            return Err(LbError::Empty {
                source_name: format!("DNS {}", self.name),
            });
        }
        Ok((merge(backends), valid_until))
    }

    fn error(&self, name: &str, source: ResolveError) -> LbError {
        LbError::Resolve {
            name: name.to_string(),
            source: Box::new(source),
        }
    }

    /// Records when to resolve again after a success (`valid_until`) or a failure.
    fn schedule(&self, valid_until: Option<Instant>) {
        let wait = match valid_until {
            Some(until) => {
                self.failures.store(0, Ordering::Relaxed);
                until.saturating_duration_since(Instant::now())
            }
            None => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed).min(30);
                self.refresh_min.saturating_mul(1 << failures)
            }
        };
        let wait = wait.clamp(self.refresh_min, self.refresh_max);
        self.next_ms.store(millis(wait), Ordering::Relaxed);
    }
}

impl Discovery for DnsDiscovery {
    async fn discover(&self) -> Result<Vec<Backend>, LbError> {
        let result = self.resolve().await;
        self.schedule(result.as_ref().ok().map(|(_, until)| *until));
        result.map(|(backends, _)| backends)
    }

    /// The time left on the last answer's TTL (or the retry delay after a failure),
    /// within `refresh_min` and `refresh_max`; `interval` is not used.
    fn refresh_after(&self, _interval: Duration) -> Duration {
        Duration::from_millis(self.next_ms.load(Ordering::Relaxed))
    }

    fn describe(&self) -> String {
        let kind = match self.query {
            DnsQuery::Addresses {
                family: AddressFamily::V4,
                ..
            } => "A",
            DnsQuery::Addresses {
                family: AddressFamily::V6,
                ..
            } => "AAAA",
            DnsQuery::Addresses {
                family: AddressFamily::Both,
                ..
            } => "A/AAAA",
            DnsQuery::Srv => "SRV",
        };
        format!("DNS {} ({kind})", self.name)
    }
}

/// Backends sorted by address, one per address (weights of repeats added up).
fn merge(found: Vec<(SocketAddr, u32)>) -> Vec<Backend> {
    let mut by_addr: BTreeMap<SocketAddr, u32> = BTreeMap::new();
    for (addr, weight) in found {
        let w = by_addr.entry(addr).or_insert(0);
        *w = w.saturating_add(weight);
    }
    by_addr
        .into_iter()
        .map(|(addr, weight)| Backend::new(addr.to_string()).with_weight(weight))
        .collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_sorts_and_adds_up_repeats() {
        let a: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let c: SocketAddr = "[::1]:80".parse().unwrap();
        let merged = merge(vec![(a, 2), (c, 1), (b, 5), (a, 3)]);
        assert_eq!(
            merged,
            [
                Backend::new("10.0.0.1:80").with_weight(5),
                Backend::new("10.0.0.2:80").with_weight(5),
                Backend::new("[::1]:80"),
            ]
        );
    }

    #[test]
    fn retries_back_off_within_the_bounds_and_success_follows_the_ttl() {
        let mut options = DnsDiscoveryOptions::new(
            "example.invalid.",
            DnsQuery::Addresses {
                port: 80,
                family: AddressFamily::V4,
            },
        );
        options.nameserver = Some("127.0.0.1:53".parse().unwrap());
        options.refresh_min = Duration::from_millis(100);
        options.refresh_max = Duration::from_millis(1000);
        let d = DnsDiscovery::new(options).unwrap();
        let waits: Vec<u64> = (0..6)
            .map(|_| {
                d.schedule(None);
                d.refresh_after(Duration::ZERO).as_millis() as u64
            })
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        d.schedule(Some(Instant::now() + Duration::from_secs(3600)));
        assert_eq!(d.refresh_after(Duration::ZERO), Duration::from_millis(1000));
        d.schedule(Some(Instant::now()));
        assert_eq!(d.refresh_after(Duration::ZERO), Duration::from_millis(100));
        d.schedule(None);
        assert_eq!(
            d.refresh_after(Duration::ZERO),
            Duration::from_millis(100),
            "a success reset the back-off"
        );
        let within = {
            d.schedule(Some(Instant::now() + Duration::from_millis(500)));
            d.refresh_after(Duration::ZERO).as_millis()
        };
        assert!((400..=500).contains(&within), "{within}");
    }
}
