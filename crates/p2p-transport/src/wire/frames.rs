//! The read half of a pipelined stream, either way: frames as a stream.

use std::pin::Pin;

use futures::io::BufReader;
use futures::{AsyncRead, Stream};
use p2p_protocol::{DecodeError, try_read_frame_max};

/// The read buffer: a burst of small pipelined frames is read in a few reads,
/// not two or more per frame.
const READ_BUFFER: usize = 1024;

/// One frame read off a stream: `Ok(None)` once the peer closed its write
/// half cleanly between frames.
pub(crate) type Frame = Result<Option<Vec<u8>>, DecodeError>;

/// The frames of `reader`, endless (after the end or an error, polling again
/// reads again). A read in progress survives being put aside, so a `select!`
/// loop can poll it among other branches without losing a partly read frame.
///
/// Both directions of every pipelined stream read through this, with the
/// protocol's frame limit `max`, and so share [`try_read_frame_max`]'s
/// rule: a frame's buffer grows as its bytes arrive, never to the length
/// the peer merely declared.
pub(crate) fn frames<R>(reader: R, max: usize) -> Pin<Box<impl Stream<Item = Frame> + Send>>
where
    R: AsyncRead + Unpin + Send,
{
    let reader = BufReader::with_capacity(READ_BUFFER, reader);
    Box::pin(futures::stream::unfold(reader, move |mut reader| async move {
        let frame = try_read_frame_max(&mut reader, max).await;
        Some((frame, reader))
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use futures::StreamExt;
    use p2p_protocol::{MAX_FRAME_LEN, uvarint};

    use super::*;

    /// A peer that sends only `bytes` (a length prefix declaring a full
    /// frame), then holds the stream open and sends nothing: it records the
    /// largest buffer it was offered to fill after them, the room the
    /// reader allocated for bytes that were only declared.
    pub(crate) struct Hoarder {
        bytes: Vec<u8>,
        pub(crate) largest_offered: Arc<AtomicUsize>,
    }

    impl Hoarder {
        /// The three bytes of a prefix declaring `MAX_FRAME_LEN`, then silence.
        pub(crate) fn declaring_a_full_frame() -> Self {
            let bytes = uvarint(MAX_FRAME_LEN as u64);
            assert_eq!(bytes.len(), 3);
            Self { bytes, largest_offered: Arc::default() }
        }

        pub(crate) fn offered(&self) -> Arc<AtomicUsize> {
            Arc::clone(&self.largest_offered)
        }
    }

    impl AsyncRead for Hoarder {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            if !self.bytes.is_empty() {
                let n = buf.len().min(self.bytes.len());
                buf[..n].copy_from_slice(&self.bytes[..n]);
                self.bytes.drain(..n);
                return Poll::Ready(Ok(n));
            }
            self.largest_offered.fetch_max(buf.len(), Ordering::Relaxed);
            Poll::Pending
        }
    }

    /// Polls `future` once; it must pend.
    pub(crate) fn poll_once<F: std::future::Future>(future: F) {
        let future = std::pin::pin!(future);
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert!(future.poll(&mut cx).is_pending(), "the body never comes");
    }

    #[test]
    fn a_pipelined_frame_declared_but_not_sent_costs_no_frame_sized_buffer() {
        let hoarder = Hoarder::declaring_a_full_frame();
        let offered = hoarder.offered();
        let mut frames = frames(hoarder, MAX_FRAME_LEN);
        poll_once(frames.next());
        let offered = offered.load(Ordering::Relaxed);
        assert!(offered > 0, "the body was asked for");
        assert!(offered <= 1024, "{offered} bytes of room for 3 received");
    }
}
