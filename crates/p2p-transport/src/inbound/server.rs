//! One mounted protocol's inbound side: what serves its streams, both names.

use std::sync::Arc;
use std::time::Duration;

use p2p_protocol::Protocol;
use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;

use super::drain::Stop;
use super::peers::InboundPeers;
use super::service::MakePeerService;
use crate::NodeConfig;
use crate::gate::Refusals;

/// What bounds one served pipelined stream (from [`NodeConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamLimits {
    /// Requests in flight; beyond that the stream is not read.
    pub(crate) max_in_flight: usize,
    /// Nothing received while nothing is in flight, for this long: closed.
    pub(crate) idle: Duration,
    /// One write taking longer: the peer stopped reading; closed.
    pub(crate) write: Duration,
}

/// Serves protocol `P`'s inbound streams; shared by every connection's handler.
pub(crate) struct Server<P: Protocol> {
    /// Each connection's service cell.
    pub(crate) peers: Arc<InboundPeers<P>>,
    pub(crate) make: MakePeerService<P>,
    /// Where undecodable requests are reported (the service reports the rest).
    pub(crate) refusals: Refusals,
    /// The shutdown signal (503 from then on, and the end of the grace).
    pub(crate) shutdown: Stop,
    /// Where the streams' tasks are spawned, so that the drain waits for them.
    pub(crate) tasks: TaskTracker,
    /// One request, from its arrival to its answer written (a 1.0.0 exchange
    /// whole; a pipelined request is answered 408 then).
    pub(crate) timeout: Duration,
    pub(crate) stream_limits: StreamLimits,
    /// The node's runtime, which the stream tasks are spawned on.
    pub(crate) runtime: Handle,
}

impl<P: Protocol> Server<P> {
    pub(crate) fn new(
        make: MakePeerService<P>,
        config: &NodeConfig,
        refusals: Refusals,
        shutdown: Stop,
        tasks: TaskTracker,
        runtime: Handle,
    ) -> Self {
        Self {
            peers: Arc::default(),
            make,
            refusals,
            shutdown,
            tasks,
            timeout: config.request_timeout,
            stream_limits: StreamLimits {
                max_in_flight: config.max_in_flight_per_stream.max(1),
                idle: config.inbound_stream_idle_timeout,
                write: config.stream_write_timeout,
            },
            runtime,
        }
    }

    /// Whether shutdown has begun.
    pub(crate) fn draining(&self) -> bool {
        self.shutdown.borrow().is_some()
    }
}
