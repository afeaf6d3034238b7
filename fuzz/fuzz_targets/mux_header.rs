//! Fuzzes `protocol::mux::decode_header` by reading the input as a stream of multiplexed frames,
//! as the client's `next_data` does: read a header, wait for its payload, drop both, repeat.
//!
//! A decoded header must name a known, non-internal code, carry the length bits it was given,
//! and re-encode (with its payload) to exactly the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::mux::{self, MPLEX_BASE, MsgCode};

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    loop {
        let rest = &data[at..];
        match mux::decode_header(rest) {
            Ok(Some((code, len))) => {
                let header = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
                assert_eq!(
                    header,
                    ((MPLEX_BASE + u32::from(code.code())) << 24) | len as u32
                );
                assert!(len <= 0x00ff_ffff);
                assert_eq!(MsgCode::from_code(code.code()), Some(code));
                let Some(frame) = rest.get(..4 + len) else {
                    break; // The payload is not all there yet.
                };
                let mut out = Vec::new();
                mux::encode(&mut out, code, &frame[4..]).expect("a decoded frame is encodable");
                assert_eq!(out, frame);
                at += frame.len();
            }
            Ok(None) => {
                assert!(rest.len() < 4);
                break;
            }
            Err(_) => {
                assert!(rest.len() >= 4);
                break;
            }
        }
    }
});
