//! Building the swarm: transports, the composed behaviour, listeners.

use std::time::Duration;

use libp2p::autonat::v2::client as autonat_client;
use libp2p::core::transport::ListenerId;
use libp2p::identity::Keypair;
use libp2p::kad::store::MemoryStore;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{PeerId, allow_block_list, connection_limits, dcutr, identify, kad, mdns, noise, relay, tcp};

use super::NodeSwarm;
use super::behaviour::Behaviour;
use super::boxed::Boxed;
use super::ping::Ping;
use crate::gate::PerIpLimit;
use crate::inbound::Acceptor;
use crate::outbound::Opener;
use crate::reach::{AutonatClient, AutonatServer, KAD_PROTOCOL};
use crate::{BuildError, NodeConfig, RelayServerConfig};

/// How often the AutoNAT client asks a server to dial back an untested
/// candidate (libp2p's default is 5 s): a public node's address is then
/// confirmed within about a second of its observers agreeing.
const AUTONAT_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a DHT lookup may take (libp2p's default is 60 s).
const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The identify protocol version every p2p-node announces.
pub(crate) const IDENTIFY_PROTOCOL: &str = "/p2p-node/1.0.0";

/// mDNS: the LAN is queried about every 15 s, and records live four of those.
///
/// How fast a newcomer is found does not depend on the interval: libp2p-mdns
/// queries at once on start, every node answers by multicast, so the newcomer
/// hears all of them and all of them hear its answer to its own query. The
/// interval only paces the refreshes and the recovery of answers lost in a
/// burst: at 30 s the last pairs of 64 nodes waited 34 s for the mesh, and
/// 15 s is the compromise (BENCHMARKS.md, "Big LANs").
///
/// Who queries: libp2p-mdns restarts its timer on every answer it hears, so
/// all nodes restart together and query together an interval later (about
/// ten queries per interval on a 64-node LAN, each answered by every node).
/// Our own querier (`discovery::mdns_answers`) waits the interval plus a random
/// part of half of it and is put off by anyone's query, so about one node
/// queries per interval; libp2p-mdns keeps a longer interval as a backstop,
/// which those answers keep restarting. One query comes early, 3–6 s after
/// the start, for the answers lost in a start-up burst. The TTL spans four intervals, so a
/// record survives three lost refreshes (mDNS decides whom to find, not whom
/// to keep: an expired record never closes a connection).
pub(super) const MDNS_QUERY_INTERVAL: Duration = Duration::from_secs(15);
const MDNS_BACKSTOP_INTERVAL: Duration = Duration::from_secs(3 * 15);
const MDNS_TTL: Duration = Duration::from_secs(4 * 15);

/// QUIC, TCP (Noise, Yamux; TCP dials from the listening port, which
/// libp2p-tcp 0.45 does by default, and QUIC from its one socket, as hole
/// punching needs), WebSocket (the same upgrade as TCP; `websocket.rs`) and
/// the relay client transport, with every behaviour of [`Behaviour`];
/// `acceptor` serves the mounted protocols, `opener` sends their one-request requests.
pub(crate) fn build_swarm(
    config: &NodeConfig,
    keypair: Keypair,
    acceptor: Acceptor,
    opener: Opener,
    runtime: &tokio::runtime::Handle,
) -> Result<NodeSwarm, BuildError> {
    let local_peer_id = keypair.public().to_peer_id();
    let mdns = if config.mdns {
        let mdns_config =
            mdns::Config { ttl: MDNS_TTL, query_interval: MDNS_BACKSTOP_INTERVAL, ..Default::default() };
        Some(mdns::tokio::Behaviour::new(mdns_config, local_peer_id).map_err(BuildError::Mdns)?)
    } else {
        None
    };
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(config.max_connections)
        .with_max_established_incoming(config.max_incoming_connections)
        .with_max_pending_incoming(config.max_pending_incoming)
        .with_max_established_per_peer(config.max_connections_per_peer);
    let idle_timeout = config.idle_timeout;

    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, || yamux_config(config))
        .map_err(|err| BuildError::Transport(err.to_string()))?
        .with_quic_config(|quic| quic_config(quic, config))
        .with_other_transport(|key| super::websocket::transport(key, config.websocket, yamux_config(config)))
        .map_err(|err| BuildError::Transport(err.to_string()))?
        .with_other_transport(|key| super::webrtc::transport(key, config))
        .map_err(|err| BuildError::Transport(err.to_string()))?
        .with_relay_client(noise::Config::new, || yamux_config(config))
        .map_err(|err| BuildError::Transport(err.to_string()))?
        .with_behaviour(|key, relay_client| {
            Boxed::new(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                per_ip: PerIpLimit::new(config.max_incoming_per_ip),
                banned: allow_block_list::Behaviour::default(),
                opener,
                identify: identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                        .with_agent_version(format!("p2p-node/{}", env!("CARGO_PKG_VERSION")))
                        // A new relayed address reaches the relay (and its DHT) at once.
                        .with_push_listen_addr_updates(true),
                ),
                ping: Ping::default(),
                streams: libp2p_stream::Behaviour::new(),
                acceptor,
                mdns: Toggle::from(mdns),
                kad: Toggle::from(config.dht.then(|| kademlia(local_peer_id, config.relay_server))),
                relay_client,
                relay: Toggle::from(config.relay_server.then(|| relay_hop(local_peer_id, &config.relay))),
                dcutr: dcutr::Behaviour::new(local_peer_id),
                autonat: AutonatClient::new(
                    autonat_client::Config::default().with_probe_interval(AUTONAT_PROBE_INTERVAL),
                ),
                autonat_server: Toggle::from(config.relay_server.then(AutonatServer::new)),
            })
        })
        .map_err(|err| BuildError::Transport(err.to_string()))?
        // libp2p's connection tasks on the node's runtime too (`with_tokio` spawns
        // on whichever runtime polls the swarm).
        .with_swarm_config(|_| {
            let runtime = runtime.clone();
            libp2p::swarm::Config::with_executor(move |task| drop(runtime.spawn(task)))
                .with_idle_connection_timeout(idle_timeout)
        })
        .build();
    Ok(swarm)
}

/// libp2p-quic's defaults but for the streams a peer may open at once
/// (`NodeConfig::max_concurrent_streams`) and the receive windows
/// (`stream_receive_window`, `connection_receive_window`): what a peer can
/// make us hold is sized to the frame limit, not to a bulk transfer.
fn quic_config(mut quic: libp2p::quic::Config, config: &NodeConfig) -> libp2p::quic::Config {
    quic.max_concurrent_stream_limit =
        u32::try_from(config.max_concurrent_streams).unwrap_or(u32::MAX).max(1);
    quic.max_stream_data = config.stream_receive_window;
    quic.max_connection_data = config.connection_receive_window.max(config.stream_receive_window);
    quic
}

/// Yamux (over TCP, WebSocket and relayed connections) with the same streams per
/// connection as QUIC: its limit counts both sides' streams, so it is twice
/// `max_concurrent_streams` (each side may have that many open), and a peer
/// that opens more has its connection reset by yamux. Its receive windows are
/// set (`yamux.rs`): 256 KiB a stream, never tuned beyond, so a connection
/// holds at most that times its streams (32 MiB at the default 64).
fn yamux_config(config: &NodeConfig) -> super::yamux::Config {
    super::yamux::Config::new(config.max_concurrent_streams.max(1).saturating_mul(2))
}

/// Kademlia on our own protocol name, in server mode only for a relay
/// server (others switch when their reachability does: never on libp2p's
/// own rule, which trusts any confirmed address).
fn kademlia(local: PeerId, server: bool) -> kad::Behaviour<MemoryStore> {
    let mut config = kad::Config::new(KAD_PROTOCOL);
    config.set_query_timeout(KAD_QUERY_TIMEOUT);
    let mut kad = kad::Behaviour::with_config(local, MemoryStore::new(local), config);
    kad.set_mode(Some(if server { kad::Mode::Server } else { kad::Mode::Client }));
    kad
}

/// The relay hop with our limits (see [`RelayServerConfig`]); it advertises
/// hop whether or not it has a confirmed address yet.
fn relay_hop(local: PeerId, limits: &RelayServerConfig) -> relay::Behaviour {
    let config = relay::Config {
        max_reservations: limits.max_reservations,
        max_reservations_per_peer: limits.max_reservations_per_peer,
        reservation_duration: limits.reservation_duration,
        reservation_rate_limiters: Vec::new(),
        max_circuits: limits.max_circuits,
        max_circuits_per_peer: limits.max_circuits_per_peer,
        max_circuit_duration: limits.max_circuit_duration,
        max_circuit_bytes: limits.max_circuit_bytes,
        circuit_src_rate_limiters: Vec::new(),
    };
    let per_minute = |config: relay::Config, n: u32, per_ip: bool| {
        let (limit, interval) = per_minute_bucket(n);
        if per_ip {
            config.reservation_rate_per_ip(limit, interval)
        } else {
            config.reservation_rate_per_peer(limit, interval)
        }
    };
    let config = per_minute(config, limits.reservations_per_peer_per_minute, false);
    let config = per_minute(config, limits.reservations_per_ip_per_minute, true);
    let (limit, interval) = per_minute_bucket(limits.circuits_per_peer_per_minute);
    let config = config.circuit_src_per_peer(limit, interval);
    let (limit, interval) = per_minute_bucket(limits.circuits_per_ip_per_minute);
    let config = config.circuit_src_per_ip(limit, interval);
    let mut hop = relay::Behaviour::new(local, config);
    hop.set_status(Some(relay::Status::Enable));
    hop
}

/// `n` a minute as libp2p-relay's token bucket sees it: at most `n` at once,
/// and one more every minute / `n` (its `interval` is the time per *token*:
/// `(n, 60 s)` would be `n` once and then one a minute).
fn per_minute_bucket(n: u32) -> (std::num::NonZeroU32, Duration) {
    let n = std::num::NonZeroU32::new(n.max(1)).expect("at least 1");
    (n, Duration::from_secs(60) / n.get())
}

/// Starts every listener of `config` (not the WebSocket ones if it is off).
pub(crate) fn listen(swarm: &mut NodeSwarm, config: &NodeConfig) -> Result<Vec<ListenerId>, BuildError> {
    config
        .listen_addrs
        .iter()
        .filter(|addr| config.websocket || !crate::config::is_websocket(addr))
        .map(|addr| {
            swarm
                .listen_on(addr.clone())
                .map_err(|err| BuildError::Listen { addr: addr.clone(), reason: err.to_string() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_a_minute_is_a_bucket_of_n_refilled_every_minute_over_n() {
        let (limit, interval) = per_minute_bucket(30);
        assert_eq!((limit.get(), interval), (30, Duration::from_secs(2)));
        assert_eq!(per_minute_bucket(0).0.get(), 1, "never zero");
    }
}
