//! Each connection's task waker, by peer: what wakes a peer's connections
//! once a stream on one of them has ended, so that libp2p sees the stream
//! gone and the connection's idle timeout can start.
//!
//! libp2p checks whether a connection has streams left (and so whether its
//! idle timeout runs) only when the connection's task is woken, and a peer
//! that does nothing else (no ping) would otherwise never wake it again.
//! `inbound/` registers each connection (its handler's task) and wakes it
//! when an inbound stream is dropped; `outbound/` wakes a peer's connections
//! when one of our pipelined streams to it has ended (we do not know which
//! connection carried it).
//!
//! [`WakingStream`] is the other half: a stream a connection's handler hands
//! over (inbound, or one of our 1.0.0 requests) that wakes that connection
//! once dropped.
//!
//! Owns: the table of wakers, keyed by peer, so that a wake costs one lookup
//! and the peer's few connections, never a scan of every connection.
//! Must never: hold a connection's handler or stream (only its waker).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use futures::{AsyncRead, AsyncWrite};
use libp2p::swarm::ConnectionId;
use libp2p::{PeerId, Stream};

use crate::lock::lock;

/// One entry per live connection with a handler that registered (bounded by
/// the connection limits); the handler removes its own entry when dropped,
/// and a peer's entry goes with its last connection.
#[derive(Clone, Default)]
pub(crate) struct ConnectionWakers(Arc<Mutex<HashMap<PeerId, Vec<ConnectionTask>>>>);

/// A connection and its task's waker.
type ConnectionTask = (ConnectionId, Arc<AtomicWaker>);

impl ConnectionWakers {
    /// Wakes every connection to `peer` (we do not know which one carried the
    /// stream; waking the others costs one poll each).
    pub(crate) fn wake(&self, peer: &PeerId) {
        if let Some(connections) = lock(&self.0).get(peer) {
            connections.iter().for_each(|(_, waker)| waker.wake());
        }
    }

    /// `connection` to `peer` is woken through `waker` from now on.
    pub(crate) fn insert(&self, peer: PeerId, connection: ConnectionId, waker: Arc<AtomicWaker>) {
        lock(&self.0).entry(peer).or_default().push((connection, waker));
    }

    /// `connection` to `peer` is gone.
    pub(crate) fn remove(&self, peer: &PeerId, connection: ConnectionId) {
        let mut peers = lock(&self.0);
        if let Some(connections) = peers.get_mut(peer) {
            connections.retain(|(id, _)| *id != connection);
            if connections.is_empty() {
                peers.remove(peer);
            }
        }
    }

    #[cfg(test)]
    fn peers(&self) -> usize {
        lock(&self.0).len()
    }
}

/// A negotiated stream that wakes its connection once dropped, so that the
/// connection sees it gone and its idle timeout can start; it may count
/// against its connection's streams (`counted`, decremented on drop).
pub(crate) struct WakingStream {
    // Fields drop in order: the stream first, so the woken connection sees it gone.
    stream: Stream,
    guard: StreamGuard,
}

/// What a [`WakingStream`] does once its stream is gone: uncount it and wake
/// its connection. Held apart from the stream by whoever hands the bare
/// stream on (a user's stream handler) and drops it once that is done.
pub(crate) struct StreamGuard {
    connection: Arc<AtomicWaker>,
    counted: Option<Arc<AtomicUsize>>,
}

impl WakingStream {
    pub(crate) fn new(
        stream: Stream,
        connection: &Arc<AtomicWaker>,
        counted: Option<Arc<AtomicUsize>>,
    ) -> Self {
        Self { stream, guard: StreamGuard { connection: Arc::clone(connection), counted } }
    }

    /// The bare stream, and the guard to drop once the stream is gone.
    pub(crate) fn into_parts(self) -> (Stream, StreamGuard) {
        (self.stream, self.guard)
    }

    fn stream(&mut self) -> Pin<&mut Stream> {
        Pin::new(&mut self.stream)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(counted) = &self.counted {
            counted.fetch_sub(1, Ordering::Relaxed);
        }
        self.connection.wake();
    }
}

impl AsyncRead for WakingStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for WakingStream {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection's waker, registered with a task waker that counts its wakes.
    fn connection() -> (Arc<AtomicWaker>, Arc<Count>) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Arc::new(AtomicWaker::new());
        rearm(&waker, &count);
        (waker, count)
    }

    /// An `AtomicWaker` forgets its waker once woken: the task registers again when polled.
    fn rearm(waker: &AtomicWaker, count: &Arc<Count>) {
        waker.register(&Waker::from(Arc::clone(count)));
    }

    #[test]
    fn a_wake_reaches_the_peers_connections_only_and_gone_connections_are_forgotten() {
        let wakers = ConnectionWakers::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let ids = [1, 2, 3].map(ConnectionId::new_unchecked);
        let (a1, a1_count) = connection();
        let (a2, a2_count) = connection();
        let (b1, b1_count) = connection();
        wakers.insert(a, ids[0], Arc::clone(&a1));
        wakers.insert(a, ids[1], Arc::clone(&a2));
        wakers.insert(b, ids[2], Arc::clone(&b1));
        let counts = || [&a1_count, &a2_count, &b1_count].map(|c| c.0.load(Ordering::Relaxed));

        wakers.wake(&a);
        assert_eq!(counts(), [1, 1, 0], "both of A's connections, none of B's");

        wakers.remove(&a, ids[0]);
        rearm(&a1, &a1_count);
        rearm(&a2, &a2_count);
        wakers.wake(&a);
        assert_eq!(counts(), [1, 2, 0], "a removed connection is not woken");

        wakers.remove(&a, ids[1]);
        assert_eq!(wakers.peers(), 1, "a peer's entry goes with its last connection");
        wakers.remove(&b, ids[2]);
        assert_eq!(wakers.peers(), 0);
        wakers.wake(&a); // nothing to wake, nothing fails
    }
}
