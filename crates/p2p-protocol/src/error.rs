//! Why a frame or a body could not be read.

use crate::ErrorCode;

/// A frame that could not be read, or a body that could not be decoded.
///
/// A decode failure is a value, not a dropped stream: a responder answers it
/// with [`code`](Self::code) as a `RemoteError` where the stream still allows it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The declared body length exceeds the protocol's frame limit
    /// ([`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN) for greet). The body was
    /// neither read nor allocated.
    #[error("declared frame length {len} exceeds the maximum of {max}")]
    FrameTooLarge {
        /// The length the peer declared.
        len: u64,
        /// The limit it exceeds.
        max: usize,
    },
    /// The length prefix is not a valid unsigned varint: longer than
    /// [`MAX_VARINT_LEN`](crate::MAX_VARINT_LEN) bytes, overflowing `u64`, or not minimal.
    #[error("invalid length prefix: {0}")]
    BadVarint(unsigned_varint::decode::Error),
    /// The stream ended inside the length prefix.
    #[error("stream ended inside the length prefix after {read} byte(s)")]
    TruncatedLength {
        /// Prefix bytes read before the end.
        read: usize,
    },
    /// The stream ended inside the body: fewer bytes came than were declared.
    #[error("truncated frame: {expected} body byte(s) declared, {read} received")]
    TruncatedBody {
        /// The declared body length.
        expected: usize,
        /// The body bytes that arrived.
        read: usize,
    },
    /// The stream ended before the first byte of a frame where one was required.
    #[error("stream closed before a frame arrived")]
    Closed,
    /// The body does not decode as the expected message.
    #[error("malformed body: {0}")]
    Malformed(postcard::Error),
    /// A string in the body is not valid UTF-8.
    #[error("malformed body: a string is not valid UTF-8")]
    InvalidUtf8,
    /// The body decoded but bytes were left over.
    #[error("malformed body: {count} trailing byte(s)")]
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
    /// The underlying stream failed (for example it was reset).
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
}

impl DecodeError {
    /// The code a responder answers this error with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::FrameTooLarge { .. } => ErrorCode::TOO_LARGE,
            _ => ErrorCode::BAD_REQUEST,
        }
    }
}
