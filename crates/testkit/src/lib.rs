//! Test helpers shared by every crate's tests: a source tree with every awkward thing a real
//! tree has ([`tricky_tree`]), and an exact comparison of two trees ([`diff_trees`]) covering
//! type, size, permissions, nanosecond mtime, owner, symlink target, content and hard-link
//! structure; and the proving ground's hosts ([`topology`]) joined by emulated links
//! ([`netem`]).

pub mod netem;
pub mod topology;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_OMIT};

/// Sets the modification time of `path` without following a symlink.
pub fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| panic!("utimensat {path:?}: {e}"));
}

/// Deterministic pseudo-random bytes (xorshift), so trees are reproducible.
#[must_use]
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn p(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

fn write(root: &Path, rel: &[u8], data: &[u8], mode: u32) {
    let path = p(root, rel);
    let mut f = fs::File::create(&path).unwrap_or_else(|e| panic!("create {path:?}: {e}"));
    f.write_all(data).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Builds the tricky tree in `root` (which must exist and be empty): nested directories, empty
/// files, a 10 MiB file, relative, absolute and dangling symlinks, a FIFO, hard links, modes
/// 0600/0755/sticky, and names with spaces, newlines, UTF-8 and non-UTF-8 bytes. Every entry,
/// directories and symlinks included, gets a distinct mtime with nanoseconds.
pub fn tricky_tree(root: &Path) {
    let dirs: [&[u8]; 6] = [
        b"a",
        b"a/b",
        b"a/b/c",
        b"a/b/c/d",
        b"sticky",
        b"dir with space",
    ];
    for d in dirs {
        fs::create_dir(p(root, d)).expect("mkdir");
    }
    fs::set_permissions(p(root, b"sticky"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    write(root, b"empty", b"", 0o644);
    write(root, b"a/b/c/d/empty too", b"", 0o644);
    write(root, b"big.bin", &noise(10 << 20, 1), 0o644);
    write(root, b"a/text.txt", b"hello\nworld\n", 0o644);
    write(root, b"a/b/file", &noise(70_000, 2), 0o600);
    write(root, b"run.sh", b"#!/bin/sh\necho hi\n", 0o755);
    write(root, b"sticky/inside", b"x", 0o640);
    write(root, b"with space", b"space", 0o644);
    write(root, b"new\nline", b"newline", 0o644);
    write(root, "utf8-é文字".as_bytes(), b"utf8", 0o644);
    write(root, b"bad-\xff\xfe", b"latin1", 0o644);
    write(root, b"dir with space/f", &noise(5000, 3), 0o664);
    write(root, b"hl1", b"linked content", 0o644);
    fs::hard_link(p(root, b"hl1"), p(root, b"a/hl2")).expect("link");
    symlink("a/b/file", p(root, b"rel-link")).expect("symlink");
    symlink("/etc/hostname", p(root, b"abs-link")).expect("symlink");
    symlink("does/not/exist", p(root, b"a/dangling")).expect("symlink");
    rustix::fs::mknodat(
        CWD,
        p(root, b"fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
    if rustix::process::geteuid().is_root() {
        // Only root can make devices and give files away: then the tree has both.
        rustix::fs::mknodat(
            CWD,
            p(root, b"a/null-device"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .expect("mknod");
        write(root, b"owned-by-1234", b"owner", 0o644);
        std::os::unix::fs::lchown(p(root, b"owned-by-1234"), Some(1234), Some(5678))
            .expect("chown");
        std::os::unix::fs::lchown(p(root, b"abs-link"), Some(4321), Some(8765)).expect("lchown");
    }
    stamp_times(root);
}

/// Gives every entry under `root` (and `root` itself) a distinct nanosecond mtime, deepest
/// entries first so that directory times stay as set.
pub fn stamp_times(root: &Path) {
    let mut entries = list(root);
    entries.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.iter().filter(|&&b| b == b'/').count()));
    for (i, (rel, _)) in entries.iter().enumerate() {
        let path = if rel.is_empty() {
            root.to_path_buf()
        } else {
            p(root, rel)
        };
        set_mtime(
            &path,
            1_600_000_000 + i as i64 * 1000,
            123_456_789 - i as i64,
        );
    }
}

/// Every entry under `root` as (relative path, lstat), `root` itself as the empty path.
#[must_use]
pub fn list(root: &Path) -> Vec<(Vec<u8>, fs::Metadata)> {
    let mut out = vec![(Vec::new(), fs::symlink_metadata(root).expect("lstat root"))];
    let mut stack = vec![Vec::<u8>::new()];
    while let Some(dir) = stack.pop() {
        let path = if dir.is_empty() {
            root.to_path_buf()
        } else {
            p(root, &dir)
        };
        // Entries that vanish while we look (a tree being mirrored into) are left out: the
        // caller compares again.
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("readdir {path:?}: {e}"),
        };
        for e in entries {
            let e = e.expect("dirent");
            let mut rel = dir.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(e.file_name().as_bytes());
            let md = match fs::symlink_metadata(e.path()) {
                Ok(md) => md,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("lstat: {e}"),
            };
            if md.is_dir() {
                stack.push(rel.clone());
            }
            out.push((rel, md));
        }
    }
    out
}

fn describe(root: &Path, rel: &[u8], md: &fs::Metadata) -> String {
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        "dir".to_string()
    } else if ft.is_symlink() {
        match fs::read_link(p(root, rel)) {
            Ok(t) => format!("symlink -> {t:?}"),
            Err(_) => "symlink that vanished while being read".to_string(),
        }
    } else if ft.is_file() {
        // A tree being written to (a mirror converging) may lose a temp file under us.
        match content_digest(&p(root, rel)) {
            Some((len, digest)) => format!("file {len} bytes, content {digest:032x}"),
            None => "file that vanished while being read".to_string(),
        }
    } else {
        format!("special {:o} rdev {}", md.mode() & 0o170000, md.rdev())
    };
    format!(
        "{kind}, mode {:o}, mtime {}.{:09}, owner {}:{}",
        md.mode() & 0o7777,
        md.mtime(),
        md.mtime_nsec(),
        md.uid(),
        md.gid()
    )
}

/// Length and xxh128 of a file's content, streamed: the large-file tests compare 4 GiB files.
/// `None` if the file is gone.
fn content_digest(path: &Path) -> Option<(u64, u128)> {
    use std::io::Read;
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("open {path:?}: {e}"),
    };
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {path:?}: {e}"));
        if n == 0 {
            return Some((len, hasher.digest128()));
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        len += n as u64;
    }
}

/// Hard-link groups: sets of paths that share an inode, for files with more than one link.
fn link_groups(entries: &[(Vec<u8>, fs::Metadata)]) -> Vec<Vec<Vec<u8>>> {
    let mut by_inode: HashMap<(u64, u64), Vec<Vec<u8>>> = HashMap::new();
    for (rel, md) in entries {
        if !md.is_dir() && md.nlink() > 1 {
            by_inode
                .entry((md.dev(), md.ino()))
                .or_default()
                .push(rel.clone());
        }
    }
    let mut groups: Vec<Vec<Vec<u8>>> = by_inode
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    groups
}

/// Every difference between the trees at `a` and `b`, as readable lines; empty when identical.
#[must_use]
pub fn diff_trees(a: &Path, b: &Path) -> Vec<String> {
    diff_trees_below(a, b, false)
}

/// Like [`diff_trees`]; with `ignore_root` the roots' own attributes are not compared (for
/// transfers that do not carry the root, such as `-R` or `--files-from`).
#[must_use]
pub fn diff_trees_below(a: &Path, b: &Path, ignore_root: bool) -> Vec<String> {
    let la = list(a);
    let lb = list(b);
    let keep = |r: &&(Vec<u8>, fs::Metadata)| !(ignore_root && r.0.is_empty());
    let ma: BTreeMap<&[u8], String> = la
        .iter()
        .filter(keep)
        .map(|(r, m)| (r.as_slice(), describe(a, r, m)))
        .collect();
    let mb: BTreeMap<&[u8], String> = lb
        .iter()
        .filter(keep)
        .map(|(r, m)| (r.as_slice(), describe(b, r, m)))
        .collect();
    let mut diffs = Vec::new();
    for (rel, da) in &ma {
        let name = String::from_utf8_lossy(rel);
        match mb.get(rel) {
            None => diffs.push(format!("only in {}: {name:?}", a.display())),
            Some(db) if db != da => diffs.push(format!("{name:?} differs:\n  {da}\n  {db}")),
            Some(_) => {}
        }
    }
    for rel in mb.keys() {
        if !ma.contains_key(rel) {
            diffs.push(format!(
                "only in {}: {:?}",
                b.display(),
                String::from_utf8_lossy(rel)
            ));
        }
    }
    let (ga, gb) = (link_groups(&la), link_groups(&lb));
    if ga != gb {
        diffs.push(format!("hard links differ: {ga:?} vs {gb:?}"));
    }
    diffs
}

/// Like [`diff_trees_below`] with the roots left out, and without the differences that are only
/// a directory's modification time: a directory written into but not in the file list keeps
/// the time of those writes, which differs from one run to the next.
#[must_use]
pub fn diff_trees_but_dir_times(a: &Path, b: &Path) -> Vec<String> {
    let without_time = |line: &str| line.split(", mtime").next().unwrap_or("").to_owned();
    diff_trees_below(a, b, true)
        .into_iter()
        .filter(|d| {
            let lines: Vec<&str> = d.lines().skip(1).collect();
            !(lines.len() == 2
                && lines.iter().all(|l| l.trim_start().starts_with("dir,"))
                && lines.first().map(|l| without_time(l)) == lines.get(1).map(|l| without_time(l)))
        })
        .collect()
}

/// Panics with every difference if the trees differ.
pub fn assert_same_tree(a: &Path, b: &Path) {
    assert_same_tree_below(a, b, false);
}

/// Panics with every difference if the trees differ, roots excluded when `ignore_root`.
pub fn assert_same_tree_below(a: &Path, b: &Path, ignore_root: bool) {
    let diffs = diff_trees_below(a, b, ignore_root);
    assert!(
        diffs.is_empty(),
        "trees {} and {} differ:\n{}",
        a.display(),
        b.display(),
        diffs.join("\n")
    );
}

/// Edits a tricky tree the way a working tree changes: a file rewritten in the middle, one
/// appended to, one truncated, a file and a directory deleted, a file and a directory renamed,
/// a symlink retargeted, a mode changed, new entries added.
pub fn mutate(root: &Path) {
    let big = p(root, b"big.bin");
    let mut data = fs::read(&big).expect("read big");
    for b in &mut data[5_000_000..5_010_000] {
        *b = b.wrapping_add(1);
    }
    fs::write(&big, &data).expect("write big");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(p(root, b"a/text.txt"))
        .expect("open");
    f.write_all(b"more\n").expect("append");
    fs::write(p(root, b"a/b/file"), noise(30_000, 2)).expect("truncate");
    fs::remove_file(p(root, b"with space")).expect("rm");
    fs::remove_dir_all(p(root, b"a/b/c")).expect("rm -r");
    fs::rename(p(root, b"run.sh"), p(root, b"a/run-renamed.sh")).expect("mv");
    fs::rename(p(root, b"dir with space"), p(root, b"renamed dir")).expect("mv dir");
    fs::remove_file(p(root, b"rel-link")).expect("rm link");
    symlink("a/text.txt", p(root, b"rel-link")).expect("symlink");
    fs::set_permissions(p(root, b"hl1"), fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::create_dir(p(root, b"fresh")).expect("mkdir");
    write(root, b"fresh/new file", b"brand new", 0o644);
    stamp_times(root);
}
