//! `p2p-fault silent`: a peer that accepts greet 2.0.0 streams and then
//! neither reads nor answers nor closes them. A bare swarm whose identify
//! announces `/p2p-node/greet/2.0.0` (libp2p-stream advertises what it
//! accepts), so a node takes it for a greet-capable peer and greets it.
//!
//! It listens on `--listen`, dials `--peer` (again `--redial` after each
//! disconnection, if given), and prints one line per event on stdout:
//! `LISTEN <addr>/p2p/<id>`, `CONNECTED <peer> at_ms=<t>`, `STREAM <peer>
//! at_ms=<t>` (a greet stream accepted and left unread), `DISCONNECTED <peer>
//! at_ms=<t> <cause>`, where `<t>` is the wall clock in ms since the Unix epoch. It stops
//! after `--duration`; with `--json` it ends with one JSON line.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use p2p_protocol::v2;
use p2p_transport::libp2p::identity::Keypair;
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use p2p_transport::libp2p::{Multiaddr, StreamProtocol, SwarmBuilder, identify, noise, tcp, yamux};
use serde::Serialize;
use tokio::time::Instant;

use crate::{SilentArgs, keypair, round};

/// What the silent peer speaks: identify, and raw streams.
#[derive(NetworkBehaviour)]
#[behaviour(prelude = "p2p_transport::libp2p::swarm::derive_prelude")]
struct Behaviour {
    identify: identify::Behaviour,
    streams: libp2p_stream::Behaviour,
}

/// The JSON line of `silent --json`.
#[derive(Serialize)]
struct SilentJson {
    connections: u64,
    disconnections: u64,
    streams: u64,
    held_streams: usize,
    elapsed_s: f64,
}

pub(crate) async fn run(args: SilentArgs) -> Result<()> {
    let key: Keypair = keypair(args.seed);
    let local = key.public().to_peer_id();
    let mut swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)?
        .with_quic()
        .with_behaviour(|key| Behaviour {
            identify: identify::Behaviour::new(
                identify::Config::new("/ipfs/id/1.0.0".into(), key.public())
                    .with_agent_version("p2p-fault-silent".into()),
            ),
            streams: libp2p_stream::Behaviour::new(),
        })?
        // Whoever closes an idle connection, it is not us.
        .with_swarm_config(|c| c.with_idle_connection_timeout(args.duration + Duration::from_secs(60)))
        .build();
    let mut incoming = swarm
        .behaviour()
        .streams
        .new_control()
        .accept(StreamProtocol::new(v2::PROTOCOL_NAME))
        .context("cannot accept greet 2.0.0 streams")?;
    for address in &args.listen {
        swarm.listen_on(address.clone()).with_context(|| format!("cannot listen on {address}"))?;
    }
    if let Some(peer) = &args.peer {
        swarm.dial(peer.clone()).with_context(|| format!("cannot dial {peer}"))?;
    }

    let started = Instant::now();
    let stop = tokio::time::sleep(args.duration);
    tokio::pin!(stop);
    let mut redial_at: Option<Instant> = None;
    // Held, never read, never closed: the point of this peer.
    let mut held = Vec::new();
    let (mut connections, mut disconnections, mut streams) = (0u64, 0u64, 0u64);
    loop {
        let redial = async {
            match redial_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut stop => break,
            () = redial => {
                redial_at = None;
                if let Some(peer) = &args.peer
                    && let Err(err) = swarm.dial(peer.clone())
                {
                    eprintln!("p2p-fault: cannot redial {peer}: {err}");
                }
            }
            Some((peer, stream)) = incoming.next() => {
                streams += 1;
                println!("STREAM {peer} at_ms={}", epoch_ms());
                held.push(stream);
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    println!("LISTEN {}", address.with(Protocol::P2p(local)));
                }
                SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } => {
                    connections += 1;
                    if num_established.get() == 1 {
                        println!("CONNECTED {peer_id} at_ms={}", epoch_ms());
                    }
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established, cause, .. } => {
                    disconnections += 1;
                    if num_established == 0 {
                        println!("DISCONNECTED {peer_id} at_ms={} {cause:?}", epoch_ms());
                        redial_at = args.redial.map(|after| Instant::now() + after);
                    }
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    let line = error.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                    eprintln!("p2p-fault: dial failed: {line}");
                    redial_at = args.redial.map(|after| Instant::now() + after);
                }
                _ => {}
            },
        }
    }
    let result = SilentJson {
        connections,
        disconnections,
        streams,
        held_streams: held.len(),
        elapsed_s: round(started.elapsed().as_secs_f64(), 3),
    };
    println!(
        "silent {local}: {} connections, {} closed, {} greet streams accepted and never read, in {:.1} s",
        result.connections, result.disconnections, result.streams, result.elapsed_s
    );
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    }
    drop(held);
    Ok(())
}

/// Now, in milliseconds since the Unix epoch: scripts line these up with other processes' clocks.
fn epoch_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// The default listen address: QUIC on every IPv4 interface, a port of the OS's choosing.
pub(crate) fn default_listen() -> Multiaddr {
    "/ip4/0.0.0.0/udp/0/quic-v1".parse().expect("valid multiaddr")
}
