use libp2p::PeerId;

use super::*;

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

/// Our address as peers see it; we listen on its port (QUIC) and on TCP 4001.
const A: &str = "/ip4/10.0.0.2/udp/4001/quic-v1";

/// Observers at distinct IPv4 addresses.
fn observer(n: u8) -> Multiaddr {
    addr(&format!("/ip4/10.0.1.{n}/udp/5000/quic-v1"))
}

fn collector(config: ExternalAddrConfig) -> ExternalAddresses {
    let mut ext = ExternalAddresses::new(config);
    ext.add_listener(&addr("/ip4/0.0.0.0/udp/4001/quic-v1"));
    ext.add_listener(&addr("/ip4/0.0.0.0/tcp/4001"));
    ext
}

fn one() -> ExternalAddrConfig {
    ExternalAddrConfig { threshold: 1, ..Default::default() }
}

#[test]
fn one_observer_is_not_enough_two_are() {
    let mut ext = collector(ExternalAddrConfig::default());
    let now = Instant::now();
    assert_eq!(ext.observe(&observer(1), addr(A), now), None);
    assert_eq!(ext.observe(&observer(1), addr(A), now), None, "the same observer twice is one");
    assert_eq!(ext.observe(&observer(2), addr(A), now), Some(ExternalAddrChange::Confirmed(addr(A))));
    assert_eq!(ext.observe(&observer(2), addr(A), now), None, "confirmed once");
    assert_eq!(ext.confirmed().collect::<Vec<_>>(), vec![&addr(A)]);
}

#[test]
fn sybil_identities_on_one_host_are_one_observer() {
    let mut ext = collector(ExternalAddrConfig::default());
    let now = Instant::now();
    let made_up = addr("/ip4/198.51.100.7/udp/4001/quic-v1");
    // Many identities, one IPv4 address, any source port: one vote.
    for port in 1..=50 {
        let sybil = addr(&format!("/ip4/10.0.1.66/udp/{port}/quic-v1/p2p/{}", PeerId::random()));
        assert_eq!(ext.observe(&sybil, made_up.clone(), now), None);
    }
    // Within one IPv6 /56, too.
    let mut ext = collector(ExternalAddrConfig::default());
    for host in ["2001:db8:0:1::5", "2001:db8:0:ff::9"] {
        let sybil = addr(&format!("/ip6/{host}/tcp/7000"));
        assert_eq!(ext.observe(&sybil, made_up.clone(), now), None, "2001:db8:0:0/56 is one origin");
    }
    // A second /56 is independent.
    let other = addr("/ip6/2001:db8:0:100::1/tcp/7000");
    assert_eq!(ext.observe(&other, made_up.clone(), now), Some(ExternalAddrChange::Confirmed(made_up)));
}

#[test]
fn a_candidate_must_match_a_listener_in_transport_and_port() {
    let mut ext = collector(one());
    let now = Instant::now();
    for wrong in ["/ip4/10.0.0.2/udp/4002/quic-v1", "/ip4/10.0.0.2/tcp/4002", "/ip4/10.0.0.2/udp/4001"] {
        assert_eq!(ext.observe(&observer(1), addr(wrong), now), None, "{wrong}");
    }
    let tcp = addr("/ip4/10.0.0.2/tcp/4001");
    assert_eq!(ext.observe(&observer(1), tcp.clone(), now), Some(ExternalAddrChange::Confirmed(tcp)));
    ext.remove_listener(&addr("/ip4/0.0.0.0/udp/4001/quic-v1"));
    assert_eq!(ext.observe(&observer(2), addr(A), now), None, "no longer listening there");
}

#[test]
fn an_observer_without_an_ip_counts_for_nothing() {
    let mut ext = collector(one());
    let relayed = addr(&format!("/dns4/relay.example/tcp/4001/p2p/{}/p2p-circuit", PeerId::random()));
    assert_eq!(ext.observe(&relayed, addr(A), Instant::now()), None);
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
        let mut ext = collector(one());
        assert_eq!(ext.observe(&observer(1), addr(case), Instant::now()), None, "{case}");
    }
}

#[test]
fn loopback_is_allowed_when_configured() {
    let mut ext = collector(ExternalAddrConfig { allow_loopback: true, ..one() });
    let lo = addr("/ip4/127.0.0.1/udp/4001/quic-v1");
    let observer = addr("/ip4/127.0.0.2/udp/5000/quic-v1");
    assert_eq!(ext.observe(&observer, lo.clone(), Instant::now()), Some(ExternalAddrChange::Confirmed(lo)));
}

#[test]
fn an_observer_reporting_its_own_address_is_ignored() {
    let mut ext = collector(one());
    let theirs = addr(A);
    let with_id = theirs.clone().with(Protocol::P2p(PeerId::random()));
    assert_eq!(ext.observe(&theirs, with_id, Instant::now()), None);
}

#[test]
fn p2p_suffix_is_stripped() {
    let mut ext = collector(ExternalAddrConfig::default());
    let now = Instant::now();
    ext.observe(&observer(1), addr(A).with(Protocol::P2p(PeerId::random())), now);
    assert_eq!(ext.observe(&observer(2), addr(A), now), Some(ExternalAddrChange::Confirmed(addr(A))));
}

#[test]
fn reports_expire_after_the_ttl_and_refreshes_keep_them() {
    let mut ext = collector(ExternalAddrConfig { ttl: Duration::from_secs(10), ..Default::default() });
    let t0 = Instant::now();
    ext.observe(&observer(1), addr(A), t0);
    ext.observe(&observer(2), addr(A), t0);
    // Observer 1 refreshes at 8 s, observer 2 does not: at 12 s only one report is fresh.
    ext.observe(&observer(1), addr(A), t0 + Duration::from_secs(8));
    assert!(ext.expire(t0 + Duration::from_secs(9)).is_empty());
    assert_eq!(ext.expire(t0 + Duration::from_secs(12)), vec![ExternalAddrChange::Expired(addr(A))]);
    assert_eq!(ext.confirmed().count(), 0);
    // Stale reports do not count towards a new confirmation.
    assert_eq!(ext.observe(&observer(3), addr(A), t0 + Duration::from_secs(30)), None);
}

#[test]
fn an_observer_inventing_addresses_holds_a_bounded_number_of_votes() {
    let mut ext = collector(ExternalAddrConfig::default());
    let now = Instant::now();
    for n in 1..=10_000u32 {
        let invented = addr(&format!("/ip4/10.9.{}.{}/udp/4001/quic-v1", n / 256, n % 256));
        assert_eq!(ext.observe(&observer(1), invented, now), None);
    }
    assert_eq!(ext.reports.len(), 1);
    assert_eq!(ext.reports.values().next().unwrap().len(), ADDRS_PER_ORIGIN);
}

#[test]
fn origins_and_confirmations_are_capped() {
    let mut ext = collector(one());
    let now = Instant::now();
    let mut confirmed = 0;
    for n in 0..2_000u32 {
        let from = addr(&format!("/ip4/10.{}.{}.1/tcp/9", n / 256, n % 256));
        let claimed = addr(&format!("/ip4/198.51.100.{}/tcp/4001", n % 200));
        confirmed += usize::from(ext.observe(&from, claimed, now).is_some());
    }
    assert_eq!(ext.reports.len(), MAX_ORIGINS);
    assert_eq!(confirmed, MAX_CONFIRMED, "hearsay never crowds identify's 20 slots");
}

#[test]
fn operator_addresses_are_confirmed_at_once_and_never_expire() {
    let op = addr("/ip4/203.0.113.9/tcp/4001");
    let ext = &mut collector(ExternalAddrConfig { operator_addrs: vec![op.clone()], ..Default::default() });
    assert_eq!(ext.confirmed().collect::<Vec<_>>(), vec![&op]);
    assert!(ext.expire(Instant::now() + Duration::from_secs(3600)).is_empty());
}

#[test]
fn with_an_autonat_server_known_observers_alone_do_not_confirm() {
    let mut ext = collector(ExternalAddrConfig::default());
    ext.require_dial_back(true);
    let now = Instant::now();
    assert_eq!(ext.observe(&observer(1), addr(A), now), None);
    assert_eq!(ext.observe(&observer(2), addr(A), now), None, "two observers but no dial-back yet");
    assert_eq!(ext.confirmed().count(), 0);
    assert_eq!(ext.dial_back_succeeded(&addr(A), now), Some(ExternalAddrChange::Confirmed(addr(A))));
}

#[test]
fn a_dial_back_alone_does_not_confirm_either() {
    let mut ext = collector(ExternalAddrConfig::default());
    ext.require_dial_back(true);
    let now = Instant::now();
    assert_eq!(ext.dial_back_succeeded(&addr(A), now), None, "no observer yet");
    assert_eq!(ext.observe(&observer(1), addr(A), now), None, "one observer");
    assert_eq!(ext.observe(&observer(2), addr(A), now), Some(ExternalAddrChange::Confirmed(addr(A))));
    // Expiry stays ours: the dial-back does not keep an address nobody reports.
    let later = now + ExternalAddrConfig::default().ttl;
    assert_eq!(ext.expire(later), vec![ExternalAddrChange::Expired(addr(A))]);
}

#[test]
fn without_an_autonat_server_the_observers_decide() {
    let mut ext = collector(ExternalAddrConfig::default());
    ext.require_dial_back(false);
    let now = Instant::now();
    assert_eq!(ext.observe(&observer(1), addr(A), now), None);
    assert_eq!(ext.observe(&observer(2), addr(A), now), Some(ExternalAddrChange::Confirmed(addr(A))));
}
