//! Property tests: round trips for every message type, and hostile bytes
//! that must give `Ok` or `Err`, never a panic.

use std::net::{Ipv4Addr, Ipv6Addr};

use futures::executor::block_on;
use multiaddr::Protocol;
use p2p_protocol::{
    ErrorCode, GreetRequest, GreetResponse, GreetResult, MAX_FRAME_LEN, Multiaddr, RemoteError, decode,
    encode, read_frame, write_frame,
};
use proptest::prelude::*;

fn multiaddr() -> impl Strategy<Value = Multiaddr> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(|o| Protocol::Ip4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| Protocol::Ip6(Ipv6Addr::from(o))),
    ];
    let transport = prop_oneof![
        any::<u16>().prop_map(|port| vec![Protocol::Tcp(port)]),
        any::<u16>().prop_map(|port| vec![Protocol::Udp(port), Protocol::QuicV1]),
    ];
    (ip, transport).prop_map(|(ip, rest)| std::iter::once(ip).chain(rest).collect())
}

fn response() -> impl Strategy<Value = GreetResult> {
    prop_oneof![
        (any::<String>(), multiaddr())
            .prop_map(|(message, observed_addr)| Ok(GreetResponse { message, observed_addr })),
        (any::<u16>(), any::<String>())
            .prop_map(|(code, message)| Err(RemoteError::new(ErrorCode::from(code), message))),
    ]
}

proptest! {
    #[test]
    fn request_round_trips(message in any::<String>()) {
        let req = GreetRequest::new(message);
        prop_assert_eq!(decode::<GreetRequest>(&encode(&req)).unwrap(), req);
    }

    #[test]
    fn response_round_trips(res in response()) {
        prop_assert_eq!(decode::<GreetResult>(&encode(&res)).unwrap(), res);
    }

    #[test]
    fn remote_error_round_trips(code in any::<u16>(), message in any::<String>()) {
        let err = RemoteError::new(ErrorCode::from(code), message);
        prop_assert_eq!(decode::<RemoteError>(&encode(&err)).unwrap(), err);
    }

    #[test]
    fn framed_messages_round_trip(res in response()) {
        let body = encode(&res);
        let mut stream = Vec::new();
        block_on(write_frame(&mut stream, &body)).unwrap();
        let back = block_on(read_frame(&mut stream.as_slice())).unwrap();
        prop_assert_eq!(decode::<GreetResult>(&back).unwrap(), res);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<GreetRequest>(&bytes);
        let _ = decode::<GreetResult>(&bytes);
        let _ = decode::<RemoteError>(&bytes);
    }

    #[test]
    fn read_frame_never_panics_and_never_over_reads(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut reader = bytes.as_slice();
        if let Ok(body) = block_on(read_frame(&mut reader)) {
            prop_assert!(body.len() <= MAX_FRAME_LEN);
            prop_assert!(body.len() < bytes.len(), "a body comes after its prefix");
        }
    }
}
