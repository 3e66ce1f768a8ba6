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
/// refused connection is refused before any other behaviour sees it.
///
/// The rest are ordered by cost: libp2p lists every behaviour's inbound
/// protocols on each poll of a connection and each inbound stream, walking
/// the handlers nested one per field, the first field deepest. So the
/// behaviours that accept no streams (by default) come first, then those
/// that accept a few, and last the acceptor, whose names nearly every
/// stream asks for.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) per_ip: PerIpLimit,
    /// Banned peers: their connections are closed and refused.
    pub(crate) banned: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    /// Sends every protocol's one-request requests (inbound ones are the acceptor's).
    pub(crate) opener: Opener,
    /// Opens every protocol's long-lived pipelined streams.
    pub(crate) streams: libp2p_stream::Behaviour,
    /// The relay hop (`--relay-server` only).
    pub(crate) relay: Toggle<relay::Behaviour>,
    /// Dials back others' candidates (`--relay-server` only).
    pub(crate) autonat_server: Toggle<AutonatServer>,
    /// Our DHT (`/p2p-node/kad/1.0.0`), its mode set explicitly (off with
    /// `NodeConfig::dht` false).
    pub(crate) kad: Toggle<kad::Behaviour<MemoryStore>>,
    /// Every node can reserve on a relay and dial through one.
    pub(crate) relay_client: relay::client::Behaviour,
    /// Upgrades relayed connections to direct ones.
    pub(crate) dcutr: dcutr::Behaviour,
    /// Asks AutoNAT servers to dial our candidates back.
    pub(crate) autonat: AutonatClient,
    pub(crate) identify: identify::Behaviour,
    /// libp2p's ping, answering even peers that do not answer ours.
    pub(crate) ping: Ping,
    /// Accepts every served protocol's inbound streams, each served in a task of its own.
    pub(crate) acceptor: Acceptor,
}
