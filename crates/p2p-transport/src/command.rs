//! What the node's handles ask of the swarm task, over one bounded channel.

use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::RequestError;

/// A request on a protocol's one-stream-per-request name, as bytes: the
/// swarm task only picks the connection; the exchange runs in a task of its
/// own (`outbound::Opener`).
#[derive(Debug)]
pub(crate) struct V1Request {
    pub(crate) protocol: StreamProtocol,
    /// The request's frame body (already checked against `max_frame`).
    pub(crate) body: Vec<u8>,
    /// The protocol's frame limit: the answer may be no longer.
    pub(crate) max_frame: usize,
    /// From the call: the exchange (waiting for a connection, a stream, the
    /// answer) is over by then.
    pub(crate) deadline: Instant,
    /// The answer's frame body, or why there is none.
    pub(crate) reply: oneshot::Sender<Result<Vec<u8>, RequestError>>,
}

/// A request to the swarm task; each carries the channel its answer goes back on.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a one-stream-per-request request.
    Request { peer: PeerId, request: V1Request },
    /// Start a dial; answered once it has started.
    Dial { address: Multiaddr, reply: oneshot::Sender<Result<(), RequestError>> },
    /// Dial; answered once connected, or with why not.
    Connect { address: Multiaddr, reply: oneshot::Sender<Result<PeerId, RequestError>> },
    /// Drain and stop; answered once the swarm task has ended.
    Shutdown { reply: oneshot::Sender<()> },
}
