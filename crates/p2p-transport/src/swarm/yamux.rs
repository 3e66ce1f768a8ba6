//! Yamux as libp2p's stream muxer, with its receive windows set by us.
//!
//! libp2p-yamux 0.48 keeps its `yamux::Config` private and lets a user set
//! only the stream limit, so its connections run with yamux's default
//! connection receive window of 1 GiB: a stream's window starts at 256 KiB
//! and is auto-tuned up to that. This is libp2p-yamux's adapter (MIT,
//! Parity Technologies), cut to what we use, around a `yamux::Config` we
//! build: the same `/yamux/1.0.0` on the wire.
//!
//! Owns: the Yamux configuration (stream limit, connection receive window).
//! Must never: buffer more than [`MAX_BUFFERED_INBOUND_STREAMS`] inbound
//! streams nobody took (the rest are dropped, as libp2p-yamux does).

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::iter;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use futures::future;
use futures::io::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use yamux::{Connection, ConnectionError};

/// Inbound streams the swarm has not taken yet, at most.
const MAX_BUFFERED_INBOUND_STREAMS: usize = 256;

/// Yamux's own window for a new stream (its specification's 256 KiB); a
/// connection's receive window must allow it for every stream.
pub(crate) const STREAM_WINDOW: usize = yamux::DEFAULT_CREDIT as usize;

/// The upgrade: Yamux with `max_streams` streams a connection and a
/// connection receive window of [`STREAM_WINDOW`] for each of them, so no
/// stream's window is ever tuned beyond 256 KiB.
#[derive(Debug, Clone)]
pub(crate) struct Config(yamux::Config);

impl Config {
    pub(crate) fn new(max_streams: usize) -> Self {
        let max_streams = max_streams.max(1);
        let mut config = yamux::Config::default();
        // In this order: the window must be >= 256 KiB × the stream limit.
        config.set_max_num_streams(max_streams);
        config.set_max_connection_receive_window(Some(max_streams.saturating_mul(STREAM_WINDOW)));
        Self(config)
    }
}

impl UpgradeInfo for Config {
    type Info = &'static str;
    type InfoIter = iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        iter::once("/yamux/1.0.0")
    }
}

impl<C> InboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(Connection::new(io, self.0, yamux::Mode::Server))))
    }
}

impl<C> OutboundConnectionUpgrade<C> for Config
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = Muxer<C>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, io: C, _: Self::Info) -> Self::Future {
        future::ready(Ok(Muxer::new(Connection::new(io, self.0, yamux::Mode::Client))))
    }
}

/// One Yamux connection as a libp2p `StreamMuxer`.
#[derive(Debug)]
pub(crate) struct Muxer<C> {
    connection: Connection<C>,
    inbound: VecDeque<Stream>,
    inbound_waker: Option<Waker>,
}

impl<C> Muxer<C> {
    fn new(connection: Connection<C>) -> Self {
        Self { connection, inbound: VecDeque::new(), inbound_waker: None }
    }
}

impl<C> Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<Stream, Error>> {
        let stream = ready!(self.connection.poll_next_inbound(cx)).ok_or(Error(ConnectionError::Closed))?;
        Poll::Ready(stream.map(Stream).map_err(Error))
    }
}

impl<C> StreamMuxer for Muxer<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    type Substream = Stream;
    type Error = Error;

    fn poll_inbound(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Stream, Error>> {
        if let Some(stream) = self.inbound.pop_front() {
            return Poll::Ready(Ok(stream));
        }
        if let Poll::Ready(result) = self.poll_inner(cx) {
            return Poll::Ready(result);
        }
        self.inbound_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_outbound(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Stream, Error>> {
        let stream = ready!(self.connection.poll_new_outbound(cx)).map_err(Error)?;
        Poll::Ready(Ok(Stream(stream)))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.connection.poll_close(cx).map_err(Error)
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<StreamMuxerEvent, Error>> {
        let this = self.get_mut();
        let stream = ready!(this.poll_inner(cx))?;
        if this.inbound.len() >= MAX_BUFFERED_INBOUND_STREAMS {
            tracing::warn!(stream = %stream.0, "dropping an inbound stream: the buffer is full");
            drop(stream);
        } else {
            this.inbound.push_back(stream);
            if let Some(waker) = this.inbound_waker.take() {
                waker.wake();
            }
        }
        // Keep driving the connection: `poll` is how its frames are read.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// One Yamux stream.
#[derive(Debug)]
pub(crate) struct Stream(yamux::Stream);

impl AsyncRead for Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read_vectored(cx, bufs)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// A Yamux connection error.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct Error(ConnectionError);

impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        match error.0 {
            ConnectionError::Io(e) => e,
            e => io::Error::other(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_window_allows_each_stream_its_256_kib_and_no_more() {
        // yamux panics if the window is below 256 KiB × streams: building it proves the order.
        for streams in [1, 64, 128, 512] {
            let config = Config::new(streams);
            let debug = format!("{:?}", config.0);
            assert!(
                debug.contains(&format!("max_connection_receive_window: Some({})", streams * STREAM_WINDOW)),
                "{debug}"
            );
            assert!(debug.contains(&format!("max_num_streams: {streams}")), "{debug}");
        }
    }
}
