//! Which of our addresses the outside world agrees on: pure logic, no swarm.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use tokio::time::Instant;

// Where a report comes from, as far as independence goes: the observer's
// IPv4 address, or its IPv6 /56 (go-libp2p's grouping of observers; the
// per-IP connection caps group alike).
use crate::origin::Origin;

/// The external-address policy: how many independent observers must agree,
/// for how long a report counts, and which addresses are worth considering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAddrConfig {
    /// Distinct observer origins (see [`ExternalAddresses`]) that must report
    /// an address before it is confirmed. Default 2.
    pub threshold: usize,
    /// How long a report counts. An address no observer re-reported within
    /// this time expires. Default 60 s: well over the greeting interval (5 s)
    /// and identify's, so a confirmed address does not flap.
    pub ttl: Duration,
    /// Accept loopback addresses (for tests on 127.0.0.1): as external
    /// addresses, and as peers' addresses in the DHT. Default `false`.
    pub allow_loopback: bool,
    /// Addresses the operator vouches for: confirmed at once, never expire.
    pub operator_addrs: Vec<Multiaddr>,
}

impl Default for ExternalAddrConfig {
    fn default() -> Self {
        Self { threshold: 2, ttl: Duration::from_secs(60), allow_loopback: false, operator_addrs: Vec::new() }
    }
}

/// A change to the set of confirmed external addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalAddrChange {
    /// Enough independent observers agree on this address.
    Confirmed(Multiaddr),
    /// No longer reported by enough observers within the TTL.
    Expired(Multiaddr),
}

/// The transport and port an address is reached on: a candidate must match
/// one of our listeners in these (NAT mappings that change the port are not
/// ours to announce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Tcp(u16),
    Quic(u16),
}

impl Endpoint {
    fn of(addr: &Multiaddr) -> Option<Self> {
        let mut parts = addr.iter().skip(1);
        match (parts.next()?, parts.next()) {
            (Protocol::Tcp(port), _) => Some(Self::Tcp(port)),
            (Protocol::Udp(port), Some(Protocol::QuicV1)) => Some(Self::Quic(port)),
            _ => None,
        }
    }
}

/// Collects what peers observe as our address and confirms only what enough
/// *independent observers* agree on.
///
/// Reports are counted by the observer's network origin (its IPv4 address,
/// or its IPv6 /56), never by PeerId, so Sybil identities on one host are
/// one vote. A candidate must be reached on a transport and port we listen
/// on. Each origin holds at most [`ADDRS_PER_ORIGIN`] recent reports, at most
/// [`MAX_ORIGINS`] origins are tracked, and at most [`MAX_CONFIRMED`]
/// addresses are confirmed from reports, well within identify's 20, so
/// hearsay cannot crowd our real addresses out.
///
/// ```
/// # use p2p_transport::{ExternalAddresses, ExternalAddrConfig, ExternalAddrChange};
/// let mut addrs = ExternalAddresses::new(ExternalAddrConfig::default());
/// addrs.add_listener(&"/ip4/0.0.0.0/udp/4001/quic-v1".parse().unwrap());
/// let now = tokio::time::Instant::now();
/// let ours: libp2p::Multiaddr = "/ip4/192.168.1.7/udp/4001/quic-v1".parse().unwrap();
/// let (b, c) = ("/ip4/192.168.1.8/udp/4001/quic-v1".parse().unwrap(), "/ip4/192.168.1.9/tcp/4001".parse().unwrap());
/// assert_eq!(addrs.observe(&b, ours.clone(), now), None);
/// assert_eq!(addrs.observe(&c, ours.clone(), now), Some(ExternalAddrChange::Confirmed(ours)));
/// ```
#[derive(Debug)]
pub struct ExternalAddresses {
    config: ExternalAddrConfig,
    /// What we listen on, by transport and port.
    listeners: Vec<Endpoint>,
    /// Origin → the addresses it reported lately, with when.
    reports: HashMap<Origin, Vec<(Multiaddr, Instant)>>,
    confirmed: HashSet<Multiaddr>,
    /// An AutoNAT server whose word counts is connected (or was, within the
    /// TTL): an address needs a dial-back as well as its observers.
    dial_back_required: bool,
    /// Addresses an AutoNAT server dialed back successfully, oldest first.
    dialed_back: VecDeque<Multiaddr>,
}

/// Addresses remembered as dialed back; the oldest makes room beyond this.
/// AutoNAT v2 tests a candidate once and never again (rust-libp2p #6203), so
/// a dial-back is remembered while its address comes and goes; whether it is
/// confirmed still depends on the observers (our TTL).
pub const MAX_DIALED_BACK: usize = 16;

/// An observer may see us at a few addresses at once (one per transport it
/// reaches us on); its oldest report makes room for a new one beyond this.
pub const ADDRS_PER_ORIGIN: usize = 4;

/// Observer origins tracked at once; the one heard from longest ago makes room.
pub const MAX_ORIGINS: usize = 256;

/// Addresses confirmed from observers at once (operator addresses aside).
pub const MAX_CONFIRMED: usize = 8;

impl ExternalAddresses {
    /// A collector with `config`; operator addresses are confirmed from the start.
    pub fn new(config: ExternalAddrConfig) -> Self {
        let confirmed = config.operator_addrs.iter().cloned().collect();
        Self {
            config,
            listeners: Vec::new(),
            reports: HashMap::new(),
            confirmed,
            dial_back_required: false,
            dialed_back: VecDeque::new(),
        }
    }

    /// Whether an address also needs a successful dial-back (AutoNAT v2)
    /// before it is confirmed: true while an AutoNAT server whose word counts
    /// is connected, and a TTL after (the swarm task asks `reach/`'s
    /// `DialBackRule`). On a
    /// LAN with none, the observers alone decide. Addresses already
    /// confirmed stay so.
    pub fn require_dial_back(&mut self, required: bool) {
        self.dial_back_required = required;
    }

    /// An AutoNAT server dialed us back at `addr`: it is confirmed now if
    /// enough observers agree on it (else once they do).
    pub fn dial_back_succeeded(&mut self, addr: &Multiaddr, now: Instant) -> Option<ExternalAddrChange> {
        let addr = self.usable(addr.clone())?;
        if !self.dialed_back.contains(&addr) {
            if self.dialed_back.len() >= MAX_DIALED_BACK {
                self.dialed_back.pop_front();
            }
            self.dialed_back.push_back(addr.clone());
        }
        self.try_confirm(addr, now)
    }

    /// Confirms `addr` if its observers, its dial-back and the cap allow.
    fn try_confirm(&mut self, addr: Multiaddr, now: Instant) -> Option<ExternalAddrChange> {
        let from_reports = self.confirmed.iter().filter(|a| !self.config.operator_addrs.contains(a)).count();
        let dialed_back = !self.dial_back_required || self.dialed_back.contains(&addr);
        if dialed_back
            && self.votes(&addr, now) >= self.config.threshold.max(1)
            && from_reports < MAX_CONFIRMED
            && self.confirmed.insert(addr.clone())
        {
            return Some(ExternalAddrChange::Confirmed(addr));
        }
        None
    }

    /// We listen on `addr`: reports of its transport and port may count.
    pub fn add_listener(&mut self, addr: &Multiaddr) {
        if let Some(endpoint) = Endpoint::of(addr)
            && !self.listeners.contains(&endpoint)
        {
            self.listeners.push(endpoint);
        }
    }

    /// We no longer listen on `addr`.
    pub fn remove_listener(&mut self, addr: &Multiaddr) {
        if let Some(endpoint) = Endpoint::of(addr) {
            self.listeners.retain(|e| *e != endpoint);
        }
    }

    /// The confirmed addresses, operator-given ones included.
    pub fn confirmed(&self) -> impl Iterator<Item = &Multiaddr> {
        self.confirmed.iter()
    }

    /// A peer connected to us from `observer` says it sees us at `observed`.
    ///
    /// Returns the confirmation this report completes, if any. Ignored:
    /// addresses that are not usable (unspecified, loopback unless allowed,
    /// link-local, multicast, no IP and port), that no listener of ours
    /// matches in transport and port, that name the observer itself, and
    /// reports from an observer with no IP address (a relayed connection).
    pub fn observe(
        &mut self,
        observer: &Multiaddr,
        observed: Multiaddr,
        now: Instant,
    ) -> Option<ExternalAddrChange> {
        let observed = self.usable(observed)?;
        let origin = Origin::of(observer)?;
        if strip_p2p(observer) == observed
            || !Endpoint::of(&observed).is_some_and(|e| self.listeners.contains(&e))
        {
            return None;
        }
        let ttl = self.config.ttl;
        if !self.reports.contains_key(&origin) && self.reports.len() >= MAX_ORIGINS {
            self.evict_stalest();
        }
        let reported = self.reports.entry(origin).or_default();
        reported.retain(|(addr, at)| addr != &observed && now.saturating_duration_since(*at) < ttl);
        if reported.len() >= ADDRS_PER_ORIGIN {
            reported.remove(0); // the oldest
        }
        reported.push((observed.clone(), now));
        self.try_confirm(observed, now)
    }

    /// Distinct origins that reported `addr` within the TTL.
    fn votes(&self, addr: &Multiaddr, now: Instant) -> usize {
        let ttl = self.config.ttl;
        self.reports
            .values()
            .filter(|reported| {
                reported.iter().any(|(a, at)| a == addr && now.saturating_duration_since(*at) < ttl)
            })
            .count()
    }

    fn evict_stalest(&mut self) {
        let stalest = self
            .reports
            .iter()
            .min_by_key(|(_, reported)| reported.iter().map(|(_, at)| *at).max())
            .map(|(origin, _)| *origin);
        if let Some(origin) = stalest {
            self.reports.remove(&origin);
        }
    }

    /// Drops reports older than the TTL and returns the addresses that are no
    /// longer confirmed. Operator addresses never expire.
    pub fn expire(&mut self, now: Instant) -> Vec<ExternalAddrChange> {
        let ttl = self.config.ttl;
        let threshold = self.config.threshold.max(1);
        self.reports.retain(|_, reported| {
            reported.retain(|(_, at)| now.saturating_duration_since(*at) < ttl);
            !reported.is_empty()
        });
        let expired: Vec<Multiaddr> = self
            .confirmed
            .iter()
            .filter(|addr| !self.config.operator_addrs.contains(addr))
            .filter(|addr| self.votes(addr, now) < threshold)
            .cloned()
            .collect();
        for addr in &expired {
            self.confirmed.remove(addr);
        }
        expired.into_iter().map(ExternalAddrChange::Expired).collect()
    }

    fn usable(&self, addr: Multiaddr) -> Option<Multiaddr> {
        let addr = strip_p2p(&addr);
        crate::origin::dialable(&addr, self.config.allow_loopback).then_some(addr)
    }
}

/// The address without a trailing `/p2p/<peer-id>`.
fn strip_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect()
}

#[cfg(test)]
mod tests;
