//! What a handler knows about its caller.

use libp2p_identity::PeerId;
use p2p_protocol::Multiaddr;

/// What a handler knows about the remote peer it serves.
///
/// The transport makes one per peer, from the connection the peer's first
/// request arrived on, and hands it to the `MakeService<PeerContext>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerContext {
    /// The authenticated identity of the remote peer.
    pub peer_id: PeerId,
    /// The remote address of the connection, as this node sees it.
    pub remote_addr: Multiaddr,
}

impl PeerContext {
    /// The context of `peer_id`, seen at `remote_addr`.
    pub fn new(peer_id: PeerId, remote_addr: Multiaddr) -> Self {
        Self { peer_id, remote_addr }
    }
}
