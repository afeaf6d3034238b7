//! Where a transfer's entries land, read from the destination argument once the file list is
//! known: rsync's receiver (`get_local_name`) decides it the same way whichever end receives.
//!
//! - a destination that is a directory is entered, the entries are written below it;
//! - a list of one entry, to a destination without a trailing `/`, is written *as* the
//!   destination: the entry takes the destination's last component as its name and lands in
//!   the destination's parent (a file replacing a file there; a directory made there with
//!   `-d`, or skipped without `-r`);
//! - otherwise the destination directory is made, one level only, and entered;
//! - an existing non-directory refuses a list of several entries, or of one directory.
//!
//! Sans-IO: the caller says what is at the destination; the local copy, the daemon's receiver
//! and the client's pull act on the answer with their own file access.

/// What is at the destination path now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// Nothing (`ENOENT`).
    Missing,
    /// A directory (a symlink to one counts, as `stat` follows it).
    Dir,
    /// Anything else: a file, a device, a dangling symlink; also what a name with a trailing
    /// `/` meets when `stat` fails with `ENOTDIR`.
    Other,
}

/// How the entries are written, once the destination is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The destination is a directory; the entries are written below it.
    Enter,
    /// The destination directory is made (its parent must exist; rsync exits 11 when it
    /// cannot), then entered.
    MakeDir,
    /// The one entry (a directory too) is written as the destination, in the destination's
    /// parent (rsync exits 3 when it cannot enter the parent).
    WriteAs,
}

/// A destination that cannot take the list, with rsync's text and exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Several entries onto an existing non-directory.
    #[error("ERROR: destination must be a directory when copying more than 1 file")]
    SeveralOntoFile,
    /// One directory onto an existing non-directory.
    #[error("ERROR: cannot overwrite non-directory with a directory")]
    DirOntoFile,
    /// A trailing `/` names a directory where a non-directory is (rsync's `stat` of the name
    /// fails there, and it says so).
    #[error("ERROR: cannot stat destination: Not a directory (20)")]
    NotADirectory,
}

impl Refusal {
    /// rsync's exit code for the refusal, `RERR_FILESELECT`.
    #[must_use]
    pub fn exit_code(self) -> u8 {
        3
    }
}

/// Decides how a list of `entries` entries (`first_is_dir`: the first of them is a directory)
/// lands on a destination where `found` is, written with a `trailing_slash` or not.
///
/// # Errors
/// A [`Refusal`] when an existing non-directory cannot take the list.
pub fn place(
    found: Found,
    trailing_slash: bool,
    entries: usize,
    first_is_dir: bool,
) -> Result<Placement, Refusal> {
    match found {
        Found::Dir => return Ok(Placement::Enter),
        Found::Other if entries > 1 => return Err(Refusal::SeveralOntoFile),
        Found::Other if entries == 1 && first_is_dir => return Err(Refusal::DirOntoFile),
        Found::Other | Found::Missing => {}
    }
    if entries > 1 || trailing_slash {
        return if found == Found::Other {
            Err(Refusal::NotADirectory)
        } else {
            Ok(Placement::MakeDir)
        };
    }
    // One entry (or none: then nothing is written, and no directory is made for it). A lone
    // directory is written as the path too: made there (`-d`), or skipped without `-r`.
    Ok(Placement::WriteAs)
}

/// What `stat` of the destination found, from its result; an error other than "missing" or
/// "a component is not a directory" is the caller's to report.
///
/// # Errors
/// The `stat` error, when it says nothing of what is there.
pub fn found(stat: std::io::Result<std::fs::Metadata>) -> std::io::Result<Found> {
    match stat {
        Ok(m) if m.is_dir() => Ok(Found::Dir),
        Ok(_) => Ok(Found::Other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Found::Missing),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Ok(Found::Other),
        Err(e) => Err(e),
    }
}

/// Whether a destination argument asks for a directory by its form: a trailing `/` (or `/.`,
/// or `.` itself).
#[must_use]
pub fn names_a_directory(dest: &[u8]) -> bool {
    dest.ends_with(b"/") || dest.ends_with(b"/.") || dest == b"."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_directory_is_always_entered() {
        for (slash, n, dir) in [(false, 1, false), (true, 5, true), (false, 0, false)] {
            assert_eq!(place(Found::Dir, slash, n, dir), Ok(Placement::Enter));
        }
    }

    #[test]
    fn one_file_is_written_as_the_named_path_unless_a_slash_asks_for_a_directory() {
        assert_eq!(
            place(Found::Missing, false, 1, false),
            Ok(Placement::WriteAs)
        );
        assert_eq!(place(Found::Other, false, 1, false), Ok(Placement::WriteAs));
        assert_eq!(
            place(Found::Missing, true, 1, false),
            Ok(Placement::MakeDir)
        );
        assert_eq!(
            place(Found::Other, true, 1, false),
            Err(Refusal::NotADirectory)
        );
    }

    #[test]
    fn several_entries_need_a_directory() {
        assert_eq!(
            place(Found::Missing, false, 2, true),
            Ok(Placement::MakeDir)
        );
        assert_eq!(
            place(Found::Other, false, 2, true),
            Err(Refusal::SeveralOntoFile)
        );
        assert_eq!(Refusal::SeveralOntoFile.exit_code(), 3);
    }

    #[test]
    fn a_lone_directory_is_written_as_the_path_but_never_over_a_file() {
        assert_eq!(
            place(Found::Other, false, 1, true),
            Err(Refusal::DirOntoFile)
        );
        assert_eq!(
            place(Found::Missing, false, 1, true),
            Ok(Placement::WriteAs)
        );
    }

    #[test]
    fn an_empty_list_makes_nothing() {
        assert_eq!(
            place(Found::Missing, false, 0, false),
            Ok(Placement::WriteAs)
        );
    }

    #[test]
    fn a_trailing_slash_or_dot_names_a_directory() {
        assert!(names_a_directory(b"x/") && names_a_directory(b"x/.") && names_a_directory(b"."));
        assert!(!names_a_directory(b"x") && !names_a_directory(b"x/.y"));
    }
}
