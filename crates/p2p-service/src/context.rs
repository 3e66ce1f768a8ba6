//! What a handler knows about its caller.

use libp2p_identity::PeerId;
use p2p_protocol::Multiaddr;

use crate::FaultReporter;

/// What a handler knows about the remote peer it serves, on one connection.
///
/// The transport makes one per connection and hands it to the
/// `MakeService<PeerContext>`, so `remote_addr` is the address of the
/// connection the service answers on. A peer with several connections gets
/// several services; the default stack ([`MakePeerService`](crate::MakePeerService))
/// gives them the same per-peer limits, by `peer_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerContext {
    /// The authenticated identity of the remote peer.
    pub peer_id: PeerId,
    /// The remote address of the connection, as this node sees it.
    pub remote_addr: Multiaddr,
    /// Where the stack reports the refusals the peer caused (see
    /// [`PeerFault`](crate::PeerFault)); `None`: nobody keeps score.
    faults: Option<FaultReporter>,
}

impl PeerContext {
    /// The context of `peer_id`, seen at `remote_addr`.
    pub fn new(peer_id: PeerId, remote_addr: Multiaddr) -> Self {
        Self { peer_id, remote_addr, faults: None }
    }

    /// The same context, with `reporter` to report the peer's faults to
    /// (the transport sets it for its ban policy).
    pub fn with_fault_reporter(mut self, reporter: FaultReporter) -> Self {
        self.faults = Some(reporter);
        self
    }

    /// Where the stack reports the refusals the peer caused, if anywhere.
    pub fn fault_reporter(&self) -> Option<&FaultReporter> {
        self.faults.as_ref()
    }
}
