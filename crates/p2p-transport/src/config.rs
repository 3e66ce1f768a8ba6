//! [`NodeConfig`]: every setting of a node and its default, in one place.

use std::time::Duration;

use libp2p::Multiaddr;

use crate::{BanConfig, ExternalAddrConfig};

/// Every setting of a node, each with its default: the one place the
/// defaults live (the command line reads them from here).
///
/// `#[non_exhaustive]`: start from `NodeConfig::default()` and change fields,
/// then hand it to [`NodeBuilder::with_config`](crate::NodeBuilder::with_config).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeConfig {
    /// Where to listen. Default: QUIC, TCP and WebSocket on all IPv4
    /// interfaces, port 0 ([`NodeConfig::default_listen_addrs`]).
    pub listen_addrs: Vec<Multiaddr>,
    /// The WebSocket transport (`/tcp/<port>/ws`: Noise and Yamux over a
    /// WebSocket, what a browser page can dial). Default on. Off, the node
    /// neither dials `/ws` addresses nor listens on those of `listen_addrs`
    /// (they are skipped, so the defaults need no editing).
    pub websocket: bool,
    /// The WebRTC-direct certificate (PEM, with its private key), with the
    /// `webrtc` cargo feature: its hash is in the node's `/webrtc-direct`
    /// addresses, so keeping it keeps them. Default none: a fresh one each
    /// start. Without the feature it is unused (and `/webrtc-direct`
    /// addresses cannot be listened on).
    pub webrtc_certificate: Option<CertificatePem>,
    /// mDNS discovery. Default on; tests on 127.0.0.1 turn it off.
    pub mdns: bool,
    /// How long a connection with no open streams stays up. Default 60 s.
    pub idle_timeout: Duration,
    /// How long a request may take end to end: an outbound one from call to
    /// answer, an inbound 1.0.0 stream from its arrival to its answer
    /// written (then it is dropped), an inbound 2.0.0 request from its
    /// arrival to its answer (then it is answered 408 and its handler
    /// dropped). Default 10 s.
    pub request_timeout: Duration,
    /// Streams a peer may have open at once on one connection: one number
    /// for both muxers and for the streams served (any protocol, either name).
    /// Default 64.
    ///
    /// - QUIC: the bidirectional streams the peer may open (quinn makes an
    ///   opener wait for a free one; it also keeps a table entry per allowed
    ///   stream on every connection, used or not: 256, libp2p-quic's default,
    ///   cost ~21 KB per connection, 64 ~5 KB, BENCHMARKS.md "Scale").
    /// - Yamux: twice this, its limit counting the streams of both sides
    ///   (yamux resets a connection whose peer opens one too many instead of
    ///   making it wait; libp2p-yamux's default is 512).
    /// - Greet 1.0.0: inbound streams served at once per connection; more
    ///   are dropped unanswered at once. Outbound 1.0.0 requests beyond it on
    ///   one connection fail (the peer would drop them).
    ///
    /// Each stream a peer holds costs a task and a frame buffer that grows
    /// only with the bytes received: 64 kept `bench -c 64 --protocol v1` as
    /// fast as 256, and bounds what a peer holding streams open costs
    /// (RELIABILITY.md, scenario "hoard").
    pub max_concurrent_streams: usize,
    /// Established connections in total (`None`: unlimited). Default 2048.
    pub max_connections: Option<u32>,
    /// Established connections per peer (`None`: unlimited). Default 8.
    pub max_connections_per_peer: Option<u32>,
    /// Established *inbound* connections (`None`: unlimited). Default 1024:
    /// half the total, so no crowd of inbound connections can leave the node
    /// unable to dial.
    pub max_incoming_connections: Option<u32>,
    /// Inbound connections still in their handshake (`None`: unlimited). Default 128.
    pub max_pending_incoming: Option<u32>,
    /// Established inbound connections from one IP address (`None`:
    /// unlimited). Default 32: identities cost nothing, addresses do.
    pub max_incoming_per_ip: Option<u32>,
    /// When a peer that keeps being refused is banned, and for how long.
    pub bans: BanConfig,
    /// The external-address policy.
    pub external: ExternalAddrConfig,
    /// How long [`Node::shutdown`](crate::Node::shutdown) waits for in-flight inbound requests. Default 5 s.
    pub shutdown_grace: Duration,
    /// Events buffered for a slow consumer before they are dropped. Default 1024.
    pub event_capacity: usize,
    /// Commands buffered for the swarm task (back-pressure beyond). Default 1024.
    pub command_capacity: usize,
    /// Serve and use every mounted protocol's pipelined name (greet's
    /// `/p2p-node/greet/2.0.0`). Default on; off makes every request a
    /// stream of its own (greet 1.0.0 only, for interop tests).
    pub greet_v2: bool,
    /// Inbound requests one pipelined stream may have in flight; beyond that
    /// the node stops reading the stream. Default 128.
    pub max_in_flight_per_stream: usize,
    /// How long our own pipelined stream to a peer stays open with no
    /// request in flight; then its write half closes (the peer closes the
    /// rest), so that `idle_timeout` can close the connection, and the next
    /// request opens a new stream. Default 15 s: shorter than a peer's
    /// `inbound_stream_idle_timeout`, so that we close first.
    pub stream_idle_timeout: Duration,
    /// How long a peer's pipelined stream to us may send nothing while none
    /// of its requests is in flight (a request must also arrive whole within
    /// it); then the node closes the stream. Default 30 s.
    pub inbound_stream_idle_timeout: Duration,
    /// How long one write to a pipelined stream, either way, may take: a
    /// peer that stops reading for longer has its stream closed and the
    /// requests on it failed (ours with `Timeout`) or abandoned (its own).
    /// Default 10 s.
    pub stream_write_timeout: Duration,
    /// Kademlia, our DHT: looking peers up by their id alone, and (public
    /// nodes, relays) serving lookups. Default on. Off, a node cannot look a
    /// peer up (dialing a bare `/p2p/<id>` fails at once) and keeps no
    /// routing table (its 256 buckets are ~1.6 MB per node, allocated up
    /// front): for many in-process client nodes, as `p2p-node bench` makes.
    pub dht: bool,
    /// How many bytes a peer may send on one stream before we read them
    /// (the receive window we advertise), on QUIC. Default 256 KiB: four
    /// maximal frames (a frame is at most 64 KiB), far more than a greeting
    /// needs in flight (libp2p-quic's default is 10 MB). Yamux's is fixed at
    /// the same 256 KiB (yamux's initial credit; libp2p-yamux 0.48 exposes
    /// no window setting).
    pub stream_receive_window: u32,
    /// How many bytes a peer may send on all streams of one connection
    /// before we read them, on QUIC. Default 1 MiB (libp2p-quic's is 15 MB):
    /// what a peer that sends and never has its bytes read (a pipelined
    /// stream at its in-flight bound) can park in our memory per connection.
    pub connection_receive_window: u32,
    /// Peers to join the DHT through (`<multiaddr>/p2p/<peer-id>`); those
    /// that are relays are also where a node that is not publicly reachable
    /// reserves a relayed address. Default none.
    pub bootstrap: Vec<Multiaddr>,
    /// Be a public helper: a circuit relay v2 hop (with [`RelayServerConfig`]'s
    /// limits), a Kademlia server and an AutoNAT v2 server. Default off.
    pub relay_server: bool,
    /// The relay hop's limits, when `relay_server` is on.
    pub relay: RelayServerConfig,
    /// The first wait before reserving again on a relay whose reservation
    /// went away (its listener closed, the relay restarted); it doubles per
    /// failure up to `reservation_backoff_max`, and is reset by a reservation
    /// that succeeds. Default 1 s.
    pub reservation_backoff: Duration,
    /// The longest wait between reservation attempts. Default 30 s.
    pub reservation_backoff_max: Duration,
    /// How long a peer reached only through a relay may go without a direct
    /// connection before the hole punch is reported failed (libp2p reports
    /// a failure only on the side that started the punch). Default 10 s:
    /// nearly every punch that succeeds does so on its first attempt, within
    /// a few round trips.
    pub hole_punch_timeout: Duration,
}

/// The limits of our circuit relay v2 hop (`--relay-server`).
///
/// libp2p's defaults (2 minutes and 128 KiB per circuit) are enough for the
/// hole punch's signalling only; ours carry the greetings of peers that
/// cannot punch (symmetric NATs) for 10 minutes and 1 MiB per circuit: a
/// greeting is about 100 bytes each way, so at the default 5 s interval a
/// circuit carries 120 greetings plus identify and ping in well under
/// 100 KiB. Reservations stay bounded per peer and per IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayServerConfig {
    /// Reservations held at once, in total. Default 128.
    pub max_reservations: usize,
    /// Reservations one peer may hold at once. Default 2.
    pub max_reservations_per_peer: usize,
    /// Reservation requests one peer may make per minute. Default 10.
    pub reservations_per_peer_per_minute: u32,
    /// Reservation requests one IP address may make per minute (identities
    /// cost nothing, addresses do). Default 30.
    pub reservations_per_ip_per_minute: u32,
    /// How long a reservation lasts before the client must renew it (libp2p
    /// renews on its own). Default 1 h.
    pub reservation_duration: Duration,
    /// Relayed circuits at once, in total. Default 64.
    pub max_circuits: usize,
    /// Relayed circuits one peer may have at once. Default 8.
    pub max_circuits_per_peer: usize,
    /// How long one circuit may last. Default 10 min.
    pub max_circuit_duration: Duration,
    /// How many bytes one circuit may carry (both ways). Default 1 MiB.
    pub max_circuit_bytes: u64,
    /// Circuits one peer may open through us per minute. Default 30.
    pub circuits_per_peer_per_minute: u32,
    /// Circuits one IP address may open through us per minute. Default 60.
    pub circuits_per_ip_per_minute: u32,
}

impl Default for RelayServerConfig {
    fn default() -> Self {
        Self {
            max_reservations: 128,
            max_reservations_per_peer: 2,
            reservations_per_peer_per_minute: 10,
            reservations_per_ip_per_minute: 30,
            reservation_duration: Duration::from_secs(60 * 60),
            max_circuits: 64,
            max_circuits_per_peer: 8,
            max_circuit_duration: Duration::from_secs(10 * 60),
            max_circuit_bytes: 1 << 20,
            circuits_per_peer_per_minute: 30,
            circuits_per_ip_per_minute: 60,
        }
    }
}

impl NodeConfig {
    /// A new WebRTC-direct certificate for [`NodeConfig::webrtc_certificate`].
    #[cfg(feature = "webrtc")]
    pub fn new_webrtc_certificate() -> CertificatePem {
        let certificate =
            libp2p_webrtc::tokio::Certificate::generate(&mut rand::make_rng::<rand::rngs::StdRng>())
                .expect("libp2p-webrtc's generation does not fail");
        CertificatePem(certificate.serialize_pem())
    }

    /// QUIC, TCP and WebSocket on all IPv4 interfaces, port 0.
    pub fn default_listen_addrs() -> Vec<Multiaddr> {
        ["/ip4/0.0.0.0/udp/0/quic-v1", "/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/tcp/0/ws"]
            .into_iter()
            .map(|a| a.parse().expect("valid multiaddr"))
            .collect()
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen_addrs: Self::default_listen_addrs(),
            websocket: true,
            webrtc_certificate: None,
            mdns: true,
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            max_concurrent_streams: 64,
            max_connections: Some(2048),
            max_connections_per_peer: Some(8),
            max_incoming_connections: Some(1024),
            max_pending_incoming: Some(128),
            max_incoming_per_ip: Some(32),
            bans: BanConfig::default(),
            external: ExternalAddrConfig::default(),
            shutdown_grace: Duration::from_secs(5),
            event_capacity: 1024,
            command_capacity: 1024,
            greet_v2: true,
            max_in_flight_per_stream: 128,
            stream_idle_timeout: Duration::from_secs(15),
            inbound_stream_idle_timeout: Duration::from_secs(30),
            stream_write_timeout: Duration::from_secs(10),
            dht: true,
            stream_receive_window: 256 * 1024,
            connection_receive_window: 1024 * 1024,
            bootstrap: Vec::new(),
            relay_server: false,
            relay: RelayServerConfig::default(),
            reservation_backoff: Duration::from_secs(1),
            reservation_backoff_max: Duration::from_secs(30),
            hole_punch_timeout: Duration::from_secs(10),
        }
    }
}

/// Whether `addr` is a WebSocket address (`.../tcp/<port>/ws` or `/wss`).
pub(crate) fn is_websocket(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    addr.iter().any(|p| matches!(p, Protocol::Ws(_) | Protocol::Wss(_)))
}

/// A certificate with its private key, in PEM ([`NodeConfig::webrtc_certificate`]);
/// its `Debug` shows no key.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificatePem(pub String);

impl std::fmt::Debug for CertificatePem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertificatePem(..)")
    }
}
