//! Length-prefixed framing over `futures::io`: `uvarint(len) || body`.

use futures_io::{AsyncRead, AsyncWrite};
use futures_util::{AsyncReadExt, AsyncWriteExt};

use crate::{DecodeError, MAX_FRAME_LEN};

/// The longest length prefix a reader accepts, in bytes (an unsigned LEB128 `u64`).
pub const MAX_VARINT_LEN: usize = 10;

/// The bytes of `n` as an unsigned LEB128 varint, the frame's length prefix.
///
/// ```
/// assert_eq!(p2p_protocol::uvarint(300), [0xac, 0x02]);
/// ```
pub fn uvarint(n: u64) -> Vec<u8> {
    let mut buf = unsigned_varint::encode::u64_buffer();
    unsigned_varint::encode::u64(n, &mut buf).to_vec()
}

/// How many bytes [`uvarint`] writes for `n` (1 to [`MAX_VARINT_LEN`]).
///
/// ```
/// assert_eq!(p2p_protocol::uvarint_len(127), 1);
/// assert_eq!(p2p_protocol::uvarint_len(128), 2);
/// ```
pub const fn uvarint_len(n: u64) -> usize {
    let bits = 64 - (n | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Writes one frame (`uvarint(body.len()) || body`) and flushes.
///
/// Fails with [`std::io::ErrorKind::InvalidInput`] and writes nothing if the
/// body is longer than [`MAX_FRAME_LEN`]: a peer would reject it anyway.
pub async fn write_frame<W>(writer: &mut W, body: &[u8]) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    write_frame_max(writer, body, MAX_FRAME_LEN).await
}

/// [`write_frame`] for a protocol whose frames may be up to `max` bytes long.
pub async fn write_frame_max<W>(writer: &mut W, body: &[u8], max: usize) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    // Prefix and body go out in one write, so a frame is one packet when it fits.
    let mut frame = Vec::with_capacity(MAX_VARINT_LEN + body.len());
    append_frame_max(&mut frame, body, max)?;
    writer.write_all(&frame).await?;
    writer.flush().await
}

/// Appends one frame (`uvarint(body.len()) || body`) to `out`, for writers
/// that coalesce several frames into one write.
///
/// Fails with [`std::io::ErrorKind::InvalidInput`] and appends nothing if the
/// body is longer than [`MAX_FRAME_LEN`].
pub fn append_frame(out: &mut Vec<u8>, body: &[u8]) -> std::io::Result<()> {
    append_frame_max(out, body, MAX_FRAME_LEN)
}

/// [`append_frame`] for a protocol whose frames may be up to `max` bytes long.
pub fn append_frame_max(out: &mut Vec<u8>, body: &[u8], max: usize) -> std::io::Result<()> {
    if body.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("frame body of {} bytes exceeds the maximum of {max}", body.len()),
        ));
    }
    let mut prefix = unsigned_varint::encode::u64_buffer();
    out.extend_from_slice(unsigned_varint::encode::u64(body.len() as u64, &mut prefix));
    out.extend_from_slice(body);
    Ok(())
}

/// Reads one frame and returns its body; a stream that ends before the first
/// byte is [`DecodeError::Closed`].
///
/// The declared length is checked against [`MAX_FRAME_LEN`] before anything
/// is read, so a hostile length costs nothing, and the body's buffer grows
/// as its bytes arrive (see [`try_read_frame`]).
pub async fn read_frame<R>(reader: &mut R) -> Result<Vec<u8>, DecodeError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    try_read_frame(reader).await?.ok_or(DecodeError::Closed)
}

/// [`read_frame`] for a protocol whose frames may be up to `max` bytes long.
pub async fn read_frame_max<R>(reader: &mut R, max: usize) -> Result<Vec<u8>, DecodeError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    try_read_frame_max(reader, max).await?.ok_or(DecodeError::Closed)
}

/// The body buffer's first size: a greeting fits (most are well under it).
const FIRST_READ: usize = 1024;

/// Reads one frame, or `None` if the stream ends cleanly before its first
/// byte (the way a pipelined requester signals that it is done).
///
/// Memory is paid for with bytes received: the body's buffer starts at
/// 1 KiB (or the declared length, if smaller) and doubles
/// only once the bytes already received fill it, never beyond the declared
/// length. A peer that declares 64 KiB and sends nothing more holds 1 KiB,
/// not 64; one that sends the whole frame costs at most its length.
pub async fn try_read_frame<R>(reader: &mut R) -> Result<Option<Vec<u8>>, DecodeError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    try_read_frame_max(reader, MAX_FRAME_LEN).await
}

/// [`try_read_frame`] for a protocol whose frames may be up to `max` bytes
/// long (its [`Protocol::MAX_FRAME_LEN`](crate::Protocol::MAX_FRAME_LEN)):
/// the same rule, memory paid for with bytes received, whatever `max` is.
pub async fn try_read_frame_max<R>(reader: &mut R, max: usize) -> Result<Option<Vec<u8>>, DecodeError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let Some(len) = read_length(reader).await? else {
        return Ok(None);
    };
    if len > max as u64 {
        return Err(DecodeError::FrameTooLarge { len, max });
    }
    let expected = len as usize; // ≤ max, so it fits
    let mut body = Vec::new();
    let mut read = 0;
    while read < expected {
        if read == body.len() {
            // Full: double (exactly: never past the declared length). The
            // new room is zeroed once, so a peer dribbling a byte per read
            // costs no more than one sending the frame whole.
            let grown = (body.len() * 2).max(FIRST_READ).min(expected);
            body.reserve_exact(grown - body.len());
            body.resize(grown, 0);
        }
        match reader.read(&mut body[read..]).await? {
            0 => return Err(DecodeError::TruncatedBody { expected, read }),
            n => read += n,
        }
    }
    Ok(Some(body))
}

/// Reads the uvarint length prefix one byte at a time, never past its end.
async fn read_length<R>(reader: &mut R) -> Result<Option<u64>, DecodeError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut prefix = [0u8; MAX_VARINT_LEN];
    for read in 0..MAX_VARINT_LEN {
        let mut byte = [0u8; 1];
        if reader.read(&mut byte).await? == 0 {
            return match read {
                0 => Ok(None),
                _ => Err(DecodeError::TruncatedLength { read }),
            };
        }
        prefix[read] = byte[0];
        if byte[0] & 0x80 == 0 {
            // The tenth byte holds bit 63 only: anything more overflows a u64
            // (which the decoder below would silently truncate).
            if read == MAX_VARINT_LEN - 1 && byte[0] > 1 {
                return Err(DecodeError::BadVarint(unsigned_varint::decode::Error::Overflow));
            }
            return unsigned_varint::decode::u64(&prefix[..=read])
                .map(|(len, _)| Some(len))
                .map_err(DecodeError::BadVarint);
        }
    }
    Err(DecodeError::BadVarint(unsigned_varint::decode::Error::Overflow))
}
