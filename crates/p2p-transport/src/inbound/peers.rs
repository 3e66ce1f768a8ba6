//! The live connections' service cells, shared with the pipelined responders.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use libp2p::swarm::ConnectionId;
use p2p_protocol::Protocol;
use tokio::sync::Notify;

use super::service::ServiceCell;
use crate::lock::lock;

/// Each established connection's [`ServiceCell`]. A service per connection,
/// so that its `PeerContext` carries that connection's remote address (what
/// the peer is told it was observed at); per-peer state (rate limits,
/// in-flight budgets) is the stack's to key by PeerId. Written only by the
/// swarm task: an entry appears with a connection and goes with it.
pub(crate) struct InboundPeers<P: Protocol> {
    cells: Mutex<HashMap<ConnectionId, ServiceCell<P>>>,
    inserted: Notify,
}

impl<P: Protocol> Default for InboundPeers<P> {
    fn default() -> Self {
        Self { cells: Mutex::default(), inserted: Notify::new() }
    }
}

impl<P: Protocol> InboundPeers<P> {
    pub(crate) fn get(&self, connection: &ConnectionId) -> Option<ServiceCell<P>> {
        lock(&self.cells).get(connection).cloned()
    }

    /// The connection's cell, waiting up to `within` for it to appear: a
    /// stream can reach its acceptor before the swarm task has seen its connection.
    pub(crate) async fn wait_for(
        &self,
        connection: &ConnectionId,
        within: Duration,
    ) -> Option<ServiceCell<P>> {
        // Nearly always there already: no timer for that.
        if let Some(cell) = self.get(connection) {
            return Some(cell);
        }
        let appeared = async {
            loop {
                let inserted = self.inserted.notified();
                tokio::pin!(inserted);
                inserted.as_mut().enable(); // registered before the check: no lost wake-up
                if let Some(cell) = self.get(connection) {
                    return cell;
                }
                inserted.await;
            }
        };
        tokio::time::timeout(within, appeared).await.ok()
    }

    /// A connection is up: its (not yet made) service.
    pub(crate) fn connected(&self, connection: ConnectionId) {
        lock(&self.cells).insert(connection, ServiceCell::<P>::default());
        self.inserted.notify_waiters();
    }

    /// A connection closed: its service goes once the requests still holding it finish.
    pub(crate) fn disconnected(&self, connection: &ConnectionId) {
        lock(&self.cells).remove(connection);
    }

    pub(crate) fn clear(&self) {
        lock(&self.cells).clear();
    }
}

impl<P: Protocol> std::fmt::Debug for InboundPeers<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundPeers").field("connections", &lock(&self.cells).len()).finish()
    }
}
