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
    (Lifecycle::new(a.min(b)).without_jitter(), a.max(b))
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
    assert_eq!(policy.due(Instant::now()), vec![], "one dial per due redial");
    assert_eq!(
        policy.next_due(),
        Some(Instant::now() + DIAL_TIMEOUT_PER_ADDRESS + DIAL_GRACE),
        "what is left is the dial's own deadline"
    );
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
async fn peers_that_fail_together_do_not_redial_in_lock_step() {
    // A healed partition: many peers' connections fail at the same instant.
    let local = PeerId::random();
    let mut policy = Lifecycle::new(local);
    let start = Instant::now();
    let peers: Vec<PeerId> = (0..32).map(|_| PeerId::random()).collect();
    for (i, peer) in peers.iter().enumerate() {
        policy.on_discovered(*peer, vec![quic(i as u8 + 2)], false, start);
        policy.on_connected(*peer, start);
    }
    for peer in &peers {
        policy.on_disconnected(*peer, Closed::Error, start);
    }
    let mut redials = Vec::new();
    while let Some(at) = policy.next_due() {
        tokio::time::advance(at - Instant::now()).await;
        let due = dials(&policy.due(Instant::now()));
        redials.push((at - start, due));
        if redials.iter().map(|(_, n)| n).sum::<usize>() == peers.len() {
            break;
        }
    }
    // Each within the back-off's bound, and spread: not all on one instant.
    assert!(
        redials.iter().all(|(wait, _)| *wait <= REDIAL_MIN && *wait >= REDIAL_MIN * 4 / 5),
        "{redials:?}"
    );
    assert!(redials.len() > peers.len() / 2, "redials bunched on few instants: {redials:?}");
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_does_not_speak_greet_is_never_redialed() {
    let (mut policy, peer) = dialing_first();
    policy.on_discovered(peer, vec![quic(2)], false, Instant::now());
    policy.on_connected(peer, Instant::now());
    policy.on_identify(peer, false, Instant::now());
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

    let mut second = Lifecycle::new(greater).without_jitter();
    assert_eq!(dials(&second.on_discovered(smaller, vec![quic(1)], false, Instant::now())), 0, "waits");
    assert_eq!(dials(&second.on_discovered(smaller, vec![quic(1)], false, Instant::now())), 0, "still");
    // The other side's dial did not come: ours does.
    tokio::time::advance(DIAL_YIELD).await;
    assert_eq!(
        second.due(Instant::now()),
        vec![Decision::Dial { peer_id: smaller, addresses: vec![quic(1)] }]
    );

    // When it does come, there is nothing left to do.
    let mut third = Lifecycle::new(greater).without_jitter();
    third.on_discovered(smaller, vec![quic(1)], false, Instant::now());
    third.on_connected(smaller, Instant::now());
    tokio::time::advance(DIAL_YIELD).await;
    assert_eq!(third.due(Instant::now()), vec![]);
    assert_eq!(third.next_due(), None);
}

/// Issue 23's lost pair: both sides heard of each other, the smaller PeerId
/// dialed at once and the greater after its wait, and neither dial was ever
/// heard of again: refused by the swarm on the spot (only logged), or gone
/// without an event. The policy had nothing due, so the pair waited for a
/// later mDNS round. A dial now owes an outcome by a deadline; past it, it
/// is counted lost and made again.
#[tokio::test(start_paused = true)]
async fn a_dial_whose_outcome_never_comes_is_made_again_at_its_deadline() {
    let (mut first, greater) = dialing_first();
    let smaller = first.local;
    let mut second = Lifecycle::new(greater).without_jitter();
    let start = Instant::now();
    assert_eq!(dials(&first.on_discovered(greater, vec![quic(2), tcp(2)], false, start)), 1);
    assert_eq!(dials(&second.on_discovered(smaller, vec![quic(1), tcp(1)], false, start)), 0);
    tokio::time::advance(DIAL_YIELD).await;
    assert_eq!(dials(&second.due(Instant::now())), 1);

    // Nothing more is heard of either dial.
    let deadline = DIAL_TIMEOUT_PER_ADDRESS * 2 + DIAL_GRACE;
    assert_eq!(
        first.next_due(),
        Some(start + deadline),
        "the dial's outcome is awaited until a known instant"
    );
    assert_eq!(second.next_due(), Some(start + DIAL_YIELD + deadline));
    tokio::time::advance(deadline).await;
    assert_eq!(
        first.due(Instant::now()),
        vec![Decision::Dial { peer_id: greater, addresses: vec![quic(2), tcp(2)] }]
    );
    assert_eq!(
        second.due(Instant::now()),
        vec![Decision::Dial { peer_id: smaller, addresses: vec![quic(1), tcp(1)] }]
    );
    assert_eq!((first.lost_dials(), second.lost_dials()), (1, 1));
    assert_eq!((first.unaccounted(), second.unaccounted()), (0, 0));
}

/// The swarm refusing a dial on the spot (a limit, a ban, no address left)
/// is a failure like any other: the event loop reports it, and the peer is
/// dialed again after the back-off.
#[tokio::test(start_paused = true)]
async fn a_dial_refused_on_the_spot_is_made_again_after_the_backoff() {
    let (mut policy, peer) = dialing_first();
    assert_eq!(dials(&policy.on_discovered(peer, vec![quic(2)], false, Instant::now())), 1);
    policy.on_dial_failed(peer, Instant::now());
    assert_eq!(policy.next_due(), Some(Instant::now() + REDIAL_MIN));
    tokio::time::advance(REDIAL_MIN).await;
    assert_eq!(dials(&policy.due(Instant::now())), 1);
    assert_eq!(policy.lost_dials(), 0, "a refusal is an outcome");
}

/// A peer closed on purpose is parked, not forgotten: the next time mDNS
/// announces it (our own listener hears every answer), it is dialed again.
#[tokio::test(start_paused = true)]
async fn a_peer_closed_on_purpose_is_parked_and_dialed_when_announced_again() {
    let (mut policy, peer) = dialing_first();
    policy.on_discovered(peer, vec![quic(2)], false, Instant::now());
    connected_then_closed(&mut policy, peer, Duration::from_secs(70), Closed::OnPurpose).await;
    assert_eq!(policy.next_due(), None);
    assert_eq!(policy.unaccounted(), 0, "parked is a state of its own");
    assert_eq!(dials(&policy.on_discovered(peer, vec![quic(2)], false, Instant::now())), 1);
}

/// A peer said not to speak greet, then heard to greet us after its
/// connection closed, is dialed again (it would otherwise be in no state).
#[tokio::test(start_paused = true)]
async fn a_peer_found_to_speak_greet_after_it_left_is_dialed_again() {
    let (mut policy, peer) = dialing_first();
    policy.on_discovered(peer, vec![quic(2)], false, Instant::now());
    policy.on_connected(peer, Instant::now());
    policy.on_identify(peer, false, Instant::now());
    policy.on_disconnected(peer, Closed::Error, Instant::now());
    assert_eq!(policy.next_due(), None);
    policy.on_identify(peer, true, Instant::now());
    assert_eq!(policy.unaccounted(), 0);
    assert_eq!(policy.next_due(), Some(Instant::now() + REDIAL_MIN));
}

/// The waiting side extends its wait once when a connection from the
/// peer's address begins: the other side's dial is on its way.
#[tokio::test(start_paused = true)]
async fn a_connection_from_the_peer_extends_the_wait_once() {
    let (first, greater) = dialing_first();
    let smaller = first.local;
    let mut policy = Lifecycle::new(greater).without_jitter();
    let start = Instant::now();
    policy.on_discovered(smaller, vec![quic(1), tcp(1)], false, start);
    tokio::time::advance(Duration::from_millis(1500)).await;
    policy.on_incoming("10.0.0.9".parse().unwrap(), Instant::now());
    assert_eq!(policy.next_due(), Some(start + DIAL_YIELD), "another address: no change");
    policy.on_incoming("10.0.0.1".parse().unwrap(), Instant::now());
    assert_eq!(policy.next_due(), Some(Instant::now() + DIAL_YIELD));
    tokio::time::advance(Duration::from_millis(1500)).await;
    policy.on_incoming("10.0.0.1".parse().unwrap(), Instant::now());
    assert_eq!(policy.next_due(), Some(start + Duration::from_millis(1500) + DIAL_YIELD), "once");
    tokio::time::advance(policy.next_due().unwrap() - Instant::now()).await;
    assert_eq!(dials(&policy.due(Instant::now())), 1, "the other's dial did not come after all: ours");

    // A back-off is not a wait for the other side: not extended.
    policy.on_dial_failed(smaller, Instant::now());
    let due = policy.next_due();
    policy.on_incoming("10.0.0.1".parse().unwrap(), Instant::now());
    assert_eq!(policy.next_due(), due);
}

mod invariant {
    //! The lifecycle's invariant over random event sequences: every peer
    //! mDNS knows, that may be dialed and is not banned, is at every moment
    //! connected, being dialed (a dial the simulated swarm really has under
    //! way), waiting for a dial at a known instant, or parked after a close
    //! on purpose (and only then); never none. Also: the cached count and
    //! next deadline equal what a scan of the table finds.

    use proptest::prelude::*;

    use super::*;

    const PEERS: usize = 4;

    #[derive(Debug, Clone)]
    enum Event {
        /// mDNS announces these addresses (indexes) of a peer; any dial it
        /// leads to is refused by the swarm on the spot if `refused`.
        Discover {
            peer: usize,
            addrs: Vec<u8>,
            refused: bool,
        },
        Expire {
            peer: usize,
            addr: u8,
        },
        /// The swarm's dial of the peer (if any) ends: connected, failed, or
        /// gone without a word.
        DialConnected(usize),
        DialFailed(usize),
        DialVanished(usize),
        /// The peer dials us.
        Inbound(usize),
        /// A connection from the peer's first address begins.
        IncomingFrom(usize),
        Disconnect {
            peer: usize,
            error: bool,
        },
        Identify {
            peer: usize,
            speaks: bool,
        },
        Ban(usize),
        Unban(usize),
        /// Time passes (ms); whatever is due is dialed, refused if `refused`.
        Advance {
            ms: u64,
            refused: bool,
        },
    }

    fn event() -> impl Strategy<Value = Event> {
        let peer = 0..PEERS;
        prop_oneof![
            3 => (peer.clone(), proptest::collection::vec(0u8..4, 0..4), any::<bool>())
                .prop_map(|(peer, addrs, refused)| Event::Discover { peer, addrs, refused }),
            1 => (peer.clone(), 0u8..4).prop_map(|(peer, addr)| Event::Expire { peer, addr }),
            2 => peer.clone().prop_map(Event::DialConnected),
            2 => peer.clone().prop_map(Event::DialFailed),
            1 => peer.clone().prop_map(Event::DialVanished),
            1 => peer.clone().prop_map(Event::Inbound),
            1 => peer.clone().prop_map(Event::IncomingFrom),
            2 => (peer.clone(), any::<bool>()).prop_map(|(peer, error)| Event::Disconnect { peer, error }),
            1 => (peer.clone(), prop::bool::weighted(0.8)).prop_map(|(peer, speaks)| Event::Identify { peer, speaks }),
            1 => peer.clone().prop_map(Event::Ban),
            1 => peer.prop_map(Event::Unban),
            3 => (0u64..40_000, any::<bool>()).prop_map(|(ms, refused)| Event::Advance { ms, refused }),
        ]
    }

    /// The world as the swarm sees it, for one peer.
    #[derive(Debug, Default, Clone)]
    struct Real {
        /// What mDNS currently knows of it (as the policy was told).
        addrs: Vec<Multiaddr>,
        connected: bool,
        dialing: bool,
        speaks: Option<bool>,
        banned: bool,
        /// Closed on purpose since mDNS last announced it.
        closed_on_purpose: bool,
    }

    fn address(peer: usize, index: u8) -> Multiaddr {
        let host = 10 + peer;
        match index {
            0 => addr(&format!("/ip4/10.0.{host}.1/udp/4001/quic-v1")),
            1 => addr(&format!("/ip4/10.0.{host}.1/tcp/4001")),
            2 => addr(&format!("/ip4/10.0.{host}.2/udp/4001/quic-v1")),
            _ => addr(&format!("/ip4/10.0.{host}.2/tcp/4001")),
        }
    }

    struct World {
        policy: Lifecycle,
        ids: Vec<PeerId>,
        real: Vec<Real>,
        now: Instant,
    }

    impl World {
        fn new() -> Self {
            let mut ids: Vec<PeerId> = (0..=PEERS as u8)
                .map(|i| {
                    libp2p::identity::Keypair::ed25519_from_bytes([i + 1; 32]).unwrap().public().to_peer_id()
                })
                .collect();
            ids.sort();
            // Two peers below us (we wait for them) and two above (we dial first).
            let local = ids.remove(2);
            Self {
                policy: Lifecycle::new(local).without_jitter(),
                ids,
                real: vec![Real::default(); PEERS],
                now: Instant::now(),
            }
        }

        fn index(&self, peer_id: &PeerId) -> usize {
            self.ids.iter().position(|id| id == peer_id).unwrap()
        }

        /// What the event loop does with decisions.
        fn apply(&mut self, decisions: Vec<Decision>, refused: bool) {
            for decision in decisions {
                let Decision::Dial { peer_id, addresses } = decision else { continue };
                assert!(!addresses.is_empty(), "a dial with no address");
                let i = self.index(&peer_id);
                let real = &mut self.real[i];
                if real.banned || refused {
                    self.policy.on_dial_failed(peer_id, self.now);
                } else if real.connected {
                    self.policy.on_connected(peer_id, self.now);
                } else if !real.dialing {
                    real.dialing = true;
                }
            }
        }

        fn on(&mut self, event: Event) {
            let now = self.now;
            match event {
                Event::Discover { peer, addrs, refused } => {
                    let addrs: Vec<Multiaddr> = addrs.into_iter().map(|a| address(peer, a)).collect();
                    if addrs.is_empty() {
                        return;
                    }
                    let real = &mut self.real[peer];
                    for a in &addrs {
                        if !real.addrs.contains(a) {
                            real.addrs.push(a.clone());
                        }
                    }
                    real.closed_on_purpose = false;
                    let decisions = self.policy.on_discovered(self.ids[peer], addrs, real.connected, now);
                    self.apply(decisions, refused);
                }
                Event::Expire { peer, addr } => {
                    let a = address(peer, addr);
                    self.real[peer].addrs.retain(|x| *x != a);
                    self.policy.on_expired(self.ids[peer], &a);
                }
                Event::DialConnected(peer) => {
                    let real = &mut self.real[peer];
                    if std::mem::take(&mut real.dialing)
                        && !real.banned
                        && !std::mem::replace(&mut real.connected, true)
                    {
                        self.policy.on_connected(self.ids[peer], now);
                    }
                }
                Event::DialFailed(peer) => {
                    let real = &mut self.real[peer];
                    // The event loop reports a failure only while not connected.
                    if std::mem::take(&mut real.dialing) && !real.connected {
                        self.policy.on_dial_failed(self.ids[peer], now);
                    }
                }
                Event::DialVanished(peer) => self.real[peer].dialing = false,
                Event::Inbound(peer) => {
                    let real = &mut self.real[peer];
                    if !real.banned && !std::mem::replace(&mut real.connected, true) {
                        self.policy.on_connected(self.ids[peer], now);
                    }
                }
                Event::IncomingFrom(peer) => {
                    let ip = std::net::Ipv4Addr::new(10, 0, 10 + peer as u8, 1);
                    self.policy.on_incoming(ip.into(), now);
                }
                Event::Disconnect { peer, error } => self.disconnect(peer, error),
                Event::Identify { peer, speaks } => {
                    if self.real[peer].connected {
                        self.real[peer].speaks = Some(speaks);
                        self.policy.on_identify(self.ids[peer], speaks, now);
                    }
                }
                Event::Ban(peer) => {
                    self.real[peer].banned = true;
                    // The block list closes its connections (no cause: on purpose).
                    self.disconnect(peer, false);
                }
                Event::Unban(peer) => self.real[peer].banned = false,
                Event::Advance { ms, refused } => {
                    self.now += Duration::from_millis(ms);
                    let decisions = self.policy.due(self.now);
                    self.apply(decisions, refused);
                }
            }
        }

        fn disconnect(&mut self, peer: usize, error: bool) {
            let real = &mut self.real[peer];
            if std::mem::take(&mut real.connected) {
                real.closed_on_purpose = !error;
                let how = if error { Closed::Error } else { Closed::OnPurpose };
                self.policy.on_disconnected(self.ids[peer], how, self.now);
            }
        }

        fn check(&self) -> Result<(), TestCaseError> {
            for (i, real) in self.real.iter().enumerate() {
                let id = self.ids[i];
                let state = self.policy.peers.get(&id).map(|p| p.state);
                let wanted = !real.addrs.is_empty() && real.speaks != Some(false) && !real.banned;
                if let Some(State::Parked) = state {
                    prop_assert!(real.closed_on_purpose, "peer {i} parked but never closed on purpose");
                }
                if !wanted {
                    continue;
                }
                let accounted = real.connected
                    || real.dialing
                    || matches!(
                        state,
                        Some(State::Waiting(_) | State::Dialing(_) | State::Yielding { .. } | State::Parked)
                    );
                prop_assert!(accounted, "peer {i} left with nothing under way: {real:?}, policy: {state:?}");
                if let Some(State::Waiting(at) | State::Dialing(at) | State::Yielding { until: at, .. }) =
                    state
                {
                    prop_assert!(at > self.now, "peer {i}: a deadline in the past ({state:?}) after `due`");
                }
            }
            // The cached figures are what a scan finds.
            let scanned = self.policy.peers.values().filter(|p| p.unaccounted()).count();
            prop_assert_eq!(self.policy.unaccounted(), scanned);
            prop_assert_eq!(self.policy.unaccounted(), 0);
            let next = self.policy.peers.values().filter_map(Peer::deadline).min();
            prop_assert_eq!(self.policy.next_due(), next);
            let with_deadline = self.policy.peers.values().filter(|p| p.deadline().is_some()).count();
            prop_assert_eq!(self.policy.deadlines.len(), with_deadline);
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn no_dialable_peer_is_ever_left_with_nothing_under_way(events in proptest::collection::vec(event(), 1..80)) {
            let mut world = World::new();
            for event in events {
                world.on(event);
                world.check()?;
            }
        }
    }
}

/// libp2p-mdns reports `.../p2p/<peer>`, our js-style listener the bare
/// address: one address, kept and dialed once (a 64-node run dialed both
/// forms in turn, four attempts for two addresses, 30 s before a failure).
#[tokio::test(start_paused = true)]
async fn an_address_with_and_without_the_peer_id_is_one_address() {
    let (mut policy, peer) = dialing_first();
    let with_id = quic(2).with(Protocol::P2p(peer));
    let decisions = policy.on_discovered(peer, vec![with_id, tcp(2)], false, Instant::now());
    assert_eq!(decisions.last(), Some(&Decision::Dial { peer_id: peer, addresses: vec![quic(2), tcp(2)] }));
    policy.on_dial_failed(peer, Instant::now());
    tokio::time::advance(REDIAL_MIN).await;
    policy.on_discovered(peer, vec![quic(2)], false, Instant::now());
    assert_eq!(
        policy.due(Instant::now()),
        vec![Decision::Dial { peer_id: peer, addresses: vec![quic(2), tcp(2)] }]
    );
    // Another peer's id in an address is not this peer's address form: left as it is.
    let other = quic(2).with(Protocol::P2p(PeerId::random()));
    policy.on_discovered(peer, vec![other.clone()], false, Instant::now());
    assert_eq!(policy.peers[&peer].addresses, vec![quic(2), other, tcp(2)]);
}
