//! Confinement and atomicity of `fsx` against real directories.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

use fsx::{Kind, Meta, Persist, Root, Timespec};

fn setup() -> (tempfile::TempDir, Root) {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("root")).unwrap();
    let root = Root::open(&t.path().join("root"), Persist::Sync).unwrap();
    (t, root)
}

#[test]
fn dotdot_and_absolute_paths_are_refused() {
    let (_t, root) = setup();
    for bad in [&b"../x"[..], b"/etc", b"a/../../x"] {
        let err = root.open_dir(bad).unwrap_err();
        assert!(err.is_escape(), "{bad:?}: {err}");
    }
    assert!(root.top().create_temp(b"..").is_err());
    assert!(root.top().mkdir(b"a/b", 0o755).is_err());
}

#[test]
fn a_symlinked_directory_is_never_followed() {
    let (t, root) = setup();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    symlink(&outside, t.path().join("root/link")).unwrap();
    let err = root.open_dir(b"link").unwrap_err();
    assert!(err.is_escape(), "{err}");
    // Metadata changes on the link never reach its target.
    let before = std::fs::metadata(&outside).unwrap().permissions().mode();
    root.top()
        .set_meta(
            b"link",
            Kind::Symlink,
            &Meta {
                perms: Some(0o777),
                ..Meta::default()
            },
        )
        .unwrap();
    // Even when told it is a directory, chmod does not follow the link.
    root.top()
        .set_meta(
            b"link",
            Kind::Dir,
            &Meta {
                perms: Some(0o777),
                ..Meta::default()
            },
        )
        .unwrap();
    assert_eq!(
        std::fs::metadata(&outside).unwrap().permissions().mode(),
        before
    );
    // Opening a file through the link fails too.
    std::fs::write(outside.join("secret"), b"x").unwrap();
    assert!(root.open_dir(b"link/").is_err());
}

#[test]
fn temp_files_replace_atomically_and_vanish_when_dropped() {
    let (t, root) = setup();
    let dir = root.top();
    std::fs::write(t.path().join("root/f"), b"old").unwrap();
    {
        let mut tmp = dir.create_temp(b"f").unwrap();
        tmp.file_mut().write_all(b"half").unwrap();
        // Dropped: the old file stays, no temp file remains.
    }
    assert_eq!(std::fs::read(t.path().join("root/f")).unwrap(), b"old");
    assert_eq!(dir.names().unwrap(), vec![b"f".to_vec()]);

    let mut tmp = dir.create_temp(b"f").unwrap();
    tmp.file_mut().write_all(b"new content").unwrap();
    let mtime = Timespec {
        sec: 1_600_000_000,
        nsec: 123_456_789,
    };
    tmp.commit(&Meta {
        perms: Some(0o640),
        mtime: Some(mtime),
        ..Meta::default()
    })
    .unwrap();
    let md = std::fs::symlink_metadata(t.path().join("root/f")).unwrap();
    assert_eq!(
        std::fs::read(t.path().join("root/f")).unwrap(),
        b"new content"
    );
    assert_eq!(md.mode() & 0o7777, 0o640);
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_600_000_000, 123_456_789));
    assert_eq!(dir.names().unwrap().len(), 1);
}

#[test]
fn symlinks_and_fifos_are_made_in_place() {
    let (t, root) = setup();
    let dir = root.top();
    let mtime = Timespec {
        sec: 1_500_000_000,
        nsec: 5,
    };
    dir.symlink(
        b"l",
        b"../../etc/passwd",
        &Meta {
            mtime: Some(mtime),
            ..Meta::default()
        },
    )
    .unwrap();
    // Replacing works too.
    dir.symlink(
        b"l",
        b"target two",
        &Meta {
            mtime: Some(mtime),
            ..Meta::default()
        },
    )
    .unwrap();
    assert_eq!(dir.read_link(b"l").unwrap(), b"target two");
    let st = dir.stat(b"l").unwrap().unwrap();
    assert_eq!((st.kind, st.mtime), (Kind::Symlink, mtime));
    dir.mknod(
        b"p",
        Kind::Fifo,
        0,
        &Meta {
            perms: Some(0o620),
            ..Meta::default()
        },
    )
    .unwrap();
    let st = dir.stat(b"p").unwrap().unwrap();
    assert_eq!((st.kind, st.perms), (Kind::Fifo, 0o620));
    assert!(
        std::fs::symlink_metadata(t.path().join("root/p"))
            .unwrap()
            .file_type()
            .is_fifo_like()
    );
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}
impl FifoLike for std::fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

#[test]
fn remove_tree_spares_kept_entries_and_never_follows_links() {
    let (t, root) = setup();
    let base = t.path().join("root");
    std::fs::create_dir_all(base.join("d/e")).unwrap();
    std::fs::write(base.join("d/e/keep.me"), b"").unwrap();
    std::fs::write(base.join("d/gone"), b"").unwrap();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"").unwrap();
    symlink(&outside, base.join("d/link")).unwrap();
    let removed = root
        .top()
        .remove_tree(b"d", &mut |rel, _| rel.ends_with(b"keep.me"))
        .unwrap();
    let names: Vec<_> = removed
        .iter()
        .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
        .collect();
    assert_eq!(names, vec!["d/gone", "d/link"]);
    assert!(base.join("d/e/keep.me").exists());
    assert!(outside.join("precious").exists());
    root.top().remove_tree(b"d", &mut |_, _| false).unwrap();
    assert!(!base.join("d").exists());
}

#[test]
fn hard_links_and_renames() {
    let (t, root) = setup();
    let base = t.path().join("root");
    std::fs::create_dir(base.join("sub")).unwrap();
    std::fs::write(base.join("a"), b"x").unwrap();
    let sub = root.open_dir(b"sub").unwrap();
    sub.hard_link(b"b", root.top(), b"a").unwrap();
    assert_eq!(std::fs::metadata(base.join("a")).unwrap().nlink(), 2);
    sub.rename(b"b", b"c").unwrap();
    assert!(base.join("sub/c").exists());
}

/// Regression (tests/hostile.rs, CVE-2024-12747's class): a daemon's sender opened a listed
/// file by its full path, following a directory swapped for a symlink after the list was made.
/// `Root::open_file` reads only beneath the root.
#[test]
fn open_file_never_reads_through_a_symlinked_directory() {
    let (t, root) = setup();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "outside").unwrap();
    std::fs::create_dir(root.path().join("tree")).unwrap();
    std::fs::write(root.path().join("tree/secret"), "inside").unwrap();
    let mut got = String::new();
    std::io::Read::read_to_string(&mut root.open_file(b"tree/secret").unwrap(), &mut got).unwrap();
    assert_eq!(got, "inside");
    std::fs::rename(root.path().join("tree"), root.path().join("tree.real")).unwrap();
    symlink(outside.path(), root.path().join("tree")).unwrap();
    assert!(root.open_file(b"tree/secret").is_err());
    symlink(outside.path().join("secret"), root.path().join("link")).unwrap();
    assert!(root.open_file(b"link").is_err());
    assert!(root.open_file(b"").is_err());
    assert!(root.open_file(b"../secret").is_err());
    drop(t);
}

#[test]
fn a_directory_made_meanwhile_is_found_not_an_error() {
    let (t, root) = setup();
    assert!(root.top().mkdir_or_found(b"d", 0o755).unwrap());
    assert!(!root.top().mkdir_or_found(b"d", 0o755).unwrap());
    assert!(
        root.top().mkdir(b"d", 0o755).is_err(),
        "plain mkdir still refuses"
    );
    std::fs::write(t.path().join("root/f"), b"x").unwrap();
    assert!(
        root.top().mkdir_or_found(b"f", 0o755).is_err(),
        "a file is in the way"
    );
    symlink(t.path(), t.path().join("root/l")).unwrap();
    assert!(
        root.top().mkdir_or_found(b"l", 0o755).is_err(),
        "a symlink to a directory is not one"
    );
}
