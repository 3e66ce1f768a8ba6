use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::{PTR, TXT};
use hickory_proto::rr::{Name, RData, Record};

use super::*;

/// Where a response puts its TXT records.
#[derive(Clone, Copy)]
enum Layout {
    /// js-libp2p's `@libp2p/mdns`: in the answers.
    Js,
    /// rust-libp2p's `libp2p-mdns`: in the additional section.
    Rust,
}

fn response(layout: Layout, peers: &[(&str, &[String])]) -> Vec<u8> {
    let mut message = Message::new(0, MessageType::Response, OpCode::Query);
    for (label, dnsaddrs) in peers {
        let target = Name::from_ascii(format!("{label}.{SERVICE_NAME}")).unwrap();
        let service = Name::from_ascii(SERVICE_NAME).unwrap();
        message.add_answer(Record::from_rdata(service, 120, RData::PTR(PTR(target.clone()))));
        let txt = Record::from_rdata(target, 120, RData::TXT(TXT::new(dnsaddrs.to_vec())));
        match layout {
            Layout::Js => message.add_answer(txt),
            Layout::Rust => message.add_additional(txt),
        };
    }
    message.to_vec().unwrap()
}

fn dnsaddr(addr: &str, peer: PeerId) -> String {
    format!("dnsaddr={addr}/p2p/{peer}")
}

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

#[test]
fn dnsaddr_records_are_read_from_the_answers_as_js_libp2p_sends_them_and_from_the_additionals() {
    let peer = PeerId::random();
    let records =
        [dnsaddr("/ip4/10.77.0.12/udp/4001/quic-v1", peer), dnsaddr("/ip4/10.77.0.12/tcp/4001", peer)];
    for layout in [Layout::Js, Layout::Rust] {
        let found = announced(&response(layout, &[("abc", &records)]));
        assert_eq!(
            found,
            vec![(peer, vec![addr("/ip4/10.77.0.12/udp/4001/quic-v1"), addr("/ip4/10.77.0.12/tcp/4001")])]
        );
    }
}

#[test]
fn addresses_a_lan_peer_cannot_be_dialed_at_are_dropped() {
    let peer = PeerId::random();
    let relay = PeerId::random();
    let records = [
        dnsaddr("/ip4/127.0.0.1/tcp/4001", peer),
        dnsaddr("/ip4/169.254.3.3/tcp/4001", peer),
        dnsaddr("/ip6/::1/tcp/4001", peer),
        dnsaddr("/ip6/fe80::1/tcp/4001", peer),
        dnsaddr(&format!("/ip4/203.0.113.5/tcp/4001/p2p/{relay}/p2p-circuit"), peer),
        dnsaddr("/ip4/10.77.0.12/tcp/4001", peer),
    ];
    assert_eq!(
        announced(&response(Layout::Js, &[("p", &records)])),
        vec![(peer, vec![addr("/ip4/10.77.0.12/tcp/4001")])]
    );
    // Nothing dialable: no peer at all.
    assert!(announced(&response(Layout::Js, &[("p", &records[..5])])).is_empty());
}

#[test]
fn a_record_naming_another_peer_does_not_lend_it_an_address() {
    let (peer, other) = (PeerId::random(), PeerId::random());
    let records = [dnsaddr("/ip4/10.77.0.12/tcp/4001", peer), dnsaddr("/ip4/10.66.6.6/tcp/4001", other)];
    assert_eq!(
        announced(&response(Layout::Js, &[("p", &records)])),
        vec![(peer, vec![addr("/ip4/10.77.0.12/tcp/4001")])]
    );
}

#[test]
fn queries_garbage_and_oversized_announcements_yield_little_or_nothing() {
    assert!(announced(&[]).is_empty());
    assert!(announced(&[0xff; 64]).is_empty());
    let query = Message::new(0, MessageType::Query, OpCode::Query).to_vec().unwrap();
    assert!(announced(&query).is_empty());
    // Many peers and many addresses in one packet: capped.
    let peers: Vec<(String, Vec<String>)> = (0..40)
        .map(|i| {
            let peer = PeerId::random();
            let records =
                (1..=20).map(|port| dnsaddr(&format!("/ip4/10.0.{i}.1/tcp/{port}"), peer)).collect();
            (format!("p{i}"), records)
        })
        .collect();
    let borrowed: Vec<(&str, &[String])> = peers.iter().map(|(l, r)| (l.as_str(), r.as_slice())).collect();
    let found = announced(&response(Layout::Js, &borrowed));
    assert_eq!(found.len(), MAX_PEERS_PER_PACKET);
    assert!(found.iter().all(|(_, addrs)| addrs.len() == MAX_ADDRS_PER_PEER));
}

#[test]
fn only_sources_on_the_local_link_are_believed() {
    let networks: HashSet<IpNet> = ["192.168.1.20/24", "10.78.0.2/16", "2001:db8:1:2::5/64"]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // On the link: inside an interface's network, or link-local (positive controls).
    for source in
        ["192.168.1.77", "10.78.200.1", "2001:db8:1:2::99", "fe80::1", "169.254.3.4", "::ffff:192.168.1.9"]
    {
        assert!(on_link(ip(source), &networks), "{source} is on the link");
    }
    // Beyond a router: another network, however close.
    for source in
        ["192.168.2.77", "10.79.0.1", "203.0.113.5", "2001:db8:1:3::99", "fec0::1", "::ffff:203.0.113.5"]
    {
        assert!(!on_link(ip(source), &networks), "{source} is not on the link");
    }
    // No interface up: only link-local sources.
    assert!(!on_link(ip("192.168.1.77"), &HashSet::new()));
    assert!(on_link(ip("fe80::2"), &HashSet::new()));
}
