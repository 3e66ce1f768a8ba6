//! A stream protocol that is not request/response (libp2p's perf, say): each
//! negotiated stream goes, bare, to the user's handler, in a task of its own.
//!
//! Routed by the acceptor like every mounted protocol's streams, so it
//! counts against the per-connection stream cap (until the handler's future
//! ends) and never passes through the swarm task; the task is tracked with
//! the other stream tasks, so the shutdown drain waits for it, and dropped
//! at the end of the grace period.

use std::sync::Arc;

use futures::future::BoxFuture;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, Stream};
use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::drain::{Stop, drain_over};
use super::serve::Serve;
use crate::wakers::WakingStream;

/// A user's handler of one stream protocol's inbound streams.
pub(crate) type StreamHandler = Arc<dyn Fn(PeerId, Stream) -> BoxFuture<'static, ()> + Send + Sync>;

/// Serves one stream protocol: each stream in a task running its handler.
pub(crate) struct StreamServer {
    pub(crate) name: &'static str,
    pub(crate) handler: StreamHandler,
    pub(crate) shutdown: Stop,
    pub(crate) tasks: TaskTracker,
    pub(crate) runtime: Handle,
}

impl Serve for StreamServer {
    fn spawn(
        self: Arc<Self>,
        _pipelined: bool,
        peer: PeerId,
        _connection: ConnectionId,
        _remote_addr: Multiaddr,
        stream: WakingStream,
    ) {
        if self.shutdown.borrow().is_some() {
            return; // draining: no new work; the stream is dropped (reset)
        }
        // The guard outlives the handler's future: the stream counts until it ends.
        let (stream, guard) = stream.into_parts();
        let serve = (self.handler)(peer, stream);
        let mut shutdown = self.shutdown.clone();
        let name = self.name;
        self.tasks.spawn_on(
            async move {
                tokio::select! {
                    () = serve => {}
                    () = drain_over(&mut shutdown) => {
                        debug!(%peer, protocol = name, "shutdown grace over; dropping a stream");
                    }
                }
                drop(guard);
            },
            &self.runtime,
        );
    }

    // No per-connection state: the handler is the user's.
    fn connected(&self, _: ConnectionId) {}

    fn disconnected(&self, _: &ConnectionId) {}

    fn clear(&self) {}
}
