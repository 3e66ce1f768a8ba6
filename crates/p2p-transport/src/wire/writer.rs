//! The write half of a pipelined stream: frames coalesced into few writes,
//! each bounded by a deadline.

use std::future::Future;
use std::io;
use std::time::Duration;

use futures::{AsyncWrite, AsyncWriteExt};
use p2p_protocol::append_frame_max;
use tokio::sync::mpsc;

/// Up to this many bytes of ready frames go out in one write.
const COALESCE_BYTES: usize = 64 * 1024;

/// Writes each body from `bodies` as a frame. Frames that are ready together
/// go out in one write and one flush; a flush happens whenever nothing more
/// is ready. Closes the write half once every sender is gone.
///
/// A body longer than `max` (the protocol's frame limit) fails the writer.
///
/// Each write (and the close) must complete within `deadline`, or this fails
/// with [`io::ErrorKind::TimedOut`]: the peer has stopped reading, and what
/// is queued for it would otherwise wait as long as it likes.
pub(crate) async fn write_bodies<W>(
    mut writer: W,
    mut bodies: mpsc::Receiver<Vec<u8>>,
    deadline: Duration,
    max: usize,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    // Grows to what a burst needs (up to COALESCE_BYTES and a frame) and
    // keeps it; starts small, since most streams carry a few small frames
    // a second and every connection has one or two of them.
    let mut buf = Vec::with_capacity(256);
    while let Some(body) = bodies.recv().await {
        buf.clear();
        append_frame_max(&mut buf, &body, max)?;
        while buf.len() < COALESCE_BYTES {
            let Ok(body) = bodies.try_recv() else { break };
            append_frame_max(&mut buf, &body, max)?;
        }
        within(deadline, async {
            writer.write_all(&buf).await?;
            writer.flush().await
        })
        .await?;
    }
    within(deadline, writer.close()).await
}

/// `io`'s result if it completes within `deadline`, a `TimedOut` error otherwise.
async fn within<T>(deadline: Duration, io: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(deadline, io)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")))
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A peer that takes `room` bytes, then never reads again.
    struct StopsReading {
        room: usize,
    }

    impl AsyncWrite for StopsReading {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            if self.room == 0 {
                return Poll::Pending;
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_fails_the_writer_at_the_deadline() {
        let deadline = Duration::from_secs(3);
        let (bodies, queue) = mpsc::channel(8);
        let start = tokio::time::Instant::now();
        let writer = tokio::spawn(write_bodies(StopsReading { room: 10 }, queue, deadline, 65_536));
        bodies.send(vec![7; 100]).await.unwrap();
        let written = tokio::time::timeout(deadline * 10, writer).await.expect("the writer gives up");
        let err = written.unwrap().expect_err("the write never completes");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_reads_is_written_to_without_a_deadline_between_writes() {
        let (bodies, queue) = mpsc::channel(8);
        let writer = tokio::spawn(write_bodies(
            StopsReading { room: usize::MAX },
            queue,
            Duration::from_secs(1),
            65_536,
        ));
        for _ in 0..3 {
            bodies.send(vec![1; 10]).await.unwrap();
            // Nothing to write for a long while is not a stalled write.
            tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_secs(60)).await;
        }
        drop(bodies);
        writer.await.unwrap().expect("every write completed");
    }
}
