//! Inbound v2 streams, handed over without loss.
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

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::channel::mpsc;
use futures::task::AtomicWaker;
use futures::{AsyncRead, AsyncWrite};
use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, ReadyUpgrade};
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour,
    SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use p2p_protocol::v2;
use tracing::warn;

use crate::lock::lock;

/// Streams negotiated but not yet taken, per connection. A peer with more
/// than this many streams waiting is misbehaving; the excess is dropped.
const BACKLOG: usize = 256;

/// Streams handed over but not yet picked up by the accepting task.
const QUEUE: usize = 64;

/// An inbound v2 stream: the peer, the connection it came on and that
/// connection's remote address (what the peer is told it was observed at).
pub(crate) type IncomingStream = (PeerId, ConnectionId, Multiaddr, InboundStream);

/// A negotiated inbound stream that wakes its connection once dropped, so
/// that the connection sees it gone and its idle timeout can start.
pub(crate) struct InboundStream {
    /// Always `Some` until dropped.
    stream: Option<Stream>,
    connection: Arc<AtomicWaker>,
}

impl InboundStream {
    fn stream(&mut self) -> Pin<&mut Stream> {
        Pin::new(self.stream.as_mut().expect("taken only on drop"))
    }
}

impl Drop for InboundStream {
    fn drop(&mut self) {
        drop(self.stream.take()); // first, so the woken connection sees it gone
        self.connection.wake();
    }
}

impl AsyncRead for InboundStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for InboundStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_close(cx)
    }
}

/// Every live connection's task, as of its last poll, with its peer: what
/// wakes a peer's connections once a stream of ours on one of them has ended,
/// so that libp2p sees it gone and the connection's idle timeout can start.
/// One entry per connection with a [`Handler`] (bounded by the connection
/// limits); a handler removes its own entry when dropped.
#[derive(Clone, Default)]
pub(crate) struct ConnectionWakers(Arc<Mutex<HashMap<ConnectionId, ConnectionTask>>>);

/// A connection's peer and its task's waker.
type ConnectionTask = (PeerId, Arc<AtomicWaker>);

impl ConnectionWakers {
    /// Wakes every connection to `peer` (we do not know which one carried the
    /// stream; waking the others costs one poll each).
    pub(crate) fn wake(&self, peer: &PeerId) {
        for (owner, waker) in lock(&self.0).values() {
            if owner == peer {
                waker.wake();
            }
        }
    }

    fn insert(&self, connection: ConnectionId, peer: PeerId, waker: Arc<AtomicWaker>) {
        lock(&self.0).insert(connection, (peer, waker));
    }

    fn remove(&self, connection: &ConnectionId) {
        lock(&self.0).remove(connection);
    }
}

/// A peer opened a greet 2.0.0 stream to us (reported once per connection):
/// it speaks greet, whatever identify has said or not said yet.
#[derive(Debug)]
pub(crate) struct SpeaksV2(pub(crate) PeerId);

/// The receiving end: every inbound v2 stream.
pub(crate) type Incoming = mpsc::Receiver<IncomingStream>;

/// Accepts inbound `/p2p-node/greet/2.0.0` streams on every connection.
pub(crate) struct Acceptor {
    streams: mpsc::Sender<IncomingStream>,
    wakers: ConnectionWakers,
    /// Peers to report as [`SpeaksV2`] (one per connection that saw a stream).
    speakers: VecDeque<PeerId>,
}

impl Acceptor {
    pub(crate) fn new() -> (Self, Incoming) {
        let (streams, incoming) = mpsc::channel(QUEUE);
        (Self { streams, wakers: ConnectionWakers::default(), speakers: VecDeque::new() }, incoming)
    }

    /// The wakers of every connection this behaviour has a handler on.
    pub(crate) fn wakers(&self) -> ConnectionWakers {
        self.wakers.clone()
    }

    fn handler(&self, peer: PeerId, connection_id: ConnectionId, remote_addr: &Multiaddr) -> Handler {
        let connection = Arc::new(AtomicWaker::new());
        self.wakers.insert(connection_id, peer, Arc::clone(&connection));
        Handler {
            peer,
            connection_id,
            remote_addr: remote_addr.clone(),
            streams: self.streams.clone(),
            backlog: VecDeque::new(),
            connection,
            wakers: self.wakers.clone(),
            reported: false,
            report: false,
        }
    }
}

impl NetworkBehaviour for Acceptor {
    type ConnectionHandler = Handler;
    type ToSwarm = SpeaksV2;

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

    fn on_connection_handler_event(&mut self, peer: PeerId, _: ConnectionId, (): THandlerOutEvent<Self>) {
        // Bounded: one per connection, and the swarm polls us after each event.
        self.speakers.push_back(peer);
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<SpeaksV2, THandlerInEvent<Self>>> {
        match self.speakers.pop_front() {
            Some(peer) => Poll::Ready(ToSwarm::GenerateEvent(SpeaksV2(peer))),
            None => Poll::Pending,
        }
    }
}

/// One connection's side of the [`Acceptor`].
pub(crate) struct Handler {
    peer: PeerId,
    connection_id: ConnectionId,
    remote_addr: Multiaddr,
    streams: mpsc::Sender<IncomingStream>,
    backlog: VecDeque<Stream>,
    /// The connection task, as of its last poll.
    connection: Arc<AtomicWaker>,
    /// Where `connection` is registered until this handler (the connection) goes.
    wakers: ConnectionWakers,
    /// A stream came on this connection and is to be reported as [`SpeaksV2`]…
    report: bool,
    /// …or already was.
    reported: bool,
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.wakers.remove(&self.connection_id);
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = ();
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, ()> {
        SubstreamProtocol::new(ReadyUpgrade::new(StreamProtocol::new(v2::PROTOCOL_NAME)), ())
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, Infallible, ()>> {
        self.connection.register(cx.waker());
        if self.report {
            self.report = false;
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(()));
        }
        while !self.backlog.is_empty() {
            match self.streams.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let stream = self.backlog.pop_front().expect("not empty");
                    let stream =
                        InboundStream { stream: Some(stream), connection: Arc::clone(&self.connection) };
                    let _ = self.streams.start_send((
                        self.peer,
                        self.connection_id,
                        self.remote_addr.clone(),
                        stream,
                    ));
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
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol: stream, .. }) =
            event
        {
            if !self.reported {
                (self.report, self.reported) = (true, true);
            }
            if self.backlog.len() < BACKLOG {
                self.backlog.push_back(stream);
            } else {
                warn!(peer = %self.peer, "too many pipelined streams waiting; one dropped");
            }
        }
    }
}
