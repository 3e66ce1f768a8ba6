//! `p2p-node`: run a peer-to-peer node that greets its peers, greet one node
//! once, or print an identity.
//!
//! This binary only wires the library crates together: it parses the command
//! line ([`cli`]), sets up logging on stderr, loads the identity
//! ([`keyfile`]), builds the `p2p-service` stack and the `p2p-transport` node,
//! runs a `PeriodicGreeter`, and prints events on stdout ([`output`]) until
//! Ctrl-C or SIGTERM, when it shuts the node down gracefully and exits 0.
//!
//! ```text
//! p2p-node                                  # run a node (mDNS on, QUIC and TCP on all interfaces)
//! p2p-node greet /ip4/…/udp/4001/quic-v1/p2p/12D3KooW…
//! p2p-node id --key-file ./node.key
//! p2p-node bench /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW… --concurrency 64
//! ```

mod bench;
mod cli;
#[cfg(any(test, feature = "debug-hooks"))]
mod debug;
mod keyfile;
mod metrics;
mod output;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use p2p_protocol::GreetRequest;
use p2p_service::{Limits, MakeGreeter, stack};
use p2p_transport::libp2p::Multiaddr;
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::{NodeBuilder, NodeEvent, NodeMetrics, PeriodicGreeter, Registry};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;
use tower::ServiceExt;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, GreetArgs, IdArgs, LogFormat, RunArgs};
use crate::metrics::{MetricsServer, ServerLimits};
use crate::output::one_line;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        None | Some(Command::Run(_)) => "info",
        Some(Command::Greet(_) | Command::Id(_) | Command::Bench(_)) => "warn",
    };
    init_logging(cli.log_format, default_level);
    let result = match cli.command {
        None => block_on(run(cli.run)),
        Some(Command::Run(args)) => block_on(run(*args)),
        Some(Command::Greet(args)) => block_on(greet(args)),
        Some(Command::Id(args)) => id(args),
        Some(Command::Bench(args)) => block_on(bench::bench(*args)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // An error can quote a peer (its error message, its addresses).
            eprintln!("error: {}", output::escape_controls(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}

fn block_on(work: impl Future<Output = Result<ExitCode>>) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(work)
}

/// Logs go to stderr; stdout is for events. The level comes from `RUST_LOG`.
fn init_logging(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// `p2p-node run`: until Ctrl-C or SIGTERM.
async fn run(args: RunArgs) -> Result<ExitCode> {
    if args.interval.0.is_zero() {
        bail!("--interval must be longer than 0s");
    }
    // Installed first, so that a signal during start-up is not lost.
    let mut signals = Signals::new()?;
    // Held until the end of this function: the lock keeps other nodes off this identity.
    let key = keyfile::load_locked(args.key_file.as_deref())?;
    let make_handler = MakeGreeter::new(args.message.clone());
    #[cfg(feature = "debug-hooks")]
    let make_handler = debug::MakeStalling::new(make_handler, args.debug_stall_peer);
    let make_service = stack(make_handler, args.service.limits());
    let mut builder = NodeBuilder::with_config(args.node_config()).keypair(key.keypair.clone());
    let mut metrics = None;
    if let Some(addr) = args.metrics {
        let mut registry = Registry::default();
        builder = builder.metrics(NodeMetrics::new(&mut registry));
        let server = MetricsServer::start(addr, registry, ServerLimits::default()).await?;
        info!(addr = %server.local_addr(), "serving Prometheus metrics at /metrics");
        metrics = Some(server);
    }
    let (node, mut events) = builder.build(make_service).context("cannot start the node")?;
    let local = node.local_peer_id();
    info!(peer = %local, key_file = %key.path.display(), "node started");

    // Operator-given addresses are confirmed from the start; the node reports no event for them.
    for address in node.external_addrs() {
        output::print_line(&output::external(&address));
    }
    for peer in &args.peer {
        if let Err(err) = node.dial(peer.clone()).await {
            warn!(%peer, %err, "cannot dial");
        }
    }
    let mut outcomes = PeriodicGreeter::new(&node, args.interval.0, args.message.clone()).spawn();

    let signal = loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    match &event {
                        NodeEvent::GreetCapable { peer_id } => info!(peer = %peer_id, "peer speaks greet"),
                        NodeEvent::ListenAddrExpired { address } => info!(%address, "no longer listening"),
                        NodeEvent::DialFailed { peer_id, error } => {
                            info!(peer = ?peer_id, error = %one_line(error), "dial failed");
                        }
                        _ => {}
                    }
                    for line in output::event_lines(&event, local) {
                        output::print_line(&line);
                    }
                }
                None => bail!("the node stopped unexpectedly"),
            },
            Some(outcome) = outcomes.recv() => output::print_line(&output::outcome_line(&outcome)),
            signal = signals.next() => break signal,
        }
    };

    info!(signal, "shutting down");
    let stop_metrics = async {
        if let Some(server) = metrics {
            server.stop().await;
        }
    };
    tokio::select! {
        ((), ()) = async { tokio::join!(node.shutdown(), stop_metrics) } => {}
        signal = signals.next() => {
            warn!(signal, "second signal: exiting without waiting for the shutdown to finish");
            return Ok(ExitCode::from(130));
        }
    }
    drop(key);
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C and SIGTERM.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        let interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        Ok(Self { interrupt, terminate })
    }

    /// The name of the next signal received.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// `p2p-node greet`: one request, with an ephemeral identity and no mDNS.
async fn greet(args: GreetArgs) -> Result<ExitCode> {
    let Some(Protocol::P2p(peer)) = args.address.iter().last() else {
        bail!("{} does not end with /p2p/<peer-id>", args.address);
    };
    let timeout = args.timeout.0;
    let (node, mut events) = NodeBuilder::new()
        .mdns(false)
        .listen_on(dial_socket_for(&args.address))
        .request_timeout(timeout)
        .build(stack(MakeGreeter::new(args.message.clone()), Limits::default()))
        .context("cannot start the node")?;

    let deadline = Instant::now() + timeout;
    let connected = tokio::time::timeout_at(deadline, async {
        node.dial(args.address.clone()).await?;
        // `dial` resolves once the dial has started: wait for the connection itself.
        while let Some(event) = events.recv().await {
            match event {
                NodeEvent::Connected { peer_id, .. } if peer_id == peer => return Ok(()),
                NodeEvent::DialFailed { peer_id, error } if peer_id.is_none_or(|p| p == peer) => {
                    return Err(anyhow!("cannot dial {}: {}", args.address, one_line(&error)));
                }
                _ => {}
            }
        }
        Err(anyhow!("the node stopped while dialing {}", args.address))
    })
    .await;
    let answer = match connected {
        Ok(Ok(())) => {
            let start = Instant::now();
            let request = (peer, GreetRequest::new(args.message));
            match tokio::time::timeout_at(deadline, node.client().oneshot(request)).await {
                Ok(result) => Ok((result, start.elapsed())),
                Err(_) => Err(anyhow!("{peer} did not answer within {}", args.timeout)),
            }
        }
        Ok(Err(err)) => Err(err),
        Err(_) => Err(anyhow!("no connection to {} within {}", args.address, args.timeout)),
    };
    node.shutdown().await;

    let (result, rtt) = answer?;
    match result {
        Ok(response) => {
            output::print_line(&output::greeted_line(peer, rtt, &response));
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => bail!("greeting {peer} failed: {}", output::failure_reason(&err)),
    }
}

/// The address a one-shot greeter listens on so that it can dial `target`:
/// QUIC dials from a listening socket of the same family, and a loopback
/// socket cannot reach other hosts.
fn dial_socket_for(target: &Multiaddr) -> Multiaddr {
    let ip = match target.iter().next() {
        Some(Protocol::Ip4(ip)) if ip.is_loopback() => "/ip4/127.0.0.1",
        Some(Protocol::Ip6(ip)) if ip.is_loopback() => "/ip6/::1",
        Some(Protocol::Ip6(_) | Protocol::Dns6(_)) => "/ip6/::",
        _ => "/ip4/0.0.0.0",
    };
    format!("{ip}/udp/0/quic-v1").parse().expect("valid multiaddr")
}

/// `p2p-node id`.
fn id(args: IdArgs) -> Result<ExitCode> {
    let keypair = keyfile::load(args.key_file.as_deref())?;
    output::print_line(&keypair.public().to_peer_id().to_string());
    Ok(ExitCode::SUCCESS)
}
