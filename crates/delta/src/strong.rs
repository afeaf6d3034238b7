//! Strong checksums: per-block sums (`checksum.c get_checksum2`) and whole-file sums
//! (`checksum.c sum_init/sum_update/sum_end`), with rsync's seeding rules.
//!
//! Block sums take the session's `checksum_seed`:
//! - `xxh64` / `xxh3`: the seed is the hash seed; `xxh128`: `XXH3_128bits_withSeed`, stored as the
//!   low 64 bits little-endian followed by the high 64 bits little-endian (not the canonical order).
//!   The 32-bit seed becomes 64 bits by C's integer conversion, i.e. sign extension.
//! - `md5`: with the `CF_CHKSUM_SEED_FIX` compat flag the seed's 4 little-endian bytes come first,
//!   otherwise after the data; a zero seed is not fed at all.
//! - `md4` (protocol < 30): the seed follows the data, omitted when zero.
//!
//! Whole-file sums ignore the seed, except the `md4` of protocols before 30, which feeds it
//! first.
//!
//! These rules were checked against bytes captured from stock rsync 3.5.0
//! (`tests/golden.rs`, `test_cases/README.md`). One build difference matters: rsync built with
//! OpenSSL (Debian's) puts an `md5` block seed first even without `CF_CHKSUM_SEED_FIX`; a build
//! without OpenSSL follows the flag. Every peer since rsync 3.0.8 sends the flag, so both agree.

use md5::Digest as _;
use xxhash_rust::xxh3::{Xxh3, xxh3_64_with_seed, xxh3_128_with_seed};
use xxhash_rust::xxh64::{Xxh64, xxh64};

/// A strong checksum algorithm rsync can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChecksumKind {
    /// MD4, the only choice before protocol 30.
    Md4,
    /// MD5, implied at protocol ≥ 30 when nothing is negotiated.
    Md5,
    /// XXH64.
    Xxh64,
    /// XXH3, 64-bit.
    Xxh3,
    /// XXH3, 128-bit: rsync's first preference.
    Xxh128,
}

impl ChecksumKind {
    /// All kinds in rsync's order of preference.
    pub const PREFERENCE: [ChecksumKind; 5] =
        [Self::Xxh128, Self::Xxh3, Self::Xxh64, Self::Md5, Self::Md4];

    /// The name used in negotiation strings and `--checksum-choice`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Md4 => "md4",
            Self::Md5 => "md5",
            Self::Xxh64 => "xxh64",
            Self::Xxh3 => "xxh3",
            Self::Xxh128 => "xxh128",
        }
    }

    /// Parses a negotiation name (`xxhash` is rsync's alias for `xxh64`).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "md4" => Self::Md4,
            "md5" => Self::Md5,
            "xxh64" | "xxhash" => Self::Xxh64,
            "xxh3" => Self::Xxh3,
            "xxh128" => Self::Xxh128,
            _ => return None,
        })
    }

    /// Digest length in bytes (`csum_len_for_type`).
    #[must_use]
    pub fn digest_len(self) -> usize {
        match self {
            Self::Md4 | Self::Md5 | Self::Xxh128 => 16,
            Self::Xxh64 | Self::Xxh3 => 8,
        }
    }
}

/// A strong sum of up to 16 bytes; only the first `len` bytes are meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StrongSum {
    bytes: [u8; 16],
    len: u8,
}

impl StrongSum {
    /// Wraps a digest, keeping at most 16 bytes.
    #[must_use]
    pub fn from_slice(digest: &[u8]) -> Self {
        let mut bytes = [0u8; 16];
        let mut len = 0u8;
        for (slot, &b) in bytes.iter_mut().zip(digest) {
            *slot = b;
            len += 1;
        }
        StrongSum { bytes, len }
    }

    /// The meaningful bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The first `n` bytes, as sent on the wire when rsync truncates block sums to `s2length`.
    #[must_use]
    pub fn truncated(&self, n: usize) -> Self {
        Self::from_slice(self.as_bytes().get(..n).unwrap_or(self.as_bytes()))
    }
}

fn seed64(seed: i32) -> u64 {
    i64::from(seed).cast_unsigned()
}

/// The strong sum of one block, as rsync's `get_checksum2` computes it.
///
/// `seed_fix` is the `CF_CHKSUM_SEED_FIX` compat flag (set by every protocol-31 peer that sends
/// the `C` capability); it only changes `md5`.
#[must_use]
pub fn block_sum(kind: ChecksumKind, seed: i32, seed_fix: bool, data: &[u8]) -> StrongSum {
    let seed_bytes = seed.to_le_bytes();
    match kind {
        ChecksumKind::Xxh64 => StrongSum::from_slice(&xxh64(data, seed64(seed)).to_le_bytes()),
        ChecksumKind::Xxh3 => {
            StrongSum::from_slice(&xxh3_64_with_seed(data, seed64(seed)).to_le_bytes())
        }
        ChecksumKind::Xxh128 => {
            StrongSum::from_slice(&xxh3_128_with_seed(data, seed64(seed)).to_le_bytes())
        }
        ChecksumKind::Md5 => {
            let mut h = md5::Md5::new();
            if seed != 0 && seed_fix {
                h.update(seed_bytes);
            }
            h.update(data);
            if seed != 0 && !seed_fix {
                h.update(seed_bytes);
            }
            StrongSum::from_slice(&h.finalize())
        }
        ChecksumKind::Md4 => {
            let mut h = md4::Md4::new();
            h.update(data);
            if seed != 0 {
                h.update(seed_bytes);
            }
            StrongSum::from_slice(&h.finalize())
        }
    }
}

/// A streaming whole-file checksum (rsync's `sum_init` / `sum_update` / `sum_end`).
#[derive(Clone)]
pub struct FileHasher {
    state: FileState,
}

#[derive(Clone)]
enum FileState {
    Md4(md4::Md4),
    Md5(md5::Md5),
    Xxh64(Box<Xxh64>),
    Xxh3(Box<Xxh3>),
    Xxh128(Box<Xxh3>),
}

impl FileHasher {
    /// Starts a whole-file sum as protocol 30 and later compute it: unseeded.
    #[must_use]
    pub fn new(kind: ChecksumKind) -> Self {
        let state = match kind {
            ChecksumKind::Md4 => FileState::Md4(md4::Md4::new()),
            ChecksumKind::Md5 => FileState::Md5(md5::Md5::new()),
            ChecksumKind::Xxh64 => FileState::Xxh64(Box::new(Xxh64::new(0))),
            ChecksumKind::Xxh3 => FileState::Xxh3(Box::new(Xxh3::new())),
            ChecksumKind::Xxh128 => FileState::Xxh128(Box::new(Xxh3::new())),
        };
        FileHasher { state }
    }

    /// The whole-file MD4 of protocols 27–29, which feeds the seed's four bytes first, even a
    /// zero seed.
    #[must_use]
    pub fn legacy_md4(seed: i32) -> Self {
        let mut h = md4::Md4::new();
        h.update(seed.to_le_bytes());
        FileHasher {
            state: FileState::Md4(h),
        }
    }

    /// Feeds more of the file.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            FileState::Md4(h) => h.update(data),
            FileState::Md5(h) => h.update(data),
            FileState::Xxh64(h) => h.update(data),
            FileState::Xxh3(h) | FileState::Xxh128(h) => h.update(data),
        }
    }

    /// The finished sum, in the byte order rsync sends it.
    #[must_use]
    pub fn finish(self) -> StrongSum {
        match self.state {
            FileState::Md4(h) => StrongSum::from_slice(&h.finalize()),
            FileState::Md5(h) => StrongSum::from_slice(&h.finalize()),
            FileState::Xxh64(h) => StrongSum::from_slice(&h.digest().to_le_bytes()),
            FileState::Xxh3(h) => StrongSum::from_slice(&h.digest().to_le_bytes()),
            FileState::Xxh128(h) => StrongSum::from_slice(&h.digest128().to_le_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh128_is_low_half_first() {
        let v = xxh3_128_with_seed(b"abc", 0);
        let s = block_sum(ChecksumKind::Xxh128, 0, true, b"abc");
        assert_eq!(&s.as_bytes()[..8], &(v as u64).to_le_bytes());
        assert_eq!(&s.as_bytes()[8..], &((v >> 64) as u64).to_le_bytes());
    }

    #[test]
    fn negative_seed_sign_extends() {
        let s = block_sum(ChecksumKind::Xxh64, -5, true, b"abc");
        assert_eq!(
            s.as_bytes(),
            xxh64(b"abc", 0xffff_ffff_ffff_fffb).to_le_bytes()
        );
    }

    #[test]
    fn md5_seed_order_follows_the_compat_flag() {
        let seed = 12345i32;
        let fixed = block_sum(ChecksumKind::Md5, seed, true, b"data");
        let mut h = md5::Md5::new();
        h.update(seed.to_le_bytes());
        h.update(b"data");
        assert_eq!(fixed.as_bytes(), h.finalize().as_slice());
        let old = block_sum(ChecksumKind::Md5, seed, false, b"data");
        let mut h = md5::Md5::new();
        h.update(b"data");
        h.update(seed.to_le_bytes());
        assert_eq!(old.as_bytes(), h.finalize().as_slice());
        // A zero seed is not fed at all.
        assert_eq!(
            block_sum(ChecksumKind::Md5, 0, true, b"data").as_bytes(),
            md5::Md5::digest(b"data").as_slice()
        );
    }

    #[test]
    fn whole_file_sum_streams() {
        for kind in ChecksumKind::PREFERENCE {
            let mut a = FileHasher::new(kind);
            a.update(b"hello ");
            a.update(b"world");
            let mut b = FileHasher::new(kind);
            b.update(b"hello world");
            assert_eq!(a.finish(), b.finish(), "{}", kind.name());
        }
    }

    #[test]
    fn names_round_trip() {
        for kind in ChecksumKind::PREFERENCE {
            assert_eq!(ChecksumKind::from_name(kind.name()), Some(kind));
        }
    }
}
