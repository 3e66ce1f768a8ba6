//! The WebSocket transport (`/tcp/<port>/ws`, what a browser dials): greet
//! 1.0.0 and 2.0.0 over it, hostile frames answered with their codes, the
//! per-IP budget. Real swarms on 127.0.0.1 with mDNS off.

mod common;
mod v2_raw;

use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use p2p_protocol::{ErrorCode, Greet, GreetRequest, encode};
use p2p_transport::libp2p::core::muxing::StreamMuxerBox;
use p2p_transport::libp2p::core::transport::Transport as _;
use p2p_transport::libp2p::core::upgrade::Version;
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::swarm::SwarmEvent;
use p2p_transport::libp2p::{Multiaddr, SwarmBuilder, noise, tcp, websocket, yamux};
use p2p_transport::{GreetVersion, NodeEvent};
use tower::ServiceExt;

use common::*;
use v2_raw::{open_v2, read_until_closed};

fn ws() -> Transport {
    Transport::At("/ip4/127.0.0.1/tcp/0/ws".parse().unwrap())
}

fn is_ws(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::Ws(_)))
}

/// A bare swarm that speaks raw streams over WebSocket only (Noise, Yamux),
/// built without DNS, as the node builds its own.
async fn raw_ws_client(target: &Multiaddr) -> libp2p_stream::Control {
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                websocket::Config::new(tcp::tokio::Transport::new(tcp::Config::default()))
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default())
                    .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer))),
            )
        })
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let control = swarm.behaviour().new_control();
    swarm.dial(target.clone()).unwrap();
    let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut connected_tx = Some(connected_tx);
        loop {
            if let SwarmEvent::ConnectionEstablished { .. } = swarm.select_next_some().await
                && let Some(tx) = connected_tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    within("the raw client to connect over WebSocket", connected_rx).await.unwrap();
    control
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_greets_another_over_websocket_on_1_0_0_and_2_0_0() {
    let mut s = spawn_node(Script::new("s"), ws()).await;
    assert!(is_ws(&s.addr), "{}", s.addr);
    let mut a = spawn_node(Script::new("a"), Transport::Quic).await;
    connect(&mut a, &s).await;
    let a_id = a.peer_id();
    let NodeEvent::Connected { address, .. } = s
        .wait_for("a's connection", |e| matches!(e, NodeEvent::Connected { peer_id, .. } if *peer_id == a_id))
        .await
    else {
        unreachable!()
    };
    assert!(is_ws(&address), "a connected over {address}");

    for version in [GreetVersion::V1, GreetVersion::V2] {
        let client = a.node.client::<Greet>().peer(s.peer_id()).with_version(version);
        let answer = within("a greeting over ws", client.oneshot(GreetRequest::new("hi"))).await.unwrap();
        assert_eq!(answer.message, "s: hi", "{version:?}");
        assert!(is_ws(&answer.observed_addr), "{version:?}: s saw us at {}", answer.observed_addr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_over_websocket_get_typed_answers_and_the_connection_lives_on() {
    let s = spawn_node(Script::new("s"), ws()).await;
    let mut control = raw_ws_client(&s.addr).await;
    let peer = s.peer_id();
    let valid = framed(&encode(&GreetRequest::new("ok")));
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        ("garbage body", framed(&[0xff, 0xff, 0xff]), ErrorCode::BAD_REQUEST),
        ("declared 65,537 bytes", [vec![0x81, 0x80, 0x04], vec![0; 64]].concat(), ErrorCode::TOO_LARGE),
        ("declared 2^64-1", [vec![0xff; 9], vec![0x01]].concat(), ErrorCode::TOO_LARGE),
        ("truncated frame", vec![0x0a, b'h', b'i'], ErrorCode::BAD_REQUEST),
    ];
    // Every one, an oversized length too, is answered with its code on the
    // wire (never a bare reset), and the same connection still serves.
    assert_refused_then_served(&mut control, peer, cases, &valid, "s: ok").await;

    // 2.0.0: an oversized frame is answered on id 0, then the stream closes.
    let mut stream = open_v2(&mut control, peer).await;
    let _ = stream.write_all(&[0x81, 0x80, 0x04]).await;
    let answers = read_until_closed(&mut stream).await;
    let code = answers.get(&0).and_then(|r| r.as_ref().err()).map(|e| e.code);
    assert_eq!(code, Some(ErrorCode::TOO_LARGE), "{answers:?}");
    let answer = send_raw(&mut control, peer, &valid).await;
    assert_eq!(answer.unwrap().unwrap().message, "s: ok", "after the v2 frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_ip_budget_holds_over_websocket() {
    let s = spawn_with(Script::new("s"), ws(), |n| n.max_incoming(None, Some(1))).await;
    let first = spawn_node(Script::new("first"), Transport::Quic).await;
    let second = spawn_node(Script::new("second"), Transport::Quic).await;
    assert_eq!(within("1st", first.node.connect(s.addr.clone())).await, Ok(s.peer_id()));
    // The second may complete its side of the handshake; s then refuses it at once.
    let mut second = second;
    if within("2nd", second.node.connect(s.addr.clone())).await.is_ok() {
        let s_id = s.peer_id();
        second
            .wait_for("refused", |e| matches!(e, NodeEvent::Disconnected { peer_id } if *peer_id == s_id))
            .await;
    }
    let answer = first.greet(&s, "still here").await.unwrap();
    assert_eq!(answer.message, "s: still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_websocket_off_ws_listen_addresses_are_skipped_and_ws_is_not_dialed() {
    let s = spawn_node(Script::new("s"), ws()).await;
    let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0/ws".parse().unwrap();
    // Builds although a /ws address is among its listen addresses.
    let off = spawn_with(Script::new("off"), Transport::Quic, |n| n.listen_on(listen).websocket(false)).await;
    assert!(!is_ws(&off.addr), "{}", off.addr);
    let dialed = within("a dial over ws without ws", off.node.connect(s.addr.clone())).await;
    assert!(dialed.is_err(), "{dialed:?}");
}
