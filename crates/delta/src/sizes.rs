//! Block length and strong-sum length for a basis file (`generator.c sum_sizes_sqroot`), and the
//! bounds a reader checks on a received sum header (`io.c read_sum_head`).
//!
//! Block length: a forced `--block-size`, else 700 bytes up to 700² bytes of file, else the
//! largest multiple of 8 whose square does not exceed the file length, kept within
//! `[700, MAX_BLOCK_SIZE]`. Strong-sum length: with the normal 2-byte `csum_length`, enough bits
//! that a false match over the whole file is unlikely — `b = 10 + 2·⌊log2 len⌋ − ⌊log2 blen⌋`,
//! `s2length = (b + 1 − 32 + 7) / 8` — clamped to `[csum_length, 16]` and to the digest length.

use crate::DeltaError;

/// rsync's default block length.
pub const BLOCK_SIZE: u32 = 700;
/// Largest block length at protocol ≥ 30.
pub const MAX_BLOCK_SIZE: u32 = 1 << 17;
/// The most blocks a signature may have: with rsync's largest blocks (128 KiB) that covers a
/// 4 TiB file, and holding its sums takes under a gigabyte. rsync's own generator never sends
/// more for files below that size.
pub const MAX_BLOCK_COUNT: u32 = 1 << 25;
/// Largest block length before protocol 30.
pub const OLD_MAX_BLOCK_SIZE: u32 = 1 << 29;
/// Full strong-sum length; also `csum_length` in the redo phase.
pub const SUM_LENGTH: u32 = 16;
/// Normal `csum_length`: the least number of strong-sum bytes sent per block.
pub const SHORT_SUM_LENGTH: u32 = 2;
const BLOCKSUM_BIAS: i64 = 10;

/// What decides the sizes besides the file length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSizeRule {
    /// `--block-size`, if the user forced one.
    pub forced: Option<u32>,
    /// Negotiated protocol version.
    pub protocol: u32,
    /// [`SHORT_SUM_LENGTH`] normally, [`SUM_LENGTH`] in the redo phase.
    pub csum_length: u32,
    /// The negotiated digest's length: `s2length` never exceeds it (rsync ≥ 3.4 enforces this).
    pub digest_len: u32,
}

impl Default for BlockSizeRule {
    fn default() -> Self {
        BlockSizeRule {
            forced: None,
            protocol: 31,
            csum_length: SHORT_SUM_LENGTH,
            digest_len: SUM_LENGTH,
        }
    }
}

/// The sum header: how a basis file is cut into blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SumSizes {
    /// Number of blocks.
    pub count: u32,
    /// Length of every block but possibly the last.
    pub block_len: u32,
    /// Strong-sum bytes sent per block.
    pub s2_len: u32,
    /// Length of the last block when shorter than `block_len`, else 0.
    pub remainder: u32,
}

fn floor_log2(mut v: u64) -> i64 {
    let mut n = 0;
    while v > 1 {
        v >>= 1;
        n += 1;
    }
    n
}

impl SumSizes {
    /// The sizes rsync's generator picks for a basis of `len` bytes.
    #[must_use]
    pub fn for_file(len: u64, rule: BlockSizeRule) -> Self {
        let max_block = if rule.protocol < 30 {
            OLD_MAX_BLOCK_SIZE
        } else {
            MAX_BLOCK_SIZE
        };
        let block_len = match rule.forced {
            Some(b) if b > 0 => b.min(max_block),
            _ if len <= u64::from(BLOCK_SIZE) * u64::from(BLOCK_SIZE) => BLOCK_SIZE,
            _ => {
                // Largest multiple of 8 with square ≤ len: the integer square root, rounded down.
                let root = len.isqrt();
                let rounded = root & !7;
                u32::try_from(rounded)
                    .unwrap_or(max_block)
                    .clamp(BLOCK_SIZE, max_block)
            }
        };
        let s2_len = if rule.protocol < 27 {
            rule.csum_length
        } else if rule.csum_length == SUM_LENGTH {
            SUM_LENGTH
        } else {
            let b = BLOCKSUM_BIAS + 2 * floor_log2(len) - floor_log2(u64::from(block_len));
            let b = b.max(0);
            let s2 = (b + 1 - 32 + 7) / 8;
            let s2 = s2
                .max(i64::from(rule.csum_length))
                .min(i64::from(SUM_LENGTH));
            u32::try_from(s2).unwrap_or(SUM_LENGTH)
        };
        let s2_len = s2_len.min(rule.digest_len.max(1));
        let block = u64::from(block_len);
        let remainder = u32::try_from(len % block).unwrap_or(0);
        let count = u32::try_from(len / block + u64::from(remainder != 0)).unwrap_or(u32::MAX);
        SumSizes {
            count,
            block_len,
            s2_len,
            remainder,
        }
    }

    /// Validates a sum header received from a peer, as `read_sum_head` does, and bounds the
    /// block count (a peer could otherwise make us hold billions of sums).
    ///
    /// # Errors
    /// [`DeltaError::BadSumHeader`] when a field is out of rsync's bounds.
    pub fn checked(
        count: i32,
        block_len: i32,
        s2_len: i32,
        remainder: i32,
        digest_len: usize,
    ) -> Result<Self, DeltaError> {
        let count = u32::try_from(count).map_err(|_| DeltaError::BadSumHeader("negative count"))?;
        let block_len = u32::try_from(block_len)
            .ok()
            .filter(|&b| b <= MAX_BLOCK_SIZE)
            .ok_or(DeltaError::BadSumHeader("block length out of range"))?;
        let s2_len = u32::try_from(s2_len)
            .ok()
            .filter(|&s| s as usize <= digest_len)
            .ok_or(DeltaError::BadSumHeader("strong sum length out of range"))?;
        let remainder = u32::try_from(remainder)
            .ok()
            .filter(|&r| r <= block_len)
            .ok_or(DeltaError::BadSumHeader("remainder out of range"))?;
        if count > 0 && block_len == 0 {
            return Err(DeltaError::BadSumHeader("blocks of length zero"));
        }
        if count > MAX_BLOCK_COUNT {
            return Err(DeltaError::BadSumHeader("too many blocks"));
        }
        Ok(SumSizes {
            count,
            block_len,
            s2_len,
            remainder,
        })
    }

    /// Length of block `i` (the last one may be short).
    #[must_use]
    pub fn len_of(&self, i: u32) -> u32 {
        if i + 1 == self.count && self.remainder != 0 {
            self.remainder
        } else {
            self.block_len
        }
    }

    /// Byte offset of block `i` in the basis.
    #[must_use]
    pub fn offset_of(&self, i: u32) -> u64 {
        u64::from(i) * u64::from(self.block_len)
    }

    /// Total length of the basis the sizes describe.
    #[must_use]
    pub fn file_len(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.offset_of(self.count - 1) + u64::from(self.len_of(self.count - 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(len: u64) -> SumSizes {
        SumSizes::for_file(len, BlockSizeRule::default())
    }

    #[test]
    fn small_files_use_700_byte_blocks() {
        let s = sizes(10_000);
        assert_eq!(
            (s.block_len, s.count, s.remainder, s.s2_len),
            (700, 15, 200, 2)
        );
        assert_eq!(sizes(490_000).block_len, 700);
        assert_eq!(sizes(0).count, 0);
    }

    #[test]
    fn large_files_use_rounded_square_root() {
        // sqrt(1 GiB) = 32768, already a multiple of 8.
        let s = sizes(1 << 30);
        assert_eq!(s.block_len, 32768);
        assert_eq!(s.count, 32768);
        // b = 10 + 60 - 15 = 55 -> (55 + 1 - 32 + 7) / 8 = 3
        assert_eq!(s.s2_len, 3);
        // sqrt(1_000_000) = 1000, a multiple of 8.
        assert_eq!(sizes(1_000_000).block_len, 1000);
        // sqrt(2_000_000) = 1414.2 -> 1408
        assert_eq!(sizes(2_000_000).block_len, 1408);
        // Capped at 128 KiB at protocol 30+.
        assert_eq!(sizes(1 << 40).block_len, MAX_BLOCK_SIZE);
    }

    #[test]
    fn redo_phase_sends_full_sums_but_not_past_the_digest() {
        let rule = BlockSizeRule {
            csum_length: SUM_LENGTH,
            ..BlockSizeRule::default()
        };
        assert_eq!(SumSizes::for_file(5000, rule).s2_len, 16);
        let rule = BlockSizeRule {
            csum_length: SUM_LENGTH,
            digest_len: 8,
            ..rule
        };
        assert_eq!(SumSizes::for_file(5000, rule).s2_len, 8);
    }

    #[test]
    fn block_geometry() {
        let s = sizes(1500);
        assert_eq!(s.count, 3);
        assert_eq!(s.len_of(0), 700);
        assert_eq!(s.len_of(2), 100);
        assert_eq!(s.offset_of(2), 1400);
        assert_eq!(s.file_len(), 1500);
        let even = sizes(1400);
        assert_eq!((even.count, even.remainder, even.len_of(1)), (2, 0, 700));
    }

    #[test]
    fn hostile_headers_are_refused() {
        assert!(SumSizes::checked(-1, 700, 2, 0, 16).is_err());
        assert!(SumSizes::checked(1, 1 << 20, 2, 0, 16).is_err());
        assert!(SumSizes::checked(1, 700, 17, 0, 16).is_err());
        assert!(SumSizes::checked(1, 700, 9, 0, 8).is_err());
        assert!(SumSizes::checked(1, 700, 2, 701, 16).is_err());
        assert!(SumSizes::checked(1, 0, 2, 0, 16).is_err());
        assert!(SumSizes::checked(3, 700, 2, 100, 16).is_ok());
    }
}
