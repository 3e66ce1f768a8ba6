//! Our one-request-per-stream requests, every protocol's: a small behaviour
//! that opens the stream on one of the peer's connections (dialing the peer
//! first if it has none) and runs the exchange in a task of its own. The
//! swarm task only picks the connection; bytes never pass through it.
//!
//! What libp2p's `request_response` does for one protocol, for any number
//! of them: its outbound side offers every protocol of the behaviour on
//! each stream, so one behaviour cannot send a request of a protocol the
//! caller names. At most `max_streams` exchanges run at once per connection
//! (the rest wait in the connection's queue, within their deadlines).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, ReadyUpgrade};
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::handler::{ConnectionEvent, DialUpgradeError, FullyNegotiatedOutbound};
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, DialError,
    DialFailure, FromSwarm, NetworkBehaviour, NotifyHandler, StreamUpgradeError, SubstreamProtocol, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, StreamProtocol};
use tokio::runtime::Handle;
use tokio::time::Instant;

use crate::RequestError;
use crate::command::V1Request;
use crate::wakers::WakingStream;
use crate::wire::exchange;

/// Requests waiting for a dial to the peer, at most; more fail at once.
const WAITING_FOR_DIAL: usize = 1024;

/// Sends requests on their protocol's one-request name.
pub(crate) struct Opener {
    /// Each connected peer's connections (in the order established).
    connections: HashMap<PeerId, Vec<ConnectionId>>,
    /// Which of a peer's connections the next request goes on.
    turn: usize,
    /// Requests waiting for a connection to their peer (being dialed).
    waiting: HashMap<PeerId, Vec<V1Request>>,
    events: VecDeque<ToSwarm<Infallible, V1Request>>,
    max_streams: usize,
    runtime: Handle,
}

impl Opener {
    pub(crate) fn new(max_streams: usize, runtime: Handle) -> Self {
        Self {
            connections: HashMap::new(),
            turn: 0,
            waiting: HashMap::new(),
            events: VecDeque::new(),
            max_streams: max_streams.max(1),
            runtime,
        }
    }

    /// Sends `request` to `peer` on one of its connections, dialing it first if it has none.
    pub(crate) fn send(&mut self, peer: PeerId, request: V1Request) {
        if request.reply.is_closed() {
            return; // the caller gave up before we got to it
        }
        if let Some(connections) = self.connections.get(&peer).filter(|c| !c.is_empty()) {
            self.turn = self.turn.wrapping_add(1);
            let connection = connections[self.turn % connections.len()];
            self.events.push_back(ToSwarm::NotifyHandler {
                peer_id: peer,
                handler: NotifyHandler::One(connection),
                event: request,
            });
            return;
        }
        let waiting = self.waiting.entry(peer).or_default();
        if waiting.len() >= WAITING_FOR_DIAL {
            let _ = request.reply.send(Err(RequestError::Dial));
            return;
        }
        if waiting.is_empty() {
            self.events.push_back(ToSwarm::Dial {
                opts: DialOpts::peer_id(peer).condition(PeerCondition::DisconnectedAndNotDialing).build(),
            });
        }
        waiting.push(request);
    }

    /// Fails every waiting request (the node is shutting down).
    pub(crate) fn shut_down(&mut self) {
        for (_, requests) in self.waiting.drain() {
            for request in requests {
                let _ = request.reply.send(Err(RequestError::Shutdown));
            }
        }
    }

    fn handler(&self) -> Handler {
        Handler {
            queue: VecDeque::new(),
            open: Arc::new(AtomicUsize::new(0)),
            max_streams: self.max_streams,
            connection: Arc::new(AtomicWaker::new()),
            runtime: self.runtime.clone(),
        }
    }
}

impl NetworkBehaviour for Opener {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler())
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(established) => {
                let peer = established.peer_id;
                self.connections.entry(peer).or_default().push(established.connection_id);
                for request in self.waiting.remove(&peer).unwrap_or_default() {
                    self.events.push_back(ToSwarm::NotifyHandler {
                        peer_id: peer,
                        handler: NotifyHandler::One(established.connection_id),
                        event: request,
                    });
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { peer_id, connection_id, .. }) => {
                if let Some(connections) = self.connections.get_mut(&peer_id) {
                    connections.retain(|c| *c != connection_id);
                    if connections.is_empty() {
                        self.connections.remove(&peer_id);
                    }
                }
            }
            FromSwarm::DialFailure(DialFailure { peer_id: Some(peer), error, .. }) => {
                // Ours was not made because another is under way: that one's
                // outcome decides.
                if matches!(error, DialError::DialPeerConditionFalse(_)) {
                    return;
                }
                if !self.connections.contains_key(&peer) {
                    for request in self.waiting.remove(&peer).unwrap_or_default() {
                        let _ = request.reply.send(Err(RequestError::Dial));
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
        match self.events.pop_front() {
            Some(event) => Poll::Ready(event),
            None => Poll::Pending,
        }
    }
}

/// One connection's side of the [`Opener`]: its queue, and its exchanges running.
pub(crate) struct Handler {
    queue: VecDeque<V1Request>,
    /// Exchanges negotiating or running on this connection.
    open: Arc<AtomicUsize>,
    max_streams: usize,
    /// The connection task, as of its last poll: woken when an exchange ends.
    connection: Arc<AtomicWaker>,
    runtime: Handle,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = V1Request;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = V1Request;

    fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade, ()> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn connection_keep_alive(&self) -> bool {
        !self.queue.is_empty()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, V1Request, Infallible>> {
        self.connection.register(cx.waker());
        while self.open.load(Ordering::Relaxed) < self.max_streams {
            let Some(request) = self.queue.pop_front() else { break };
            if request.reply.is_closed() {
                continue;
            }
            let now = Instant::now();
            if request.deadline <= now {
                let _ = request.reply.send(Err(RequestError::Timeout));
                continue;
            }
            self.open.fetch_add(1, Ordering::Relaxed);
            let (protocol, timeout) = (request.protocol.clone(), request.deadline - now);
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(ReadyUpgrade::new(protocol), request).with_timeout(timeout),
            });
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, request: V1Request) {
        self.queue.push_back(request);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, DeniedUpgrade, Self::OutboundProtocol, (), V1Request>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound { protocol: stream, info }) => {
                // Counted until dropped, and the connection woken then (to
                // open the next queued one, and to see the stream gone).
                let mut stream = WakingStream::new(stream, &self.connection, Some(Arc::clone(&self.open)));
                let V1Request { body, max_frame, deadline, reply, .. } = info;
                self.runtime.spawn(async move {
                    let answer =
                        tokio::time::timeout_at(deadline, exchange(&mut stream, &body, max_frame)).await;
                    drop(stream);
                    let _ = reply.send(answer.unwrap_or(Err(RequestError::Timeout)));
                });
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info, error }) => {
                self.open.fetch_sub(1, Ordering::Relaxed);
                let error = match error {
                    StreamUpgradeError::NegotiationFailed => RequestError::UnsupportedProtocol,
                    StreamUpgradeError::Timeout => RequestError::Timeout,
                    StreamUpgradeError::Io(err) => RequestError::Io(err.to_string()),
                    StreamUpgradeError::Apply(never) => match never {},
                };
                let _ = info.reply.send(Err(error));
            }
            _ => {}
        }
    }
}
