//! Fuzzes the primitive decoders of `protocol::wire`: `get_int`, `get_short`, `get_varint`,
//! `get_varlong` (every `min` from 1 to 8; the client uses 3 and 4), `get_vstring` and
//! `NdxCodec::decode`.
//!
//! Each decoder gets the whole input; then the input is read as a stream of values whose kinds
//! come from op bytes, as a client interleaves them; then it is read as a stream of file indexes,
//! all at once and in pieces, which must decode the same. Beyond "no panic", a value must use
//! exactly the bytes it claims (fewer give `None`), re-encoding must decode to the same value,
//! and `Ok(None)` must leave the index state alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::wire::{self, NdxCodec};
use rtsync_fuzz::{Limits, feed};

fuzz_target!(|data: &[u8]| {
    fixed(data);
    varint(data);
    for min in 1..=8 {
        varlong(data, min);
    }
    vstring(data);
    mixed(data);
    ndx(data);
});

fn fixed(buf: &[u8]) {
    match wire::get_int(buf) {
        Some((v, 4)) => assert_eq!(v.to_le_bytes(), buf[..4]),
        Some((_, n)) => panic!("get_int used {n} bytes"),
        None => assert!(buf.len() < 4),
    }
    match wire::get_short(buf) {
        Some((v, 2)) => assert_eq!(v.to_le_bytes(), buf[..2]),
        Some((_, n)) => panic!("get_short used {n} bytes"),
        None => assert!(buf.len() < 2),
    }
}

/// Bytes a varint/varlong with this lead byte takes in total.
fn announced(lead: u8, min: usize) -> usize {
    min + lead.leading_ones() as usize
}

fn varint(buf: &[u8]) {
    match wire::get_varint(buf) {
        Ok(Some((v, n))) => {
            assert!(
                (1..=5).contains(&n) && n <= buf.len(),
                "varint used {n} bytes"
            );
            assert_eq!(n, announced(buf[0], 1));
            assert_eq!(wire::get_varint(&buf[..n]), Ok(Some((v, n))));
            assert_eq!(wire::get_varint(&buf[..n - 1]), Ok(None));
            let mut out = Vec::new();
            wire::put_varint(&mut out, v);
            assert_eq!(wire::get_varint(&out), Ok(Some((v, out.len()))));
            assert!(
                out.len() <= n,
                "{v:#x}: canonical form longer than {n} bytes"
            );
        }
        Ok(None) => assert!(buf.is_empty() || buf.len() < announced(buf[0], 1)),
        Err(_) => assert!(!buf.is_empty()),
    }
}

fn varlong(buf: &[u8], min: usize) {
    match wire::get_varlong(buf, min) {
        Ok(Some((v, n))) => {
            assert!(n <= buf.len(), "varlong({min}) used {n} bytes");
            assert_eq!(n, announced(buf[0], min));
            assert_eq!(wire::get_varlong(&buf[..n], min), Ok(Some((v, n))));
            assert_eq!(wire::get_varlong(&buf[..n - 1], min), Ok(None));
            if (3..=4).contains(&min) {
                // What we write must read back, or be refused: never read as another value.
                let mut out = Vec::new();
                wire::put_varlong(&mut out, v, min);
                if let Ok(back) = wire::get_varlong(&out, min) {
                    assert_eq!(back, Some((v, out.len())), "varlong({min}) {v:#x}");
                }
            }
        }
        Ok(None) => assert!(buf.len() < announced(buf.first().copied().unwrap_or(0), min)),
        Err(_) => assert!(!buf.is_empty()),
    }
}

fn vstring(buf: &[u8]) {
    let Some((s, n)) = wire::get_vstring(buf) else {
        return;
    };
    let head = if buf[0] & 0x80 != 0 { 2 } else { 1 };
    assert_eq!(n, head + s.len());
    assert_eq!(s, &buf[head..n]);
    assert!(s.len() <= 0x7fff);
    let mut out = Vec::new();
    wire::put_vstring(&mut out, s).expect("a decoded vstring is encodable");
    assert_eq!(wire::get_vstring(&out), Some((s, out.len())));
    assert!(wire::get_vstring(&buf[..n - 1]).is_none());
}

/// Values of any kind back to back, each announced by an op byte.
fn mixed(data: &[u8]) {
    let mut ndx = NdxCodec::default();
    let mut at = 0;
    while let Some(&op) = data.get(at) {
        at += 1;
        let rest = &data[at..];
        let used = match op % 6 {
            0 => wire::get_int(rest).map(|(_, n)| n),
            1 => wire::get_short(rest).map(|(_, n)| n),
            2 => wire::get_varint(rest).ok().flatten().map(|(_, n)| n),
            3 => wire::get_varlong(rest, 3 + usize::from(op >> 7))
                .ok()
                .flatten()
                .map(|(_, n)| n),
            4 => wire::get_vstring(rest).map(|(_, n)| n),
            _ => ndx.decode(rest).ok().flatten().map(|(_, n)| n),
        };
        let Some(used) = used else {
            break;
        };
        assert!(used > 0 && used <= rest.len());
        at += used;
    }
}

/// A stream of file indexes (first byte: the piece size), whole and in pieces.
fn ndx(data: &[u8]) {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_items: usize::MAX,
        max_stall: 0,
    };
    let run = |chunk: usize| {
        let mut codec = NdxCodec::default();
        feed(
            stream,
            chunk,
            limits,
            |_| false,
            |b| {
                let before = codec;
                let r = codec.decode(b);
                if matches!(r, Ok(None) | Err(_)) {
                    assert_eq!(codec, before, "a failed decode changed the state");
                }
                r
            },
        )
    };
    let whole = run(stream.len());
    let pieces = run(usize::from(ctl % 8) + 1);
    assert_eq!(whole, pieces);
}
