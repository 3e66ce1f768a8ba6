//! The per-peer state of the default stack, through its public API as the
//! transport drives it: shared by a peer's connections, kept across
//! reconnects; and a handler that is not ready sheds at once.
//!
//! Time is always paused: deadlines and refills are reached with `tokio::time::advance`.

use std::time::Duration;

use libp2p_identity::PeerId;
use p2p_protocol::{ErrorCode, GreetRequest, GreetResponse, RemoteError};
use p2p_service::{Limits, MakeGreeter, PeerService, stack};
use tokio::time::advance;
use tower::ServiceBuilder;
use tower_test::mock;

mod common;

use common::*;

// ----- per-peer state: shared by a peer's connections, kept across reconnects -----

#[tokio::test(start_paused = true)]
async fn the_connections_of_one_peer_share_its_token_bucket() {
    let limits = Limits { rate_per_sec: 1, rate_burst: 3, ..no_limits() };
    let mut make = stack(MakeGreeter::new("hi"), limits);
    let peer = PeerId::random();
    let first = make_for(&mut make, connection(peer, 1)).await;
    let second = make_for(&mut make, connection(peer, 2)).await;
    let other = make_for(&mut make, ctx(3)).await;

    assert_eq!(code(&ask_now(&first, "1")), 200);
    assert_eq!(code(&ask_now(&first, "2")), 200);
    assert_eq!(code(&ask_now(&second, "3")), 200);
    assert_eq!(code(&ask_now(&second, "4")), 429, "the second connection's bucket is the first's");
    assert_eq!(code(&ask_now(&first, "5")), 429);
    assert_eq!(code(&ask_now(&other, "6")), 200, "another peer has a bucket of its own");
}

#[tokio::test(start_paused = true)]
async fn the_connections_of_one_peer_share_its_in_flight_slots() {
    let limits = Limits { max_in_flight_per_peer: 2, ..no_limits() };
    let (handler, mut handle) = mock::pair::<GreetRequest, GreetResponse>();
    let mut make = stack(clones_of(handler), limits);
    let peer = PeerId::random();
    let first = make_for(&mut make, connection(peer, 1)).await;
    let second = make_for(&mut make, connection(peer, 2)).await;
    let other = make_for(&mut make, ctx(3)).await;

    let mut held = [send(&first, "1"), send(&second, "2")];
    for request in &mut held {
        assert_eq!(answer_now(request), None);
    }
    assert_eq!(ask_now(&first, "3"), overloaded(), "the peer's two slots are taken, one per connection");
    assert_eq!(ask_now(&second, "4"), overloaded());
    let mut elsewhere = send(&other, "5");
    assert_eq!(answer_now(&mut elsewhere), None, "another peer has slots of its own");

    for _ in 0..3 {
        let (request, reply) = handle.next_request().await.unwrap();
        reply.send_response(response(&request.message));
    }
    for (request, message) in held.iter_mut().zip(["1", "2"]) {
        assert_eq!(answer_now(request), Some(Ok(response(message))));
    }
    let mut again = send(&second, "6");
    assert_eq!(answer_now(&mut again), None, "the slots are free again: it reaches the handler");
}

#[tokio::test(start_paused = true)]
async fn a_reconnecting_peer_finds_its_bucket_drained_until_it_refills() {
    let limits = Limits { rate_per_sec: 10, rate_burst: 3, ..no_limits() };
    let mut make = stack(MakeGreeter::new("hi"), limits);
    let peer = PeerId::random();
    let first = make_for(&mut make, connection(peer, 1)).await;
    let codes: Vec<u16> = (0..4).map(|_| code(&ask_now(&first, "hi"))).collect();
    assert_eq!(codes, [200, 200, 200, 429]);
    drop(first); // the peer's last connection closes

    let again = make_for(&mut make, connection(peer, 2)).await;
    assert_eq!(code(&ask_now(&again, "hi")), 429, "a reconnect must not refill the bucket");
    advance(Duration::from_millis(100)).await;
    let answer = ask_now(&again, "hi").expect("one token back after 100 ms");
    assert_eq!(answer.observed_addr, connection(peer, 2).remote_addr, "the new connection's address");
    assert_eq!(code(&ask_now(&again, "hi")), 429);
    drop(again);

    // Full again after 300 ms: remembered or not, the peer gets its whole burst, and no more.
    advance(Duration::from_millis(300)).await;
    let later = make_for(&mut make, connection(peer, 3)).await;
    let codes: Vec<u16> = (0..4).map(|_| code(&ask_now(&later, "hi"))).collect();
    assert_eq!(codes, [200, 200, 200, 429]);
}

// ----- readiness: a handler that is not ready sheds, nothing waits -----

#[tokio::test(start_paused = true)]
async fn a_handler_at_its_concurrency_limit_sheds_the_fifth_request_at_once_and_the_four_time_out() {
    let deadline = Duration::from_secs(5);
    let limits = Limits { request_timeout: Some(deadline), ..Limits::default() };
    // As in the README: a handler with tower's concurrency limit, here one that never finishes.
    let handler = ServiceBuilder::new().concurrency_limit(4).service(stuck());
    let [peer] = <[PeerService; 1]>::try_from(peers(handler, limits, 1).await).unwrap();

    let mut requests: Vec<InFlight> = (0..5).map(|i| send(&peer, &i.to_string())).collect();
    let (fifth, four) = requests.split_last_mut().unwrap();
    for request in four.iter_mut() {
        assert_eq!(answer_now(request), None);
    }
    assert_eq!(answer_now(fifth), Some(overloaded()), "the fifth is shed at once, not queued");

    advance(deadline - Duration::from_millis(1)).await;
    for request in four.iter_mut() {
        assert_eq!(answer_now(request), None, "answered before the deadline");
    }
    advance(Duration::from_millis(1)).await;
    for request in four.iter_mut() {
        assert_eq!(answer_now(request), Some(Err(RemoteError::new(ErrorCode::TIMEOUT, "request timed out"))));
    }
    // All four slots are free again (the shed request, its clone dropped with
    // its `oneshot`, holds no place in the semaphore's queue): four requests
    // reach the handler, a fifth is shed.
    let mut next: Vec<InFlight> = (0..5).map(|i| send(&peer, &format!("next {i}"))).collect();
    let codes: Vec<Option<u16>> =
        next.iter_mut().map(|request| answer_now(request).as_ref().map(code)).collect();
    assert_eq!(codes, [None, None, None, None, Some(503)]);
}

#[tokio::test(start_paused = true)]
async fn a_handler_not_ready_past_the_deadline_is_answered_503_at_once_not_408() {
    // 503 at once, not 408 at the deadline: see the `shed_unready` module docs for why.
    let deadline = Duration::from_secs(1);
    let (handler, mut handle) = mock::pair::<GreetRequest, GreetResponse>();
    handle.allow(0); // `poll_ready` is `Pending` until further notice
    let limits = Limits { request_timeout: Some(deadline), max_in_flight_per_peer: 1, ..no_limits() };
    let [peer] = <[PeerService; 1]>::try_from(peers(handler, limits, 1).await).unwrap();

    let mut request = send(&peer, "hi");
    assert_eq!(answer_now(&mut request), Some(overloaded()));
    assert_eq!(ask_now(&peer, "again"), overloaded(), "and it left no in-flight slot taken");
    advance(deadline * 2).await;
    assert!(handle.poll_request().is_pending(), "the handler was never called");

    handle.allow(1);
    let mut ready_now = send(&peer, "ready");
    assert_eq!(answer_now(&mut ready_now), None, "a ready handler is called");
    let (request, reply) = handle.next_request().await.unwrap();
    reply.send_response(response(&request.message));
    assert_eq!(answer_now(&mut ready_now), Some(Ok(response("ready"))));
}
