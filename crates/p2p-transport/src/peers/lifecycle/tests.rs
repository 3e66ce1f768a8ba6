use super::*;

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn quic(host: u8) -> Multiaddr {
    addr(&format!("/ip4/10.0.0.{host}/udp/4001/quic-v1"))
}

fn tcp(host: u8) -> Multiaddr {
    addr(&format!("/ip4/10.0.0.{host}/tcp/4001"))
}

fn dials(decisions: &[Decision]) -> usize {
    decisions.iter().filter(|d| matches!(d, Decision::Dial { .. })).count()
}

/// A policy that dials first, and a peer with a greater PeerId.
fn dialing_first() -> (Lifecycle, PeerId) {
    let (a, b) = (PeerId::random(), PeerId::random());
    (Lifecycle::new(a.min(b)), a.max(b))
}

/// A peer found, connected and then lost with `how` after `up`.
async fn connected_then_closed(policy: &mut Lifecycle, peer: PeerId, up: Duration, how: Closed) {
    policy.on_connected(peer, Instant::now());
    tokio::time::advance(up).await;
    policy.on_disconnected(peer, how, Instant::now());
}

#[tokio::test(start_paused = true)]
async fn a_found_peer_is_announced_and_dialed_once_quic_first_without_loopback() {
    let (mut policy, peer) = dialing_first();
    let found = vec![tcp(2), addr("/ip4/127.0.0.1/udp/4001/quic-v1"), quic(2)];
    let decisions = policy.on_discovered(peer, found, false, Instant::now());
    assert_eq!(
        decisions,
        vec![
            Decision::Discovered { peer_id: peer, addresses: vec![quic(2), tcp(2)] },
            Decision::Dial { peer_id: peer, addresses: vec![quic(2), tcp(2)] },
        ]
    );
    policy.on_connected(peer, Instant::now());
    assert!(
        policy.on_discovered(peer, vec![quic(2)], true, Instant::now()).is_empty(),
        "known and connected: nothing to do"
    );
}

#[tokio::test(start_paused = true)]
async fn expiry_forgets_the_record_but_never_touches_the_connection() {
    let (mut policy, peer) = dialing_first();
    policy.on_discovered(peer, vec![quic(2), tcp(2)], false, Instant::now());
    policy.on_connected(peer, Instant::now());
    assert_eq!(policy.on_expired(peer, &quic(2)), None, "one record left");
    assert_eq!(policy.on_expired(peer, &tcp(2)), Some(Decision::Expired { peer_id: peer }));
    // The connection is still ours: the policy says nothing of it. When it
    // later fails, nobody redials a peer mDNS no longer knows.
    policy.on_disconnected(peer, Closed::Error, Instant::now());
    assert_eq!(policy.next_due(), None);
}

#[tokio::test(start_paused = true)]
async fn only_a_connection_error_is_redialed() {
    let (mut policy, peer) = dialing_first();
    policy.on_discovered(peer, vec![quic(2)], false, Instant::now());
    connected_then_closed(&mut policy, peer, Duration::from_secs(5), Closed::OnPurpose).await;
    assert_eq!(policy.next_due(), None, "an idle or clean close is not redialed");

    connected_then_closed(&mut policy, peer, Duration::from_secs(5), Closed::Error).await;
    let due = policy.next_due().expect("a redial after an error");
    tokio::time::advance(REDIAL_MIN).await;
    assert!(due <= Instant::now());
    assert_eq!(policy.due(Instant::now()), vec![Decision::Dial { peer_id: peer, addresses: vec![quic(2)] }]);
    assert_eq!(policy.next_due(), None, "one dial per due redial");
}

#[tokio::test(start_paused = true)]
async fn the_backoff_grows_for_flapping_peers_and_resets_after_a_stable_connection() {
    let (mut policy, peer) = dialing_first();
    policy.on_discovered(peer, vec![quic(2)], false, Instant::now());
    let mut waits = Vec::new();
    for _ in 0..7 {
        // Accepts, then closes at once with an error.
        let now = Instant::now();
        policy.on_connected(peer, now);
        policy.on_disconnected(peer, Closed::Error, now);
        let due = policy.next_due().unwrap();
        waits.push(due - now);
        tokio::time::advance(due - now).await;
        assert_eq!(dials(&policy.due(Instant::now())), 1);
    }
    let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30]);

    connected_then_closed(&mut policy, peer, STABLE_AFTER, Closed::Error).await;
    assert_eq!(policy.next_due().unwrap() - Instant::now(), REDIAL_MIN, "reset after a stable connection");
}

#[tokio::test(start_paused = true)]
async fn failed_dials_back_off_too() {
    let (mut policy, peer) = dialing_first();
    policy.on_discovered(peer, vec![quic(2)], false, Instant::now());
    policy.on_dial_failed(peer, Instant::now());
    assert_eq!(policy.next_due().unwrap() - Instant::now(), REDIAL_MIN);
    tokio::time::advance(REDIAL_MIN).await;
    assert_eq!(dials(&policy.due(Instant::now())), 1);
    policy.on_dial_failed(peer, Instant::now());
    assert_eq!(policy.next_due().unwrap() - Instant::now(), REDIAL_MIN * 2);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_does_not_speak_greet_is_never_redialed() {
    let (mut policy, peer) = dialing_first();
    policy.on_discovered(peer, vec![quic(2)], false, Instant::now());
    policy.on_connected(peer, Instant::now());
    policy.on_identify(peer, false);
    policy.on_disconnected(peer, Closed::Error, Instant::now());
    assert_eq!(policy.next_due(), None);
    assert_eq!(
        dials(&policy.on_discovered(peer, vec![quic(3)], false, Instant::now())),
        0,
        "nor dialed when heard again"
    );
}

#[tokio::test(start_paused = true)]
async fn addresses_and_peers_are_capped() {
    let (mut policy, peer) = dialing_first();
    let many: Vec<Multiaddr> = (1..=50).map(quic).collect();
    let decisions = policy.on_discovered(peer, many, false, Instant::now());
    let Some(Decision::Dial { addresses, .. }) = decisions.last() else { panic!("{decisions:?}") };
    assert_eq!(addresses.len(), MAX_ADDRS);

    for _ in 0..MAX_PEERS + 10 {
        policy.on_discovered(PeerId::random(), vec![quic(9)], false, Instant::now());
    }
    assert_eq!(policy.peers.len(), MAX_PEERS);
}

#[tokio::test(start_paused = true)]
async fn a_peer_found_while_already_connected_is_not_dialed() {
    let (mut policy, peer) = dialing_first();
    let decisions = policy.on_discovered(peer, vec![quic(2)], true, Instant::now());
    assert_eq!(decisions, vec![Decision::Discovered { peer_id: peer, addresses: vec![quic(2)] }]);
    // And it is tracked as connected: an error later is redialed.
    policy.on_disconnected(peer, Closed::Error, Instant::now());
    assert!(policy.next_due().is_some());
}

#[tokio::test(start_paused = true)]
async fn of_a_pair_only_the_smaller_peer_id_dials_at_once_and_the_other_after_a_wait() {
    let (mut first, greater) = dialing_first();
    let smaller = first.local;
    assert_eq!(dials(&first.on_discovered(greater, vec![quic(2)], false, Instant::now())), 1);

    let mut second = Lifecycle::new(greater);
    assert_eq!(dials(&second.on_discovered(smaller, vec![quic(1)], false, Instant::now())), 0, "waits");
    assert_eq!(dials(&second.on_discovered(smaller, vec![quic(1)], false, Instant::now())), 0, "still");
    // The other side's dial did not come: ours does.
    tokio::time::advance(DIAL_YIELD).await;
    assert_eq!(
        second.due(Instant::now()),
        vec![Decision::Dial { peer_id: smaller, addresses: vec![quic(1)] }]
    );

    // When it does come, there is nothing left to do.
    let mut third = Lifecycle::new(greater);
    third.on_discovered(smaller, vec![quic(1)], false, Instant::now());
    third.on_connected(smaller, Instant::now());
    tokio::time::advance(DIAL_YIELD).await;
    assert_eq!(third.due(Instant::now()), vec![]);
    assert_eq!(third.next_due(), None);
}
