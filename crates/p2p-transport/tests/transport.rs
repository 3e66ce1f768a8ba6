//! Real swarms on 127.0.0.1 (mDNS off), driven through the public API the way
//! a user would. Every wait has a deadline; nothing sleeps.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use p2p_protocol::{ErrorCode, Greet, GreetRequest, encode};
use p2p_service::{Limits, stack};
use p2p_transport::libp2p::{Multiaddr, multiaddr::Protocol};
use p2p_transport::{GreetVersion, NodeBuilder, NodeEvent, RequestError};
use tower::discover::Change;
use tower::{Service, ServiceExt};

use common::*;

// ---- 1. greet both ways -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_greet_each_other_both_ways_over_quic_and_tcp_v1_and_v2() {
    for (transport, v2) in
        [(Transport::Quic, true), (Transport::Tcp, true), (Transport::Quic, false), (Transport::Tcp, false)]
    {
        let mut a = spawn_with(Script::new("a"), transport.clone(), |n| n.greet_v2(v2)).await;
        let mut b = spawn_with(Script::new("b"), transport.clone(), |n| n.greet_v2(v2)).await;
        connect(&mut a, &b).await;
        let a_id = a.peer_id();
        b.wait_for(
            "identify of the dialer",
            |e| matches!(e, NodeEvent::Capable { peer_id, .. } if *peer_id == a_id),
        )
        .await;

        let from_b = a.greet(&b, "hello b").await.unwrap_or_else(|e| panic!("{transport:?}: {e}"));
        assert_eq!(from_b.message, "b: hello b", "{transport:?}");
        let from_a = b.greet(&a, "hello a").await.unwrap_or_else(|e| panic!("{transport:?}: {e}"));
        assert_eq!(from_a.message, "a: hello a", "{transport:?}");
        // The responder reports where it sees the requester.
        assert!(from_b.observed_addr.to_string().starts_with("/ip4/127.0.0.1/"), "{}", from_b.observed_addr);
        assert_eq!(a.node.peers_speaking::<Greet>(), vec![b.peer_id()]);
        let used = if v2 { GreetVersion::V2 } else { GreetVersion::V1 };
        assert_eq!(a.node.client::<Greet>().protocol_for(&b.peer_id()), used, "{transport:?}");
        assert_eq!(b.node.client::<Greet>().protocol_for(&a.peer_id()), used, "{transport:?}");
        a.node.shutdown().await;
        b.node.shutdown().await;
    }
}

// ---- 2. slow-handler isolation ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_stuck_on_one_peer_does_not_delay_another() {
    let s = spawn_node(Script::new("s"), Transport::Quic).await;
    let mut a = spawn_node(Script::new("a"), Transport::Quic).await;
    let mut b = spawn_node(Script::new("b"), Transport::Quic).await;
    connect(&mut a, &s).await;
    connect(&mut b, &s).await;
    s.script.hold(a.peer_id());

    let client = a.node.client::<Greet>();
    let s_id = s.peer_id();
    let a_pending = tokio::spawn(client.oneshot((s_id, GreetRequest::new("slow"))));
    assert_eq!(s.script.next_held_arrival().await, a.peer_id());

    // A's request is stuck in S's handler; B is served all the same.
    for i in 0..5 {
        let response = b.greet(&s, &format!("fast {i}")).await.expect("B is served");
        assert_eq!(response.message, format!("s: fast {i}"));
    }
    assert!(!a_pending.is_finished(), "A's request is still held");

    s.script.release.add_permits(1);
    let response = within("the held request", a_pending).await.unwrap().expect("A is answered once released");
    assert_eq!(response.message, "s: slow");
}

// ---- 3. handler error -> 500 --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_error_is_a_remote_500_and_the_next_request_works() {
    let s = spawn_node(Script::new("s"), Transport::Quic).await;
    let mut a = spawn_node(Script::new("a"), Transport::Quic).await;
    connect(&mut a, &s).await;

    match a.greet(&s, "fail").await {
        Err(RequestError::Remote(err)) => {
            assert_eq!(err.code, ErrorCode::INTERNAL);
            assert_eq!(err.message, "internal error", "no internals on the wire");
        }
        other => panic!("expected 500, got {other:?}"),
    }
    assert_eq!(a.greet(&s, "again").await.unwrap().message, "s: again");

    // A handler that panics is a 500 too; the node and the connection carry on.
    for client in [
        a.node.client::<Greet>().peer(s.peer_id()).with_version(GreetVersion::V1),
        a.node.client::<Greet>().peer(s.peer_id()).with_version(GreetVersion::V2),
    ] {
        let answer = within("a panicking handler", client.clone().oneshot(GreetRequest::new("panic"))).await;
        assert_eq!(remote_code(answer), ErrorCode::INTERNAL);
        assert_eq!(
            within("after", client.oneshot(GreetRequest::new("after"))).await.unwrap().message,
            "s: after"
        );
    }
}

// ---- 4. hostile input on raw streams ----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_are_answered_with_codes_and_the_connection_lives_on() {
    let s = spawn_node(Script::new("s"), Transport::Quic).await;
    let mut control = raw_client(&s.addr).await;
    let peer = s.peer_id();

    let valid = framed(&encode(&GreetRequest::new("ok")));
    let mut trailing = encode(&GreetRequest::new("x"));
    trailing.push(0);
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        ("garbage body", framed(&[0xff, 0xff, 0xff]), ErrorCode::BAD_REQUEST),
        ("invalid utf-8", framed(&[0x02, 0xc3, 0x28]), ErrorCode::BAD_REQUEST),
        ("trailing bytes in the body", framed(&trailing), ErrorCode::BAD_REQUEST),
        ("declared 100,000 bytes", [vec![0xa0, 0x8d, 0x06], vec![0; 64]].concat(), ErrorCode::TOO_LARGE),
        ("declared 2^64-1", [vec![0xff; 9], vec![0x01]].concat(), ErrorCode::TOO_LARGE),
        ("over-long varint", vec![0x80; 11], ErrorCode::BAD_REQUEST),
        ("truncated frame", vec![0x0a, b'h', b'i'], ErrorCode::BAD_REQUEST),
        ("empty stream", vec![], ErrorCode::BAD_REQUEST),
    ];
    // Every one, an oversized length too, is answered with its code on the
    // wire (never a bare reset), and the same connection still serves.
    assert_refused_then_served(&mut control, peer, cases, &valid, "s: ok").await;

    // Many streams at once, half of them garbage: every one is answered.
    let mut handles = Vec::new();
    for i in 0..40 {
        let mut control = control.clone();
        let bytes = if i % 2 == 0 { valid.clone() } else { framed(&[0xff; 8]) };
        handles.push(tokio::spawn(async move { (i, send_raw(&mut control, peer, &bytes).await) }));
    }
    for handle in handles {
        let (i, answer) = handle.await.unwrap();
        match answer.unwrap_or_else(|e| panic!("stream {i}: {e}")) {
            Ok(response) => assert_eq!((i % 2, response.message.as_str()), (0, "s: ok")),
            Err(err) => assert_eq!((i % 2, err.code), (1, ErrorCode::BAD_REQUEST)),
        }
    }
}

// ---- 5. a peer killed mid-request -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_request_fails_the_request_when_the_connection_drops() {
    // Over TCP the killed process's socket is closed by the kernel, so the
    // loss is seen at once; the request timeout (30 s) is far away. (Over
    // QUIC a dead peer sends nothing: QUIC's idle timeout finds it.)
    let script = Script::new("doomed");
    let (runtime, addr, doomed) = spawn_killable(Arc::clone(&script), Transport::Tcp);
    let doomed = doomed.local_peer_id();
    let a =
        spawn_with(Script::new("a"), Transport::Tcp, |b| b.request_timeout(Duration::from_secs(30))).await;
    a.node.dial(addr).await.unwrap();
    script.hold(a.peer_id());

    let started = tokio::time::Instant::now();
    let pending =
        tokio::spawn(a.node.client::<Greet>().oneshot((doomed, GreetRequest::new("are you there?"))));
    script.next_held_arrival().await;
    runtime.shutdown_background();

    let result = within("the failed request", pending).await.unwrap();
    assert!(matches!(result, Err(RequestError::ConnectionClosed | RequestError::Io(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_request_leaves_no_task_or_service_behind() {
    let mut s = spawn_node(Script::new("s"), Transport::Quic).await;
    let (runtime, _, doomed) = spawn_killable(Script::new("doomed"), Transport::Quic);
    let doomed_id = doomed.local_peer_id();
    doomed.dial(s.addr.clone()).await.unwrap();
    s.script.hold(doomed_id);
    let pending = tokio::spawn(doomed.client::<Greet>().oneshot((s.peer_id(), GreetRequest::new("hold me"))));
    assert_eq!(s.script.next_held_arrival().await, doomed_id);

    runtime.shutdown_background();
    s.wait_for(
        "the killed peer to disconnect",
        |e| matches!(e, NodeEvent::Disconnected { peer_id } if *peer_id == doomed_id),
    )
    .await;
    assert!(s.node.connected_peers().is_empty());
    // The handler finishes after its requester is gone: the answer is dropped
    // quietly, and with it the last piece of the peer's service.
    s.script.release.add_permits(1);
    let mut live = s.script.live.subscribe();
    within("the peer's service to be dropped", live.wait_for(|n| *n == 0)).await.unwrap();
    // The request on the killed node fails (its swarm task is gone), never hangs.
    let result = within("the killed node's own request", pending).await.unwrap();
    assert!(result.is_err(), "{result:?}");
    // S still serves others.
    let mut b = spawn_node(Script::new("b"), Transport::Quic).await;
    connect(&mut b, &s).await;
    assert_eq!(b.greet(&s, "still there?").await.unwrap().message, "s: still there?");
}

// ---- 6. discover + Balance ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_tracks_greet_peers_and_balance_spreads_requests() {
    use tower::balance::p2c::Balance;
    use tower::load::{CompleteOnResponse, PendingRequestsDiscover};

    let mut c = spawn_node(Script::new("c"), Transport::Quic).await;
    let s1 = spawn_node(Script::new("s1"), Transport::Quic).await;
    let s2 = spawn_node(Script::new("s2"), Transport::Quic).await;
    let mut discover = c.node.discover::<Greet>();
    connect(&mut c, &s1).await;
    connect(&mut c, &s2).await;

    let mut inserted = Vec::new();
    while inserted.len() < 2 {
        match within("insertions", discover.next()).await.unwrap().unwrap() {
            Change::Insert(peer, client) => {
                assert_eq!(client.peer_id(), peer);
                inserted.push(peer);
            }
            Change::Remove(peer) => panic!("unexpected removal of {peer}"),
        }
    }
    inserted.sort();
    let mut expected = vec![s1.peer_id(), s2.peer_id()];
    expected.sort();
    assert_eq!(inserted, expected);

    // Balance over a fresh Discover: 40 requests land on both servers.
    let mut balance =
        Balance::new(PendingRequestsDiscover::new(c.node.discover::<Greet>(), CompleteOnResponse::default()));
    let mut answers = Vec::new();
    for i in 0..40 {
        let request = GreetRequest::new(format!("req {i}"));
        let response = within("a balanced request", async {
            balance.ready().await.unwrap().call(request).await.unwrap()
        })
        .await;
        answers.push(response.message);
    }
    let (on_s1, on_s2) = (s1.script.calls_from(c.peer_id()), s2.script.calls_from(c.peer_id()));
    assert_eq!(on_s1 + on_s2, 40);
    assert!(on_s1 > 0 && on_s2 > 0, "spread: s1 {on_s1}, s2 {on_s2}");

    // A server that goes away leaves the set.
    let s2_id = s2.peer_id();
    s2.node.shutdown().await;
    match within("the removal", discover.next()).await.unwrap().unwrap() {
        Change::Remove(peer) => assert_eq!(peer, s2_id),
        Change::Insert(peer, _) => panic!("unexpected insertion of {peer}"),
    }
}

// ---- 8. shutdown -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_an_in_flight_request_then_refuses_new_ones() {
    let s = spawn_node(Script::new("s"), Transport::Quic).await;
    let mut a = spawn_node(Script::new("a"), Transport::Quic).await;
    connect(&mut a, &s).await;
    // Only this request is held: a "new" one that lands before the drain
    // begins is answered 200 (holding every request of A's raced the drain).
    s.script.hold_message("finish me");

    let in_flight =
        tokio::spawn(a.node.client::<Greet>().oneshot((s.peer_id(), GreetRequest::new("finish me"))));
    s.script.next_held_arrival().await;
    let shutting_down = tokio::spawn({
        let node = s.node.clone();
        async move { node.shutdown().await }
    });
    // The drain has begun once a new 1.0.0 request is refused "shutting down" (503).
    let v1 = a.node.client::<Greet>().peer(s.peer_id()).with_version(GreetVersion::V1);
    within("the drain to begin", async {
        loop {
            match v1.clone().oneshot(GreetRequest::new("new")).await {
                Err(RequestError::Remote(e)) if e.code == ErrorCode::OVERLOADED => break,
                Ok(_) => tokio::task::yield_now().await,
                Err(other) => panic!("before or during the drain, 200 or 503: {other:?}"),
            }
        }
    })
    .await;
    assert!(!shutting_down.is_finished(), "the drain waits for the held request");
    // While S drains, the held request is still answered...
    s.script.release.add_permits(1);
    let response =
        within("the drained request", in_flight).await.unwrap().expect("answered during the drain");
    assert_eq!(response.message, "s: finish me");
    within("shutdown to complete", shutting_down).await.unwrap();

    // ...and afterwards nothing is: S's own client says so at once, and A can't reach S.
    let own =
        within("S's client", s.node.client::<Greet>().oneshot((a.peer_id(), GreetRequest::new("x")))).await;
    assert_eq!(own.unwrap_err(), RequestError::Shutdown);
    assert!(a.greet(&s, "anyone?").await.is_err());
    // Shutting down twice is fine.
    within("a second shutdown", s.node.shutdown()).await;
}

// ---- the service stack's codes reach the wire ------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_and_load_shedding_are_visible_on_the_wire() {
    let limits = Limits { rate_per_sec: 1, rate_burst: 3, ..Limits::default() };
    let script = Script::new("s");
    let (node, mut events) = NodeBuilder::new()
        .mdns(false)
        .listen_on(Transport::Quic.listen())
        .build(stack(MakeHandler(Arc::clone(&script)), limits))
        .unwrap();
    let addr = loop {
        if let Some(NodeEvent::Listening { address }) = within("listening", events.recv()).await {
            break address.with(Protocol::P2p(node.local_peer_id()));
        }
    };
    let s = TestNode { node, events, addr, script };
    let mut a = spawn_node(Script::new("a"), Transport::Quic).await;
    connect(&mut a, &s).await;
    let messages: Vec<String> = (0..5).map(|i| i.to_string()).collect();
    let codes: Vec<Option<ErrorCode>> = futures::future::join_all(messages.iter().map(|m| a.greet(&s, m)))
        .await
        .into_iter()
        .map(|r| r.err().map(|e| remote_code(Err(e))))
        .collect();
    assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 3, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == Some(ErrorCode::RATE_LIMITED)).count(), 2, "{codes:?}");

    // Load shedding: with 2 requests of a peer held, a third is answered 503 at once.
    let limits = Limits { rate_per_sec: 0, max_in_flight_per_peer: 2, ..Limits::default() };
    let shedding = spawn_limited(Script::new("shed"), Transport::Quic, limits, |n| n).await;
    connect(&mut a, &shedding).await;
    shedding.script.hold_message("hold");
    let held: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(a.node.client::<Greet>().oneshot((shedding.peer_id(), GreetRequest::new("hold"))))
        })
        .collect();
    for _ in 0..2 {
        shedding.script.next_held_arrival().await;
    }
    let third = within("the shed request", a.greet(&shedding, "hold")).await;
    assert_eq!(remote_code(third), ErrorCode::OVERLOADED);
    shedding.script.release.add_permits(2);
    for request in held {
        assert_eq!(within("held", request).await.unwrap().unwrap().message, "shed: hold");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_resolves_once_connected_with_the_peer_or_with_the_dial_error() {
    let a = spawn_node(Script::new("a"), Transport::Quic).await;
    let b = spawn_node(Script::new("b"), Transport::Tcp).await;

    // With /p2p/: that peer, and a second call is answered from the live connection.
    let peer = within("connect", a.node.connect(b.addr.clone())).await.expect("connects");
    assert_eq!(peer, b.peer_id());
    assert!(a.node.connected_peers().contains(&b.peer_id()), "connected when connect resolves");
    assert_eq!(within("again", a.node.connect(b.addr.clone())).await, Ok(b.peer_id()));

    // Without /p2p/: whoever answers at the address.
    let bare: Multiaddr = b.addr.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect();
    let c = spawn_node(Script::new("c"), Transport::Tcp).await;
    assert_eq!(within("bare", c.node.connect(bare)).await, Ok(b.peer_id()));

    // Nobody listening: the dial's own error, at once, not a hang.
    let dead: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
    match within("dead", a.node.connect(dead)).await {
        Err(RequestError::Unreachable(reason)) => assert!(!reason.contains('\n'), "one line: {reason}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
}
