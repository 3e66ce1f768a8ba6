//! Inbound greet streams: 2.0.0 streams handed over without loss, and each
//! 1.0.0 stream handed to a task of its own at once.
//!
//! A 1.0.0 stream carries one request: the connection's handler spawns the
//! task that serves it ([`ServeV1`]), so the request and its answer never
//! pass through the swarm task; at most `max_v1_streams` are served at once
//! per connection, the rest are dropped (as libp2p's `request_response`
//! drops streams beyond its cap).
//!
//! libp2p-stream's acceptor keeps one waiting stream per protocol, for all
//! connections together, and drops the rest: a burst of streams (one peer
//! opening many, or many peers opening one each) loses most of them. This
//! behaviour buffers each connection's negotiated streams (bounded) and hands
//! them over as the accepting task takes them.
//!
//! It also wakes a stream's connection when the stream is dropped: libp2p
//! checks whether a connection has streams left (and so whether its idle
//! timeout runs) only when the connection's task is woken, and a peer that
//! does nothing else (no ping) would otherwise never wake it again. Our own
//! outbound streams (opened through libp2p-stream, which does not wake its
//! connection either) do the same through [`ConnectionWakers`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures::channel::mpsc;
use futures::task::AtomicWaker;
use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, InboundUpgrade, UpgradeInfo};
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour,
    SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use p2p_protocol::{PROTOCOL_NAME, v2};
use tracing::{debug, warn};

use super::stream::{InboundStream, Incoming, IncomingStream};
use super::v1::ServeV1;
use crate::wakers::ConnectionWakers;

/// Streams negotiated but not yet taken, per connection. A peer with more
/// than this many streams waiting is misbehaving; the excess is dropped.
const BACKLOG: usize = 256;

/// Streams handed over but not yet picked up by the accepting task.
const QUEUE: usize = 64;

/// A peer opened a greet stream to us (reported once per connection and
/// version): it speaks greet, and 2.0.0 if `v2`, whatever identify has said
/// or not said yet.
#[derive(Debug)]
pub(crate) struct GreetedBy {
    pub(crate) peer: PeerId,
    pub(crate) v2: bool,
}

/// Accepts inbound greet streams on every connection: 1.0.0 always, 2.0.0
/// unless the node is 1.0.0-only.
pub(crate) struct Acceptor {
    /// Where 2.0.0 streams go (none: a 1.0.0-only node).
    v2: Option<mpsc::Sender<IncomingStream>>,
    v1: Arc<ServeV1>,
    /// 1.0.0 streams served at once, per connection.
    max_v1_streams: usize,
    wakers: ConnectionWakers,
    /// Peers to report (one per connection and version that saw a stream).
    speakers: VecDeque<GreetedBy>,
}

impl Acceptor {
    /// With `v2`, 2.0.0 streams are accepted too, and come out of [`Incoming`].
    pub(crate) fn new(v2: bool, v1: Arc<ServeV1>, max_v1_streams: usize) -> (Self, Incoming) {
        let (streams, incoming) = mpsc::channel(QUEUE);
        let acceptor = Self {
            v2: v2.then_some(streams),
            v1,
            max_v1_streams: max_v1_streams.max(1),
            wakers: ConnectionWakers::default(),
            speakers: VecDeque::new(),
        };
        (acceptor, incoming)
    }

    /// The wakers of every connection this behaviour has a handler on.
    pub(crate) fn wakers(&self) -> ConnectionWakers {
        self.wakers.clone()
    }

    fn handler(&self, peer: PeerId, connection_id: ConnectionId, remote_addr: &Multiaddr) -> Handler {
        let connection = Arc::new(AtomicWaker::new());
        self.wakers.insert(peer, connection_id, Arc::clone(&connection));
        Handler {
            peer,
            connection_id,
            remote_addr: remote_addr.clone(),
            protocols: GreetProtocols { v2: self.v2.is_some() },
            streams: self.v2.clone(),
            backlog: VecDeque::new(),
            v1: Arc::clone(&self.v1),
            v1_open: Arc::new(AtomicUsize::new(0)),
            max_v1_streams: self.max_v1_streams,
            connection,
            wakers: self.wakers.clone(),
            reported: [false; 2],
            report: [false; 2],
        }
    }
}

impl NetworkBehaviour for Acceptor {
    type ConnectionHandler = Handler;
    type ToSwarm = GreetedBy;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer, connection, remote_addr))
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer, connection, addr))
    }

    fn on_swarm_event(&mut self, _: FromSwarm<'_>) {}

    fn on_connection_handler_event(&mut self, peer: PeerId, _: ConnectionId, v2: THandlerOutEvent<Self>) {
        // Bounded: two per connection, and the swarm polls us after each event.
        self.speakers.push_back(GreetedBy { peer, v2 });
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<GreetedBy, THandlerInEvent<Self>>> {
        match self.speakers.pop_front() {
            Some(greeted) => Poll::Ready(ToSwarm::GenerateEvent(greeted)),
            None => Poll::Pending,
        }
    }
}

/// One connection's side of the [`Acceptor`].
pub(crate) struct Handler {
    peer: PeerId,
    connection_id: ConnectionId,
    remote_addr: Multiaddr,
    protocols: GreetProtocols,
    /// Where 2.0.0 streams go (none: a 1.0.0-only node).
    streams: Option<mpsc::Sender<IncomingStream>>,
    /// 2.0.0 streams negotiated and not yet handed over.
    backlog: VecDeque<Stream>,
    v1: Arc<ServeV1>,
    /// This connection's 1.0.0 streams being served.
    v1_open: Arc<AtomicUsize>,
    max_v1_streams: usize,
    /// The connection task, as of its last poll.
    connection: Arc<AtomicWaker>,
    /// Where `connection` is registered until this handler (the connection) goes.
    wakers: ConnectionWakers,
    /// A stream came on this connection and is to be reported as
    /// [`GreetedBy`], for 1.0.0 and for 2.0.0…
    report: [bool; 2],
    /// …or already was.
    reported: [bool; 2],
}

impl Handler {
    fn on_v1_stream(&mut self, stream: Stream) {
        if self.v1_open.load(Ordering::Relaxed) >= self.max_v1_streams {
            debug!(peer = %self.peer, "too many greet 1.0.0 streams at once on one connection; one dropped");
            return;
        }
        self.v1_open.fetch_add(1, Ordering::Relaxed);
        let stream = InboundStream::new(stream, &self.connection, Some(Arc::clone(&self.v1_open)));
        self.v1.spawn(self.peer, self.connection_id, self.remote_addr.clone(), stream);
    }

    fn on_v2_stream(&mut self, stream: Stream) {
        if self.backlog.len() < BACKLOG {
            self.backlog.push_back(stream);
        } else {
            warn!(peer = %self.peer, "too many pipelined streams waiting; one dropped");
        }
    }
}

/// The greet protocols a connection accepts (1.0.0, and 2.0.0 if `v2`);
/// the negotiated one comes with the stream.
#[derive(Clone, Copy)]
pub(crate) struct GreetProtocols {
    v2: bool,
}

impl UpgradeInfo for GreetProtocols {
    type Info = StreamProtocol;
    type InfoIter = std::iter::Take<std::array::IntoIter<StreamProtocol, 2>>;

    fn protocol_info(&self) -> Self::InfoIter {
        let all = [StreamProtocol::new(PROTOCOL_NAME), StreamProtocol::new(v2::PROTOCOL_NAME)];
        all.into_iter().take(1 + usize::from(self.v2))
    }
}

impl InboundUpgrade<Stream> for GreetProtocols {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Infallible>>;

    fn upgrade_inbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.wakers.remove(&self.peer, self.connection_id);
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    /// A greet stream came: `true` for 2.0.0.
    type ToBehaviour = bool;
    type InboundProtocol = GreetProtocols;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, ()> {
        SubstreamProtocol::new(self.protocols, ())
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, Infallible, bool>> {
        self.connection.register(cx.waker());
        if let Some(v2) = self.report.iter().position(|report| *report) {
            self.report[v2] = false;
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(v2 == 1));
        }
        let Some(streams) = &mut self.streams else { return Poll::Pending };
        while !self.backlog.is_empty() {
            match streams.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let stream = self.backlog.pop_front().expect("not empty");
                    let stream = InboundStream::new(stream, &self.connection, None);
                    let _ =
                        streams.start_send((self.peer, self.connection_id, self.remote_addr.clone(), stream));
                }
                // The node is shutting down: nobody will serve these.
                Poll::Ready(Err(_)) => self.backlog.clear(),
                Poll::Pending => break,
            }
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, Self::InboundProtocol, DeniedUpgrade, (), Infallible>,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: (stream, protocol),
            ..
        }) = event
        {
            let v2 = protocol.as_ref() == v2::PROTOCOL_NAME;
            let version = usize::from(v2);
            if !self.reported[version] {
                (self.report[version], self.reported[version]) = (true, true);
            }
            if v2 {
                self.on_v2_stream(stream);
            } else {
                self.on_v1_stream(stream);
            }
        }
    }
}
