//! The command line: what can be asked of `p2p-node`, with every default shown in `--help`.
//!
//! The defaults of the node and of its service stack are not written here:
//! clap reads them from the library's config types (`NodeConfig::default()`,
//! `Limits::default()`, `ExternalAddrConfig::default()`), so the two cannot drift.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use p2p_load::HumanDuration;
use p2p_service::Limits;
use p2p_transport::libp2p::Multiaddr;
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::{BanConfig, ExternalAddrConfig, NodeConfig};

use crate::values::parse_peer_addr;

const TOP_EXAMPLES: &str = "\
Examples:
  # two terminals on one machine: the nodes find each other with mDNS
  p2p-node
  p2p-node --message 'hello from the second node'

  # greet a node once (copy the address from its LISTEN line)
  p2p-node greet /ip4/192.168.1.7/udp/4001/quic-v1/p2p/12D3KooW...

  # across NATs: a public relay, and nodes that know only the relay
  p2p-node run --relay-server --listen /ip4/0.0.0.0/udp/4001/quic-v1 --external-addr /ip4/203.0.113.1/udp/4001/quic-v1
  p2p-node run --bootstrap /ip4/203.0.113.1/udp/4001/quic-v1/p2p/12D3KooW...
  p2p-node greet /p2p/12D3KooW... --bootstrap /ip4/203.0.113.1/udp/4001/quic-v1/p2p/12D3KooW...";

const RUN_EXAMPLES: &str = "\
Examples:
  p2p-node run --listen /ip4/0.0.0.0/udp/4001/quic-v1 --listen /ip4/0.0.0.0/tcp/4001
  p2p-node run --listen /ip4/0.0.0.0/tcp/4002/ws   # for browsers (README: From a browser)
  p2p-node run --no-mdns --listen /ip4/127.0.0.1/udp/0/quic-v1 \\
      --peer /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW... --interval 1s

Events go to stdout, one per line, keyword first: LISTEN, DISCOVERED, EXPIRED, CONNECTED,
DISCONNECTED, GREETED, GREET_FAILED, EXTERNAL, EXTERNAL_EXPIRED, RESERVED, HOLE_PUNCHED,
HOLE_PUNCH_FAILED, REACHABILITY. Logs go to stderr.";

const GREET_EXAMPLES: &str = "\
Example:
  p2p-node greet /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooW... --message hi --timeout 5s

A bare /p2p/<peer-id> is looked up in the DHT joined through --bootstrap.
Prints `GREETED <peer-id> rtt_ms=<n> path=direct|relayed observed=<our address as they see it> \"<their message>\"`.
Exits 1 with a one-line reason on stderr if the peer cannot be reached in time or answers
with an error (its code and message).";

const ID_EXAMPLES: &str = "\
Example:
  p2p-node id --key-file ./node-a.key

Creates the key file (mode 0600) if it does not exist yet.";

/// A peer-to-peer node on libp2p: finds peers with mDNS and greets them over QUIC or TCP.
///
/// Without a subcommand, `p2p-node` runs a node (the same as `p2p-node run`).
#[derive(Debug, Parser)]
#[command(name = "p2p-node", version, args_conflicts_with_subcommands = true, after_help = TOP_EXAMPLES)]
pub(crate) struct Cli {
    /// How logs on stderr look; their level comes from RUST_LOG (default: info for `run`,
    /// warn otherwise).
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub(crate) log_format: LogFormat,

    /// Leave libp2p's timer thread at normal priority. By default it runs at
    /// idle priority (Linux: SCHED_IDLE), which saves about a third of the CPU
    /// per 1.0.0 request (see p2p_transport::idle_timer_thread).
    #[arg(long, global = true)]
    pub(crate) no_idle_timer: bool,

    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a node (the default).
    #[command(after_help = RUN_EXAMPLES)]
    Run(Box<RunArgs>),
    /// Send one greeting to a node and print its answer.
    #[command(after_help = GREET_EXAMPLES)]
    Greet(GreetArgs),
    /// Print the peer id of a key file.
    #[command(after_help = ID_EXAMPLES)]
    Id(IdArgs),
    /// Load a node with greetings; print requests/s, latency and errors.
    #[command(after_help = crate::bench::EXAMPLES)]
    Bench(Box<crate::bench::BenchArgs>),
    /// Measure throughput and latency with libp2p's perf protocol (/perf/1.0.0)
    /// against a node run with --perf.
    #[command(after_help = crate::perf::EXAMPLES)]
    Perf(Box<crate::perf::PerfArgs>),
}

/// The format of the logs on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Plain text lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// `p2p-node run`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Listen on this address (repeatable). Giving one replaces the defaults.
    #[arg(long, value_name = "MULTIADDR", default_values_t = NodeConfig::default_listen_addrs())]
    pub(crate) listen: Vec<Multiaddr>,

    /// Dial this peer at start (repeatable). A bare /p2p/<peer-id> is looked up in the DHT.
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) peer: Vec<Multiaddr>,

    /// Join the DHT through this peer (repeatable; <multiaddr>/p2p/<peer-id>). A node that is
    /// not publicly reachable also reserves a relayed address on it if it is a relay.
    #[arg(long, value_name = "MULTIADDR", value_parser = parse_peer_addr)]
    pub(crate) bootstrap: Vec<Multiaddr>,

    /// Be a public helper: a circuit relay v2 hop (limits in NodeConfig's RelayServerConfig),
    /// a DHT server and an AutoNAT v2 server. Give it --external-addr: a relay hands out
    /// reservations only once it has a confirmed external address.
    #[arg(long)]
    pub(crate) relay_server: bool,

    /// Do not discover peers (nor announce this node) with mDNS.
    #[arg(long)]
    pub(crate) no_mdns: bool,

    /// No WebSocket transport: neither listen on the default /tcp/0/ws address
    /// nor dial /ws addresses (browsers then cannot reach this node).
    #[arg(long)]
    pub(crate) no_websocket: bool,

    /// Speak only greet 1.0.0 (a stream per request): neither serve nor use the
    /// pipelined greet 2.0.0. For interop tests.
    #[arg(long)]
    pub(crate) no_greet_v2: bool,

    /// Serve this file as a block of the fetch protocol (/p2p-fetch/1.0.0), named by
    /// its SHA-256 (repeatable; at most 1 MiB each). The empty block is always served.
    #[arg(long, value_name = "FILE")]
    pub(crate) block: Vec<std::path::PathBuf>,

    /// Serve libp2p's perf protocol (/perf/1.0.0): any peer may make this node upload and
    /// download up to --perf-max-bytes per stream. Off by default, as the protocol's spec
    /// asks; not for publicly reachable nodes.
    #[arg(long)]
    pub(crate) perf: bool,

    /// With --perf: the most one perf stream may upload, and ask back (beyond: refused).
    #[arg(long, value_name = "BYTES", default_value_t = crate::values::Size(crate::perf::DEFAULT_MAX_BYTES))]
    pub(crate) perf_max_bytes: crate::values::Size,

    /// Serve Prometheus metrics at http://<ADDR>/metrics (libp2p's, and
    /// answered requests by protocol and code with their latency).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<std::net::SocketAddr>,

    /// How often every greet-capable peer is greeted.
    #[arg(long, value_name = "DURATION", default_value_t = HumanDuration::from_secs(5))]
    pub(crate) interval: HumanDuration,

    /// What this node says: in its greetings and in its answers.
    #[arg(long, default_value = "hello")]
    pub(crate) message: String,

    /// Begin every event line with the wall-clock time in milliseconds since
    /// the Unix epoch and a space (`1733449062123 GREETED ...`), for scripts
    /// that measure delays across nodes.
    #[arg(long)]
    pub(crate) timestamps: bool,

    /// An external address of this node the operator vouches for (repeatable):
    /// confirmed at once, never expires.
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) external_addr: Vec<Multiaddr>,

    /// The node's identity key; created (mode 0600) when missing.
    ///
    /// Default: `$XDG_DATA_HOME/p2p-node/key` (`~/.local/share/p2p-node/key`). A running node
    /// locks its key file; with the default path a second node uses `key-1`, `key-2`, ...
    /// A locked `--key-file` is an error.
    #[arg(long, value_name = "PATH")]
    pub(crate) key_file: Option<PathBuf>,

    /// Debugging (hidden; only with the `debug-hooks` feature): this peer's requests go to a
    /// handler that never answers, so the handler timeout answers them with 408
    /// (repeatable). For fault-injection scripts.
    #[cfg(feature = "debug-hooks")]
    #[arg(long, value_name = "PEER_ID", hide = true)]
    pub(crate) debug_stall_peer: Vec<p2p_transport::libp2p::PeerId>,

    /// Debugging (hidden; only with the `debug-hooks` feature): dial this address each time
    /// the process gets SIGUSR1 (repeatable). For fault-injection scripts.
    #[cfg(feature = "debug-hooks")]
    #[arg(long, value_name = "MULTIADDR", hide = true)]
    pub(crate) debug_dial_on_usr1: Vec<Multiaddr>,

    #[command(flatten)]
    pub(crate) service: ServiceLimitArgs,

    #[command(flatten)]
    pub(crate) transport: TransportArgs,
}

/// The limits of the inbound service stack (`p2p_service::Limits`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Inbound limits (per-peer service stack)")]
pub(crate) struct ServiceLimitArgs {
    /// How long a handler may take before the request is answered with 408; 0 disables.
    #[arg(long, value_name = "DURATION", default_value_t = HumanDuration::from_limit(Limits::default().request_timeout))]
    pub(crate) handler_timeout: HumanDuration,

    /// Requests per second one peer's token bucket regains (beyond: 429); 0 disables.
    #[arg(long, value_name = "N", default_value_t = Limits::default().rate_per_sec)]
    pub(crate) rate_per_sec: u32,

    /// Requests one peer may send at once after a quiet period (the bucket size).
    #[arg(long, value_name = "N", default_value_t = Limits::default().rate_burst)]
    pub(crate) rate_burst: u32,

    /// Requests of one peer in flight at once (beyond: 503); 0 disables.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_in_flight_per_peer)]
    pub(crate) max_in_flight_per_peer: usize,

    /// Requests of all peers in flight at once (beyond: 503); 0 disables.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_in_flight_total)]
    pub(crate) max_in_flight_total: usize,
}

impl ServiceLimitArgs {
    /// The `Limits` these flags describe.
    pub(crate) fn limits(&self) -> Limits {
        let timeout = self.handler_timeout.0;
        Limits {
            request_timeout: (!timeout.is_zero()).then_some(timeout),
            rate_per_sec: self.rate_per_sec,
            rate_burst: self.rate_burst,
            max_in_flight_per_peer: self.max_in_flight_per_peer,
            max_in_flight_total: self.max_in_flight_total,
        }
    }
}

/// The transport's options (`p2p_transport::NodeConfig`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Transport")]
pub(crate) struct TransportArgs {
    /// How long a connection with no open streams stays up.
    #[arg(long, value_name = "DURATION", default_value_t = HumanDuration(NodeConfig::default().idle_timeout))]
    pub(crate) idle_timeout: HumanDuration,

    /// How long a greeting may take end to end (ours, from call to answer; a
    /// peer's 1.0.0 stream, from arrival to answer written; a peer's 2.0.0
    /// request, from arrival to answer, then 408).
    #[arg(long, value_name = "DURATION", default_value_t = HumanDuration(NodeConfig::default().request_timeout))]
    pub(crate) request_timeout: HumanDuration,

    /// Streams a peer may have open at once on one connection (QUIC; Yamux
    /// allows twice as many, counting both sides'); also greet 1.0.0
    /// requests served at once per connection (more are dropped).
    #[arg(long, value_name = "N", default_value_t = NodeConfig::default().max_concurrent_streams)]
    pub(crate) max_concurrent_streams: usize,

    /// Established connections in total; 0 means unlimited.
    #[arg(long, value_name = "N", default_value_t = unlimited_as_zero(NodeConfig::default().max_connections))]
    pub(crate) max_connections: u32,

    /// Established connections per peer; 0 means unlimited.
    #[arg(long, value_name = "N", default_value_t = unlimited_as_zero(NodeConfig::default().max_connections_per_peer))]
    pub(crate) max_connections_per_peer: u32,

    /// Our greet v2 stream to a peer with nothing in flight this long is closed
    /// (and reopened on next use), so the connection can idle out.
    #[arg(long, value_name = "DURATION", default_value_t = HumanDuration(NodeConfig::default().stream_idle_timeout))]
    pub(crate) stream_idle_timeout: HumanDuration,

    /// A peer's greet v2 stream that sends nothing this long, with none of its
    /// requests in flight, is closed.
    #[arg(long, value_name = "DURATION", default_value_t = HumanDuration(NodeConfig::default().inbound_stream_idle_timeout))]
    pub(crate) inbound_stream_idle_timeout: HumanDuration,

    /// A write to a greet v2 stream taking longer means the peer stopped reading: the stream is closed.
    #[arg(long, value_name = "DURATION", default_value_t = HumanDuration(NodeConfig::default().stream_write_timeout))]
    pub(crate) stream_write_timeout: HumanDuration,

    /// Established inbound connections in total; 0 means unlimited. Keep it
    /// below --max-connections so our own dials always have room.
    #[arg(long, value_name = "N", default_value_t = unlimited_as_zero(NodeConfig::default().max_incoming_connections))]
    pub(crate) max_incoming: u32,

    /// Inbound connections still in their handshake; 0 means unlimited.
    #[arg(long, value_name = "N", default_value_t = unlimited_as_zero(NodeConfig::default().max_pending_incoming))]
    pub(crate) max_pending_incoming: u32,

    /// Established inbound connections from one IP address; 0 means unlimited.
    #[arg(long, value_name = "N", default_value_t = unlimited_as_zero(NodeConfig::default().max_incoming_per_ip))]
    pub(crate) max_incoming_per_ip: u32,

    /// Refusals the peer caused (its own rate 429, its own in-flight share 503, 400/413; never a
    /// node-wide 503) within --ban-window that get a peer banned; 0 turns bans off.
    #[arg(long, value_name = "N", default_value_t = BanConfig::default().threshold)]
    pub(crate) ban_threshold: u32,

    /// The window refusals are counted in.
    #[arg(long, value_name = "DURATION", default_value_t = HumanDuration(BanConfig::default().window))]
    pub(crate) ban_window: HumanDuration,

    /// The first ban's length; a repeat offender's doubles, up to --ban-max.
    #[arg(long, value_name = "DURATION", default_value_t = HumanDuration(BanConfig::default().first))]
    pub(crate) ban_first: HumanDuration,

    /// The longest ban.
    #[arg(long, value_name = "DURATION", default_value_t = HumanDuration(BanConfig::default().max))]
    pub(crate) ban_max: HumanDuration,

    /// How long shutdown waits for inbound requests in flight.
    #[arg(long, value_name = "DURATION", default_value_t = HumanDuration(NodeConfig::default().shutdown_grace))]
    pub(crate) shutdown_grace: HumanDuration,

    /// Independent observers (distinct IPv4 addresses or IPv6 /56s, not
    /// PeerIds) that must report an address of ours before it is confirmed.
    #[arg(long, value_name = "N", default_value_t = ExternalAddrConfig::default().threshold)]
    pub(crate) external_threshold: usize,

    /// How long a peer's report of our address counts.
    #[arg(long, value_name = "DURATION", default_value_t = HumanDuration(ExternalAddrConfig::default().ttl))]
    pub(crate) external_ttl: HumanDuration,

    /// Accept loopback addresses as external addresses (for tests on 127.0.0.1).
    #[arg(long)]
    pub(crate) external_allow_loopback: bool,
}

impl RunArgs {
    /// What clap cannot check alone: flags that must agree with each other.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.interval.0.is_zero() {
            anyhow::bail!("--interval must be longer than 0s");
        }
        if self.no_websocket
            && let Some(ws) = self.listen.iter().find(|a| a.iter().any(|p| matches!(p, Protocol::Ws(_))))
            && !NodeConfig::default_listen_addrs().contains(ws)
        {
            anyhow::bail!("--listen {ws} needs the WebSocket transport, which --no-websocket turns off");
        }
        // Reports are refreshed by each greeting: a TTL shorter than the
        // interval would let confirmed addresses flap between greetings.
        if self.transport.external_ttl.0 <= self.interval.0 {
            anyhow::bail!(
                "--external-ttl ({}) must be longer than --interval ({}), or confirmed addresses flap",
                self.transport.external_ttl,
                self.interval
            );
        }
        Ok(())
    }

    /// The node these flags describe: `NodeConfig::default()` with every flag applied.
    pub(crate) fn node_config(&self) -> NodeConfig {
        let t = &self.transport;
        let limit = |n: u32| (n > 0).then_some(n);
        let mut config = NodeConfig::default();
        config.listen_addrs = self.listen.clone();
        config.bootstrap = self.bootstrap.clone();
        config.relay_server = self.relay_server;
        config.mdns = !self.no_mdns;
        config.websocket = !self.no_websocket;
        config.greet_v2 = !self.no_greet_v2;
        config.idle_timeout = t.idle_timeout.0;
        config.request_timeout = t.request_timeout.0;
        config.max_concurrent_streams = t.max_concurrent_streams;
        config.max_connections = limit(t.max_connections);
        config.max_connections_per_peer = limit(t.max_connections_per_peer);
        config.stream_idle_timeout = t.stream_idle_timeout.0;
        config.inbound_stream_idle_timeout = t.inbound_stream_idle_timeout.0;
        config.stream_write_timeout = t.stream_write_timeout.0;
        config.max_incoming_connections = limit(t.max_incoming);
        config.max_pending_incoming = limit(t.max_pending_incoming);
        config.max_incoming_per_ip = limit(t.max_incoming_per_ip);
        config.bans = BanConfig {
            threshold: t.ban_threshold,
            window: t.ban_window.0,
            first: t.ban_first.0,
            max: t.ban_max.0,
        };
        config.shutdown_grace = t.shutdown_grace.0;
        config.external = ExternalAddrConfig {
            threshold: t.external_threshold,
            ttl: t.external_ttl.0,
            allow_loopback: t.external_allow_loopback,
            operator_addrs: self.external_addr.clone(),
        };
        config
    }
}

/// A connection limit on the command line, where 0 means unlimited.
fn unlimited_as_zero(limit: Option<u32>) -> u32 {
    limit.unwrap_or(0)
}

/// `p2p-node greet`.
#[derive(Debug, Clone, Args)]
pub(crate) struct GreetArgs {
    /// The node to greet, ending in /p2p/<peer-id>; a bare /p2p/<peer-id> is looked up in
    /// the DHT (give --bootstrap).
    #[arg(value_name = "MULTIADDR")]
    pub(crate) address: Multiaddr,

    /// Join the DHT through this peer (repeatable; <multiaddr>/p2p/<peer-id>), to find a
    /// node given by its peer id alone.
    #[arg(long, value_name = "MULTIADDR", value_parser = parse_peer_addr)]
    pub(crate) bootstrap: Vec<Multiaddr>,

    /// The greeting.
    #[arg(long, default_value = "hello")]
    pub(crate) message: String,

    /// How long connecting and the request may take together.
    #[arg(long, value_name = "DURATION", default_value_t = HumanDuration(NodeConfig::default().request_timeout))]
    pub(crate) timeout: HumanDuration,
}

/// `p2p-node id`.
#[derive(Debug, Clone, Args)]
pub(crate) struct IdArgs {
    /// The key file; created (mode 0600) when missing. Default: the one `run` uses first,
    /// `$XDG_DATA_HOME/p2p-node/key` (`~/.local/share/p2p-node/key`).
    #[arg(long, value_name = "PATH")]
    pub(crate) key_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests;
