//! Merging changes per path until a batch is ready: the sans-IO heart of `rtsync run`.
//!
//! Every change is folded into one pending operation per path:
//! - a creation then writes is one put; a creation then a delete is still a delete, since the
//!   target may have the path: a rename or a move-in replaces an entry without a word, and a
//!   transfer under way when the path was made may have sent it;
//! - a delete of a directory absorbs everything pending below it, and so does a resync;
//! - a rename is a delete and a creation (see [`crate::change`]), so chains `a → b → c` leave
//!   "delete a, delete b, put c";
//! - a directory that appears is sent as a whole subtree, so the entries found in it need no
//!   entries of their own.
//!
//! A batch is ready once no change has arrived for the settle delay, or once the oldest pending
//! change has waited the maximum latency (a steady stream never starves the target). Memory is
//! bounded: past a cap of pending entries in one directory, that directory becomes one subtree
//! resync; past the total cap, the whole tree does. A change is never dropped, only widened.
//!
//! Time is a parameter: nothing here reads a clock, sleeps or touches the filesystem.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::change::Change;

/// How long to wait and how much to hold.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// A batch waits until no change has arrived for this long.
    pub settle: Duration,
    /// ... but never holds a change longer than this.
    pub max_latency: Duration,
    /// A file still being written (written to, not closed) waits until it has not been written
    /// for this long, so a long copy is not sent again and again half-way ...
    pub write_quiet: Duration,
    /// ... but a file written without pause (a log) is still sent this often.
    pub max_write_hold: Duration,
    /// Past this many pending paths, the whole tree is resynced instead.
    pub max_pending: usize,
    /// Past this many pending paths directly in one directory, that directory is resynced.
    pub max_per_dir: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            settle: Duration::from_millis(20),
            max_latency: Duration::from_millis(200),
            write_quiet: Duration::from_millis(500),
            max_write_hold: Duration::from_secs(5),
            max_pending: 200_000,
            max_per_dir: 20_000,
        }
    }
}

/// The pending operation on one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Send this entry (not recursively).
    Put,
    /// Delete it on the target, with everything below it.
    Delete,
    /// Send the subtree recursively and delete what the source lacks in it.
    Tree,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    op: Op,
    /// The journal number of the oldest change folded in, for acknowledgements.
    first_seq: u64,
    first_at: Instant,
    /// Set while the file is being written (a write seen, no close since).
    written_at: Option<Instant>,
}

/// What one transfer must do; every list is sorted, parents before children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Entries to send as they are now (creating their parents as needed).
    pub puts: Vec<PathBuf>,
    /// Entries to delete on the target, directories with their contents.
    pub deletes: Vec<PathBuf>,
    /// Subtrees to resync in full, deleting what the source lacks; the empty path is the root.
    pub trees: Vec<PathBuf>,
    /// Once the batch has landed, the target has every change up to this journal number.
    pub upto: u64,
}

impl Batch {
    /// Whether the batch does nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty() && self.trees.is_empty()
    }

    /// How many paths it names.
    #[must_use]
    pub fn len(&self) -> usize {
        self.puts.len() + self.deletes.len() + self.trees.len()
    }
}

/// Pending changes for one target.
#[derive(Debug)]
pub struct Coalescer {
    settings: Settings,
    pending: BTreeMap<PathBuf, Entry>,
    /// Paths being written, held back from batches for a while.
    writing: BTreeSet<PathBuf>,
    /// Pending entries per parent directory, for the per-directory cap.
    children: HashMap<PathBuf, usize>,
    last_change: Option<Instant>,
    upto: u64,
}

fn parent(path: &Path) -> Option<&Path> {
    if path.as_os_str().is_empty() {
        None
    } else {
        Some(path.parent().unwrap_or(Path::new("")))
    }
}

impl Coalescer {
    /// An empty coalescer.
    #[must_use]
    pub fn new(settings: Settings) -> Self {
        Coalescer {
            settings,
            pending: BTreeMap::new(),
            writing: BTreeSet::new(),
            children: HashMap::new(),
            last_change: None,
            upto: 0,
        }
    }

    /// How many paths are pending.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// When the oldest pending change arrived, for lag reporting.
    #[must_use]
    pub fn oldest(&self) -> Option<Instant> {
        self.pending.values().map(|e| e.first_at).min()
    }

    /// Folds in one change, numbered `seq` in the journal, seen at `now`.
    pub fn push(&mut self, change: &Change, seq: u64, now: Instant) {
        self.upto = self.upto.max(seq);
        self.last_change = Some(now);
        let path = change.path();
        if self.absorbed_by_ancestor(path, seq, now) {
            return;
        }
        let existing = self.pending.get(path).map(|e| e.op);
        match change {
            Change::Created(_) | Change::Modified(_) | Change::Written(_) => {
                let op = match existing {
                    None | Some(Op::Delete) => Op::Put,
                    Some(op) => op,
                };
                let writing = matches!(change, Change::Written(_)).then_some(now);
                self.set(path, op, seq, now, writing);
            }
            Change::CreatedDir(_) | Change::Resync(_) => {
                let seq = self.remove_below(path).unwrap_or(seq).min(seq);
                self.set(path, Op::Tree, seq, now, None);
            }
            Change::Deleted(_) => {
                let seq = self.remove_below(path).unwrap_or(seq).min(seq);
                self.set(path, Op::Delete, seq, now, None);
            }
        }
        self.enforce_caps(path, now);
    }

    /// Puts back a batch that failed, under whatever arrived since: newer operations on the
    /// same paths win.
    pub fn requeue(&mut self, batch: Batch, now: Instant) {
        // The batch covered changes after the last acknowledgement; numbering them all with
        // the oldest possible keeps the acknowledgement from passing them.
        let seq = 0;
        self.last_change = Some(now);
        for tree in &batch.trees {
            if !self.absorbed_by_ancestor(tree, seq, now) {
                self.remove_below(tree);
                self.set(tree, Op::Tree, seq, now, None);
            }
        }
        for (path, old) in batch
            .deletes
            .iter()
            .map(|p| (p, Op::Delete))
            .chain(batch.puts.iter().map(|p| (p, Op::Put)))
        {
            if self.absorbed_by_ancestor(path, seq, now) {
                continue;
            }
            match self.pending.get(path).map(|e| e.op) {
                Some(op) => self.set(path, op, seq, now, None),
                None if old == Op::Delete && self.has_below(path) => {
                    // Deleted, then made again with new contents: compare it whole.
                    self.remove_below(path);
                    self.set(path, Op::Tree, seq, now, None);
                }
                None => self.set(path, old, seq, now, None),
            }
            self.enforce_caps(path, now);
        }
    }

    /// Whether a file being written stays back from a batch taken at `now`. One about to be
    /// released anyway goes along, so files written together (the names of one hard-linked
    /// file, say) travel together.
    fn is_held(&self, e: &Entry, now: Instant) -> bool {
        self.release_at(e)
            .is_some_and(|at| at > now + self.settings.settle)
    }

    /// When a path being written may go.
    fn release_at(&self, e: &Entry) -> Option<Instant> {
        e.written_at
            .map(|w| (w + self.settings.write_quiet).min(e.first_at + self.settings.max_write_hold))
    }

    /// When the next batch will be ready, if anything is pending.
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        if self.pending.len() > self.writing.len() {
            // Something not being written is waiting: it goes once things settle, or at the
            // latency cap.
            let oldest = self
                .pending
                .values()
                .filter(|e| e.written_at.is_none())
                .map(|e| e.first_at)
                .min();
            let settled = self.last_change.map(|t| t + self.settings.settle);
            let capped = oldest.map(|t| t + self.settings.max_latency);
            return match (settled, capped) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.writing
            .iter()
            .filter_map(|p| self.pending.get(p))
            .filter_map(|e| self.release_at(e))
            .min()
    }

    /// Whether a batch is ready at `now`.
    #[must_use]
    pub fn is_ready(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    /// Takes everything pending as one batch, but for files still being written.
    pub fn take(&mut self, now: Instant) -> Batch {
        let mut batch = Batch::default();
        let mut kept = BTreeMap::new();
        for (path, e) in std::mem::take(&mut self.pending) {
            if self.is_held(&e, now) {
                kept.insert(path, e);
                continue;
            }
            match e.op {
                Op::Put => batch.puts.push(path),
                Op::Delete => batch.deletes.push(path),
                Op::Tree => batch.trees.push(path),
            }
        }
        // The target will have everything but the held files' changes.
        batch.upto = kept
            .values()
            .map(|e| e.first_seq.saturating_sub(1))
            .min()
            .unwrap_or(self.upto)
            .min(self.upto);
        self.children.clear();
        self.writing.clear();
        for (path, e) in kept {
            self.set(&path, e.op, e.first_seq, e.first_at, e.written_at);
        }
        if self.pending.is_empty() {
            self.last_change = None;
        }
        batch
    }

    /// Whether a pending subtree resync or delete above `path` already covers it. A delete
    /// above it cannot stand once something below exists again: it becomes a resync.
    fn absorbed_by_ancestor(&mut self, path: &Path, seq: u64, now: Instant) -> bool {
        let found = path
            .ancestors()
            .skip(1)
            .find_map(|a| self.pending.get(a).map(|e| (a.to_path_buf(), e.op)));
        match found {
            Some((_, Op::Tree)) => true,
            Some((ancestor, Op::Delete)) => {
                let seq = self.remove_below(&ancestor).unwrap_or(seq).min(seq);
                self.set(&ancestor, Op::Tree, seq, now, None);
                true
            }
            _ => false,
        }
    }

    /// Records `op` for `path`, keeping the oldest journal number and arrival already there.
    fn set(&mut self, path: &Path, op: Op, seq: u64, now: Instant, writing: Option<Instant>) {
        let entry = match self.pending.get(path) {
            Some(old) => Entry {
                op,
                first_seq: old.first_seq.min(seq),
                first_at: old.first_at.min(now),
                written_at: writing,
            },
            None => {
                if let Some(dir) = parent(path) {
                    *self.children.entry(dir.to_path_buf()).or_default() += 1;
                }
                Entry {
                    op,
                    first_seq: seq,
                    first_at: now,
                    written_at: writing,
                }
            }
        };
        if entry.written_at.is_some() {
            self.writing.insert(path.to_path_buf());
        } else {
            self.writing.remove(path);
        }
        self.pending.insert(path.to_path_buf(), entry);
    }

    /// Forgets `path`, returning its oldest journal number.
    fn remove(&mut self, path: &Path) -> Option<u64> {
        let e = self.pending.remove(path)?;
        self.writing.remove(path);
        if let Some(dir) = parent(path)
            && let Some(n) = self.children.get_mut(dir)
        {
            *n -= 1;
            if *n == 0 {
                self.children.remove(dir);
            }
        }
        Some(e.first_seq)
    }

    fn descendants(&self, path: &Path) -> Vec<PathBuf> {
        // Paths order by component, so everything below `path` follows it contiguously.
        self.pending
            .range::<Path, _>((Bound::Excluded(path), Bound::Unbounded))
            .map(|(p, _)| p)
            .take_while(|p| p.starts_with(path))
            .cloned()
            .collect()
    }

    fn has_below(&self, path: &Path) -> bool {
        self.pending
            .range::<Path, _>((Bound::Excluded(path), Bound::Unbounded))
            .next()
            .is_some_and(|(p, _)| p.starts_with(path))
    }

    /// Forgets everything below `path`, returning the oldest journal number among it.
    fn remove_below(&mut self, path: &Path) -> Option<u64> {
        self.descendants(path)
            .iter()
            .filter_map(|p| self.remove(p))
            .min()
    }

    fn enforce_caps(&mut self, path: &Path, now: Instant) {
        if self.pending.len() > self.settings.max_pending {
            let seq = self
                .pending
                .values()
                .map(|e| e.first_seq)
                .min()
                .unwrap_or(0);
            let at = self.oldest().unwrap_or(now);
            self.pending.clear();
            self.writing.clear();
            self.children.clear();
            self.set(Path::new(""), Op::Tree, seq, at, None);
            return;
        }
        if let Some(dir) = parent(path)
            && self.children.get(dir).copied().unwrap_or(0) > self.settings.max_per_dir
        {
            let dir = dir.to_path_buf();
            let seq = self.remove_below(&dir).unwrap_or(0);
            self.set(&dir, Op::Tree, seq, now, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn run(changes: &[Change]) -> Batch {
        let mut c = Coalescer::new(Settings::default());
        let t = Instant::now();
        for (i, ch) in changes.iter().enumerate() {
            c.push(ch, i as u64 + 1, t);
        }
        c.take(t)
    }

    fn batch(puts: &[&str], deletes: &[&str], trees: &[&str], upto: u64) -> Batch {
        Batch {
            puts: puts.iter().map(|s| p(s)).collect(),
            deletes: deletes.iter().map(|s| p(s)).collect(),
            trees: trees.iter().map(|s| p(s)).collect(),
            upto,
        }
    }

    #[test]
    fn a_create_and_its_writes_are_one_put() {
        use Change::*;
        let b = run(&[Created(p("f")), Written(p("f")), Modified(p("f"))]);
        assert_eq!(b, batch(&["f"], &[], &[], 3));
    }

    #[test]
    fn a_create_then_delete_is_a_delete_like_a_modify_then_delete() {
        use Change::*;
        assert_eq!(
            run(&[Created(p("tmp")), Modified(p("tmp")), Deleted(p("tmp"))]),
            batch(&[], &["tmp"], &[], 3)
        );
        assert_eq!(
            run(&[Modified(p("old")), Deleted(p("old"))]),
            batch(&[], &["old"], &[], 2)
        );
        // Deleted then made again: the target has the old one, so it must be sent.
        let b = run(&[Deleted(p("x")), Created(p("x")), Deleted(p("x"))]);
        assert_eq!(b, batch(&[], &["x"], &[], 3));
    }

    #[test]
    fn a_directory_delete_absorbs_its_children() {
        use Change::*;
        let b = run(&[
            Modified(p("d/a")),
            Modified(p("d/sub/b")),
            Modified(p("d b")),
            Deleted(p("d")),
        ]);
        assert_eq!(b, batch(&["d b"], &["d"], &[], 4));
    }

    #[test]
    fn a_new_directory_is_one_subtree_and_covers_what_is_found_in_it() {
        use Change::*;
        let b = run(&[
            CreatedDir(p("new")),
            Created(p("new/a")),
            CreatedDir(p("new/deeper")),
            Modified(p("new/deeper/b")),
        ]);
        assert_eq!(b, batch(&[], &[], &["new"], 4));
        // Made and removed within the window: one delete.
        assert_eq!(
            run(&[CreatedDir(p("t")), Created(p("t/x")), Deleted(p("t"))]),
            batch(&[], &["t"], &[], 3)
        );
    }

    #[test]
    fn rename_chains_leave_one_operation_per_name() {
        use Change::*;
        // a → b → c, as the watcher reports renames.
        let b = run(&[
            Deleted(p("a")),
            Created(p("b")),
            Deleted(p("b")),
            Created(p("c")),
        ]);
        assert_eq!(b, batch(&["c"], &["a", "b"], &[], 4));
    }

    #[test]
    fn a_rename_over_an_existing_file_then_a_delete_still_deletes_it() {
        use Change::*;
        // "a" and "b" are on the target; `mv b a` replaces "a" (inotify reports no delete of
        // the old "a"), then `mv a b`.
        let b = run(&[
            Deleted(p("b")),
            Created(p("a")),
            Deleted(p("a")),
            Created(p("b")),
        ]);
        assert_eq!(b, batch(&["b"], &["a"], &[], 4));
    }

    #[test]
    fn a_file_made_while_its_delete_is_in_flight_then_deleted_is_deleted_again() {
        use Change::*;
        let mut c = Coalescer::new(Settings::default());
        let t = Instant::now();
        c.push(&Deleted(p("c")), 1, t);
        let in_flight = c.take(t);
        assert_eq!(in_flight, batch(&[], &["c"], &[], 1));
        // "c" is made again before that transfer reads the source, so the transfer sends it.
        c.push(&Created(p("c")), 2, t);
        c.push(&Deleted(p("c")), 3, t);
        assert_eq!(c.take(t), batch(&[], &["c"], &[], 3));
    }

    #[test]
    fn something_below_a_deleted_directory_turns_the_delete_into_a_resync() {
        use Change::*;
        let b = run(&[Deleted(p("d")), Modified(p("d/x"))]);
        assert_eq!(b, batch(&[], &[], &["d"], 2));
    }

    #[test]
    fn a_rescan_covers_its_subtree() {
        use Change::*;
        let b = run(&[Modified(p("a/x")), Resync(p("a")), Modified(p("a/y"))]);
        assert_eq!(b, batch(&[], &[], &["a"], 3));
        let b = run(&[Modified(p("a/x")), Resync(p("")), Deleted(p("b"))]);
        assert_eq!(b, batch(&[], &[], &[""], 3));
    }

    #[test]
    fn caps_widen_to_a_directory_then_to_the_whole_tree() {
        let settings = Settings {
            max_pending: 50,
            max_per_dir: 10,
            ..Settings::default()
        };
        let mut c = Coalescer::new(settings);
        let t = Instant::now();
        for i in 0..11 {
            c.push(&Change::Modified(p(&format!("busy/f{i}"))), i, t);
        }
        c.push(&Change::Modified(p("other")), 11, t);
        assert_eq!(c.take(t), batch(&["other"], &[], &["busy"], 11));
        for i in 0..60 {
            c.push(&Change::Modified(p(&format!("d{}/f{}", i % 7, i))), i, t);
        }
        assert_eq!(c.take(t), batch(&[], &[], &[""], 59));
    }

    #[test]
    fn batches_wait_to_settle_but_never_past_the_latency_cap() {
        let s = Settings::default();
        let mut c = Coalescer::new(s);
        let t0 = Instant::now();
        assert_eq!(c.deadline(), None);
        c.push(&Change::Modified(p("f")), 1, t0);
        assert!(!c.is_ready(t0 + s.settle / 2));
        assert!(c.is_ready(t0 + s.settle));
        // A change every 10 ms keeps it settling, until the cap.
        let mut t = t0;
        while t < t0 + s.max_latency - Duration::from_millis(10) {
            t += Duration::from_millis(10);
            c.push(&Change::Modified(p("f")), 2, t);
            assert!(!c.is_ready(t));
        }
        assert!(c.is_ready(t0 + s.max_latency));
    }

    #[test]
    fn a_failed_batch_goes_back_under_newer_changes() {
        use Change::*;
        let mut c = Coalescer::new(Settings::default());
        let t = Instant::now();
        c.push(&Deleted(p("gone")), 1, t);
        c.push(&Modified(p("f")), 2, t);
        c.push(&Resync(p("tree")), 3, t);
        let failed = c.take(t);
        // Meanwhile "f" was deleted, "gone" made again with contents, and "tree/x" changed.
        c.push(&Deleted(p("f")), 4, t);
        c.push(&Created(p("gone/new")), 5, t);
        c.push(&Modified(p("tree/x")), 6, t);
        c.requeue(failed, t);
        assert_eq!(c.take(t), batch(&[], &["f"], &["gone", "tree"], 6));
        // A new file over a failed delete may not be dropped by a later delete.
        c.push(&Deleted(p("x")), 7, t);
        let failed = c.take(t);
        c.push(&Created(p("x")), 8, t);
        c.requeue(failed, t);
        c.push(&Deleted(p("x")), 9, t);
        assert_eq!(c.take(t), batch(&[], &["x"], &[], 9));
    }

    #[test]
    fn a_file_being_written_waits_for_quiet_while_the_rest_goes() {
        use Change::*;
        let s = Settings::default();
        let mut c = Coalescer::new(s);
        let t0 = Instant::now();
        c.push(&Written(p("upload.iso")), 1, t0);
        c.push(&Modified(p("small")), 2, t0);
        let ready = t0 + s.settle;
        assert!(c.is_ready(ready));
        // The finished file goes; the one still being written stays, and the acknowledgement
        // stops short of it.
        assert_eq!(c.take(ready), batch(&["small"], &[], &[], 0));
        assert_eq!(c.deadline(), Some(t0 + s.write_quiet));
        // More writes push it back, up to the hold cap.
        let mut t = t0;
        while t < t0 + s.max_write_hold {
            t += s.write_quiet / 2;
            c.push(&Written(p("upload.iso")), 3, t);
        }
        assert_eq!(c.deadline(), Some(t0 + s.max_write_hold));
        assert_eq!(
            c.take(t0 + s.max_write_hold),
            batch(&["upload.iso"], &[], &[], 3)
        );
        // Closing it sends it at once.
        c.push(&Written(p("f")), 4, t);
        c.push(&Modified(p("f")), 5, t);
        assert_eq!(c.take(t + s.settle), batch(&["f"], &[], &[], 5));
    }
}
