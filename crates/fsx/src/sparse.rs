//! Writing a new file with holes where its data is zeros (rsync's `--sparse`).
//!
//! Zero pieces are skipped with a seek instead of written, so a 4 GiB disk image that is mostly
//! empty costs what its data costs; the length is fixed at the end, since a trailing hole is
//! never written. Without `sparse` the writer passes every byte straight through, so callers
//! keep one code path.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

/// A zero run shorter than this is written: a page is the smallest hole a filesystem keeps.
const HOLE_UNIT: usize = 4096;

/// Writes into a fresh (empty) file, optionally leaving holes; call [`SparseWriter::finish`].
pub struct SparseWriter<'f> {
    file: &'f File,
    sparse: bool,
    /// Zero bytes accepted but not yet written (a seek pending).
    hole: u64,
}

impl<'f> SparseWriter<'f> {
    /// A writer at the current position of `file`, which must hold nothing past it.
    #[must_use]
    pub fn new(file: &'f File, sparse: bool) -> Self {
        SparseWriter {
            file,
            sparse,
            hole: 0,
        }
    }

    fn write_data(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.hole > 0 {
            let skip = i64::try_from(self.hole).map_err(std::io::Error::other)?;
            self.file.seek(SeekFrom::Current(skip))?;
            self.hole = 0;
        }
        self.file.write_all(data)
    }

    /// Extends the file over a trailing hole, so its length is right.
    ///
    /// # Errors
    /// The OS error.
    pub fn finish(mut self) -> std::io::Result<()> {
        if self.hole > 0 {
            let end = self.file.stream_position()? + self.hole;
            self.file.set_len(end)?;
            self.file.seek(SeekFrom::Start(end))?;
            self.hole = 0;
        }
        Ok(())
    }
}

fn all_zero(piece: &[u8]) -> bool {
    // An OR-fold vectorises; `iter().all` stops early and does not.
    piece.iter().fold(0u8, |acc, &b| acc | b) == 0
}

impl Write for SparseWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.sparse {
            return self.file.write(buf);
        }
        let mut data_start = 0;
        let mut at = 0;
        for piece in buf.chunks(HOLE_UNIT) {
            let end = at + piece.len();
            if piece.len() == HOLE_UNIT && all_zero(piece) {
                self.write_data(buf.get(data_start..at).unwrap_or_default())?;
                self.hole += HOLE_UNIT as u64;
                data_start = end;
            }
            at = end;
        }
        self.write_data(buf.get(data_start..).unwrap_or_default())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;

    fn written(sparse: bool, pieces: &[&[u8]]) -> (Vec<u8>, u64) {
        let t = tempfile::tempfile().unwrap();
        let mut w = SparseWriter::new(&t, sparse);
        for p in pieces {
            w.write_all(p).unwrap();
        }
        w.finish().unwrap();
        let mut back = Vec::new();
        (&t).seek(SeekFrom::Start(0)).unwrap();
        (&t).read_to_end(&mut back).unwrap();
        (back, t.metadata().unwrap().blocks())
    }

    #[test]
    fn content_is_the_same_with_and_without_holes() {
        let zeros = vec![0u8; 1 << 20];
        let data = vec![7u8; 10_000];
        let pieces: [&[u8]; 6] = [&data, &zeros, &data[..5], &zeros, &zeros[..3000], &zeros];
        let (plain, plain_blocks) = written(false, &pieces);
        let (holey, holey_blocks) = written(true, &pieces);
        assert_eq!(plain, holey);
        assert_eq!(plain.len(), 10_000 + 3 * (1 << 20) + 5 + 3000);
        // Most of the 3 MiB of zeros took no space (the filesystem may round up a little).
        assert!(holey_blocks * 512 < 256 * 1024, "{holey_blocks} blocks");
        assert!(plain_blocks > holey_blocks);
    }

    #[test]
    fn a_file_of_only_zeros_is_all_hole_with_the_right_length() {
        let zeros = vec![0u8; 64 * 1024];
        let (content, _) = written(true, &[&zeros, &zeros]);
        assert_eq!(content.len(), 128 * 1024);
        assert!(content.iter().all(|&b| b == 0));
    }
}
