//! Prometheus metrics: libp2p's own, plus the requests this node answered,
//! by protocol.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use p2p_protocol::{Protocol, RemoteError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::inbound::PeerService;

/// The metrics a node records, registered in a [`Registry`] by [`NodeMetrics::new`]
/// and handed to [`NodeBuilder::metrics`](crate::NodeBuilder::metrics).
#[derive(Clone)]
pub struct NodeMetrics {
    pub(crate) libp2p: Arc<libp2p::metrics::Metrics>,
    requests: Family<OutcomeLabel, Counter>,
    latency: Family<ProtocolLabel, Histogram>,
    bans: Counter,
    peers_unaccounted: Gauge,
    lost_dials: Counter,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    /// The protocol's one-request name.
    protocol: &'static str,
    /// `ok`, or the error code answered.
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabel {
    /// The protocol's one-request name.
    protocol: &'static str,
}

impl NodeMetrics {
    /// Registers libp2p's metrics (under `libp2p_`) and ours (`p2p_`: the
    /// requests answered and their latency, labelled by protocol; bans) in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        // libp2p's `Metrics` adds its own `libp2p_` prefix.
        let libp2p = Arc::new(libp2p::metrics::Metrics::new(registry));
        let ours = registry.sub_registry_with_prefix("p2p");
        let requests = Family::<OutcomeLabel, Counter>::default();
        ours.register("requests", "Inbound requests answered, by protocol and outcome", requests.clone());
        // 10 µs to ~5 s.
        let latency = Family::<ProtocolLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_01, 2.5, 15))
        });
        ours.register(
            "request_duration_seconds",
            "Time to answer an inbound request, by protocol",
            latency.clone(),
        );
        let bans = Counter::default();
        ours.register("bans", "Peers banned for being refused too often (on any protocol)", bans.clone());
        let peers = registry.sub_registry_with_prefix("peers");
        let peers_unaccounted = Gauge::default();
        peers.register(
            "unaccounted",
            "Peers found by mDNS that may be dialed and are neither connected, dialed, waiting nor parked (0 unless a rule is missing)",
            peers_unaccounted.clone(),
        );
        let lost_dials = Counter::default();
        peers.register("lost_dials", "Dials whose outcome never came (each made again)", lost_dials.clone());
        Self { libp2p, requests, latency, bans, peers_unaccounted, lost_dials }
    }

    /// The lifecycle's counts, from `old` to `new`.
    pub(crate) fn record_lifecycle(&self, old: &crate::PeerLifecycle, new: &crate::PeerLifecycle) {
        self.peers_unaccounted.set(i64::try_from(new.unaccounted).unwrap_or(i64::MAX));
        self.lost_dials.inc_by(new.lost_dials.saturating_sub(old.lost_dials));
    }

    /// Counts a ban.
    pub(crate) fn record_ban(&self) {
        self.bans.inc();
    }

    /// `service`, counting each answer and its latency under `P::NAME`.
    pub(crate) fn instrument<P: Protocol>(&self, service: PeerService<P>) -> PeerService<P> {
        let metrics = self.clone();
        PeerService::<P>::new(service.map_future(move |answer| {
            let metrics = metrics.clone();
            let started = Instant::now();
            async move {
                let result: Result<Result<P::Response, RemoteError>, Infallible> = answer.await;
                if let Ok(result) = &result {
                    metrics.observe(P::NAME, result, started.elapsed());
                }
                result
            }
        }))
    }

    fn observe<T>(&self, protocol: &'static str, result: &Result<T, RemoteError>, took: Duration) {
        let code = match result {
            Ok(_) => "ok".to_owned(),
            Err(err) => err.code.as_u16().to_string(),
        };
        self.requests.get_or_create(&OutcomeLabel { protocol, code }).inc();
        self.latency.get_or_create(&ProtocolLabel { protocol }).observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_protocol::{ErrorCode, RemoteError};

    #[test]
    fn answers_and_bans_are_counted_and_libp2p_metrics_have_one_prefix() {
        let mut registry = Registry::default();
        let metrics = NodeMetrics::new(&mut registry);
        let limited: Result<(), _> = Err(RemoteError::new(ErrorCode::RATE_LIMITED, "slow down"));
        metrics.observe("/greet/1", &limited, Duration::from_millis(1));
        metrics.observe("/greet/1", &limited, Duration::from_millis(1));
        metrics.observe("/fetch/1", &Ok(()), Duration::from_millis(1));
        metrics.record_ban();
        let lost = crate::PeerLifecycle { unaccounted: 2, lost_dials: 3 };
        metrics.record_lifecycle(&crate::PeerLifecycle::default(), &lost);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("p2p_requests_total{protocol=\"/greet/1\",code=\"429\"} 2"), "{text}");
        assert!(text.contains("p2p_requests_total{protocol=\"/fetch/1\",code=\"ok\"} 1"), "{text}");
        assert!(text.contains("p2p_request_duration_seconds_count{protocol=\"/greet/1\"} 2"), "{text}");
        assert!(text.contains("p2p_bans_total 1"), "{text}");
        assert!(text.contains("peers_unaccounted 2"), "{text}");
        assert!(text.contains("peers_lost_dials_total 3"), "{text}");
        assert!(text.contains("libp2p_"), "libp2p's metrics are registered too");
        assert!(!text.contains("libp2p_libp2p_"), "one prefix, not two");
    }
}
