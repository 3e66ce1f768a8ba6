//! Greet v2 by hand, for the tests that need a peer to misbehave on the raw
//! stream: frames, a raw stream, and raw peers that hold or echo streams.
#![allow(dead_code, unreachable_pub)] // each test binary uses its own subset

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use p2p_protocol::v2::{self, Request, Response};
use p2p_protocol::{GreetRequest, GreetResponse, decode, encode, try_read_frame};
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use p2p_transport::libp2p::{self, Multiaddr, PeerId, StreamProtocol, SwarmBuilder, identify};
use tokio::sync::mpsc;

use crate::common::{framed, within};

/// A v2 request frame.
pub fn v2_frame(id: u64, message: &str) -> Vec<u8> {
    framed(&encode(&Request { id, request: GreetRequest::new(message) }))
}

/// Reads answers off a raw v2 stream until it ends: id → result.
pub async fn read_until_closed<R: futures::AsyncRead + Unpin>(
    stream: &mut R,
) -> BTreeMap<u64, p2p_protocol::GreetResult> {
    let mut answers = BTreeMap::new();
    while let Some(body) = within("an answer", try_read_frame(stream)).await.expect("well-formed frames") {
        let Response { id, result } = decode::<Response>(&body).expect("a v2 answer");
        assert!(answers.insert(id, result).is_none(), "one answer per id");
    }
    answers
}

pub async fn open_v2(control: &mut libp2p_stream::Control, peer: PeerId) -> libp2p::Stream {
    within("a v2 stream", control.open_stream(peer, StreamProtocol::new(v2::PROTOCOL_NAME)))
        .await
        .expect("v2 stream")
}

/// A bare peer that speaks greet v2 (identify lists it) and nothing else.
#[derive(NetworkBehaviour)]
#[behaviour(prelude = "p2p_transport::libp2p::swarm::derive_prelude")]
struct RawPeer {
    identify: identify::Behaviour,
    streams: libp2p_stream::Behaviour,
}

/// Starts a [`RawPeer`] listening on QUIC on 127.0.0.1, which lets others
/// open at most `max_streams` streams to it at once; returns its id, its
/// address (with `/p2p/`) and its inbound v2 streams.
async fn raw_peer(max_streams: u32) -> (PeerId, Multiaddr, libp2p_stream::IncomingStreams) {
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_quic_config(|mut config| {
            config.max_concurrent_stream_limit = max_streams;
            config
        })
        .with_behaviour(|key| RawPeer {
            identify: identify::Behaviour::new(identify::Config::new("/raw/1.0.0".into(), key.public())),
            streams: libp2p_stream::Behaviour::new(),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let incoming =
        swarm.behaviour().streams.new_control().accept(StreamProtocol::new(v2::PROTOCOL_NAME)).unwrap();
    swarm.listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()).unwrap();
    let address = within("the raw peer to listen", async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        }
    })
    .await;
    let peer = *swarm.local_peer_id();
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    (peer, address.with(Protocol::P2p(peer)), incoming)
}

/// A peer that says it speaks greet v2, takes every v2 stream and holds it,
/// but never reads a request nor answers one. `max_streams` as for
/// [`raw_peer`]: with 0, opening a stream to it never completes.
pub async fn silent_peer(max_streams: u32) -> (PeerId, Multiaddr) {
    let (peer, address, mut incoming) = raw_peer(max_streams).await;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some((_, stream)) = incoming.next().await {
            held.push(stream);
        }
    });
    (peer, address)
}

/// What an [`echo_peer`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Echoed {
    /// The `n`th v2 stream (from 1) was opened to it.
    Opened(usize),
    /// The requester closed the write half of the `n`th stream.
    ClosedByRequester(usize),
}

/// A peer that answers every v2 request with `echo: <message>` and reports
/// each stream it is given and each one the requester closes.
pub async fn echo_peer() -> (PeerId, Multiaddr, mpsc::Receiver<Echoed>) {
    let (peer, address, mut incoming) = raw_peer(256).await;
    let (seen, events) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut n = 0;
        while let Some((_, stream)) = incoming.next().await {
            n += 1;
            let seen = seen.clone();
            let _ = seen.send(Echoed::Opened(n)).await;
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                while let Ok(Some(body)) = try_read_frame(&mut reader).await {
                    let Request { id, request } = decode::<Request>(&body).expect("a v2 request");
                    let answer = GreetResponse {
                        message: format!("echo: {}", request.message),
                        observed_addr: Multiaddr::empty(),
                    };
                    let response = encode(&Response { id, result: Ok(answer) });
                    if writer.write_all(&framed(&response)).await.is_err() {
                        return;
                    }
                }
                let _ = seen.send(Echoed::ClosedByRequester(n)).await;
                let _ = writer.close().await;
            });
        }
    });
    (peer, address, events)
}
