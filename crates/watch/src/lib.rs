//! Kernel filesystem notifications turned into events that never miss a change.
//!
//! - [`event`]: the vocabulary — raw inotify-style events ([`RawEvent`], with inotify's masks and
//!   names, which `rtsync watch` prints as inotifywait does) and the semantic [`FsEvent`]s the
//!   replication engine consumes;
//! - [`fanotify`]: the privileged backend: one mark per filesystem, no per-directory watches;
//! - [`inotify`]: the default backend. One watch per directory, added by a walk; a directory is
//!   read, watched, and read again if it changed meanwhile, so files created in a new directory
//!   before its watch existed are reported, and no directory made during a walk goes unwatched; a
//!   directory renamed inside the tree keeps correct paths for everything below it; a queue
//!   overflow becomes a rescan; excluded directories are never watched; hitting the watch limit
//!   is an error that says which sysctl to raise and to what;
//! - [`pairing`]: a sans-IO state machine that pairs `MOVED_FROM`/`MOVED_TO` by cookie into one
//!   rename and turns an unpaired move-out into a delete after a short timeout;
//! - [`select`]: excludes and includes, as regular expressions (inotifywait's) or rsync globs;
//! - [`limits`]: the kernel's inotify limits and what to tell the user about them.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod event;
pub mod fanotify;
pub mod inotify;
pub mod limits;
pub mod pairing;
pub mod select;

pub use event::{FsEvent, RawEvent, mask};
pub use fanotify::FanotifyWatcher;
pub use inotify::{InotifyWatcher, WatchOptions};
pub use pairing::Pairer;
pub use select::Selector;

use std::path::PathBuf;

/// Errors of the watcher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// `fs.inotify.max_user_watches` is exhausted.
    #[error("{}", limits::watch_limit_advice(path, *limit, *needed))]
    TooManyWatches {
        /// The directory that could not be watched.
        path: PathBuf,
        /// The current limit, if readable.
        limit: Option<u64>,
        /// How many directories the watched trees hold, if counted.
        needed: Option<u64>,
    },
    /// `fs.inotify.max_user_instances` is exhausted.
    #[error(
        "cannot create an inotify instance: fs.inotify.max_user_instances is reached; raise it with: sysctl -w fs.inotify.max_user_instances=1024"
    )]
    TooManyInstances,
    /// A path to watch does not exist.
    #[error("Couldn't watch {}: No such file or directory", .0.display())]
    NotFound(PathBuf),
    /// Any other OS error.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Either backend behind one interface.
pub enum Watcher {
    /// One watch per directory (any user).
    Inotify(InotifyWatcher),
    /// One mark per filesystem (root).
    Fanotify(FanotifyWatcher),
}

impl Watcher {
    /// Starts watching `path`.
    ///
    /// # Errors
    /// As the backend's `add`.
    pub fn add(&mut self, path: &std::path::Path) -> Result<(), WatchError> {
        match self {
            Watcher::Inotify(w) => w.add(path),
            Watcher::Fanotify(w) => w.add(path),
        }
    }

    /// The next event, waiting at most `timeout`.
    ///
    /// # Errors
    /// As the backend's `next_event`.
    pub fn next_event(
        &mut self,
        timeout: Option<std::time::Duration>,
    ) -> Result<Option<RawEvent>, WatchError> {
        match self {
            Watcher::Inotify(w) => w.next_event(timeout),
            Watcher::Fanotify(w) => w.next_event(timeout),
        }
    }

    /// Whether events are waiting in user space.
    #[must_use]
    pub fn has_pending(&self) -> bool {
        match self {
            Watcher::Inotify(w) => w.has_pending(),
            Watcher::Fanotify(w) => w.has_pending(),
        }
    }

    /// Problems met while watching new directories (inotify only).
    pub fn take_errors(&mut self) -> Vec<WatchError> {
        match self {
            Watcher::Inotify(w) => w.take_errors(),
            Watcher::Fanotify(_) => Vec::new(),
        }
    }
}
