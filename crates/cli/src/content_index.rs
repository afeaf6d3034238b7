//! Content shortcuts for `rtsync run` on the rtsync stream: which source files of a given size
//! exist, and (once asked) what their content hashes to, so that a new file with the content
//! of one the target already holds (a copy, a move across directories seen as a delete and a
//! create, a restore) is made on the target from that file instead of being sent
//! ([`protocol::stream::Frame::Copy`]).
//!
//! The index describes the source, not the target: an entry says "this path holds this
//! content on the source". The target gets there by replicating, so the same path there
//! usually holds the same content; when it does not (not landed yet, changed by hand, excluded),
//! the target sees that its SHA-256 differs and reports the copy missed, and the file is sent
//! after all. So a wrong guess costs a round trip, never a wrong file.
//!
//! Only files of at least [`SHORTCUT_MIN`] bytes are worth it. Hashing is lazy: nothing is read
//! until a new file arrives with the size of an indexed one, and a digest is kept with the
//! size, time and inode it was taken at, so a file changed since is hashed again or dropped.
//! The index starts from one walk of the source and follows the batches (what they put,
//! delete and rename); it is bounded to [`MAX_ENTRIES`] files.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use protocol::stream::DIGEST_LEN;
use sha2::Digest as _;

/// Smaller files are sent: reading and hashing them costs about what sending them does.
pub const SHORTCUT_MIN: u64 = 64 << 10;

/// How many files the index holds at most (about 200 bytes each).
pub const MAX_ENTRIES: usize = 100_000;

/// How many candidates of the right size are hashed for one new file at most.
const CANDIDATES: usize = 4;

/// A SHA-256 digest of a file's content.
pub type Digest = [u8; DIGEST_LEN];

/// What makes a file's digest still valid: the file is the same one, unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub size: u64,
    pub mtime: (i64, i64),
    pub ino: u64,
}

impl Version {
    #[must_use]
    pub fn of(md: &std::fs::Metadata) -> Version {
        Version {
            size: md.len(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ino: md.ino(),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    version: Version,
    digest: Option<Digest>,
}

/// The index (pure: every file read happens in [`find_copy`] and [`walk`]).
#[derive(Debug, Default)]
pub struct ContentIndex {
    /// Ordered, so that a directory's entries are one range.
    by_path: BTreeMap<PathBuf, Entry>,
    /// Paths per size, in the order noted; may hold stale paths, checked against `by_path`
    /// when read.
    by_size: HashMap<u64, SizeList>,
    /// The candidate each planned copy was made from, to discredit it when the copy misses.
    copied_from: HashMap<PathBuf, PathBuf>,
}

/// The paths noted with one size, and how many there were after the last sweep of stale ones.
#[derive(Debug, Default)]
struct SizeList {
    paths: Vec<PathBuf>,
    swept: usize,
}

impl SizeList {
    /// Adds `path`, sweeping out stale paths once they may be half the list (so the sweeps
    /// cost a constant per path added).
    fn push(&mut self, path: PathBuf, live: impl Fn(&PathBuf) -> bool) {
        self.paths.push(path);
        if self.paths.len() > 64.max(2 * self.swept) {
            self.paths.retain(live);
            self.swept = self.paths.len();
        }
    }
}

/// The index as the run's workers share it.
pub type Shared = Arc<Mutex<ContentIndex>>;

impl ContentIndex {
    /// Number of files indexed.
    #[must_use]
    fn len(&self) -> usize {
        self.by_path.len()
    }

    /// Whether nothing is indexed.
    #[must_use]
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }

    /// `rel` now holds a regular file of `version` (its digest, when known). Small files are
    /// not indexed; a full index takes no new paths.
    pub fn note(&mut self, rel: &Path, version: Version, digest: Option<Digest>) {
        if version.size < SHORTCUT_MIN {
            self.forget_one(rel);
            return;
        }
        if self.by_path.len() >= MAX_ENTRIES && !self.by_path.contains_key(rel) {
            return;
        }
        // Noted again unchanged: what was learned of it stays.
        let digest = digest.or_else(|| {
            self.by_path
                .get(rel)
                .filter(|e| e.version == version)
                .and_then(|e| e.digest)
        });
        let old = self
            .by_path
            .insert(rel.to_path_buf(), Entry { version, digest });
        if old.is_none_or(|e| e.version.size != version.size) {
            let by_path = &self.by_path;
            let size = version.size;
            self.by_size
                .entry(size)
                .or_default()
                .push(rel.to_path_buf(), |p| {
                    by_path.get(p).is_some_and(|e| e.version.size == size)
                });
        }
    }

    fn forget_one(&mut self, rel: &Path) {
        self.by_path.remove(rel);
    }

    /// `rel` (a file, or a directory with everything below it) is gone.
    pub fn forget(&mut self, rel: &Path) {
        let below: Vec<PathBuf> = self
            .by_path
            .range(rel.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(rel))
            .map(|(p, _)| p.clone())
            .collect();
        for p in below {
            self.by_path.remove(&p);
        }
    }

    /// `from` (a file or a directory) is now at `to`.
    pub fn rename(&mut self, from: &Path, to: &Path) {
        self.forget(to);
        let moved: Vec<(PathBuf, Entry)> = self
            .by_path
            .range(from.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(from))
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect();
        for (p, e) in moved {
            self.by_path.remove(&p);
            let Ok(rest) = p.strip_prefix(from) else {
                continue;
            };
            let new = if rest.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(rest)
            };
            let size = e.version.size;
            self.by_path.insert(new.clone(), e);
            let by_path = &self.by_path;
            self.by_size.entry(size).or_default().push(new, |p| {
                by_path.get(p).is_some_and(|e| e.version.size == size)
            });
        }
    }

    /// Indexed files of `size` other than `rel`, first noted first (likelier to be on the
    /// target already), with their versions and any digest known; a bounded number.
    fn candidates(&self, size: u64, rel: &Path) -> Vec<(PathBuf, Version, Option<Digest>)> {
        let mut found: Vec<(PathBuf, Version, Option<Digest>)> = Vec::new();
        for p in self.by_size.get(&size).map_or(&[][..], |l| &l.paths) {
            if found.len() >= 4 * CANDIDATES {
                break;
            }
            if p.as_path() == rel || found.iter().any(|(f, ..)| f == p) {
                continue;
            }
            if let Some(e) = self.by_path.get(p).filter(|e| e.version.size == size) {
                found.push((p.clone(), e.version, e.digest));
            }
        }
        found
    }

    /// A copy to `to` was planned from `from`.
    fn planned_copy(&mut self, to: &Path, from: &Path) {
        if self.copied_from.len() >= 10_000 {
            self.copied_from.clear();
        }
        self.copied_from
            .insert(to.to_path_buf(), from.to_path_buf());
    }

    /// The target reported the copy to `to` missed: its source there is not what the index
    /// says, so it is no longer offered (the file is sent; a next copy tries another one).
    pub fn discredit(&mut self, to: &Path) {
        if let Some(from) = self.copied_from.remove(to) {
            self.forget_one(&from);
        }
    }
}

/// The SHA-256 of `path`'s content, if it is still the file of `version` once read.
fn hash_file(path: &Path, version: Version) -> Option<Digest> {
    let mut f = File::open(path).ok()?;
    if Version::of(&f.metadata().ok()?) != version {
        return None;
    }
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(buf.get(..n)?),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    // Rewritten while read: the digest describes no version of it.
    if Version::of(&std::fs::symlink_metadata(path).ok()?) != version {
        return None;
    }
    Some(hasher.finalize().into())
}

/// A file on the source (and so, likely, on the target) holding the content of new file
/// `rel` (of `version`), and that content's digest; `None` when no indexed file of its size
/// holds it. Reads the new file and up to [`CANDIDATES`] candidates not hashed before; the
/// lock is not held while reading.
pub fn find_copy(
    index: &Shared,
    src: &Path,
    rel: &Path,
    version: Version,
) -> Option<(PathBuf, Digest)> {
    if version.size < SHORTCUT_MIN {
        return None;
    }
    let (candidates, itself) = {
        let ix = index.lock().ok()?;
        let itself = ix
            .by_path
            .get(rel)
            .is_some_and(|e| e.version.size == version.size && e.version != version);
        (ix.candidates(version.size, rel), itself)
    };
    if candidates.is_empty() && !itself {
        return None;
    }
    let known = index
        .lock()
        .ok()?
        .by_path
        .get(rel)
        .filter(|e| e.version == version)
        .and_then(|e| e.digest);
    let digest = match known {
        Some(d) => d,
        None => hash_file(&src.join(rel), version)?,
    };
    let mut hashed = 0;
    for (path, was, known) in candidates {
        let full = src.join(&path);
        let now = std::fs::symlink_metadata(&full)
            .ok()
            .filter(std::fs::Metadata::is_file);
        if now.as_ref().map(Version::of) != Some(was) {
            // Changed or gone since noted: whatever it holds now comes with its own event.
            if let Ok(mut ix) = index.lock() {
                ix.forget_one(&path);
            }
            continue;
        }
        let theirs = match known {
            Some(d) => d,
            None if hashed < CANDIDATES => {
                hashed += 1;
                let Some(d) = hash_file(&full, was) else {
                    continue;
                };
                if let Ok(mut ix) = index.lock() {
                    ix.note(&path, was, Some(d));
                }
                d
            }
            None => continue,
        };
        if theirs == digest {
            if let Ok(mut ix) = index.lock() {
                ix.note(rel, version, Some(digest));
                ix.planned_copy(rel, &path);
            }
            return Some((path, digest));
        }
    }
    // The same path, rewritten (or deleted and restored) at its old size: the target's old
    // version may hold this content already, which only the target can tell when the old
    // digest is unknown.
    let mut ix = index.lock().ok()?;
    let old = ix.by_path.get(rel).cloned();
    ix.note(rel, version, Some(digest));
    match old {
        // Noted at this very version by another target's plan, it says nothing of an old one.
        Some(e)
            if e.version.size == version.size
                && e.version != version
                && e.digest.is_none_or(|d| d == digest) =>
        {
            ix.planned_copy(rel, rel);
            Some((rel.to_path_buf(), digest))
        }
        _ => None,
    }
}

/// Indexes the regular files below `src` (not following symlinks, skipping what `excluded`
/// says the targets do not get), until the index is full.
pub fn walk(index: &Shared, src: &Path, excluded: &dyn Fn(&[u8], bool) -> bool) {
    let mut dirs = vec![PathBuf::new()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(src.join(&dir)) else {
            continue;
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let rel = dir.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if excluded(rel.as_os_str().as_bytes(), kind.is_dir()) {
                continue;
            }
            if kind.is_dir() {
                dirs.push(rel);
            } else if kind.is_file()
                && let Ok(md) = entry.metadata()
                && md.len() >= SHORTCUT_MIN
            {
                found.push((rel, Version::of(&md)));
            }
        }
        let Ok(mut ix) = index.lock() else {
            return;
        };
        for (rel, version) in found {
            // Noted by a batch meanwhile: that entry is newer.
            if !ix.by_path.contains_key(&rel) {
                ix.note(&rel, version, None);
            }
        }
        if ix.len() >= MAX_ENTRIES {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(size: u64, ino: u64) -> Version {
        Version {
            size,
            mtime: (1, 2),
            ino,
        }
    }

    #[test]
    fn small_files_are_not_indexed_and_a_shrunk_one_is_dropped() {
        let mut ix = ContentIndex::default();
        ix.note(Path::new("small"), v(100, 1), None);
        assert!(ix.is_empty());
        ix.note(Path::new("big"), v(SHORTCUT_MIN, 2), None);
        assert_eq!(ix.len(), 1);
        ix.note(Path::new("big"), v(10, 2), None);
        assert!(ix.is_empty());
    }

    #[test]
    fn candidates_are_same_size_others_first_noted_first_without_stale_paths() {
        let mut ix = ContentIndex::default();
        let s = SHORTCUT_MIN + 5;
        ix.note(Path::new("b"), v(s, 1), None);
        ix.note(Path::new("a"), v(s, 2), Some([7; DIGEST_LEN]));
        ix.note(Path::new("c"), v(s + 1, 3), None);
        ix.note(Path::new("new"), v(s, 4), None);
        // b changed size since: its old listing under `s` is stale.
        ix.note(Path::new("b"), v(s + 1, 1), None);
        let found = ix.candidates(s, Path::new("new"));
        let names: Vec<_> = found.iter().map(|(p, ..)| p.clone()).collect();
        assert_eq!(names, [PathBuf::from("a")]);
        assert_eq!(found[0].2, Some([7; DIGEST_LEN]));
        let names: Vec<_> = ix
            .candidates(s + 1, Path::new("x"))
            .into_iter()
            .map(|(p, ..)| p)
            .collect();
        assert_eq!(names, [PathBuf::from("c"), PathBuf::from("b")]);
    }

    #[test]
    fn forget_and_rename_take_whole_directories_and_nothing_beside_them() {
        let mut ix = ContentIndex::default();
        let s = SHORTCUT_MIN;
        for (i, p) in ["d/x", "d/sub/y", "d-other/z", "dd"].iter().enumerate() {
            ix.note(Path::new(p), v(s, i as u64), None);
        }
        ix.rename(Path::new("d"), Path::new("e/d2"));
        let paths: Vec<_> = ix.by_path.keys().cloned().collect();
        assert_eq!(
            paths,
            ["d-other/z", "dd", "e/d2/sub/y", "e/d2/x"].map(PathBuf::from)
        );
        assert_eq!(ix.candidates(s, Path::new("q")).len(), 4);
        ix.forget(Path::new("e"));
        let paths: Vec<_> = ix.by_path.keys().cloned().collect();
        assert_eq!(paths, ["d-other/z", "dd"].map(PathBuf::from));
    }

    #[test]
    fn a_missed_copy_discredits_its_source() {
        let mut ix = ContentIndex::default();
        ix.note(Path::new("a"), v(SHORTCUT_MIN, 1), None);
        ix.planned_copy(Path::new("b"), Path::new("a"));
        ix.discredit(Path::new("b"));
        assert!(ix.is_empty());
        ix.discredit(Path::new("b"));
    }

    #[test]
    fn the_index_stays_bounded() {
        let mut ix = ContentIndex::default();
        for i in 0..MAX_ENTRIES as u64 + 10 {
            ix.note(Path::new(&format!("f{i}")), v(SHORTCUT_MIN, i), None);
        }
        assert_eq!(ix.len(), MAX_ENTRIES);
    }

    #[test]
    fn find_copy_hashes_and_matches_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..SHORTCUT_MIN * 2).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("orig"), &content).unwrap();
        std::fs::write(dir.path().join("other"), vec![1u8; content.len()]).unwrap();
        let index: Shared = Arc::default();
        walk(&index, dir.path(), &|_, _| false);
        assert_eq!(index.lock().unwrap().len(), 2);
        std::fs::write(dir.path().join("copy"), &content).unwrap();
        let md = std::fs::metadata(dir.path().join("copy")).unwrap();
        let (from, digest) =
            find_copy(&index, dir.path(), Path::new("copy"), Version::of(&md)).unwrap();
        assert_eq!(from, PathBuf::from("orig"));
        assert_eq!(digest.as_slice(), sha2::Sha256::digest(&content).as_slice());
        // Different content of the same size: no copy.
        std::fs::write(dir.path().join("lone"), vec![2u8; content.len()]).unwrap();
        let md = std::fs::metadata(dir.path().join("lone")).unwrap();
        assert!(find_copy(&index, dir.path(), Path::new("lone"), Version::of(&md)).is_none());
        // The original rewritten since it was noted: not offered.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("orig"), vec![3u8; content.len()]).unwrap();
        std::fs::write(dir.path().join("copy2"), &content).unwrap();
        let md = std::fs::metadata(dir.path().join("copy2")).unwrap();
        let found = find_copy(&index, dir.path(), Path::new("copy2"), Version::of(&md));
        assert_eq!(found.map(|f| f.0), Some(PathBuf::from("copy")));
        // A file rewritten at its old size is offered from its own old version.
        let fresh = dir.path().join("fresh");
        std::fs::write(&fresh, vec![5u8; content.len()]).unwrap();
        let md = std::fs::metadata(&fresh).unwrap();
        index
            .lock()
            .unwrap()
            .note(Path::new("fresh"), Version::of(&md), None);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&fresh, vec![9u8; content.len()]).unwrap();
        let md = std::fs::metadata(&fresh).unwrap();
        let found = find_copy(&index, dir.path(), Path::new("fresh"), Version::of(&md));
        assert_eq!(found.map(|f| f.0), Some(PathBuf::from("fresh")));
        // Its digest is now known: a different rewrite is not offered.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&fresh, vec![8u8; content.len()]).unwrap();
        let md = std::fs::metadata(&fresh).unwrap();
        assert!(find_copy(&index, dir.path(), Path::new("fresh"), Version::of(&md)).is_none());
    }
}
