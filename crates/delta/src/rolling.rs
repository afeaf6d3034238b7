//! The rolling checksum rsync calls `sum1` (`checksum.c get_checksum1`, rolled in
//! `match.c hash_search`).
//!
//! Bytes are taken as **signed** chars (rsync's `schar`), and `CHAR_OFFSET` is 0. Over a window
//! `b[0..n]`: `s1 = Σ b[i]`, `s2 = Σ (n − i)·b[i]`, both wrapping 32-bit, and the checksum is
//! `(s1 & 0xffff) | (s2 << 16)`. Signed bytes matter: a byte ≥ 0x80 contributes a negative value,
//! so an unsigned implementation disagrees with rsync on almost every real file.

/// The checksum of one whole window, as rsync's `get_checksum1` returns it.
#[must_use]
pub fn sum1(data: &[u8]) -> u32 {
    Rolling::new(data).digest()
}

/// A rolling window checksum that can slide forward one byte at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rolling {
    s1: u32,
    s2: u32,
    len: u32,
}

#[inline]
fn signed(b: u8) -> u32 {
    // Sign-extend, then reinterpret: the wrapping arithmetic below then matches C's.
    i32::from(b.cast_signed()).cast_unsigned()
}

impl Rolling {
    /// Starts a window over `data`.
    #[must_use]
    pub fn new(data: &[u8]) -> Self {
        let mut s1: u32 = 0;
        let mut s2: u32 = 0;
        // Four bytes at a time lets the compiler keep the dependency chain short; the result is
        // the same as the byte loop `s1 += b; s2 += s1`.
        let mut quads = data.chunks_exact(4);
        for q in &mut quads {
            let &[a, b, c, d] = q else { continue };
            let [a, b, c, d] = [signed(a), signed(b), signed(c), signed(d)];
            s2 = s2
                .wrapping_add(s1.wrapping_add(a).wrapping_mul(4))
                .wrapping_add(b.wrapping_mul(3))
                .wrapping_add(c.wrapping_mul(2))
                .wrapping_add(d);
            s1 = s1
                .wrapping_add(a)
                .wrapping_add(b)
                .wrapping_add(c)
                .wrapping_add(d);
        }
        for &b in quads.remainder() {
            s1 = s1.wrapping_add(signed(b));
            s2 = s2.wrapping_add(s1);
        }
        Rolling {
            s1,
            s2,
            len: u32::try_from(data.len()).unwrap_or(u32::MAX),
        }
    }

    /// The checksum of the current window.
    #[must_use]
    pub fn digest(&self) -> u32 {
        (self.s1 & 0xffff) | (self.s2 << 16)
    }

    /// Length of the current window.
    #[must_use]
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the window is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slides the window one byte: `out` leaves at the front, `inn` enters at the back.
    #[inline]
    pub fn roll(&mut self, out: u8, inn: u8) {
        let o = signed(out);
        self.s1 = self.s1.wrapping_sub(o).wrapping_add(signed(inn));
        self.s2 = self
            .s2
            .wrapping_sub(self.len.wrapping_mul(o))
            .wrapping_add(self.s1);
    }

    /// Drops `out` from the front without adding a byte: the window shrinks, as it does at the
    /// end of a file where the last block is shorter.
    #[inline]
    pub fn shrink(&mut self, out: u8) {
        let o = signed(out);
        self.s1 = self.s1.wrapping_sub(o);
        self.s2 = self.s2.wrapping_sub(self.len.wrapping_mul(o));
        self.len = self.len.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(data: &[u8]) -> u32 {
        let n = data.len() as u32;
        let mut s1 = 0u32;
        let mut s2 = 0u32;
        for (i, &b) in data.iter().enumerate() {
            let v = i32::from(b as i8) as u32;
            s1 = s1.wrapping_add(v);
            s2 = s2.wrapping_add((n - i as u32).wrapping_mul(v));
        }
        (s1 & 0xffff) | (s2 << 16)
    }

    #[test]
    fn matches_the_definition() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in [0, 1, 2, 3, 4, 5, 7, 8, 700, 1000] {
            assert_eq!(sum1(&data[..len]), naive(&data[..len]), "len {len}");
        }
    }

    #[test]
    fn rolling_equals_recomputing() {
        let data: Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let k = 700;
        let mut r = Rolling::new(&data[..k]);
        for start in 1..=(data.len() - k) {
            r.roll(data[start - 1], data[start + k - 1]);
            assert_eq!(r.digest(), sum1(&data[start..start + k]), "at {start}");
        }
        // Shrink to the end as the matcher does at end of file.
        let mut start = data.len() - k;
        while start < data.len() {
            r.shrink(data[start]);
            start += 1;
            assert_eq!(
                r.digest(),
                sum1(&data[start..]),
                "shrunk to {}",
                data.len() - start
            );
        }
    }

    #[test]
    fn high_bytes_are_signed() {
        // 0xff is -1 as a signed char: s1 = -1, s2 = -1.
        assert_eq!(sum1(&[0xff]), 0xffff_ffff);
        assert_eq!(sum1(&[0x80, 0x01]), naive(&[0x80, 0x01]));
    }
}
