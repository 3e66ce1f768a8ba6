//! `p2p-node bench`: load one node with requests of any protocol it mounts
//! (greetings by default, `--protocol fetch` for blocks) and report what it took.
//!
//! The flags live here; the work is `p2p-load`'s: `--connections K` client
//! nodes, each with a fresh identity and one connection to the target
//! ([`p2p_load::connect_clients`]), and `--concurrency C` workers spread
//! round-robin over them ([`p2p_load::run_with`]; with `--rate`, a request sent
//! late behind a slow answer counts from its due time). Prints requests/s, latency quantiles
//! (hdrhistogram) and errors by kind (`remote <code>` for an error the target
//! answered, the `RequestError` kind otherwise) ([`p2p_load::Summary`]); a
//! progress line on stderr while it runs. Exits 1 if no request succeeded.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use p2p_fetch::{Fetch, Hash};
use p2p_load::{ClientOptions, HumanDuration, Identify, LoadConfig, LoadReport, Progress, Summary};
use p2p_protocol::{Greet, GreetRequest, Protocol};
use p2p_transport::GreetVersion;
use p2p_transport::libp2p::Multiaddr;

use crate::output;
use crate::values::parse_peer_addr;

/// `bench --help`, after the flags.
pub(crate) const EXAMPLES: &str = "\
Examples:
  # 64 requests in flight over one connection, for 10 s
  p2p-node bench /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW...

  # 1,000 identities greeting once per second each, as JSON
  p2p-node bench /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW... \\
      --connections 1000 --concurrency 1000 --rate 1000 --duration 30s --json

Only requests sent and answered within the measured time count. With --rate each
request is due at a fixed time and its latency counts from then, even when it
could only be sent later (behind a slow answer). Errors are keyed
`remote <code>` (the node answered with an error) or by kind (timeout, io, ...).
Exits 1 if no request succeeded.";

/// With `--protocol auto`, how long to wait for identify after connecting
/// (a peer without identify, like the raw baseline, never sends it).
const IDENTIFY_WAIT: Duration = Duration::from_secs(2);

/// `p2p-node bench`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchArgs {
    /// The node to load, ending in /p2p/<peer-id>; a bare /p2p/<peer-id> is looked up in
    /// the DHT (give --bootstrap).
    #[arg(value_name = "MULTIADDR")]
    pub(crate) address: Multiaddr,

    /// Join the DHT through this peer (repeatable; <multiaddr>/p2p/<peer-id>), to find a
    /// node given by its peer id alone.
    #[arg(long, value_name = "MULTIADDR", value_parser = parse_peer_addr)]
    pub(crate) bootstrap: Vec<Multiaddr>,

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

    /// Which protocol and name the requests use: `greet` or `fetch` (any protocol
    /// the node mounts), with `:v1` (a stream per request), `:v2` (pipelined) or
    /// `:auto` (pipelined when identify says the node speaks it); a bare
    /// `v1`/`v2`/`auto` is greet's.
    #[arg(long, value_name = "PROTOCOL[:VERSION]", default_value = "auto")]
    pub(crate) protocol: BenchProtocol,

    /// With `--protocol fetch`: the block to fetch, by its SHA-256 (hex). Default:
    /// the empty block, which every p2p-node serves.
    #[arg(long, value_name = "HASH", value_parser = parse_hash)]
    pub(crate) block: Option<Hash>,

    /// How long one request may take.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub(crate) timeout: HumanDuration,

    /// How long connecting all the clients may take.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub(crate) connect_timeout: HumanDuration,

    /// Also measure this process's CPU time (user + system, from /proc) over the
    /// measured window: the server's cost per answered request (Linux).
    #[arg(long, value_name = "PID")]
    pub(crate) server_pid: Option<u32>,

    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,

    /// No progress line on stderr.
    #[arg(long)]
    pub(crate) no_progress: bool,
}

/// `--protocol`: a mounted protocol and which of its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BenchProtocol {
    pub(crate) protocol: Mounted,
    pub(crate) version: BenchVersion,
}

/// The protocols `p2p-node run` mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mounted {
    /// `/p2p-node/greet/1.0.0` and 2.0.0.
    Greet,
    /// `/p2p-fetch/1.0.0` and its pipelined name (crates/p2p-fetch).
    Fetch,
}

/// Which of a protocol's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BenchVersion {
    /// Pipelined when identify says the node speaks it, a stream per request otherwise.
    Auto,
    /// A stream per request (greet 1.0.0).
    V1,
    /// Pipelined on one long-lived stream (greet 2.0.0).
    V2,
}

impl std::str::FromStr for BenchProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, version) = match s.split_once(':') {
            Some((name, version)) => (name, Some(version)),
            None if matches!(s, "auto" | "v1" | "v2") => ("greet", Some(s)),
            None => (s, None),
        };
        let protocol = match name {
            "greet" => Mounted::Greet,
            "fetch" => Mounted::Fetch,
            other => return Err(format!("unknown protocol {other:?} (greet or fetch)")),
        };
        let version = match version.unwrap_or("auto") {
            "auto" => BenchVersion::Auto,
            "v1" => BenchVersion::V1,
            "v2" => BenchVersion::V2,
            other => return Err(format!("unknown version {other:?} (auto, v1 or v2)")),
        };
        Ok(Self { protocol, version })
    }
}

impl BenchProtocol {
    fn version(self) -> GreetVersion {
        match self.version {
            BenchVersion::Auto => GreetVersion::Auto,
            BenchVersion::V1 => GreetVersion::V1,
            BenchVersion::V2 => GreetVersion::V2,
        }
    }

    /// As the summary shows it: greet's as before (`auto`, `v1`, `v2`), others with their name.
    fn name(self) -> &'static str {
        match (self.protocol, self.version) {
            (Mounted::Greet, BenchVersion::Auto) => "auto",
            (Mounted::Greet, BenchVersion::V1) => "v1",
            (Mounted::Greet, BenchVersion::V2) => "v2",
            (Mounted::Fetch, BenchVersion::Auto) => "fetch:auto",
            (Mounted::Fetch, BenchVersion::V1) => "fetch:v1",
            (Mounted::Fetch, BenchVersion::V2) => "fetch:v2",
        }
    }
}

fn parse_hash(s: &str) -> Result<Hash, String> {
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| format!("{s:?} is not hex"))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| format!("{s:?} is not 32 bytes of hex"))?;
    Ok(Hash(bytes))
}

/// `p2p-node bench`: connect, load, report.
pub(crate) async fn bench(args: BenchArgs) -> Result<ExitCode> {
    if p2p_load::target_peer(&args.address).is_none() {
        bail!("{} does not end with /p2p/<peer-id>", args.address);
    }
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

    let options = ClientOptions {
        version: args.protocol.version(),
        request_timeout: args.timeout.0,
        connect_timeout: args.connect_timeout.0,
        // Until identify has spoken, `auto` sends 1.0.0: wait a little, so that
        // the warm-up is not spent on the wrong protocol.
        identify: if args.protocol.version == BenchVersion::Auto {
            Identify::AtMost(IDENTIFY_WAIT)
        } else {
            Identify::No
        },
        message: "bench".into(),
        bootstrap: args.bootstrap.clone(),
    };
    let connecting = Arc::new(AtomicU64::new(0));
    let shown = (progress && args.connections > 1)
        .then(|| Progress::connecting(Arc::clone(&connecting), args.connections));
    let config = LoadConfig {
        concurrency: args.concurrency,
        duration: args.duration.0,
        warmup: args.warmup.0,
        message: "x".repeat(args.payload),
        rate_per_sec: args.rate,
        max_samples: 0,
    };
    let (report, server_cpu, connected, connect_errors) = match args.protocol.protocol {
        Mounted::Greet => {
            let request = GreetRequest::new(config.message.clone());
            load::<Greet>(&args, &options, connecting, shown, &config, request, progress).await
        }
        Mounted::Fetch => {
            let block = args.block.unwrap_or_else(|| Hash::of(b""));
            load::<Fetch>(&args, &options, connecting, shown, &config, block, progress).await
        }
    };

    let Some(report) = report else {
        let reason = connect_errors.keys().next().map_or("no reason given", String::as_str);
        bail!("no connection to {}: {reason}", args.address);
    };
    let summary = Summary {
        target: &args.address,
        protocol: args.protocol.name(),
        config: &config,
        connections: args.connections,
        connected,
        connect_errors: &connect_errors,
        report: &report,
        server_cpu,
    };
    if args.json {
        output::print_line(&summary.json().to_string());
    } else {
        for line in summary.human() {
            output::print_line(&line);
        }
    }
    Ok(if report.ok > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Connects the clients of protocol `P`, loads the target with `request`,
/// shuts the clients down; the report (none if no client connected), how
/// many connected, and why the others did not.
async fn load<P: Protocol>(
    args: &BenchArgs,
    options: &ClientOptions,
    connecting: Arc<AtomicU64>,
    shown: Option<Progress>,
    config: &LoadConfig,
    request: P::Request,
    progress: bool,
) -> (Option<LoadReport>, Option<Duration>, usize, BTreeMap<String, u64>)
where
    P::Request: Clone + Sync,
{
    let clients = p2p_load::connect_clients::<P>(&args.address, args.connections, options, connecting).await;
    if let Some(shown) = shown {
        shown.finish().await;
    }
    let (report, server_cpu) = if clients.services.is_empty() {
        (None, None)
    } else {
        let completed = Arc::new(AtomicU64::new(0));
        let shown = progress.then(|| Progress::load(config, Arc::clone(&completed)));
        // Over the same window as the load's, started with it.
        let cpu = args.server_pid.map(|pid| p2p_load::measure_cpu(pid, config.warmup, config.duration));
        let report = p2p_load::run_with(clients.services.clone(), request, config, completed).await;
        let server_cpu = match cpu {
            Some(cpu) => cpu.await.ok().flatten(),
            None => None,
        };
        if let Some(shown) = shown {
            shown.finish().await;
        }
        (Some(report), server_cpu)
    };
    let (connected, connect_errors) = (clients.services.len(), clients.errors.clone());
    clients.shutdown().await;
    (report, server_cpu, connected, connect_errors)
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
        let auto = BenchProtocol { protocol: Mounted::Greet, version: BenchVersion::Auto };
        assert_eq!((args.rate, args.protocol, args.json), (None, auto, false));

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

    #[test]
    fn any_mounted_protocol_can_be_benched() {
        let fetch = parse(&[ADDR, "--protocol", "fetch:v1"]).protocol;
        assert_eq!((fetch.protocol, fetch.version), (Mounted::Fetch, BenchVersion::V1));
        assert_eq!(parse(&[ADDR, "--protocol", "fetch"]).protocol.version, BenchVersion::Auto);
        assert_eq!(
            parse(&[ADDR, "--protocol", "greet:v2"]).protocol,
            parse(&[ADDR, "--protocol", "v2"]).protocol
        );
        let hash = Hash::of(b"abc");
        assert_eq!(parse(&[ADDR, "--block", &hash.to_string()]).block, Some(hash));
        let cli =
            |args: &[&str]| Cli::try_parse_from(["p2p-node", "bench", ADDR].iter().chain(args)).map(drop);
        assert!(cli(&["--protocol", "gossip"]).is_err());
        assert!(cli(&["--protocol", "fetch:v3"]).is_err());
        assert!(cli(&["--block", "abc"]).is_err());
    }
}
