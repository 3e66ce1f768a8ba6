//! Inbound streams of every mounted protocol, each handed at once, from its
//! connection's handler, to a task of its own (the protocol's [`Serve`]):
//! the request and its answer never pass through the swarm task. At most
//! `max_streams` streams are served at once per connection, whatever their
//! protocol or name; the rest are dropped at once (as libp2p's
//! `request_response` drops streams beyond its cap; the same number is
//! QUIC's stream limit, where an opener waits instead).
//!
//! It also wakes a stream's connection when the stream is dropped: libp2p
//! checks whether a connection has streams left (and so whether its idle
//! timeout runs) only when the connection's task is woken, and a peer that
//! does nothing else (no ping) would otherwise never wake it again. Our own
//! outbound streams do the same through [`ConnectionWakers`].

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

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
use tracing::debug;

use super::serve::Serve;
use crate::wakers::{ConnectionWakers, WakingStream};

/// A peer opened a stream of a mounted protocol to us (reported once per
/// connection and name): it speaks that protocol (and its pipelined name if
/// `pipelined`), whatever identify has said or not said yet.
#[derive(Debug)]
pub(crate) struct SpokenBy {
    pub(crate) peer: PeerId,
    /// The mounted protocol's index.
    pub(crate) mount: usize,
    pub(crate) pipelined: bool,
}

/// A name a connection accepts: the protocol's index (`None`: a bare stream
/// protocol, not reported as [`SpokenBy`]), which of its names, and its server.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) mount: Option<usize>,
    pub(crate) pipelined: bool,
    pub(crate) server: Arc<dyn Serve>,
}

/// Every name the node accepts streams on, in the order offered.
#[derive(Clone, Default)]
pub(crate) struct Routes {
    names: Arc<[StreamProtocol]>,
    by_name: Arc<HashMap<StreamProtocol, Route>>,
}

impl Routes {
    pub(crate) fn new(routes: Vec<(StreamProtocol, Route)>) -> Self {
        let names = routes.iter().map(|(name, _)| name.clone()).collect();
        Self { names, by_name: Arc::new(routes.into_iter().collect()) }
    }

    fn route(&self, name: &StreamProtocol) -> Option<&Route> {
        self.by_name.get(name)
    }
}

/// Accepts inbound streams of every mounted protocol on every connection.
pub(crate) struct Acceptor {
    routes: Routes,
    /// Streams served at once, per connection.
    max_streams: usize,
    wakers: ConnectionWakers,
    /// Peers to report (one per connection and name that saw a stream).
    speakers: VecDeque<SpokenBy>,
}

impl Acceptor {
    pub(crate) fn new(routes: Routes, max_streams: usize) -> Self {
        Self {
            routes,
            max_streams: max_streams.max(1),
            wakers: ConnectionWakers::default(),
            speakers: VecDeque::new(),
        }
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
            routes: self.routes.clone(),
            open: Arc::new(AtomicUsize::new(0)),
            max_streams: self.max_streams,
            connection,
            wakers: self.wakers.clone(),
            reported: Vec::new(),
            report: VecDeque::new(),
        }
    }
}

impl NetworkBehaviour for Acceptor {
    type ConnectionHandler = Handler;
    type ToSwarm = SpokenBy;

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

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        _: ConnectionId,
        (mount, pipelined): THandlerOutEvent<Self>,
    ) {
        // Bounded: one per connection and name, and the swarm polls us after each event.
        self.speakers.push_back(SpokenBy { peer, mount, pipelined });
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<SpokenBy, THandlerInEvent<Self>>> {
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
    routes: Routes,
    /// This connection's streams being served.
    open: Arc<AtomicUsize>,
    max_streams: usize,
    /// The connection task, as of its last poll.
    connection: Arc<AtomicWaker>,
    /// Where `connection` is registered until this handler (the connection) goes.
    wakers: ConnectionWakers,
    /// The names that already had a stream on this connection (a few)…
    reported: Vec<StreamProtocol>,
    /// …and those still to report as [`SpokenBy`].
    report: VecDeque<(usize, bool)>,
}

impl Handler {
    fn on_stream(&mut self, stream: Stream, name: StreamProtocol) {
        let Some(route) = self.routes.route(&name).cloned() else { return };
        if let Some(mount) = route.mount
            && !self.reported.contains(&name)
        {
            self.reported.push(name);
            self.report.push_back((mount, route.pipelined));
        }
        if self.open.load(Ordering::Relaxed) >= self.max_streams {
            debug!(peer = %self.peer, "too many streams at once on one connection; one dropped");
            return;
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        let stream = WakingStream::new(stream, &self.connection, Some(Arc::clone(&self.open)));
        route.server.spawn(route.pipelined, self.peer, self.connection_id, self.remote_addr.clone(), stream);
    }
}

/// The names a connection accepts; the negotiated one comes with the stream.
/// libp2p asks for them on every poll of the connection and every inbound
/// stream: they are shared, not copied into a new list each time.
#[derive(Clone)]
pub(crate) struct Names(Arc<[StreamProtocol]>);

impl UpgradeInfo for Names {
    type Info = StreamProtocol;
    type InfoIter = NamesIter;

    fn protocol_info(&self) -> Self::InfoIter {
        NamesIter { names: Arc::clone(&self.0), next: 0 }
    }
}

/// [`Names`], one at a time (a name of ours is `'static`: its clone is a copy).
pub(crate) struct NamesIter {
    names: Arc<[StreamProtocol]>,
    next: usize,
}

impl Iterator for NamesIter {
    type Item = StreamProtocol;

    fn next(&mut self) -> Option<StreamProtocol> {
        let name = self.names.get(self.next)?.clone();
        self.next += 1;
        Some(name)
    }
}

impl InboundUpgrade<Stream> for Names {
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
    /// A stream came on a name not seen on this connection before: (mount, pipelined).
    type ToBehaviour = (usize, bool);
    type InboundProtocol = Names;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, ()> {
        SubstreamProtocol::new(Names(Arc::clone(&self.routes.names)), ())
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, Infallible, (usize, bool)>> {
        self.connection.register(cx.waker());
        match self.report.pop_front() {
            Some(spoken) => Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(spoken)),
            None => Poll::Pending,
        }
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
            self.on_stream(stream, protocol);
        }
    }
}
