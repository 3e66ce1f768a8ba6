//! Our node (default p2p-service stack) against the fastest libp2p shape
//! (a raw `request_response` server answering inside its swarm loop), in one
//! process on 127.0.0.1 QUIC, loaded at concurrency 1 and 64 by the same
//! client. Prints req/s, p50, p99 and the ratio ours/raw for each row.
//!
//! `cargo bench -p p2p-transport` (BENCH_SECS sets the seconds per round, default 3).
//! Only ratios within one run compare: the machine is small, shared and noisy.

#[path = "../examples/raw_baseline.rs"]
mod raw_baseline;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use p2p_service::{Limits, MakeGreeter, stack};
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::{Multiaddr, PeerId};
use p2p_transport::load::{self, LoadConfig, LoadReport};
use p2p_transport::{Node, NodeBuilder, NodeEvent, NodeEvents};

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(bench(Duration::from_secs(secs)));
}

async fn bench(duration: Duration) {
    let quic: Multiaddr = "/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("valid");
    let raw_addr = raw_baseline::spawn(vec![quic.clone()]).await.remove(0);

    // The stack's cost, not its policy: limits raised so nothing is refused.
    let limits = Limits {
        rate_per_sec: 0,
        max_in_flight_per_peer: 1024,
        max_in_flight_total: 4096,
        ..Limits::default()
    };
    let (ours, mut ours_events) = NodeBuilder::new()
        .mdns(false)
        .listen_on(quic.clone())
        .build(stack(MakeGreeter::new("ours"), limits))
        .expect("node");
    let ours_addr = loop {
        if let Some(NodeEvent::Listening { address }) = ours_events.recv().await {
            break address.with(Protocol::P2p(ours.local_peer_id()));
        }
    };
    tokio::spawn(async move { while ours_events.recv().await.is_some() {} });

    let (client, mut client_events) = NodeBuilder::new()
        .mdns(false)
        .listen_on(quic)
        .build(stack(MakeGreeter::new("client"), Limits::default()))
        .expect("client node");
    let raw_id = connect(&client, &mut client_events, &raw_addr).await;
    let ours_id = connect(&client, &mut client_events, &ours_addr).await;
    tokio::spawn(async move { while client_events.recv().await.is_some() {} });

    println!(
        "greet over QUIC on 127.0.0.1: {ROUNDS} alternating rounds of {}s per server and concurrency \
         (after a 1s warm-up each); the median round is shown",
        duration.as_secs()
    );
    println!(
        "{:<6} {:>4} {:>10} {:>10} {:>10} {:>7}  ratio ours/raw",
        "server", "c", "req/s", "p50", "p99", "errors"
    );
    for concurrency in [1, 64] {
        let config =
            LoadConfig { concurrency, duration, warmup: Duration::from_secs(1), message: "bench".into() };
        // Alternate the two servers so that drift in a noisy machine hits both alike.
        let (mut raw_rounds, mut ours_rounds) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            raw_rounds.push(
                load::run(vec![client.client().peer(raw_id)], &config, Arc::new(AtomicU64::new(0))).await,
            );
            ours_rounds.push(
                load::run(vec![client.client().peer(ours_id)], &config, Arc::new(AtomicU64::new(0))).await,
            );
        }
        let raw = median(raw_rounds);
        row("raw", concurrency, &raw, None);
        row("ours", concurrency, &median(ours_rounds), Some(&raw));
    }
}

const ROUNDS: usize = 3;

/// The round with the median throughput.
fn median(mut rounds: Vec<LoadReport>) -> LoadReport {
    rounds.sort_by(|a, b| a.ok_per_sec().total_cmp(&b.ok_per_sec()));
    rounds.swap_remove(rounds.len() / 2)
}

async fn connect(client: &Node, events: &mut NodeEvents, addr: &Multiaddr) -> PeerId {
    let Some(Protocol::P2p(peer)) = addr.iter().last() else { panic!("{addr} has no /p2p/") };
    client.dial(addr.clone()).await.expect("dial");
    while let Some(event) = events.recv().await {
        if matches!(event, NodeEvent::Connected { peer_id, .. } if peer_id == peer) {
            return peer;
        }
    }
    panic!("client node stopped")
}

fn row(name: &str, concurrency: usize, report: &LoadReport, baseline: Option<&LoadReport>) {
    let ratio = baseline
        .map(|raw| {
            format!(
                "req/s {:.2}x  p50 {:.2}x  p99 {:.2}x",
                report.ok_per_sec() / raw.ok_per_sec(),
                ratio(report.latency(0.5), raw.latency(0.5)),
                ratio(report.latency(0.99), raw.latency(0.99)),
            )
        })
        .unwrap_or_default();
    println!(
        "{name:<6} {concurrency:>4} {:>10.0} {:>10} {:>10} {:>7}  {ratio}",
        report.ok_per_sec(),
        format!("{:.0?}", report.latency(0.5)),
        format!("{:.0?}", report.latency(0.99)),
        report.failed(),
    );
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}
