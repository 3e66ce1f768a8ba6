//! `p2p-node bench`: load one node with greetings and report what it took.
//!
//! The flags live here; the work is `p2p-load`'s: `--connections K` client
//! nodes, each with a fresh identity and one connection to the target
//! ([`p2p_load::connect_clients`]), and `--concurrency C` workers spread
//! round-robin over them ([`p2p_load::run`]; with `--rate`, a request sent
//! late behind a slow answer counts from its due time). Prints requests/s, latency quantiles
//! (hdrhistogram) and errors by kind (`remote <code>` for an error the target
//! answered, the `RequestError` kind otherwise) ([`p2p_load::Summary`]); a
//! progress line on stderr while it runs. Exits 1 if no request succeeded.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use p2p_load::{ClientOptions, HumanDuration, Identify, LoadConfig, Progress, Summary};
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
        identify: if args.protocol == BenchProtocol::Auto {
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
    let clients = p2p_load::connect_clients(&args.address, args.connections, &options, connecting).await;
    if let Some(shown) = shown {
        shown.finish().await;
    }

    let config = LoadConfig {
        concurrency: args.concurrency,
        duration: args.duration.0,
        warmup: args.warmup.0,
        message: "x".repeat(args.payload),
        rate_per_sec: args.rate,
        max_samples: 0,
    };
    let report = if clients.services.is_empty() {
        None
    } else {
        let completed = Arc::new(AtomicU64::new(0));
        let shown = progress.then(|| Progress::load(&config, Arc::clone(&completed)));
        let report = p2p_load::run(clients.services.clone(), &config, completed).await;
        if let Some(shown) = shown {
            shown.finish().await;
        }
        Some(report)
    };
    let (connected, connect_errors) = (clients.services.len(), clients.errors.clone());
    clients.shutdown().await;

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
}
