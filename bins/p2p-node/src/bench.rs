//! `p2p-node bench`: load one node with greetings and report what it took.
//!
//! Built on the transport's own [`Client`](p2p_transport::Client): `--connections K`
//! client nodes, each with a fresh identity and one connection to the target,
//! and `--concurrency C` workers spread round-robin over them
//! ([`p2p_transport::load::run`]). Prints requests/s, latency quantiles
//! (hdrhistogram) and errors by kind (`remote <code>` for an error the target
//! answered, the `RequestError` kind otherwise); a progress line on stderr
//! while it runs. Exits 1 if no request succeeded.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use p2p_load::{self as load, LoadConfig, LoadReport};
use p2p_service::{Limits, MakeGreeter, stack};
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::{Multiaddr, PeerId};
use p2p_transport::{GreetVersion, Node, NodeBuilder, NodeEvent, PeerClient};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cli::HumanDuration;
use crate::output;

/// `bench --help`, after the flags.
pub(crate) const EXAMPLES: &str = "\
Examples:
  # 64 requests in flight over one connection, for 10 s
  p2p-node bench /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW...

  # 1,000 identities greeting once per second each, as JSON
  p2p-node bench /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW... \\
      --connections 1000 --concurrency 1000 --rate 1000 --duration 30s --json

Only requests sent and answered within the measured time count. Errors are keyed
`remote <code>` (the node answered with an error) or by kind (timeout, io, ...).
Exits 1 if no request succeeded.";

/// At most this many client nodes connect at once.
const CONNECTING_AT_ONCE: usize = 32;

/// With `--protocol auto`, how long to wait for identify after connecting
/// (a peer without identify, like the raw baseline, never sends it).
const IDENTIFY_WAIT: Duration = Duration::from_secs(2);

/// `p2p-node bench`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchArgs {
    /// The node to load, ending in /p2p/<peer-id>.
    #[arg(value_name = "MULTIADDR")]
    pub(crate) address: Multiaddr,

    /// Requests in flight at once (workers), spread round-robin over the connections.
    #[arg(long, short = 'c', value_name = "N", default_value_t = 64)]
    pub(crate) concurrency: usize,

    /// Distinct client identities, each its own node with one connection to the target.
    #[arg(long, short = 'k', value_name = "K", default_value_t = 1)]
    pub(crate) connections: usize,

    /// How long to measure.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub(crate) duration: HumanDuration,

    /// How long to load the node before measuring; these requests are not counted.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub(crate) warmup: HumanDuration,

    /// The size of each greeting's message, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16)]
    pub(crate) payload: usize,

    /// Requests per second in all, paced evenly over the workers (each then has at most
    /// one request in flight). Default: as fast as the answers come back.
    #[arg(long, value_name = "R")]
    pub(crate) rate: Option<f64>,

    /// Which greet protocol the requests use.
    #[arg(long, value_enum, default_value_t = BenchProtocol::Auto)]
    pub(crate) protocol: BenchProtocol,

    /// How long one request may take.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub(crate) timeout: HumanDuration,

    /// How long connecting all the clients may take.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub(crate) connect_timeout: HumanDuration,

    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,

    /// No progress line on stderr.
    #[arg(long)]
    pub(crate) no_progress: bool,
}

/// `--protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BenchProtocol {
    /// greet 2.0.0 when identify says the node speaks it, 1.0.0 otherwise.
    Auto,
    /// greet 1.0.0: one stream per request.
    V1,
    /// greet 2.0.0: pipelined on one long-lived stream.
    V2,
}

impl BenchProtocol {
    fn version(self) -> GreetVersion {
        match self {
            Self::Auto => GreetVersion::Auto,
            Self::V1 => GreetVersion::V1,
            Self::V2 => GreetVersion::V2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

/// `p2p-node bench`: connect, load, report.
pub(crate) async fn bench(args: BenchArgs) -> Result<ExitCode> {
    let Some(Protocol::P2p(peer)) = args.address.iter().last() else {
        bail!("{} does not end with /p2p/<peer-id>", args.address);
    };
    if args.concurrency == 0 || args.connections == 0 {
        bail!("--concurrency and --connections must be at least 1");
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("--rate must be a positive number of requests per second");
    }
    if args.duration.0.is_zero() {
        bail!("--duration must be longer than 0s");
    }
    let progress = !args.no_progress;

    let (nodes, services, connect_errors) = connect_all(&args, peer, progress).await;
    let connected = services.len();
    let report = if services.is_empty() {
        None
    } else {
        let config = LoadConfig {
            concurrency: args.concurrency,
            duration: args.duration.0,
            warmup: args.warmup.0,
            message: "x".repeat(args.payload),
            rate_per_sec: args.rate,
        };
        let completed = Arc::new(AtomicU64::new(0));
        let shown = progress.then(|| load_progress(&config, Arc::clone(&completed)));
        let report = load::run(services, &config, completed).await;
        if let Some(shown) = shown {
            shown.finish().await;
        }
        Some(report)
    };
    shutdown_all(nodes).await;

    let Some(report) = report else {
        let reason = connect_errors.keys().next().map_or("no reason given", String::as_str);
        bail!("no connection to {}: {reason}", args.address);
    };
    let summary = Summary { args: &args, connected, connect_errors: &connect_errors, report: &report };
    if args.json {
        output::print_line(&summary.json().to_string());
    } else {
        for line in summary.human() {
            output::print_line(&line);
        }
    }
    Ok(if report.ok > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Starts `--connections` client nodes and connects each to the target, a
/// few at a time. Returns the nodes, a client per connected node, and the
/// failures counted by reason.
async fn connect_all(
    args: &BenchArgs,
    peer: PeerId,
    progress: bool,
) -> (Vec<Node>, Vec<PeerClient>, BTreeMap<String, u64>) {
    let deadline = Instant::now() + args.connect_timeout.0;
    let at_once = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let done = Arc::new(AtomicU64::new(0));
    let mut connecting = JoinSet::new();
    for _ in 0..args.connections {
        let (at_once, done) = (Arc::clone(&at_once), Arc::clone(&done));
        let (target, protocol, timeout) = (args.address.clone(), args.protocol, args.timeout.0);
        connecting.spawn(async move {
            let _permit = at_once.acquire_owned().await.expect("never closed");
            let result = connect_one(target, peer, protocol, timeout, deadline).await;
            done.fetch_add(1, Ordering::Relaxed);
            result
        });
    }
    let total = args.connections;
    let shown = (progress && total > 1).then(|| {
        Progress::start(move |_| {
            let n = done.load(Ordering::Relaxed);
            (Some(n as f64 / total as f64), format!("connecting {n}/{total}"))
        })
    });
    let (mut nodes, mut services, mut errors) = (Vec::new(), Vec::new(), BTreeMap::new());
    while let Some(joined) = connecting.join_next().await {
        match joined {
            Ok(Ok((node, service))) => {
                nodes.push(node);
                services.push(service);
            }
            Ok(Err(reason)) => *errors.entry(reason).or_default() += 1,
            Err(err) => *errors.entry(format!("connecting task failed: {err}")).or_default() += 1,
        }
    }
    if let Some(shown) = shown {
        shown.finish().await;
    }
    (nodes, services, errors)
}

/// One client node with a fresh identity, connected to `target` (and, for
/// `auto`, identified) by `deadline`.
async fn connect_one(
    target: Multiaddr,
    peer: PeerId,
    protocol: BenchProtocol,
    timeout: Duration,
    deadline: Instant,
) -> Result<(Node, PeerClient), String> {
    let (node, mut events) = NodeBuilder::new()
        .mdns(false)
        .listen_on(crate::dial_socket_for(&target))
        .request_timeout(timeout)
        .shutdown_grace(Duration::from_secs(1))
        .build(stack(MakeGreeter::new("bench"), Limits::default()))
        .map_err(|err| format!("cannot start a client node: {err}"))?;
    let connected = tokio::time::timeout_at(deadline, async {
        node.dial(target.clone()).await.map_err(|err| format!("cannot dial: {err}"))?;
        // `dial` resolves once the dial has started: wait for the connection itself.
        while let Some(event) = events.recv().await {
            match event {
                NodeEvent::Connected { peer_id, .. } if peer_id == peer => return Ok(()),
                NodeEvent::DialFailed { peer_id, error } if peer_id.is_none_or(|p| p == peer) => {
                    return Err(format!("cannot dial: {}", crate::one_line(&error)));
                }
                _ => {}
            }
        }
        Err("the client node stopped while dialing".to_owned())
    })
    .await
    .unwrap_or_else(|_| Err("not connected within --connect-timeout".to_owned()));
    if let Err(reason) = connected {
        node.shutdown().await;
        return Err(reason);
    }
    if protocol == BenchProtocol::Auto {
        // Until identify has spoken, `auto` sends 1.0.0; wait a little so the
        // warm-up is not spent on the wrong protocol.
        let identify = deadline.min(Instant::now() + IDENTIFY_WAIT);
        let _ = tokio::time::timeout_at(identify, async {
            while let Some(event) = events.recv().await {
                if matches!(event, NodeEvent::GreetCapable { peer_id } if peer_id == peer) {
                    break;
                }
            }
        })
        .await;
    }
    // Events are no longer needed; the node keeps running without a reader.
    drop(events);
    let client = node.client().peer(peer).with_version(protocol.version());
    Ok((node, client))
}

/// Shuts the client nodes down together, closing their connections cleanly;
/// gives up waiting after a few seconds.
async fn shutdown_all(nodes: Vec<Node>) {
    let mut closing = JoinSet::new();
    for node in nodes {
        closing.spawn(async move { node.shutdown().await });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), closing.join_all()).await;
}

/// The progress line while the load runs.
fn load_progress(config: &LoadConfig, completed: Arc<AtomicU64>) -> Progress {
    let (warmup, duration) = (config.warmup, config.duration);
    let total = warmup + duration;
    let mut last = (Duration::ZERO, 0);
    Progress::start(move |elapsed| {
        let done = completed.load(Ordering::Relaxed);
        let span = elapsed.saturating_sub(last.0).as_secs_f64();
        let rate = if span > 0.0 { (done - last.1) as f64 / span } else { 0.0 };
        last = (elapsed, done);
        let phase = if elapsed < warmup { "warm-up" } else { "measuring" };
        let fraction = elapsed.as_secs_f64() / total.as_secs_f64().max(f64::EPSILON);
        (
            Some(fraction.min(1.0)),
            format!(
                "{phase} {:.1}s/{:.0}s  {done} requests  {rate:.0}/s",
                elapsed.as_secs_f64().min(total.as_secs_f64()),
                total.as_secs_f64()
            ),
        )
    })
}

/// A line on stderr redrawn in place: a bar when stderr is a terminal, a
/// plain `\r` line once a second otherwise.
struct Progress {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Redraws `line(elapsed)` (a fraction done, if known, and a text) until [`Progress::finish`].
    fn start(mut line: impl FnMut(Duration) -> (Option<f64>, String) + Send + 'static) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let every = if terminal { Duration::from_millis(200) } else { Duration::from_secs(1) };
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut ticks = tokio::time::interval_at(start + every, every);
            let mut drawn = false;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = &mut stopped => break,
                }
                let (fraction, text) = line(start.elapsed());
                let drawing = match fraction {
                    Some(fraction) if terminal => format!("\r\x1b[2K{} {text}", bar(fraction, 30)),
                    _ if terminal => format!("\r\x1b[2K{text}"),
                    _ => format!("\r{text}"),
                };
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(drawing.as_bytes()).and_then(|()| err.flush());
                drawn = true;
            }
            if drawn {
                let end = if terminal { "\r\x1b[2K" } else { "\n" };
                let _ = std::io::stderr().lock().write_all(end.as_bytes());
            }
        });
        Self { stop, task }
    }

    /// Stops redrawing and leaves the cursor at the start of a clean line.
    async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// `[#########.........]`, `width` cells, `fraction` of them full.
fn bar(fraction: f64, width: usize) -> String {
    let full = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    format!("[{}{}]", "#".repeat(full), ".".repeat(width - full))
}

/// What one bench run prints.
struct Summary<'a> {
    args: &'a BenchArgs,
    connected: usize,
    connect_errors: &'a BTreeMap<String, u64>,
    report: &'a LoadReport,
}

impl Summary<'_> {
    /// One JSON object; latencies in microseconds.
    fn json(&self) -> serde_json::Value {
        let (args, report) = (self.args, self.report);
        let us = |q: f64| report.latency_us.value_at_quantile(q);
        serde_json::json!({
            "target": args.address.to_string(),
            "protocol": args.protocol.name(),
            "concurrency": args.concurrency,
            "connections": args.connections,
            "connected": self.connected,
            "connect_errors": self.connect_errors,
            "payload_bytes": args.payload,
            "rate_per_sec": args.rate,
            "warmup_secs": args.warmup.0.as_secs_f64(),
            "elapsed_secs": report.elapsed.as_secs_f64(),
            "ok": report.ok,
            "failed": report.failed(),
            "requests_per_sec": report.ok_per_sec(),
            "latency_us": {
                "p50": us(0.5),
                "p90": us(0.9),
                "p99": us(0.99),
                "p999": us(0.999),
                "max": report.latency_us.max(),
                "mean": report.latency_us.mean(),
            },
            "errors": report.errors,
        })
    }

    /// Aligned `key  value` lines for people.
    fn human(&self) -> Vec<String> {
        let (args, report) = (self.args, self.report);
        let pace = args.rate.map_or_else(|| "unpaced".to_owned(), |r| format!("paced at {r}/s in all"));
        let mut connections =
            format!("{}/{} (greet {})", self.connected, args.connections, args.protocol.name());
        if !self.connect_errors.is_empty() {
            connections.push_str(&format!(", failed: {}", counts(self.connect_errors)));
        }
        let us = |q: f64| micros(report.latency_us.value_at_quantile(q));
        let errors = if report.errors.is_empty() { "none".to_owned() } else { counts(&report.errors) };
        vec![
            format!("target       {}", args.address),
            format!("connections  {connections}"),
            format!("load         {} in flight, {} B messages, {pace}", args.concurrency, args.payload),
            format!("measured     {:.2}s after a {} warm-up", report.elapsed.as_secs_f64(), args.warmup),
            format!("requests     {} ok, {} failed", report.ok, report.failed()),
            format!("req/s        {:.1}", report.ok_per_sec()),
            format!(
                "latency      p50 {}  p99 {}  max {}",
                us(0.5),
                us(0.99),
                micros(report.latency_us.max())
            ),
            format!("errors       {errors}"),
        ]
    }
}

/// `timeout: 3, remote 429: 12`.
fn counts(counts: &BTreeMap<String, u64>) -> String {
    counts.iter().map(|(key, n)| format!("{key}: {n}")).collect::<Vec<_>>().join(", ")
}

/// A latency in microseconds, the human way: `87µs`, `1.24ms`, `2.503s`.
fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..1_000_000 => format!("{:.2}ms", us as f64 / 1e3),
        _ => format!("{:.3}s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> BenchArgs {
        let cli = Cli::try_parse_from(["p2p-node", "bench"].iter().chain(args)).expect("valid args");
        match cli.command {
            Some(Command::Bench(args)) => *args,
            other => panic!("unexpected {other:?}"),
        }
    }

    const ADDR: &str =
        "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooWM7N1uQr9o9kbNm4BzyzkR5icTqkWSCzbU2THZyxuRamV";

    #[test]
    fn bench_flags_parse_with_their_defaults() {
        let args = parse(&[ADDR]);
        assert_eq!((args.concurrency, args.connections, args.payload), (64, 1, 16));
        assert_eq!((args.duration.0, args.warmup.0), (Duration::from_secs(10), Duration::from_secs(1)));
        assert_eq!((args.rate, args.protocol, args.json), (None, BenchProtocol::Auto, false));

        let args = parse(&[
            ADDR,
            "-c",
            "256",
            "--connections",
            "16",
            "--duration",
            "3s",
            "--warmup",
            "0s",
            "--payload",
            "1000",
            "--rate",
            "1000",
            "--protocol",
            "v2",
            "--json",
        ]);
        assert_eq!((args.concurrency, args.connections, args.payload), (256, 16, 1000));
        assert_eq!((args.duration.0, args.warmup.0), (Duration::from_secs(3), Duration::ZERO));
        assert_eq!((args.rate, args.protocol.version(), args.json), (Some(1000.0), GreetVersion::V2, true));
    }

    fn report() -> LoadReport {
        let mut latency_us = hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        for us in [100, 200, 300, 400, 50_000] {
            latency_us.record(us).unwrap();
        }
        let errors = BTreeMap::from([("remote 429".to_owned(), 2), ("timeout".to_owned(), 1)]);
        LoadReport { ok: 2, errors, latency_us, elapsed: Duration::from_secs(2) }
    }

    #[test]
    fn the_summary_shows_rates_latencies_and_errors_by_kind() {
        let args = parse(&[ADDR, "--connections", "2"]);
        let report = report();
        let connect_errors = BTreeMap::from([("cannot dial: refused".to_owned(), 1)]);
        let summary = Summary { args: &args, connected: 1, connect_errors: &connect_errors, report: &report };

        let json = summary.json();
        assert_eq!(json["ok"], 2);
        assert_eq!(json["failed"], 3);
        assert_eq!(json["requests_per_sec"], 1.0);
        assert_eq!(json["errors"]["remote 429"], 2);
        assert_eq!(json["errors"]["timeout"], 1);
        assert_eq!(json["connected"], 1);
        assert_eq!(json["connect_errors"]["cannot dial: refused"], 1);
        assert_eq!(json["latency_us"]["p50"], 300);
        assert!((50_000..50_100).contains(&json["latency_us"]["max"].as_u64().unwrap()));

        let human = summary.human().join("\n");
        assert!(human.contains("connections  1/2 (greet auto), failed: cannot dial: refused: 1"), "{human}");
        assert!(human.contains("requests     2 ok, 3 failed"), "{human}");
        assert!(human.contains("req/s        1.0"), "{human}");
        assert!(human.contains("p50 300µs"), "{human}");
        assert!(human.contains("errors       remote 429: 2, timeout: 1"), "{human}");
    }

    #[test]
    fn latencies_and_bars_read_well() {
        assert_eq!(micros(87), "87µs");
        assert_eq!(micros(1_240), "1.24ms");
        assert_eq!(micros(2_503_000), "2.503s");
        assert_eq!(bar(0.5, 4), "[##..]");
        assert_eq!(bar(1.5, 4), "[####]");
    }
}
