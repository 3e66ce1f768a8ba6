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
mod websocket;
mod webrtc;
mod build;
mod event_loop;

use std::sync::Arc;

use libp2p::identity::Keypair;
use libp2p::{PeerId, StreamProtocol};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

use crate::command::Command;
use crate::events::Reporter;
use crate::inbound::{Acceptor, Route, Routes, Serve};
use crate::outbound::{Muxes, Opener};
use crate::peers::{MAX_MOUNTS, PeerSet};
use crate::shutdown::Shutdown;
use crate::{BuildError, NodeConfig};

/// The node's swarm: every behaviour, each connection's handlers boxed
/// (see [`boxed`]).
pub(crate) type NodeSwarm = libp2p::Swarm<NodeBehaviour>;
pub(crate) type NodeBehaviour = boxed::Boxed<behaviour::Behaviour>;

/// One mounted protocol as the swarm task sees it, whatever its messages.
pub(crate) struct Mount {
    /// `P::NAME`, the one-request name: the protocol's label in events and metrics.
    pub(crate) label: &'static str,
    /// The same, as libp2p negotiates it.
    pub(crate) name: StreamProtocol,
    /// `P::PIPELINED_NAME`, if it has one and the node speaks it.
    pub(crate) pipelined: Option<StreamProtocol>,
    /// Its inbound side (`None`: the node calls it but does not serve it).
    pub(crate) server: Option<Arc<dyn Serve>>,
    /// Its pipelined clients, per peer.
    pub(crate) muxes: Arc<dyn Muxes>,
    /// The peers that speak it, as `discover::<P>()` sees them.
    pub(crate) peers: watch::Sender<PeerSet>,
}

/// What the swarm task shares with the node's handles.
pub(crate) struct Shared {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) reporter: Reporter,
    pub(crate) mounts: Vec<Mount>,
    /// Where the request paths report refusals, and where the ban policy hears them.
    pub(crate) refusals: mpsc::Receiver<PeerId>,
    /// Where the answers' observed addresses arrive (see `AddressBook`).
    pub(crate) observations: mpsc::Receiver<crate::addresses::Observation>,
    pub(crate) observations_tx: mpsc::Sender<crate::addresses::Observation>,
    pub(crate) shutdown: Shutdown,
    /// The node's runtime: every task of the node is spawned on it.
    pub(crate) runtime: Handle,
}

/// Builds the swarm, starts listening, and spawns the swarm task on
/// `runtime`, the node's, which every task of the node is spawned on.
/// `streams` are the bare stream protocols served (name, server). Returns
/// our PeerId and a handle that opens streams of any protocol.
pub(crate) fn spawn(
    config: NodeConfig,
    keypair: Option<Keypair>,
    shared: Shared,
    streams: Vec<(StreamProtocol, Arc<dyn Serve>)>,
    #[cfg(feature = "metrics")] metrics: Option<crate::NodeMetrics>,
) -> Result<(PeerId, libp2p_stream::Control), BuildError> {
    if shared.mounts.len() > MAX_MOUNTS {
        return Err(BuildError::Transport(format!("at most {MAX_MOUNTS} protocols may be mounted")));
    }
    let runtime = shared.runtime.clone();
    let keypair = keypair.unwrap_or_else(Keypair::generate_ed25519);
    let local_peer_id = keypair.public().to_peer_id();
    let acceptor = Acceptor::new(routes(&shared.mounts, streams), config.max_concurrent_streams);
    let opener = Opener::new(config.max_concurrent_streams, runtime.clone());
    let mut swarm = build::build_swarm(&config, keypair, acceptor, opener, &runtime)?;
    let listeners = build::listen(&mut swarm, &config)?;
    let control = swarm.behaviour().streams.new_control();
    let event_loop = event_loop::EventLoop::new(
        swarm,
        &config,
        listeners,
        shared,
        #[cfg(feature = "metrics")]
        metrics,
    );
    runtime.spawn(event_loop.run());
    Ok((local_peer_id, control))
}

/// The names every served protocol accepts streams on, in mount order, then
/// the bare stream protocols'.
fn routes(mounts: &[Mount], streams: Vec<(StreamProtocol, Arc<dyn Serve>)>) -> Routes {
    let mut routes = Vec::new();
    for (mount, m) in mounts.iter().enumerate() {
        let Some(server) = &m.server else { continue };
        let route = |pipelined| Route { mount: Some(mount), pipelined, server: Arc::clone(server) };
        routes.push((m.name.clone(), route(false)));
        if let Some(pipelined) = &m.pipelined {
            routes.push((pipelined.clone(), route(true)));
        }
    }
    routes.extend(
        streams.into_iter().map(|(name, server)| (name, Route { mount: None, pipelined: false, server })),
    );
    Routes::new(routes)
}
