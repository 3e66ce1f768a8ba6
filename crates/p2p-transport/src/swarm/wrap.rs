//! A behaviour passed through as it is, with each of its connection
//! handlers wrapped in `H`: how [`super::ping`] changes one thing in
//! libp2p-ping's handler and [`super::boxed`] puts the node's handlers
//! behind a `Box`, without either repeating the behaviour's methods.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};

/// A connection handler made from another.
pub(crate) trait Wrap<Inner> {
    fn wrap(inner: Inner) -> Self;
}

/// `B`, its handlers wrapped in `H`.
pub(crate) struct WrapHandlers<B, H> {
    inner: B,
    handler: PhantomData<fn() -> H>,
}

impl<B, H> WrapHandlers<B, H> {
    pub(crate) fn new(inner: B) -> Self {
        Self { inner, handler: PhantomData }
    }
}

impl<B: Default, H> Default for WrapHandlers<B, H> {
    fn default() -> Self {
        Self::new(B::default())
    }
}

impl<B, H> Deref for WrapHandlers<B, H> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.inner
    }
}

impl<B, H> DerefMut for WrapHandlers<B, H> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.inner
    }
}

impl<B, H> NetworkBehaviour for WrapHandlers<B, H>
where
    B: NetworkBehaviour,
    H: ConnectionHandler<FromBehaviour = THandlerInEvent<B>, ToBehaviour = THandlerOutEvent<B>>
        + Wrap<THandler<B>>,
{
    type ConnectionHandler = H;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        connection: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner.handle_pending_inbound_connection(connection, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<H, ConnectionDenied> {
        self.inner
            .handle_established_inbound_connection(connection, peer, local_addr, remote_addr)
            .map(H::wrap)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(connection, maybe_peer, addresses, effective_role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<H, ConnectionDenied> {
        self.inner
            .handle_established_outbound_connection(connection, peer, addr, role_override, port_use)
            .map(H::wrap)
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
        self.inner.poll(cx)
    }
}
