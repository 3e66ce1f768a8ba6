//! What the node tells the outside: [`NodeEvent`]s, and the snapshot behind
//! the handle's accessors. The swarm task writes both and never waits on a reader.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use futures::Stream;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;
use tracing::warn;

use crate::lock::lock;

/// Something that happened on the node, for people and scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The node listens on this address (a concrete one, never `0.0.0.0`).
    Listening {
        /// The address, without `/p2p/`.
        address: Multiaddr,
    },
    /// A listen address went away.
    ListenAddrExpired {
        /// The address.
        address: Multiaddr,
    },
    /// mDNS found a peer we had not seen (or had seen expire).
    Discovered {
        /// The peer.
        peer_id: PeerId,
        /// Its advertised addresses.
        addresses: Vec<Multiaddr>,
    },
    /// All of a peer's mDNS records expired.
    Expired {
        /// The peer.
        peer_id: PeerId,
    },
    /// The first connection to a peer is up.
    Connected {
        /// The peer.
        peer_id: PeerId,
        /// The remote address of that connection.
        address: Multiaddr,
    },
    /// A dial failed: every address tried was unreachable, refused, or not that peer.
    DialFailed {
        /// The peer dialed, when it was known.
        peer_id: Option<PeerId>,
        /// Why, in a line.
        error: String,
    },
    /// The last connection to a peer closed.
    Disconnected {
        /// The peer.
        peer_id: PeerId,
    },
    /// The peer speaks a mounted protocol (identify says so, or it opened a
    /// stream of it to us): it joined that protocol's `discover::<P>()` set.
    Capable {
        /// The peer.
        peer_id: PeerId,
        /// The protocol's one-request name (`P::NAME`).
        protocol: &'static str,
    },
    /// The peer kept being refused: its connections are closed and it is
    /// refused for `duration` (see [`BanConfig`](crate::BanConfig)).
    Banned {
        /// The peer.
        peer_id: PeerId,
        /// How long.
        duration: std::time::Duration,
    },
    /// A ban is over.
    Unbanned {
        /// The peer.
        peer_id: PeerId,
    },
    /// Enough independent observers agree on this external address of ours.
    ExternalAddrConfirmed {
        /// The address.
        address: Multiaddr,
    },
    /// An external address is no longer reported by enough peers.
    ExternalAddrExpired {
        /// The address.
        address: Multiaddr,
    },
    /// A relay accepted our reservation: peers can reach us at this relayed
    /// address (`<relay>/p2p-circuit`), which identify and the DHT now carry.
    Reserved {
        /// The address, without our `/p2p/`.
        address: Multiaddr,
    },
    /// A relayed connection was upgraded to a direct one (DCUtR).
    HolePunched {
        /// The peer.
        peer_id: PeerId,
        /// The direct connection's remote address.
        address: Multiaddr,
    },
    /// Hole punching to a peer failed; requests keep using the relay.
    HolePunchFailed {
        /// The peer.
        peer_id: PeerId,
        /// Why, in a line.
        reason: String,
    },
    /// Whether the node is publicly reachable changed.
    Reachability {
        /// Public: it has a confirmed external address; private: it has none.
        reachability: Reachability,
    },
}

/// Whether others can dial a node directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// A confirmed external address: others can dial us.
    Public,
    /// None: others reach us only through a relay.
    Private,
}

impl std::fmt::Display for Reachability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Public => "public",
            Self::Private => "private",
        })
    }
}

/// How we are connected to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Direct connections only (relayed ones are closed half a second after
    /// a direct one is up).
    Direct,
    /// Through a relay (`/p2p-circuit`): only, or still besides a new direct
    /// connection (a request may then take either).
    Relayed,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Direct => "direct",
            Self::Relayed => "relayed",
        })
    }
}

/// The stream of [`NodeEvent`]s.
///
/// Bounded: a consumer that falls far behind loses events (the swarm task
/// never waits for it) and a warning is logged.
#[derive(Debug)]
pub struct NodeEvents {
    rx: mpsc::Receiver<NodeEvent>,
}

impl NodeEvents {
    /// The next event; `None` once the node has shut down.
    pub async fn recv(&mut self) -> Option<NodeEvent> {
        self.rx.recv().await
    }
}

impl Stream for NodeEvents {
    type Item = NodeEvent;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<NodeEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// How well the dialing policy keeps the peers mDNS found in hand
/// ([`Node::peer_lifecycle`](crate::Node::peer_lifecycle)).
///
/// Every peer found that may be dialed is at every moment connected, being
/// dialed, waiting for a dial at a known instant, or parked after a close on
/// purpose. `unaccounted` counts those in none of these states (0 unless a
/// rule is missing); `lost_dials` counts the dials whose outcome never came
/// (each made again once its deadline passed).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerLifecycle {
    /// Peers that may be dialed and have nothing under way.
    pub unaccounted: usize,
    /// Dials that ended in neither a connection nor an error, since the start.
    pub lost_dials: u64,
}

/// What the swarm task keeps up to date for the handle's accessors.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) listen_addrs: Vec<Multiaddr>,
    pub(crate) external_addrs: Vec<Multiaddr>,
    pub(crate) connected: BTreeSet<PeerId>,
    /// Each connected peer's direct and relayed connections.
    pub(crate) connections: std::collections::BTreeMap<PeerId, (usize, usize)>,
    /// The lifecycle's health: see [`crate::Node::peer_lifecycle`].
    pub(crate) lifecycle: PeerLifecycle,
}

impl NodeEvents {
    pub(crate) fn new(rx: mpsc::Receiver<NodeEvent>) -> Self {
        Self { rx }
    }
}

/// The swarm task's side of [`NodeEvent`]s and the [`Snapshot`].
#[derive(Debug, Clone)]
pub(crate) struct Reporter {
    events: mpsc::Sender<NodeEvent>,
    snapshot: Arc<Mutex<Snapshot>>,
}

impl Reporter {
    pub(crate) fn new(events: mpsc::Sender<NodeEvent>, snapshot: Arc<Mutex<Snapshot>>) -> Self {
        Self { events, snapshot }
    }

    /// Never waits: a consumer far behind loses events rather than stalling the node.
    pub(crate) fn emit(&self, event: NodeEvent) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.events.try_send(event) {
            warn!(?event, "event stream full; event dropped");
        }
    }

    /// Updates the snapshot the handle reads.
    pub(crate) fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        change(&mut lock(&self.snapshot));
    }
}
