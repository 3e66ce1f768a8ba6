//! libp2p's ping, which keeps answering a peer that does not answer ours.
//!
//! `libp2p-ping` 0.48's handler, once the peer refuses *our* ping stream
//! (it does not speak ping), goes inactive, and an inactive handler returns
//! before it answers the peer's *inbound* pings, although it still accepts
//! their streams. A stock js-libp2p node pings every connection and aborts
//! one whose pings go unanswered, so a js node without the ping service
//! (common: it is a separate module there) was disconnected after ~15 s
//! (`scripts/js-libp2p-netns.sh`). This wrapper keeps that refusal from the
//! inner handler: it stays active, answers inbound pings, and stops pinging
//! (its outbound request stays pending for good, which holds no stream and
//! does not keep the connection alive).

use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::handler::{ConnectionEvent, DialUpgradeError};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour,
    StreamUpgradeError, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, ping};

/// [`ping::Behaviour`] whose handlers keep answering a peer that refused ours.
#[derive(Default)]
pub(crate) struct Ping(ping::Behaviour);

type Inner = THandler<ping::Behaviour>;

impl NetworkBehaviour for Ping {
    type ConnectionHandler = Handler;
    type ToSwarm = ping::Event;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.0.handle_established_inbound_connection(connection, peer, local_addr, remote_addr).map(Handler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.0
            .handle_established_outbound_connection(connection, peer, addr, role_override, port_use)
            .map(Handler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        self.0.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.0.on_connection_handler_event(peer, connection, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<ping::Event, THandlerInEvent<Self>>> {
        self.0.poll(cx)
    }
}

/// One connection's ping handler, minus the surrender.
pub(crate) struct Handler(Inner);

impl ConnectionHandler for Handler {
    type FromBehaviour = <Inner as ConnectionHandler>::FromBehaviour;
    type ToBehaviour = <Inner as ConnectionHandler>::ToBehaviour;
    type InboundProtocol = <Inner as ConnectionHandler>::InboundProtocol;
    type OutboundProtocol = <Inner as ConnectionHandler>::OutboundProtocol;
    type InboundOpenInfo = <Inner as ConnectionHandler>::InboundOpenInfo;
    type OutboundOpenInfo = <Inner as ConnectionHandler>::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.0.listen_protocol()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>> {
        self.0.poll(cx)
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.0.on_behaviour_event(event);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            '_,
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        // The peer does not speak ping: we stop asking, and keep answering.
        if let ConnectionEvent::DialUpgradeError(DialUpgradeError {
            error: StreamUpgradeError::NegotiationFailed,
            ..
        }) = event
        {
            return;
        }
        self.0.on_connection_event(event);
    }

    fn connection_keep_alive(&self) -> bool {
        self.0.connection_keep_alive()
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.0.poll_close(cx)
    }
}
