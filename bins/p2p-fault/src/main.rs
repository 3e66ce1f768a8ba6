//! `p2p-fault`: a flooding or hostile greet client, for `scripts/faults-netns.sh`.
//!
//! ```text
//! p2p-fault id --seed N
//! p2p-fault load <MULTIADDR/p2p/ID> [--rate R] [--duration 10s] [--warmup 1s] [--concurrency C]
//!                [--seed N] [--request-timeout 5s] [--latencies FILE] [--v1] [--json]
//! p2p-fault hostile <QUIC MULTIADDR/p2p/ID> [--tcp <TCP MULTIADDR/p2p/ID>] [--count N]
//!                [--concurrency C] [--seed N] [--probe-interval 150ms] [--answer-timeout 5s]
//!                [--max-time 600s] [--json]
//! p2p-fault liar <MULTIADDR/p2p/ID> --observed <MULTIADDR>... [--identities 16] [--duration 30s] [--json]
//! p2p-fault hold <QUIC MULTIADDR/p2p/ID> [--connections N] [--bind IP]... [--concurrency 64]
//!                [--hold 30s] [--json]
//! p2p-fault silent [--listen MULTIADDR]... [--peer MULTIADDR] [--redial 1s] [--seed N]
//!                [--duration 60s] [--json]
//! p2p-fault hoard <MULTIADDR/p2p/ID> [--connections 32] [--streams 1024] [--reopen 100ms]
//!                [--duration 20s] [--json]
//! ```
//!
//! - `id` prints the peer id `--seed N` gives, so that a script can name a
//!   client before it runs (`p2p-node run --debug-stall-peer`).
//! - `load` ([`load`]) is a real node (mDNS off) that connects to the target
//!   and loads it with `p2p-load`: paced at `--rate`, or closed-loop without it.
//! - `hostile` ([`hostile`]) sends `--count` hostile inputs ([`inputs`]) on raw
//!   greet streams ([`raw`]) and counts how the node answers each, while a
//!   well-behaved peer ([`probe`]) checks that the node still serves.
//! - `liar` ([`liar`]) is a crowd of Sybil observers: many identities on one
//!   address, each answering the target's greetings with a made-up
//!   `observed_addr`.
//! - `hold` ([`hold`]) opens many idle QUIC connections with fresh identities,
//!   from several source addresses, and holds them for a while.
//! - `silent` ([`silent`]) is a peer that takes greet 2.0.0 streams and never
//!   reads or answers them.
//! - `hoard` ([`hoard`]) holds as many greet 1.0.0 streams as the node lets
//!   it, on many connections from one address, each carrying only a length
//!   prefix that declares a full frame.
//!
//! Every run is bounded in count and time and stops by itself. With `--json`
//! the last line on stdout is one flat JSON object (`"key":number`), for scripts.

mod answers;
mod hoard;
mod hold;
mod hostile;
mod inputs;
mod liar;
mod load;
mod probe;
mod silent;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use p2p_load::parse_duration;
use p2p_transport::libp2p::Multiaddr;
use p2p_transport::libp2p::identity::Keypair;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

/// A flooding or hostile greet client, for the fault-injection scripts.
#[derive(Debug, Parser)]
#[command(name = "p2p-fault", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the peer id that `--seed N` gives a client.
    Id {
        /// The seed of the identity.
        #[arg(long, value_name = "N", default_value_t = 0)]
        seed: u64,
    },
    /// Load a node with well-formed greetings, paced or closed-loop.
    Load(LoadArgs),
    /// Send hostile inputs on greet streams while a well-behaved peer probes the node.
    Hostile(HostileArgs),
    /// Sybil observers: many identities on one address answer greetings with a made-up address.
    Liar(LiarArgs),
    /// Open many idle QUIC connections with fresh identities and hold them.
    Hold(HoldArgs),
    /// A peer that accepts greet 2.0.0 streams and never reads or answers them.
    Silent(SilentArgs),
    /// Hold many greet 1.0.0 streams, each with only a length prefix declaring a full frame.
    Hoard(HoardArgs),
}

/// `p2p-fault load`.
#[derive(Debug, Args)]
struct LoadArgs {
    /// The node to load, ending in /p2p/<peer-id>.
    #[arg(value_name = "MULTIADDR")]
    target: Multiaddr,
    /// Requests per second in all; default: as fast as the answers come back.
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// How long to measure.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// How long to load before measuring.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Requests in flight at once (workers).
    #[arg(long, value_name = "C", default_value_t = 8)]
    concurrency: usize,
    /// A fixed identity (see `id`); default: a fresh one.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// How long one request may take.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// Write `<latency µs> ok|error` of each request of the measured window to FILE, one a line.
    #[arg(long, value_name = "FILE")]
    latencies: Option<PathBuf>,
    /// Greet 1.0.0 only (default: 2.0.0 when the node speaks it).
    #[arg(long)]
    v1: bool,
    /// End with one flat JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// `p2p-fault hostile`.
#[derive(Debug, Args)]
struct HostileArgs {
    /// The node's QUIC address, ending in /p2p/<peer-id>.
    #[arg(value_name = "MULTIADDR")]
    target: Multiaddr,
    /// The same node's TCP address: half the hostile inputs go over TCP/Yamux.
    #[arg(long, value_name = "MULTIADDR")]
    tcp: Option<Multiaddr>,
    /// How many hostile inputs to send.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    count: u64,
    /// Inputs in flight at once.
    #[arg(long, value_name = "C", default_value_t = 32)]
    concurrency: usize,
    /// The seed the inputs are made from.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// How often the well-behaved peer sends a request.
    #[arg(long, value_name = "DURATION", default_value = "150ms", value_parser = parse_duration)]
    probe_interval: Duration,
    /// How long to wait for the node's answer to one input or probe.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    answer_timeout: Duration,
    /// Stop sending inputs after this long, however many were sent.
    #[arg(long, value_name = "DURATION", default_value = "600s", value_parser = parse_duration)]
    max_time: Duration,
    /// End with one flat JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// `p2p-fault liar`.
#[derive(Debug, Args)]
struct LiarArgs {
    /// The node to lie to, ending in /p2p/<peer-id>.
    #[arg(value_name = "MULTIADDR")]
    target: Multiaddr,
    /// The made-up address to answer with (repeatable: one per transport, the
    /// one matching the connection's transport is used).
    #[arg(long, value_name = "MULTIADDR", required = true)]
    observed: Vec<Multiaddr>,
    /// How many identities (each a node with one connection to the target).
    #[arg(long, value_name = "N", default_value_t = 16)]
    identities: usize,
    /// How long to stay connected and keep lying, once connected (SIGTERM ends it sooner).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// End with one flat JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// `p2p-fault hold`.
#[derive(Debug, Args)]
struct HoldArgs {
    /// The node's QUIC address, ending in /p2p/<peer-id>.
    #[arg(value_name = "MULTIADDR")]
    target: Multiaddr,
    /// How many connections to open, each from a fresh identity.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    connections: u64,
    /// A source address to dial from (repeatable; the connections take them in turn).
    /// Default: whatever the OS picks.
    #[arg(long, value_name = "IP")]
    bind: Vec<IpAddr>,
    /// Dials in flight at once.
    #[arg(long, value_name = "C", default_value_t = 64)]
    concurrency: usize,
    /// How long to hold the connections once every dial has ended.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    hold: Duration,
    /// End with one flat JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// `p2p-fault silent`.
#[derive(Debug, Args)]
struct SilentArgs {
    /// Listen on this address (repeatable).
    #[arg(long, value_name = "MULTIADDR", default_values_t = [silent::default_listen()])]
    listen: Vec<Multiaddr>,
    /// Dial this peer at start.
    #[arg(long, value_name = "MULTIADDR")]
    peer: Option<Multiaddr>,
    /// Dial `--peer` again this long after each disconnection or failed dial.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    redial: Option<Duration>,
    /// A fixed identity (see `id`); default: a fresh one.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Stop after this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// End with one flat JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// `p2p-fault hoard`.
#[derive(Debug, Args)]
struct HoardArgs {
    /// The node, ending in /p2p/<peer-id> (QUIC or TCP).
    #[arg(value_name = "MULTIADDR")]
    target: Multiaddr,
    /// Connections, each from a fresh identity (the node's per-IP cap is 32).
    #[arg(long, value_name = "N", default_value_t = 32)]
    connections: u64,
    /// At most this many streams held on each connection (each ramps up until the node refuses one).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    streams: usize,
    /// How long to wait before opening again a stream the node ended (or refused).
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    reopen: Duration,
    /// How long to hoard.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// End with one flat JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
        .and_then(|runtime| runtime.block_on(dispatch(cli.command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("p2p-fault: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Id { seed } => {
            println!("{}", keypair(Some(seed)).public().to_peer_id());
            Ok(())
        }
        Command::Load(args) => load::run(args).await,
        Command::Hostile(args) => hostile::run(args).await,
        Command::Liar(args) => liar::run(args).await,
        Command::Hold(args) => hold::run(args).await,
        Command::Silent(args) => silent::run(args).await,
        Command::Hoard(args) => hoard::run(args).await,
    }
}

/// A fixed identity for `--seed N`, a fresh one otherwise.
fn keypair(seed: Option<u64>) -> Keypair {
    match seed {
        Some(seed) => {
            let mut secret = [0u8; 32];
            rand::Rng::fill_bytes(&mut Xoshiro256PlusPlus::seed_from_u64(seed), &mut secret);
            Keypair::ed25519_from_bytes(secret).expect("32 bytes are an ed25519 secret")
        }
        None => Keypair::generate_ed25519(),
    }
}

/// `key` made safe as a JSON key for the scripts' matcher: no space, quote or backslash.
fn json_key(key: &str) -> String {
    key.replace([' ', '"', '\\'], "_")
}

/// `value` rounded to `decimals` places, for JSON.
fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_seed_names_the_same_peer_every_time() {
        let id = |seed| keypair(Some(seed)).public().to_peer_id();
        assert_eq!(id(7), id(7));
        assert_ne!(id(7), id(8));
        assert_ne!(keypair(None).public().to_peer_id(), keypair(None).public().to_peer_id());
    }

    #[test]
    fn the_scripts_flags_parse() {
        let addr =
            "/ip4/10.78.0.11/udp/4101/quic-v1/p2p/12D3KooWM7N1uQr9o9kbNm4BzyzkR5icTqkWSCzbU2THZyxuRamV";
        let cli = Cli::try_parse_from([
            "p2p-fault",
            "load",
            addr,
            "--seed",
            "7",
            "--rate",
            "4",
            "--concurrency",
            "8",
            "--warmup",
            "0s",
            "--duration",
            "9s",
            "--request-timeout",
            "10s",
            "--latencies",
            "w.lat",
            "--json",
        ])
        .expect("load flags");
        let Command::Load(args) = cli.command else { panic!("not load") };
        assert_eq!((args.seed, args.rate, args.concurrency), (Some(7), Some(4.0), 8));
        assert_eq!((args.warmup, args.duration), (Duration::ZERO, Duration::from_secs(9)));
        assert!(args.json && !args.v1);

        let tcp = addr.replace("udp/4101/quic-v1", "tcp/4101");
        let cli = Cli::try_parse_from([
            "p2p-fault",
            "hostile",
            addr,
            "--tcp",
            &tcp,
            "--count",
            "10000",
            "--max-time",
            "570s",
            "--json",
        ])
        .expect("hostile flags");
        let Command::Hostile(args) = cli.command else { panic!("not hostile") };
        assert_eq!((args.count, args.concurrency, args.seed), (10_000, 32, 1));
        assert_eq!(
            (args.max_time, args.probe_interval),
            (Duration::from_secs(570), Duration::from_millis(150))
        );
    }

    #[test]
    fn json_keys_and_numbers_suit_the_scripts() {
        assert_eq!(json_key("kind.remote 429.n"), "kind.remote_429.n");
        assert_eq!(round(1.23456, 3), 1.235);
    }
}
