//! `p2p-node`: run a peer-to-peer node that greets its peers, greet one node
//! once, print an identity, or load a node with greetings.
//!
//! This file is wiring only: it parses the command line ([`cli`], which
//! composes each subcommand's arguments; [`values`] parses what more than one takes), sets up
//! logging on stderr and hands the subcommand to its module: [`run`] (the
//! node, until Ctrl-C or SIGTERM, [`signals`]), [`greet`], [`id`],
//! [`bench`] and [`perf`] (libp2p's perf protocol, both sides). Identities live in key files ([`keyfile`]), event lines go to
//! stdout ([`output`], which escapes whatever a peer said), and
//! `run --metrics` serves Prometheus metrics over axum ([`metrics`]).
//!
//! ```text
//! p2p-node                                  # run a node (mDNS on, QUIC and TCP on all interfaces)
//! p2p-node greet /ip4/…/udp/4001/quic-v1/p2p/12D3KooW…
//! p2p-node id --key-file ./node.key
//! p2p-node bench /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW… --concurrency 64
//! p2p-node perf /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW… --download 1GiB
//! ```

mod bench;
mod cli;
#[cfg(any(test, feature = "debug-hooks"))]
mod debug;
mod greet;
mod id;
mod keyfile;
mod metrics;
mod output;
mod perf;
mod periodic;
mod run;
mod signals;
mod values;
#[cfg(feature = "webrtc")]
mod webrtc_cert;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        None | Some(Command::Run(_)) => "info",
        Some(Command::Greet(_) | Command::Id(_) | Command::Bench(_) | Command::Perf(_)) => "warn",
    };
    init_logging(cli.log_format, default_level);
    if !cli.no_idle_timer {
        // Before any swarm arms one of libp2p's timers.
        match p2p_transport::idle_timer_thread() {
            Ok(done) => tracing::debug!("{done}"),
            Err(err) => tracing::warn!(%err, "libp2p's timer thread keeps its normal priority"),
        }
    }
    let result = match cli.command {
        None => block_on(run::run(cli.run)),
        Some(Command::Run(args)) => block_on(run::run(*args)),
        Some(Command::Greet(args)) => block_on(greet::greet(args)),
        Some(Command::Id(args)) => id::id(args),
        Some(Command::Bench(args)) => block_on(bench::bench(*args)),
        Some(Command::Perf(args)) => block_on(perf::perf(*args)),
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
