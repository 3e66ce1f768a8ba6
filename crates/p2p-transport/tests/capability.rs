//! Who counts as greet-capable: a peer whose identify lists greet, or, while
//! identify has said nothing (lost or late on a busy LAN), a peer that has
//! just greeted us. The raw clients here speak no identify at all.

mod common;
mod v2_raw;

use futures::AsyncWriteExt;
use p2p_protocol::v2::Response;
use p2p_protocol::{Greet, GreetRequest, decode, encode, try_read_frame};
use p2p_transport::NodeEvent;
use p2p_transport::libp2p::PeerId;

use common::*;
use v2_raw::*;

async fn connected_peer(node: &mut TestNode) -> PeerId {
    let NodeEvent::Connected { peer_id, .. } =
        node.wait_for("a connection", |e| matches!(e, NodeEvent::Connected { .. })).await
    else {
        unreachable!()
    };
    peer_id
}

async fn becomes_greet_capable(node: &mut TestNode, peer: PeerId) {
    node.wait_for(
        "the peer that greeted us to be greet-capable",
        |e| matches!(e, NodeEvent::Capable { peer_id, .. } if *peer_id == peer),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_greets_us_on_1_0_0_is_greet_capable_without_identify() {
    let mut s = spawn_with(Script::new("s"), Transport::Quic, |b| b).await;
    let mut control = raw_client(&s.addr).await;
    let raw = connected_peer(&mut s).await;
    assert!(
        !s.node.peers_speaking::<Greet>().contains(&raw),
        "no identify, no greeting: not greet-capable yet"
    );

    let answer = send_raw(&mut control, s.peer_id(), &framed(&encode(&GreetRequest::new("hi")))).await;
    assert_eq!(answer.unwrap().unwrap().message, "s: hi");
    becomes_greet_capable(&mut s, raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_greets_us_on_2_0_0_is_greet_capable_without_identify() {
    let mut s = spawn_with(Script::new("s"), Transport::Quic, |b| b).await;
    let mut control = raw_client(&s.addr).await;
    let raw = connected_peer(&mut s).await;

    let mut stream = open_v2(&mut control, s.peer_id()).await;
    stream.write_all(&v2_frame(1, "hi")).await.unwrap();
    let body = within("the answer", try_read_frame(&mut stream)).await.unwrap().expect("an answer");
    assert_eq!(decode::<Response>(&body).unwrap().result.unwrap().message, "s: hi");
    becomes_greet_capable(&mut s, raw).await;
}

/// A connected peer whose identify failed, and that has not greeted us, is
/// sent our identify (a push), so that it learns we speak greet and greets
/// us: when both sides' identify of a pair failed (stream opens timing out
/// on a starved machine), neither greeted the other until the connection
/// idled out (issue 23). The raw peer here answers no identify request,
/// and takes the push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_identify_failed_is_sent_ours() {
    use futures::StreamExt;
    use p2p_transport::libp2p::{StreamProtocol, SwarmBuilder};

    let s = spawn_with(Script::new("s"), Transport::Quic, |b| b).await;
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_quic()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(std::time::Duration::from_secs(60)))
        .build();
    let mut pushes =
        swarm.behaviour().new_control().accept(StreamProtocol::new("/ipfs/id/push/1.0.0")).unwrap();
    swarm.dial(s.addr.clone()).unwrap();
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    let (from, _stream) = within("our identify pushed to the raw peer", pushes.next()).await.expect("a push");
    assert_eq!(from, s.peer_id());
}
