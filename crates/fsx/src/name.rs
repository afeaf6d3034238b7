//! Validation of file names and relative paths: the first line of confinement.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::FsError;

fn unsafe_path(path: &[u8], why: &'static str) -> FsError {
    FsError::Unsafe {
        path: PathBuf::from(OsStr::from_bytes(path)),
        why,
    }
}

/// Checks that `name` is one path component: not empty, not `.` or `..`, no `/`, no NUL.
///
/// # Errors
/// [`FsError::Unsafe`] naming what is wrong.
pub fn check_name(name: &[u8]) -> Result<(), FsError> {
    if name.is_empty() {
        return Err(unsafe_path(name, "empty file name"));
    }
    if name == b"." || name == b".." {
        return Err(unsafe_path(name, "\".\" and \"..\" are not file names"));
    }
    if name.contains(&b'/') {
        return Err(unsafe_path(name, "file name contains '/'"));
    }
    if name.contains(&0) {
        return Err(unsafe_path(name, "file name contains NUL"));
    }
    Ok(())
}

/// Splits a relative path (`a/b/c`) into its components, refusing absolute paths and `..`.
/// Empty and `.` components are skipped, so `./a//b` is `a/b` and `.` is the root itself.
///
/// # Errors
/// [`FsError::Unsafe`] for an absolute path, a `..` component or a NUL byte.
pub fn split_rel_path(path: &[u8]) -> Result<Vec<&[u8]>, FsError> {
    if path.first() == Some(&b'/') {
        return Err(unsafe_path(path, "absolute path"));
    }
    if path.contains(&0) {
        return Err(unsafe_path(path, "path contains NUL"));
    }
    let mut parts = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(unsafe_path(path, "path contains \"..\"")),
            _ => parts.push(part),
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name(b"a b\n\xff").is_ok());
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rel_paths() {
        assert_eq!(split_rel_path(b"./a//b/").unwrap(), vec![&b"a"[..], b"b"]);
        assert!(split_rel_path(b".").unwrap().is_empty());
        assert!(split_rel_path(b"/etc").is_err());
        assert!(split_rel_path(b"a/../../etc").is_err());
        assert!(split_rel_path(b"..").is_err());
        assert!(split_rel_path(b"a/..b").is_ok());
    }
}
