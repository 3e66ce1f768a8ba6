//! The default per-peer stack, driven through its public API as the transport drives it:
//! one `MakePeerService`, one `PeerService` per connection, one clone per request.
//!
//! Time is always paused: deadlines and refills are reached with `tokio::time::advance`.

use std::convert::Infallible;
use std::future::{pending, ready};
use std::task::Poll;
use std::time::Duration;

use libp2p_identity::PeerId;
use p2p_protocol::{ErrorCode, GreetRequest, GreetResponse, GreetResult, RemoteError};
use p2p_service::{BoxError, Greeter, Limits, MakeGreeter, MakePeerService, PeerContext, PeerService, stack};
use tokio::time::advance;
use tokio_test::task::{Spawn, spawn};
use tower::util::Oneshot;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_test::mock;

// ----- helpers -----

/// The context of test peer `i`.
fn ctx(i: usize) -> PeerContext {
    connection(PeerId::random(), i)
}

/// The context of connection `i` of `peer`.
fn connection(peer: PeerId, i: usize) -> PeerContext {
    PeerContext::new(peer, format!("/ip4/10.0.0.{i}/udp/4001/quic-v1").parse().unwrap())
}

/// The service `make` makes for `ctx`, as the transport makes one for a new connection.
async fn make_for<M>(make: &mut MakePeerService<M>, ctx: PeerContext) -> PeerService
where
    MakePeerService<M>: Service<PeerContext, Response = PeerService, Error = BoxError>,
{
    make.ready().await.unwrap().call(ctx).await.unwrap()
}

/// Limits with everything switched off, to turn on one at a time.
fn no_limits() -> Limits {
    Limits {
        request_timeout: None,
        rate_per_sec: 0,
        rate_burst: 0,
        max_in_flight_per_peer: 0,
        max_in_flight_total: 0,
    }
}

fn overloaded() -> GreetResult {
    Err(RemoteError::new(ErrorCode::OVERLOADED, "overloaded"))
}

/// A `MakeService<PeerContext>` whose handlers are all clones of `handler`.
fn clones_of<H: Clone + Send + 'static>(
    handler: H,
) -> impl Service<PeerContext, Response = H, Error = Infallible, Future: Send> + Clone + Send + 'static {
    service_fn(move |_: PeerContext| ready(Ok::<_, Infallible>(handler.clone())))
}

/// The services of `n` peers, all made by one `MakePeerService` around clones of `handler`.
async fn peers<H>(handler: H, limits: Limits, n: usize) -> Vec<PeerService>
where
    H: Service<GreetRequest, Response = GreetResponse> + Clone + Send + Sync + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
{
    peers_of(clones_of(handler), limits, n).await
}

/// The services of `n` peers, all made by one `MakePeerService` around the handlers `make_handler` makes.
async fn peers_of<M, H>(make_handler: M, limits: Limits, n: usize) -> Vec<PeerService>
where
    M: Service<PeerContext, Response = H, Error = Infallible, Future: Send> + Clone + Send + 'static,
    H: Service<GreetRequest, Response = GreetResponse> + Clone + Send + Sync + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
{
    let mut make = stack(make_handler, limits);
    let mut services = Vec::new();
    for i in 0..n {
        services.push(make_for(&mut make, ctx(i)).await);
    }
    services
}

/// A handler that never answers.
fn stuck()
-> impl Service<GreetRequest, Response = GreetResponse, Error = BoxError, Future: Send> + Clone + Sync {
    service_fn(|_: GreetRequest| pending::<Result<GreetResponse, BoxError>>())
}

/// A request in flight, polled by hand.
type InFlight = Spawn<Oneshot<PeerService, GreetRequest>>;

/// Sends `message` on a fresh clone of `service`, as the transport does (it is called on its first poll).
fn send(service: &PeerService, message: &str) -> InFlight {
    spawn(service.clone().oneshot(GreetRequest::new(message)))
}

/// The answer to `request` if it is ready now.
fn answer_now(request: &mut InFlight) -> Option<GreetResult> {
    match request.poll() {
        Poll::Ready(Ok(answer)) => Some(answer),
        Poll::Ready(Err(never)) => match never {},
        Poll::Pending => None,
    }
}

/// The answer to a request on `service` that must be answered without waiting.
fn ask_now(service: &PeerService, message: &str) -> GreetResult {
    let mut request = spawn(service.clone().oneshot(GreetRequest::new(message)));
    answer_now(&mut request).expect("the stack must answer at once")
}

/// The code of an answer (200 for a response).
fn code(answer: &GreetResult) -> u16 {
    answer.as_ref().map_or_else(|e| e.code.as_u16(), |_| 200)
}

fn response(message: &str) -> GreetResponse {
    GreetResponse { message: message.into(), observed_addr: "/ip4/10.9.9.9/tcp/1".parse().unwrap() }
}

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

// ----- error mapping: 500 and handler codes -----

/// A handler whose answer is chosen by the request's message.
fn moody() -> impl Service<GreetRequest, Response = GreetResponse, Error = BoxError, Future: Send> + Clone {
    service_fn(|request: GreetRequest| async move {
        match request.message.as_str() {
            "fail" => Err::<GreetResponse, BoxError>("db password is hunter2 at 10.1.2.3".into()),
            "io" => Err(std::io::Error::other("disk on fire").into()),
            "bad" => Err(RemoteError::new(ErrorCode::BAD_REQUEST, "say please").into()),
            "teapot" => Err(RemoteError::new(ErrorCode::from(418), "short and stout").into()),
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
    fn clone_send<T: Clone + Send + 'static>() {}
    clone_send_sync::<p2p_service::MakePeerService<MakeGreeter>>();
    clone_send_sync::<MakeGreeter>();
    clone_send_sync::<Greeter>();
    clone_send::<PeerService>();
}
