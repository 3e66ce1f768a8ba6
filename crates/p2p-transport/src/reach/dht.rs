//! Which of a peer's addresses go into our Kademlia routing table.

use libp2p::{Multiaddr, StreamProtocol};

use crate::origin::{dialable, is_relayed};

/// Our own DHT, not IPFS's: peers of other libp2p applications do not mix in.
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/p2p-node/kad/1.0.0");

/// At most this many addresses of one peer go into the table.
const ADDRS_PER_PEER: usize = 8;

/// The addresses of a peer (its identify listen addresses) worth putting in
/// the DHT: a peer that speaks our Kademlia protocol (a DHT server) with its
/// dialable direct addresses, and any peer with its relayed addresses (a
/// peer behind a NAT, in client mode, is found through them). Not dialable:
/// unspecified, link-local, multicast or port 0, loopback unless
/// `allow_loopback` (tests on 127.0.0.1), addresses with no IP, and relayed
/// addresses through a relay that is itself not dialable.
pub(crate) fn dht_addresses(
    speaks_kad: bool,
    listen_addrs: &[Multiaddr],
    allow_loopback: bool,
) -> Vec<Multiaddr> {
    listen_addrs
        .iter()
        .filter(|addr| (is_relayed(addr) || speaks_kad) && dialable(addr, allow_loopback))
        .take(ADDRS_PER_PEER)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use libp2p::PeerId;

    use super::*;

    fn addrs(list: &[&str]) -> Vec<Multiaddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn a_dht_server_goes_in_with_its_dialable_addresses_only() {
        let listen = addrs(&[
            "/ip4/203.0.113.5/udp/4001/quic-v1",
            "/ip4/127.0.0.1/udp/4001/quic-v1",
            "/ip4/0.0.0.0/tcp/4001",
            "/ip4/169.254.3.4/tcp/4001",
            "/ip4/192.168.1.7/tcp/0",
            "/ip6/::1/tcp/4001",
            "/dns4/example.invalid/tcp/4001",
            "/ip4/192.168.1.7/tcp/4001",
        ]);
        assert_eq!(
            dht_addresses(true, &listen, false),
            addrs(&["/ip4/203.0.113.5/udp/4001/quic-v1", "/ip4/192.168.1.7/tcp/4001"])
        );
        assert_eq!(dht_addresses(true, &listen, true).len(), 4, "loopback allowed for tests");
    }

    #[test]
    fn a_peer_that_does_not_speak_kad_goes_in_only_with_relayed_addresses() {
        let relay = PeerId::random();
        let relayed = format!("/ip4/203.0.113.1/udp/4001/quic-v1/p2p/{relay}/p2p-circuit");
        let relayed_via_loopback = format!("/ip4/127.0.0.1/udp/4001/quic-v1/p2p/{relay}/p2p-circuit");
        let listen = addrs(&["/ip4/192.168.1.7/udp/4001/quic-v1", &relayed, &relayed_via_loopback]);
        assert_eq!(dht_addresses(false, &listen, false), addrs(&[&relayed]));
        assert!(dht_addresses(false, &addrs(&["/ip4/192.168.1.7/tcp/4001"]), false).is_empty());
    }

    #[test]
    fn a_peer_puts_at_most_eight_addresses_in() {
        let listen: Vec<Multiaddr> =
            (1..=40).map(|port| format!("/ip4/203.0.113.5/tcp/{port}").parse().unwrap()).collect();
        assert_eq!(dht_addresses(true, &listen, false).len(), ADDRS_PER_PEER);
    }
}
