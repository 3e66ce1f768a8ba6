//! Refusals a peer caused, told apart from those it did not, for whoever
//! keeps score (the transport's ban policy).
//!
//! Every refusal is an answer on the wire (429, 503, 400, 413), but a 503
//! is not always the requester's doing: the node-wide in-flight limit and a
//! handler's own back-pressure refuse well-behaved peers too, when someone
//! else fills the node. [`remote_error`](crate::remote_error) is the one
//! place that maps the stack's errors to wire codes; it also says which of
//! them the peer caused ([`PeerFault`]) and reports those to the
//! [`FaultReporter`] of the peer's [`PeerContext`](crate::PeerContext), if
//! the transport gave it one. The wire bytes are the same either way.

use std::fmt;
use std::sync::Arc;

use libp2p_identity::PeerId;

/// A refusal the peer caused by its own behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerFault {
    /// Faster than its own rate limit (429).
    RateLimited,
    /// More requests in flight than its own share (503 from the per-peer
    /// limit; a 503 from the node-wide limit or the handler is no fault).
    TooManyInFlight,
    /// A request the handler answered 400 (bad request).
    BadRequest,
    /// A request the handler answered 413 (too large).
    TooLarge,
}

/// Where a stack reports the [`PeerFault`]s of the peers it serves. Never
/// waits: the function it wraps must not block (the transport's `try_send`s).
#[derive(Clone)]
pub struct FaultReporter(Arc<dyn Fn(PeerId, PeerFault) + Send + Sync>);

impl FaultReporter {
    /// Reports with `report`.
    pub fn new(report: impl Fn(PeerId, PeerFault) + Send + Sync + 'static) -> Self {
        Self(Arc::new(report))
    }

    /// `peer` caused `fault`.
    pub fn report(&self, peer: PeerId, fault: PeerFault) {
        (self.0)(peer, fault);
    }
}

impl fmt::Debug for FaultReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FaultReporter")
    }
}

/// Two reporters are equal when they are the same one (clones of each other).
impl PartialEq for FaultReporter {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for FaultReporter {}
