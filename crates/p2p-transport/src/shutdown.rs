//! Graceful shutdown: drain, then close, then stop listening.
//!
//! Owns: the drain deadline, the pipelined responders' stop signal and
//! tracker, and the callers waiting for the node to stop.
//! Must never: wait on a peer beyond the grace period, or close a listener
//! before the connections it carries (a QUIC listener's endpoint carries its
//! connections: closing it first would cut the last answers off).

use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{PeerId, Swarm};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::info;

/// How long the close frames get to leave once the drain is over.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// The swarm task's shutdown state.
pub(crate) struct Shutdown {
    grace: Duration,
    /// Set once shutdown began: the instant the drain gives up.
    deadline: Option<Instant>,
    waiters: Vec<oneshot::Sender<()>>,
    /// Tells the pipelined responders to stop reading (they finish what they
    /// read) and when the drain ends: `Some(deadline)` once it has begun. A
    /// responder still busy at the deadline (a peer that does not read its
    /// answers, a slow handler) drops its stream then, so no task outlives
    /// the grace period.
    stop_streams: watch::Sender<Option<Instant>>,
    /// The pipelined responders, so that the drain can wait for them.
    streams: TaskTracker,
}

impl Shutdown {
    pub(crate) fn new(grace: Duration) -> Self {
        Self {
            grace,
            deadline: None,
            waiters: Vec::new(),
            stop_streams: watch::Sender::new(None),
            streams: TaskTracker::new(),
        }
    }

    /// What a pipelined responder watches to stop reading, and to give up at
    /// the end of the grace period.
    pub(crate) fn stop_signal(&self) -> watch::Receiver<Option<Instant>> {
        self.stop_streams.subscribe()
    }

    /// Where pipelined responders are spawned, so the drain can wait for them.
    pub(crate) fn stream_tasks(&self) -> TaskTracker {
        self.streams.clone()
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.deadline.is_some()
    }

    /// Starts the drain (once); `reply` hears when the node has stopped.
    /// Returns true if the drain starts now.
    pub(crate) fn begin(&mut self, reply: Option<oneshot::Sender<()>>) -> bool {
        self.waiters.extend(reply);
        if self.deadline.is_some() {
            return false;
        }
        let deadline = Instant::now() + self.grace;
        self.deadline = Some(deadline);
        self.stop_streams.send_replace(Some(deadline));
        self.streams.close();
        true
    }

    /// True once nothing is left to drain: every inbound stream's task (1.0.0
    /// and 2.0.0) done.
    pub(crate) fn drained(&self) -> bool {
        self.is_draining() && self.streams.is_empty()
    }

    /// Inbound streams still being served.
    pub(crate) fn streams_left(&self) -> usize {
        self.streams.len()
    }

    /// Resolves when the last pipelined responder has finished (only while draining).
    pub(crate) async fn streams_done(&self) {
        self.streams.wait().await;
    }

    /// Resolves at the end of the grace period (never, before shutdown began).
    pub(crate) async fn grace_over(&self) {
        match self.deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    }

    /// Closes every connection (giving the close frames a moment), then
    /// stops listening and tells the waiters.
    pub(crate) async fn finish<B: NetworkBehaviour>(
        mut self,
        swarm: &mut Swarm<B>,
        listeners: Vec<ListenerId>,
    ) {
        let peers: Vec<PeerId> = swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = swarm.disconnect_peer_id(peer);
        }
        let close = async {
            while swarm.connected_peers().next().is_some() {
                swarm.select_next_some().await;
            }
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, close).await;
        for id in listeners {
            swarm.remove_listener(id);
        }
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(());
        }
        info!("node stopped");
    }
}
