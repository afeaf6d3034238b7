//! Changes to paths relative to the source root: the vocabulary the coalescer and the journal
//! share. The root itself is the empty path.
//!
//! A rename inside the root is one [`Change::Renamed`]. A target that can apply a rename as a
//! rename (an rtsync daemon) may receive it as one, when the coalescer is set to
//! ([`crate::Settings::renames`]); for any other target it is a delete of the old path and a
//! creation of the new one ([`Change::split_rename`]), which is how a stock rsync target must
//! receive it. A rename with one end outside the root is a delete or a creation from the start.

use std::path::{Path, PathBuf};

use watch::FsEvent;

/// One change below the source root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A file, symlink or special file appeared: made, or renamed or moved in, maybe over an
    /// entry of the same name (which the watcher does not report).
    Created(PathBuf),
    /// A directory appeared: it and everything below it must be sent.
    CreatedDir(PathBuf),
    /// Content or attributes of an existing entry changed, and the change is complete (the
    /// file was closed, or only its attributes changed).
    Modified(PathBuf),
    /// A file was written to and may still be open: its content may be half-way.
    Written(PathBuf),
    /// An entry is gone (a directory with everything below it).
    Deleted(PathBuf),
    /// Compare this subtree in full: events were lost below it, or it was never sent.
    Resync(PathBuf),
    /// An entry (a directory with everything below it) was renamed or moved from `from` to
    /// `to`, both below the root, maybe over an entry at `to` (which the watcher does not
    /// report).
    Renamed {
        /// The old path.
        from: PathBuf,
        /// The new path.
        to: PathBuf,
        /// Whether it is a directory.
        is_dir: bool,
    },
}

impl Change {
    /// The path the change is about: for a rename, the new path.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Change::Created(p)
            | Change::CreatedDir(p)
            | Change::Modified(p)
            | Change::Written(p)
            | Change::Deleted(p)
            | Change::Resync(p) => p,
            Change::Renamed { to, .. } => to,
        }
    }

    /// A rename as a delete of the old path then a creation of the new one (what a target
    /// that cannot rename must receive); any other change as it is.
    #[must_use]
    pub fn split_rename(&self) -> Vec<Change> {
        match self {
            Change::Renamed { from, to, is_dir } => vec![
                Change::Deleted(from.clone()),
                if *is_dir {
                    Change::CreatedDir(to.clone())
                } else {
                    Change::Created(to.clone())
                },
            ],
            other => vec![other.clone()],
        }
    }
}

/// The changes an event below `root` means; events outside `root` mean nothing. A rename with
/// both ends below `root` is one [`Change::Renamed`]; with one end outside, it is a delete (moved
/// out) or a creation (moved in).
#[must_use]
pub fn changes_of(ev: &FsEvent, root: &Path) -> Vec<Change> {
    let rel = |p: &Path| p.strip_prefix(root).ok().map(Path::to_path_buf);
    let one = |c: Option<Change>| c.into_iter().collect();
    match ev {
        FsEvent::Created { path, is_dir } => one(rel(path).map(|p| {
            if *is_dir {
                Change::CreatedDir(p)
            } else {
                Change::Created(p)
            }
        })),
        // A write, or a change of the modification time alone (which the kernel reports as a
        // write too).
        FsEvent::Modified { path } => one(rel(path).map(Change::Written)),
        FsEvent::ClosedWrite { path } | FsEvent::Attributes { path, .. } => {
            one(rel(path).map(Change::Modified))
        }
        FsEvent::Deleted { path, .. } => one(rel(path).map(Change::Deleted)),
        FsEvent::Renamed { from, to, is_dir } => match (rel(from), rel(to)) {
            (Some(from), Some(to)) => vec![Change::Renamed {
                from,
                to,
                is_dir: *is_dir,
            }],
            (from, to) => {
                let mut out: Vec<Change> = from.map(Change::Deleted).into_iter().collect();
                if let Some(p) = to {
                    out.push(if *is_dir {
                        Change::CreatedDir(p)
                    } else {
                        Change::Created(p)
                    });
                }
                out
            }
        },
        FsEvent::Rescan { path } => one(rel(path).map(Change::Resync)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_relative_changes_and_renames_split_on_demand() {
        let root = Path::new("/src");
        let ev = FsEvent::Renamed {
            from: "/src/a/x".into(),
            to: "/src/b/x".into(),
            is_dir: true,
        };
        let renamed = Change::Renamed {
            from: "a/x".into(),
            to: "b/x".into(),
            is_dir: true,
        };
        assert_eq!(changes_of(&ev, root), std::slice::from_ref(&renamed));
        assert_eq!(renamed.path(), Path::new("b/x"));
        assert_eq!(
            renamed.split_rename(),
            [
                Change::Deleted("a/x".into()),
                Change::CreatedDir("b/x".into())
            ]
        );
        // One end outside the root: moved out is a delete, moved in a creation.
        let out = FsEvent::Renamed {
            from: "/src/f".into(),
            to: "/tmp/f".into(),
            is_dir: false,
        };
        assert_eq!(changes_of(&out, root), [Change::Deleted("f".into())]);
        let into = FsEvent::Renamed {
            from: "/tmp/f".into(),
            to: "/src/f".into(),
            is_dir: false,
        };
        assert_eq!(changes_of(&into, root), [Change::Created("f".into())]);
        let ev = FsEvent::Rescan {
            path: "/src".into(),
        };
        assert_eq!(changes_of(&ev, root), [Change::Resync(PathBuf::new())]);
        let outside = FsEvent::Modified {
            path: "/elsewhere/f".into(),
        };
        assert!(changes_of(&outside, root).is_empty());
    }
}
