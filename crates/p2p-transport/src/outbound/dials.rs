//! Dials asked for by the node's handles: `Node::dial` (answered once the
//! dial has started) and `Node::connect` (answered once connected).

use std::collections::HashMap;

use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, NetworkBehaviour};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::oneshot;
use tracing::debug;

use crate::RequestError;

type ConnectReply = oneshot::Sender<Result<PeerId, RequestError>>;

/// `Node::connect` calls waiting for their dial, by the dial's connection id.
#[derive(Default)]
pub(crate) struct Dials {
    connecting: HashMap<ConnectionId, ConnectReply>,
}

impl Dials {
    /// Starts dialing `address`: a peer already connected or being dialed
    /// counts as success.
    pub(crate) fn dial<B: NetworkBehaviour>(
        &mut self,
        swarm: &mut Swarm<B>,
        address: Multiaddr,
    ) -> Result<(), RequestError> {
        let opts = match address.iter().last() {
            Some(Protocol::P2p(peer)) => DialOpts::peer_id(peer)
                .addresses(vec![address.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build(),
            _ => DialOpts::unknown_peer_id().address(address.clone()).build(),
        };
        swarm.dial(opts).or_else(|err| match err {
            // Already connected or dialing: that is what the caller wanted.
            DialError::DialPeerConditionFalse(_) => Ok(()),
            err => {
                debug!(%address, %err, "dial refused");
                Err(RequestError::Unreachable(one_line(&err.to_string())))
            }
        })
    }

    /// Dials `address`; `reply` hears of the connection (or the failure) of this very dial.
    pub(crate) fn connect<B: NetworkBehaviour>(
        &mut self,
        swarm: &mut Swarm<B>,
        address: Multiaddr,
        reply: ConnectReply,
    ) {
        let opts = match address.iter().last() {
            Some(Protocol::P2p(peer)) if swarm.is_connected(&peer) => {
                let _ = reply.send(Ok(peer));
                return;
            }
            Some(Protocol::P2p(peer)) => {
                DialOpts::peer_id(peer).addresses(vec![address]).condition(PeerCondition::Always).build()
            }
            _ => DialOpts::unknown_peer_id().address(address).build(),
        };
        let connection = opts.connection_id();
        match swarm.dial(opts) {
            Ok(()) => {
                self.connecting.insert(connection, reply);
            }
            Err(err) => {
                let _ = reply.send(Err(RequestError::Unreachable(one_line(&err.to_string()))));
            }
        }
    }

    pub(crate) fn on_established(&mut self, connection: ConnectionId, peer: PeerId) {
        if let Some(reply) = self.connecting.remove(&connection) {
            let _ = reply.send(Ok(peer));
        }
    }

    pub(crate) fn on_failed(&mut self, connection: ConnectionId, error: &DialError) {
        if let Some(reply) = self.connecting.remove(&connection) {
            let _ = reply.send(Err(RequestError::Unreachable(one_line(&error.to_string()))));
        }
    }

    /// Fails every waiting caller with [`RequestError::Shutdown`].
    pub(crate) fn shut_down(&mut self) {
        for (_, reply) in self.connecting.drain() {
            let _ = reply.send(Err(RequestError::Shutdown));
        }
    }
}

/// A multi-line libp2p error (one line per address tried) as one line.
pub(crate) fn one_line(error: &str) -> String {
    error.split_whitespace().collect::<Vec<_>>().join(" ")
}
