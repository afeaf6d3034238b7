//! Command-line behaviour of `rtsync sync`: exit codes and messages for bad input.

mod common;

use std::fs;

use common::{ok, rtsync, slash};

#[test]
fn unknown_options_are_syntax_errors() {
    let out = rtsync(["sync", "--no-such-option", "a", "b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("(code 1)"));
}

#[test]
fn unsupported_rsync_options_exit_4() {
    for opt in ["-A", "-X", "--inplace", "--link-dest=/x", "-F"] {
        let out = rtsync(["sync", opt, "a", "b"]);
        assert_eq!(
            out.status.code(),
            Some(4),
            "{opt}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A pull's --files-from list is read before anything connects (rsync: exit 11).
    let out = rtsync([
        "sync",
        "-a",
        "--files-from=/nonexistent/list",
        "-e",
        "/nonexistent/ssh",
        "host:path",
        "dst/",
    ]);
    assert_eq!(out.status.code(), Some(11));
    let out = rtsync(["sync", "--list-only", "src/", "dst/"]);
    assert_eq!(out.status.code(), Some(4));
    let out = rtsync(["sync", "-a", "--filter=: .rsync-filter", "a/", "b/"]);
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn a_missing_source_is_a_partial_transfer() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("here"), b"x").unwrap();
    let out = rtsync([
        "sync",
        "-a",
        t.path().join("missing").to_str().unwrap(),
        t.path().join("here").to_str().unwrap(),
        &slash(&t.path().join("dest")),
    ]);
    assert_eq!(
        out.status.code(),
        Some(23),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.path().join("dest/here").exists());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such file or directory"));
}

#[test]
fn help_is_available_for_sync() {
    let out = ok(&rtsync(["sync", "--help"]));
    assert!(out.contains("--delete"));
    assert!(out.contains("--itemize-changes"));
    let out = ok(&rtsync(["--help"]));
    assert!(out.contains("sync"));
}

#[test]
fn a_symlinked_destination_subdirectory_is_replaced_not_followed() {
    // A directory in the destination swapped for a symlink pointing outside must not lead the
    // transfer out of the destination.
    let t = tempfile::tempdir().unwrap();
    let (src, dest, outside) = (
        t.path().join("src"),
        t.path().join("dest"),
        t.path().join("outside"),
    );
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), b"payload").unwrap();
    fs::create_dir_all(&dest).unwrap();
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, dest.join("d")).unwrap();
    let out = rtsync(["sync", "-a", &slash(&src), &slash(&dest)]);
    ok(&out);
    assert!(!outside.join("f").exists(), "wrote through a symlink");
    assert!(dest.join("d").symlink_metadata().unwrap().is_dir());
    assert_eq!(fs::read(dest.join("d/f")).unwrap(), b"payload");
}
