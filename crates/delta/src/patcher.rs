//! The receiver's side of the algorithm: rebuild the new file from the basis and the token
//! stream, then verify it against the sender's whole-file sum (`receiver.c receive_data`).
//!
//! Every block index is checked against the signature's count before the basis is touched (the
//! bad-block-index class of rsync CVEs); a mismatching whole-file sum is an error the caller
//! answers with a redo, never a silently wrong file.

use std::io::{self, Write};

use crate::matcher::DeltaSink;
use crate::sizes::SumSizes;
use crate::strong::{ChecksumKind, FileHasher, StrongSum};
use crate::{DeltaError, hex};

/// Random access to the basis file.
pub trait Basis {
    /// Fills `buf` from `offset`.
    ///
    /// # Errors
    /// Any read error, or `UnexpectedEof` if the basis is shorter than asked.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl Basis for &[u8] {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = self
            .get(start..start.saturating_add(buf.len()))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl<B: Basis + ?Sized> Basis for Box<B> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }
}

impl Basis for std::fs::File {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

/// Rebuilds a file from tokens. It is itself a [`DeltaSink`], so a matcher can feed it directly.
pub struct Patcher<B, W> {
    basis: B,
    out: W,
    sizes: SumSizes,
    hasher: FileHasher,
    written: u64,
    buf: Vec<u8>,
}

impl<B: Basis, W: Write> Patcher<B, W> {
    /// A patcher writing to `out`, copying blocks of `basis` as `sizes` cuts it, and summing
    /// the result with `kind` for the final check.
    pub fn new(basis: B, sizes: SumSizes, kind: ChecksumKind, out: W) -> Self {
        Patcher {
            basis,
            out,
            sizes,
            hasher: FileHasher::new(kind),
            written: 0,
            buf: Vec::new(),
        }
    }

    /// Appends literal bytes.
    ///
    /// # Errors
    /// [`DeltaError::Io`] when writing fails.
    pub fn write_literal(&mut self, data: &[u8]) -> Result<(), DeltaError> {
        self.out.write_all(data).map_err(|source| DeltaError::Io {
            about: "writing new file",
            source,
        })?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        Ok(())
    }

    /// Appends basis block `block`.
    ///
    /// # Errors
    /// [`DeltaError::BadBlock`] for an index outside the basis, [`DeltaError::Io`] otherwise.
    pub fn copy_block(&mut self, block: u64) -> Result<(), DeltaError> {
        let bad = DeltaError::BadBlock {
            block,
            count: self.sizes.count,
        };
        let Ok(i) = u32::try_from(block) else {
            return Err(bad);
        };
        if i >= self.sizes.count {
            return Err(bad);
        }
        let len = self.sizes.len_of(i) as usize;
        self.buf.resize(len, 0);
        self.basis
            .read_at(self.sizes.offset_of(i), &mut self.buf)
            .map_err(|source| DeltaError::Io {
                about: "reading basis file",
                source,
            })?;
        self.out
            .write_all(&self.buf)
            .map_err(|source| DeltaError::Io {
                about: "writing new file",
                source,
            })?;
        self.hasher.update(&self.buf);
        self.written += len as u64;
        Ok(())
    }

    /// Bytes written so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Checks the rebuilt file against the sender's whole-file sum and hands back the output.
    ///
    /// # Errors
    /// [`DeltaError::ChecksumMismatch`] when the sums differ.
    pub fn finish(self, expected: &[u8]) -> Result<W, DeltaError> {
        let actual = self.hasher.finish();
        if actual.as_bytes() != expected {
            return Err(DeltaError::ChecksumMismatch {
                len: self.written,
                expected: hex(expected),
                actual: hex(actual.as_bytes()),
            });
        }
        Ok(self.out)
    }

    /// The whole-file sum of what was written, without checking it.
    #[must_use]
    pub fn into_parts(self) -> (W, StrongSum) {
        (self.out, self.hasher.finish())
    }
}

impl<B: Basis, W: Write> DeltaSink for Patcher<B, W> {
    fn literal(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_literal(data).map_err(into_io)
    }

    fn copy(&mut self, block: u32) -> io::Result<()> {
        self.copy_block(u64::from(block)).map_err(into_io)
    }
}

fn into_io(e: DeltaError) -> io::Error {
    match e {
        DeltaError::Io { source, .. } => source,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}
