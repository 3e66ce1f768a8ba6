//! Which of our addresses the outside world agrees on: pure logic, no swarm.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

/// The external-address policy: how many peers must agree, for how long a
/// report counts, and which addresses are worth considering at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAddrConfig {
    /// Distinct peers that must report an address before it is confirmed. Default 2.
    pub threshold: usize,
    /// How long a report counts. An address no peer re-reported within this
    /// time expires. Default 60 s.
    pub ttl: Duration,
    /// Accept loopback addresses (for tests on 127.0.0.1). Default `false`.
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
    /// Enough distinct peers agree on this address.
    Confirmed(Multiaddr),
    /// No longer reported by enough peers within the TTL.
    Expired(Multiaddr),
}

/// Collects what peers observe as our address and confirms only what enough
/// distinct peers agree on.
///
/// A single peer's report never confirms anything (unless the threshold is
/// 1), so one lying or confused peer cannot hand us an address.
///
/// ```
/// # use p2p_transport::{ExternalAddresses, ExternalAddrConfig, ExternalAddrChange};
/// # use libp2p::PeerId;
/// let mut addrs = ExternalAddresses::new(ExternalAddrConfig::default());
/// let now = tokio::time::Instant::now();
/// let ours: libp2p::Multiaddr = "/ip4/192.168.1.7/udp/4001/quic-v1".parse().unwrap();
/// assert_eq!(addrs.observe(PeerId::random(), None, ours.clone(), now), None);
/// assert_eq!(
///     addrs.observe(PeerId::random(), None, ours.clone(), now),
///     Some(ExternalAddrChange::Confirmed(ours))
/// );
/// ```
#[derive(Debug)]
pub struct ExternalAddresses {
    config: ExternalAddrConfig,
    /// reporter → the addresses it reported lately, with when. At most
    /// [`ADDRS_PER_REPORTER`] each, so memory is bounded by the peers we have,
    /// not by how many addresses a hostile peer can invent.
    reports: HashMap<PeerId, Vec<(Multiaddr, Instant)>>,
    confirmed: HashSet<Multiaddr>,
}

/// A peer may see us at a few addresses at once (one per transport it
/// reaches us on); its oldest report makes room for a new one beyond this.
pub const ADDRS_PER_REPORTER: usize = 4;

impl ExternalAddresses {
    /// A collector with `config`; operator addresses are confirmed from the start.
    pub fn new(config: ExternalAddrConfig) -> Self {
        let confirmed = config.operator_addrs.iter().cloned().collect();
        Self { config, reports: HashMap::new(), confirmed }
    }

    /// The confirmed addresses, operator-given ones included.
    pub fn confirmed(&self) -> impl Iterator<Item = &Multiaddr> {
        self.confirmed.iter()
    }

    /// Records that `reporter` sees us at `observed`, over a connection whose
    /// remote end (the reporter itself) is at `reporter_addr`.
    ///
    /// Returns the confirmation this report completes, if any. Reports that
    /// are not usable addresses (unspecified, loopback unless allowed,
    /// link-local, multicast, no IP and port) and reports that name the
    /// reporter's own address (a peer speaking about itself) are ignored.
    pub fn observe(
        &mut self,
        reporter: PeerId,
        reporter_addr: Option<&Multiaddr>,
        observed: Multiaddr,
        now: Instant,
    ) -> Option<ExternalAddrChange> {
        let observed = self.usable(observed)?;
        if reporter_addr.map(strip_p2p).as_ref() == Some(&observed) {
            return None;
        }
        let ttl = self.config.ttl;
        let reported = self.reports.entry(reporter).or_default();
        reported.retain(|(addr, at)| addr != &observed && now.saturating_duration_since(*at) < ttl);
        if reported.len() >= ADDRS_PER_REPORTER {
            reported.remove(0); // the oldest
        }
        reported.push((observed.clone(), now));
        if self.votes(&observed, now) >= self.config.threshold.max(1)
            && self.confirmed.insert(observed.clone())
        {
            return Some(ExternalAddrChange::Confirmed(observed));
        }
        None
    }

    /// Distinct peers that reported `addr` within the TTL.
    fn votes(&self, addr: &Multiaddr, now: Instant) -> usize {
        let ttl = self.config.ttl;
        self.reports
            .values()
            .filter(|reported| {
                reported.iter().any(|(a, at)| a == addr && now.saturating_duration_since(*at) < ttl)
            })
            .count()
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
        let mut parts = addr.iter();
        let ip_ok = match parts.next()? {
            Protocol::Ip4(ip) => {
                !(ip.is_unspecified()
                    || ip.is_link_local()
                    || ip.is_multicast()
                    || ip.is_broadcast()
                    || (ip.is_loopback() && !self.config.allow_loopback))
            }
            Protocol::Ip6(ip) => {
                !(ip.is_unspecified()
                    || ip.is_multicast()
                    || ip.is_unicast_link_local()
                    || (ip.is_loopback() && !self.config.allow_loopback))
            }
            _ => false,
        };
        let port_ok = match parts.next()? {
            Protocol::Tcp(port) | Protocol::Udp(port) => port != 0,
            _ => false,
        };
        (ip_ok && port_ok).then_some(addr)
    }
}

/// The address without a trailing `/p2p/<peer-id>`.
fn strip_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    const A: &str = "/ip4/10.0.0.2/udp/4001/quic-v1";

    #[test]
    fn one_peer_is_not_enough_two_are() {
        let mut ext = ExternalAddresses::new(ExternalAddrConfig::default());
        let (p1, p2, now) = (PeerId::random(), PeerId::random(), Instant::now());
        assert_eq!(ext.observe(p1, None, addr(A), now), None);
        assert_eq!(ext.observe(p1, None, addr(A), now), None, "the same peer twice is one peer");
        assert_eq!(ext.observe(p2, None, addr(A), now), Some(ExternalAddrChange::Confirmed(addr(A))));
        assert_eq!(ext.observe(p2, None, addr(A), now), None, "confirmed once");
        assert_eq!(ext.confirmed().collect::<Vec<_>>(), vec![&addr(A)]);
    }

    #[test]
    fn unusable_addresses_are_ignored() {
        let cases = [
            "/ip4/0.0.0.0/udp/4001/quic-v1",
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/169.254.1.1/tcp/4001",
            "/ip4/224.0.0.251/udp/5353",
            "/ip6/::1/tcp/4001",
            "/ip6/fe80::1/tcp/4001",
            "/ip4/10.0.0.2/tcp/0",
            "/ip4/10.0.0.2",
            "/dns4/example.com/tcp/4001",
        ];
        for case in cases {
            let mut ext = ExternalAddresses::new(ExternalAddrConfig { threshold: 1, ..Default::default() });
            assert_eq!(ext.observe(PeerId::random(), None, addr(case), Instant::now()), None, "{case}");
        }
    }

    #[test]
    fn loopback_is_allowed_when_configured() {
        let config = ExternalAddrConfig { threshold: 1, allow_loopback: true, ..Default::default() };
        let mut ext = ExternalAddresses::new(config);
        let lo = addr("/ip4/127.0.0.1/udp/4001/quic-v1");
        assert_eq!(
            ext.observe(PeerId::random(), None, lo.clone(), Instant::now()),
            Some(ExternalAddrChange::Confirmed(lo))
        );
    }

    #[test]
    fn a_peer_reporting_its_own_address_is_ignored() {
        let mut ext = ExternalAddresses::new(ExternalAddrConfig { threshold: 1, ..Default::default() });
        let theirs = addr(A);
        let with_id = theirs.clone().with(Protocol::P2p(PeerId::random()));
        assert_eq!(ext.observe(PeerId::random(), Some(&theirs), with_id, Instant::now()), None);
    }

    #[test]
    fn p2p_suffix_is_stripped() {
        let mut ext = ExternalAddresses::new(ExternalAddrConfig::default());
        let now = Instant::now();
        let with_id = addr(A).with(Protocol::P2p(PeerId::random()));
        ext.observe(PeerId::random(), None, with_id, now);
        assert_eq!(
            ext.observe(PeerId::random(), None, addr(A), now),
            Some(ExternalAddrChange::Confirmed(addr(A)))
        );
    }

    #[test]
    fn reports_expire_after_the_ttl_and_refreshes_keep_them() {
        let config = ExternalAddrConfig { ttl: Duration::from_secs(10), ..Default::default() };
        let mut ext = ExternalAddresses::new(config);
        let (p1, p2, t0) = (PeerId::random(), PeerId::random(), Instant::now());
        ext.observe(p1, None, addr(A), t0);
        ext.observe(p2, None, addr(A), t0);
        // p1 refreshes at 8 s, p2 does not: at 12 s only one report is fresh.
        ext.observe(p1, None, addr(A), t0 + Duration::from_secs(8));
        assert!(ext.expire(t0 + Duration::from_secs(9)).is_empty());
        assert_eq!(ext.expire(t0 + Duration::from_secs(12)), vec![ExternalAddrChange::Expired(addr(A))]);
        assert_eq!(ext.confirmed().count(), 0);
        // Stale reports do not count towards a new confirmation.
        let p3 = PeerId::random();
        assert_eq!(ext.observe(p3, None, addr(A), t0 + Duration::from_secs(30)), None);
    }

    #[test]
    fn a_peer_inventing_addresses_holds_a_bounded_number_of_votes() {
        let mut ext = ExternalAddresses::new(ExternalAddrConfig::default());
        let (liar, now) = (PeerId::random(), Instant::now());
        for port in 1..=10_000u16 {
            let invented = addr(&format!("/ip4/10.9.9.9/udp/{port}/quic-v1"));
            assert_eq!(ext.observe(liar, None, invented, now), None);
        }
        assert_eq!(ext.reports[&liar].len(), ADDRS_PER_REPORTER);
        // Its latest inventions still count as one vote each, never two.
        let last = addr("/ip4/10.9.9.9/udp/10000/quic-v1");
        assert_eq!(ext.observe(liar, None, last.clone(), now), None);
        assert_eq!(
            ext.observe(PeerId::random(), None, last.clone(), now),
            Some(ExternalAddrChange::Confirmed(last))
        );
    }

    #[test]
    fn operator_addresses_are_confirmed_at_once_and_never_expire() {
        let op = addr("/ip4/203.0.113.9/tcp/4001");
        let mut ext = ExternalAddresses::new(ExternalAddrConfig {
            operator_addrs: vec![op.clone()],
            ..Default::default()
        });
        assert_eq!(ext.confirmed().collect::<Vec<_>>(), vec![&op]);
        assert!(ext.expire(Instant::now() + Duration::from_secs(3600)).is_empty());
    }
}
