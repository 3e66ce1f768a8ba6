//! Every mounted protocol's [`Server`], erased: what the acceptor hands
//! streams to and the swarm task tells of connections, whatever the messages.

use std::sync::Arc;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use p2p_protocol::Protocol;

use super::server::Server;
use crate::wakers::WakingStream;

/// One mounted protocol's inbound side (a [`Server<P>`] behind a pointer):
/// one virtual call per stream and per connection, none per request.
pub(crate) trait Serve: Send + Sync {
    /// Serves a stream negotiated on the protocol's one-request name (or,
    /// with `pipelined`, on its pipelined name) in a task of its own.
    fn spawn(
        self: Arc<Self>,
        pipelined: bool,
        peer: PeerId,
        connection: ConnectionId,
        remote_addr: Multiaddr,
        stream: WakingStream,
    );
    /// A connection is up: its (not yet made) service.
    fn connected(&self, connection: ConnectionId);
    /// A connection closed: its service goes once its requests finish.
    fn disconnected(&self, connection: &ConnectionId);
    /// The node stopped.
    fn clear(&self);
}

impl<P: Protocol> Serve for Server<P> {
    fn spawn(
        self: Arc<Self>,
        pipelined: bool,
        peer: PeerId,
        connection: ConnectionId,
        remote_addr: Multiaddr,
        stream: WakingStream,
    ) {
        if pipelined {
            self.spawn_v2(peer, connection, remote_addr, stream);
        } else {
            self.spawn_v1(peer, connection, remote_addr, stream);
        }
    }

    fn connected(&self, connection: ConnectionId) {
        self.peers.connected(connection);
    }

    fn disconnected(&self, connection: &ConnectionId) {
        self.peers.disconnected(connection);
    }

    fn clear(&self) {
        self.peers.clear();
    }
}
