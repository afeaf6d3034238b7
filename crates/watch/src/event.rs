//! The event vocabulary: raw inotify events with inotify's names, and semantic events.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// inotify's event bits (`<sys/inotify.h>`), which `rtsync watch -e` names.
pub mod mask {
    /// File was read.
    pub const ACCESS: u32 = 0x1;
    /// File was written.
    pub const MODIFY: u32 = 0x2;
    /// Metadata changed.
    pub const ATTRIB: u32 = 0x4;
    /// A file opened for writing was closed.
    pub const CLOSE_WRITE: u32 = 0x8;
    /// A file not opened for writing was closed.
    pub const CLOSE_NOWRITE: u32 = 0x10;
    /// Either close.
    pub const CLOSE: u32 = CLOSE_WRITE | CLOSE_NOWRITE;
    /// File was opened.
    pub const OPEN: u32 = 0x20;
    /// Moved out of a watched directory.
    pub const MOVED_FROM: u32 = 0x40;
    /// Moved into a watched directory.
    pub const MOVED_TO: u32 = 0x80;
    /// Either move.
    pub const MOVE: u32 = MOVED_FROM | MOVED_TO;
    /// Created in a watched directory.
    pub const CREATE: u32 = 0x100;
    /// Deleted from a watched directory.
    pub const DELETE: u32 = 0x200;
    /// The watched entry itself was deleted.
    pub const DELETE_SELF: u32 = 0x400;
    /// The watched entry itself was moved.
    pub const MOVE_SELF: u32 = 0x800;
    /// The filesystem was unmounted.
    pub const UNMOUNT: u32 = 0x2000;
    /// The kernel's event queue overflowed: events were lost.
    pub const Q_OVERFLOW: u32 = 0x4000;
    /// The watch was removed.
    pub const IGNORED: u32 = 0x8000;
    /// The subject is a directory.
    pub const ISDIR: u32 = 0x4000_0000;
    /// Every event inotifywait watches by default.
    pub const ALL: u32 = 0xfff;

    /// Names as inotifywait prints and parses them, in the order it prints them.
    pub const NAMES: [(&str, u32); 17] = [
        ("ACCESS", ACCESS),
        ("MODIFY", MODIFY),
        ("ATTRIB", ATTRIB),
        ("CLOSE_WRITE", CLOSE_WRITE),
        ("CLOSE_NOWRITE", CLOSE_NOWRITE),
        ("CLOSE", CLOSE),
        ("OPEN", OPEN),
        ("MOVED_FROM", MOVED_FROM),
        ("MOVED_TO", MOVED_TO),
        ("MOVE", MOVE),
        ("CREATE", CREATE),
        ("DELETE", DELETE),
        ("DELETE_SELF", DELETE_SELF),
        ("MOVE_SELF", MOVE_SELF),
        ("UNMOUNT", UNMOUNT),
        ("Q_OVERFLOW", Q_OVERFLOW),
        ("ISDIR", ISDIR),
    ];

    /// Parses an event name as `-e` takes it (any case; `all_events` is everything).
    #[must_use]
    pub fn from_name(name: &str) -> Option<u32> {
        let upper = name.to_ascii_uppercase();
        if upper == "ALL_EVENTS" {
            return Some(ALL);
        }
        NAMES.iter().find(|(n, _)| *n == upper).map(|(_, m)| *m)
    }

    /// The names inotifywait prints for one event, e.g. `["CLOSE_WRITE", "CLOSE"]` or
    /// `["CREATE", "ISDIR"]`: each single bit, `CLOSE` after a close, `ISDIR` last.
    #[must_use]
    pub fn names(bits: u32) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(name, m)| match *name {
                "CLOSE" => bits & CLOSE != 0,
                "MOVE" => false,
                _ => bits & m == *m,
            })
            .map(|(n, _)| *n)
            .collect()
    }
}

/// One kernel event, with the path of the watch it came from: what inotifywait prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// The watched path the event arrived on (`%w`): a directory, or a watched file.
    pub watch: PathBuf,
    /// The name inside the watched directory (`%f`), empty for events on the watch itself.
    pub name: Vec<u8>,
    /// The event bits.
    pub mask: u32,
    /// Pairs a `MOVED_FROM` with its `MOVED_TO` (`%c`); 0 otherwise.
    pub cookie: u32,
    /// Made by the watcher rather than the kernel: an entry found when a new directory was read.
    pub synthetic: bool,
}

impl RawEvent {
    /// The full path of the subject: `watch/name`, or `watch` itself.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        if self.name.is_empty() {
            self.watch.clone()
        } else {
            self.watch.join(std::ffi::OsStr::from_bytes(&self.name))
        }
    }

    /// Whether the subject is a directory.
    #[must_use]
    pub fn is_dir(&self) -> bool {
        self.mask & mask::ISDIR != 0
    }
}

/// What changed, as the replication engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsEvent {
    /// An entry appeared (created, or moved in from outside the watched trees).
    Created {
        /// Its path.
        path: PathBuf,
        /// Whether it is a directory (then everything below it is new too).
        is_dir: bool,
    },
    /// A file's content was written (more writes may follow).
    Modified {
        /// Its path.
        path: PathBuf,
    },
    /// A file opened for writing was closed: its content is complete for now.
    ClosedWrite {
        /// Its path.
        path: PathBuf,
    },
    /// Permissions, owner or times changed.
    Attributes {
        /// Its path.
        path: PathBuf,
        /// Whether it is a directory.
        is_dir: bool,
    },
    /// An entry was deleted (or moved out of the watched trees).
    Deleted {
        /// Its path.
        path: PathBuf,
        /// Whether it was a directory.
        is_dir: bool,
    },
    /// An entry was renamed or moved within the watched trees.
    Renamed {
        /// The old path.
        from: PathBuf,
        /// The new path.
        to: PathBuf,
        /// Whether it is a directory.
        is_dir: bool,
    },
    /// Events were lost below `path` (queue overflow, watch limit): compare it in full.
    Rescan {
        /// The subtree to compare.
        path: PathBuf,
    },
}

impl FsEvent {
    /// The path the event is about (the new path of a rename).
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            FsEvent::Created { path, .. }
            | FsEvent::Modified { path }
            | FsEvent::ClosedWrite { path }
            | FsEvent::Attributes { path, .. }
            | FsEvent::Deleted { path, .. }
            | FsEvent::Rescan { path } => path,
            FsEvent::Renamed { to, .. } => to,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mask::*;

    #[test]
    fn names_as_inotifywait_prints_them() {
        assert_eq!(names(CLOSE_WRITE), ["CLOSE_WRITE", "CLOSE"]);
        assert_eq!(
            names(CLOSE_NOWRITE | ISDIR),
            ["CLOSE_NOWRITE", "CLOSE", "ISDIR"]
        );
        assert_eq!(names(CREATE | ISDIR), ["CREATE", "ISDIR"]);
        assert_eq!(names(MOVED_FROM), ["MOVED_FROM"]);
        assert_eq!(from_name("close_write"), Some(CLOSE_WRITE));
        assert_eq!(from_name("move"), Some(MOVE));
        assert_eq!(from_name("bogus"), None);
    }
}
