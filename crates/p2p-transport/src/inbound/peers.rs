//! The connected peers' service cells, shared with the pipelined responders.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use libp2p::PeerId;
use tokio::sync::Notify;

use super::service::ServiceCell;
use crate::lock::lock;

/// Each connected peer's [`ServiceCell`]. Written only by the swarm task: an
/// entry appears with a peer's first connection and goes with its last.
#[derive(Default)]
pub(crate) struct InboundPeers {
    cells: Mutex<HashMap<PeerId, ServiceCell>>,
    inserted: Notify,
}

impl InboundPeers {
    pub(crate) fn get(&self, peer: &PeerId) -> Option<ServiceCell> {
        lock(&self.cells).get(peer).cloned()
    }

    /// The peer's cell, waiting up to `within` for it to appear: a stream can
    /// reach its acceptor before the swarm task has seen its connection.
    pub(crate) async fn wait_for(&self, peer: &PeerId, within: Duration) -> Option<ServiceCell> {
        let appeared = async {
            loop {
                let inserted = self.inserted.notified();
                tokio::pin!(inserted);
                inserted.as_mut().enable(); // registered before the check: no lost wake-up
                if let Some(cell) = self.get(peer) {
                    return cell;
                }
                inserted.await;
            }
        };
        tokio::time::timeout(within, appeared).await.ok()
    }

    /// A peer's first connection is up: its (not yet made) service.
    pub(crate) fn connected(&self, peer: PeerId) -> ServiceCell {
        let cell = ServiceCell::default();
        lock(&self.cells).insert(peer, cell.clone());
        self.inserted.notify_waiters();
        cell
    }

    /// A peer's last connection closed: its service goes once the requests
    /// still holding it finish (and with it the service's state).
    pub(crate) fn disconnected(&self, peer: &PeerId) {
        lock(&self.cells).remove(peer);
    }

    pub(crate) fn clear(&self) {
        lock(&self.cells).clear();
    }
}

impl std::fmt::Debug for InboundPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundPeers").field("peers", &lock(&self.cells).len()).finish()
    }
}
