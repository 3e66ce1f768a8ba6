//! Prometheus metrics: libp2p's own, plus the greet requests this node answered.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use p2p_protocol::GreetResult;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::ServiceExt;
use tracing::debug;

use crate::inbound::PeerService;

/// The metrics a node records, registered in a [`Registry`] by [`NodeMetrics::new`]
/// and handed to [`NodeBuilder::metrics`](crate::NodeBuilder::metrics).
#[derive(Clone)]
pub struct NodeMetrics {
    pub(crate) libp2p: Arc<libp2p::metrics::Metrics>,
    requests: Family<OutcomeLabel, Counter>,
    latency: Histogram,
    bans: Counter,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics").finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    /// `ok`, or the error code answered.
    code: String,
}

impl NodeMetrics {
    /// Registers libp2p's metrics (under `libp2p_`) and ours (`greet_`) in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let libp2p = Arc::new(libp2p::metrics::Metrics::new(registry.sub_registry_with_prefix("libp2p")));
        let greet = registry.sub_registry_with_prefix("greet");
        let requests = Family::<OutcomeLabel, Counter>::default();
        greet.register("requests", "Inbound greet requests answered, by outcome", requests.clone());
        // 10 µs to ~5 s.
        let latency = Histogram::new(exponential_buckets(0.000_01, 2.5, 15));
        greet.register(
            "request_duration_seconds",
            "Time to answer an inbound greet request",
            latency.clone(),
        );
        let bans = Counter::default();
        greet.register("bans", "Peers banned for being refused too often", bans.clone());
        Self { libp2p, requests, latency, bans }
    }

    /// Counts a ban.
    pub(crate) fn record_ban(&self) {
        self.bans.inc();
    }

    /// `service`, counting each answer and its latency.
    pub(crate) fn instrument(&self, service: PeerService) -> PeerService {
        let metrics = self.clone();
        PeerService::new(service.map_future(move |answer| {
            let metrics = metrics.clone();
            let started = Instant::now();
            async move {
                let result: Result<GreetResult, Infallible> = answer.await;
                if let Ok(result) = &result {
                    metrics.observe(result, started.elapsed());
                }
                result
            }
        }))
    }

    fn observe(&self, result: &GreetResult, took: Duration) {
        let code = match result {
            Ok(_) => "ok".to_owned(),
            Err(err) => err.code.as_u16().to_string(),
        };
        self.requests.get_or_create(&OutcomeLabel { code }).inc();
        self.latency.observe(took.as_secs_f64());
    }
}

/// Requests larger than this are refused: a scrape is one short GET.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Serves `registry` in the Prometheus text format at `GET /metrics` on
/// `listener`, until the task is dropped. Minimal HTTP/1.1 with
/// `Connection: close`; bounded reads with a timeout, so a slow or hostile
/// client costs one small task.
pub async fn serve_metrics(listener: TcpListener, registry: Arc<Registry>) {
    loop {
        let Ok((mut socket, peer)) = listener.accept().await else { continue };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let mut head = Vec::with_capacity(512);
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                let mut chunk = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
                    let n = socket.read(&mut chunk).await?;
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&chunk[..n]);
                }
                std::io::Result::Ok(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let response = if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET / ") {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &registry) {
                    Ok(()) => {
                        http("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", &body)
                    }
                    Err(_) => http("500 Internal Server Error", "text/plain", "encoding failed\n"),
                }
            } else {
                http("404 Not Found", "text/plain", "try GET /metrics\n")
            };
            if let Err(err) = socket.write_all(response.as_bytes()).await {
                debug!(%peer, %err, "metrics response not sent");
            }
            let _ = socket.shutdown().await;
        });
    }
}

fn http(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_protocol::{ErrorCode, RemoteError};

    #[tokio::test]
    async fn answers_are_counted_by_outcome_and_served_over_http() {
        let mut registry = Registry::default();
        let metrics = NodeMetrics::new(&mut registry);
        metrics
            .observe(&Err(RemoteError::new(ErrorCode::RATE_LIMITED, "slow down")), Duration::from_millis(1));
        metrics
            .observe(&Err(RemoteError::new(ErrorCode::RATE_LIMITED, "slow down")), Duration::from_millis(1));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_metrics(listener, Arc::new(registry)));

        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.contains("greet_requests_total{code=\"429\"} 2"), "{response}");
        assert!(response.contains("greet_request_duration_seconds_count 2"), "{response}");
        assert!(response.contains("libp2p_"), "libp2p's metrics are registered too");
        server.abort();
    }
}
