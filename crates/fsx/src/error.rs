//! The error type of `fsx`: every error names the operation and the path it concerned.

use std::io;
use std::path::PathBuf;

/// A failed filesystem operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// The operating system refused an operation.
    #[error("{op} {path:?} failed: {source}")]
    Io {
        /// What was attempted ("open", "rename", …).
        op: &'static str,
        /// The path concerned, for the user.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A name or path that would leave the root, or is not a valid file name.
    #[error("refusing unsafe path {path:?}: {why}")]
    Unsafe {
        /// The offending path.
        path: PathBuf,
        /// Why it is refused.
        why: &'static str,
    },
}

impl FsError {
    pub(crate) fn io(op: &'static str, path: PathBuf, errno: rustix::io::Errno) -> Self {
        FsError::Io {
            op,
            path,
            source: errno.into(),
        }
    }

    /// The path the error concerns.
    #[must_use]
    pub fn path(&self) -> &std::path::Path {
        match self {
            FsError::Io { path, .. } | FsError::Unsafe { path, .. } => path,
        }
    }

    /// Whether the error means "does not exist".
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, FsError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// Whether the error is a refused path escape: permanent and worth reporting as a security
    /// event.
    #[must_use]
    pub fn is_escape(&self) -> bool {
        matches!(self, FsError::Unsafe { .. })
    }

    /// The raw OS error number, if any.
    #[must_use]
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            FsError::Io { source, .. } => source.raw_os_error(),
            FsError::Unsafe { .. } => None,
        }
    }
}
