//! The write half of a pipelined stream: frames coalesced into few writes.

use futures::{AsyncWrite, AsyncWriteExt};
use p2p_protocol::append_frame;
use tokio::sync::mpsc;

/// Up to this many bytes of ready frames go out in one write.
const COALESCE_BYTES: usize = 64 * 1024;

/// Writes each body from `bodies` as a frame. Frames that are ready together
/// go out in one write and one flush; a flush happens whenever nothing more
/// is ready. Closes the write half once every sender is gone.
pub(crate) async fn write_bodies<W>(mut writer: W, mut bodies: mpsc::Receiver<Vec<u8>>) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut buf = Vec::with_capacity(4096);
    while let Some(body) = bodies.recv().await {
        buf.clear();
        append_frame(&mut buf, &body)?;
        while buf.len() < COALESCE_BYTES {
            let Ok(body) = bodies.try_recv() else { break };
            append_frame(&mut buf, &body)?;
        }
        writer.write_all(&buf).await?;
        writer.flush().await?;
    }
    writer.close().await
}
