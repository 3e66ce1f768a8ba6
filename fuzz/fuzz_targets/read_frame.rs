//! Arbitrary bytes as a stream: `try_read_frame`/`read_frame` never panic,
//! agree however the bytes are chunked, and every body they return is bounded,
//! re-frames to exactly the bytes consumed, and (if it decodes) round-trips.
//!
//! The input is read as a pipelined stream: frames are read until the stream
//! ends or a frame fails. It is read three times, and the outcomes must match:
//! 1. directly from the `&[u8]`;
//! 2. through a reader that hands out at most `input[0]` bytes per read (min 1);
//! 3. through a reader that hands out one byte per read and returns
//!    `Poll::Pending` (after waking) before each read.

#![no_main]

mod common;

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use common::round_trip;
use futures::{
    executor::block_on,
    io::{AsyncRead, AsyncReadExt},
};
use libfuzzer_sys::fuzz_target;
use p2p_protocol::{
    DecodeError, ErrorCode, GreetRequest, GreetResult, MAX_FRAME_LEN, MAX_VARINT_LEN, read_frame,
    try_read_frame, write_frame,
};

/// Hands out at most `chunk` bytes per read, optionally returning
/// `Poll::Pending` (having woken the task) before every read.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
    pending: bool,
    yielded: bool,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending && !this.yielded {
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.yielded = false;
        let n = this.chunk.min(buf.len()).min(this.data.len());
        buf[..n].copy_from_slice(&this.data[..n]);
        this.data = &this.data[n..];
        Poll::Ready(Ok(n))
    }
}

/// One `try_read_frame` outcome, comparable across readers.
#[derive(Debug, PartialEq)]
enum Step {
    Frame(Vec<u8>),
    End,
    Failed(String),
}

/// Reads frames until the stream ends or a frame fails.
fn read_all<R: AsyncRead + Unpin>(mut reader: R, limit: usize) -> Vec<Step> {
    let mut steps = Vec::new();
    for _ in 0..=limit {
        match block_on(try_read_frame(&mut reader)) {
            Ok(Some(body)) => steps.push(Step::Frame(body)),
            Ok(None) => {
                steps.push(Step::End);
                return steps;
            }
            Err(err) => {
                steps.push(Step::Failed(format!("{err:?}")));
                return steps;
            }
        }
    }
    panic!("more frames than input bytes: {steps:?}");
}

/// Length of the minimal uvarint encoding of `value`.
fn uvarint_len(value: u64) -> usize {
    (64 - value.leading_zeros() as usize).div_ceil(7).max(1)
}

fn check_body(body: &[u8]) {
    assert!(body.len() <= MAX_FRAME_LEN, "body of {} bytes", body.len());
    round_trip::<GreetRequest>(body);
    round_trip::<GreetResult>(body);
}

fuzz_target!(|data: &[u8]| {
    // 1. Directly from the slice, checking each step against the bytes consumed.
    let mut steps = Vec::new();
    let mut rest = data;
    loop {
        let start = rest;
        let outcome = block_on(try_read_frame(&mut rest));
        let consumed = start.len() - rest.len();
        match outcome {
            Ok(None) => {
                assert!(start.is_empty(), "Ok(None) with {} bytes left", start.len());
                steps.push(Step::End);
                break;
            }
            Ok(Some(body)) => {
                assert!(body.len() < start.len(), "body not shorter than its input");
                check_body(&body);
                // Framing round trip: the body re-frames to exactly the bytes consumed.
                let mut framed = Vec::new();
                block_on(write_frame(&mut framed, &body)).expect("write_frame of a read body");
                assert_eq!(framed, start[..consumed], "re-framed body differs from the consumed bytes");
                steps.push(Step::Frame(body));
            }
            Err(err) => {
                let _ = err.to_string();
                let expected_code = match &err {
                    DecodeError::FrameTooLarge { len, .. } => {
                        assert!(*len > MAX_FRAME_LEN as u64, "{err:?}");
                        // Rejected before the body: only the (minimal) prefix was read.
                        assert_eq!(consumed, uvarint_len(*len), "{err:?}");
                        ErrorCode::TOO_LARGE
                    }
                    DecodeError::TruncatedBody { expected, read } => {
                        assert!(*expected <= MAX_FRAME_LEN && read < expected, "{err:?}");
                        let prefix = uvarint_len(*expected as u64);
                        assert_eq!(consumed, prefix + read, "{err:?}");
                        assert_eq!(consumed, start.len(), "{err:?} with bytes left");
                        // Padding the stream to the declared length completes the frame.
                        let missing = (expected - read) as u64;
                        let mut padded = start.chain(futures::io::repeat(0).take(missing));
                        let body = block_on(try_read_frame(&mut padded))
                            .unwrap_or_else(|e| panic!("padded {err:?} still fails: {e:?}"))
                            .expect("padded frame");
                        assert_eq!(body.len(), *expected);
                        assert_eq!(body[..*read], start[prefix..]);
                        check_body(&body);
                        ErrorCode::BAD_REQUEST
                    }
                    DecodeError::TruncatedLength { read } => {
                        assert!(*read >= 1 && *read < MAX_VARINT_LEN, "{err:?}");
                        assert_eq!(consumed, *read, "{err:?}");
                        assert_eq!(consumed, start.len(), "{err:?} with bytes left");
                        ErrorCode::BAD_REQUEST
                    }
                    DecodeError::BadVarint(_) => {
                        assert!((1..=MAX_VARINT_LEN).contains(&consumed), "{err:?} after {consumed} bytes");
                        ErrorCode::BAD_REQUEST
                    }
                    other => panic!("try_read_frame returned {other:?}"),
                };
                assert_eq!(err.code(), expected_code, "{err:?}");
                steps.push(Step::Failed(format!("{err:?}")));
                break;
            }
        }
    }

    // read_frame is try_read_frame with a closed stream as an error.
    let mut slice = data;
    let first = match block_on(read_frame(&mut slice)) {
        Ok(body) => Step::Frame(body),
        Err(DecodeError::Closed) => Step::End,
        Err(err) => Step::Failed(format!("{err:?}")),
    };
    assert_eq!(first, steps[0], "read_frame disagrees with try_read_frame");

    // 2. and 3.: the same outcomes however the bytes arrive.
    let chunk = data.first().map_or(1, |&b| usize::from(b).max(1));
    let chunked = Chunked { data, chunk, pending: false, yielded: false };
    assert_eq!(read_all(chunked, data.len()), steps, "chunked by {chunk}");
    let trickled = Chunked { data, chunk: 1, pending: true, yielded: false };
    assert_eq!(read_all(trickled, data.len()), steps, "one byte per read, Pending between");
});
