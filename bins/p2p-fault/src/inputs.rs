//! The hostile inputs: what `hostile` sends on a greet stream, made from a
//! seed and an index so that a run can be repeated.

use p2p_protocol::v2::{self, STREAM_ERROR_ID};
use p2p_protocol::{GreetRequest, MAX_FRAME_LEN, PROTOCOL_NAME, append_frame, encode, uvarint, uvarint_len};
use p2p_transport::libp2p::StreamProtocol;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// The seedable generator the inputs are made with.
pub(crate) type Rng = Xoshiro256PlusPlus;

/// What a hostile input is made of, by category number.
pub(crate) const CATEGORIES: [&str; 11] = [
    "random_bytes",
    "huge_length",
    "overlong_varint",
    "truncated",
    "trailing_in_body",
    "trailing_after_frame",
    "invalid_utf8",
    "abandoned",
    "reset_mid_frame",
    "empty_or_id0",
    "mutated_frame",
];
const TRAILING_AFTER_FRAME: usize = 5;
/// Opened, partly written and left open, unread, for a while.
pub(crate) const ABANDONED: usize = 7;
/// Partly written, then dropped without closing.
pub(crate) const RESET_MID_FRAME: usize = 8;

/// The greet protocol an input is sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Version {
    V1,
    V2,
}

impl Version {
    pub(crate) fn protocol(self) -> StreamProtocol {
        match self {
            Self::V1 => StreamProtocol::new(PROTOCOL_NAME),
            Self::V2 => StreamProtocol::new(v2::PROTOCOL_NAME),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::V1 => "1.0.0",
            Self::V2 => "2.0.0",
        }
    }
}

/// `uvarint(body.len()) || body`.
pub(crate) fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(uvarint_len(body.len() as u64) + body.len());
    append_frame(&mut out, body).expect("body within MAX_FRAME_LEN");
    out
}

/// A well-formed request body; for 2.0.0 with `id`.
pub(crate) fn valid_body(version: Version, id: u64, message: String) -> Vec<u8> {
    let request = GreetRequest::new(message);
    match version {
        Version::V1 => encode(&request),
        Version::V2 => encode(&v2::Request { id, request }),
    }
}

/// One hostile input: the bytes to send, and whether it embeds a well-formed request (its id).
#[derive(Debug)]
pub(crate) struct Input {
    pub(crate) category: usize,
    pub(crate) version: Version,
    pub(crate) bytes: Vec<u8>,
    pub(crate) embedded: Option<u64>,
}

fn bytes(rng: &mut Rng, len: u64) -> Vec<u8> {
    let mut bytes = vec![0; len as usize];
    rng.fill(&mut bytes[..]);
    bytes
}

fn text(rng: &mut Rng, len: u64) -> String {
    (0..len).map(|_| char::from(rng.random_range(b'a'..=b'z'))).collect()
}

/// Input number `index` of the run with `seed`, on `version`.
pub(crate) fn make_input(index: u64, seed: u64, version: Version) -> Input {
    let rng = &mut Rng::seed_from_u64(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ index);
    let category = rng.random_range(0..CATEGORIES.len());
    let id = rng.random_range(1..=1 << 20);
    let message_len = rng.random_range(0..64);
    let valid = valid_body(version, id, text(rng, message_len));
    let mut embedded = None;
    let bytes = match category {
        0 => {
            let len =
                if rng.random_ratio(1, 10) { rng.random_range(0..8192) } else { rng.random_range(0..512) };
            bytes(rng, len)
        }
        1 => {
            // 65,537 ..= 2^64-1, spread over every bit length.
            let bits = rng.random_range(17..=64u32);
            let top = 1u64 << (bits - 1);
            let len = (top | (rng.random::<u64>() & (top - 1))).max(MAX_FRAME_LEN as u64 + 1);
            let tail = rng.random_range(0..64);
            [uvarint(len), bytes(rng, tail)].concat()
        }
        2 => {
            let mut prefix: Vec<u8> = match rng.random_range(0..3) {
                // More than ten continuation bytes.
                0 => (0..rng.random_range(11..17)).map(|_| 0x80 | rng.random::<u8>()).collect(),
                // Ten bytes whose last overflows a u64.
                1 => {
                    let mut prefix: Vec<u8> = (0..9).map(|_| 0x80 | rng.random::<u8>()).collect();
                    prefix.push(rng.random_range(2..128));
                    prefix
                }
                // Not minimal: a trailing zero group.
                _ => vec![0x80 | rng.random_range(0..128u8), 0x00],
            };
            let tail = rng.random_range(0..8);
            prefix.extend(bytes(rng, tail));
            prefix
        }
        3 => match rng.random_range(0..4) {
            // The stream ends inside the length prefix.
            0 => vec![0x80 | rng.random::<u8>()],
            // ... or inside the body.
            _ => {
                let body = if rng.random_bool(0.5) {
                    valid.clone()
                } else {
                    let bound = if rng.random_ratio(1, 10) { MAX_FRAME_LEN as u64 } else { 2000 };
                    let len = rng.random_range(1..=bound);
                    bytes(rng, len)
                };
                let sent = rng.random_range(0..body.len());
                [uvarint(body.len() as u64), body[..sent].to_vec()].concat()
            }
        },
        4 => {
            let extra = rng.random_range(1..=16);
            framed(&[valid.clone(), bytes(rng, extra)].concat())
        }
        TRAILING_AFTER_FRAME => {
            embedded = Some(id);
            let extra = rng.random_range(1..=16);
            [framed(&valid), bytes(rng, extra)].concat()
        }
        6 => {
            // A string with a 0xff byte in it: never valid UTF-8.
            let text_len = rng.random_range(0..32);
            let mut text = text(rng, text_len).into_bytes();
            text.insert(rng.random_range(0..=text.len()), 0xff);
            let body = match version {
                Version::V1 => [uvarint(text.len() as u64), text].concat(),
                Version::V2 => [uvarint(id), uvarint(text.len() as u64), text].concat(),
            };
            framed(&body)
        }
        ABANDONED | RESET_MID_FRAME => {
            let frame = framed(&valid);
            let sent = rng.random_range(0..frame.len()); // never the whole frame
            frame[..sent.max(1)].to_vec()
        }
        9 => match version {
            Version::V1 => Vec::new(),
            Version::V2 => framed(&valid_body(version, STREAM_ERROR_ID, "zero".into())),
        },
        _ => {
            let mut frame = framed(&valid);
            for _ in 0..rng.random_range(1..=4) {
                let at = rng.random_range(0..frame.len());
                frame[at] ^= 1 << rng.random_range(0..8);
            }
            frame
        }
    };
    Input { category, version, bytes, embedded }
}

#[cfg(test)]
mod tests {
    use p2p_protocol::{DecodeError, decode, read_frame};

    use super::*;

    fn inputs(version: Version) -> impl Iterator<Item = Input> {
        (0..2000).map(move |index| make_input(index, 1, version))
    }

    #[test]
    fn inputs_repeat_from_their_seed_and_index() {
        for index in 0..100 {
            assert_eq!(make_input(index, 3, Version::V2).bytes, make_input(index, 3, Version::V2).bytes);
        }
        let differ =
            (0..100).filter(|i| make_input(*i, 3, Version::V1).bytes != make_input(*i, 4, Version::V1).bytes);
        assert!(differ.count() > 90);
    }

    #[test]
    fn every_category_comes_up_on_both_versions() {
        for version in [Version::V1, Version::V2] {
            let mut seen = [0; CATEGORIES.len()];
            inputs(version).for_each(|input| seen[input.category] += 1);
            assert!(seen.iter().all(|n| *n > 100), "{version:?}: {seen:?}");
        }
    }

    #[tokio::test]
    async fn the_inputs_are_what_their_category_says() {
        for input in inputs(Version::V2) {
            let bytes = &input.bytes;
            match CATEGORIES[input.category] {
                "huge_length" => {
                    let err = read_frame(&mut &bytes[..]).await.unwrap_err();
                    assert!(matches!(err, DecodeError::FrameTooLarge { .. }), "{err:?}");
                }
                "truncated" => {
                    let err = read_frame(&mut &bytes[..]).await.unwrap_err();
                    let truncated = matches!(
                        err,
                        DecodeError::TruncatedLength { .. } | DecodeError::TruncatedBody { .. }
                    );
                    assert!(truncated, "{err:?}");
                }
                "trailing_after_frame" => {
                    let mut rest = &bytes[..];
                    let body = read_frame(&mut rest).await.unwrap();
                    let request: v2::Request = decode(&body).unwrap();
                    assert_eq!(Some(request.id), input.embedded);
                    assert!(!rest.is_empty());
                }
                "abandoned" | "reset_mid_frame" => assert!(read_frame(&mut &bytes[..]).await.is_err()),
                "invalid_utf8" => {
                    let body = read_frame(&mut &bytes[..]).await.unwrap();
                    assert!(decode::<v2::Request>(&body).is_err());
                }
                _ => {}
            }
            assert_eq!(input.embedded.is_some(), CATEGORIES[input.category] == "trailing_after_frame");
        }
    }
}
