//! An inbound greet stream as the acceptor hands it over: it wakes its
//! connection's task once dropped, so that the connection sees it gone and
//! its idle timeout can start (see `crate::wakers`).
//!
//! A leaf of `inbound/`: used by the acceptor that makes these streams and
//! by the 1.0.0 and 2.0.0 tasks that serve them; uses none of them.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures::channel::mpsc;
use futures::task::AtomicWaker;
use futures::{AsyncRead, AsyncWrite};
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, Stream};

/// An inbound v2 stream: the peer, the connection it came on and that
/// connection's remote address (what the peer is told it was observed at).
pub(crate) type IncomingStream = (PeerId, ConnectionId, Multiaddr, InboundStream);

/// A negotiated inbound stream that wakes its connection once dropped, so
/// that the connection sees it gone and its idle timeout can start.
pub(crate) struct InboundStream {
    /// Always `Some` until dropped.
    stream: Option<Stream>,
    connection: Arc<AtomicWaker>,
    /// The count of its connection's 1.0.0 streams, for a 1.0.0 stream.
    counted: Option<Arc<AtomicUsize>>,
}

impl InboundStream {
    pub(super) fn new(
        stream: Stream,
        connection: &Arc<AtomicWaker>,
        counted: Option<Arc<AtomicUsize>>,
    ) -> Self {
        Self { stream: Some(stream), connection: Arc::clone(connection), counted }
    }

    fn stream(&mut self) -> Pin<&mut Stream> {
        Pin::new(self.stream.as_mut().expect("taken only on drop"))
    }
}

impl Drop for InboundStream {
    fn drop(&mut self) {
        drop(self.stream.take()); // first, so the woken connection sees it gone
        if let Some(counted) = &self.counted {
            counted.fetch_sub(1, Ordering::Relaxed);
        }
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

/// The receiving end: every inbound v2 stream.
pub(crate) type Incoming = mpsc::Receiver<IncomingStream>;
