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

use libp2p::ping;
use libp2p::swarm::handler::{ConnectionEvent, DialUpgradeError};
use libp2p::swarm::{
    ConnectionHandler, ConnectionHandlerEvent, StreamUpgradeError, SubstreamProtocol, THandler,
};

use super::wrap::{Wrap, WrapHandlers};

/// [`ping::Behaviour`] whose handlers keep answering a peer that refused ours.
pub(crate) type Ping = WrapHandlers<ping::Behaviour, Handler>;

type Inner = THandler<ping::Behaviour>;

/// One connection's ping handler, minus the surrender.
pub(crate) struct Handler(Inner);

impl Wrap<Inner> for Handler {
    fn wrap(inner: Inner) -> Self {
        Self(inner)
    }
}

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
