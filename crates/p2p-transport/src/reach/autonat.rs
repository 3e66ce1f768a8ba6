//! AutoNAT v2, wrapped: libp2p's server and client with our two rules.
//!
//! - [`AutonatServer`]: libp2p-autonat 0.16's server dials back whatever
//!   address a client submits (after asking for some bytes when it is not the
//!   observed one), so it can be pointed at loopback, private or third-party
//!   targets (rust-libp2p #6610). Ours refuses a dial-back whose IP is not
//!   one the client is connected to us from; the client hears "dial error".
//! - [`AutonatClient`]: libp2p's client confirms an address on a single
//!   dial-back (and never retests it, #6203). Ours drops that confirmation:
//!   the dial-back is reported as an event, and `addresses/` decides with
//!   its observers and its own expiry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::autonat::v2::{client, server};
use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use crate::origin::direct_ip;

/// The protocol a peer that runs an AutoNAT v2 server lists in identify.
pub(crate) const AUTONAT_DIAL_REQUEST: &str = "/libp2p/autonat/2/dial-request";

/// Dial-backs waiting for their dial to start; beyond this the oldest are forgotten.
const MAX_PENDING_DIAL_BACKS: usize = 256;

/// A dial-back target is allowed only if it is a direct address (no relay)
/// on one of the IPs the client is connected to us from.
pub(crate) fn dial_back_allowed(client_ips: &[IpAddr], target: &Multiaddr) -> bool {
    direct_ip(target).is_some_and(|ip| client_ips.contains(&ip))
}

#[derive(Debug, thiserror::Error)]
#[error("AutoNAT dial-back to {0} refused: not the client's own IP")]
struct RefusedTarget(Multiaddr);

/// libp2p's AutoNAT v2 server that dials back only the client's own IP.
pub(crate) struct AutonatServer {
    inner: server::Behaviour,
    /// Each connected peer's direct connections and their remote IPs.
    ips: HashMap<PeerId, Vec<(ConnectionId, IpAddr)>>,
    /// Dial-backs the server asked for, by their connection, with the client.
    dial_backs: HashMap<ConnectionId, PeerId>,
}

impl AutonatServer {
    pub(crate) fn new() -> Self {
        Self { inner: server::Behaviour::default(), ips: HashMap::new(), dial_backs: HashMap::new() }
    }

    fn note(&mut self, connection: ConnectionId, peer: PeerId, remote: &Multiaddr) {
        if let Some(ip) = direct_ip(remote) {
            self.ips.entry(peer).or_default().push((connection, ip));
        }
    }
}

impl NetworkBehaviour for AutonatServer {
    type ConnectionHandler = <server::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = server::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner.handle_pending_inbound_connection(connection, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.note(connection, peer, remote);
        self.inner.handle_established_inbound_connection(connection, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(client) = self.dial_backs.remove(&connection) {
            let ips: Vec<IpAddr> =
                self.ips.get(&client).map(|c| c.iter().map(|(_, ip)| *ip).collect()).unwrap_or_default();
            if let Some(refused) = addresses.iter().find(|a| !dial_back_allowed(&ips, a)) {
                tracing::debug!(%client, target = %refused, "AutoNAT dial-back refused");
                return Err(ConnectionDenied::new(RefusedTarget(refused.clone())));
            }
        }
        self.inner.handle_pending_outbound_connection(connection, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(connection, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        if let FromSwarm::ConnectionClosed(ConnectionClosed { peer_id, connection_id, .. }) = &event
            && let Some(connections) = self.ips.get_mut(peer_id)
        {
            connections.retain(|(c, _)| c != connection_id);
            if connections.is_empty() {
                self.ips.remove(peer_id);
            }
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, connection, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        let polled = self.inner.poll(cx);
        if let Poll::Ready(ToSwarm::Dial { opts }) = &polled
            && let Some(client) = opts.get_peer_id()
        {
            if self.dial_backs.len() >= MAX_PENDING_DIAL_BACKS {
                self.dial_backs.clear();
            }
            self.dial_backs.insert(opts.connection_id(), client);
        }
        polled
    }
}

/// libp2p's AutoNAT v2 client, minus its own confirmations: a successful
/// dial-back comes out as its `Event` only.
pub(crate) struct AutonatClient {
    inner: client::Behaviour,
}

impl AutonatClient {
    pub(crate) fn new(config: client::Config) -> Self {
        Self { inner: client::Behaviour::new(rand::make_rng(), config) }
    }
}

impl NetworkBehaviour for AutonatClient {
    type ConnectionHandler = <client::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = client::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner.handle_pending_inbound_connection(connection, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(connection, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(connection, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(connection, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, connection, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        loop {
            match self.inner.poll(cx) {
                // Ours to decide (`addresses/`), with the `Event` that follows.
                Poll::Ready(ToSwarm::ExternalAddrConfirmed(addr)) => {
                    tracing::debug!(%addr, "AutoNAT dial-back succeeded");
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_dial_back_goes_only_to_the_clients_own_ip() {
        let client: Vec<IpAddr> = vec!["203.0.113.7".parse().unwrap()];
        assert!(dial_back_allowed(&client, &addr("/ip4/203.0.113.7/udp/4001/quic-v1")));
        assert!(dial_back_allowed(&client, &addr("/ip4/203.0.113.7/tcp/50123")), "any port");
        for refused in [
            "/ip4/127.0.0.1/udp/4001/quic-v1",
            "/ip4/192.168.1.7/udp/4001/quic-v1",
            "/ip4/198.51.100.1/tcp/80",
            "/dns4/example.invalid/tcp/4001",
            "/ip4/203.0.113.7/udp/4001/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
        ] {
            assert!(!dial_back_allowed(&client, &addr(refused)), "{refused}");
        }
        assert!(!dial_back_allowed(&[], &addr("/ip4/203.0.113.7/tcp/1")), "a client we know no IP of");
    }

    #[test]
    fn the_server_refuses_a_dial_back_to_another_ip_than_the_clients_connection() {
        let mut server = AutonatServer::new();
        let client = PeerId::random();
        let (inbound, dial_back) = (ConnectionId::new_unchecked(1), ConnectionId::new_unchecked(2));
        let local = addr("/ip4/198.51.100.1/udp/4001/quic-v1");
        server
            .handle_established_inbound_connection(
                inbound,
                client,
                &local,
                &addr("/ip4/203.0.113.7/udp/5000/quic-v1"),
            )
            .expect("accepted");
        let pending = |server: &mut AutonatServer, target: &str| {
            server.dial_backs.insert(dial_back, client); // what `poll` records from the inner server's dial
            server.handle_pending_outbound_connection(
                dial_back,
                Some(client),
                &[addr(target)],
                Endpoint::Dialer,
            )
        };
        assert!(pending(&mut server, "/ip4/127.0.0.1/udp/4001/quic-v1").is_err(), "loopback");
        assert!(pending(&mut server, "/ip4/192.168.1.7/udp/4001/quic-v1").is_err(), "a private target");
        assert!(pending(&mut server, "/ip4/203.0.113.7/udp/4001/quic-v1").is_ok(), "the client's own IP");
        // Other dials of this node are none of the filter's business.
        let other = ConnectionId::new_unchecked(3);
        let unrelated = server.handle_pending_outbound_connection(
            other,
            None,
            &[addr("/ip4/127.0.0.1/tcp/1")],
            Endpoint::Dialer,
        );
        assert!(unrelated.is_ok());
    }
}
