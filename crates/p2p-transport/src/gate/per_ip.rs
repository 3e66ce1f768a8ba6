//! A cap on established inbound connections per remote IP.
//!
//! libp2p's `connection_limits` counts connections in total, per direction
//! and per peer, but a PeerId costs nothing: one host with a thousand keys
//! would get a thousand connections. This behaviour counts by the remote's
//! IP and refuses a connection from an IP at its cap before the handshake
//! (in `handle_pending_inbound_connection`), so the refusal is cheap too.
//! IPs are counted by [`Origin`]: an IPv6 /56 is one origin (one host owns a
//! /64, one subscriber usually a /56), as it is for the address observers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

use crate::origin::Origin;

/// Why a connection was refused, as the swarm reports it.
#[derive(Debug, thiserror::Error)]
#[error("{origin} already has {limit} inbound connections")]
pub(crate) struct TooManyFromIp {
    origin: Origin,
    limit: u32,
}

/// Refuses inbound connections from an origin (an IPv4 address, an IPv6
/// /56) that already has `limit`.
pub(crate) struct PerIpLimit {
    limit: Option<u32>,
    /// Established inbound connections, with the origin each came from.
    inbound: HashMap<ConnectionId, Origin>,
    per_ip: HashMap<Origin, u32>,
}

impl PerIpLimit {
    /// `None`: no limit.
    pub(crate) fn new(limit: Option<u32>) -> Self {
        Self { limit, inbound: HashMap::new(), per_ip: HashMap::new() }
    }

    fn check(&self, remote: &Multiaddr) -> Result<(), ConnectionDenied> {
        let (Some(limit), Some(origin)) = (self.limit, Origin::of(remote)) else { return Ok(()) };
        if self.per_ip.get(&origin).copied().unwrap_or(0) >= limit {
            return Err(ConnectionDenied::new(TooManyFromIp { origin, limit }));
        }
        Ok(())
    }
}

impl NetworkBehaviour for PerIpLimit {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.check(remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // Several handshakes from one IP may have been pending at once.
        self.check(remote_addr)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                connection_id,
                endpoint: ConnectedPoint::Listener { send_back_addr, .. },
                ..
            }) => {
                if let Some(origin) = Origin::of(send_back_addr) {
                    self.inbound.insert(connection_id, origin);
                    *self.per_ip.entry(origin).or_default() += 1;
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                if let Some(origin) = self.inbound.remove(&connection_id)
                    && let Some(count) = self.per_ip.get_mut(&origin)
                {
                    *count -= 1;
                    if *count == 0 {
                        self.per_ip.remove(&origin);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use libp2p::swarm::ConnectionId;

    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    /// `remote` connects inbound to `limit` as connection `id`: admitted and established, or refused.
    fn connect(limit: &mut PerIpLimit, id: usize, remote: &str) -> Result<(), ConnectionDenied> {
        let (id, local, remote) = (ConnectionId::new_unchecked(id), addr("/ip6/::/tcp/4001"), addr(remote));
        limit.handle_pending_inbound_connection(id, &local, &remote)?;
        limit.handle_established_inbound_connection(id, PeerId::random(), &local, &remote)?;
        let endpoint = ConnectedPoint::Listener { local_addr: local, send_back_addr: remote };
        limit.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
            peer_id: PeerId::random(),
            connection_id: id,
            endpoint: &endpoint,
            failed_addresses: &[],
            other_established: 0,
        }));
        Ok(())
    }

    #[test]
    fn one_ipv6_56_shares_one_cap_whatever_its_hosts() {
        let mut limit = PerIpLimit::new(Some(3));
        // Three hosts of one /56 (two /64s): the cap is reached...
        connect(&mut limit, 1, "/ip6/2001:db8:0:aa00::1/tcp/1").unwrap();
        connect(&mut limit, 2, "/ip6/2001:db8:0:aa00::2/tcp/1").unwrap();
        connect(&mut limit, 3, "/ip6/2001:db8:0:aaff::9/tcp/1").unwrap();
        // ...and a fourth host of it is refused, before the handshake.
        let refused = connect(&mut limit, 4, "/ip6/2001:db8:0:aa42::7/tcp/1").unwrap_err();
        let refused = refused.downcast_ref::<TooManyFromIp>().expect("refused for its origin").to_string();
        assert_eq!(refused, "2001:db8:0:aa00::/56 already has 3 inbound connections");
        // The next /56 is another origin, and so is an IPv4 host.
        connect(&mut limit, 5, "/ip6/2001:db8:0:ab00::1/tcp/1").unwrap();
        connect(&mut limit, 6, "/ip4/192.0.2.1/tcp/1").unwrap();
        // A connection of the full /56 closes: there is room again.
        let closed = ConnectedPoint::Listener {
            local_addr: addr("/ip6/::/tcp/4001"),
            send_back_addr: addr("/ip6/2001:db8:0:aa00::1/tcp/1"),
        };
        limit.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: PeerId::random(),
            connection_id: ConnectionId::new_unchecked(1),
            endpoint: &closed,
            cause: None,
            remaining_established: 0,
        }));
        connect(&mut limit, 7, "/ip6/2001:db8:0:aa42::7/tcp/1").unwrap();
    }

    #[test]
    fn distinct_ipv4_hosts_have_caps_of_their_own() {
        let mut limit = PerIpLimit::new(Some(1));
        connect(&mut limit, 1, "/ip4/192.0.2.1/tcp/1").unwrap();
        assert!(connect(&mut limit, 2, "/ip4/192.0.2.1/udp/9/quic-v1").is_err());
        connect(&mut limit, 3, "/ip4/192.0.2.2/tcp/1").unwrap();
    }
}
