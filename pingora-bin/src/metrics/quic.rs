//! The QUIC side of HTTP/3 listeners (feature `http3`), read from pingora-core's
//! process-wide counters at each scrape.

use pingora_core::protocols::http::v3::quic_stats;
use prometheus::{IntCounter, IntGauge};

use super::{metric_error, register, PolledCounter, PolledGauge};
use crate::error::BinError;
use prometheus::Registry;

/// Registers the QUIC metrics; what to poll for them at each scrape.
pub(super) fn polled(
    registry: &Registry,
) -> Result<(Vec<PolledCounter>, Vec<PolledGauge>), BinError> {
    let counter = |name: &str, help: &str| {
        register(registry, IntCounter::new(name, help).map_err(metric_error)?)
    };
    let connections = counter(
        "pingora_quic_connections_total",
        "QUIC (HTTP/3) connections whose handshake completed.",
    )?;
    let failures = counter(
        "pingora_quic_handshake_failures_total",
        "QUIC (HTTP/3) handshakes that failed or timed out.",
    )?;
    let forwarded = counter(
        "pingora_quic_datagrams_forwarded_total",
        "QUIC datagrams read here for another instance's connection, passed to it.",
    )?;
    let open = register(
        registry,
        IntGauge::new(
            "pingora_quic_open_connections",
            "QUIC (HTTP/3) connections open now.",
        )
        .map_err(metric_error)?,
    )?;
    let counters = vec![
        PolledCounter {
            counter: connections,
            read: Box::new(|| quic_stats().connections_total()),
        },
        PolledCounter {
            counter: failures,
            read: Box::new(|| quic_stats().handshake_failures_total()),
        },
        PolledCounter {
            counter: forwarded,
            read: Box::new(|| quic_stats().datagrams_forwarded_total()),
        },
    ];
    let gauges = vec![PolledGauge {
        gauge: open,
        read: Box::new(|| i64::try_from(quic_stats().open_connections()).unwrap_or(i64::MAX)),
    }];
    Ok((counters, gauges))
}
