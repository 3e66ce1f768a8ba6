//! Our node (default p2p-service stack, limits raised so nothing is refused)
//! against the fastest libp2p shape (a raw `request_response` server that
//! answers inside its swarm loop), in one process on 127.0.0.1, over QUIC and
//! TCP, loaded at concurrency 1 and 64 by the same client node. Our node is
//! measured twice: greet 1.0.0 (a stream per request) and greet 2.0.0
//! (pipelined). Prints req/s, p50, p99 and the ratios ours/raw.
//!
//! `cargo bench -p p2p-transport` (BENCH_SECS sets the seconds per round, default 3;
//! BENCH_ONLY="quic ours v2 64" runs only the rows containing that text, for profiling).
//! Only ratios within one run compare: the machine is small, shared and noisy,
//! so the servers take turns, round after round, and the median round is shown.

#[path = "../examples/raw_baseline.rs"]
mod raw_baseline;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use p2p_load::{self as load, LoadConfig, LoadReport};
use p2p_protocol::Greet;
use p2p_service::{Limits, MakeGreeter, stack};
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::{Multiaddr, PeerId};
use p2p_transport::{GreetVersion, Node, NodeBuilder, NodeEvent, NodeEvents, PeerClient};

const ROUNDS: usize = 3;

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(bench(Duration::from_secs(secs)));
}

async fn bench(duration: Duration) {
    println!(
        "greet on 127.0.0.1: {ROUNDS} rounds of {}s per row (after a 1s warm-up), servers taking turns; \
         the median round is shown",
        duration.as_secs()
    );
    println!(
        "{:<5} {:<8} {:>3} {:>9} {:>8} {:>8} {:>6}  ratio to raw",
        "net", "server", "c", "req/s", "p50", "p99", "errors"
    );
    let only = std::env::var("BENCH_ONLY").ok();
    let wanted = |net: &str, name: &str, c: usize| {
        only.as_ref().is_none_or(|o| format!("{net} {name} {c}").contains(o.as_str()))
    };
    for (net, listen) in [("quic", "/ip4/127.0.0.1/udp/0/quic-v1"), ("tcp", "/ip4/127.0.0.1/tcp/0")] {
        let listen: Multiaddr = listen.parse().expect("valid");
        let raw_addr = raw_baseline::spawn(vec![listen.clone()]).await.remove(0);
        // The stack's cost, not its policy: limits raised so nothing is refused.
        let limits = Limits {
            rate_per_sec: 0,
            max_in_flight_per_peer: 1024,
            max_in_flight_total: 4096,
            ..Limits::default()
        };
        let (ours, ours_events) = NodeBuilder::new()
            .mdns(false)
            .listen_on(listen.clone())
            .build(stack(MakeGreeter::new("ours"), limits))
            .expect("node");
        let ours_addr = listening(&ours, ours_events).await;

        let (client, mut events) = NodeBuilder::new()
            .mdns(false)
            .listen_on(listen)
            .build(stack(MakeGreeter::new("client"), Limits::default()))
            .expect("client node");
        let raw = connect(&client, &mut events, &raw_addr, false).await;
        let ours = connect(&client, &mut events, &ours_addr, true).await;
        tokio::spawn(async move { while events.recv().await.is_some() {} });

        let servers = [
            ("raw", client.client::<Greet>().peer(raw).with_version(GreetVersion::V1)),
            ("ours v1", client.client::<Greet>().peer(ours).with_version(GreetVersion::V1)),
            ("ours v2", client.client::<Greet>().peer(ours).with_version(GreetVersion::V2)),
        ];
        for concurrency in [1, 64] {
            let config = LoadConfig {
                concurrency,
                duration,
                warmup: Duration::from_secs(1),
                message: "bench".into(),
                ..LoadConfig::default()
            };
            let mut rounds: Vec<Vec<LoadReport>> = vec![Vec::new(); servers.len()];
            for _ in 0..ROUNDS {
                for ((name, service), reports) in servers.iter().zip(&mut rounds) {
                    if wanted(net, name, concurrency) {
                        reports.push(run(service, &config).await);
                    }
                }
            }
            let medians: Vec<Option<LoadReport>> =
                rounds.into_iter().map(|r| (!r.is_empty()).then(|| median(r))).collect();
            for ((name, _), report) in servers.iter().zip(&medians) {
                if let Some(report) = report {
                    row(net, name, concurrency, report, medians[0].as_ref().unwrap_or(report));
                }
            }
        }
    }
}

async fn run(service: &PeerClient, config: &LoadConfig) -> LoadReport {
    load::run(vec![service.clone()], config, Arc::new(AtomicU64::new(0))).await
}

/// The round with the median throughput.
fn median(mut rounds: Vec<LoadReport>) -> LoadReport {
    rounds.sort_by(|a, b| a.ok_per_sec().total_cmp(&b.ok_per_sec()));
    rounds.swap_remove(rounds.len() / 2)
}

async fn listening(node: &Node, mut events: NodeEvents) -> Multiaddr {
    let addr = loop {
        if let Some(NodeEvent::Listening { address }) = events.recv().await {
            break address.with(Protocol::P2p(node.local_peer_id()));
        }
    };
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    addr
}

/// Connects to `addr`; waits for identify too when the peer speaks it.
async fn connect(client: &Node, events: &mut NodeEvents, addr: &Multiaddr, identify: bool) -> PeerId {
    let peer = client.connect(addr.clone()).await.unwrap_or_else(|err| panic!("connect to {addr}: {err}"));
    if !identify {
        return peer;
    }
    while let Some(event) = events.recv().await {
        if matches!(event, NodeEvent::Capable { peer_id, .. } if peer_id == peer) {
            return peer;
        }
    }
    panic!("client node stopped")
}

fn row(net: &str, name: &str, concurrency: usize, report: &LoadReport, raw: &LoadReport) {
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    let ratios = if std::ptr::eq(report, raw) {
        String::new()
    } else {
        format!(
            "req/s {:.2}x  p50 {:.2}x  p99 {:.2}x",
            report.ok_per_sec() / raw.ok_per_sec().max(f64::EPSILON),
            ratio(report.latency(0.5), raw.latency(0.5)),
            ratio(report.latency(0.99), raw.latency(0.99)),
        )
    };
    println!(
        "{net:<5} {name:<8} {concurrency:>3} {:>9.0} {:>8} {:>8} {:>6}  {ratios}",
        report.ok_per_sec(),
        format!("{:.0?}", report.latency(0.5)),
        format!("{:.0?}", report.latency(0.99)),
        report.failed(),
    );
}
