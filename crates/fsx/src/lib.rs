//! `fsx` owns every write to a destination tree, and the race-free reads that go with them.
//!
//! A [`Root`] is an open directory; a [`Dir`] is an open directory beneath it, reached one
//! component at a time with `O_NOFOLLOW | O_DIRECTORY`, so a symlink planted anywhere on the way
//! (even while we work) can never lead outside the root. Every operation then names a single
//! component relative to a `Dir` fd (`openat`, `mkdirat`, `renameat`, …) with symlinks not
//! followed. Names are bytes: any Unix file name but `.`, `..`, and names holding `/` or NUL.
//!
//! New content is written to a temporary file in the destination directory
//! (`.<name>.XXXXXX`, as rsync names them), given its metadata, optionally flushed to disk
//! ([`Persist`]), then renamed over the target: a reader sees the old file or the new one, never
//! a half-written one. Symlinks, devices and hard links are made under a temporary name and
//! renamed into place the same way.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod dir;
mod error;
mod meta;
mod name;
mod sparse;

pub use dir::{Dir, Root, TempFile};
pub use error::FsError;
pub use meta::{Kind, Meta, Persist, Stat, Timespec};
pub use name::{check_name, split_rel_path};
pub use sparse::SparseWriter;

/// Whether this process runs as root (and so may set owners and make devices).
#[must_use]
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The process's file creation mask (read by setting and restoring it).
#[must_use]
pub fn umask() -> u32 {
    use rustix::fs::Mode;
    let old = rustix::process::umask(Mode::from_raw_mode(0o022));
    rustix::process::umask(old);
    old.bits()
}

/// Opens a file for reading by path without following a final symlink (a source file swapped
/// for a symlink is refused, not followed).
///
/// # Errors
/// The OS error.
pub fn open_nofollow(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    Ok(std::fs::File::from(rustix::fs::open(
        path,
        flags,
        Mode::empty(),
    )?))
}

/// Appends `len` bytes of `from`, starting at `offset`, to `to` at its current position, inside
/// the kernel (`copy_file_range`: no copy through user space, and a reflink where the
/// filesystem can). Falls back to read/write where the kernel refuses.
///
/// # Errors
/// The OS error, or `UnexpectedEof` if `from` ends early.
pub fn copy_range(
    from: &std::fs::File,
    offset: u64,
    to: &std::fs::File,
    len: u64,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let mut off = offset;
    let mut left = len;
    while left > 0 {
        let chunk = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
        match rustix::fs::copy_file_range(from, Some(&mut off), to, None, chunk) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => left -= n as u64,
            Err(rustix::io::Errno::XDEV | rustix::io::Errno::NOSYS | rustix::io::Errno::INVAL) => {
                let mut buf = vec![0u8; usize::try_from(left.min(1 << 20)).unwrap_or(1 << 20)];
                from.read_exact_at(&mut buf, off)?;
                (&*to).write_all(&buf)?;
                off += buf.len() as u64;
                left -= buf.len() as u64;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
