//! rsync's delta-transfer algorithm as pure functions, bit-compatible with rsync protocol 30–31.
//!
//! The pieces, in the order a transfer uses them:
//! - [`sizes`]: how rsync picks the block length and the strong-sum length (`s2length`) for a file;
//! - [`rolling`]: the signed-char rolling checksum (`sum1`);
//! - [`strong`]: strong block sums and whole-file sums with rsync's seeding rules;
//! - [`signature`]: the per-block sums a generator computes over its basis file;
//! - [`matcher`]: the sender's search for basis blocks inside the new file, pushing
//!   [`Token`]s into a [`DeltaSink`];
//! - [`patcher`]: the receiver's rebuild of the new file from a basis plus tokens, verified by the
//!   whole-file sum.
//!
//! Nothing here opens a file or a socket: inputs are readers and byte slices, outputs are sinks.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod matcher;
pub mod patcher;
pub mod rolling;
pub mod signature;
pub mod sizes;
pub mod strong;

pub use matcher::{DeltaSink, MatchStats, Matcher, Token};
pub use patcher::{Basis, Patcher};
pub use rolling::{Rolling, sum1};
pub use signature::{BlockSum, Signature};
pub use sizes::{BlockSizeRule, SumSizes};
pub use strong::{ChecksumKind, FileHasher, StrongSum, block_sum};

/// rsync's `CHUNK_SIZE`: the largest literal run sent as one token. Hardened rsync receivers
/// reject longer literal records, so the matcher never emits one.
pub const CHUNK_SIZE: usize = 32 * 1024;

/// Errors of the delta engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// Reading an input (basis or new file) or writing the output failed.
    #[error("{about}: {source}")]
    Io {
        /// What was being read or written.
        about: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A token names a block the signature does not have.
    #[error("token refers to block {block}, but the basis has only {count} blocks")]
    BadBlock {
        /// The block index from the token stream.
        block: u64,
        /// How many blocks the signature holds.
        count: u32,
    },
    /// The rebuilt file's whole-file sum differs from the sender's.
    #[error("whole-file checksum mismatch after {len} bytes (expected {expected}, got {actual})")]
    ChecksumMismatch {
        /// Bytes written.
        len: u64,
        /// The sum the sender computed, in hex.
        expected: String,
        /// The sum of what was rebuilt, in hex.
        actual: String,
    },
    /// A sum header or signature violates rsync's bounds (CVE-2024-12084 class).
    #[error("invalid sum header: {0}")]
    BadSumHeader(&'static str),
}

/// Hex form of a byte string, for messages and tests.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
