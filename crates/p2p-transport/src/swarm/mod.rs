//! The swarm: building it, and the event loop that owns it.
//!
//! Owns: the `Swarm` (nothing else in the crate touches one), the composed
//! behaviour, and the loop, which only *dispatches*: each swarm event,
//! command and timer goes to the concern that owns it (inbound, outbound,
//! peers, addresses, shutdown), as libp2p's `Swarm` hands events to its
//! `NetworkBehaviour`s.
//! Must never: hold a policy of its own, await a handler or a consumer.

// Its files from the bottom up: each uses only files above it (`tests/layering.rs`).
mod wrap;
mod ping;
mod boxed;
mod behaviour;
mod yamux;
mod build;
mod event_loop;

use std::sync::Arc;

use libp2p::PeerId;
use libp2p::identity::Keypair;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

use crate::command::Command;
use crate::events::Reporter;
use crate::gate::Refusals;
use crate::inbound::{self, Acceptor, InboundPeers, MakePeerService, ServeV1};
use crate::outbound::OutboundPeers;
use crate::peers::PeerSet;
use crate::shutdown::Shutdown;
use crate::{BuildError, NodeConfig};

/// The node's swarm: every behaviour, each connection's handlers boxed
/// (see [`boxed`]).
pub(crate) type NodeSwarm = libp2p::Swarm<NodeBehaviour>;
pub(crate) type NodeBehaviour = boxed::Boxed<behaviour::Behaviour>;

/// What the swarm task shares with the node's handles.
pub(crate) struct Shared {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) reporter: Reporter,
    pub(crate) greet_peers: watch::Sender<PeerSet>,
    pub(crate) outbound_peers: Arc<OutboundPeers>,
    /// Where the request paths report refusals, and where the ban policy hears them.
    pub(crate) refusals: (Refusals, mpsc::Receiver<PeerId>),
    /// The node's runtime: every task of the node is spawned on it.
    pub(crate) runtime: Handle,
}

/// Builds the swarm, starts listening, and spawns the swarm task (and, with
/// greet 2.0.0, the task accepting its streams) on `runtime`, the node's,
/// which every task of the node is spawned on. Returns our PeerId.
pub(crate) fn spawn(
    config: NodeConfig,
    keypair: Option<Keypair>,
    make: MakePeerService,
    shared: Shared,
    #[cfg(feature = "metrics")] metrics: Option<crate::NodeMetrics>,
) -> Result<PeerId, BuildError> {
    let runtime = shared.runtime.clone();
    let keypair = keypair.unwrap_or_else(Keypair::generate_ed25519);
    let local_peer_id = keypair.public().to_peer_id();
    let shutdown = Shutdown::new(config.shutdown_grace);
    let inbound_peers = Arc::new(InboundPeers::default());
    let serve_v1 = Arc::new(ServeV1 {
        peers: Arc::clone(&inbound_peers),
        make: make.clone(),
        refusals: shared.refusals.0.clone(),
        shutdown: shutdown.stop_signal(),
        tasks: shutdown.stream_tasks(),
        timeout: config.request_timeout,
        runtime: runtime.clone(),
    });
    let (acceptor, incoming) = Acceptor::new(config.greet_v2, serve_v1, config.max_concurrent_streams);
    let mut swarm = build::build_swarm(&config, keypair, acceptor, &runtime)?;
    let listeners = build::listen(&mut swarm, &config)?;

    if config.greet_v2 {
        runtime.spawn(inbound::accept_loop(
            incoming,
            Arc::clone(&inbound_peers),
            make,
            &config,
            shutdown.stop_signal(),
            shutdown.stream_tasks(),
            runtime.clone(),
        ));
    }
    let event_loop = event_loop::EventLoop::new(
        swarm,
        &config,
        listeners,
        inbound_peers,
        shutdown,
        shared,
        #[cfg(feature = "metrics")]
        metrics,
    );
    runtime.spawn(event_loop.run());
    Ok(local_peer_id)
}
