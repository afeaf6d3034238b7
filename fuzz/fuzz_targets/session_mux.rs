//! Fuzzes the reading half of a connection, `session::mux::MuxReader`: `recv_data` (values
//! decoded across data frames, other messages handed aside, `MSG_ERROR_EXIT` ending the
//! session) and `next_data` (whole data frames), over a stream that arrives in pieces.
//!
//! Input: byte 0 sets the size of the socket reads (low 5 bits, plus one) and the size of the
//! values decoded from the data (high 3 bits, plus one); the rest is what the peer sends. The
//! reader must give exactly what a reference walk of the frames with
//! `protocol::mux::decode_header` gives: every complete value of the concatenated data, every
//! message before the point where the walk stops, in order, and stop for the same reason (the
//! end of the stream, the peer's error exit with its code, or a malformed header).
#![no_main]

use std::io::Read;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use protocol::mux::{self, MsgCode};
use session::SessionError;
use session::mux::{DataBuf, MuxReader, Traffic};

/// A socket that hands out at most `piece` bytes a read.
struct Pieces {
    data: Vec<u8>,
    at: usize,
    piece: usize,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.data[self.at..];
        let n = rest.len().min(self.piece).min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Stop {
    End,
    ErrorExit(u8),
    BadHeader,
}

struct Reference {
    data: Vec<u8>,
    frames: Vec<Vec<u8>>,
    messages: Vec<(MsgCode, Vec<u8>)>,
    stop: Stop,
}

fn reference(stream: &[u8]) -> Reference {
    let mut r = Reference {
        data: Vec::new(),
        frames: Vec::new(),
        messages: Vec::new(),
        stop: Stop::End,
    };
    let mut at = 0;
    loop {
        let rest = &stream[at..];
        match mux::decode_header(rest) {
            Ok(Some((code, len))) => {
                let Some(payload) = rest.get(4..4 + len) else {
                    return r;
                };
                at += 4 + len;
                match code {
                    MsgCode::Data => {
                        r.data.extend_from_slice(payload);
                        r.frames.push(payload.to_vec());
                    }
                    MsgCode::ErrorExit => {
                        let code = payload
                            .get(..4)
                            .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")))
                            .and_then(|c| u8::try_from(c).ok())
                            .filter(|&c| c != 0)
                            .unwrap_or(12);
                        r.stop = Stop::ErrorExit(code);
                        return r;
                    }
                    other => r.messages.push((other, payload.to_vec())),
                }
            }
            Ok(None) => return r,
            Err(_) => {
                r.stop = Stop::BadHeader;
                return r;
            }
        }
    }
}

fn reader(stream: &[u8], piece: usize) -> MuxReader {
    MuxReader::new(
        Box::new(Pieces {
            data: stream.to_vec(),
            at: 0,
            piece,
        }),
        None,
        Arc::new(Traffic::default()),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(ctl & 31) + 1;
    let size = usize::from(ctl >> 5) + 1;
    let want = reference(stream);

    // Values of `size` bytes, as the roles decode ints, shorts and sums.
    let mut r = reader(stream, piece);
    let mut buf = DataBuf::default();
    let mut told = Vec::new();
    let mut values = Vec::new();
    let stop = loop {
        let mut sink = |code: MsgCode, payload: &[u8]| told.push((code, payload.to_vec()));
        match r.recv_data(&mut buf, &mut sink, |b| {
            Ok(b.get(..size).map(|v| (v.to_vec(), size)))
        }) {
            Ok(v) => values.push(v),
            Err(SessionError::Socket(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
                break Stop::End;
            }
            Err(SessionError::RemoteExit(code)) => break Stop::ErrorExit(code),
            Err(SessionError::Protocol(_)) => break Stop::BadHeader,
            Err(e) => panic!("unexpected {e}"),
        }
    };
    let expected: Vec<Vec<u8>> = want.data.chunks_exact(size).map(<[u8]>::to_vec).collect();
    assert_eq!(values, expected);
    assert_eq!(told, want.messages);
    assert_eq!(stop, want.stop);

    // Whole data frames.
    let mut r = reader(stream, piece);
    let mut told = Vec::new();
    let mut frames = Vec::new();
    let stop = loop {
        let mut sink = |code: MsgCode, payload: &[u8]| told.push((code, payload.to_vec()));
        match r.next_data(&mut sink) {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => break Stop::End,
            Err(SessionError::RemoteExit(code)) => break Stop::ErrorExit(code),
            Err(SessionError::Protocol(_)) => break Stop::BadHeader,
            Err(e) => panic!("unexpected {e}"),
        }
    };
    assert_eq!(frames, want.frames);
    assert_eq!(told, want.messages);
    assert_eq!(stop, want.stop);
});
