//! `p2p-fault liar`: Sybil observers. `--identities` real nodes (mDNS off) in
//! this one process, so on one IP address, each connected to the target and
//! answering every greeting it gets with a made-up `observed_addr`: "that is
//! where I see you". The target must not take their word for it: identities
//! cost nothing, addresses do.
//!
//! The answer names the address of `--observed` whose transport matches the
//! connection the greeting came on (QUIC or TCP), the first one otherwise.
//! Identify, which the node runs as it is, reports the connection's real
//! address: the liars lie in greet answers only.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use p2p_protocol::{GreetRequest, GreetResponse, GreetResult};
use p2p_service::PeerContext;
use p2p_transport::libp2p::Multiaddr;
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::{Node, NodeBuilder, NodeEvent};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::service_fn;

use crate::{LiarArgs, round};

/// How long connecting one identity may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// What the liars did, shared by their handlers and event drains.
#[derive(Debug, Default)]
struct Tally {
    /// Greetings answered with a made-up address.
    lies: AtomicU64,
    /// Connections to the target that closed.
    disconnected: AtomicU64,
}

/// The JSON line of `liar --json`.
#[derive(Serialize)]
struct LiarJson {
    identities: usize,
    connected: usize,
    connect_failed: usize,
    lies: u64,
    disconnected: u64,
    held_s: f64,
}

pub(crate) async fn run(args: LiarArgs) -> Result<()> {
    if p2p_load::target_peer(&args.target).is_none() {
        bail!("{} does not end with /p2p/<peer-id>", args.target);
    }
    if args.observed.is_empty() {
        bail!("give at least one --observed address");
    }
    let tally = Arc::new(Tally::default());
    let observed = Arc::new(args.observed.clone());
    let mut connecting = JoinSet::new();
    for _ in 0..args.identities {
        let (target, observed, tally) = (args.target.clone(), Arc::clone(&observed), Arc::clone(&tally));
        connecting.spawn(async move { liar(target, observed, tally).await });
    }
    let mut nodes = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = connecting.join_next().await {
        match joined.context("a liar task failed")? {
            Ok(node) => nodes.push(node),
            Err(err) => failures.push(format!("{err:#}")),
        }
    }
    for failure in failures.iter().take(3) {
        eprintln!("p2p-fault: a liar did not connect: {failure}");
    }
    // The script starts its clock here.
    println!(
        "LIARS_READY {} of {} identities connected, answering with observed_addr {}",
        nodes.len(),
        args.identities,
        args.observed.iter().map(ToString::to_string).collect::<Vec<_>>().join(" or ")
    );
    let started = Instant::now();
    // SIGTERM ends it early, report and all (the script stops the liars when it is done).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    tokio::select! {
        () = tokio::time::sleep(args.duration) => {}
        _ = term.recv() => {}
    }
    let held = started.elapsed();
    p2p_load::connect::shutdown_all(nodes.clone()).await;

    let result = LiarJson {
        identities: args.identities,
        connected: nodes.len(),
        connect_failed: failures.len(),
        lies: tally.lies.load(Ordering::Relaxed),
        disconnected: tally.disconnected.load(Ordering::Relaxed),
        held_s: round(held.as_secs_f64(), 3),
    };
    println!(
        "liar: {} identities on one address, {} connected; {} greetings answered with a made-up address in {:.1} s; {} disconnected",
        result.identities, result.connected, result.lies, result.held_s, result.disconnected
    );
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}

/// One liar: a fresh identity connected to `target`.
async fn liar(target: Multiaddr, observed: Arc<Vec<Multiaddr>>, tally: Arc<Tally>) -> Result<Node> {
    let lies = Arc::clone(&tally);
    let make = service_fn(move |ctx: PeerContext| {
        let answer = lie_for(&observed, &ctx.remote_addr).clone();
        let tally = Arc::clone(&lies);
        let handler = service_fn(move |request: GreetRequest| -> Ready<Result<GreetResult, Infallible>> {
            tally.lies.fetch_add(1, Ordering::Relaxed);
            ready(Ok(Ok(GreetResponse {
                message: format!("liar (you said: {})", request.message),
                observed_addr: answer.clone(),
            })))
        });
        ready(Ok::<_, Infallible>(handler))
    });
    let (node, mut events) = NodeBuilder::for_dialing(&target).build(make).context("cannot start a liar")?;
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let NodeEvent::Disconnected { .. } = event {
                tally.disconnected.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    match tokio::time::timeout(CONNECT_TIMEOUT, node.connect(target.clone())).await {
        Ok(Ok(_)) => Ok(node),
        Ok(Err(err)) => {
            node.shutdown().await;
            Err(err).with_context(|| format!("cannot connect to {target}"))
        }
        Err(_) => {
            node.shutdown().await;
            bail!("no connection to {target} within {CONNECT_TIMEOUT:?}")
        }
    }
}

/// The made-up address for a greeting that came on a connection to `remote`:
/// the one of the same transport, else the first.
fn lie_for<'a>(observed: &'a [Multiaddr], remote: &Multiaddr) -> &'a Multiaddr {
    let transport = |addr: &Multiaddr| addr.iter().any(|p| matches!(p, Protocol::Tcp(_)));
    observed.iter().find(|a| transport(a) == transport(remote)).unwrap_or(&observed[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lie_matches_the_transport_of_the_connection() {
        let quic: Multiaddr = "/ip4/198.51.100.7/udp/4101/quic-v1".parse().unwrap();
        let tcp: Multiaddr = "/ip4/198.51.100.7/tcp/4101".parse().unwrap();
        let both = [quic.clone(), tcp.clone()];
        let over_tcp: Multiaddr = "/ip4/10.78.0.11/tcp/4101".parse().unwrap();
        let over_quic: Multiaddr = "/ip4/10.78.0.11/udp/4101/quic-v1".parse().unwrap();
        assert_eq!(lie_for(&both, &over_tcp), &tcp);
        assert_eq!(lie_for(&both, &over_quic), &quic);
        assert_eq!(lie_for(std::slice::from_ref(&quic), &over_tcp), &quic, "the first when none matches");
    }
}
