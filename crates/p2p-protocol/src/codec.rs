//! Pure encoding and decoding of frame bodies (postcard 1.x).

use serde::{Serialize, de::DeserializeOwned};

use crate::DecodeError;

/// Encodes a message as a frame body.
///
/// Encoding our own message types cannot fail: they hold only strings,
/// integers and multiaddrs, all of which postcard serialises infallibly.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Room for a typical greeting up front: `to_allocvec` starts empty and
    // grew a greet answer three or four times (8, 16, 32, 64 bytes).
    postcard::to_extend(message, Vec::with_capacity(ENCODE_CAPACITY))
        .expect("postcard serialises the greet messages infallibly")
}

/// The body buffer [`encode`] starts with; a larger body grows it as usual.
const ENCODE_CAPACITY: usize = 128;

/// Decodes a frame body, rejecting trailing bytes.
///
/// Never panics, whatever the bytes: a body that does not decode is a
/// [`DecodeError`] whose [`code`](DecodeError::code) is 400.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    match postcard::take_from_bytes(body) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(DecodeError::TrailingBytes { count: rest.len() }),
        Err(postcard::Error::DeserializeBadUtf8) => Err(DecodeError::InvalidUtf8),
        Err(err) => Err(DecodeError::Malformed(err)),
    }
}
