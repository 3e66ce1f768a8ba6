//! The plain configuration of the default per-peer stack.

use std::time::Duration;

/// The limits the default per-peer stack enforces, as plain data.
///
/// Every limit can be switched off on its own: `None` for the timeout, `0` for
/// the others. A disabled limit costs nothing: its layer is left out of the stack.
/// How many peers' limits are remembered is set on the
/// [`MakePeerService`](crate::MakePeerService::with_max_remembered_peers).
///
/// ```
/// use std::time::Duration;
/// use p2p_service::Limits;
///
/// let limits = Limits { request_timeout: Some(Duration::from_secs(2)), rate_per_sec: 0, ..Limits::default() };
/// assert_eq!(limits.rate_burst, 20);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// How long a handler may take before the request is answered with 408.
    ///
    /// The deadline covers the handler's readiness and its call together; a
    /// handler that is not ready is answered 503 at once rather than waited
    /// for (see [`shed_unready`](crate::shed_unready)). Default: 5 seconds.
    /// `None` disables the deadline.
    pub request_timeout: Option<Duration>,
    /// How many requests per second one peer's token bucket regains.
    ///
    /// Beyond it the peer is answered with 429. The bucket is the peer's, by
    /// `PeerId`: shared by all its connections and kept across reconnects.
    /// Default: 10. `0` disables rate limiting.
    pub rate_per_sec: u32,
    /// How many requests one peer may send at once after a quiet period (the bucket size).
    ///
    /// Default: 20. `0` is treated as 1 while rate limiting is on.
    pub rate_burst: u32,
    /// How many requests of one peer may be in flight at once; more are answered with 503.
    ///
    /// Counted by `PeerId`, over all the peer's connections (a request still
    /// running after its connection closed counts too). Default: 16. `0`
    /// disables the per-peer limit.
    pub max_in_flight_per_peer: usize,
    /// How many requests of all peers together may be in flight at once; more are answered with 503.
    ///
    /// The count is shared by every peer service one
    /// [`MakePeerService`](crate::MakePeerService) (and its clones) makes.
    /// Default: 256. `0` disables the global limit.
    pub max_in_flight_total: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: Some(Duration::from_secs(5)),
            rate_per_sec: 10,
            rate_burst: 20,
            max_in_flight_per_peer: 16,
            max_in_flight_total: 256,
        }
    }
}
