//! Error types

/// The error of a request refused because its service's own in-flight limit
/// (in the default stack: the peer's share) is full.
///
/// The error-mapping layer answers it with 503 "overloaded", the same bytes
/// as a global overload ([`Overloaded`](tower::load_shed::error::Overloaded));
/// unlike that one, the peer caused it, so it counts toward a ban (see
/// [`PeerFault`](crate::PeerFault)).
#[derive(Debug, Default, thiserror::Error)]
#[error("too many requests in flight for this peer")]
pub struct PeerOverloaded {
    _p: (),
}

impl PeerOverloaded {
    /// A new error of a full per-service (per-peer) in-flight limit.
    pub const fn new() -> Self {
        Self { _p: () }
    }
}
