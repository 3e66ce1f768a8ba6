use libp2p::core::transport::ListenerId;

use super::*;
use crate::reach::path::RELAYED_CLOSE_DELAY;

fn peer() -> PeerId {
    PeerId::random()
}

fn addr(text: &str) -> Multiaddr {
    text.parse().unwrap()
}

/// `/ip4/203.0.113.1/udp/4001/quic-v1/p2p/<peer>`: a public address of `peer`.
fn public_addr(peer: PeerId) -> Multiaddr {
    addr("/ip4/203.0.113.1/udp/4001/quic-v1").with(Protocol::P2p(peer))
}

/// An address through `relay` (`.../p2p/<relay>/p2p-circuit`).
fn relayed(relay: PeerId) -> Multiaddr {
    public_addr(relay).with(Protocol::P2pCircuit)
}

fn policy(bootstrap: &[Multiaddr], relay_server: bool) -> Policy {
    Policy::new(&NodeConfig { bootstrap: bootstrap.to_vec(), relay_server, ..NodeConfig::default() })
}

const RELAY: Speaks<'static> = Speaks { kad: true, autonat: true, relay: true, listen_addrs: &[] };
const CLIENT: Speaks<'static> = Speaks { kad: false, autonat: false, relay: false, listen_addrs: &[] };

fn reserves(decisions: &[Decision]) -> bool {
    decisions.iter().any(|d| matches!(d, Decision::Reserve { .. }))
}

#[test]
fn bootstrap_peers_are_joined_at_start_and_an_address_without_a_peer_is_ignored() {
    let relay = peer();
    let mut policy = policy(&[public_addr(relay), addr("/ip4/203.0.113.9/udp/4001/quic-v1")], false);
    assert_eq!(
        policy.start(false),
        [
            Decision::AddToDht { peer: relay, addrs: vec![public_addr(relay)] },
            Decision::DialBootstrap { peer: relay, addr: public_addr(relay) },
            Decision::JoinDht,
        ]
    );
    let mut alone = self::policy(&[], false);
    assert_eq!(alone.start(false), [], "no bootstrap peer, nothing to join, nothing reported");
    assert_eq!(
        alone.start(true),
        [Decision::Reachability { reachability: Reachability::Public, dht_server: true }],
        "a node public from the start says so at once"
    );
}

#[test]
fn reachability_is_reported_on_change_and_the_dht_serves_when_public_or_a_relay() {
    let mut node = policy(&[], false);
    assert_eq!(node.reachability(false, false), None, "private is not reported until decided");
    assert_eq!(
        node.reachability(false, true),
        Some(Decision::Reachability { reachability: Reachability::Private, dht_server: false })
    );
    assert_eq!(node.reachability(false, true), None, "unchanged");
    assert_eq!(
        node.reachability(true, false),
        Some(Decision::Reachability { reachability: Reachability::Public, dht_server: true })
    );
    let mut relay = policy(&[], true);
    assert_eq!(
        relay.reachability(false, true),
        Some(Decision::Reachability { reachability: Reachability::Private, dht_server: true }),
        "a relay server serves the DHT even when private"
    );
}

#[test]
fn a_private_node_reserves_on_its_bootstrap_relays_only() {
    let (relay, other) = (peer(), peer());
    let now = Instant::now();
    let mut node = policy(&[public_addr(relay)], false);

    let decisions = node.on_identify(other, RELAY, true, true, false, now);
    assert!(!reserves(&decisions), "a relay we did not bootstrap from: {decisions:?}");

    let decisions = node.on_identify(relay, RELAY, true, true, false, now);
    assert!(
        decisions
            .contains(&Decision::Reachability { reachability: Reachability::Private, dht_server: false }),
        "reported private at once: {decisions:?}"
    );
    assert!(decisions.contains(&Decision::Reserve { relay, listen: relayed(relay) }), "{decisions:?}");
    assert!(!reserves(&node.on_identify(relay, RELAY, true, true, false, now)), "one reservation a relay");

    let mut server = policy(&[public_addr(relay)], true);
    assert!(!reserves(&server.on_identify(relay, RELAY, true, true, false, now)), "a relay server");

    let mut public = policy(&[public_addr(relay)], false);
    let _ = public.reachability(true, false);
    assert!(!reserves(&public.on_identify(relay, RELAY, true, true, true, now)), "a public node");
}

/// A private node whose bootstrap relay was just identified at `now`: it
/// reserves there. The node and the relay.
fn reserving(now: Instant) -> (Policy, PeerId) {
    let relay = peer();
    let mut node = policy(&[public_addr(relay)], false);
    assert!(reserves(&node.on_identify(relay, RELAY, true, true, false, now)));
    (node, relay)
}

#[test]
fn a_failed_reservation_is_tried_again_after_the_back_off() {
    let now = Instant::now();
    let (mut node, relay) = reserving(now);
    node.on_reserving(relay, ListenerId::next());
    node.on_reserve_failed(relay, now);
    let retry = node.next_due().expect("a retry is due");
    assert!(retry > now);
    assert_eq!(
        node.on_due(retry, |_| true, |_| Vec::new()),
        [Decision::Reserve { relay, listen: relayed(relay) }]
    );
}

#[test]
fn a_lost_reservation_is_retried_unless_shutting_down() {
    let now = Instant::now();
    let (mut node, relay) = reserving(now);
    let (listener, other) = (ListenerId::next(), ListenerId::next());
    node.on_reserving(relay, listener);
    assert_eq!(node.on_listener_closed(other, false, now), None, "not a reservation");
    let (lost, retry) = node.on_listener_closed(listener, false, now).expect("a reservation");
    assert_eq!(lost, relay);
    assert!(retry.is_some_and(|at| at > now));

    node.on_reserving(relay, listener);
    assert_eq!(node.on_listener_closed(listener, true, now), None, "draining: no retry");
}

#[test]
fn a_peer_in_the_dht_by_its_relayed_addresses_only_is_taken_out_when_it_leaves() {
    let (client, server, relay) = (peer(), peer(), peer());
    let now = Instant::now();
    let mut node = policy(&[], false);
    let listen = [relayed(relay), addr("/ip4/203.0.113.7/udp/4001/quic-v1")];

    let decisions =
        node.on_identify(client, Speaks { listen_addrs: &listen, ..CLIENT }, true, true, false, now);
    assert!(decisions.contains(&Decision::AddToDht { peer: client, addrs: vec![relayed(relay)] }));
    assert_eq!(node.on_closed(client, true, now), None, "still connected");
    assert_eq!(node.on_closed(client, false, now), Some(Decision::RemoveFromDht { peer: client }));
    assert_eq!(node.on_closed(client, false, now), None, "once");

    let decisions =
        node.on_identify(server, Speaks { listen_addrs: &listen, ..RELAY }, true, true, false, now);
    assert!(decisions.contains(&Decision::AddToDht { peer: server, addrs: listen.to_vec() }));
    assert_eq!(node.on_closed(server, false, now), None, "a DHT server stays in the table");

    let mut no_dht = policy(&[], false);
    let decisions =
        no_dht.on_identify(client, Speaks { listen_addrs: &listen, ..CLIENT }, true, false, false, now);
    assert!(!decisions.iter().any(|d| matches!(d, Decision::AddToDht { .. })), "{decisions:?}");
}

/// A node with a peer connected through a relay only (connection 1) at
/// `start`: it waits for a hole punch. The node, the peer, the relayed address.
fn relayed_only(start: Instant) -> (Policy, PeerId, Multiaddr) {
    let (remote, relay) = (peer(), peer());
    let mut node = policy(&[], false);
    let via_relay = relayed(relay);
    node.on_established(remote, &[(ConnectionId::new_unchecked(1), &via_relay)], start);
    (node, remote, via_relay)
}

#[test]
fn a_hole_punch_that_does_not_come_is_reported_once() {
    let start = Instant::now();
    let timeout = NodeConfig::default().hole_punch_timeout;
    let (mut node, remote, via_relay) = relayed_only(start);
    let connection = ConnectionId::new_unchecked(1);

    let deadline = node.next_due().expect("a deadline");
    assert_eq!(deadline, start + timeout);
    let decisions = node.on_due(deadline, |_| true, |_| vec![(connection, &via_relay)]);
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert!(matches!(&decisions[0], Decision::HolePunchFailed { peer, .. } if *peer == remote));
    assert_eq!(node.on_punch_ended(remote, Err("late".into())), None, "reported already");
}

#[test]
fn a_hole_punch_failure_before_the_deadline_is_reported_and_a_success_is_not() {
    let now = Instant::now();
    let (mut node, remote, via_relay) = relayed_only(now);
    assert_eq!(
        node.on_punch_ended(remote, Err("no route".into())),
        Some(Decision::HolePunchFailed { peer: remote, reason: "no route".into() })
    );
    node.on_established(remote, &[(ConnectionId::new_unchecked(2), &via_relay)], now);
    assert_eq!(node.on_punch_ended(remote, Ok(())), None);
    assert_eq!(node.next_due(), None, "nothing waits any more");
}

#[test]
fn a_direct_connection_ends_the_wait_and_closes_the_relayed_ones_a_moment_later() {
    let start = Instant::now();
    let (mut node, remote, via_relay) = relayed_only(start);
    let direct = addr("/ip4/198.51.100.4/udp/4001/quic-v1");
    let (first, second) = (ConnectionId::new_unchecked(1), ConnectionId::new_unchecked(2));
    node.on_established(remote, &[(first, &via_relay), (second, &direct)], start);

    let both = || vec![(first, &via_relay), (second, &direct)];
    assert_eq!(node.next_due(), Some(start + RELAYED_CLOSE_DELAY), "the punch deadline is gone");
    assert_eq!(node.on_due(start, |_| true, |_| both()), [], "not yet");
    assert_eq!(
        node.on_due(start + RELAYED_CLOSE_DELAY, |_| true, |_| both()),
        [Decision::CloseRelayed { peer: remote, connections: vec![first] }]
    );
    assert_eq!(node.next_due(), None);
}

#[test]
fn a_punch_deadline_for_a_peer_that_has_gone_reports_nothing() {
    let (mut node, _, _) = relayed_only(Instant::now());
    let deadline = node.next_due().unwrap();
    assert_eq!(node.on_due(deadline, |_| false, |_| Vec::new()), []);
}
