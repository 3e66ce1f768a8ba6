//! Where an address points, in one place: its IP, whether it is loopback,
//! whether it is worth dialing, and the *origin* it counts as (the host, or
//! the site, behind it).
//!
//! Owns: the reading of a multiaddr's IP (first component), the "usable IP"
//! rules (no unspecified, link-local, multicast or broadcast, no loopback
//! unless allowed), and the grouping of IPs into [`Origin`]s that both the
//! per-IP connection caps (`gate/`) and the independence of address
//! observers (`addresses/`) count by.
//! Must never: resolve names, or treat a relayed address's relay as the
//! peer behind it where it matters (see [`direct_ip`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// The bits of an IPv6 address one origin spans: a /56.
///
/// A /56 is what an ISP usually hands one customer (RFC 6177 suggests a /56
/// for a home; go-libp2p groups observers by /56 too), so it plays the part
/// one IPv4 address behind a home NAT plays: everything one subscriber runs.
/// Grouping by /64 would give one subscriber 256 origins, 256 × the per-IP
/// connection cap and 256 observer votes for the price of one line; the
/// cost of /56 is that hosts of one site share a cap, as hosts behind one
/// IPv4 NAT already do.
pub(crate) const IPV6_ORIGIN_PREFIX: u8 = 56;

/// One origin: an IPv4 address, or an IPv6 /56 ([`IPV6_ORIGIN_PREFIX`]).
/// A PeerId costs nothing, an address does: a thousand identities on one
/// host, or on one site's /56, are one origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Origin {
    /// An IPv4 host.
    V4(Ipv4Addr),
    /// The first [`IPV6_ORIGIN_PREFIX`] bits of an IPv6 address.
    V6([u8; (IPV6_ORIGIN_PREFIX / 8) as usize]),
}

impl Origin {
    /// The origin `ip` belongs to. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) is the IPv4 host it maps.
    pub(crate) fn of_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(ip) => Self::V4(ip),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4),
                None => {
                    const LEN: usize = (IPV6_ORIGIN_PREFIX / 8) as usize;
                    let mut prefix = [0; LEN];
                    prefix.copy_from_slice(&ip.octets()[..LEN]);
                    Self::V6(prefix)
                }
            },
        }
    }

    /// The origin of an address's IP, if it starts with one.
    pub(crate) fn of(addr: &Multiaddr) -> Option<Self> {
        ip_of(addr).map(Self::of_ip)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::V4(ip) => write!(f, "{ip}"),
            Self::V6(prefix) => {
                let mut octets = [0; 16];
                octets[..prefix.len()].copy_from_slice(prefix);
                write!(f, "{}/{IPV6_ORIGIN_PREFIX}", Ipv6Addr::from(octets))
            }
        }
    }
}

/// The IP an address starts with (`/ip4/…` or `/ip6/…`), if any.
pub(crate) fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

/// An address relayed through a circuit (`…/p2p-circuit…`).
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// The IP of a direct address; `None` for a relayed one (its IP is the
/// relay's, not the peer's) or one without an IP.
pub(crate) fn direct_ip(addr: &Multiaddr) -> Option<IpAddr> {
    if is_relayed(addr) { None } else { ip_of(addr) }
}

/// The address starts with a loopback IP.
// (`peers/lifecycle.rs` keeps a copy of its own until it is converted.)
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn is_loopback(addr: &Multiaddr) -> bool {
    ip_of(addr).is_some_and(|ip| ip.is_loopback())
}

/// An IP worth announcing or dialing beyond this host: not unspecified,
/// link-local, multicast or broadcast, and not loopback unless `allow_loopback`.
pub(crate) fn usable_ip(ip: IpAddr, allow_loopback: bool) -> bool {
    let junk = match ip {
        IpAddr::V4(ip) => ip.is_unspecified() || ip.is_link_local() || ip.is_multicast() || ip.is_broadcast(),
        IpAddr::V6(ip) => ip.is_unspecified() || ip.is_multicast() || ip.is_unicast_link_local(),
    };
    !junk && (allow_loopback || !ip.is_loopback())
}

/// The address (for a relayed one, the relay's part) starts with a
/// [`usable_ip`] and a TCP or UDP port that is not 0.
pub(crate) fn dialable(addr: &Multiaddr, allow_loopback: bool) -> bool {
    let mut parts = addr.iter();
    let ip_ok = match parts.next() {
        Some(Protocol::Ip4(ip)) => usable_ip(IpAddr::V4(ip), allow_loopback),
        Some(Protocol::Ip6(ip)) => usable_ip(IpAddr::V6(ip), allow_loopback),
        _ => false,
    };
    ip_ok && matches!(parts.next(), Some(Protocol::Tcp(port) | Protocol::Udp(port)) if port != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    fn origin(s: &str) -> Origin {
        Origin::of(&addr(s)).unwrap()
    }

    #[test]
    fn ipv4_hosts_are_origins_of_their_own() {
        assert_eq!(origin("/ip4/192.0.2.1/tcp/1"), origin("/ip4/192.0.2.1/udp/2/quic-v1"), "any port");
        assert_ne!(origin("/ip4/192.0.2.1/tcp/1"), origin("/ip4/192.0.2.2/tcp/1"));
    }

    #[test]
    fn ipv6_addresses_group_by_their_56() {
        // One subscriber's /56: its /64s and hosts are one origin.
        let a = origin("/ip6/2001:db8:aa:bb00::1/tcp/1");
        assert_eq!(a, origin("/ip6/2001:db8:aa:bb00:ffff:ffff:ffff:ffff/tcp/1"), "another host, same /64");
        assert_eq!(a, origin("/ip6/2001:db8:aa:bbff::1/tcp/1"), "another /64 of the same /56");
        // The next /56 is someone else.
        assert_ne!(a, origin("/ip6/2001:db8:aa:bc00::1/tcp/1"));
        assert_ne!(a, origin("/ip6/2001:db8:ab:bb00::1/tcp/1"));
        assert_eq!(a.to_string(), "2001:db8:aa:bb00::/56");
    }

    #[test]
    fn an_ipv4_mapped_ipv6_address_is_its_ipv4_host() {
        assert_eq!(origin("/ip6/::ffff:192.0.2.1/tcp/1"), origin("/ip4/192.0.2.1/tcp/1"));
    }

    #[test]
    fn names_and_bare_peers_have_no_origin() {
        assert_eq!(Origin::of(&addr("/dns4/example.com/tcp/1")), None);
        assert_eq!(Origin::of(&Multiaddr::empty()), None);
    }

    #[test]
    fn relayed_addresses_have_no_direct_ip() {
        let relayed = addr(
            "/ip4/192.0.2.1/udp/1/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
        );
        assert!(is_relayed(&relayed));
        assert_eq!(direct_ip(&relayed), None);
        assert_eq!(ip_of(&relayed), Some("192.0.2.1".parse().unwrap()), "the relay's");
        assert_eq!(direct_ip(&addr("/ip4/192.0.2.1/tcp/1")), Some("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn loopback_and_junk_are_told_apart() {
        assert!(is_loopback(&addr("/ip4/127.0.0.5/tcp/1")));
        assert!(is_loopback(&addr("/ip6/::1/tcp/1")));
        assert!(!is_loopback(&addr("/ip4/192.168.1.1/tcp/1")));
        for junk in [
            "/ip4/0.0.0.0/tcp/1",
            "/ip4/169.254.1.1/tcp/1",
            "/ip4/224.0.0.251/udp/5353",
            "/ip4/255.255.255.255/udp/1",
            "/ip6/::/tcp/1",
            "/ip6/fe80::1/tcp/1",
            "/ip6/ff02::fb/udp/5353",
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/192.0.2.1/tcp/0",
            "/ip4/192.0.2.1",
            "/dns4/example.com/tcp/1",
        ] {
            assert!(!dialable(&addr(junk), false), "{junk}");
        }
        assert!(dialable(&addr("/ip4/127.0.0.1/tcp/1"), true), "loopback when allowed");
        assert!(dialable(&addr("/ip4/192.168.1.1/udp/4001/quic-v1"), false));
        assert!(dialable(&addr("/ip6/2001:db8::1/tcp/4001"), false));
    }
}
