//! Fuzzes `protocol::stream::Frame::decode` as the daemon reads a client's stream: frame after
//! frame from the front of the input until it is short or broken.
//!
//! A decoded frame must have used no more than one frame's bytes, and encode to bytes that
//! decode to the same frame (every field read is a field written; messages are text, so
//! non-UTF-8 bytes in them come back replaced, which is why the bytes are not compared).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::stream::{Frame, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while let Ok(Some((frame, used))) = Frame::decode(&data[at..]) {
        assert!(used <= 4 + MAX_FRAME + 1);
        let mut out = Vec::new();
        frame.encode(&mut out);
        let (back, len) = Frame::decode(&out)
            .expect("an encoded frame decodes")
            .expect("whole");
        assert_eq!(back, frame);
        assert_eq!(len, out.len());
        at += used;
    }
});
