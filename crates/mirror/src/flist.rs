//! The sender's file list: which source entries a transfer covers, under which names, in rsync's
//! order (`flist.c send_file_list`, sorted as `f_name_cmp` sorts for protocol ≥ 29).
//!
//! Naming follows rsync: `SRC/` (or `SRC/.`) sends the contents of `SRC` under `.`; `SRC` sends
//! the directory itself under its last component. With `-R` the whole path given is kept
//! (a `/./` in it marks where the kept part starts) and its parent directories are sent as
//! "implied" directories whose other contents are left alone. `--files-from` names are `-R`
//! names below the single source directory.

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use filter::{FilterList, Side};
use fsx::{Kind, Persist, Root, Stat, Timespec};

use crate::options::Options;

/// One entry of the file list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the transfer root, `/`-separated; `.` is the root itself.
    pub name: Vec<u8>,
    /// Index of the source base directory in [`FileList::bases`].
    pub base: u32,
    /// The entry's type; `None` for a missing argument to delete (`--delete-missing-args`).
    pub kind: Option<Kind>,
    /// Size in bytes (regular files; symlinks carry their target's length).
    pub size: u64,
    /// Modification time.
    pub mtime: Timespec,
    /// Permission bits.
    pub perms: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number of a device node.
    pub rdev: u64,
    /// Target of a symlink.
    pub link_target: Option<Vec<u8>>,
    /// Whether `--delete` may scan this directory (false for implied and unrecursed ones).
    pub content_dir: bool,
    /// A directory named on the command line (or in `--files-from`) whose contents are listed.
    pub top_dir: bool,
    /// A parent directory sent only because a `-R` name lies below it.
    pub implied_dir: bool,
    /// `(dev, ino)` of a file with several links, with `-H`.
    pub hardlink: Option<(u64, u64)>,
}

impl FileEntry {
    fn from_stat(name: Vec<u8>, base: u32, st: &Stat) -> Self {
        FileEntry {
            name,
            base,
            kind: Some(st.kind),
            size: if st.kind == Kind::File { st.size } else { 0 },
            mtime: st.mtime,
            perms: st.perms,
            uid: st.uid,
            gid: st.gid,
            rdev: st.rdev,
            link_target: None,
            content_dir: false,
            top_dir: false,
            implied_dir: false,
            hardlink: None,
        }
    }

    /// Whether this entry is a directory.
    #[must_use]
    pub fn is_dir(&self) -> bool {
        self.kind == Some(Kind::Dir)
    }

    /// The parent path and the last component (`("a/b", "c")`; `(".", "c")` at the top).
    #[must_use]
    pub fn split_name(&self) -> (&[u8], &[u8]) {
        split_path(&self.name)
    }
}

/// One source argument as the user gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceArg(pub Vec<u8>);

impl SourceArg {
    /// From a path.
    #[must_use]
    pub fn new(path: impl AsRef<OsStr>) -> Self {
        SourceArg(path.as_ref().as_bytes().to_vec())
    }
}

/// The sorted list of everything a transfer covers.
#[derive(Debug, Default)]
pub struct FileList {
    /// Source base directories; an entry's source path is `bases[entry.base] / entry.name`.
    pub bases: Vec<PathBuf>,
    /// Entries in rsync's order, without duplicates.
    pub entries: Vec<FileEntry>,
    /// Problems met while building the list (missing arguments, unreadable directories).
    pub errors: Vec<String>,
    /// Messages that are not errors ("skipping directory").
    pub notes: Vec<String>,
}

impl FileList {
    /// The source path of an entry.
    #[must_use]
    pub fn source_path(&self, entry: &FileEntry) -> PathBuf {
        let base = self
            .bases
            .get(entry.base as usize)
            .map_or(Path::new("."), PathBuf::as_path);
        if entry.name == b"." {
            base.to_path_buf()
        } else {
            base.join(OsStr::from_bytes(&entry.name))
        }
    }
}

/// Orders two paths as rsync's file list does: component by component, a directory's contents
/// right after it, and within one directory non-directories before directories.
#[must_use]
pub fn compare(a: &[u8], a_dir: bool, b: &[u8], b_dir: bool) -> Ordering {
    if a == b"." || b == b"." {
        return (a != b".").cmp(&(b != b"."));
    }
    let mut ai = a.split(|&c| c == b'/').peekable();
    let mut bi = b.split(|&c| c == b'/').peekable();
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                // A component is a directory unless it is the last one of a non-directory.
                let x_dir = ai.peek().is_some() || a_dir;
                let y_dir = bi.peek().is_some() || b_dir;
                let ord = x_dir.cmp(&y_dir).then_with(|| x.cmp(y));
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    if prefix == b"." || prefix.is_empty() {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(prefix.len() + 1 + name.len());
    out.extend_from_slice(prefix);
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

struct Builder<'a> {
    opts: &'a Options,
    filters: &'a FilterList,
    list: FileList,
    recurse: bool,
}

fn lstat_path(path: &Path) -> std::io::Result<Stat> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().map_or(&b"."[..], OsStrExt::as_bytes);
    if name == b"." || path.as_os_str().as_bytes().ends_with(b"/") {
        // A name ending in '/' asks to follow a symlink to the directory.
        let root = Root::open(path, Persist::Buffered).map_err(keep_kind)?;
        return root.top().stat_self().map_err(keep_kind);
    }
    let root = Root::open(parent, Persist::Buffered).map_err(keep_kind)?;
    match root.top().stat(name) {
        Ok(Some(st)) => Ok(st),
        Ok(None) => Err(std::io::ErrorKind::NotFound.into()),
        Err(e) => Err(keep_kind(e)),
    }
}

/// An `fsx` error as an I/O error of the same kind, so a missing parent directory reads as
/// "not found" like a missing file.
fn keep_kind(e: fsx::FsError) -> std::io::Error {
    let kind = e.raw_os_error().map_or(std::io::ErrorKind::Other, |n| {
        std::io::Error::from_raw_os_error(n).kind()
    });
    std::io::Error::new(kind, e)
}

impl Builder<'_> {
    fn add_base(&mut self, base: PathBuf) -> u32 {
        if let Some(i) = self.list.bases.iter().position(|b| *b == base) {
            return u32::try_from(i).unwrap_or(0);
        }
        self.list.bases.push(base);
        u32::try_from(self.list.bases.len() - 1).unwrap_or(0)
    }

    fn wanted(&mut self, name: &[u8], st: &Stat) -> bool {
        if name != b"."
            && self
                .filters
                .is_excluded(name, st.kind == Kind::Dir, Side::Sender)
        {
            return false;
        }
        let skip = match st.kind {
            Kind::Symlink => !self.opts.links,
            Kind::CharDev | Kind::BlockDev => !self.opts.devices,
            Kind::Fifo | Kind::Socket => !self.opts.specials,
            Kind::File | Kind::Dir => false,
        };
        if skip {
            self.list.notes.push(format!(
                "skipping non-regular file \"{}\"",
                String::from_utf8_lossy(name)
            ));
        }
        !skip
    }

    /// Adds the entry `name` (below base `base`), whose lstat is `st`, read from `dir`.
    fn add_entry(
        &mut self,
        base: u32,
        name: Vec<u8>,
        st: &Stat,
        link_target: Option<Vec<u8>>,
    ) -> usize {
        let mut entry = FileEntry::from_stat(name, base, st);
        if st.kind == Kind::Symlink {
            entry.size = link_target.as_ref().map_or(0, |t| t.len() as u64);
            entry.link_target = link_target;
        }
        if self.opts.hard_links && st.kind != Kind::Dir && st.nlink > 1 {
            entry.hardlink = Some((st.dev, st.ino));
        }
        self.list.entries.push(entry);
        self.list.entries.len() - 1
    }

    /// Adds the contents of `dir` (named `prefix` in the list) in rsync's order — its
    /// non-directories by name, then each subdirectory by name followed by its own contents — so
    /// that a single source needs no sorting afterwards.
    fn walk(&mut self, base: u32, dir: &fsx::Dir, prefix: &[u8]) {
        let names = match dir.names() {
            Ok(n) => n,
            Err(e) => {
                self.list
                    .errors
                    .push(format!("opendir {:?} failed: {e}", dir.path()));
                return;
            }
        };
        let mut children = Vec::with_capacity(names.len());
        for child in names {
            match dir.stat(&child) {
                Ok(Some(st)) => children.push((child, st)),
                Ok(None) => {} // vanished while listing
                Err(e) => self.list.errors.push(e.to_string()),
            }
        }
        children.sort_unstable_by(|(a, sa), (b, sb)| {
            (sa.kind == Kind::Dir)
                .cmp(&(sb.kind == Kind::Dir))
                .then_with(|| a.cmp(b))
        });
        for (child, st) in children {
            let name = join(prefix, &child);
            if !self.wanted(&name, &st) {
                continue;
            }
            let target = if st.kind == Kind::Symlink {
                match dir.read_link(&child) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        self.list.errors.push(e.to_string());
                        continue;
                    }
                }
            } else {
                None
            };
            let idx = self.add_entry(base, name.clone(), &st, target);
            if st.kind == Kind::Dir && self.recurse {
                if let Some(e) = self.list.entries.get_mut(idx) {
                    e.content_dir = true;
                }
                match dir.open_dir(&child) {
                    Ok(sub) => self.walk(base, &sub, &name),
                    Err(e) => self.list.errors.push(e.to_string()),
                }
            }
        }
    }

    /// One top-level argument: `base` holds it, `name` is what it is called in the list.
    fn add_top(&mut self, base: PathBuf, name: Vec<u8>, contents: bool, implied: &[Vec<u8>]) {
        let base_idx = self.add_base(base.clone());
        let path = if name == b"." {
            base.clone()
        } else {
            let mut p = base
                .join(OsStr::from_bytes(&name))
                .into_os_string()
                .into_vec();
            if contents {
                p.push(b'/');
            }
            PathBuf::from(std::ffi::OsString::from_vec(p))
        };
        for dir in implied {
            match lstat_path(&base.join(OsStr::from_bytes(dir))) {
                Ok(st) if st.kind == Kind::Dir => {
                    let idx = self.add_entry(base_idx, dir.clone(), &st, None);
                    if let Some(e) = self.list.entries.get_mut(idx) {
                        e.implied_dir = true;
                    }
                }
                _ => {}
            }
        }
        let st = match lstat_path(&path) {
            Ok(st) => st,
            // A path under a directory that is gone, or that is now a file, does not exist
            // either (rsync reports the second as an error; a real-time batch naming a path
            // that a later change replaced must not fail on it forever).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                if self.opts.delete_missing_args {
                    self.list.entries.push(FileEntry {
                        kind: None,
                        ..FileEntry::from_stat(name, base_idx, &missing_stat())
                    });
                } else if !self.opts.ignore_missing_args {
                    let why = if e.kind() == std::io::ErrorKind::NotFound {
                        "No such file or directory (2)"
                    } else {
                        "Not a directory (20)"
                    };
                    self.list
                        .errors
                        .push(format!("link_stat {path:?} failed: {why}"));
                }
                return;
            }
            Err(e) => {
                self.list
                    .errors
                    .push(format!("link_stat {path:?} failed: {e}"));
                return;
            }
        };
        if name != b"." && !self.wanted(&name, &st) {
            return;
        }
        if st.kind == Kind::Dir && !self.recurse && !self.opts.dirs {
            self.list.notes.push(format!(
                "skipping directory {}",
                String::from_utf8_lossy(&name)
            ));
            return;
        }
        let target = if st.kind == Kind::Symlink {
            std::fs::read_link(&path)
                .ok()
                .map(|t| t.into_os_string().into_vec())
        } else {
            None
        };
        let idx = self.add_entry(base_idx, name.clone(), &st, target);
        if st.kind == Kind::Dir && self.recurse {
            if let Some(e) = self.list.entries.get_mut(idx) {
                e.content_dir = true;
                e.top_dir = true;
            }
            match Root::open(&path, Persist::Buffered) {
                Ok(root) => self.walk(base_idx, root.top(), &name),
                Err(e) => self.list.errors.push(e.to_string()),
            }
        }
    }
}

fn missing_stat() -> Stat {
    Stat {
        kind: Kind::File,
        perms: 0,
        size: 0,
        uid: 0,
        gid: 0,
        mtime: Timespec::default(),
        dev: 0,
        ino: 0,
        nlink: 0,
        rdev: 0,
    }
}

/// Splits a `-R` path into (base, kept name): `a/./b/c` → (`a`, `b/c`); `/x/y` → (`/`, `x/y`).
fn relative_split(arg: &[u8]) -> (PathBuf, Vec<u8>) {
    if let Some(i) = arg.windows(3).position(|w| w == b"/./") {
        let base = arg.get(..i).unwrap_or_default();
        let base = if base.is_empty() { &b"/"[..] } else { base };
        return (
            PathBuf::from(OsStr::from_bytes(base)),
            arg.get(i + 3..).unwrap_or_default().to_vec(),
        );
    }
    if let Some(rest) = arg.strip_prefix(b"./") {
        return (PathBuf::from("."), rest.to_vec());
    }
    let trimmed: &[u8] = {
        let mut t = arg;
        while let Some(r) = t.strip_prefix(b"/") {
            t = r;
        }
        t
    };
    let base = if arg.starts_with(b"/") { "/" } else { "." };
    (PathBuf::from(base), trimmed.to_vec())
}

fn clean_components(name: &[u8]) -> Vec<u8> {
    let parts: Vec<&[u8]> = name
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .collect();
    if parts.is_empty() {
        return b".".to_vec();
    }
    parts.join(&b'/')
}

/// Builds the sorted file list for `sources`. With `files_from`, `sources` must hold exactly
/// one directory and the names are read below it.
#[must_use]
pub fn build(
    sources: &[SourceArg],
    files_from: Option<&[Vec<u8>]>,
    opts: &Options,
    filters: &FilterList,
) -> FileList {
    let mut b = Builder {
        opts,
        filters,
        list: FileList::default(),
        recurse: opts.recursive,
    };
    let relative = opts.relative || files_from.is_some();
    let args: Vec<Vec<u8>> = match (files_from, sources.first()) {
        (Some(names), Some(dir)) => names
            .iter()
            .map(|n| {
                let mut a = dir.0.clone();
                if !a.ends_with(b"/") {
                    a.push(b'/');
                }
                a.extend_from_slice(b"./");
                a.extend_from_slice(n.strip_prefix(b"/").unwrap_or(n));
                a
            })
            .collect(),
        _ => sources.iter().map(|s| s.0.clone()).collect(),
    };
    let args_count = args.len();
    for arg in args {
        let contents = arg.ends_with(b"/") || arg.ends_with(b"/.") || arg == b".";
        if relative {
            let (base, name) = relative_split(&arg);
            let name = clean_components(&name);
            let mut implied = Vec::new();
            if name != b"." {
                let comps: Vec<&[u8]> = name.split(|&c| c == b'/').collect();
                for n in 1..comps.len() {
                    implied.push(comps.get(..n).unwrap_or_default().join(&b'/'));
                }
            }
            b.add_top(base, name, contents, &implied);
        } else if contents {
            b.add_top(
                PathBuf::from(OsStr::from_bytes(&arg)),
                b".".to_vec(),
                true,
                &[],
            );
        } else {
            let path = PathBuf::from(OsStr::from_bytes(&arg));
            let name = path
                .file_name()
                .map_or_else(|| b".".to_vec(), |n| n.as_bytes().to_vec());
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            b.add_top(parent, name, false, &[]);
        }
    }
    let mut list = b.list;
    // One plain source is walked in order already; several, or -R with its implied
    // directories, interleave and must be merged.
    if args_count > 1 || relative {
        list.entries
            .sort_by(|x, y| compare(&x.name, x.is_dir(), &y.name, y.is_dir()));
    }
    // rsync keeps one entry per name; a directory that is also named keeps the named one's
    // flags and is implied only if every mention was (`flist.c flist_sort_and_clean`).
    let mut deduped: Vec<FileEntry> = Vec::with_capacity(list.entries.len());
    for e in list.entries {
        match deduped.last_mut() {
            Some(prev) if prev.name == e.name => {
                prev.content_dir |= e.content_dir;
                prev.top_dir |= e.top_dir;
                prev.implied_dir &= e.implied_dir;
            }
            _ => deduped.push(e),
        }
    }
    list.entries = deduped;
    list
}

/// Restates a list's `--delete-missing-args` entries as deletions every rsync receiver
/// understands, and returns the receiver rules that go with them.
///
/// A missing name travels as an entry of mode 0, which the receivers of rsync 3.4.1 to 3.4.3,
/// and Debian's 3.2.7-1+deb12u5 with the same fixes backported, refuse ("invalid file mode 00",
/// exit 2; fixed in 3.4.4, RsyncProject/rsync#910). The same deletion in words any receiver
/// knows: the nearest parent that still exists goes as a directory whose contents are listed,
/// so that `--delete` looks into it, and receiver-side rules spare all its other entries:
/// `+r /parent/name` for each name to delete, then `-r /parent/*` (rsync's `R` and `P`, kept
/// by `--delete-excluded` too). The caller must then ask for `--delete`.
///
/// Without `force` a name that is a non-empty directory on the receiver stays, as with
/// `--delete-missing-args` ("cannot delete non-empty directory"): `-r /parent/name/**` spares
/// what it holds. A name below a parent that is now a file is dropped: that file replaces the
/// directory.
pub fn missing_as_deletions(list: &mut FileList, force: bool) -> Vec<Vec<u8>> {
    let (missing, kept): (Vec<FileEntry>, Vec<FileEntry>) = std::mem::take(&mut list.entries)
        .into_iter()
        .partition(|e| e.kind.is_none());
    list.entries = kept;
    let mut risk: Vec<Vec<u8>> = Vec::new();
    let mut parents: Vec<Vec<u8>> = Vec::new();
    for gone in missing {
        let mut name = gone.name.clone();
        let parent = loop {
            let (parent, _) = split_path(&name);
            let parent = parent.to_vec();
            match list.entries.iter().position(|e| e.name == parent) {
                Some(i) => break list.entries.get(i).filter(|e| e.is_dir()).map(|_| parent),
                None if parent == b"." => {
                    // The top is always there: it joins the list to be looked into.
                    let top = list.bases.get(gone.base as usize).map(|b| lstat_path(b));
                    if let Some(Ok(st)) =
                        top.filter(|t| t.as_ref().is_ok_and(|s| s.kind == Kind::Dir))
                    {
                        list.entries
                            .insert(0, FileEntry::from_stat(b".".to_vec(), gone.base, &st));
                        break Some(parent);
                    }
                    break None;
                }
                // Not listed: gone at the source as well, so it is the one to delete.
                None => name = parent,
            }
        };
        let Some(parent) = parent else { continue };
        if let Some(dir) = list.entries.iter_mut().find(|e| e.name == parent) {
            dir.content_dir = true;
            dir.implied_dir = false;
        }
        if !risk.contains(&name) {
            risk.push(name);
        }
        if !parents.contains(&parent) {
            parents.push(parent);
        }
    }
    let mut rules: Vec<Vec<u8>> = risk
        .iter()
        .map(|n| {
            let mut r = b"+r /".to_vec();
            r.extend_from_slice(&filter::literal(n, filter::is_wildcard(n)));
            r
        })
        .collect();
    for n in risk.iter().filter(|_| !force) {
        let mut r = b"-r /".to_vec();
        r.extend_from_slice(&filter::literal(n, true));
        r.extend_from_slice(b"/**");
        rules.push(r);
    }
    for p in &parents {
        let mut all = if p == b"." {
            Vec::new()
        } else {
            filter::literal(p, true)
        };
        if !all.is_empty() {
            all.push(b'/');
        }
        let mut r = b"-r /".to_vec();
        r.extend_from_slice(&all);
        r.push(b'*');
        rules.push(r);
    }
    rules
}

/// A list name's parent and last component: `("a/b", "c")` for `a/b/c`, `(".", "c")` at the
/// top.
#[must_use]
pub fn split_path(name: &[u8]) -> (&[u8], &[u8]) {
    match name.iter().rposition(|&c| c == b'/') {
        Some(i) => (
            name.get(..i).unwrap_or_default(),
            name.get(i + 1..).unwrap_or_default(),
        ),
        None => (b".", name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsync_order() {
        let mut v = [
            ("sub2/y", false),
            ("sub2", true),
            ("b", false),
            ("sub/x", false),
            (".", true),
            ("sub", true),
            ("a", false),
            ("z", false),
        ];
        v.sort_by(|a, b| compare(a.0.as_bytes(), a.1, b.0.as_bytes(), b.1));
        let names: Vec<_> = v.iter().map(|x| x.0).collect();
        assert_eq!(
            names,
            [".", "a", "b", "z", "sub", "sub/x", "sub2", "sub2/y"]
        );
    }

    #[test]
    fn missing_names_become_deletions_in_their_nearest_listed_parent() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        std::fs::write(t.path().join("a/b/kept"), b"x").unwrap();
        let names: Vec<Vec<u8>> = [
            &b"a/b/kept"[..],
            b"a/b/gone",
            b"a/b/x[1]",
            b"a/sub/deep/gone",
            b"top-gone",
        ]
        .iter()
        .map(|n| n.to_vec())
        .collect();
        let opts = Options {
            delete_missing_args: true,
            relative: true,
            dirs: true,
            ..Options::default()
        };
        let mut src = t.path().as_os_str().as_bytes().to_vec();
        src.push(b'/');
        let mut list = build(
            &[SourceArg(src.clone())],
            Some(&names),
            &opts,
            &FilterList::default(),
        );
        assert_eq!(list.entries.iter().filter(|e| e.kind.is_none()).count(), 4);
        let mut again = build(
            &[SourceArg(src.clone())],
            Some(&names),
            &opts,
            &FilterList::default(),
        );
        let spared = missing_as_deletions(&mut again, false);
        assert!(
            spared.contains(&b"-r /a/b/x\\[1]/**".to_vec()),
            "without --force what a directory holds is spared, so it stays"
        );
        let rules = missing_as_deletions(&mut list, true);
        let text: Vec<String> = rules
            .iter()
            .map(|r| String::from_utf8_lossy(r).into())
            .collect();
        assert_eq!(
            text,
            [
                "+r /top-gone",
                "+r /a/b/gone",
                "+r /a/b/x\\[1]",
                "+r /a/sub",
                "-r /*",
                "-r /a/b/*",
                "-r /a/*",
            ],
            "every deletion named before anything is spared"
        );
        assert!(
            list.entries.iter().all(|e| e.kind.is_some()),
            "no mode-0 entry is left"
        );
        let listed: Vec<(&[u8], bool)> = list
            .entries
            .iter()
            .map(|e| (e.name.as_slice(), e.content_dir))
            .collect();
        assert_eq!(
            listed,
            [
                (&b"."[..], true),
                (b"a", true),
                (b"a/b", true),
                (b"a/b/kept", false)
            ],
            "the parents are looked into; the top joins the list"
        );
    }

    #[test]
    fn relative_names() {
        assert_eq!(
            relative_split(b"a/./b/c"),
            (PathBuf::from("a"), b"b/c".to_vec())
        );
        assert_eq!(
            relative_split(b"/x/y"),
            (PathBuf::from("/"), b"x/y".to_vec())
        );
        assert_eq!(
            relative_split(b"x/y"),
            (PathBuf::from("."), b"x/y".to_vec())
        );
        assert_eq!(clean_components(b"a//./b/"), b"a/b".to_vec());
    }
}
