//! The node handle: [`Node`], a cheap `Clone` that every outbound service
//! and accessor goes through. Built by [`NodeBuilder`].

mod builder;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use builder::NodeBuilder;
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use p2p_protocol::Protocol;
use tokio::sync::{mpsc, oneshot, watch};

use crate::addresses::Observation;
use crate::command::Command;
use crate::events::{Path, Snapshot};
use crate::lock::lock;
use crate::outbound::OutboundPeers;
use crate::peers::{PeerDiscover, PeerSet};
use crate::{Client, MakePeerClient, NodeConfig, RequestError};

/// What the handles keep of a mounted protocol: its pipelined clients per
/// peer (an `OutboundPeers<P>`, typed again by `client::<P>()`) and its set.
#[derive(Clone)]
pub(crate) struct Mounted {
    pub(crate) outbound: Arc<dyn Any + Send + Sync>,
    pub(crate) peers: watch::Receiver<PeerSet>,
}

/// A handle to a running node. Cheap to clone.
///
/// All handles share one swarm task; when the last handle, client and
/// `discover()` stream are dropped, the node shuts down as if
/// [`Node::shutdown`] had been called.
#[derive(Clone)]
pub struct Node {
    local_peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    snapshot: Arc<Mutex<Snapshot>>,
    /// The mounted protocols, by type.
    mounts: Arc<HashMap<TypeId, Mounted>>,
    /// What the clients are made with.
    config: Arc<NodeConfig>,
    observations: mpsc::Sender<Observation>,
    /// Opens bare streams ([`Node::open_stream`]).
    streams: libp2p_stream::Control,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("local_peer_id", &self.local_peer_id).finish_non_exhaustive()
    }
}

impl Node {
    /// This node's identity.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The addresses the node listens on (concrete, once the OS assigned them).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        lock(&self.snapshot).listen_addrs.clone()
    }

    /// The confirmed external addresses.
    pub fn external_addrs(&self) -> Vec<Multiaddr> {
        lock(&self.snapshot).external_addrs.clone()
    }

    /// The peers with at least one established connection.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        lock(&self.snapshot).connected.iter().copied().collect()
    }

    /// How we are connected to `peer` (`None`: not connected): direct only
    /// once every connection is (a request may take any connection to the
    /// peer, so while a relayed one is left it is counted as relayed).
    pub fn path(&self, peer: &PeerId) -> Option<Path> {
        match self.connections_to(peer) {
            (0, 0) => None,
            (_, 0) => Some(Path::Direct),
            _ => Some(Path::Relayed),
        }
    }

    /// How many direct and how many relayed connections we have to `peer`.
    /// Once a direct one is up, the relayed ones close (half a second later).
    pub fn connections_to(&self, peer: &PeerId) -> (usize, usize) {
        lock(&self.snapshot).connections.get(peer).copied().unwrap_or_default()
    }

    /// Whether the dialing policy keeps every peer mDNS found in hand: see
    /// [`PeerLifecycle`](crate::PeerLifecycle).
    pub fn peer_lifecycle(&self) -> crate::PeerLifecycle {
        lock(&self.snapshot).lifecycle
    }

    /// The connected peers that speak protocol `P` (identify says so, or
    /// they opened a stream of it to us); none if `P` is not mounted.
    pub fn peers_speaking<P: Protocol>(&self) -> Vec<PeerId> {
        self.mounted::<P>().map(|m| m.peers.borrow().iter().copied().collect()).unwrap_or_default()
    }

    /// Dials `address` (with or without `/p2p/<peer-id>`). Resolves once the
    /// dial has started; the connection shows up as [`NodeEvent::Connected`].
    pub async fn dial(&self, address: Multiaddr) -> Result<(), RequestError> {
        let (reply, done) = oneshot::channel();
        self.command(Command::Dial { address, reply }).await?;
        done.await.unwrap_or(Err(RequestError::Shutdown))
    }

    /// Connects to `address` and resolves once a connection is established,
    /// with the peer's id, or with the reason the dial failed.
    ///
    /// A bare `/p2p/<peer-id>` means "find it": the node looks the peer up in
    /// the DHT (joined through [`NodeConfig::bootstrap`](crate::NodeConfig::bootstrap))
    /// and dials what it finds, directly or through a relay (see
    /// [`Node::connect_peer`]). With `/p2p/<peer-id>` at the end of an address, an existing connection to that peer
    /// counts and the remote must prove that identity; without it, any peer
    /// at the address will do. There is no deadline of its own beyond the
    /// transports' handshake timeouts: wrap it in `tokio::time::timeout`.
    pub async fn connect(&self, address: Multiaddr) -> Result<PeerId, RequestError> {
        let (reply, done) = oneshot::channel();
        self.command(Command::Connect { address, reply }).await?;
        done.await.unwrap_or(Err(RequestError::Shutdown))
    }

    /// Connects to `peer` known by its id alone: an existing connection
    /// counts; otherwise the DHT is asked for its addresses (a relayed one if
    /// it is behind a NAT), and what is found is dialed. Fails with
    /// [`RequestError::Unreachable`] when the lookup finds nothing to dial.
    pub async fn connect_peer(&self, peer: PeerId) -> Result<PeerId, RequestError> {
        self.connect(Multiaddr::empty().with(libp2p::multiaddr::Protocol::P2p(peer))).await
    }

    /// The outbound side of protocol `P` as a `Service<(PeerId, P::Request)>`
    /// (`client::<Greet>()` for greet).
    ///
    /// Pipelining (`P::PIPELINED_NAME`) needs `P` mounted (served with
    /// [`NodeBuilder::serve`] or called with [`NodeBuilder::call`]), for the
    /// node to know which peers speak it; otherwise every request goes on a
    /// stream of its own.
    pub fn client<P: Protocol>(&self) -> Client<P> {
        let peers = self
            .mounted::<P>()
            .and_then(|m| Arc::clone(&m.outbound).downcast::<OutboundPeers<P>>().ok())
            .unwrap_or_default();
        Client::new(self.commands.clone(), peers, &self.config, self.observations.clone())
    }

    /// A `MakeService<PeerId>` yielding per-peer clients of protocol `P`.
    pub fn make_peer_client<P: Protocol>(&self) -> MakePeerClient<P> {
        MakePeerClient::new(self.client())
    }

    /// The live set of the peers that speak protocol `P`, as a
    /// `tower::discover::Discover` of their [`PeerClient`](crate::PeerClient)s.
    /// Empty (and never changing) if `P` is not mounted.
    pub fn discover<P: Protocol>(&self) -> PeerDiscover<P> {
        let peers = match self.mounted::<P>() {
            Some(mounted) => mounted.peers.clone(),
            None => watch::channel(PeerSet::default()).1,
        };
        PeerDiscover::new(peers, self.client())
    }

    /// Opens a stream of `name` to `peer` (dialing it first if it is not
    /// connected and its addresses are known), for a stream protocol that is
    /// not request/response: the other side of [`NodeBuilder::serve_stream`].
    /// Bounded by the request timeout; fails with
    /// [`RequestError::UnsupportedProtocol`] if the peer does not speak `name`.
    ///
    /// The stream is the caller's to close. A connection notices a dropped
    /// stream (for its idle timeout) the next time its task wakes (a ping
    /// does, every 15 s).
    pub async fn open_stream(&self, peer: PeerId, name: &'static str) -> Result<Stream, RequestError> {
        let protocol = StreamProtocol::try_from_owned(name.to_owned())
            .map_err(|err| RequestError::Io(format!("invalid protocol name {name:?}: {err}")))?;
        let mut control = self.streams.clone();
        match tokio::time::timeout(self.config.request_timeout, control.open_stream(peer, protocol)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_))) => {
                Err(RequestError::UnsupportedProtocol)
            }
            Ok(Err(err)) => Err(RequestError::Io(err.to_string())),
            Err(_) => Err(RequestError::Timeout),
        }
    }

    fn mounted<P: Protocol>(&self) -> Option<&Mounted> {
        self.mounts.get(&TypeId::of::<P>())
    }

    /// Stops listening, lets in-flight inbound requests finish within the
    /// grace period, closes connections and ends the swarm task. Resolves
    /// when the task has ended; calling it again (or from a clone) is fine.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.command(Command::Shutdown { reply }).await.is_ok() {
            let _ = done.await;
        }
    }

    async fn command(&self, command: Command) -> Result<(), RequestError> {
        self.commands.send(command).await.map_err(|_| RequestError::Shutdown)
    }
}

impl<P: Protocol> From<&Node> for PeerDiscover<P> {
    fn from(node: &Node) -> Self {
        node.discover()
    }
}
