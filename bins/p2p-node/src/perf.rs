//! libp2p's perf protocol, `/perf/1.0.0` (libp2p specs, `perf/perf.md`),
//! on the transport's bare streams: the server behind `run --perf` (off by
//! default, as the spec asks) and the client `p2p-node perf`.
//!
//! The wire: the client opens a stream, writes how many bytes it wants back
//! (a u64, big-endian), uploads any number of bytes and closes its write
//! half; the server reads to EOF, only then writes the bytes asked for, and
//! closes.
//!
//! The server is bounded: a request for more than `--perf-max-bytes` is
//! refused (the stream dropped before anything is read or sent), an upload
//! beyond it too, and a client that sends nothing for [`IDLE`] (or stops
//! reading for as long) loses its stream; each stream runs in a task of its
//! own and counts against the connection's stream cap.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::{AsyncReadExt, AsyncWriteExt};
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::{Multiaddr, PeerId, Stream};
use p2p_transport::{Node, NodeBuilder};
use tokio::time::Instant;
use tracing::debug;

use crate::output;
use crate::values::{Size, parse_peer_addr};

/// The protocol's name.
pub(crate) const PROTOCOL: &str = "/perf/1.0.0";

/// The server's default cap on what one stream may upload, and ask back.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 10 << 30;

/// The longest a read or a write may wait for the peer.
const IDLE: Duration = Duration::from_secs(10);

/// What is read and written at once.
const CHUNK: usize = 64 * 1024;

// ---- the server -----------------------------------------------------------

/// The perf server: one per node, shared by every stream's task.
#[derive(Debug)]
pub(crate) struct Server {
    max_bytes: u64,
    /// Bytes uploaded to us, in all (logged; tests read it).
    received: AtomicU64,
    /// Bytes sent back, in all.
    sent: AtomicU64,
    /// Streams refused: a request or an upload beyond `max_bytes`.
    refused: AtomicU64,
}

impl Server {
    pub(crate) fn new(max_bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            max_bytes,
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Mounts the server on `builder`.
    pub(crate) fn mount(self: &Arc<Self>, builder: NodeBuilder) -> NodeBuilder {
        let server = Arc::clone(self);
        builder.serve_stream(PROTOCOL, move |peer, stream| {
            let server = Arc::clone(&server);
            async move {
                if let Err(err) = server.serve(stream).await {
                    debug!(%peer, %err, "perf stream ended early");
                }
            }
        })
    }

    async fn serve(&self, mut stream: Stream) -> Result<()> {
        let mut asked = [0u8; 8];
        timed(stream.read_exact(&mut asked)).await.context("reading the size asked for")?;
        let asked = u64::from_be_bytes(asked);
        if asked > self.max_bytes {
            self.refused.fetch_add(1, Ordering::Relaxed);
            bail!("asked for {asked} bytes, more than the {} allowed: refused", self.max_bytes);
        }
        let mut buffer = vec![0u8; CHUNK];
        let mut uploaded = 0u64;
        loop {
            let n = timed(stream.read(&mut buffer)).await.context("reading the upload")?;
            if n == 0 {
                break;
            }
            uploaded += n as u64;
            self.received.fetch_add(n as u64, Ordering::Relaxed);
            if uploaded > self.max_bytes {
                self.refused.fetch_add(1, Ordering::Relaxed);
                bail!("uploaded more than the {} bytes allowed: refused", self.max_bytes);
            }
        }
        // Only now, never while the upload runs (the spec's rule).
        buffer.fill(0);
        let mut left = asked;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            timed(stream.write_all(&buffer[..n])).await.context("sending")?;
            left -= n as u64;
            self.sent.fetch_add(n as u64, Ordering::Relaxed);
        }
        timed(stream.close()).await.context("closing")?;
        Ok(())
    }
}

/// `io`, or an error once it has waited [`IDLE`] for the peer.
async fn timed<T>(io: impl Future<Output = std::io::Result<T>>) -> Result<T> {
    match tokio::time::timeout(IDLE, io).await {
        Ok(result) => Ok(result?),
        Err(_) => bail!("the peer did nothing for {IDLE:?}"),
    }
}

// ---- the client -----------------------------------------------------------

/// `perf --help`, after the flags.
pub(crate) const EXAMPLES: &str = "\
Examples:
  # on the server: p2p-node run --perf --no-mdns --listen /ip4/0.0.0.0/udp/4001/quic-v1
  p2p-node perf /ip4/192.0.2.7/udp/4001/quic-v1/p2p/12D3KooW... --upload 100MiB --download 100MiB
  p2p-node perf /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW... --download 1GiB --json
  # 100 fresh connections, each a 1-byte round trip
  p2p-node perf /ip4/192.0.2.7/udp/4001/quic-v1/p2p/12D3KooW... --connections 100

One stream: upload, then download (the server sends nothing before the upload
ends). A line per second per direction while it runs (`UPLOAD 1.0s 117.3 MiB
0.98 Gbit/s`), then the totals and the connection (dial to connected), stream
open, time-to-first-byte (from our upload's end to the first byte back) and
first-byte (from asking for the stream to the first byte back) figures. With
--connections the round trip is the latter: stream negotiation included. Sizes take B, k/KB (1000), KiB (1024), M/MB, MiB, G/GB, GiB.";

/// `p2p-node perf`.
#[derive(Debug, Clone, Args)]
pub(crate) struct PerfArgs {
    /// The node to measure (run with --perf), ending in /p2p/<peer-id>.
    #[arg(value_name = "MULTIADDR", value_parser = parse_peer_addr)]
    pub(crate) address: Multiaddr,

    /// Bytes to upload.
    #[arg(long, value_name = "BYTES", default_value = "0")]
    pub(crate) upload: Size,

    /// Bytes to ask back.
    #[arg(long, value_name = "BYTES", default_value = "0")]
    pub(crate) download: Size,

    /// Instead: N fresh connections one after the other (a fresh identity
    /// each), each a 1-byte round trip; prints connection establishment and
    /// round-trip quantiles.
    #[arg(long, value_name = "N", conflicts_with_all = ["upload", "download"])]
    pub(crate) connections: Option<usize>,

    /// Stop each direction after this long, even with bytes left (the
    /// spec's timer-based variant: the upload closes early, the download is
    /// dropped); the figures count what moved. For runs of a known length.
    #[arg(long, value_name = "DURATION")]
    pub(crate) duration: Option<p2p_load::HumanDuration>,

    /// How long connecting may take; the transfer is bounded by the
    /// server's idle timeout instead.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub(crate) timeout: p2p_load::HumanDuration,

    /// Print the result as one JSON object on stdout (no per-second lines).
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) async fn perf(args: PerfArgs) -> Result<ExitCode> {
    let Some(Protocol::P2p(peer)) = args.address.iter().last() else {
        bail!("{} does not end with /p2p/<peer-id>", args.address);
    };
    if let Some(n) = args.connections {
        let report = connections(&args, peer, n).await?;
        print_lines(&if args.json { report.json() } else { report.text() });
        return Ok(if report.ok == 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS });
    }
    let (node, _events) = client_node(&args)?;
    let connected = connect(&node, &args).await;
    let report = match connected {
        Ok(connect) => {
            let print = !args.json;
            let limit = args.duration.map(|d| d.0);
            transfer(&node, peer, args.upload.0, args.download.0, limit, print).await.map(|mut r| {
                r.connect = connect;
                r
            })
        }
        Err(err) => Err(err),
    };
    node.shutdown().await;
    let report = report?;
    print_lines(&if args.json { report.json() } else { report.text() });
    Ok(ExitCode::SUCCESS)
}

fn print_lines(text: &str) {
    text.lines().for_each(output::print_line);
}

fn client_node(args: &PerfArgs) -> Result<(Node, p2p_transport::NodeEvents)> {
    NodeBuilder::for_dialing(&args.address)
        .dht(false)
        .request_timeout(args.timeout.0)
        .start()
        .context("cannot start the node")
}

/// Dials and waits for the connection: how long it took.
async fn connect(node: &Node, args: &PerfArgs) -> Result<Duration> {
    let start = Instant::now();
    match tokio::time::timeout(args.timeout.0, node.connect(args.address.clone())).await {
        Ok(Ok(_)) => Ok(start.elapsed()),
        Ok(Err(err)) => bail!("cannot dial {}: {err}", args.address),
        Err(_) => bail!("no connection to {} within {}", args.address, args.timeout),
    }
}

/// One direction of a transfer.
#[derive(Debug, Default, Clone)]
pub(crate) struct Leg {
    pub(crate) bytes: u64,
    pub(crate) time: Duration,
    /// Bits per second, one per whole second of the transfer.
    pub(crate) samples: Vec<f64>,
}

impl Leg {
    fn gbits(&self) -> f64 {
        gbits(self.bytes, self.time)
    }
}

fn gbits(bytes: u64, time: Duration) -> f64 {
    if time.is_zero() { 0.0 } else { bytes as f64 * 8.0 / time.as_secs_f64() / 1e9 }
}

/// One transfer's figures.
#[derive(Debug, Default, Clone)]
pub(crate) struct Report {
    pub(crate) connect: Duration,
    pub(crate) stream_open: Duration,
    /// From our write half closed (the upload sent) to the first byte back
    /// (`None`: none asked for).
    pub(crate) ttfb: Option<Duration>,
    /// From asking for the stream to the first byte back: a whole round
    /// trip on the stream, its negotiation included (`None`: none asked for).
    pub(crate) first_byte: Option<Duration>,
    pub(crate) upload: Leg,
    pub(crate) download: Leg,
}

/// Counts bytes and prints (if asked) a line per whole second.
struct Sampler {
    label: &'static str,
    start: Instant,
    next: Instant,
    at_last: u64,
    samples: Vec<f64>,
    print: bool,
}

impl Sampler {
    fn new(label: &'static str, start: Instant, print: bool) -> Self {
        Self { label, start, next: start + Duration::from_secs(1), at_last: 0, samples: Vec::new(), print }
    }

    fn tick(&mut self, total: u64) {
        let now = Instant::now();
        while now >= self.next {
            let bits = (total - self.at_last) as f64 * 8.0;
            self.at_last = total;
            self.samples.push(bits);
            if self.print {
                let at = (self.next - self.start).as_secs_f64();
                output::print_line(&format!(
                    "{} {at:.1}s {} {:.2} Gbit/s",
                    self.label,
                    mib(total),
                    bits / 1e9
                ));
            }
            self.next += Duration::from_secs(1);
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Opens a perf stream to `peer`, uploads `upload` bytes and downloads
/// `download` (each direction cut short after `limit`, if given): the
/// figures, or why the exchange failed (a refusal shows as fewer bytes back
/// than asked for).
pub(crate) async fn transfer(
    node: &Node,
    peer: PeerId,
    upload: u64,
    download: u64,
    limit: Option<Duration>,
    print: bool,
) -> Result<Report> {
    let asked = Instant::now();
    let mut stream = node.open_stream(peer, PROTOCOL).await.context("cannot open a perf stream")?;
    let stream_open = asked.elapsed();
    let buffer = vec![0u8; CHUNK];

    let start = Instant::now();
    let mut sampler = Sampler::new("UPLOAD", start, print);
    timed(stream.write_all(&download.to_be_bytes())).await?;
    let mut sent = 0u64;
    let stop = limit.map(|limit| start + limit);
    while sent < upload && stop.is_none_or(|stop| Instant::now() < stop) {
        let n = (upload - sent).min(CHUNK as u64) as usize;
        timed(stream.write_all(&buffer[..n])).await.context("uploading")?;
        sent += n as u64;
        sampler.tick(sent);
    }
    timed(stream.close()).await.context("closing our side")?;
    let closed = Instant::now();

    // The upload is over once the server has read it all: its first byte back (or its EOF).
    let mut buffer = buffer;
    let mut received = 0u64;
    let first = timed(stream.read(&mut buffer)).await.context("waiting for the answer")?;
    let turned = Instant::now();
    let upload_leg = Leg { bytes: sent, time: turned - start, samples: sampler.samples };
    let (ttfb, first_byte) = (turned - closed, turned - asked);
    received += first as u64;
    let mut sampler = Sampler::new("DOWNLOAD", turned, print);
    let stop = limit.map(|limit| turned + limit);
    let mut cut = false;
    if first > 0 {
        loop {
            if stop.is_some_and(|stop| Instant::now() >= stop) {
                cut = true; // the stream is dropped: the server stops on its next write
                break;
            }
            let n = timed(stream.read(&mut buffer)).await.context("downloading")?;
            if n == 0 {
                break;
            }
            received += n as u64;
            sampler.tick(received);
        }
    }
    let download_leg = Leg { bytes: received, time: turned.elapsed(), samples: sampler.samples };
    if received != download && !cut {
        bail!("the server sent {received} of the {download} bytes asked for (more than it allows?)");
    }
    Ok(Report {
        connect: Duration::ZERO,
        stream_open,
        ttfb: (download > 0).then_some(ttfb),
        first_byte: (download > 0).then_some(first_byte),
        upload: upload_leg,
        download: download_leg,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn samples_json(samples: &[f64]) -> String {
    let gbits: Vec<String> = samples.iter().map(|b| format!("{:.4}", b / 1e9)).collect();
    format!("[{}]", gbits.join(","))
}

impl Report {
    fn text(&self) -> String {
        let ttfb = self.ttfb.map_or("-".to_owned(), |t| format!("{:.2}", ms(t)));
        let first = self.first_byte.map_or("-".to_owned(), |t| format!("{:.2}", ms(t)));
        let leg = |label: &str, leg: &Leg| {
            format!("{label} {} in {:.3}s: {:.3} Gbit/s", mib(leg.bytes), leg.time.as_secs_f64(), leg.gbits())
        };
        format!(
            "PERF connect_ms={:.2} stream_open_ms={:.2} ttfb_ms={ttfb} first_byte_ms={first}\n{}\n{}",
            ms(self.connect),
            ms(self.stream_open),
            leg("UPLOADED", &self.upload),
            leg("DOWNLOADED", &self.download)
        )
    }

    fn json(&self) -> String {
        let ttfb = self.ttfb.map_or("null".to_owned(), |t| format!("{:.3}", ms(t)));
        let first = self.first_byte.map_or("null".to_owned(), |t| format!("{:.3}", ms(t)));
        let leg = |leg: &Leg| {
            format!(
                "{{\"bytes\":{},\"seconds\":{:.6},\"gbit_per_s\":{:.4},\"samples_gbit_per_s\":{}}}",
                leg.bytes,
                leg.time.as_secs_f64(),
                leg.gbits(),
                samples_json(&leg.samples)
            )
        };
        format!(
            "{{\"protocol\":\"{PROTOCOL}\",\"connect_ms\":{:.3},\"stream_open_ms\":{:.3},\"ttfb_ms\":{ttfb},\"first_byte_ms\":{first},\"upload\":{},\"download\":{}}}",
            ms(self.connect),
            ms(self.stream_open),
            leg(&self.upload),
            leg(&self.download)
        )
    }
}

/// `--connections N`: connection establishment and 1-byte round trips.
#[derive(Debug, Default)]
pub(crate) struct ConnectionsReport {
    pub(crate) ok: usize,
    pub(crate) failed: usize,
    pub(crate) connect: Vec<Duration>,
    pub(crate) rtt: Vec<Duration>,
    /// The first failure, if any.
    pub(crate) first_error: Option<String>,
}

/// The `q` quantile of sorted `values` (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl ConnectionsReport {
    fn quantiles(values: &[Duration]) -> [f64; 3] {
        let mut sorted = values.to_vec();
        sorted.sort();
        [quantile(&sorted, 0.5), quantile(&sorted, 0.99), sorted.last().copied().unwrap_or_default()].map(ms)
    }

    fn text(&self) -> String {
        let [c50, c99, cmax] = Self::quantiles(&self.connect);
        let [r50, r99, rmax] = Self::quantiles(&self.rtt);
        let mut text = format!(
            "CONNECTIONS ok={} failed={}\nconnect_ms p50={c50:.2} p99={c99:.2} max={cmax:.2}\nrtt_1byte_ms p50={r50:.2} p99={r99:.2} max={rmax:.2}",
            self.ok, self.failed
        );
        if let Some(err) = &self.first_error {
            text.push_str(&format!("\nfirst error: {err}"));
        }
        text
    }

    fn json(&self) -> String {
        let [c50, c99, cmax] = Self::quantiles(&self.connect);
        let [r50, r99, rmax] = Self::quantiles(&self.rtt);
        format!(
            "{{\"protocol\":\"{PROTOCOL}\",\"connections\":{},\"ok\":{},\"failed\":{},\"connect_ms\":{{\"p50\":{c50:.3},\"p99\":{c99:.3},\"max\":{cmax:.3}}},\"rtt_ms\":{{\"p50\":{r50:.3},\"p99\":{r99:.3},\"max\":{rmax:.3}}}}}",
            self.ok + self.failed,
            self.ok,
            self.failed
        )
    }
}

/// `n` fresh connections, one after the other, each from a node of its own
/// (a fresh identity and socket): dial to connected, then a 1-byte perf
/// exchange, from asking for the stream to the byte back.
async fn connections(args: &PerfArgs, peer: PeerId, n: usize) -> Result<ConnectionsReport> {
    let mut report = ConnectionsReport::default();
    for _ in 0..n {
        let (node, events) = client_node(args)?;
        let outcome = async {
            let connect = connect(&node, args).await?;
            let exchange = transfer(&node, peer, 1, 1, None, false).await?;
            Ok::<_, anyhow::Error>((connect, exchange.first_byte.unwrap_or_default()))
        }
        .await;
        match outcome {
            Ok((connect, rtt)) => {
                report.ok += 1;
                report.connect.push(connect);
                report.rtt.push(rtt);
            }
            Err(err) => {
                report.failed += 1;
                report.first_error.get_or_insert_with(|| format!("{err:#}"));
            }
        }
        // Closing takes a while (the close frames get time to leave): not measured, not awaited.
        tokio::spawn(async move {
            node.shutdown().await;
            drop(events);
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn server(max_bytes: u64) -> (Arc<Server>, Node, Multiaddr) {
        let perf = Server::new(max_bytes);
        let builder = NodeBuilder::new()
            .mdns(false)
            .dht(false)
            .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap());
        let (node, mut events) = perf.mount(builder).start().unwrap();
        let address = loop {
            match events.recv().await.expect("the node runs") {
                p2p_transport::NodeEvent::Listening { address } => break address,
                _ => continue,
            }
        };
        let address = address.with(Protocol::P2p(node.local_peer_id()));
        (perf, node, address)
    }

    async fn client(address: &Multiaddr) -> Node {
        let (node, _events) = NodeBuilder::for_dialing(address).dht(false).start().unwrap();
        node.connect(address.clone()).await.unwrap();
        node
    }

    async fn within<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(20), future).await.expect("in time")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_byte_is_counted_both_ways() {
        let (perf, server_node, address) = server(1 << 30).await;
        let client = client(&address).await;
        let peer = server_node.local_peer_id();
        let mut uploaded = 0;
        for (up, down) in
            [(0, 0), (1, 1), (3 * CHUNK as u64 + 5, 0), (0, 2 * CHUNK as u64 + 1), (1 << 20, 1 << 20)]
        {
            let report = within(transfer(&client, peer, up, down, None, false)).await.unwrap();
            assert_eq!((report.upload.bytes, report.download.bytes), (up, down));
            assert_eq!(report.ttfb.is_some(), down > 0);
            uploaded += up;
        }
        assert_eq!(perf.received.load(Ordering::Relaxed), uploaded, "the server read every byte sent");
        assert_eq!(perf.refused.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn more_than_the_cap_is_refused_not_served() {
        let (perf, server_node, address) = server(1000).await;
        let client = client(&address).await;
        let peer = server_node.local_peer_id();

        let asked_too_much = within(transfer(&client, peer, 0, 1001, None, false)).await;
        assert!(asked_too_much.is_err(), "{asked_too_much:?}");
        let uploaded_too_much = within(transfer(&client, peer, 1001, 10, None, false)).await;
        assert!(uploaded_too_much.is_err(), "{uploaded_too_much:?}");
        assert_eq!(perf.refused.load(Ordering::Relaxed), 2);
        assert_eq!(perf.sent.load(Ordering::Relaxed), 0, "nothing was sent back");

        // Up to the cap is served.
        let report = within(transfer(&client, peer, 1000, 1000, None, false)).await.unwrap();
        assert_eq!((report.upload.bytes, report.download.bytes), (1000, 1000));
    }

    fn parse(args: &[&str]) -> Result<PerfArgs, clap::Error> {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["p2p-node", "perf"].iter().chain(args))?;
        match cli.command {
            Some(crate::cli::Command::Perf(args)) => Ok(*args),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn perf_flags_parse() {
        const ADDR: &str =
            "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooWM7N1uQr9o9kbNm4BzyzkR5icTqkWSCzbU2THZyxuRamV";
        let args = parse(&[ADDR]).unwrap();
        assert_eq!((args.upload.0, args.download.0, args.connections, args.json), (0, 0, None, false));
        let args =
            parse(&[ADDR, "--upload", "100MiB", "--download", "1GB", "--duration", "5s", "--json"]).unwrap();
        assert_eq!((args.upload.0, args.download.0), (100 << 20, 1_000_000_000));
        assert_eq!(args.duration.map(|d| d.0), Some(Duration::from_secs(5)));
        assert_eq!(parse(&[ADDR, "--connections", "100"]).unwrap().connections, Some(100));
        assert!(parse(&[ADDR, "--connections", "5", "--upload", "1"]).is_err(), "one mode at a time");
        assert!(parse(&["/ip4/127.0.0.1/udp/4001/quic-v1"]).is_err(), "the peer id is needed");
    }

    #[test]
    fn run_serves_perf_only_when_asked() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["p2p-node", "run"]).unwrap();
        let Some(crate::cli::Command::Run(args)) = cli.command else { panic!() };
        assert!(!args.perf, "off by default, as the spec asks");
        assert_eq!(args.perf_max_bytes.0, DEFAULT_MAX_BYTES);
        let cli = crate::cli::Cli::try_parse_from(["p2p-node", "run", "--perf", "--perf-max-bytes", "1GiB"])
            .unwrap();
        let Some(crate::cli::Command::Run(args)) = cli.command else { panic!() };
        assert!(args.perf);
        assert_eq!(args.perf_max_bytes.0, 1 << 30);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&values[..1], 0.99), Duration::from_millis(1));
    }
}
