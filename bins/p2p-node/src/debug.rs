//! Debugging aids for fault-injection scripts, behind hidden flags of `p2p-node run`
//! that exist only in a binary built with `--features debug-hooks` (the module is
//! also compiled for tests, so that `cargo test --workspace` runs its tests).
//!
//! `--debug-stall-peer <PEER_ID>` wraps the node's `MakeService<PeerContext>`
//! in [`MakeStalling`]: that one peer gets a handler that never answers, so
//! the stack's handler timeout answers its requests with 408 while every
//! other peer is served as usual (`scripts/faults-netns.sh`, scenario 3).
//!
//! `--debug-dial-on-usr1 <MULTIADDR>` ([`dial_on_usr1`]) dials these addresses
//! each time the process gets SIGUSR1, so that a script can have the node dial
//! out at the moment it chooses: while a crowd of inbound connections holds
//! the node's inbound budget (scenario 8), a dial *from* the node shows that
//! the crowd leaves it room for its own.

use std::future::{Future, Pending, pending};
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::Context as _;
use p2p_protocol::{GreetRequest, GreetResponse};
use p2p_service::{BoxError, PeerContext};
use p2p_transport::Node;
use p2p_transport::libp2p::{Multiaddr, PeerId};
use tokio::signal::unix::{SignalKind, signal};
use tower::Service;
use tower::util::Either;
use tracing::{info, warn};

/// Dials each of `addresses` every time the process gets SIGUSR1, until the
/// node shuts down. Nothing to do (and SIGUSR1 keeps its default) without addresses.
pub(crate) fn dial_on_usr1(node: &Node, addresses: Vec<Multiaddr>) -> anyhow::Result<()> {
    if addresses.is_empty() {
        return Ok(());
    }
    let mut usr1 = signal(SignalKind::user_defined1()).context("cannot handle SIGUSR1")?;
    let node = node.clone();
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            for address in &addresses {
                info!(%address, "--debug-dial-on-usr1: SIGUSR1, dialing");
                if let Err(err) = node.dial(address.clone()).await {
                    warn!(%address, %err, "--debug-dial-on-usr1: cannot dial");
                    return; // the node has shut down
                }
            }
        }
    });
    Ok(())
}

/// A `MakeService<PeerContext>` that makes `inner`'s handler for every peer
/// but those `stalled`, which get a [`Stalled`] handler instead.
#[derive(Debug, Clone)]
pub(crate) struct MakeStalling<M> {
    inner: M,
    stalled: Vec<PeerId>,
}

impl<M> MakeStalling<M> {
    /// `inner`, except for `stalled` (none: `inner` for everyone).
    pub(crate) fn new(inner: M, stalled: Vec<PeerId>) -> Self {
        Self { inner, stalled }
    }
}

impl<M> Service<PeerContext> for MakeStalling<M>
where
    M: Service<PeerContext>,
    M::Response: Send + 'static,
    M::Error: Send + 'static,
    M::Future: Send + 'static,
{
    type Response = Either<M::Response, Stalled>;
    type Error = M::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, M::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), M::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, ctx: PeerContext) -> Self::Future {
        if self.stalled.contains(&ctx.peer_id) {
            warn!(peer = %ctx.peer_id, "--debug-stall-peer: this peer's requests will never be answered by the handler");
            return Box::pin(std::future::ready(Ok(Either::Right(Stalled))));
        }
        let making = self.inner.call(ctx);
        Box::pin(async move { making.await.map(Either::Left) })
    }
}

/// A handler that never answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stalled;

impl Service<GreetRequest> for Stalled {
    type Response = GreetResponse;
    type Error = BoxError;
    type Future = Pending<Result<GreetResponse, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: GreetRequest) -> Self::Future {
        pending()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use p2p_protocol::ErrorCode;
    use p2p_service::{Limits, MakeGreeter, stack};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn the_stalled_peer_is_answered_408_and_the_others_are_served() {
        let stalled = PeerId::random();
        let limits = Limits { request_timeout: Some(Duration::from_millis(50)), ..Limits::default() };
        let make = stack(MakeStalling::new(MakeGreeter::new("hi"), vec![stalled]), limits);
        let addr: p2p_transport::libp2p::Multiaddr = "/ip4/10.0.0.1/udp/1/quic-v1".parse().unwrap();

        let service = make.clone().oneshot(PeerContext::new(stalled, addr.clone())).await.unwrap();
        let answer = service.oneshot(GreetRequest::new("anyone?")).await.unwrap();
        assert_eq!(answer.unwrap_err().code, ErrorCode::TIMEOUT);

        let service = make.oneshot(PeerContext::new(PeerId::random(), addr)).await.unwrap();
        let answer = service.oneshot(GreetRequest::new("hello")).await.unwrap();
        assert_eq!(answer.unwrap().message, "hi (you said: hello)");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigusr1_makes_the_node_dial() {
        use p2p_transport::libp2p::multiaddr::Protocol;
        use p2p_transport::{NodeBuilder, NodeEvent};

        let node = |name: &'static str| {
            NodeBuilder::new()
                .mdns(false)
                .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
                .build(stack(MakeGreeter::new(name), Limits::default()))
                .unwrap()
        };
        let (target, mut target_events) = node("target");
        let address = loop {
            match tokio::time::timeout(Duration::from_secs(10), target_events.recv()).await {
                Ok(Some(NodeEvent::Listening { address })) => {
                    break address.with(Protocol::P2p(target.local_peer_id()));
                }
                Ok(Some(_)) => {}
                other => panic!("the target does not listen: {other:?}"),
            }
        };
        let (dialer, mut events) = node("dialer");
        dial_on_usr1(&dialer, vec![address]).unwrap();
        // Nothing is dialed before the signal.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(dialer.connected_peers().is_empty());

        let status = std::process::Command::new("kill")
            .args(["-USR1", &std::process::id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let connected = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match events.recv().await {
                    Some(NodeEvent::Connected { peer_id, .. }) => break peer_id,
                    Some(_) => {}
                    None => panic!("the dialer stopped"),
                }
            }
        })
        .await
        .expect("connected within 10 s of SIGUSR1");
        assert_eq!(connected, target.local_peer_id());
        dialer.shutdown().await;
        target.shutdown().await;
    }
}
