//! Changes to paths relative to the source root: the vocabulary the coalescer and the journal
//! share. The root itself is the empty path.

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
}

impl Change {
    /// The path the change is about.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Change::Created(p)
            | Change::CreatedDir(p)
            | Change::Modified(p)
            | Change::Written(p)
            | Change::Deleted(p)
            | Change::Resync(p) => p,
        }
    }
}

/// The changes an event below `root` means; events outside `root` mean nothing. A rename is a
/// delete of the old path and a creation of the new one, which is how a stock rsync target must
/// receive it.
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
        FsEvent::Renamed { from, to, is_dir } => {
            let mut out: Vec<Change> = rel(from).map(Change::Deleted).into_iter().collect();
            if let Some(p) = rel(to) {
                out.push(if *is_dir {
                    Change::CreatedDir(p)
                } else {
                    Change::Created(p)
                });
            }
            out
        }
        FsEvent::Rescan { path } => one(rel(path).map(Change::Resync)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_relative_changes_and_renames_split() {
        let root = Path::new("/src");
        let ev = FsEvent::Renamed {
            from: "/src/a/x".into(),
            to: "/src/b/x".into(),
            is_dir: true,
        };
        assert_eq!(
            changes_of(&ev, root),
            [
                Change::Deleted("a/x".into()),
                Change::CreatedDir("b/x".into())
            ]
        );
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
