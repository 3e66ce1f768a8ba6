//! The fastest possible libp2p shape of a greet server, as a baseline:
//! plain `request_response` speaking the same greet protocol, answering
//! inside its swarm loop, with no Tower and no handler isolation.
//!
//! ```text
//! cargo run --release -p p2p-transport --example raw_baseline -- /ip4/127.0.0.1/udp/0/quic-v1
//! ```
//!
//! It prints `LISTEN <multiaddr>/p2p/<peer-id>` for each address, like
//! `p2p-node`, so `p2p-node bench` can target it. The benchmarks include this
//! file to run the same server in-process.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use p2p_protocol::{GreetResponse, PROTOCOL_NAME, RemoteError};
use p2p_transport::GreetCodec;
use p2p_transport::libp2p::core::ConnectedPoint;
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::request_response::{self, Message, ProtocolSupport};
use p2p_transport::libp2p::swarm::SwarmEvent;
use p2p_transport::libp2p::{Multiaddr, StreamProtocol, SwarmBuilder, noise, tcp, yamux};
use tokio::sync::mpsc;

/// Starts a raw greet server listening on `listen` and returns its addresses
/// with `/p2p/<peer-id>` once the OS has assigned them.
#[allow(dead_code)] // used by the benchmarks, which include this file
pub(crate) async fn spawn(listen: Vec<Multiaddr>) -> Vec<Multiaddr> {
    let (listening_tx, mut listening) = mpsc::channel(8);
    let wanted = listen.len();
    tokio::spawn(serve(listen, listening_tx));
    let mut addrs = Vec::new();
    while addrs.len() < wanted {
        addrs.push(listening.recv().await.expect("raw server stopped before listening"));
    }
    addrs
}

/// Runs the server forever, announcing each listen address on `listening`.
pub(crate) async fn serve(listen: Vec<Multiaddr>, listening: mpsc::Sender<Multiaddr>) {
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .expect("tcp transport")
        .with_quic()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                GreetCodec,
                [(StreamProtocol::new(PROTOCOL_NAME), ProtocolSupport::Full)],
                request_response::Config::default().with_max_concurrent_streams(1024),
            )
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    for addr in listen {
        swarm.listen_on(addr).expect("listen address");
    }
    let local = *swarm.local_peer_id();
    let mut remotes = HashMap::new();
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => {
                let _ = listening.send(address.with(Protocol::P2p(local))).await;
            }
            SwarmEvent::ConnectionEstablished { connection_id, endpoint, .. } => {
                let remote = match endpoint {
                    ConnectedPoint::Dialer { address, .. } => address,
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
                };
                remotes.insert(connection_id, remote);
            }
            SwarmEvent::ConnectionClosed { connection_id, .. } => {
                remotes.remove(&connection_id);
            }
            SwarmEvent::Behaviour(request_response::Event::Message {
                connection_id,
                message: Message::Request { request, channel, .. },
                ..
            }) => {
                // Answered right here, inside the swarm loop: the shape whose
                // speed we compare against, and whose fragility we avoid.
                let response = match request {
                    Ok(request) => Ok(GreetResponse {
                        message: format!("raw (you said: {})", request.message),
                        observed_addr: remotes.get(&connection_id).cloned().unwrap_or_else(Multiaddr::empty),
                    }),
                    Err(err) => Err(RemoteError::new(err.code(), err.to_string())),
                };
                let _ = swarm.behaviour_mut().send_response(channel, response);
            }
            _ => {}
        }
    }
}

#[allow(dead_code)] // the benchmarks include this file for `spawn` only
#[tokio::main]
async fn main() {
    // For a like-for-like comparison with the node (whose binary does this by
    // default): RAW_IDLE_TIMER=1 puts libp2p's timer thread at idle priority too.
    if std::env::var_os("RAW_IDLE_TIMER").is_some_and(|v| v == "1") {
        eprintln!("{}", p2p_transport::idle_timer_thread().expect("idle timer thread"));
    }
    let listen: Vec<Multiaddr> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or_else(|e| panic!("bad multiaddr {a:?}: {e}")))
        .collect();
    let listen =
        if listen.is_empty() { vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("valid")] } else { listen };
    let (listening_tx, mut listening) = mpsc::channel(8);
    tokio::spawn(serve(listen, listening_tx));
    while let Some(addr) = listening.recv().await {
        println!("LISTEN {addr}");
    }
}
