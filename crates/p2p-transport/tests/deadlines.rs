//! Greet v2 against hostile or silent peers: every wait has a deadline, and
//! an idle stream never keeps a connection alive. Real swarms on 127.0.0.1
//! (mDNS off), short configured timeouts and generous bounds.

mod common;
mod v2_raw;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use p2p_protocol::v2::Response;
use p2p_protocol::{
    ErrorCode, Greet, GreetRequest, GreetResponse, GreetResult, PROTOCOL_NAME, decode, encode, try_read_frame,
};
use p2p_service::PeerContext;
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::{Multiaddr, PeerId, StreamProtocol};
use p2p_transport::{GreetVersion, NodeBuilder, NodeEvent, RequestError};
use tokio::time::Instant;
use tower::ServiceExt;

use common::*;
use v2_raw::*;

/// What a deadline may overrun by on a busy machine.
const SLACK: Duration = Duration::from_millis(1500);

/// A message whose echo is close to the largest answer a frame holds: a few
/// hundred fill any flow-control window.
fn big() -> String {
    "x".repeat(60_000)
}

async fn connected_to(node: &mut TestNode, peer: PeerId) {
    node.wait_for(
        "the connection",
        |e| matches!(e, NodeEvent::Connected { peer_id, .. } if *peer_id == peer),
    )
    .await;
}

/// Waits until `node`'s handler has answered `n` requests of `peer`. With
/// [`big`] ones, 200 answers are more than a QUIC stream's flow-control
/// window (10 MB) holds: if the peer does not read them, the node's writer
/// is stuck by then.
async fn answered(node: &TestNode, peer: PeerId, n: usize) {
    within("the handler to answer", async {
        while node.script.calls_from(peer) < n {
            tokio::time::sleep_until(Instant::now() + Duration::from_millis(20)).await;
        }
    })
    .await;
}

async fn wait_for_peer(node: &mut TestNode) -> PeerId {
    let NodeEvent::Connected { peer_id, .. } =
        node.wait_for("a connection", |e| matches!(e, NodeEvent::Connected { .. })).await
    else {
        unreachable!()
    };
    peer_id
}

// ---- outbound: one deadline from call to answer -----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_of_a_peer_that_never_reads_fail_with_timeout_within_their_request_timeout() {
    let timeout = Duration::from_secs(2);
    let mut a = spawn_with(Script::new("a"), Transport::Quic, |b| b.request_timeout(timeout)).await;
    let (silent, addr) = silent_peer(256).await;
    a.node.dial(addr).await.unwrap();
    a.wait_for(
        "identify of the silent peer",
        |e| matches!(e, NodeEvent::Capable { peer_id, .. } if *peer_id == silent),
    )
    .await;

    // More callers than the stream has slots, with requests that outgrow the
    // peer's flow-control window: the writer stalls, its queue fills, later
    // callers wait for room in it and the last ones for a slot. Every one of
    // those waits counts against each caller's one deadline.
    let start = Instant::now();
    let calls: Vec<_> = (0..300)
        .map(|_| {
            let client = a.node.client::<Greet>();
            tokio::spawn(async move {
                let result = client.oneshot((silent, GreetRequest::new(big()))).await;
                (result, start.elapsed())
            })
        })
        .collect();
    for call in calls {
        let (result, took) = within("a caller of the silent peer", call).await.unwrap();
        assert_eq!(result.map(|r| r.message), Err(RequestError::Timeout));
        assert!(took < timeout + SLACK, "failed after {took:?}, the request timeout is {timeout:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_waiting_on_an_open_that_never_completes_share_its_failure() {
    let timeout = Duration::from_secs(3);
    let mut a = spawn_with(Script::new("a"), Transport::Quic, |b| b.request_timeout(timeout)).await;
    // It lets nobody open a stream to it: an open waits until it times out.
    let (silent, addr) = silent_peer(0).await;
    a.node.dial(addr).await.unwrap();
    connected_to(&mut a, silent).await;
    let client = a.node.client::<Greet>().peer(silent).with_version(GreetVersion::V2);
    let call = |message: &'static str| {
        let client = client.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let result = client.oneshot(GreetRequest::new(message)).await;
            (result.map(|r| r.message), start.elapsed())
        })
    };

    let first = call("first");
    // Half way through the first caller's open, a second caller waits on it.
    tokio::time::sleep_until(Instant::now() + timeout / 2).await;
    let second = call("second");
    let (result, took) = within("the first caller", first).await.unwrap();
    assert_eq!(result, Err(RequestError::Timeout));
    assert!(took < timeout + SLACK, "first failed after {took:?}");
    let (result, took) = within("the second caller", second).await.unwrap();
    assert_eq!(result, Err(RequestError::Timeout));
    // It fails with the open it waited on, half way to its own deadline (and
    // long before an open of its own would have timed out).
    assert!(took < timeout / 2 + Duration::from_millis(700), "second failed after {took:?}");

    // Right after the failure, a call fails at once: the peer is not asked again...
    let (result, took) = within("a call in the back-off", call("third")).await.unwrap();
    assert_eq!(result, Err(RequestError::Timeout));
    assert!(took < Duration::from_millis(500), "a call in the back-off took {took:?}");
    // ...but after the back-off (1 s) a call tries again, with a full open.
    tokio::time::sleep_until(Instant::now() + Duration::from_millis(1200)).await;
    let (result, took) = within("a call after the back-off", call("fourth")).await.unwrap();
    assert_eq!(result, Err(RequestError::Timeout));
    assert!(took > timeout / 2, "a call after the back-off opened again, and failed after {took:?}");
}

// ---- inbound: a requester that stops reading --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_that_never_reads_its_answers_has_its_stream_closed_at_the_write_deadline() {
    let write_timeout = Duration::from_secs(3);
    let mut s =
        spawn_with(Script::new("s"), Transport::Quic, |b| b.stream_write_timeout(write_timeout)).await;
    let mut control = raw_client(&s.addr).await;
    let raw = wait_for_peer(&mut s).await;
    let mut stream = open_v2(&mut control, s.peer_id()).await;

    // Requests whose answers outgrow this side's flow-control window, which
    // it never empties: the node's writer stalls, then so does its reader
    // (at its in-flight bound), and then so does this side's writing.
    let bytes: Vec<u8> = (1..=800).flat_map(|id| v2_frame(id, &big())).collect();
    let writing = tokio::spawn(async move {
        let written = stream.write_all(&bytes).await;
        (written, Instant::now(), stream)
    });
    answered(&s, raw, 200).await;
    let stuck = Instant::now();
    let (written, closed, mut stream) = within("the node to give up on the stream", writing).await.unwrap();
    assert!(written.is_err(), "the node closed the stream instead of reading on");
    let took = closed.saturating_duration_since(stuck);
    assert!(took < write_timeout + SLACK, "closed {took:?} after its writer was stuck");
    let mut rest = Vec::new();
    let _ = within("what was written before", stream.read_to_end(&mut rest)).await;
    assert!(rest.len() < 200 * 60_000, "the answers still queued were abandoned, not written");

    // The connection and the node live on.
    let mut fresh = open_v2(&mut control, s.peer_id()).await;
    fresh.write_all(&v2_frame(1, "still there?")).await.unwrap();
    fresh.close().await.unwrap();
    let answers = read_until_closed(&mut fresh).await;
    assert_eq!(answers[&1].as_ref().unwrap().message, "s: still there?");
}

// ---- idle streams never keep a connection alive -----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_idle_pipelined_stream_closes_so_the_connection_idles_out() {
    // Both close idle connections after a second; the peer would keep an
    // idle stream of ours a minute: it is our side that closes it.
    let short = |b: NodeBuilder| b.idle_timeout(Duration::from_secs(1));
    let s = spawn_with(Script::new("s"), Transport::Quic, |b| {
        short(b).inbound_stream_idle_timeout(Duration::from_secs(60))
    })
    .await;
    let mut a = spawn_with(Script::new("a"), Transport::Quic, |b| {
        short(b).stream_idle_timeout(Duration::from_millis(300))
    })
    .await;
    connect(&mut a, &s).await;
    let client = a.node.client::<Greet>().peer(s.peer_id()).with_version(GreetVersion::V2);
    let answer = within("a v2 greeting", client.oneshot(GreetRequest::new("hi"))).await.unwrap();
    assert_eq!(answer.message, "s: hi");

    let s_id = s.peer_id();
    a.wait_for(
        "the idle connection to close",
        |e| matches!(e, NodeEvent::Disconnected { peer_id } if *peer_id == s_id),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peers_connection_idles_out_once_our_stream_to_it_has_ended() {
    // The silent peer speaks no ping and never closes the streams it takes:
    // once our stream ends (idle, then cut off at the write deadline),
    // nothing but our own wake-up makes the connection see it is idle.
    let mut a = spawn_with(Script::new("a"), Transport::Quic, |b| {
        b.idle_timeout(Duration::from_secs(1))
            .request_timeout(Duration::from_millis(500))
            .stream_idle_timeout(Duration::from_millis(300))
            .stream_write_timeout(Duration::from_millis(300))
    })
    .await;
    let (silent, addr) = silent_peer(256).await;
    a.node.dial(addr).await.unwrap();
    connected_to(&mut a, silent).await;
    let client = a.node.client::<Greet>().peer(silent).with_version(GreetVersion::V2);
    let result = within("a greeting of the silent peer", client.oneshot(GreetRequest::new("hi"))).await;
    assert_eq!(result.map(|r| r.message), Err(RequestError::Timeout));

    a.wait_for(
        "the silent peer's idle connection to close",
        |e| matches!(e, NodeEvent::Disconnected { peer_id } if *peer_id == silent),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_outbound_stream_closes_its_write_half_and_the_next_call_opens_another() {
    let mut a =
        spawn_with(Script::new("a"), Transport::Quic, |b| b.stream_idle_timeout(Duration::from_millis(300)))
            .await;
    let (echo, addr, mut seen) = echo_peer().await;
    a.node.dial(addr).await.unwrap();
    connected_to(&mut a, echo).await;
    let client = a.node.client::<Greet>().peer(echo).with_version(GreetVersion::V2);
    let mut next_seen = async || within("the echo peer to see something", seen.recv()).await.unwrap();

    let answer = within("a first call", client.clone().oneshot(GreetRequest::new("one"))).await.unwrap();
    assert_eq!(answer.message, "echo: one");
    assert_eq!(next_seen().await, Echoed::Opened(1));
    assert_eq!(next_seen().await, Echoed::ClosedByRequester(1), "the idle stream is closed");

    let answer = within("a later call", client.oneshot(GreetRequest::new("two"))).await.unwrap();
    assert_eq!(answer.message, "echo: two");
    assert_eq!(next_seen().await, Echoed::Opened(2), "on a new stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_idle_on_its_stream_has_it_closed_so_the_connection_idles_out() {
    let mut s = spawn_with(Script::new("s"), Transport::Quic, |b| {
        b.idle_timeout(Duration::from_secs(1)).inbound_stream_idle_timeout(Duration::from_millis(300))
    })
    .await;
    // The raw client would keep the connection a minute.
    let mut control = raw_client(&s.addr).await;
    let raw = wait_for_peer(&mut s).await;
    let mut stream = open_v2(&mut control, s.peer_id()).await;
    stream.write_all(&v2_frame(1, "hi")).await.unwrap();
    let body = within("the answer", try_read_frame(&mut stream)).await.unwrap().expect("an answer");
    assert_eq!(decode::<Response>(&body).unwrap().result.unwrap().message, "s: hi");

    // Then it says nothing, and never closes its half: the node closes the stream...
    let end = within("the node to close the idle stream", try_read_frame(&mut stream)).await;
    assert!(matches!(end, Ok(None)), "the stream ends: {end:?}");
    // ...and, with no stream left open, the connection idles out.
    s.wait_for(
        "the idle connection to close",
        |e| matches!(e, NodeEvent::Disconnected { peer_id } if *peer_id == raw),
    )
    .await;
}

// ---- inbound 2.0.0 requests: the request timeout, whatever the service -----

/// A raw client's pipelined greet stream to the node `built` (QUIC on
/// 127.0.0.1, mDNS off); the node and the client live as long as the parts.
async fn pipelined_stream_to(
    built: Result<(p2p_transport::Node, p2p_transport::NodeEvents), p2p_transport::BuildError>,
) -> (TestNode, p2p_load::RawPeer, p2p_transport::libp2p::Stream) {
    let (node, events) = built.expect("node builds");
    let mut s = TestNode { node, events, addr: Multiaddr::empty(), script: Script::new("unused") };
    let NodeEvent::Listening { address } =
        s.wait_for("listening", |e| matches!(e, NodeEvent::Listening { .. })).await
    else {
        unreachable!()
    };
    let mut control = raw_client(&address.with(Protocol::P2p(s.peer_id()))).await;
    let stream = open_v2(&mut control, s.peer_id()).await;
    (s, control, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_request_whose_handler_never_answers_is_answered_408_and_frees_its_slot() {
    // A `MakeService` with no timeout layer at all: the node's own deadline
    // is all there is. One request in flight per stream, so the hung one
    // holds the stream's only slot until the deadline frees it.
    let make = tower::service_fn(|_: PeerContext| async {
        Ok::<_, Infallible>(tower::service_fn(|request: GreetRequest| async move {
            if request.message == "hang" {
                std::future::pending::<()>().await;
            }
            Ok::<GreetResult, Infallible>(Ok(GreetResponse {
                message: format!("s: {}", request.message),
                observed_addr: Multiaddr::empty(),
            }))
        }))
    });
    let built = NodeBuilder::new()
        .mdns(false)
        .listen_on(Transport::Quic.listen())
        .request_timeout(Duration::from_millis(500))
        .max_in_flight_per_stream(1)
        .build(make);
    let (_s, _control, mut stream) = pipelined_stream_to(built).await;

    stream.write_all(&[v2_frame(1, "hang"), v2_frame(2, "next")].concat()).await.unwrap();
    for (id, expected) in [(1, Err(ErrorCode::TIMEOUT)), (2, Ok("s: next".to_owned()))] {
        let body = within("an answer", try_read_frame(&mut stream)).await.unwrap().expect("an answer");
        let Response { id: answered, result } = decode::<Response>(&body).unwrap();
        assert_eq!(answered, id, "answers in order: the hung one first, at its deadline");
        assert_eq!(result.map(|r| r.message).map_err(|e| e.code), expected, "request {id}");
    }
    // The stream serves on.
    stream.write_all(&v2_frame(3, "still there?")).await.unwrap();
    stream.close().await.unwrap();
    let answers = read_until_closed(&mut stream).await;
    assert_eq!(answers[&3].as_ref().unwrap().message, "s: still there?");
}

/// `inner`, counting the times it was not ready (`waits`).
#[derive(Clone)]
struct CountsWaits<S> {
    inner: S,
    waits: Arc<tokio::sync::watch::Sender<usize>>,
}

impl<S: tower::Service<GreetRequest>> tower::Service<GreetRequest> for CountsWaits<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        let ready = self.inner.poll_ready(cx);
        if ready.is_pending() {
            self.waits.send_modify(|n| *n += 1);
        }
        ready
    }

    fn call(&mut self, request: GreetRequest) -> S::Future {
        self.inner.call(request)
    }
}

/// A pipelined stream calls its service in place when it is ready at once;
/// a user's service that is not (here a concurrency limit of 1) is handed,
/// with its pending readiness, to the waiting request, and the stream goes on
/// with a fresh clone: had the stream kept the instance that was asked for
/// readiness, that instance would hold the limit's next permit with nobody
/// to use it, and the waiting requests would be answered 408. A service
/// whose `call` panics is answered 500 and the stream serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_stream_waits_for_a_service_not_ready_and_survives_a_panic_in_call() {
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let held = Arc::clone(&release);
    let waits = Arc::new(tokio::sync::watch::Sender::new(0_usize));
    let waited = waits.subscribe();
    let make = tower::service_fn(move |_: PeerContext| {
        let release = Arc::clone(&held);
        let waits = Arc::clone(&waits);
        async move {
            let handler = tower::service_fn(move |request: GreetRequest| {
                assert!(request.message != "boom", "a bug in call itself");
                let release = Arc::clone(&release);
                async move {
                    if request.message == "hold" {
                        release.acquire().await.unwrap().forget();
                    }
                    Ok::<GreetResult, Infallible>(Ok(GreetResponse {
                        message: format!("s: {}", request.message),
                        observed_addr: Multiaddr::empty(),
                    }))
                }
            });
            let limited = tower::limit::ConcurrencyLimit::new(handler, 1);
            Ok::<_, Infallible>(CountsWaits { inner: limited, waits: Arc::clone(&waits) })
        }
    });
    let built = NodeBuilder::new()
        .mdns(false)
        .listen_on(Transport::Quic.listen())
        .request_timeout(Duration::from_secs(3))
        .build(make);
    let (_s, _control, mut stream) = pipelined_stream_to(built).await;

    // 1 takes the only permit and holds it; 2 and 3 find the service not
    // ready (twice each: once asked by the stream, once by their own wait).
    stream
        .write_all(&[v2_frame(1, "hold"), v2_frame(2, "second"), v2_frame(3, "third")].concat())
        .await
        .unwrap();
    within("2 and 3 to wait for the permit", waited.clone().wait_for(|n| *n >= 4)).await.unwrap();
    release.add_permits(1);
    let mut answered = std::collections::BTreeMap::new();
    for _ in 0..3 {
        let body = within("an answer", try_read_frame(&mut stream)).await.unwrap().expect("an answer");
        let Response { id, result } = decode::<Response>(&body).unwrap();
        answered.insert(id, result.map(|r| r.message).map_err(|e| e.code));
    }
    let expected = [(1, "s: hold"), (2, "s: second"), (3, "s: third")].map(|(id, m)| (id, Ok(m.to_owned())));
    assert_eq!(answered, expected.into_iter().collect(), "each request waited for the permit, none for 408");

    stream.write_all(&[v2_frame(4, "boom"), v2_frame(5, "after")].concat()).await.unwrap();
    stream.close().await.unwrap();
    let answers = read_until_closed(&mut stream).await;
    assert_eq!(
        answers[&4].as_ref().map_err(|e| e.code),
        Err(ErrorCode::INTERNAL),
        "a panic in call is a 500"
    );
    assert_eq!(answers[&5].as_ref().unwrap().message, "s: after", "and the stream serves on");
}

// ---- inbound 1.0.0 streams: bounded in time and in number -------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_stream_that_never_sends_its_request_is_dropped_at_the_request_timeout() {
    let timeout = Duration::from_millis(500);
    let mut s = spawn_with(Script::new("s"), Transport::Quic, |b| b.request_timeout(timeout)).await;
    // The raw client would keep the connection (and so the stream) a minute.
    let mut control = raw_client(&s.addr).await;
    wait_for_peer(&mut s).await;
    let start = Instant::now();
    let mut stream =
        within("a 1.0.0 stream", control.open_stream(s.peer_id(), StreamProtocol::new(PROTOCOL_NAME)))
            .await
            .expect("1.0.0 stream");
    // Nothing sent, and the write half left open: the node gives up on it.
    let end = within("the node to drop the stream", try_read_frame(&mut stream)).await;
    assert!(!matches!(end, Ok(Some(_))), "no answer to a request never sent: {end:?}");
    let took = start.elapsed();
    assert!(
        took >= timeout && took < timeout + SLACK,
        "dropped after {took:?}, with a request timeout of {timeout:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_streams_beyond_the_cap_per_connection_are_dropped_at_once_and_the_others_served() {
    // Over TCP: Yamux lets a peer open more streams than the cap (twice as
    // many), so the cap is ours to keep. The request timeout is far away: a
    // stream dropped at once is not one dropped when that runs out.
    let cap = 4;
    let mut s = spawn_with(Script::new("s"), Transport::Tcp, |b| {
        b.max_concurrent_streams(cap).request_timeout(Duration::from_secs(3600))
    })
    .await;
    s.script.hold_message("hold");
    let control = raw_client(&s.addr).await;
    wait_for_peer(&mut s).await;
    let peer = s.peer_id();
    let send = |message: &str| {
        let mut control = control.clone();
        let bytes = common::framed(&encode(&GreetRequest::new(message)));
        tokio::spawn(async move { send_raw(&mut control, peer, &bytes).await })
    };
    // Held requests fill the connection's cap...
    let held: Vec<_> = (0..cap).map(|_| send("hold")).collect();
    for _ in 0..cap {
        s.script.next_held_arrival().await;
    }
    // ...so one more stream is dropped without an answer, at once.
    let start = Instant::now();
    let beyond = within("the stream beyond the cap", send("beyond")).await.unwrap();
    let took = start.elapsed();
    assert!(beyond.is_err(), "beyond the cap, no answer: {beyond:?}");
    assert!(took < Duration::from_secs(2), "dropped after {took:?}, not at once");
    // Once the held ones are answered, the connection takes requests again.
    s.script.release.add_permits(cap);
    for held in held {
        let answer = within("a held request", held).await.unwrap().expect("answered");
        assert_eq!(answer.unwrap().message, "s: hold");
    }
    let next = within("the next stream", send("next")).await.unwrap().expect("answered");
    assert_eq!(next.unwrap().message, "s: next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_quic_v1_streams_beyond_the_cap_wait_for_a_stream_and_are_served() {
    // The same cap is QUIC's own stream limit: a stream beyond it waits for
    // a free one instead of being dropped (as Yamux's would be, by us).
    let cap = 4;
    let mut s = spawn_with(Script::new("s"), Transport::Quic, |b| b.max_concurrent_streams(cap)).await;
    s.script.hold_message("hold");
    let control = raw_client(&s.addr).await;
    wait_for_peer(&mut s).await;
    let peer = s.peer_id();
    let bytes = common::framed(&encode(&GreetRequest::new("hold")));
    // One more than the cap, all at once: the cap's worth reach the handler...
    let held: Vec<_> = (0..=cap)
        .map(|_| {
            let (mut control, bytes) = (control.clone(), bytes.clone());
            tokio::spawn(async move { send_raw(&mut control, peer, &bytes).await })
        })
        .collect();
    for _ in 0..cap {
        s.script.next_held_arrival().await;
    }
    // ...and the last one gets there once one of them is answered.
    s.script.release.add_permits(1);
    s.script.next_held_arrival().await;
    s.script.release.add_permits(cap);
    for held in held {
        let answer = within("a held request", held).await.unwrap().expect("answered, not dropped");
        assert_eq!(answer.unwrap().message, "s: hold");
    }
}

// ---- shutdown never waits on a peer beyond its grace ------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_requester_that_never_reads_ends_its_stream_within_the_grace_period() {
    let grace = Duration::from_secs(1);
    // The write deadline alone would hold the stream far longer than the grace.
    let mut s = spawn_with(Script::new("s"), Transport::Quic, |b| {
        b.shutdown_grace(grace).stream_write_timeout(Duration::from_secs(120))
    })
    .await;
    s.script.hold_message("hold");
    let mut control = raw_client(&s.addr).await;
    let raw = wait_for_peer(&mut s).await;
    let mut stream = open_v2(&mut control, s.peer_id()).await;
    // One request its handler holds, then answers this side never reads.
    let mut bytes = v2_frame(1, "hold");
    bytes.extend((2..=400).flat_map(|id| v2_frame(id, &big())));
    let writing = tokio::spawn(async move {
        let _ = stream.write_all(&bytes).await;
        stream // never read
    });
    s.script.next_held_arrival().await;
    answered(&s, raw, 200).await;

    // Nothing the peer started outlives the grace: not the stuck writer, not
    // the held request, whose handler would otherwise wait on (holding the
    // script) until the service's own 5 s timeout.
    shut_down_within_grace(&s, grace).await;
    drop(writing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_a_pipelined_request_still_running_at_the_end_of_the_grace_period() {
    let grace = Duration::from_secs(1);
    let s = spawn_with(Script::new("s"), Transport::Quic, |b| b.shutdown_grace(grace)).await;
    let mut a = spawn_node(Script::new("a"), Transport::Quic).await;
    connect(&mut a, &s).await;
    s.script.hold_message("hold");
    let client = a.node.client::<Greet>().peer(s.peer_id()).with_version(GreetVersion::V2);
    let held = tokio::spawn(client.oneshot(GreetRequest::new("hold")));
    s.script.next_held_arrival().await;

    // The held request's task ended with the grace.
    shut_down_within_grace(&s, grace).await;
    assert!(within("the requester", held).await.unwrap().is_err(), "the request was not answered");
}

/// Shuts `s` down, which must take less than `grace` (plus slack), and then
/// nothing may still hold the handler's state (the script) within 500 ms.
async fn shut_down_within_grace(s: &TestNode, grace: Duration) {
    let start = Instant::now();
    within("shutdown", s.node.shutdown()).await;
    let took = start.elapsed();
    assert!(took < grace + SLACK, "shutdown took {took:?} with a grace of {grace:?}");
    let released = tokio::time::timeout(Duration::from_millis(500), async {
        while Arc::strong_count(&s.script) > 1 {
            tokio::time::sleep_until(Instant::now() + Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        released.is_ok(),
        "{} holders of the handler's state after shutdown",
        Arc::strong_count(&s.script)
    );
}
