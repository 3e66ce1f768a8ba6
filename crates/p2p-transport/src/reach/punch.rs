//! Hole punches we wait for: a peer reached only through a relay should get
//! a direct connection soon (DCUtR). libp2p reports a failed punch on the
//! side that started it only (the one holding the *inbound* relayed
//! connection); the other side (the dialer, the one that usually asked)
//! hears nothing. So each side gives the punch a deadline of its own and
//! reports a failure when no direct connection came by then.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::PeerId;
use tokio::time::Instant;

/// Peers waited for at once; beyond this no deadline is kept (the failure,
/// if any, is then only libp2p's own report).
const MAX_WAITING: usize = 1024;

/// Relayed-only peers and when their punch is given up.
#[derive(Debug)]
pub(crate) struct Punches {
    timeout: Duration,
    waiting: HashMap<PeerId, Instant>,
}

impl Punches {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { timeout, waiting: HashMap::new() }
    }

    /// A relayed connection to `peer` is up and no direct one: wait for the punch.
    pub(crate) fn on_relayed(&mut self, peer: PeerId, now: Instant) {
        if self.waiting.len() < MAX_WAITING {
            self.waiting.entry(peer).or_insert(now + self.timeout);
        }
    }

    /// The punch is over (a direct connection, libp2p's report, or the peer is gone).
    /// True if we were waiting for it.
    pub(crate) fn on_done(&mut self, peer: &PeerId) -> bool {
        self.waiting.remove(peer).is_some()
    }

    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.waiting.values().min().copied()
    }

    /// The peers whose punch is overdue: report them as failed.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<PeerId> {
        let due: Vec<PeerId> = self.waiting.iter().filter(|(_, at)| **at <= now).map(|(p, _)| *p).collect();
        for peer in &due {
            self.waiting.remove(peer);
        }
        due
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_punch_that_does_not_come_in_time_is_reported_once() {
        let mut punches = Punches::new(Duration::from_secs(10));
        let (slow, quick) = (PeerId::random(), PeerId::random());
        punches.on_relayed(slow, Instant::now());
        punches.on_relayed(quick, Instant::now());
        tokio::time::advance(Duration::from_secs(3)).await;
        punches.on_relayed(slow, Instant::now()); // a second relayed connection keeps the first deadline
        assert!(punches.on_done(&quick), "punched in time");
        assert!(!punches.on_done(&quick));
        assert!(punches.due(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_secs(7)).await;
        assert_eq!(punches.due(Instant::now()), vec![slow]);
        assert!(punches.due(Instant::now()).is_empty(), "once");
        assert_eq!(punches.next_due(), None);
    }
}
