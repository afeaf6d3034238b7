//! Local one-shot transfers with rsync's semantics (`rsync -a --delete SRC/ DEST/` on one host).
//!
//! The flow mirrors rsync's roles inside one process:
//! - [`flist`]: the sender walks the sources into a sorted [`FileList`] (trailing-slash rule,
//!   `-R` with implied directories, `--files-from`, sender-side filters);
//! - [`transfer`]: the generator compares each entry with the destination (rsync's quick check:
//!   size and modification time, to the nanosecond; or `-c` whole-file sums), deletes extraneous
//!   entries (`--delete-before/-during/-after`, receiver-side filters), and the receiver writes
//!   every change through `fsx` — changed files through the `delta` engine against the old
//!   version;
//! - [`placement`]: how the destination argument is read once the list is known (a directory
//!   entered or made, or one file written as the named path), shared with the wire receivers;
//! - [`item`]: what changed, in rsync's 11-letter `--itemize-changes` form, reported to a
//!   [`Reporter`]; [`Stats`] totals it as `--stats` prints it.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod flist;
pub mod item;
mod options;
pub mod placement;
pub mod stats;
pub mod transfer;

pub use flist::{FileEntry, FileList, SourceArg};
pub use item::{Item, Update};
pub use options::{DeleteTiming, Options};
pub use stats::Stats;
pub use transfer::{Outcome, Reporter, run, whole_file_sum};

use std::path::PathBuf;

/// Errors that stop a transfer as a whole. Per-file problems are reported through the
/// [`Reporter`] and counted in the [`Outcome`] instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// The destination cannot be opened or created.
    #[error("cannot use destination {path:?}: {source}")]
    Destination {
        /// The destination path.
        path: PathBuf,
        /// What failed.
        #[source]
        source: fsx::FsError,
    },
    /// The sources cannot be walked at all.
    #[error("{0}")]
    Source(String),
    /// The destination cannot take the list (several entries onto a file, say).
    #[error("{0}")]
    Placement(placement::Refusal),
    /// The parent of a one-file destination cannot be entered.
    #[error("change_dir {path:?} failed: {source}")]
    Parent {
        /// The parent directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: fsx::FsError,
    },
}

impl MirrorError {
    /// rsync's exit code for the error: 3 (`RERR_FILESELECT`) for a destination that cannot
    /// take the list, 11 (`RERR_FILEIO`) otherwise.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            MirrorError::Placement(r) => r.exit_code(),
            MirrorError::Parent { .. } => 3,
            MirrorError::Destination { .. } | MirrorError::Source(_) => 11,
        }
    }
}
