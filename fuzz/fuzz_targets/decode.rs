//! Arbitrary bytes as a frame body: `decode` of every message type never
//! panics, and whatever decodes round-trips through `encode`.

#![no_main]

mod common;

use common::round_trip;
use libfuzzer_sys::fuzz_target;
use p2p_protocol::{GreetRequest, GreetResponse, GreetResult, RemoteError};

fuzz_target!(|body: &[u8]| {
    round_trip::<GreetRequest>(body);
    let result = round_trip::<GreetResult>(body);
    round_trip::<RemoteError>(body);
    round_trip::<GreetResponse>(body);

    // A response body is a one-byte variant tag (0 = Ok, 1 = Err) followed by
    // the payload: decoding it must agree with decoding the payload alone.
    match body.first() {
        Some(0x00) => assert_eq!(result, round_trip::<GreetResponse>(&body[1..]).map(Ok), "{body:02x?}"),
        Some(0x01) => assert_eq!(result, round_trip::<RemoteError>(&body[1..]).map(Err), "{body:02x?}"),
        _ => {}
    }
});
