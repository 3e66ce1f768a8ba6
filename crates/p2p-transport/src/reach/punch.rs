//! Hole punches we wait for: a peer reached only through a relay should get
//! a direct connection soon (DCUtR). libp2p reports a failed punch on the
//! side that started it only (the one holding the *inbound* relayed
//! connection); the other side (the dialer, the one that usually asked)
//! hears nothing. So each side gives the punch a deadline of its own and
//! reports a failure when no direct connection came by then.

use std::collections::{BTreeSet, HashMap};
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
    /// The same deadlines, earliest first: the next one without a scan.
    deadlines: BTreeSet<(Instant, PeerId)>,
}

impl Punches {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { timeout, waiting: HashMap::new(), deadlines: BTreeSet::new() }
    }

    /// A relayed connection to `peer` is up and no direct one: wait for the punch.
    pub(crate) fn on_relayed(&mut self, peer: PeerId, now: Instant) {
        if self.waiting.len() < MAX_WAITING && !self.waiting.contains_key(&peer) {
            self.waiting.insert(peer, now + self.timeout);
            self.deadlines.insert((now + self.timeout, peer));
        }
    }

    /// The punch is over (a direct connection, libp2p's report, or the peer is gone).
    /// True if we were waiting for it.
    pub(crate) fn on_done(&mut self, peer: &PeerId) -> bool {
        let Some(deadline) = self.waiting.remove(peer) else { return false };
        self.deadlines.remove(&(deadline, *peer));
        true
    }

    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The peers whose punch is overdue: report them as failed.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<PeerId> {
        let mut due = Vec::new();
        while let Some(&(at, peer)) = self.deadlines.first()
            && at <= now
        {
            self.deadlines.pop_first();
            self.waiting.remove(&peer);
            due.push(peer);
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

    #[tokio::test(start_paused = true)]
    async fn the_next_due_is_the_earliest_deadline_still_waited_for() {
        let mut punches = Punches::new(Duration::from_secs(10));
        let (early, late) = (PeerId::random(), PeerId::random());
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        punches.on_relayed(early, start);
        tokio::time::advance(Duration::from_secs(2)).await;
        punches.on_relayed(late, Instant::now());
        assert_eq!(punches.next_due(), Some(at(10)));
        assert!(punches.on_done(&early));
        assert_eq!(punches.next_due(), Some(at(12)), "a punch done is not waited for");
        tokio::time::advance(Duration::from_secs(1)).await;
        punches.on_relayed(early, Instant::now()); // waited for again, from now
        assert_eq!(punches.next_due(), Some(at(12)));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(punches.due(Instant::now()), vec![late]);
        assert_eq!(punches.next_due(), Some(at(13)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(punches.due(Instant::now()), vec![early]);
        assert_eq!(punches.next_due(), None);
    }
}
