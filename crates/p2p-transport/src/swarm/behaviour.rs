//! The composed libp2p behaviour: what the swarm speaks.

use libp2p::kad::store::MemoryStore;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{allow_block_list, connection_limits, dcutr, identify, kad, mdns, relay};

use crate::gate::PerIpLimit;
use crate::inbound::Acceptor;
use crate::outbound::Opener;
use crate::reach::{AutonatClient, AutonatServer};

use super::ping::Ping;

/// Every protocol a node speaks. Connection limits come first so that a
/// refused connection is refused before any other behaviour sees it; the
/// acceptor comes last (see there).
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) per_ip: PerIpLimit,
    /// Banned peers: their connections are closed and refused.
    pub(crate) banned: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Sends every protocol's one-request requests (inbound ones are the acceptor's).
    pub(crate) opener: Opener,
    pub(crate) identify: identify::Behaviour,
    /// libp2p's ping, answering even peers that do not answer ours.
    pub(crate) ping: Ping,
    /// Opens every protocol's long-lived pipelined streams.
    pub(crate) streams: libp2p_stream::Behaviour,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    /// Our DHT (`/p2p-node/kad/1.0.0`), its mode set explicitly (off with
    /// `NodeConfig::dht` false).
    pub(crate) kad: Toggle<kad::Behaviour<MemoryStore>>,
    /// Every node can reserve on a relay and dial through one.
    pub(crate) relay_client: relay::client::Behaviour,
    /// The relay hop (`--relay-server` only).
    pub(crate) relay: Toggle<relay::Behaviour>,
    /// Upgrades relayed connections to direct ones.
    pub(crate) dcutr: dcutr::Behaviour,
    /// Asks AutoNAT servers to dial our candidates back.
    pub(crate) autonat: AutonatClient,
    /// Dials back others' candidates (`--relay-server` only).
    pub(crate) autonat_server: Toggle<AutonatServer>,
    /// Accepts every served protocol's inbound streams, each served in a task of its own.
    /// Last: libp2p lists every behaviour's protocols (for each inbound stream and each
    /// poll of a connection) by walking the nested handlers, the first field deepest;
    /// the names nearly every stream asks for cost least here.
    pub(crate) acceptor: Acceptor,
}
