//! rsync's primitive encodings (`io.c`): everything is little-endian.
//!
//! - `int`: 4 bytes; `shortint`: 2 bytes.
//! - varint: the value's little-endian bytes without high zero bytes, preceded by a lead byte
//!   whose leading 1-bits count the bytes that follow and whose remaining low bits hold the most
//!   significant value bits (`0x1fe` → `81 fe`).
//! - varlong(min): the same idea, but `min − 1` value bytes always follow the lead byte
//!   (sizes use min 3, times min 4).
//! - vstring: a length of 1 byte, or 2 bytes (`0x80 | len >> 8`, `len & 0xff`) above 0x7f;
//!   at most 0x7fff.
//! - ndx: file indexes coded as differences from the previous positive (start −1) or negative
//!   (start 1) index of the same direction of the connection; see [`NdxCodec`].
//!
//! Decoders take a byte slice and return `Ok(None)` when it is too short, or the value and the
//! number of bytes it took.

use crate::ProtoError;

/// Appends a 4-byte little-endian int.
pub fn put_int(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Reads a 4-byte little-endian int.
#[must_use]
pub fn get_int(buf: &[u8]) -> Option<(i32, usize)> {
    let b: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    Some((i32::from_le_bytes(b), 4))
}

/// Appends a 2-byte little-endian short.
pub fn put_short(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Reads a 2-byte little-endian short.
#[must_use]
pub fn get_short(buf: &[u8]) -> Option<(u16, usize)> {
    let b: [u8; 2] = buf.get(..2)?.try_into().ok()?;
    Some((u16::from_le_bytes(b), 2))
}

/// How many bytes follow a lead byte: its count of leading 1-bits.
fn extra_bytes(lead: u8) -> usize {
    lead.leading_ones() as usize
}

/// Writes `value`'s `bytes` little-endian bytes after a lead byte, keeping at least `min` bytes
/// in total (lead included): the shared core of varint (`min` 1) and varlong.
fn put_var(out: &mut Vec<u8>, value: u64, width: usize, min: usize) {
    let le = value.to_le_bytes();
    let le = le.get(..width).unwrap_or(&le);
    // `cnt` counts the lead byte plus the value bytes, as in rsync's buffer `b[0..cnt]`.
    let mut cnt = width;
    while cnt > min && le.get(cnt - 1) == Some(&0) {
        cnt -= 1;
    }
    let top = le.get(cnt - 1).copied().unwrap_or(0);
    let bit: u8 = 1 << (7 + min - cnt);
    let lead;
    let body_len;
    if top >= bit {
        // The top byte does not fit in the lead: send it whole, lead is all count bits.
        lead = !(bit - 1);
        body_len = cnt;
    } else if cnt > min {
        lead = top | !((bit << 1).wrapping_sub(1));
        body_len = cnt - 1;
    } else {
        lead = top;
        body_len = cnt - 1;
    }
    out.push(lead);
    out.extend_from_slice(le.get(..body_len).unwrap_or_default());
}

/// Appends rsync's varint.
pub fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_var(out, u64::from(v.cast_unsigned()), 4, 1);
}

/// Reads rsync's varint.
///
/// # Errors
/// A lead byte announcing more bytes than an int holds.
pub fn get_varint(buf: &[u8]) -> Result<Option<(i32, usize)>, ProtoError> {
    match get_var(buf, 1, 4)? {
        Some((v, n)) => match u32::try_from(v) {
            Ok(v) => Ok(Some((v.cast_signed(), n))),
            Err(_) => Err(ProtoError::protocol(
                "varint",
                format!("value {v:#x} does not fit 32 bits"),
            )),
        },
        None => Ok(None),
    }
}

/// Appends rsync's varlong with at least `min` bytes (3 for sizes, 4 for times).
pub fn put_varlong(out: &mut Vec<u8>, v: i64, min: usize) {
    put_var(out, v.cast_unsigned(), 8, min);
}

/// Reads rsync's varlong written with at least `min` bytes.
///
/// # Errors
/// A lead byte announcing more bytes than a long holds.
pub fn get_varlong(buf: &[u8], min: usize) -> Result<Option<(i64, usize)>, ProtoError> {
    Ok(get_var(buf, min, 8)?.map(|(v, n)| (v.cast_signed(), n)))
}

fn get_var(buf: &[u8], min: usize, width: usize) -> Result<Option<(u64, usize)>, ProtoError> {
    let Some(&lead) = buf.first() else {
        return Ok(None);
    };
    let extra = extra_bytes(lead);
    let too_long = if min == 1 {
        extra > width
    } else {
        min + extra > width
    };
    if too_long {
        return Err(ProtoError::protocol(
            "varint",
            format!("lead byte {lead:#04x} announces {extra} more bytes"),
        ));
    }
    let total = min + extra;
    let Some(body) = buf.get(1..total) else {
        return Ok(None);
    };
    let mut bytes = [0u8; 8];
    for (slot, b) in bytes.iter_mut().zip(body) {
        *slot = *b;
    }
    // The lead's low bits are the most significant byte.
    let top = if extra > 0 {
        lead & ((1u8 << (8 - extra)) - 1)
    } else {
        lead
    };
    if let Some(slot) = bytes.get_mut(total - 1) {
        *slot = top;
    }
    Ok(Some((u64::from_le_bytes(bytes), total)))
}

/// Appends a vstring.
///
/// # Errors
/// A string longer than 0x7fff bytes.
pub fn put_vstring(out: &mut Vec<u8>, s: &[u8]) -> Result<(), ProtoError> {
    let len = s.len();
    if len > 0x7fff {
        return Err(ProtoError::protocol(
            "vstring",
            format!("{len} bytes is longer than 32767"),
        ));
    }
    if len > 0x7f {
        out.push(0x80 | (len >> 8) as u8);
    }
    out.push((len & 0xff) as u8);
    out.extend_from_slice(s);
    Ok(())
}

/// Reads a vstring.
#[must_use]
pub fn get_vstring(buf: &[u8]) -> Option<(&[u8], usize)> {
    let &first = buf.first()?;
    let (len, head) = if first & 0x80 != 0 {
        (
            (usize::from(first & 0x7f) << 8) | usize::from(*buf.get(1)?),
            2,
        )
    } else {
        (usize::from(first), 1)
    };
    Some((buf.get(head..head + len)?, head + len))
}

/// End of a phase or of the transfer.
pub const NDX_DONE: i32 = -1;
/// End of a file list (incremental recursion only).
pub const NDX_FLIST_EOF: i32 = -2;
/// Deletion statistics follow.
pub const NDX_DEL_STATS: i32 = -3;

/// The per-direction state of rsync's file-index coding: each direction of a connection keeps
/// its own codec for the whole connection, redo phase included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdxCodec {
    prev_positive: i32,
    prev_negative: i32,
}

impl Default for NdxCodec {
    fn default() -> Self {
        NdxCodec {
            prev_positive: -1,
            prev_negative: 1,
        }
    }
}

impl NdxCodec {
    /// Appends `ndx`.
    pub fn encode(&mut self, out: &mut Vec<u8>, ndx: i32) {
        if ndx == NDX_DONE {
            out.push(0);
            return;
        }
        let (n, diff) = if ndx >= 0 {
            let d = ndx.wrapping_sub(self.prev_positive);
            self.prev_positive = ndx;
            (ndx, d)
        } else {
            out.push(0xff);
            let n = ndx.wrapping_neg();
            let d = n.wrapping_sub(self.prev_negative);
            self.prev_negative = n;
            (n, d)
        };
        if (1..0xfe).contains(&diff) {
            out.push(diff as u8);
        } else if !(0..=0x7fff).contains(&diff) {
            let b = n.to_le_bytes();
            out.extend_from_slice(&[0xfe, (b[3] & 0x7f) | 0x80, b[0], b[1], b[2]]);
        } else {
            out.extend_from_slice(&[0xfe, (diff >> 8) as u8, diff as u8]);
        }
    }

    /// Reads an index; `Ok(None)` if `buf` is too short (the state is then unchanged).
    ///
    /// # Errors
    /// Never for well-formed input; hostile input decodes to some index, which callers bound.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(i32, usize)>, ProtoError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        if first == 0 {
            return Ok(Some((NDX_DONE, 1)));
        }
        let (negative, at) = if first == 0xff { (true, 1) } else { (false, 0) };
        let Some(&b) = buf.get(at) else {
            return Ok(None);
        };
        let prev = if negative {
            self.prev_negative
        } else {
            self.prev_positive
        };
        let (num, used) = if b == 0xfe {
            let Some(&[b0, b1]) = buf
                .get(at + 1..at + 3)
                .and_then(|s| <&[u8; 2]>::try_from(s).ok())
            else {
                return Ok(None);
            };
            if b0 & 0x80 != 0 {
                let Some(&[b2, b3]) = buf
                    .get(at + 3..at + 5)
                    .and_then(|s| <&[u8; 2]>::try_from(s).ok())
                else {
                    return Ok(None);
                };
                (i32::from_le_bytes([b1, b2, b3, b0 & 0x7f]), at + 5)
            } else {
                (
                    (i32::from(b0) << 8 | i32::from(b1)).wrapping_add(prev),
                    at + 3,
                )
            }
        } else {
            (i32::from(b).wrapping_add(prev), at + 1)
        };
        if negative {
            self.prev_negative = num;
            Ok(Some((num.wrapping_neg(), used)))
        } else {
            self.prev_positive = num;
            Ok(Some((num, used)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(v: i32) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    #[test]
    fn varint_matches_rsync() {
        // Observed from rsync: compat flags 0x1fe.
        assert_eq!(varint(0x1fe), [0x81, 0xfe]);
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(0x7f), [0x7f]);
        assert_eq!(varint(0x80), [0x80, 0x80]);
        assert_eq!(varint(-1), [0xf0, 0xff, 0xff, 0xff, 0xff]);
        for v in [
            0,
            1,
            0x7f,
            0x80,
            0x3fff,
            0x4000,
            0x1f_ffff,
            0x20_0000,
            i32::MAX,
            -1,
            i32::MIN,
        ] {
            let enc = varint(v);
            assert_eq!(get_varint(&enc).unwrap(), Some((v, enc.len())), "{v:#x}");
            assert_eq!(get_varint(&enc[..enc.len() - 1]).unwrap(), None);
        }
    }

    #[test]
    fn varlong_keeps_min_bytes() {
        let mut out = Vec::new();
        put_varlong(&mut out, 5, 3);
        assert_eq!(out, [0x00, 0x05, 0x00]);
        out.clear();
        put_varlong(&mut out, 0x12345, 3);
        assert_eq!(out, [0x01, 0x45, 0x23]);
        out.clear();
        put_varlong(&mut out, 0x123_4567, 3);
        assert_eq!(out, [0x81, 0x67, 0x45, 0x23]);
        for min in [3, 4] {
            // (Values whose top byte needs a ninth byte are beyond what rsync itself can read.)
            for v in [
                0i64,
                1,
                0xff_ffff,
                0x100_0000,
                5 << 32,
                1_700_000_000,
                1 << 50,
                (1 << 56) - 1,
            ] {
                let mut out = Vec::new();
                put_varlong(&mut out, v, min);
                assert_eq!(
                    get_varlong(&out, min).unwrap(),
                    Some((v, out.len())),
                    "{v:#x} min {min}"
                );
            }
        }
    }

    #[test]
    fn hostile_leads_are_errors_not_panics() {
        assert!(get_varint(&[0xff, 1, 2, 3, 4, 5, 6, 7, 8]).is_err());
        assert!(get_varlong(&[0xff; 16], 3).is_err());
    }

    #[test]
    fn vstrings() {
        let mut out = Vec::new();
        put_vstring(&mut out, b"xxh128").unwrap();
        assert_eq!(out, b"\x06xxh128");
        let long = vec![b'a'; 300];
        out.clear();
        put_vstring(&mut out, &long).unwrap();
        assert_eq!(&out[..2], &[0x81, 0x2c]);
        assert_eq!(get_vstring(&out), Some((&long[..], 302)));
        assert!(put_vstring(&mut out, &vec![0; 0x8000]).is_err());
        assert_eq!(get_vstring(&[5, b'a']), None);
    }

    #[test]
    fn ndx_coding() {
        let mut enc = NdxCodec::default();
        let mut out = Vec::new();
        for n in [0, 1, 2, 300, 299, 100_000, NDX_DONE, NDX_FLIST_EOF, 5] {
            enc.encode(&mut out, n);
        }
        assert_eq!(&out[..3], &[0x01, 0x01, 0x01]); // 0-(-1), 1-0, 2-1
        let mut dec = NdxCodec::default();
        let mut at = 0;
        let mut got = Vec::new();
        while at < out.len() {
            let (n, used) = dec.decode(&out[at..]).unwrap().unwrap();
            got.push(n);
            at += used;
        }
        assert_eq!(
            got,
            [0, 1, 2, 300, 299, 100_000, NDX_DONE, NDX_FLIST_EOF, 5]
        );
    }
}
