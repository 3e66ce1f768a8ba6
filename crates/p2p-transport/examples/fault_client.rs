//! A hostile or flooding greet client, for `scripts/faults-netns.sh`.
//!
//! ```text
//! fault_client id --seed N
//! fault_client load <MULTIADDR/p2p/ID> [--rate R] [--duration 10s] [--warmup 1s] [--concurrency C]
//!                   [--seed N] [--request-timeout 5s] [--latencies FILE] [--v1] [--json]
//! fault_client hostile <QUIC MULTIADDR/p2p/ID> [--tcp <TCP MULTIADDR/p2p/ID>] [--count N]
//!                   [--concurrency C] [--seed N] [--probe-interval 150ms] [--answer-timeout 5s]
//!                   [--max-time 600s] [--json]
//! ```
//!
//! - `id` prints the peer id `--seed N` gives, so that a script can name a
//!   client before it runs (`p2p-node run --debug-stall-peer`).
//! - `load` is a real node (mDNS off) that dials the target and runs
//!   `p2p_transport::load` against it: paced at `--rate` requests per second, or
//!   closed-loop without it. It prints what it measured, with the latency of
//!   every request by outcome (`ok`, `remote 429`, `timeout`, ...), counted
//!   from the first request to the last answer, warm-up and stragglers included;
//!   `--latencies FILE` writes `<latency µs> ok|error` for each request of the
//!   measured window, one a line, so that a script can pool several runs.
//! - `hostile` sends `--count` hostile inputs on greet streams (1.0.0 and
//!   2.0.0, over QUIC and, with `--tcp`, TCP/Yamux): random bytes, declared
//!   lengths from 65,537 to 2^64-1, over-long varints, truncated frames,
//!   frames with trailing bytes, invalid UTF-8, streams opened and abandoned,
//!   streams reset mid-frame, empty streams and id 0, mutated frames. It
//!   counts how the node answered each (a code, a reset, a close), and
//!   checks that the well-formed requests among them are answered. A
//!   separate well-behaved peer probes the node meanwhile and must always be
//!   answered.
//!
//! Every run is bounded in count and time and stops by itself. With `--json`
//! the last line is one flat JSON object (`"key":number`), for scripts.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{AsyncWriteExt, StreamExt};
use hdrhistogram::Histogram;
use p2p_load::{self as load, LoadConfig, error_key};
use p2p_protocol::v2::{self, STREAM_ERROR_ID};
use p2p_protocol::{
    DecodeError, GreetRequest, GreetResponse, GreetResult, MAX_FRAME_LEN, PROTOCOL_NAME, append_frame,
    decode, encode, read_frame,
};
use p2p_service::{Limits, MakeGreeter, stack};
use p2p_transport::libp2p::identity::Keypair;
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::swarm::SwarmEvent;
use p2p_transport::libp2p::{Multiaddr, PeerId, Stream, StreamProtocol, SwarmBuilder, noise, tcp, yamux};
use p2p_transport::{GreetVersion, NodeBuilder, NodeEvent, PeerClient, RequestError};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::Service;

type Error = String;

const USAGE: &str = "usage:
  fault_client id --seed N
  fault_client load <MULTIADDR/p2p/ID> [--rate R] [--duration 10s] [--warmup 1s] [--concurrency C]
                    [--seed N] [--request-timeout 5s] [--latencies FILE] [--v1] [--json]
  fault_client hostile <QUIC MULTIADDR/p2p/ID> [--tcp <TCP MULTIADDR/p2p/ID>] [--count N]
                    [--concurrency C] [--seed N] [--probe-interval 150ms] [--answer-timeout 5s]
                    [--max-time 600s] [--json]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(dispatch(args)));
    if let Err(err) = result {
        eprintln!("fault_client: {err}\n{USAGE}");
        std::process::exit(2);
    }
}

async fn dispatch(args: Vec<String>) -> Result<(), Error> {
    let Some((command, rest)) = args.split_first() else { return Err("no subcommand".into()) };
    let args = Args::parse(rest)?;
    match command.as_str() {
        "id" => {
            println!("{}", keypair(Some(args.num("seed", 0)?)).public().to_peer_id());
            Ok(())
        }
        "load" => run_load(&args).await,
        "hostile" => run_hostile(&args).await,
        other => Err(format!("unknown subcommand {other:?}")),
    }
}

// ---- arguments ----------------------------------------------------------------

/// `--name value` options, `--flag`s and positional arguments.
struct Args {
    positional: Vec<String>,
    options: BTreeMap<String, String>,
    flags: Vec<String>,
}

const FLAGS: [&str; 2] = ["v1", "json"];

impl Args {
    fn parse(raw: &[String]) -> Result<Self, Error> {
        let mut args = Self { positional: Vec::new(), options: BTreeMap::new(), flags: Vec::new() };
        let mut raw = raw.iter();
        while let Some(arg) = raw.next() {
            match arg.strip_prefix("--") {
                Some(flag) if FLAGS.contains(&flag) => args.flags.push(flag.to_owned()),
                Some(name) => {
                    let value = raw.next().ok_or_else(|| format!("--{name} needs a value"))?;
                    args.options.insert(name.to_owned(), value.clone());
                }
                None => args.positional.push(arg.clone()),
            }
        }
        Ok(args)
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, Error> {
        match self.options.get(name) {
            Some(value) => value.parse().map_err(|_| format!("--{name}: not a number: {value:?}")),
            None => Ok(default),
        }
    }

    fn opt_num<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, Error> {
        self.options
            .get(name)
            .map(|value| value.parse().map_err(|_| format!("--{name}: not a number: {value:?}")))
            .transpose()
    }

    fn duration(&self, name: &str, default: Duration) -> Result<Duration, Error> {
        match self.options.get(name) {
            Some(value) => {
                parse_duration(value).ok_or_else(|| format!("--{name}: not a duration: {value:?}"))
            }
            None => Ok(default),
        }
    }

    fn address(&self, index: usize) -> Result<(Multiaddr, PeerId), Error> {
        let text = self.positional.get(index).ok_or("missing the target address")?;
        address(text)
    }

    fn check_known(&self, known: &[&str]) -> Result<(), Error> {
        match self.options.keys().find(|k| !known.contains(&k.as_str())) {
            Some(unknown) => Err(format!("unknown option --{unknown}")),
            None => Ok(()),
        }
    }
}

fn address(text: &str) -> Result<(Multiaddr, PeerId), Error> {
    let address: Multiaddr = text.parse().map_err(|e| format!("{text}: {e}"))?;
    match address.iter().last() {
        Some(Protocol::P2p(peer)) => Ok((address, peer)),
        _ => Err(format!("{address} does not end with /p2p/<peer-id>")),
    }
}

/// `250ms`, `10s`, `2m`, or plain seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let secs = match unit {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// A fixed identity for `--seed N`, a fresh one otherwise.
fn keypair(seed: Option<u64>) -> Keypair {
    match seed {
        Some(seed) => {
            let mut rng = Rng(seed ^ 0x005e_ed0f_fa17);
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next().to_le_bytes());
            }
            Keypair::ed25519_from_bytes(bytes).expect("32 bytes are an ed25519 secret")
        }
        None => Keypair::generate_ed25519(),
    }
}

/// SplitMix64: small, seedable, good enough to pick hostile bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn text(&mut self, len: usize) -> String {
        (0..len).map(|_| char::from(b'a' + self.below(26) as u8)).collect()
    }
}

// ---- output ---------------------------------------------------------------------

/// A flat JSON object of numbers, in insertion order.
#[derive(Default)]
struct Json(Vec<(String, String)>);

impl Json {
    fn num(&mut self, key: impl Into<String>, value: impl std::fmt::Display) {
        self.0.push((key.into().replace([' ', '"', '\\'], "_"), value.to_string()));
    }

    fn ms(&mut self, key: impl Into<String>, value: Duration) {
        self.num(key, format!("{:.3}", value.as_secs_f64() * 1000.0));
    }

    fn line(&self) -> String {
        let fields: Vec<String> = self.0.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", fields.join(","))
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

fn quantile(histogram: &Histogram<u64>, q: f64) -> Duration {
    Duration::from_micros(if histogram.is_empty() { 0 } else { histogram.value_at_quantile(q) })
}

fn max(histogram: &Histogram<u64>) -> Duration {
    Duration::from_micros(histogram.max())
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// The most samples `--latencies` keeps.
const MAX_SAMPLES: usize = 1_000_000;

/// Latency histograms by outcome, and every sample with its send time.
#[derive(Default)]
struct Recorder {
    by_outcome: Mutex<BTreeMap<String, Histogram<u64>>>,
    samples: Mutex<Vec<(Instant, Duration, bool)>>,
}

impl Recorder {
    fn record(&self, outcome: String, sent: Instant, took: Duration) {
        let outcome_is_ok = outcome == "ok";
        let mut by_outcome = self.by_outcome.lock().expect("recorder lock");
        let histogram = by_outcome.entry(outcome).or_insert_with(new_histogram);
        let _ = histogram.record((took.as_micros() as u64).max(1));
        drop(by_outcome);
        let mut samples = self.samples.lock().expect("recorder lock");
        if samples.len() < MAX_SAMPLES {
            samples.push((sent, took, outcome_is_ok));
        }
    }

    fn snapshot(&self) -> BTreeMap<String, Histogram<u64>> {
        self.by_outcome.lock().expect("recorder lock").clone()
    }

    /// `<latency µs> ok|error` of each request sent in `from..until` and answered by `until`.
    fn window(&self, from: Instant, until: Instant) -> Vec<String> {
        let samples = self.samples.lock().expect("recorder lock");
        samples
            .iter()
            .filter(|(sent, took, _)| *sent >= from && *sent + *took <= until)
            .map(|(_, took, ok)| format!("{} {}", took.as_micros(), if *ok { "ok" } else { "error" }))
            .collect()
    }
}

// ---- load -------------------------------------------------------------------------

/// A `PeerClient` that records every request's latency by outcome.
#[derive(Clone)]
struct Recorded {
    inner: PeerClient,
    recorder: Arc<Recorder>,
}

impl Service<GreetRequest> for Recorded {
    type Response = GreetResponse;
    type Error = RequestError;
    type Future = BoxFuture<'static, Result<GreetResponse, RequestError>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), RequestError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: GreetRequest) -> Self::Future {
        let answer = self.inner.call(request);
        let recorder = Arc::clone(&self.recorder);
        let sent = Instant::now();
        Box::pin(async move {
            let result = answer.await;
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(err) => error_key(err),
            };
            recorder.record(outcome, sent, sent.elapsed());
            result
        })
    }
}

/// The address a client listens on to dial `target` (QUIC dials from a listening socket).
fn listen_for(target: &Multiaddr) -> Multiaddr {
    let tcp = target.iter().any(|p| matches!(p, Protocol::Tcp(_)));
    let text = if tcp { "/ip4/0.0.0.0/tcp/0" } else { "/ip4/0.0.0.0/udp/0/quic-v1" };
    text.parse().expect("valid multiaddr")
}

async fn run_load(args: &Args) -> Result<(), Error> {
    args.check_known(&["rate", "duration", "warmup", "concurrency", "seed", "request-timeout", "latencies"])?;
    let (target, peer) = args.address(0)?;
    let rate: Option<f64> = args.opt_num("rate")?;
    let request_timeout = args.duration("request-timeout", Duration::from_secs(5))?;
    let config = LoadConfig {
        concurrency: args.num("concurrency", 8)?,
        duration: args.duration("duration", Duration::from_secs(10))?,
        warmup: args.duration("warmup", Duration::from_secs(1))?,
        message: "fault_client".into(),
        rate_per_sec: rate,
        max_samples: 0,
    };
    let version = if args.flag("v1") { GreetVersion::V1 } else { GreetVersion::Auto };

    let (node, mut events) = NodeBuilder::new()
        .keypair(keypair(args.opt_num("seed")?))
        .mdns(false)
        .listen_on(listen_for(&target))
        .request_timeout(request_timeout)
        .build(stack(MakeGreeter::new("fault_client"), Limits::default()))
        .map_err(|e| format!("cannot start the client node: {e}"))?;
    node.dial(target.clone()).await.map_err(|e| format!("cannot dial {target}: {e}"))?;
    // Identify tells whether the target speaks greet 2.0.0: wait for it.
    let ready = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(event) = events.recv().await {
            match event {
                NodeEvent::GreetCapable { peer_id } if peer_id == peer => return Ok(()),
                NodeEvent::DialFailed { peer_id, error } if peer_id.is_none_or(|p| p == peer) => {
                    return Err(format!("cannot dial {target}: {error}"));
                }
                _ => {}
            }
        }
        Err("the client node stopped".to_owned())
    })
    .await
    .map_err(|_| format!("{target} not ready (connected and identified) within 15 s"))?;
    ready?;
    // Keep the events flowing: the node drops them when nobody reads.
    let drain = tokio::spawn(async move { while events.recv().await.is_some() {} });

    let recorder = Arc::new(Recorder::default());
    let service =
        Recorded { inner: node.client().peer(peer).with_version(version), recorder: recorder.clone() };
    let started = Instant::now();
    let report = load::run(vec![service], &config, Arc::new(AtomicU64::new(0))).await;
    let wall = started.elapsed();
    if let Some(path) = args.options.get("latencies") {
        let (from, until) = (started + config.warmup, started + config.warmup + config.duration);
        let lines = recorder.window(from, until);
        std::fs::write(path, lines.join("\n") + "\n").map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    node.shutdown().await;
    drain.abort();

    let by_outcome = recorder.snapshot();
    let mut errors = new_histogram();
    let mut all = new_histogram();
    for (outcome, histogram) in &by_outcome {
        all.add(histogram).expect("same bounds");
        if outcome != "ok" {
            errors.add(histogram).expect("same bounds");
        }
    }
    let mut json = Json::default();
    json.num("ok", report.ok);
    json.num("failed", report.failed());
    json.num("ok_per_sec", format!("{:.2}", report.ok_per_sec()));
    json.num("elapsed_s", format!("{:.3}", report.elapsed.as_secs_f64()));
    json.ms("p50_ms", report.latency(0.5));
    json.ms("p99_ms", report.latency(0.99));
    json.ms("max_ms", Duration::from_micros(report.latency_us.max()));
    for (kind, count) in &report.errors {
        json.num(format!("errors.{kind}"), count);
    }
    json.num("all.n", all.len());
    json.ms("all.max_ms", max(&all));
    json.num("err.n", errors.len());
    json.ms("err.p99_ms", quantile(&errors, 0.99));
    json.ms("err.max_ms", max(&errors));
    for (outcome, histogram) in &by_outcome {
        json.num(format!("kind.{outcome}.n"), histogram.len());
        json.ms(format!("kind.{outcome}.p50_ms"), quantile(histogram, 0.5));
        json.ms(format!("kind.{outcome}.p99_ms"), quantile(histogram, 0.99));
        json.ms(format!("kind.{outcome}.max_ms"), max(histogram));
    }
    json.num("wall_s", format!("{:.3}", wall.as_secs_f64()));

    println!(
        "load {target}: {} ok ({:.1}/s), {} failed {:?}; p50 {}, p99 {}, max {} (measured {:.1} s)",
        report.ok,
        report.ok_per_sec(),
        report.failed(),
        report.errors,
        ms(report.latency(0.5)),
        ms(report.latency(0.99)),
        ms(Duration::from_micros(report.latency_us.max())),
        report.elapsed.as_secs_f64(),
    );
    for (outcome, histogram) in &by_outcome {
        println!(
            "  all requests, {outcome}: {} (p50 {}, p99 {}, max {})",
            histogram.len(),
            ms(quantile(histogram, 0.5)),
            ms(quantile(histogram, 0.99)),
            ms(max(histogram))
        );
    }
    if args.flag("json") {
        println!("{}", json.line());
    }
    Ok(())
}

// ---- raw peers ----------------------------------------------------------------------

/// A bare swarm that speaks nothing but raw streams, connected to the target.
struct RawPeer {
    control: libp2p_stream::Control,
    /// Connections that closed after the first one was up.
    closed: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn raw_peer(target: &Multiaddr) -> Result<RawPeer, Error> {
    let mut swarm = SwarmBuilder::with_existing_identity(keypair(None))
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| e.to_string())?
        .with_quic()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    let control = swarm.behaviour().new_control();
    swarm.dial(target.clone()).map_err(|e| format!("cannot dial {target}: {e}"))?;
    let (connected_tx, connected) = oneshot::channel();
    let closed = Arc::new(AtomicU64::new(0));
    let closed_count = Arc::clone(&closed);
    let task = tokio::spawn(async move {
        let mut connected_tx = Some(connected_tx);
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(Ok(()));
                    }
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(Err(error.to_string()));
                    }
                }
                SwarmEvent::ConnectionClosed { cause, .. } => {
                    eprintln!("fault_client: a connection to the target closed: {cause:?}");
                    closed_count.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(15), connected).await {
        Ok(Ok(Ok(()))) => Ok(RawPeer { control, closed, task }),
        Ok(Ok(Err(err))) => Err(format!("cannot connect to {target}: {err}")),
        _ => Err(format!("no connection to {target} within 15 s")),
    }
}

// ---- hostile ------------------------------------------------------------------------

/// What a hostile input is made of.
const CATEGORIES: [&str; 11] = [
    "random_bytes",
    "huge_length",
    "overlong_varint",
    "truncated",
    "trailing_in_body",
    "trailing_after_frame",
    "invalid_utf8",
    "abandoned",
    "reset_mid_frame",
    "empty_or_id0",
    "mutated_frame",
];
const TRAILING_AFTER_FRAME: usize = 5;
const ABANDONED: usize = 7;
const RESET_MID_FRAME: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    V1,
    V2,
}

impl Version {
    fn protocol(self) -> StreamProtocol {
        match self {
            Self::V1 => StreamProtocol::new(PROTOCOL_NAME),
            Self::V2 => StreamProtocol::new(v2::PROTOCOL_NAME),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::V1 => "1.0.0",
            Self::V2 => "2.0.0",
        }
    }
}

fn uvarint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 10);
    append_frame(&mut out, body).expect("body within MAX_FRAME_LEN");
    out
}

/// A well-formed request body; for 2.0.0 with `id`.
fn valid_body(version: Version, id: u64, message: String) -> Vec<u8> {
    let request = GreetRequest::new(message);
    match version {
        Version::V1 => encode(&request),
        Version::V2 => encode(&v2::Request { id, request }),
    }
}

/// One hostile input: the bytes to send, and whether it embeds a well-formed request (its id).
struct Input {
    category: usize,
    version: Version,
    bytes: Vec<u8>,
    embedded: Option<u64>,
}

fn make_input(index: u64, seed: u64, version: Version) -> Input {
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ index);
    let category = rng.below(CATEGORIES.len() as u64) as usize;
    let id = 1 + rng.below(1 << 20);
    let message_len = rng.below(64) as usize;
    let valid = valid_body(version, id, rng.text(message_len));
    let mut embedded = None;
    let bytes = match category {
        0 => {
            let len = if rng.below(10) == 0 { rng.below(8192) } else { rng.below(512) };
            rng.bytes(len as usize)
        }
        1 => {
            // 65,537 ..= 2^64-1, spread over every bit length.
            let bits = 17 + rng.below(48) as u32; // 17..=64
            let top = 1u64 << (bits - 1);
            let len = (top | (rng.next() & (top - 1))).max(MAX_FRAME_LEN as u64 + 1);
            let tail = rng.below(64) as usize;
            [uvarint(len), rng.bytes(tail)].concat()
        }
        2 => {
            let mut prefix = match rng.below(3) {
                // More than ten continuation bytes.
                0 => (0..11 + rng.below(6)).map(|_| 0x80 | rng.next() as u8).collect(),
                // Ten bytes whose last overflows a u64.
                1 => {
                    let mut p: Vec<u8> = (0..9).map(|_| 0x80 | rng.next() as u8).collect();
                    p.push(2 + rng.below(126) as u8);
                    p
                }
                // Not minimal: a trailing zero group.
                _ => vec![0x80 | rng.below(128) as u8, 0x00],
            };
            let tail = rng.below(8) as usize;
            prefix.extend(rng.bytes(tail));
            prefix
        }
        3 => match rng.below(4) {
            // The stream ends inside the length prefix.
            0 => vec![0x80 | rng.next() as u8],
            // ... or inside the body.
            _ => {
                let body = if rng.below(2) == 0 {
                    valid.clone()
                } else {
                    let bound = if rng.below(10) == 0 { MAX_FRAME_LEN as u64 } else { 2000 };
                    let len = 1 + rng.below(bound);
                    rng.bytes(len as usize)
                };
                let sent = rng.below(body.len() as u64) as usize;
                [uvarint(body.len() as u64), body[..sent].to_vec()].concat()
            }
        },
        4 => {
            let extra = 1 + rng.below(16) as usize;
            framed(&[valid.clone(), rng.bytes(extra)].concat())
        }
        TRAILING_AFTER_FRAME => {
            embedded = Some(id);
            let extra = 1 + rng.below(16) as usize;
            [framed(&valid), rng.bytes(extra)].concat()
        }
        6 => {
            // A string with a 0xff byte in it: never valid UTF-8.
            let text_len = rng.below(32) as usize;
            let mut text = rng.text(text_len).into_bytes();
            let at = rng.below(text.len() as u64 + 1) as usize;
            text.insert(at, 0xff);
            let body = match version {
                Version::V1 => [uvarint(text.len() as u64), text].concat(),
                Version::V2 => [uvarint(id), uvarint(text.len() as u64), text].concat(),
            };
            framed(&body)
        }
        ABANDONED | RESET_MID_FRAME => {
            let frame = framed(&valid);
            let sent = rng.below(frame.len() as u64) as usize; // never the whole frame
            frame[..sent.max(1)].to_vec()
        }
        9 => match version {
            Version::V1 => Vec::new(),
            Version::V2 => framed(&valid_body(version, STREAM_ERROR_ID, "zero".into())),
        },
        _ => {
            let mut frame = framed(&valid);
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(frame.len() as u64) as usize;
                frame[at] ^= 1 << rng.below(8);
            }
            frame
        }
    };
    Input { category, version, bytes, embedded }
}

/// How the node answered one input.
struct Outcome {
    /// `400`, `413`, `ok`, `429`, ..., `reset`, `closed`, `timeout`, `open_failed`,
    /// `bad_answer`, or `not_read` (abandoned and reset inputs: nothing to wait for).
    what: String,
    /// For inputs with an embedded well-formed request: was it answered?
    embedded_answered: Option<bool>,
}

fn io_outcome(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted => {
            "reset".into()
        }
        io::ErrorKind::UnexpectedEof => "closed".into(),
        kind => format!("io_{kind:?}").to_lowercase(),
    }
}

fn decode_outcome(err: &DecodeError) -> String {
    match err {
        DecodeError::Io(err) => io_outcome(err),
        DecodeError::Closed => "closed".into(),
        _ => "bad_answer".into(),
    }
}

fn result_outcome(result: &GreetResult) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(err) => err.code.as_u16().to_string(),
    }
}

/// Reads what the node answers on a 1.0.0 stream: one frame.
async fn read_v1(stream: &mut Stream) -> (String, bool) {
    match read_frame(stream).await {
        Ok(body) => match decode::<GreetResult>(&body) {
            Ok(result) => (result_outcome(&result), true),
            Err(_) => ("bad_answer".into(), false),
        },
        Err(err) => (decode_outcome(&err), false),
    }
}

/// Reads what the node answers on a 2.0.0 stream until it closes: the stream
/// error if there is one, else the first answer; and whether `embedded` was answered.
async fn read_v2(stream: &mut Stream, embedded: Option<u64>) -> (String, bool) {
    let mut first = None;
    let mut stream_error = None;
    let mut embedded_answered = false;
    let end = loop {
        match p2p_protocol::try_read_frame(&mut *stream).await {
            Ok(Some(body)) => match decode::<v2::Response>(&body) {
                Ok(response) => {
                    let outcome = result_outcome(&response.result);
                    if response.id == STREAM_ERROR_ID {
                        stream_error.get_or_insert(outcome);
                    } else {
                        embedded_answered |= Some(response.id) == embedded;
                        first.get_or_insert(outcome);
                    }
                }
                Err(_) => break "bad_answer".to_owned(),
            },
            Ok(None) => break "closed".to_owned(),
            Err(err) => break decode_outcome(&err),
        }
    };
    let what = match (stream_error, first) {
        _ if end == "bad_answer" => end,
        (Some(error), _) => error,
        (None, Some(first)) => first,
        (None, None) => end,
    };
    (what, embedded_answered)
}

/// Sends one hostile input on a fresh stream and sees how the node answers.
async fn send_input(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
    input: &Input,
    answer_timeout: Duration,
    abandoned: &Arc<Semaphore>,
    rng: &mut Rng,
) -> Outcome {
    let no_embedded = |what: &str| Outcome { what: what.to_owned(), embedded_answered: None };
    let opened =
        tokio::time::timeout(answer_timeout, control.open_stream(peer, input.version.protocol())).await;
    let mut stream = match opened {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            eprintln!("fault_client: cannot open a stream: {err}");
            return no_embedded("open_failed");
        }
        Err(_) => return no_embedded("open_failed"),
    };
    match input.category {
        ABANDONED => {
            // Left open, unread, for a while: the node must not wait on it forever.
            let _ = stream.write_all(&input.bytes).await;
            let _ = stream.flush().await;
            let hold = Duration::from_millis(rng.below(500));
            let permit = Arc::clone(abandoned).acquire_owned().await.expect("never closed");
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                drop(stream);
                drop(permit);
            });
            return no_embedded("not_read");
        }
        RESET_MID_FRAME => {
            // Dropped mid-frame without closing: a RST on Yamux; on QUIC a
            // STOP_SENDING and the end of the stream.
            let _ = stream.write_all(&input.bytes).await;
            let _ = stream.flush().await;
            drop(stream);
            return no_embedded("not_read");
        }
        _ => {}
    }
    let exchange = async {
        // The node may answer and close before reading everything (413): a
        // failed write is then expected, the answer is what counts.
        let _ = stream.write_all(&input.bytes).await;
        let _ = stream.close().await;
        match input.version {
            Version::V1 => read_v1(&mut stream).await,
            Version::V2 => read_v2(&mut stream, input.embedded).await,
        }
    };
    match tokio::time::timeout(answer_timeout, exchange).await {
        Ok((what, answered)) => Outcome { what, embedded_answered: input.embedded.map(|_| answered) },
        Err(_) => Outcome { what: "timeout".into(), embedded_answered: input.embedded.map(|_| false) },
    }
}

#[derive(Default)]
struct HostileStats {
    /// (category, version) → outcome → count.
    table: BTreeMap<(usize, Version), BTreeMap<String, u64>>,
    by_outcome: BTreeMap<String, u64>,
    by_transport: BTreeMap<&'static str, u64>,
    embedded_sent: u64,
    embedded_answered: u64,
}

/// What the well-behaved prober saw.
#[derive(Default)]
struct ProbeStats {
    sent: u64,
    ok: u64,
    failures: BTreeMap<String, u64>,
    latency: Option<Histogram<u64>>,
}

async fn run_hostile(args: &Args) -> Result<(), Error> {
    args.check_known(&[
        "tcp",
        "count",
        "concurrency",
        "seed",
        "probe-interval",
        "answer-timeout",
        "max-time",
    ])?;
    let (quic_target, peer) = args.address(0)?;
    let tcp_target = args.options.get("tcp").map(|t| address(t)).transpose()?;
    if let Some((_, tcp_peer)) = &tcp_target
        && *tcp_peer != peer
    {
        return Err("--tcp names another peer".into());
    }
    let count: u64 = args.num("count", 100_000)?;
    let concurrency: usize = args.num("concurrency", 32)?;
    let seed: u64 = args.num("seed", 1)?;
    let probe_interval = args.duration("probe-interval", Duration::from_millis(150))?;
    let answer_timeout = args.duration("answer-timeout", Duration::from_secs(5))?;
    let max_time = args.duration("max-time", Duration::from_secs(600))?;

    // One hostile peer per transport, and a well-behaved prober on QUIC.
    let mut hostile = vec![("quic", raw_peer(&quic_target).await?)];
    if let Some((tcp_target, _)) = &tcp_target {
        hostile.push(("tcp", raw_peer(tcp_target).await?));
    }
    let prober = raw_peer(&quic_target).await?;
    eprintln!(
        "fault_client: {count} hostile inputs to {peer} over {} ({concurrency} at a time), probing every {}",
        hostile.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(" and "),
        ms(probe_interval)
    );

    let started = Instant::now();
    let deadline = started + max_time;
    let next = Arc::new(AtomicU64::new(0));
    let stats = Arc::new(Mutex::new(HostileStats::default()));
    let abandoned = Arc::new(Semaphore::new(64));
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let probe =
        tokio::spawn(probe_loop(prober.control.clone(), peer, probe_interval, answer_timeout, done_rx));

    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|w| {
            let (transport, raw) = &hostile[w % hostile.len()];
            let transport: &'static str = transport;
            let mut control = raw.control.clone();
            let (next, stats, abandoned) = (Arc::clone(&next), Arc::clone(&stats), Arc::clone(&abandoned));
            tokio::spawn(async move {
                let mut rng = Rng(seed ^ ((w as u64) << 32));
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count || Instant::now() >= deadline {
                        break;
                    }
                    let version = if (index / 2) % 2 == 0 { Version::V1 } else { Version::V2 };
                    let input = make_input(index, seed, version);
                    let outcome =
                        send_input(&mut control, peer, &input, answer_timeout, &abandoned, &mut rng).await;
                    let mut stats = stats.lock().expect("stats lock");
                    *stats
                        .table
                        .entry((input.category, input.version))
                        .or_default()
                        .entry(outcome.what.clone())
                        .or_default() += 1;
                    *stats.by_outcome.entry(outcome.what).or_default() += 1;
                    *stats.by_transport.entry(transport).or_default() += 1;
                    if let Some(answered) = outcome.embedded_answered {
                        stats.embedded_sent += 1;
                        stats.embedded_answered += u64::from(answered);
                    }
                    if (index + 1) % (count / 10).max(1) == 0 {
                        eprintln!(
                            "fault_client: {} inputs in {:.1} s",
                            index + 1,
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.map_err(|e| format!("a worker failed: {e}"))?;
    }
    let elapsed = started.elapsed();
    // Let the abandoned streams go before the last probes.
    let _ = abandoned.acquire_many(64).await;
    tokio::time::sleep(probe_interval * 2).await;
    let _ = done_tx.send(true);
    let probes = probe.await.map_err(|e| format!("the prober failed: {e}"))?;
    let connections_closed: u64 =
        hostile.iter().map(|(_, raw)| raw.closed.load(Ordering::Relaxed)).sum::<u64>()
            + prober.closed.load(Ordering::Relaxed);

    let stats = stats.lock().expect("stats lock");
    print_hostile(&stats, &probes, elapsed, connections_closed);
    if args.flag("json") {
        let inputs: u64 = stats.by_outcome.values().sum();
        let mut json = Json::default();
        json.num("inputs", inputs);
        json.num("elapsed_s", format!("{:.3}", elapsed.as_secs_f64()));
        json.num("inputs_per_sec", format!("{:.1}", inputs as f64 / elapsed.as_secs_f64().max(1e-3)));
        for key in ["400", "413", "ok", "reset", "closed", "timeout", "open_failed", "bad_answer", "not_read"]
        {
            json.num(format!("outcome.{key}"), stats.by_outcome.get(key).copied().unwrap_or(0));
        }
        for (key, count) in &stats.by_outcome {
            json.num(format!("outcomes.{key}"), count);
        }
        json.num("embedded_sent", stats.embedded_sent);
        json.num("embedded_answered", stats.embedded_answered);
        json.num("probes", probes.sent);
        json.num("probes_ok", probes.ok);
        let latency = probes.latency.unwrap_or_else(new_histogram);
        json.ms("probe_p99_ms", quantile(&latency, 0.99));
        json.ms("probe_max_ms", max(&latency));
        json.num("connections_closed", connections_closed);
        println!("{}", json.line());
    }
    Ok(())
}

fn print_hostile(stats: &HostileStats, probes: &ProbeStats, elapsed: Duration, connections_closed: u64) {
    let inputs: u64 = stats.by_outcome.values().sum();
    println!(
        "hostile: {inputs} inputs in {:.1} s ({:.0}/s), by transport {:?}",
        elapsed.as_secs_f64(),
        inputs as f64 / elapsed.as_secs_f64().max(1e-3),
        stats.by_transport
    );
    println!("  {:<22} {:<6} answers", "input", "proto");
    for ((category, version), outcomes) in &stats.table {
        let outcomes: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o}={n}")).collect();
        println!("  {:<22} {:<6} {}", CATEGORIES[*category], version.name(), outcomes.join(" "));
    }
    let outcomes: Vec<String> = stats.by_outcome.iter().map(|(o, n)| format!("{o}={n}")).collect();
    println!("  total: {}", outcomes.join(" "));
    println!(
        "  well-formed requests inside hostile streams: {} of {} answered",
        stats.embedded_answered, stats.embedded_sent
    );
    let latency = probes.latency.clone().unwrap_or_else(new_histogram);
    println!(
        "  well-behaved prober: {} of {} answered ok (p50 {}, p99 {}, max {}), failures {:?}",
        probes.ok,
        probes.sent,
        ms(quantile(&latency, 0.5)),
        ms(quantile(&latency, 0.99)),
        ms(max(&latency)),
        probes.failures
    );
    println!("  connections the node closed: {connections_closed}");
}

/// A well-behaved peer: one request every `interval`, alternating a 1.0.0
/// stream per request and one long-lived 2.0.0 stream.
async fn probe_loop(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    interval: Duration,
    answer_timeout: Duration,
    mut done: tokio::sync::watch::Receiver<bool>,
) -> ProbeStats {
    let mut stats = ProbeStats { latency: Some(new_histogram()), ..ProbeStats::default() };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut v2_stream: Option<Stream> = None;
    let mut id = 0u64;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = done.wait_for(|d| *d) => break,
        }
        stats.sent += 1;
        id += 1;
        let message = format!("probe {id}");
        let sent = Instant::now();
        let answer = tokio::time::timeout(answer_timeout, async {
            if id % 2 == 1 {
                let mut stream = control
                    .open_stream(peer, Version::V1.protocol())
                    .await
                    .map_err(|e| format!("open: {e}"))?;
                stream
                    .write_all(&framed(&valid_body(Version::V1, 0, message)))
                    .await
                    .map_err(|e| e.to_string())?;
                stream.close().await.map_err(|e| e.to_string())?;
                let body = read_frame(&mut stream).await.map_err(|e| decode_outcome(&e))?;
                decode::<GreetResult>(&body).map_err(|_| "bad_answer".to_owned())
            } else {
                if v2_stream.is_none() {
                    let stream = control
                        .open_stream(peer, Version::V2.protocol())
                        .await
                        .map_err(|e| format!("open: {e}"))?;
                    v2_stream = Some(stream);
                }
                let stream = v2_stream.as_mut().expect("just opened");
                let exchange = async {
                    stream
                        .write_all(&framed(&valid_body(Version::V2, id, message)))
                        .await
                        .map_err(|e| e.to_string())?;
                    stream.flush().await.map_err(|e| e.to_string())?;
                    let body = read_frame(&mut *stream).await.map_err(|e| decode_outcome(&e))?;
                    let response = decode::<v2::Response>(&body).map_err(|_| "bad_answer".to_owned())?;
                    if response.id != id {
                        return Err(format!("answer to id {} instead of {id}", response.id));
                    }
                    Ok(response.result)
                };
                let result = exchange.await;
                if result.is_err() {
                    v2_stream = None; // a fresh stream next time
                }
                result
            }
        })
        .await;
        let took = sent.elapsed();
        if let Some(latency) = &mut stats.latency {
            let _ = latency.record((took.as_micros() as u64).max(1));
        }
        match answer {
            Ok(Ok(Ok(_))) => stats.ok += 1,
            Ok(Ok(Err(remote))) => {
                *stats.failures.entry(format!("remote {}", remote.code.as_u16())).or_default() += 1
            }
            Ok(Err(err)) => *stats.failures.entry(err).or_default() += 1,
            Err(_) => {
                v2_stream = None;
                *stats.failures.entry("timeout".into()).or_default() += 1;
            }
        }
    }
    if let Some(mut stream) = v2_stream {
        let _ = stream.close().await;
    }
    stats
}
