//! Kernel filesystem notifications turned into events that never miss a change.
//!
//! - [`event`]: the vocabulary — raw inotify-style events ([`RawEvent`], with inotify's masks and
//!   names, which `rtsync watch` prints as inotifywait does) and the semantic [`FsEvent`]s the
//!   replication engine consumes;
//! - [`inotify`]: the default backend. One watch per directory, added by a walk; a new directory
//!   is watched *then* read, so files created in it before its watch existed are reported; a
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
pub mod inotify;
pub mod limits;
pub mod pairing;
pub mod select;

pub use event::{FsEvent, RawEvent, mask};
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
