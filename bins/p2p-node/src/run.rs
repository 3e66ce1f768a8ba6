//! `p2p-node run`: a node that greets its peers and prints what happens, until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use p2p_fetch::{BlockStore, Fetch, MakeBlocks};
use p2p_protocol::Greet;
use p2p_service::{MakeGreeter, stack};
use p2p_transport::{NodeBuilder, NodeEvent, NodeMetrics, Path, Registry};
use tracing::{info, warn};

use crate::cli::RunArgs;
use crate::keyfile;
use crate::metrics::{MetricsServer, ServerLimits};
use crate::output;
use crate::periodic::PeriodicGreeter;
use crate::signals::Signals;

/// Runs the node; exits 0 after a graceful shutdown, 130 on a second signal during it.
pub(crate) async fn run(args: RunArgs) -> Result<ExitCode> {
    args.check()?;
    // Installed first, so that a signal during start-up is not lost.
    let mut signals = Signals::new()?;
    // Held until the end of this function: the lock keeps other nodes off this identity.
    let key = keyfile::load_locked(args.key_file.as_deref())?;
    let make_handler = MakeGreeter::new(args.message.clone());
    #[cfg(feature = "debug-hooks")]
    let make_handler = crate::debug::MakeStalling::new(make_handler, args.debug_stall_peer.clone());
    let make_service = stack(make_handler, args.service.limits());
    // Block fetch beside greet, with a stack (and so limits) of its own.
    let blocks = BlockStore::default();
    blocks.insert(Vec::new()).expect("the empty block fits");
    for path in &args.block {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let hash = blocks.insert(bytes).with_context(|| format!("cannot serve {}", path.display()))?;
        info!(%hash, path = %path.display(), "serving a block");
    }
    let make_fetch = stack(MakeBlocks::new(blocks), args.service.limits());
    #[cfg_attr(not(feature = "webrtc"), allow(unused_mut))]
    let mut config = args.node_config();
    #[cfg(feature = "webrtc")]
    {
        config.webrtc_certificate = Some(crate::webrtc_cert::load_or_create(&key.path)?);
    }
    let mut builder =
        NodeBuilder::with_config(config).keypair(key.keypair.clone()).serve::<Fetch, _, _>(make_fetch);
    if args.perf {
        info!(max_bytes = args.perf_max_bytes.0, "serving {}", crate::perf::PROTOCOL);
        builder = crate::perf::Server::new(args.perf_max_bytes.0).mount(builder);
    }
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

    if args.relay_server && args.external_addr.is_empty() {
        warn!(
            "--relay-server without --external-addr: reservations are refused until two independent \
             peers agree on this node's address"
        );
    }
    // Operator-given addresses are confirmed from the start; the node reports no event for them.
    let stamp = args.timestamps;
    for address in node.external_addrs() {
        output::print_line(&output::stamped(&output::external(&address), stamp));
    }
    for peer in &args.peer {
        if let Err(err) = node.dial(peer.clone()).await {
            warn!(%peer, %err, "cannot dial");
        }
    }
    #[cfg(feature = "debug-hooks")]
    crate::debug::dial_on_usr1(&node, args.debug_dial_on_usr1.clone())?;
    let mut outcomes =
        PeriodicGreeter::new(node.discover::<Greet>(), args.interval.0, args.message.clone()).spawn();

    let signal = loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    log(&event);
                    for line in output::event_lines(&event, local) {
                        output::print_line(&output::stamped(&line, stamp));
                    }
                }
                None => bail!("the node stopped unexpectedly"),
            },
            Some(outcome) = outcomes.recv() => {
                // How we are connected as the answer arrives; a peer gone since counts as direct.
                let path = node.path(&outcome.peer_id).unwrap_or(Path::Direct);
                output::print_line(&output::stamped(&output::outcome_line(&outcome, path), stamp));
            }
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

/// Logs (on stderr) the events that print no line, or more than their line.
fn log(event: &NodeEvent) {
    match event {
        NodeEvent::Capable { peer_id, protocol } => info!(peer = %peer_id, protocol, "peer speaks it"),
        NodeEvent::ListenAddrExpired { address } => info!(%address, "no longer listening"),
        // The transport flattens the error to one line already.
        NodeEvent::DialFailed { peer_id, error } => info!(peer = ?peer_id, %error, "dial failed"),
        _ => {}
    }
}
