//! A behaviour whose connection handler lives behind a `Box`.
//!
//! libp2p-swarm runs each connection in a task whose future holds the
//! composed handler by value, more than once (the connection, and the
//! handler's closing stream), and every `Toggle` keeps room for its handler
//! whether on or off. The composed handler of [`super::behaviour::Behaviour`]
//! is ~7 KB (identify's alone is 3.4 KB, most of it room for four queued
//! events), so the task's future was ~24 KB on every connection. Boxed, the
//! future holds a pointer and the handler is allocated once: at 10,000
//! connections this is the difference between a node over and under 1 GiB
//! (BENCHMARKS.md, "Where the memory goes").
//!
//! Nothing else changes: every call is passed through as it is
//! ([`WrapHandlers`]), and the inner behaviour stays reachable through `Deref`.

use std::task::{Context, Poll};

use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{ConnectionHandler, ConnectionHandlerEvent, SubstreamProtocol, THandler};

use super::wrap::{Wrap, WrapHandlers};

/// `B`, with its connection handlers boxed.
pub(crate) type Boxed<B> = WrapHandlers<B, BoxedHandler<THandler<B>>>;

/// A connection handler behind a `Box`.
pub(crate) struct BoxedHandler<H>(Box<H>);

impl<H> Wrap<H> for BoxedHandler<H> {
    fn wrap(handler: H) -> Self {
        Self(Box::new(handler))
    }
}

impl<H: ConnectionHandler> ConnectionHandler for BoxedHandler<H> {
    type FromBehaviour = H::FromBehaviour;
    type ToBehaviour = H::ToBehaviour;
    type InboundProtocol = H::InboundProtocol;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = H::InboundOpenInfo;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.0.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.0.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>> {
        self.0.poll(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.0.poll_close(cx)
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
        self.0.on_connection_event(event);
    }
}

#[cfg(test)]
mod tests {
    use libp2p::swarm::THandler;

    use crate::swarm::NodeBehaviour;
    use crate::swarm::behaviour::Behaviour;

    /// What each connection's task holds of the node's handlers: a pointer,
    /// not the composed handler (thousands of bytes, several times over).
    #[test]
    fn a_connection_task_holds_a_pointer_to_the_handlers() {
        assert!(std::mem::size_of::<THandler<Behaviour>>() > 4096);
        assert_eq!(std::mem::size_of::<THandler<NodeBehaviour>>(), std::mem::size_of::<usize>());
    }
}
