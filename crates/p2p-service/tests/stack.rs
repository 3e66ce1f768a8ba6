//! The default per-peer stack, driven through its public API as the transport drives it:
//! one `MakePeerService`, one `PeerService` per connection, one clone per request.
//!
//! Time is always paused: deadlines and refills are reached with `tokio::time::advance`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p_identity::PeerId;
use p2p_protocol::{ErrorCode, GreetRequest, GreetResponse, GreetResult, RemoteError};
use p2p_service::{BoxError, FaultReporter, Greeter, Limits, MakeGreeter, PeerFault, PeerService, stack};
use tokio::time::advance;
use tower::{Service, ServiceExt, service_fn};
use tower_test::mock;

mod common;

use common::*;

// ----- timeout: 408 -----

#[tokio::test(start_paused = true)]
async fn stuck_handler_is_answered_408_exactly_at_the_deadline() {
    let deadline = Duration::from_secs(5);
    let limits = Limits { request_timeout: Some(deadline), ..Limits::default() };
    let [peer] = <[PeerService; 1]>::try_from(peers(stuck(), limits, 1).await).unwrap();

    let mut request = send(&peer, "hello?");
    assert_eq!(answer_now(&mut request), None);
    advance(deadline - Duration::from_millis(1)).await;
    assert_eq!(answer_now(&mut request), None, "answered before the deadline");
    advance(Duration::from_millis(1)).await;
    assert_eq!(
        answer_now(&mut request),
        Some(Err(RemoteError::new(ErrorCode::TIMEOUT, "request timed out")))
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_deadline_a_stuck_handler_stays_pending() {
    let [peer] = <[PeerService; 1]>::try_from(peers(stuck(), no_limits(), 1).await).unwrap();
    let mut request = send(&peer, "hello?");
    assert_eq!(answer_now(&mut request), None);
    advance(Duration::from_secs(3600)).await;
    assert_eq!(answer_now(&mut request), None);
}

// ----- rate limit: 429 -----

#[tokio::test(start_paused = true)]
async fn a_peer_over_its_burst_gets_429_others_do_not_and_the_rate_recovers() {
    let limits = Limits { rate_per_sec: 10, rate_burst: 3, ..Limits::default() };
    let [a, b] = <[PeerService; 2]>::try_from(peers_of(MakeGreeter::new("hi"), limits, 2).await).unwrap();
    let rate_limited = Err(RemoteError::new(ErrorCode::RATE_LIMITED, "rate limited"));

    let codes: Vec<u16> = (0..4).map(|_| code(&ask_now(&a, "hi"))).collect();
    assert_eq!(codes, [200, 200, 200, 429], "burst + 1 requests from one peer");
    assert_eq!(ask_now(&a, "hi"), rate_limited);
    assert_eq!(code(&ask_now(&b, "hi")), 200, "another peer of the same MakePeerService is unaffected");

    // One token comes back every 100 ms, not before.
    advance(Duration::from_millis(99)).await;
    assert_eq!(ask_now(&a, "hi"), rate_limited);
    advance(Duration::from_millis(1)).await;
    assert_eq!(code(&ask_now(&a, "hi")), 200);
    assert_eq!(ask_now(&a, "hi"), rate_limited);

    // A quiet second refills the whole burst, and no more.
    advance(Duration::from_secs(1)).await;
    let codes: Vec<u16> = (0..4).map(|_| code(&ask_now(&a, "hi"))).collect();
    assert_eq!(codes, [200, 200, 200, 429]);
}

#[tokio::test(start_paused = true)]
async fn clones_of_a_peer_service_share_its_rate_limit() {
    let limits = Limits { rate_per_sec: 1, rate_burst: 2, ..Limits::default() };
    let [peer] = <[PeerService; 1]>::try_from(peers_of(MakeGreeter::new("hi"), limits, 1).await).unwrap();
    // Clones taken before any request, and used one after the other.
    let (first, second, third) = (peer.clone(), peer.clone(), peer.clone());
    assert_eq!(code(&ask_now(&first, "1")), 200);
    assert_eq!(code(&ask_now(&second, "2")), 200);
    assert_eq!(code(&ask_now(&third, "3")), 429);
    assert_eq!(code(&ask_now(&peer, "4")), 429);
}

#[tokio::test(start_paused = true)]
async fn rate_0_disables_the_rate_limit() {
    let limits = Limits { rate_per_sec: 0, rate_burst: 1, ..Limits::default() };
    let [peer] = <[PeerService; 1]>::try_from(peers_of(MakeGreeter::new("hi"), limits, 1).await).unwrap();
    assert!((0..1000).all(|_| code(&ask_now(&peer, "hi")) == 200));
}

// ----- in-flight limits: 503 -----

#[tokio::test(start_paused = true)]
async fn requests_beyond_an_in_flight_limit_get_503_at_once_until_slots_free_up() {
    struct Case {
        name: &'static str,
        per_peer: usize,
        total: usize,
        /// The peers whose requests are held in flight by the handler.
        held: &'static [usize],
        /// The peer that sends one more request, and whether it is shed.
        probe: usize,
        shed: bool,
    }
    let cases = [
        Case { name: "per-peer limit", per_peer: 2, total: 0, held: &[0, 0], probe: 0, shed: true },
        Case {
            name: "per-peer limit, other peer",
            per_peer: 2,
            total: 0,
            held: &[0, 0],
            probe: 1,
            shed: false,
        },
        Case {
            name: "global limit across peers",
            per_peer: 0,
            total: 2,
            held: &[0, 1],
            probe: 2,
            shed: true,
        },
        Case { name: "global limit, same peer", per_peer: 5, total: 2, held: &[0, 1], probe: 0, shed: true },
        Case { name: "both limits, room left", per_peer: 2, total: 3, held: &[0, 1], probe: 1, shed: false },
    ];
    for case in cases {
        let name = case.name;
        let limits =
            Limits { max_in_flight_per_peer: case.per_peer, max_in_flight_total: case.total, ..no_limits() };
        let (handler, mut handle) = mock::pair::<GreetRequest, GreetResponse>();
        let services = peers(handler, limits, 3).await;

        let mut held: Vec<InFlight> = case.held.iter().map(|&p| send(&services[p], "held")).collect();
        for request in &mut held {
            assert_eq!(answer_now(request), None, "{name}: held request answered");
        }
        let mut probe = send(&services[case.probe], "probe");
        match answer_now(&mut probe) {
            Some(answer) => {
                assert!(case.shed, "{name}: probe answered {answer:?}");
                assert_eq!(answer, Err(RemoteError::new(ErrorCode::OVERLOADED, "overloaded")), "{name}");
            }
            None => assert!(!case.shed, "{name}: probe not shed at once"),
        }

        // Let every request that reached the handler finish: the slots free up.
        let reached = case.held.len() + usize::from(!case.shed);
        for _ in 0..reached {
            let (request, reply) = handle.next_request().await.unwrap();
            reply.send_response(response(&request.message));
        }
        for request in &mut held {
            assert_eq!(answer_now(request), Some(Ok(response("held"))), "{name}");
        }
        if !case.shed {
            assert_eq!(answer_now(&mut probe), Some(Ok(response("probe"))), "{name}");
        }

        // The same request again now goes through.
        let mut again = send(&services[case.probe], "again");
        assert_eq!(answer_now(&mut again), None, "{name}: should reach the handler");
        let (request, reply) = handle.next_request().await.unwrap();
        reply.send_response(response(&request.message));
        assert_eq!(answer_now(&mut again), Some(Ok(response("again"))), "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_running_request_holds_its_peers_slot_even_across_a_reconnect_until_its_deadline() {
    let deadline = Duration::from_secs(1);
    let limits = Limits { request_timeout: Some(deadline), max_in_flight_per_peer: 1, ..no_limits() };
    for reconnect in [false, true] {
        let mut make = stack(clones_of(stuck()), limits.clone());
        let peer = PeerId::random();
        let first = make_for(&mut make, connection(peer, 1)).await;
        let mut running = send(&first, "1");
        assert_eq!(answer_now(&mut running), None);
        // A reconnect: the connection closes with its request still running, the peer comes back.
        let service = if reconnect {
            drop(first);
            make_for(&mut make, connection(peer, 2)).await
        } else {
            first
        };

        assert_eq!(ask_now(&service, "2"), overloaded(), "reconnect {reconnect}: the slot is taken");
        advance(deadline).await;
        assert_eq!(answer_now(&mut running).as_ref().map(code), Some(408));
        let mut third = send(&service, "3");
        assert_eq!(
            answer_now(&mut third),
            None,
            "reconnect {reconnect}: the slot is free again at the deadline"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_answers_before_the_in_flight_limit() {
    // A flooding peer is refused by its rate before it can take in-flight slots.
    let limits = Limits { rate_per_sec: 1, rate_burst: 1, max_in_flight_per_peer: 1, ..no_limits() };
    let [peer] = <[PeerService; 1]>::try_from(peers(stuck(), limits, 1).await).unwrap();
    let mut first = send(&peer, "1");
    assert_eq!(answer_now(&mut first), None);
    assert_eq!(code(&ask_now(&peer, "2")), 429);
}

// ----- error mapping: 500 and handler codes -----

/// A handler whose answer is chosen by the request's message.
fn moody() -> impl Service<GreetRequest, Response = GreetResponse, Error = BoxError, Future: Send> + Clone {
    service_fn(|request: GreetRequest| async move {
        match request.message.as_str() {
            "fail" => Err::<GreetResponse, BoxError>("db password is hunter2 at 10.1.2.3".into()),
            "io" => Err(std::io::Error::other("disk on fire").into()),
            "bad" => Err(RemoteError::new(ErrorCode::BAD_REQUEST, "say please").into()),
            "teapot" => Err(RemoteError::new(ErrorCode::from(418), "short and stout").into()),
            "busy" => Err(RemoteError::new(ErrorCode::OVERLOADED, "busy").into()),
            message => Ok(response(message)),
        }
    })
}

#[tokio::test(start_paused = true)]
async fn handler_errors_become_500_unless_the_handler_chose_a_remote_error() {
    let internal = RemoteError::new(ErrorCode::INTERNAL, "internal error");
    let cases: [(&str, GreetResult); 5] = [
        ("fail", Err(internal.clone())),
        ("io", Err(internal)),
        ("bad", Err(RemoteError::new(ErrorCode::BAD_REQUEST, "say please"))),
        ("teapot", Err(RemoteError::new(ErrorCode::from(418), "short and stout"))),
        ("fine", Ok(response("fine"))),
    ];
    let [peer] = <[PeerService; 1]>::try_from(peers(moody(), Limits::default(), 1).await).unwrap();
    for (message, expected) in cases {
        assert_eq!(ask_now(&peer, message), expected, "request {message:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_failing_to_get_ready_is_answered_not_propagated() {
    let (handler, mut handle) = mock::pair::<GreetRequest, GreetResponse>();
    let [peer] = <[PeerService; 1]>::try_from(peers(handler, Limits::default(), 1).await).unwrap();
    handle.send_error("connection pool exhausted: 10.1.2.3");
    assert_eq!(ask_now(&peer, "hi"), Err(RemoteError::new(ErrorCode::INTERNAL, "internal error")));
    // The error was answered once; the handler is ready again.
    let mut request = send(&peer, "hi");
    assert_eq!(answer_now(&mut request), None);
    let (_, reply) = handle.next_request().await.unwrap();
    reply.send_response(response("hi"));
    assert_eq!(answer_now(&mut request), Some(Ok(response("hi"))));
}

// ----- the greeter -----

#[tokio::test(start_paused = true)]
async fn the_greeter_quotes_the_request_and_reports_the_observed_address() {
    let mut make = stack(MakeGreeter::new("hi from node"), Limits::default());
    for (i, message) in ["hello", "", "✓ unicode ✓"].into_iter().enumerate() {
        let ctx = ctx(i);
        let peer = make.ready().await.unwrap().call(ctx.clone()).await.unwrap();
        let answer = ask_now(&peer, message).unwrap();
        assert_eq!(answer.observed_addr, ctx.remote_addr);
        assert!(answer.message.contains("hi from node"), "{answer:?}");
        assert!(answer.message.contains(&format!("you said: {message}")), "{answer:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_bare_greeter_answers_with_its_context() {
    let ctx = ctx(7);
    let answer = Greeter::new(ctx.clone(), "hey").oneshot(GreetRequest::new("yo")).await.unwrap();
    assert_eq!(
        answer,
        GreetResponse { message: "hey (you said: yo)".into(), observed_addr: ctx.remote_addr }
    );
}

#[test]
fn the_services_can_be_shared_across_tasks() {
    fn clone_send_sync<T: Clone + Send + Sync + 'static>() {}
    clone_send_sync::<p2p_service::MakePeerService<MakeGreeter>>();
    clone_send_sync::<MakeGreeter>();
    clone_send_sync::<Greeter>();
    // The transport shares one `PeerService` between a connection's tasks
    // (by reference, each cloning it per request): `Sync`, not only `Send`.
    clone_send_sync::<PeerService>();
    clone_send_sync::<p2p_service::PeerContext>();
    clone_send_sync::<p2p_service::FaultReporter>();
}

// ----- faults: which refusals the peer caused -----

/// The faults a [`recorder`] saw.
type Seen = Arc<Mutex<Vec<(PeerId, PeerFault)>>>;

/// A reporter that records every fault, and what it recorded.
fn recorder() -> (FaultReporter, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    (FaultReporter::new(move |peer, fault| sink.lock().unwrap().push((peer, fault))), seen)
}

#[tokio::test(start_paused = true)]
async fn a_503_is_the_peers_fault_only_when_its_own_share_is_full_and_the_wire_cannot_tell() {
    let (reporter, seen) = recorder();
    let limits = Limits { max_in_flight_per_peer: 1, max_in_flight_total: 2, ..no_limits() };
    let (handler, mut handle) = mock::pair::<GreetRequest, GreetResponse>();
    let mut make = stack(clones_of(handler), limits);
    let ids: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
    let mut services = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        services.push(make_for(&mut make, connection(*id, i).with_fault_reporter(reporter.clone())).await);
    }
    // Peers 0 and 1 hold one request each: their own shares and the node-wide limit are full.
    let mut held = [send(&services[0], "held"), send(&services[1], "held")];
    for request in &mut held {
        assert_eq!(answer_now(request), None);
    }
    // Peer 0 asks for more than its share: its doing. Peer 2 asks once: not its doing.
    let over_its_share = ask_now(&services[0], "more");
    let under_a_full_node = ask_now(&services[2], "once");
    assert_eq!(over_its_share, overloaded());
    assert_eq!(under_a_full_node, overloaded(), "the same bytes on the wire");
    assert_eq!(*seen.lock().unwrap(), [(ids[0], PeerFault::TooManyInFlight)]);
    for _ in 0..2 {
        let (request, reply) = handle.next_request().await.unwrap();
        reply.send_response(response(&request.message));
    }
}

#[tokio::test(start_paused = true)]
async fn the_peers_rate_and_its_bad_requests_are_its_faults_timeouts_and_the_handlers_own_503s_are_not() {
    let (reporter, seen) = recorder();
    let limits = Limits {
        rate_per_sec: 1,
        rate_burst: 1,
        request_timeout: Some(Duration::from_secs(1)),
        ..no_limits()
    };
    let mut make = stack(clones_of(moody()), limits);
    let peer = PeerId::random();
    let service = make_for(&mut make, connection(peer, 0).with_fault_reporter(reporter)).await;
    let mut codes = Vec::new();
    for message in ["bad", "too fast"] {
        codes.push(code(&ask_now(&service, message)));
    }
    advance(Duration::from_secs(1)).await;
    codes.push(code(&ask_now(&service, "busy")));
    advance(Duration::from_secs(1)).await;
    codes.push(code(&ask_now(&service, "fail")));
    assert_eq!(codes, [400, 429, 503, 500]);
    assert_eq!(*seen.lock().unwrap(), [(peer, PeerFault::BadRequest), (peer, PeerFault::RateLimited)]);
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_is_not_ready_is_nobodys_fault() {
    let (reporter, seen) = recorder();
    let (handler, mut handle) = mock::pair::<GreetRequest, GreetResponse>();
    handle.allow(0);
    let mut make = stack(clones_of(handler), no_limits());
    let service = make_for(&mut make, connection(PeerId::random(), 0).with_fault_reporter(reporter)).await;
    assert_eq!(ask_now(&service, "hi"), overloaded());
    assert!(seen.lock().unwrap().is_empty());
}
