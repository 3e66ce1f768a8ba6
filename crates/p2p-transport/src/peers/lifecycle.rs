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
//!   wait). Both dialing at once means two handshakes, two identify
//!   exchanges and two connections per pair, which is what a big LAN's
//!   start-up on few cores cannot afford.
//! - A peer is redialed only while mDNS still knows it, and only after a
//!   connection *error* or a failed dial; not after our own idle close, not
//!   after a clean close.
//! - Redials back off from [`REDIAL_MIN`] doubling to [`REDIAL_MAX`]; the
//!   back-off resets only once a connection stayed up for [`STABLE_AFTER`],
//!   so a peer that accepts and closes at once is not redialed every second.
//! - A peer identify says does not speak greet is never redialed (every
//!   libp2p app on the LAN shares the mDNS service name).
//! - At most [`MAX_ADDRS`] addresses per peer and [`MAX_PEERS`] peers are kept.

use std::collections::HashMap;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

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

/// What the swarm task should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Tell the user: a peer we had not seen (or had seen expire).
    Discovered { peer_id: PeerId, addresses: Vec<Multiaddr> },
    /// Dial the peer at these addresses, one at a time, in this order.
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

#[derive(Debug, Default)]
struct Peer {
    /// From mDNS, QUIC first; empty when mDNS does not know the peer.
    addresses: Vec<Multiaddr>,
    connected_since: Option<Instant>,
    speaks_greet: Option<bool>,
    backoff: Option<Duration>,
    redial_at: Option<Instant>,
}

/// The lifecycle policy: see the module documentation.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    /// Our own PeerId: who dials first.
    local: PeerId,
    peers: HashMap<PeerId, Peer>,
}

impl Lifecycle {
    pub(crate) fn new(local: PeerId) -> Self {
        Self { local, peers: HashMap::new() }
    }

    /// mDNS found `addresses` of `peer_id`, which is `connected` or not.
    pub(crate) fn on_discovered(
        &mut self,
        peer_id: PeerId,
        mut addresses: Vec<Multiaddr>,
        connected: bool,
        now: Instant,
    ) -> Vec<Decision> {
        // mDNS advertises loopback too; on a LAN that is never the peer.
        if addresses.iter().any(|a| !is_loopback(a)) {
            addresses.retain(|a| !is_loopback(a));
        }
        if !self.peers.contains_key(&peer_id) && self.peers.len() >= MAX_PEERS {
            return Vec::new();
        }
        let peer = self.peers.entry(peer_id).or_default();
        if connected && peer.connected_since.is_none() {
            peer.connected_since = Some(now);
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
        if peer.connected_since.is_none() && peer.speaks_greet != Some(false) && peer.redial_at.is_none() {
            if self.local < peer_id {
                decisions.push(Decision::Dial { peer_id, addresses: peer.addresses.clone() });
            } else {
                // Its dial is most likely on its way; ours comes when due.
                peer.redial_at = Some(now + DIAL_YIELD);
            }
        }
        decisions
    }

    /// mDNS lost `address` of `peer_id`. Never a reason to disconnect.
    pub(crate) fn on_expired(&mut self, peer_id: PeerId, address: &Multiaddr) -> Option<Decision> {
        let peer = self.peers.get_mut(&peer_id)?;
        let known = !peer.addresses.is_empty();
        peer.addresses.retain(|a| a != address);
        if !known || !peer.addresses.is_empty() {
            return None;
        }
        peer.redial_at = None;
        self.forget_if_idle(peer_id);
        Some(Decision::Expired { peer_id })
    }

    /// A peer's first connection is up. Only peers mDNS knows are tracked,
    /// so the policy's memory is bounded by what mDNS found.
    pub(crate) fn on_connected(&mut self, peer_id: PeerId, now: Instant) {
        if let Some(peer) = self.peers.get_mut(&peer_id) {
            peer.connected_since = Some(now);
            peer.redial_at = None;
        }
    }

    /// A peer's last connection closed.
    pub(crate) fn on_disconnected(&mut self, peer_id: PeerId, how: Closed, now: Instant) {
        let Some(peer) = self.peers.get_mut(&peer_id) else { return };
        let since = peer.connected_since.take();
        if since.is_some_and(|since| now.duration_since(since) >= STABLE_AFTER) {
            peer.backoff = None;
        }
        if how == Closed::Error {
            Self::schedule(peer, now);
        }
        self.forget_if_idle(peer_id);
    }

    /// A dial of `peer_id` failed.
    pub(crate) fn on_dial_failed(&mut self, peer_id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&peer_id) else { return };
        if peer.connected_since.is_none() {
            Self::schedule(peer, now);
        }
    }

    /// Identify said whether the peer speaks greet.
    pub(crate) fn on_identify(&mut self, peer_id: PeerId, speaks_greet: bool) {
        if let Some(peer) = self.peers.get_mut(&peer_id) {
            peer.speaks_greet = Some(speaks_greet);
            if !speaks_greet {
                peer.redial_at = None;
            }
        }
    }

    /// The redials due at `now`.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Decision> {
        let mut decisions = Vec::new();
        for (peer_id, peer) in &mut self.peers {
            if peer.redial_at.is_some_and(|at| at <= now) {
                peer.redial_at = None;
                decisions.push(Decision::Dial { peer_id: *peer_id, addresses: peer.addresses.clone() });
            }
        }
        decisions
    }

    /// When [`Lifecycle::due`] has something next.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.peers.values().filter_map(|p| p.redial_at).min()
    }

    fn schedule(peer: &mut Peer, now: Instant) {
        if peer.addresses.is_empty() || peer.speaks_greet == Some(false) {
            return;
        }
        let backoff = peer.backoff.map_or(REDIAL_MIN, |b| (b * 2).min(REDIAL_MAX));
        peer.backoff = Some(backoff);
        peer.redial_at = Some(now + backoff);
    }

    /// Drops a peer nothing is known of any more (no records, no connection).
    fn forget_if_idle(&mut self, peer_id: PeerId) {
        if self.peers.get(&peer_id).is_some_and(|p| p.addresses.is_empty() && p.connected_since.is_none()) {
            self.peers.remove(&peer_id);
        }
    }
}

fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::QuicV1))
}

fn is_loopback(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
