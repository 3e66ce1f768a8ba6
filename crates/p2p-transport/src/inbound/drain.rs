//! The shutdown as the inbound tasks see it: the signal, and how long a
//! stream waits for its connection to be registered.
//!
//! A leaf of `inbound/`: used by the 1.0.0 stream tasks and the 2.0.0
//! responders alike; uses none of the room's other files.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How long a stream waits for the swarm task to register its connection.
pub(super) const CONNECTION_WAIT: Duration = Duration::from_secs(5);

/// The shutdown signal: `Some(end of the grace period)` once the drain began.
pub(crate) type Stop = watch::Receiver<Option<Instant>>;

/// Resolves at the end of the shutdown grace period; never before shutdown
/// begins, at once if the node is gone.
pub(super) async fn drain_over(shutdown: &mut Stop) {
    let deadline = match shutdown.wait_for(Option::is_some).await {
        Ok(deadline) => *deadline,
        Err(_) => return,
    };
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}
