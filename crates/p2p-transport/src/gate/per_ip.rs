//! A cap on established inbound connections per remote IP.
//!
//! libp2p's `connection_limits` counts connections in total, per direction
//! and per peer, but a PeerId costs nothing: one host with a thousand keys
//! would get a thousand connections. This behaviour counts by the remote's
//! IP and refuses a connection from an IP at its cap before the handshake
//! (in `handle_pending_inbound_connection`), so the refusal is cheap too.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// Why a connection was refused, as the swarm reports it.
#[derive(Debug, thiserror::Error)]
#[error("{ip} already has {limit} inbound connections")]
pub(crate) struct TooManyFromIp {
    ip: IpAddr,
    limit: u32,
}

/// Refuses inbound connections from an IP that already has `limit`.
pub(crate) struct PerIpLimit {
    limit: Option<u32>,
    /// Established inbound connections, with the IP each came from.
    inbound: HashMap<ConnectionId, IpAddr>,
    per_ip: HashMap<IpAddr, u32>,
}

impl PerIpLimit {
    /// `None`: no limit.
    pub(crate) fn new(limit: Option<u32>) -> Self {
        Self { limit, inbound: HashMap::new(), per_ip: HashMap::new() }
    }

    fn check(&self, remote: &Multiaddr) -> Result<(), ConnectionDenied> {
        let (Some(limit), Some(ip)) = (self.limit, ip_of(remote)) else { return Ok(()) };
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= limit {
            return Err(ConnectionDenied::new(TooManyFromIp { ip, limit }));
        }
        Ok(())
    }
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
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
                if let Some(ip) = ip_of(send_back_addr) {
                    self.inbound.insert(connection_id, ip);
                    *self.per_ip.entry(ip).or_default() += 1;
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                if let Some(ip) = self.inbound.remove(&connection_id)
                    && let Some(count) = self.per_ip.get_mut(&ip)
                {
                    *count -= 1;
                    if *count == 0 {
                        self.per_ip.remove(&ip);
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
