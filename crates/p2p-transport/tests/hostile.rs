//! Peers that are well-formed and adversarial: Sybil observers, crowds of
//! connections, floods that end in bans; and the per-connection view a peer
//! is given. Real swarms on 127.0.0.x with mDNS off.

mod common;

use std::time::Duration;

use p2p_protocol::{ErrorCode, Greet, GreetRequest};
use p2p_service::Limits;
use p2p_transport::libp2p::{Multiaddr, multiaddr::Protocol};
use p2p_transport::{BanConfig, GreetVersion, NodeEvent, RequestError};
use tower::ServiceExt;

use common::*;

// ---- 7. external addresses -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observed_address_is_confirmed_by_two_observer_hosts_not_by_one_or_by_sybils() {
    let mut a = spawn_node(Script::new("a"), Transport::Quic).await;
    // Two honest peers, each on a host (loopback address) of its own.
    let b = spawn_on_host(Script::new("b"), 2).await;
    let c = spawn_on_host(Script::new("c"), 3).await;
    // Three identities on one host, all lying alike about A's address.
    let fake: Multiaddr = "/ip4/198.51.100.66/udp/6666/quic-v1".parse().unwrap();
    let fake = fake.replace(1, |_| a.addr.iter().nth(1)).unwrap(); // on A's real port
    let mut sybils = Vec::new();
    for name in ["sybil-1", "sybil-2", "sybil-3"] {
        sybils.push(spawn_on_host(Script::liar(name, fake.clone()), 4).await);
    }

    // One honest host is not enough.
    connect(&mut a, &b).await;
    a.greet(&b, "one").await.unwrap();
    assert!(a.node.external_addrs().is_empty(), "{:?}", a.node.external_addrs());

    // Sybils agreeing, however many, are one observer: their made-up address
    // is never confirmed. (Their host's identify reports our real address
    // honestly, which makes it a second observer of that one.)
    for sybil in &sybils {
        connect(&mut a, sybil).await;
        for _ in 0..2 {
            assert_eq!(a.greet(sybil, "hi").await.unwrap().observed_addr, fake);
        }
    }
    assert!(!a.node.external_addrs().contains(&fake), "{:?}", a.node.external_addrs());

    // Honest hosts confirm the address they see, and only that one.
    connect(&mut a, &c).await;
    let listen = a.addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect::<Multiaddr>();
    assert_eq!(a.greet(&c, "three").await.unwrap().observed_addr, listen);
    within("confirmation", async {
        while a.node.external_addrs().is_empty() {
            a.events.recv().await;
        }
    })
    .await;
    assert_eq!(a.node.external_addrs(), vec![listen], "QUIC dials from the listen port: peers see it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_connections_are_capped_per_ip_and_in_total_and_outbound_dials_still_work() {
    // Per IP: identities from one host share its budget.
    let a = spawn_with(Script::new("a"), Transport::Quic, |n| n.max_incoming(None, Some(2))).await;
    let mut host_2: Vec<TestNode> = Vec::new();
    for _ in 0..3 {
        host_2.push(spawn_on_host(Script::new("crowd"), 2).await);
    }
    assert_eq!(within("1st", host_2[0].node.connect(a.addr.clone())).await, Ok(a.peer_id()));
    assert_eq!(within("2nd", host_2[1].node.connect(a.addr.clone())).await, Ok(a.peer_id()));
    // The third may complete its side of the handshake; A then refuses it at once.
    let third = host_2[2].peer_id();
    if within("3rd", host_2[2].node.connect(a.addr.clone())).await.is_ok() {
        let a_id = a.peer_id();
        host_2[2]
            .wait_for("refused", |e| matches!(e, NodeEvent::Disconnected { peer_id } if *peer_id == a_id))
            .await;
    }
    assert!(!a.node.connected_peers().contains(&third), "a third from one IP is refused");
    assert_eq!(a.node.connected_peers().len(), 2);
    let other_host = spawn_on_host(Script::new("other"), 3).await;
    assert_eq!(within("other host", other_host.node.connect(a.addr.clone())).await, Ok(a.peer_id()));

    // In total: a crowd of inbound connections leaves room for our own dials.
    let mut b = spawn_with(Script::new("b"), Transport::Quic, |n| n.max_incoming(Some(2), None)).await;
    let mut crowd = Vec::new(); // stays connected for the rest of the test
    for host in 4..6 {
        let client = spawn_on_host(Script::new("crowd"), host).await;
        assert_eq!(within("crowd", client.node.connect(b.addr.clone())).await, Ok(b.peer_id()));
        crowd.push(client);
    }
    let mut late = spawn_on_host(Script::new("late"), 6).await;
    if within("late", late.node.connect(b.addr.clone())).await.is_ok() {
        let b_id = b.peer_id();
        late.wait_for("refused", |e| matches!(e, NodeEvent::Disconnected { peer_id } if *peer_id == b_id))
            .await;
    }
    assert!(!b.node.connected_peers().contains(&late.peer_id()), "inbound is full");
    let friend = spawn_on_host(Script::new("friend"), 7).await;
    connect(&mut b, &friend).await;
    assert_eq!(b.greet(&friend, "still dialing out").await.unwrap().message, "friend: still dialing out");
    assert_eq!(
        b.node.connected_peers().len(),
        3,
        "the crowd was still connected: {:?}",
        b.node.connected_peers()
    );
    for node in crowd.iter().chain([&a, &b, &late, &friend, &other_host]).chain(&host_2) {
        within("a shutdown", node.node.shutdown()).await;
    }
}

/// Many identities hold the node-wide in-flight slots full with slow
/// requests; an honest peer asking one at a time, within its rate and its
/// share, is answered 503 each time (the node is full) and is never banned:
/// a 503 of the node-wide limit is not its doing. The flooders, who ask for
/// more than their own share, are banned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_peer_under_a_global_overload_collects_503s_and_is_never_banned_the_flooders_are() {
    const FLOODERS: usize = 2;
    const SHARE: usize = 2;
    let limits = Limits {
        rate_per_sec: 50,
        rate_burst: 50,
        max_in_flight_per_peer: SHARE,
        max_in_flight_total: FLOODERS * SHARE,
        request_timeout: Some(Duration::from_secs(60)),
    };
    let bans = BanConfig { threshold: 5, ..BanConfig::default() };
    let slow = |b: p2p_transport::NodeBuilder| b.request_timeout(Duration::from_secs(60));
    let mut s = spawn_limited(Script::new("s"), Transport::Quic, limits, move |b| slow(b).bans(bans)).await;
    s.script.hold_message("slow");
    let mut flooders = Vec::new();
    for host in 2..2 + FLOODERS as u8 {
        let mut flooder = spawn_with(
            Script::new("flooder"),
            Transport::At(format!("/ip4/127.0.0.{host}/udp/0/quic-v1").parse().unwrap()),
            slow,
        )
        .await;
        connect(&mut flooder, &s).await;
        flooders.push(flooder);
    }
    let mut honest = spawn_on_host(Script::new("honest"), 20).await;
    connect(&mut honest, &s).await;

    // The flooders fill every node-wide slot with requests the handler holds.
    let mut held = Vec::new();
    for flooder in &flooders {
        for _ in 0..SHARE {
            let client = flooder.node.client::<Greet>();
            let s_id = s.peer_id();
            held.push(tokio::spawn(client.oneshot((s_id, GreetRequest::new("slow")))));
        }
    }
    for _ in 0..FLOODERS * SHARE {
        s.script.next_held_arrival().await;
    }

    // The honest peer, one request at a time: 503 each time, three times the ban threshold.
    for i in 0..15 {
        let code = remote_code(honest.greet(&s, "hello").await);
        assert_eq!(code, ErrorCode::OVERLOADED, "honest request {i}");
    }
    // Then each flooder asks beyond its own share: its refusals are its doing.
    for flooder in &flooders {
        for _ in 0..5 {
            match flooder.greet(&s, "more").await {
                Err(RequestError::Remote(e)) => assert_eq!(e.code, ErrorCode::OVERLOADED),
                Err(_) => break, // the ban closed the connection before the fifth answer
                Ok(answer) => panic!("over its share, answered {answer:?}"),
            }
        }
    }
    // Refusals reach the ban policy in order (one bounded channel): by the
    // time the last flooder's ban is out, every honest 503 was counted or not.
    let mut banned = std::collections::HashSet::new();
    let honest_id = honest.peer_id();
    while banned.len() < FLOODERS {
        let NodeEvent::Banned { peer_id, .. } =
            s.wait_for("the flooders' bans", |e| matches!(e, NodeEvent::Banned { .. })).await
        else {
            unreachable!()
        };
        assert_ne!(peer_id, honest_id, "the honest peer was banned for a node others filled");
        banned.insert(peer_id);
    }
    let flooder_ids: std::collections::HashSet<_> = flooders.iter().map(|f| f.peer_id()).collect();
    assert_eq!(banned, flooder_ids);
    assert!(s.node.connected_peers().contains(&honest_id), "the honest peer is still connected");
    s.script.release.add_permits(FLOODERS * SHARE);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_refused_too_often_is_banned_disconnected_and_let_back_after_the_ban() {
    let limits = Limits { rate_per_sec: 1, rate_burst: 1, ..Limits::default() };
    let bans = BanConfig { threshold: 5, first: Duration::from_secs(2), ..BanConfig::default() };
    let mut s = spawn_limited(Script::new("s"), Transport::Quic, limits, |n| n.bans(bans)).await;
    let mut flooder = spawn_node(Script::new("flooder"), Transport::Quic).await;
    let mut neighbour = spawn_on_host(Script::new("neighbour"), 2).await;
    connect(&mut flooder, &s).await;
    connect(&mut neighbour, &s).await;

    // One answer, then 429s: the fifth refusal bans the flooder.
    let mut refused = 0;
    while refused < 5 {
        match flooder.greet(&s, "more").await {
            Err(RequestError::Remote(e)) if e.code == ErrorCode::RATE_LIMITED => refused += 1,
            Ok(_) => {}
            // The ban may close the connection before the fifth 429 leaves.
            Err(_) if refused == 4 => break,
            Err(other) => panic!("before the ban, 200 or 429 only: {other:?}"),
        }
    }
    let flooder_id = flooder.peer_id();
    let NodeEvent::Banned { duration, .. } =
        s.wait_for("ban", |e| matches!(e, NodeEvent::Banned { peer_id, .. } if *peer_id == flooder_id)).await
    else {
        unreachable!()
    };
    // The first ban's length, shortened at random by up to a tenth.
    assert!(duration <= Duration::from_secs(2) && duration >= Duration::from_millis(1800), "{duration:?}");
    let s_id = s.peer_id();
    flooder
        .wait_for("disconnected", |e| matches!(e, NodeEvent::Disconnected { peer_id } if *peer_id == s_id))
        .await;

    // While banned, it cannot come back; the neighbour is not touched.
    if within("redial", flooder.node.connect(s.addr.clone())).await.is_ok() {
        flooder
            .wait_for("refused", |e| matches!(e, NodeEvent::Disconnected { peer_id } if *peer_id == s_id))
            .await;
    }
    assert!(!s.node.connected_peers().contains(&flooder_id));
    assert_eq!(neighbour.greet(&s, "hi").await.unwrap().message, "s: hi");

    // After the ban, it may connect again.
    s.wait_for("unban", |e| matches!(e, NodeEvent::Unbanned { peer_id } if *peer_id == flooder_id)).await;
    assert_eq!(within("back", flooder.node.connect(s.addr.clone())).await, Ok(s_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_is_told_its_own_observed_address() {
    let tcp: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
    let mut s = spawn_with(Script::new("s"), Transport::Quic, |n| n.listen_on(tcp)).await;
    let a = spawn_with(Script::new("a"), Transport::Quic, |n| {
        n.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
    })
    .await;
    // `spawn_with` waited for the first listener; the other one is the next.
    s.wait_for("the second listener", |e| matches!(e, NodeEvent::Listening { .. })).await;
    let addrs = s.node.listen_addrs();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    // Two connections from A to S: one over QUIC, one over TCP.
    for addr in addrs {
        assert_eq!(within("connect", a.node.connect(addr)).await, Ok(s.peer_id()));
    }
    // libp2p spreads 1.0.0 requests over a peer's connections; each answer
    // names the address of the connection it came on.
    let client = a.node.client::<Greet>().peer(s.peer_id()).with_version(GreetVersion::V1);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let answer = within("greet", client.clone().oneshot(GreetRequest::new("where am I?"))).await.unwrap();
        seen.insert(answer.observed_addr.to_string());
    }
    assert_eq!(seen.len(), 2, "one observed address per connection: {seen:?}");
    assert!(
        seen.iter().any(|a| a.contains("/tcp/")) && seen.iter().any(|a| a.contains("/quic-v1")),
        "{seen:?}"
    );
}
