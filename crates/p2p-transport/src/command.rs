//! What the node's handles ask of the swarm task, over one bounded channel.

use libp2p::{Multiaddr, PeerId};
use p2p_protocol::{GreetRequest, GreetResponse};
use tokio::sync::oneshot;

use crate::RequestError;

/// A request to the swarm task; each carries the channel its answer goes back on.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a greet 1.0.0 request.
    Request {
        peer: PeerId,
        request: GreetRequest,
        reply: oneshot::Sender<Result<GreetResponse, RequestError>>,
    },
    /// Start a dial; answered once it has started.
    Dial { address: Multiaddr, reply: oneshot::Sender<Result<(), RequestError>> },
    /// Dial; answered once connected, or with why not.
    Connect { address: Multiaddr, reply: oneshot::Sender<Result<PeerId, RequestError>> },
    /// Drain and stop; answered once the swarm task has ended.
    Shutdown { reply: oneshot::Sender<()> },
}
