//! Checks shared by the fuzz targets.

use std::fmt::Debug;

use p2p_protocol::{DecodeError, ErrorCode, decode, encode};
use serde::{Serialize, de::DeserializeOwned};

/// Decodes `body` as `T`. On success, asserts the round trip: `encode` of the
/// value decodes back to an equal value, the encoding is stable, and it is no
/// longer than `body` (postcard writes minimal varints). On failure, asserts
/// the error is one a responder answers with 400.
pub fn round_trip<T>(body: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    match decode::<T>(body) {
        Ok(value) => {
            let encoded = encode(&value);
            let again: T = decode(&encoded).unwrap_or_else(|err| {
                panic!("re-encoding of {value:?} does not decode: {err}; body {body:02x?}, re-encoded {encoded:02x?}")
            });
            assert_eq!(again, value, "round trip changed the value; body {body:02x?}, re-encoded {encoded:02x?}");
            assert_eq!(encode(&again), encoded, "encoding is not stable for {value:?}");
            assert!(
                encoded.len() <= body.len(),
                "canonical encoding {encoded:02x?} is longer than the accepted body {body:02x?}"
            );
            Some(value)
        }
        Err(err) => {
            check_body_error(&err);
            None
        }
    }
}

/// A body that does not decode is a 400, never anything else.
pub fn check_body_error(err: &DecodeError) {
    let _ = err.to_string();
    assert!(
        matches!(
            err,
            DecodeError::Malformed(_) | DecodeError::InvalidUtf8 | DecodeError::TrailingBytes { .. }
        ),
        "decode returned a framing error: {err:?}"
    );
    assert_eq!(err.code(), ErrorCode::BAD_REQUEST, "{err:?}");
}
