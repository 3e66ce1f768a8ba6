//! Whom to dial, and when to dial again: the peer lifecycle policy, pure.
//!
//! Events in (mDNS records found and lost, connections up and down, dial
//! failures, what identify said), decisions out; no swarm inside, so every
//! rule is a unit test under paused time. The rules:
//!
//! - mDNS decides whom to *find*, never whom to *keep*: a record that
//!   expires is forgotten, and a healthy connection to its peer stays up
//!   (liveness of a connected peer is the connection itself: ping, idle timeout).
//! - A found peer is dialed once (its addresses one at a time, QUIC first),
//!   and by one side only: mDNS tells both sides of a pair about each other
//!   in the same burst of answers, so the side with the smaller PeerId dials
//!   at once and the other waits [`DIAL_YIELD`] for that dial before it dials
//!   itself (a peer that never dials, or did not hear of us, costs only that
//!   wait; a connection from the peer's address that began meanwhile extends
//!   the wait once, for a loaded peer's slow handshake). Both dialing at once means two handshakes, two identify
//!   exchanges and two connections per pair, which is what a big LAN's
//!   start-up on few cores cannot afford.
//! - A peer is redialed only while mDNS still knows it, and only after a
//!   connection *error* or a failed dial; not after our own idle close, not
//!   after a clean close (such a peer is *parked* until mDNS announces it again).
//! - Redials back off from [`REDIAL_MIN`] doubling to [`REDIAL_MAX`], each wait
//!   shortened by up to a fifth at random (`backoff.rs`), so peers that lost
//!   their connections together do not redial in lock-step; the
//!   back-off resets only once a connection stayed up for [`STABLE_AFTER`],
//!   so a peer that accepts and closes at once is not redialed every second.
//! - A dial has a deadline: one whose outcome (a connection, a failure) has
//!   not come [`DIAL_TIMEOUT_PER_ADDRESS`] per address plus [`DIAL_GRACE`]
//!   after it was decided is counted as lost ([`Lifecycle::lost_dials`]) and
//!   made again: a dial the swarm dropped without a word never leaves a pair
//!   waiting for mDNS's next round.
//! - A peer identify says does not speak greet is never redialed (every
//!   libp2p app on the LAN shares the mDNS service name).
//! - At most [`MAX_ADDRS`] addresses per peer and [`MAX_PEERS`] peers are kept.
//!
//! **Invariant**: every peer mDNS knows that may be dialed (it has an
//! address, and identify did not say it does not speak greet) is connected,
//! being dialed, parked, or waiting for a dial at a known instant; never none
//! of these. [`Lifecycle::unaccounted`] counts the peers that break it (kept
//! as events come, not by a scan), and the property test in `tests.rs`
//! checks it over random event sequences. The next instant anything is due
//! is kept in an ordered set ([`Lifecycle::next_due`] is O(log n)), so
//! the event loop never scans the table for it.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

use crate::backoff::{Backoff, DEFAULT_JITTER};
use crate::origin::{ip_of, is_loopback};

/// How long the side with the greater PeerId waits for the other's dial.
pub(crate) const DIAL_YIELD: Duration = Duration::from_secs(2);
/// The first wait before redialing.
pub(crate) const REDIAL_MIN: Duration = Duration::from_secs(1);
/// The longest wait between redials.
pub(crate) const REDIAL_MAX: Duration = Duration::from_secs(30);
/// A connection up this long resets the back-off.
pub(crate) const STABLE_AFTER: Duration = Duration::from_secs(30);
/// Addresses kept per peer (mDNS input is remote input).
pub(crate) const MAX_ADDRS: usize = 8;
/// Peers kept (found by mDNS and not yet expired).
pub(crate) const MAX_PEERS: usize = 4096;
/// How long the swarm gives one address of a dial (libp2p's connection
/// timeout, `SwarmBuilder`'s default): the longest a dial of one address can
/// take before it ends in a connection or an error.
pub(crate) const DIAL_TIMEOUT_PER_ADDRESS: Duration = Duration::from_secs(10);
/// Added to a dial's deadline, for a swarm and an event loop that are late: at 128 nodes on
/// 2 cores (load 170) a one-address dial ended 15 s after it began, microseconds after a 5 s grace.
pub(crate) const DIAL_GRACE: Duration = Duration::from_secs(15);

/// What the swarm task should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Tell the user: a peer we had not seen (or had seen expire).
    Discovered { peer_id: PeerId, addresses: Vec<Multiaddr> },
    /// Dial the peer at these addresses, one at a time, in this order.
    /// Its outcome is owed back: [`Lifecycle::on_connected`] or
    /// [`Lifecycle::on_dial_failed`] (also when the swarm refuses the dial).
    Dial { peer_id: PeerId, addresses: Vec<Multiaddr> },
    /// Tell the user: all of the peer's records expired.
    Expired { peer_id: PeerId },
}

/// How a connection ended, as far as redialing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// An I/O error, a reset, a timeout of the transport: the peer may be back soon.
    Error,
    /// Closed on purpose: our idle timeout, our own disconnect, or the peer's clean close.
    OnPurpose,
}

/// Where a peer stands. The instants of `Waiting` and `Dialing` are in
/// [`Lifecycle::deadlines`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Nothing under way. Right only for a peer that may not be dialed.
    #[default]
    Idle,
    /// Closed on purpose: dialed again when mDNS announces it again.
    Parked,
    /// A dial is due at this instant (a back-off).
    Waiting(Instant),
    /// The other side's turn to dial, until this instant; `extended` once a
    /// connection from the peer's address began meanwhile.
    Yielding { until: Instant, extended: bool },
    /// A dial is under way; no outcome by this instant means it was lost.
    Dialing(Instant),
    /// Connected since.
    Connected(Instant),
}

#[derive(Debug, Default)]
struct Peer {
    /// From mDNS, QUIC first; empty when mDNS does not know the peer.
    addresses: Vec<Multiaddr>,
    speaks_greet: Option<bool>,
    /// Redials since the last stable connection; `None`: none yet.
    backoff: Option<Backoff>,
    state: State,
}

impl Peer {
    /// mDNS knows it, and it may speak greet.
    fn dialable(&self) -> bool {
        !self.addresses.is_empty() && self.speaks_greet != Some(false)
    }

    fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Waiting(at) | State::Dialing(at) | State::Yielding { until: at, .. } => Some(at),
            State::Idle | State::Parked | State::Connected(_) => None,
        }
    }

    /// Breaks the invariant: dialable, and nothing under way.
    fn unaccounted(&self) -> bool {
        self.dialable() && self.state == State::Idle
    }

    fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected(_))
    }

    /// The dial decision, and the state that goes with it.
    fn dial(&mut self, peer_id: PeerId, now: Instant) -> Decision {
        let addresses = self.addresses.len().max(1) as u32;
        self.state = State::Dialing(now + DIAL_TIMEOUT_PER_ADDRESS * addresses + DIAL_GRACE);
        Decision::Dial { peer_id, addresses: self.addresses.clone() }
    }

    /// A redial after the back-off, or nothing for a peer that may not be dialed.
    fn schedule(&mut self, now: Instant, jitter: f64) {
        if !self.dialable() {
            self.state = State::Idle;
            return;
        }
        let backoff =
            self.backoff.get_or_insert_with(|| Backoff::new(REDIAL_MIN, REDIAL_MAX).with_jitter(jitter));
        self.state = State::Waiting(now + backoff.next_wait());
    }
}

/// The lifecycle policy: see the module documentation.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    /// Our own PeerId: who dials first.
    local: PeerId,
    peers: HashMap<PeerId, Peer>,
    /// `(instant, peer)` for every peer waiting or being dialed: kept in step
    /// with the peers' states, so its first entry is the next deadline.
    deadlines: BTreeSet<(Instant, PeerId)>,
    /// Peers for which [`Peer::unaccounted`] holds.
    unaccounted: usize,
    /// Dials whose outcome never came.
    lost_dials: u64,
    /// The redial back-off's jitter: peers that lost their connections
    /// together (a healed partition) do not redial in lock-step.
    redial_jitter: f64,
}

impl Lifecycle {
    pub(crate) fn new(local: PeerId) -> Self {
        Self {
            local,
            peers: HashMap::new(),
            deadlines: BTreeSet::new(),
            unaccounted: 0,
            lost_dials: 0,
            redial_jitter: DEFAULT_JITTER,
        }
    }

    /// Redials exactly at their nominal back-off (tests that count instants).
    #[cfg(test)]
    pub(crate) fn without_jitter(mut self) -> Self {
        self.redial_jitter = 0.0;
        self
    }

    /// mDNS found `addresses` of `peer_id`, which is `connected` or not.
    pub(crate) fn on_discovered(
        &mut self,
        peer_id: PeerId,
        mut addresses: Vec<Multiaddr>,
        connected: bool,
        now: Instant,
    ) -> Vec<Decision> {
        // One form per address: libp2p-mdns gives `.../p2p/<peer>`, our own
        // listener the bare address, and the swarm adds `/p2p/` when it dials:
        // two forms of one address would be dialed one after the other.
        for address in &mut addresses {
            if let Some(Protocol::P2p(id)) = address.iter().last()
                && id == peer_id
            {
                address.pop();
            }
        }
        // mDNS advertises loopback too; on a LAN that is never the peer.
        if addresses.iter().any(|a| !is_loopback(a)) {
            addresses.retain(|a| !is_loopback(a));
        }
        if !self.peers.contains_key(&peer_id) {
            if self.peers.len() >= MAX_PEERS {
                return Vec::new();
            }
            self.peers.insert(peer_id, Peer::default());
        }
        let we_dial = self.local < peer_id;
        let decisions = self.update(peer_id, |peer| {
            if connected && !peer.is_connected() {
                peer.state = State::Connected(now);
            }
            let new = peer.addresses.is_empty();
            for address in addresses {
                if !peer.addresses.contains(&address) && peer.addresses.len() < MAX_ADDRS {
                    peer.addresses.push(address);
                }
            }
            if peer.addresses.is_empty() {
                return Vec::new();
            }
            // QUIC first, TCP only when QUIC fails: the protocol's preference.
            peer.addresses.sort_by_key(|a| !is_quic(a));
            let mut decisions = Vec::new();
            if new {
                decisions.push(Decision::Discovered { peer_id, addresses: peer.addresses.clone() });
            }
            if peer.dialable() && matches!(peer.state, State::Idle | State::Parked) {
                if we_dial {
                    decisions.push(peer.dial(peer_id, now));
                } else {
                    // Its dial is most likely on its way; ours comes when due.
                    peer.state = State::Yielding { until: now + DIAL_YIELD, extended: false };
                }
            }
            decisions
        });
        self.forget_if_idle(peer_id);
        decisions.unwrap_or_default()
    }

    /// mDNS lost `address` of `peer_id`. Never a reason to disconnect.
    pub(crate) fn on_expired(&mut self, peer_id: PeerId, address: &Multiaddr) -> Option<Decision> {
        let expired = self.update(peer_id, |peer| {
            let known = !peer.addresses.is_empty();
            peer.addresses.retain(|a| a != address);
            if !known || !peer.addresses.is_empty() {
                return false;
            }
            if !peer.is_connected() {
                peer.state = State::Idle;
            }
            true
        })?;
        self.forget_if_idle(peer_id);
        expired.then_some(Decision::Expired { peer_id })
    }

    /// A peer's first connection is up (also: a dial found it connected
    /// already). Only peers mDNS knows are tracked, so the policy's memory is
    /// bounded by what mDNS found.
    pub(crate) fn on_connected(&mut self, peer_id: PeerId, now: Instant) {
        self.update(peer_id, |peer| {
            if !peer.is_connected() {
                peer.state = State::Connected(now);
            }
        });
    }

    /// A peer's last connection closed.
    pub(crate) fn on_disconnected(&mut self, peer_id: PeerId, how: Closed, now: Instant) {
        let jitter = self.redial_jitter;
        self.update(peer_id, |peer| {
            if let State::Connected(since) = peer.state
                && now.duration_since(since) >= STABLE_AFTER
            {
                peer.backoff = None;
            }
            match how {
                Closed::Error => peer.schedule(now, jitter),
                Closed::OnPurpose if peer.dialable() => peer.state = State::Parked,
                Closed::OnPurpose => peer.state = State::Idle,
            }
        });
        self.forget_if_idle(peer_id);
    }

    /// A dial of `peer_id` failed, or the swarm refused to start it (a
    /// limit, a ban, no address left to dial).
    pub(crate) fn on_dial_failed(&mut self, peer_id: PeerId, now: Instant) {
        let jitter = self.redial_jitter;
        self.update(peer_id, |peer| {
            if !peer.is_connected() {
                peer.schedule(now, jitter);
            }
        });
    }

    /// Identify said whether the peer speaks greet.
    pub(crate) fn on_identify(&mut self, peer_id: PeerId, speaks_greet: bool, now: Instant) {
        let jitter = self.redial_jitter;
        self.update(peer_id, |peer| {
            peer.speaks_greet = Some(speaks_greet);
            if !peer.dialable() && !peer.is_connected() {
                peer.state = State::Idle;
            }
            // Said so after its connection closed: its redial was given up
            // when it seemed not to speak greet, and is due now.
            if peer.unaccounted() {
                peer.backoff = None;
                peer.schedule(now, jitter);
            }
        });
    }

    /// A connection from `ip` began (its handshake has not finished, so
    /// whose it is is not known yet). A peer at that address whose dial we
    /// are waiting for is most likely making it: its wait is extended once,
    /// to [`DIAL_YIELD`] from now, so that a loaded peer's slow handshake
    /// does not get a second one from us (at 64 nodes on 2 cores, a third of
    /// all dials were the waiting side's, the other's handshake not done
    /// after 2 s). Looks only at the peers with a deadline.
    pub(crate) fn on_incoming(&mut self, ip: IpAddr, now: Instant) {
        let at_ip: Vec<PeerId> = self
            .deadlines
            .iter()
            .map(|(_, peer_id)| *peer_id)
            .filter(|peer_id| {
                self.peers.get(peer_id).is_some_and(|peer| {
                    matches!(peer.state, State::Yielding { extended: false, .. })
                        && peer.addresses.iter().any(|a| ip_of(a) == Some(ip))
                })
            })
            .collect();
        for peer_id in at_ip {
            self.update(peer_id, |peer| {
                if let State::Yielding { until, .. } = peer.state {
                    peer.state = State::Yielding { until: until.max(now + DIAL_YIELD), extended: true };
                }
            });
        }
    }

    /// The dials due at `now`: waits that are over, and dials whose outcome
    /// never came (each counted in [`Lifecycle::lost_dials`]).
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Decision> {
        let mut decisions = Vec::new();
        while let Some(&(at, peer_id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            let mut lost = false;
            let decision = self.update(peer_id, |peer| {
                lost = matches!(peer.state, State::Dialing(_));
                if !peer.dialable() {
                    peer.state = State::Idle; // cannot happen: such a peer has no deadline
                    return None;
                }
                Some(peer.dial(peer_id, now))
            });
            if lost {
                self.lost_dials += 1;
                tracing::warn!(peer = %peer_id, "a dial's outcome never came; dialing again");
            }
            match decision {
                Some(Some(decision)) => decisions.push(decision),
                Some(None) => {}
                // Not a peer of ours (cannot happen: the set follows the table).
                None => {
                    self.deadlines.remove(&(at, peer_id));
                }
            }
        }
        decisions
    }

    /// When [`Lifecycle::due`] has something next: O(log n), no scan.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Peers that may be dialed and are neither connected, being dialed,
    /// parked nor waiting for a dial: 0 unless a rule is missing.
    pub(crate) fn unaccounted(&self) -> usize {
        self.unaccounted
    }

    /// Dials whose outcome never came, since the start.
    pub(crate) fn lost_dials(&self) -> u64 {
        self.lost_dials
    }

    /// Both counts, as the handle shows them.
    pub(crate) fn health(&self) -> crate::PeerLifecycle {
        crate::PeerLifecycle { unaccounted: self.unaccounted(), lost_dials: self.lost_dials() }
    }

    /// Changes one peer, keeping the deadlines and the count in step.
    fn update<R>(&mut self, peer_id: PeerId, change: impl FnOnce(&mut Peer) -> R) -> Option<R> {
        let peer = self.peers.get_mut(&peer_id)?;
        let (deadline, unaccounted) = (peer.deadline(), peer.unaccounted());
        let result = change(peer);
        let (new_deadline, new_unaccounted) = (peer.deadline(), peer.unaccounted());
        if deadline != new_deadline {
            if let Some(at) = deadline {
                self.deadlines.remove(&(at, peer_id));
            }
            if let Some(at) = new_deadline {
                self.deadlines.insert((at, peer_id));
            }
        }
        self.unaccounted = self.unaccounted + usize::from(new_unaccounted) - usize::from(unaccounted);
        Some(result)
    }

    /// Drops a peer nothing is known of any more (no records, no connection).
    fn forget_if_idle(&mut self, peer_id: PeerId) {
        if self.peers.get(&peer_id).is_some_and(|p| p.addresses.is_empty() && !p.is_connected())
            && let Some(peer) = self.peers.remove(&peer_id)
        {
            if let Some(at) = peer.deadline() {
                self.deadlines.remove(&(at, peer_id));
            }
            self.unaccounted -= usize::from(peer.unaccounted());
        }
    }
}

fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::QuicV1))
}

#[cfg(test)]
mod tests;
