//! Async framing over in-memory streams, including hostile ones.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::executor::block_on;
use futures::io::{AsyncRead, AsyncWriteExt, Cursor};
use p2p_protocol::{DecodeError, ErrorCode, MAX_FRAME_LEN, read_frame, try_read_frame, write_frame};

/// A reader that hands out one byte per read, as a slow network might.
struct OneByteAtATime<'a>(&'a [u8]);

impl AsyncRead for OneByteAtATime<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((&byte, rest)), Some(slot)) => {
                *slot = byte;
                self.0 = rest;
                Poll::Ready(Ok(1))
            }
            _ => Poll::Ready(Ok(0)),
        }
    }
}

/// A reader that yields some bytes and then fails, like a reset stream.
struct ResetAfter<'a>(&'a [u8]);

impl AsyncRead for ResetAfter<'_> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.0.is_empty() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

/// A peer that sends only `bytes` (a length prefix), then holds the stream
/// (`Pending`) or ends it (EOF); it records the largest buffer it was
/// offered to fill after them: the room the reader allocated for bytes the
/// peer only declared.
struct Hoarder<'a> {
    bytes: &'a [u8],
    hold: bool,
    largest_offered: usize,
}

impl AsyncRead for Hoarder<'_> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if !self.bytes.is_empty() {
            return Pin::new(&mut self.bytes).poll_read(cx, buf);
        }
        self.largest_offered = self.largest_offered.max(buf.len());
        if self.hold { Poll::Pending } else { Poll::Ready(Ok(0)) }
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    block_on(write_frame(&mut out, body)).unwrap();
    out
}

#[test]
fn frames_round_trip_in_sequence_and_stop_at_their_end() {
    let bodies: Vec<Vec<u8>> =
        vec![vec![], b"a".to_vec(), vec![7; 127], vec![9; 128], vec![1; MAX_FRAME_LEN]];
    let stream: Vec<u8> = bodies.iter().flat_map(|b| frame(b)).collect();
    let mut reader = Cursor::new(stream);
    for body in &bodies {
        assert_eq!(&block_on(read_frame(&mut reader)).unwrap(), body);
    }
    assert!(block_on(try_read_frame(&mut reader)).unwrap().is_none(), "clean end of stream");
    assert!(matches!(block_on(read_frame(&mut reader)), Err(DecodeError::Closed)));
}

#[test]
fn one_byte_at_a_time_reader_reads_whole_frames() {
    let mut bytes = frame(&[42; 300]);
    bytes.extend(frame(b"next"));
    let mut reader = OneByteAtATime(&bytes);
    assert_eq!(block_on(read_frame(&mut reader)).unwrap(), vec![42; 300]);
    assert_eq!(block_on(read_frame(&mut reader)).unwrap(), b"next");
}

#[test]
fn hostile_frames_give_distinct_errors_and_codes() {
    type Check = fn(&DecodeError) -> bool;
    let too_long = {
        let mut buf = unsigned_varint_bytes(MAX_FRAME_LEN as u64 + 1);
        buf.extend([0; 8]);
        buf
    };
    let cases: Vec<(&str, Vec<u8>, Check, ErrorCode)> = vec![
        (
            "declared 65,537",
            too_long,
            |e| matches!(e, DecodeError::FrameTooLarge { len: 65_537, .. }),
            ErrorCode::TOO_LARGE,
        ),
        (
            "declared 2^64-1",
            unsigned_varint_bytes(u64::MAX),
            |e| matches!(e, DecodeError::FrameTooLarge { .. }),
            ErrorCode::TOO_LARGE,
        ),
        (
            "11-byte varint",
            vec![0xff; 11],
            |e| matches!(e, DecodeError::BadVarint(_)),
            ErrorCode::BAD_REQUEST,
        ),
        (
            "10-byte varint overflowing u64",
            [vec![0xff; 9], vec![0x7f]].concat(),
            |e| matches!(e, DecodeError::BadVarint(_)),
            ErrorCode::BAD_REQUEST,
        ),
        (
            "non-minimal varint",
            vec![0x81, 0x00, 0x00],
            |e| matches!(e, DecodeError::BadVarint(_)),
            ErrorCode::BAD_REQUEST,
        ),
        (
            "eof inside the prefix",
            vec![0x80, 0x80],
            |e| matches!(e, DecodeError::TruncatedLength { read: 2 }),
            ErrorCode::BAD_REQUEST,
        ),
        (
            "eof inside the body",
            vec![0x05, 1, 2],
            |e| matches!(e, DecodeError::TruncatedBody { expected: 5, read: 2 }),
            ErrorCode::BAD_REQUEST,
        ),
        ("no frame at all", vec![], |e| matches!(e, DecodeError::Closed), ErrorCode::BAD_REQUEST),
    ];
    for (name, bytes, check, code) in cases {
        for one_byte in [false, true] {
            let result = if one_byte {
                block_on(read_frame(&mut OneByteAtATime(&bytes)))
            } else {
                block_on(read_frame(&mut bytes.as_slice()))
            };
            let err = result.expect_err(name);
            assert!(check(&err), "{name} (one byte at a time: {one_byte}): got {err:?}");
            assert_eq!(err.code(), code, "{name}");
        }
    }
}

#[test]
fn a_reset_mid_frame_is_an_io_error() {
    let bytes = frame(&[1; 100]);
    let err = block_on(read_frame(&mut ResetAfter(&bytes[..50]))).unwrap_err();
    assert!(matches!(err, DecodeError::Io(ref e) if e.kind() == io::ErrorKind::ConnectionReset), "{err:?}");
}

#[test]
fn writer_refuses_an_oversized_body_and_writes_nothing() {
    let mut out = Cursor::new(Vec::new());
    let err = block_on(write_frame(&mut out, &vec![0; MAX_FRAME_LEN + 1])).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    block_on(out.close()).unwrap();
    assert!(out.into_inner().is_empty());
}

fn unsigned_varint_bytes(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[test]
fn uvarint_helpers_agree_with_the_reference_encoding() {
    for n in [0, 1, 127, 128, 16_383, 16_384, MAX_FRAME_LEN as u64, u64::MAX >> 1, u64::MAX] {
        assert_eq!(p2p_protocol::uvarint(n), unsigned_varint_bytes(n), "n = {n}");
        assert_eq!(p2p_protocol::uvarint_len(n), unsigned_varint_bytes(n).len(), "n = {n}");
    }
}

#[test]
fn a_declared_length_reserves_nothing_until_its_bytes_arrive() {
    // Three bytes declaring a full frame, then nothing.
    let prefix = unsigned_varint_bytes(MAX_FRAME_LEN as u64);
    assert_eq!(prefix.len(), 3);
    let mut held = Hoarder { bytes: &prefix, hold: true, largest_offered: 0 };
    {
        let read = try_read_frame(&mut held);
        futures::pin_mut!(read);
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert!(read.as_mut().poll(&mut cx).is_pending(), "the body never comes");
    }
    assert!(held.largest_offered > 0, "the body was asked for");
    assert!(held.largest_offered <= 1024, "{} bytes of room for 3 received", held.largest_offered);

    let mut ended = Hoarder { bytes: &prefix, hold: false, largest_offered: 0 };
    let err = block_on(read_frame(&mut ended)).unwrap_err();
    assert!(matches!(err, DecodeError::TruncatedBody { expected: MAX_FRAME_LEN, read: 0 }), "{err:?}");
    assert!(ended.largest_offered <= 1024, "{} bytes of room for 3 received", ended.largest_offered);
}

#[test]
fn a_body_grows_to_its_length_and_no_further() {
    for len in [0, 1, 300, 1024, 1025, 40_000, MAX_FRAME_LEN] {
        let bytes = frame(&vec![5; len]);
        let body = block_on(read_frame(&mut bytes.as_slice())).unwrap();
        assert_eq!(body, vec![5; len]);
        assert_eq!(body.capacity(), len, "len {len}: exactly its length");
        let body = block_on(read_frame(&mut OneByteAtATime(&bytes))).unwrap();
        assert_eq!((body.len(), body.capacity()), (len, len), "len {len}, one byte at a time");
    }
}
