//! Greet v2: pipelined requests on long-lived streams, against real swarms
//! on 127.0.0.1 (mDNS off). Every wait has a deadline; nothing sleeps.

mod common;
mod v2_raw;

use std::sync::Arc;
use std::time::Duration;

use futures::AsyncWriteExt;
use p2p_protocol::v2::STREAM_ERROR_ID;
use p2p_protocol::{ErrorCode, Greet, GreetRequest, encode};
use p2p_transport::{GreetVersion, RequestError};
use tower::ServiceExt;

use common::*;
use v2_raw::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_does_not_delay_later_ones_on_the_same_stream() {
    let s = spawn_node(Script::new("s"), Transport::Quic).await;
    let mut a = spawn_node(Script::new("a"), Transport::Quic).await;
    connect(&mut a, &s).await;
    s.script.hold_message("hold");

    let client = a.node.client::<Greet>().peer(s.peer_id()).with_version(GreetVersion::V2);
    let held = tokio::spawn(client.clone().oneshot(GreetRequest::new("hold")));
    s.script.next_held_arrival().await;
    for i in 0..10 {
        let response =
            within("a fast request", client.clone().oneshot(GreetRequest::new(format!("fast {i}"))))
                .await
                .expect("answered while an earlier request is held");
        assert_eq!(response.message, format!("s: fast {i}"));
    }
    assert!(!held.is_finished());
    s.script.release.add_permits(1);
    assert_eq!(within("the held request", held).await.unwrap().unwrap().message, "s: hold");
}

/// The responder polls a stream's requests in its own task: a handler that
/// keeps its thread busy (CPU work, no yield) holds up its own stream, but
/// every other stream is served by other tasks, on the other worker thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_bound_handler_on_one_stream_does_not_delay_other_streams() {
    let s = spawn_node(Script::new("s"), Transport::Quic).await;
    let mut a = spawn_node(Script::new("a"), Transport::Quic).await;
    let mut b = spawn_node(Script::new("b"), Transport::Quic).await;
    connect(&mut a, &s).await;
    connect(&mut b, &s).await;
    let from_a = a.node.client::<Greet>().peer(s.peer_id()).with_version(GreetVersion::V2);
    let from_b = b.node.client::<Greet>().peer(s.peer_id()).with_version(GreetVersion::V2);
    // B's stream is open and served before the spin starts.
    within("B's first request", from_b.clone().oneshot(GreetRequest::new("first"))).await.unwrap();

    let spinning = tokio::spawn(from_a.oneshot(GreetRequest::new("spin")));
    s.script.next_spinner().await;
    for i in 0..10 {
        let response = within("B's request", from_b.clone().oneshot(GreetRequest::new(format!("fast {i}"))))
            .await
            .expect("B is answered while A's handler spins");
        assert_eq!(response.message, format!("s: fast {i}"));
    }
    assert!(!spinning.is_finished(), "A's handler still spins");
    assert!(!s.script.spun_out());

    s.script.stop_spinning();
    assert_eq!(within("the spinner", spinning).await.unwrap().unwrap().message, "s: spin");
    assert!(!s.script.spun_out(), "the spinner was stopped, it did not run out its bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_frame_closes_only_its_stream() {
    let s = spawn_node(Script::new("s"), Transport::Quic).await;
    let mut control = raw_client(&s.addr).await;
    let peer = s.peer_id();

    let mut stream = open_v2(&mut control, peer).await;
    let mut bytes = v2_frame(1, "first");
    bytes.extend(framed(&[0xff, 0xff, 0xff])); // not a (u64, GreetRequest)
    bytes.extend(v2_frame(2, "never read"));
    stream.write_all(&bytes).await.unwrap();
    let answers = read_until_closed(&mut stream).await;
    assert_eq!(answers[&1].as_ref().unwrap().message, "s: first");
    let stream_error = answers[&STREAM_ERROR_ID].as_ref().unwrap_err();
    assert_eq!(stream_error.code, ErrorCode::BAD_REQUEST);
    assert!(!answers.contains_key(&2), "nothing after the bad frame is read");

    // Id 0 is reserved: a stream error too.
    let mut stream = open_v2(&mut control, peer).await;
    stream.write_all(&v2_frame(STREAM_ERROR_ID, "zero")).await.unwrap();
    let answers = read_until_closed(&mut stream).await;
    assert_eq!(answers[&STREAM_ERROR_ID].as_ref().unwrap_err().code, ErrorCode::BAD_REQUEST);

    // An oversized declared length: 413, nothing read or allocated.
    let mut stream = open_v2(&mut control, peer).await;
    stream.write_all(&[0xa0, 0x8d, 0x06, 0, 0, 0]).await.unwrap();
    let answers = read_until_closed(&mut stream).await;
    assert_eq!(answers[&STREAM_ERROR_ID].as_ref().unwrap_err().code, ErrorCode::TOO_LARGE);

    // The connection lives on: a new v2 stream and a v1 request both work.
    let mut stream = open_v2(&mut control, peer).await;
    stream.write_all(&[v2_frame(7, "again"), v2_frame(8, "and again")].concat()).await.unwrap();
    stream.close().await.unwrap();
    let answers = read_until_closed(&mut stream).await;
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[&8].as_ref().unwrap().message, "s: and again");
    let v1 = send_raw(&mut control, peer, &framed(&encode(&GreetRequest::new("v1")))).await;
    assert_eq!(v1.unwrap().unwrap().message, "s: v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_vanishing_fails_pipelined_requests_in_flight() {
    // TCP: the kernel closes a killed process's socket, so the loss is seen
    // at once, long before the 30 s request timeout.
    let script = Script::new("doomed");
    let (runtime, addr, doomed) = spawn_killable(Arc::clone(&script), Transport::Tcp);
    let a =
        spawn_with(Script::new("a"), Transport::Tcp, |b| b.request_timeout(Duration::from_secs(30))).await;
    a.node.dial(addr).await.unwrap();
    script.hold_message("hold");

    let client = a.node.client::<Greet>().peer(doomed.local_peer_id()).with_version(GreetVersion::V2);
    let in_flight: Vec<_> =
        (0..3).map(|_| tokio::spawn(client.clone().oneshot(GreetRequest::new("hold")))).collect();
    for _ in 0..3 {
        script.next_held_arrival().await;
    }
    let killed = tokio::time::Instant::now();
    runtime.shutdown_background();
    for request in in_flight {
        let result = within("a failed request", request).await.unwrap();
        assert!(matches!(result, Err(RequestError::ConnectionClosed | RequestError::Io(_))), "{result:?}");
    }
    assert!(killed.elapsed() < Duration::from_secs(5), "{:?}", killed.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_0_0_only_node_is_greeted_over_1_0_0() {
    let old = spawn_with(Script::new("old"), Transport::Quic, |b| b.greet_v2(false)).await;
    let mut a = spawn_node(Script::new("a"), Transport::Quic).await;
    connect(&mut a, &old).await;

    let auto = a.node.client::<Greet>().peer(old.peer_id());
    assert_eq!(within("auto", auto.oneshot(GreetRequest::new("hi"))).await.unwrap().message, "old: hi");
    assert_eq!(a.greet(&old, "via Client").await.unwrap().message, "old: via Client");
    let forced = a.node.client::<Greet>().peer(old.peer_id()).with_version(GreetVersion::V2);
    let refused = within("forced v2", forced.oneshot(GreetRequest::new("hi"))).await;
    assert_eq!(refused.unwrap_err(), RequestError::UnsupportedProtocol);

    // And the other way round: the old node greets a v2 node over 1.0.0.
    let mut old = old;
    connect(&mut old, &a).await;
    assert_eq!(old.greet(&a, "hello new").await.unwrap().message, "a: hello new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_streams_opened_at_once_are_all_served() {
    let s = spawn_node(Script::new("s"), Transport::Quic).await;
    let control = raw_client(&s.addr).await;
    let peer = s.peer_id();
    let streams: Vec<_> = (0..100u64)
        .map(|i| {
            let mut control = control.clone();
            tokio::spawn(async move {
                let mut stream = open_v2(&mut control, peer).await;
                stream.write_all(&v2_frame(i + 1, &format!("stream {i}"))).await.unwrap();
                stream.close().await.unwrap();
                (i, read_until_closed(&mut stream).await)
            })
        })
        .collect();
    for stream in streams {
        let (i, answers) = within("a stream's answer", stream).await.unwrap();
        assert_eq!(answers[&(i + 1)].as_ref().unwrap().message, format!("s: stream {i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_at_high_concurrency_all_complete() {
    // The server takes at most 16 greet 1.0.0 streams from a connection at
    // once: 100 requests in its handler at once, from one connection, can
    // only have come pipelined (greet 2.0.0, chosen by the default `Auto`).
    let s = spawn_with(Script::new("s"), Transport::Quic, |b| b.max_concurrent_streams(16)).await;
    let mut a = spawn_node(Script::new("a"), Transport::Quic).await;
    connect(&mut a, &s).await;
    s.script.hold_message("hold");
    let client = a.node.client::<Greet>().peer(s.peer_id());
    let held: Vec<_> =
        (0..100).map(|_| tokio::spawn(client.clone().oneshot(GreetRequest::new("hold")))).collect();
    for _ in 0..100 {
        s.script.next_held_arrival().await;
    }
    assert_eq!(a.node.connections_to(&s.peer_id()), (1, 0), "all on one connection");
    let requests: Vec<_> =
        (0..400).map(|i| tokio::spawn(client.clone().oneshot(GreetRequest::new(format!("{i}"))))).collect();
    s.script.release.add_permits(100);
    for request in held {
        assert_eq!(within("a held request", request).await.unwrap().unwrap().message, "s: hold");
    }
    for (i, request) in requests.into_iter().enumerate() {
        assert_eq!(within("a request", request).await.unwrap().unwrap().message, format!("s: {i}"));
    }
    assert_eq!(s.script.calls_from(a.peer_id()), 500);
}
