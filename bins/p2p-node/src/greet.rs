//! `p2p-node greet`: one greeting to one node, from an ephemeral identity with mDNS off.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use p2p_protocol::{Greet, GreetRequest, GreetResponse};
use p2p_service::{Limits, MakeGreeter, stack};
use p2p_transport::libp2p::PeerId;
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::{Node, NodeBuilder, Path, RequestError};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::cli::GreetArgs;
use crate::output;

/// Connects, sends one greeting, prints `GREETED ...`; connecting and the
/// request share the `--timeout`.
pub(crate) async fn greet(args: GreetArgs) -> Result<ExitCode> {
    let Some(Protocol::P2p(peer)) = args.address.iter().last() else {
        bail!("{} does not end with /p2p/<peer-id>", args.address);
    };
    // A bare /p2p/<peer-id> is found through the bootstrap peers: dial from their family.
    let dialed = match args.bootstrap.first() {
        Some(bootstrap) if args.address.iter().nth(1).is_none() => bootstrap,
        _ => &args.address,
    };
    let mut builder = NodeBuilder::for_dialing(dialed).request_timeout(args.timeout.0);
    for peer in &args.bootstrap {
        builder = builder.bootstrap(peer.clone());
    }
    // The events are not needed, but the receiver lives as long as the node.
    let (node, _events) = builder
        .build(stack(MakeGreeter::new(args.message.clone()), Limits::default()))
        .context("cannot start the node")?;
    let answer = exchange(&node, &args, peer, Instant::now() + args.timeout.0).await;
    let path = node.path(&peer).unwrap_or(Path::Direct);
    node.shutdown().await;
    let (response, rtt) = answer?;
    output::print_line(&output::greeted_line(peer, rtt, path, &response));
    Ok(ExitCode::SUCCESS)
}

/// Connects to `args.address`, then greets `peer`, both by `deadline`.
async fn exchange(
    node: &Node,
    args: &GreetArgs,
    peer: PeerId,
    deadline: Instant,
) -> Result<(GreetResponse, Duration)> {
    match tokio::time::timeout_at(deadline, node.connect(args.address.clone())).await {
        Ok(Ok(_)) => {}
        Ok(Err(RequestError::Unreachable(reason))) => bail!("cannot dial {}: {reason}", args.address),
        Ok(Err(err)) => bail!("cannot dial {}: {err}", args.address),
        Err(_) => bail!("no connection to {} within {}", args.address, args.timeout),
    }
    let start = Instant::now();
    let request = (peer, GreetRequest::new(args.message.clone()));
    match tokio::time::timeout_at(deadline, node.client::<Greet>().oneshot(request)).await {
        Ok(Ok(response)) => Ok((response, start.elapsed())),
        Ok(Err(err)) => bail!("greeting {peer} failed: {}", output::failure_reason(&err)),
        Err(_) => bail!("{peer} did not answer within {}", args.timeout),
    }
}
