//! The composed libp2p behaviour: what the swarm speaks.

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{allow_block_list, connection_limits, identify, mdns, request_response};

use crate::gate::PerIpLimit;
use crate::inbound::Acceptor;
use crate::wire::GreetCodec;

use super::ping::Ping;

/// Every protocol a node speaks. Connection limits come first so that a
/// refused connection is refused before any other behaviour sees it.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) per_ip: PerIpLimit,
    /// Banned peers: their connections are closed and refused.
    pub(crate) banned: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) greet: request_response::Behaviour<GreetCodec>,
    pub(crate) identify: identify::Behaviour,
    /// libp2p's ping, answering even peers that do not answer ours.
    pub(crate) ping: Ping,
    /// Opens greet v2's long-lived pipelined streams.
    pub(crate) streams: libp2p_stream::Behaviour,
    /// Accepts them (off for a 1.0.0-only node).
    pub(crate) pipelined: Toggle<Acceptor>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
}
