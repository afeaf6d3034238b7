//! Merging changes per path until a batch is ready: the sans-IO heart of `rtsync run`.
//!
//! Every change is folded into one pending operation per path:
//! - a creation then writes is one put; a creation then a delete is still a delete, since the
//!   target may have the path: a rename or a move-in replaces an entry without a word, and a
//!   transfer under way when the path was made may have sent it;
//! - a delete of a directory absorbs everything pending below it, and so does a resync;
//! - a rename is a delete and a creation (see [`crate::change`]), so chains `a → b → c` leave
//!   "delete a, delete b, put c" — unless renames are on (below);
//! - a directory that appears is sent as a whole subtree, so the entries found in it need no
//!   entries of their own.
//!
//! # Renames as renames
//!
//! With [`Settings::renames`] (for a target that can rename: an rtsync daemon), a simple rename
//! stays a rename, so a renamed directory of 5,000 files is one operation instead of 5,000
//! files sent again. It is recorded as "`to` renamed from `from`" on `to` and a delete on `from`
//! (nothing to do once the rename is applied, a clean-up if it was not); whatever was pending
//! at or below `to` is superseded. A rename that is not simple is folded as a delete and a
//! creation, as without the setting:
//! - `from` or `to` lies below a pending subtree resync or delete;
//! - `from`, or anything below it, has a pending operation (its content changed before the move,
//!   as in `write tmp; mv tmp file` within one batch);
//! - `from` or `to` is equal to, above or below an end of another pending rename (chains
//!   `a → b → c`, swaps `a → t, b → a, t → b`).
//!
//! So the pending renames never touch each other's paths, and their order in a batch (the order
//! they happened in) is a courtesy. Later changes: a write or creation at `to` keeps the rename
//! and sends `to` afterwards too (it is then in both [`Batch::renames`] and [`Batch::puts`]);
//! a delete, a new directory or a resync at or above `to` supersedes the rename like any
//! operation; changes below a renamed directory are ordinary entries, applied after it. A
//! resync at, above or below either end folds the rename (the target may not hold what it
//! would move: a missed rename's resync below `from`, say). A file at `to` still being written
//! does not hold the rename back, only its put.
//!
//! The target's contract: it applies [`Batch::renames`] first, in order, then the deletes, then
//! the trees and puts. It applies a rename only when that is safe:
//! - a file: `from` is a file (not a directory) with the identity (size and modification time,
//!   say) the source's `to` has now, `to` is not a directory, and `to`'s parent is a directory;
//!   when `to` is also in [`Batch::puts`], any file at `from` will do, since the put follows;
//! - a directory: `from` is a directory, `to` does not exist, and `to`'s parent is a directory.
//!
//! A rename it does not apply is "missed": the caller pushes [`Change::Resync`]`(to)`, and the
//! delete of `from` in the same batch cleans up.
//!
//! One hazard is the caller's to cover: a batch taken before a rename's event arrived may be
//! read from the source after the rename happened there, so it finds `from` gone (and deletes
//! it on the target, or what lay below it) or finds what was made at `from` since. So after a
//! directory rename, whatever the target was sent at or below `from` since the rename may have
//! happened (the last minute, say) is sent again under `to`, and a subtree sent at or above
//! `from` since then means `to` is resynced whole. (A file rename needs none of this: the
//! identity check catches it.) A batch applied twice (retried after it failed
//! part-way) is fine: a rename already done misses the second time and is resynced.
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
    /// Hand out simple renames as [`Batch::renames`] (for a target that can rename, under the
    /// contract in the [module docs](self)); otherwise a rename is a delete and a creation.
    pub renames: bool,
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
    /// A batch follows the one before it at least this much later (zero: no such wait) ...
    pub min_gap: Duration,
    /// ... unless this many paths are pending. For a target where each batch costs a
    /// connection and a process or two on each end (a stock rsync daemon), a steady stream
    /// then makes a few larger batches a second instead of one tiny batch per settle delay;
    /// a change after a quiet spell still goes after the settle delay alone.
    pub full_batch: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            renames: false,
            settle: Duration::from_millis(20),
            max_latency: Duration::from_millis(200),
            write_quiet: Duration::from_millis(500),
            max_write_hold: Duration::from_secs(5),
            max_pending: 200_000,
            max_per_dir: 20_000,
            min_gap: Duration::ZERO,
            full_batch: usize::MAX,
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
    /// Rename from another path (the details are in the coalescer's `moves`).
    Rename,
}

/// A pending rename, on its `to`.
#[derive(Debug, Clone)]
struct Move {
    from: PathBuf,
    is_dir: bool,
    /// Where it goes among the renames of a batch: its journal number, or less than every
    /// pending rename's once requeued.
    order: i128,
    /// Send `to` after the rename too: it changed since.
    put: bool,
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

/// A rename for the target to apply as a rename, under the contract in the
/// [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// The old path.
    pub from: PathBuf,
    /// The new path.
    pub to: PathBuf,
    /// Whether it is a directory, moved with everything below it.
    pub is_dir: bool,
}

/// What one transfer must do: the renames first, in order, then the deletes, then the trees and
/// puts. Every other list is sorted, parents before children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Renames to apply first, in the order they happened, each only if safe (see the
    /// [module docs](self)); always empty unless [`Settings::renames`].
    pub renames: Vec<Rename>,
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
        self.renames.is_empty()
            && self.puts.is_empty()
            && self.deletes.is_empty()
            && self.trees.is_empty()
    }

    /// How many operations it holds (a rename counts once).
    #[must_use]
    pub fn len(&self) -> usize {
        self.renames.len() + self.puts.len() + self.deletes.len() + self.trees.len()
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
    /// The pending renames by `to`: exactly the entries whose op is [`Op::Rename`].
    moves: HashMap<PathBuf, Move>,
    /// Both ends of every pending rename, each to the rename's `to`.
    ends: BTreeMap<PathBuf, PathBuf>,
    last_change: Option<Instant>,
    /// When the last batch was taken, for [`Settings::min_gap`].
    last_take: Option<Instant>,
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
            moves: HashMap::new(),
            ends: BTreeMap::new(),
            last_change: None,
            last_take: None,
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

    /// Sets [`Settings::min_gap`] and [`Settings::full_batch`]: the caller learns only as it
    /// goes whether its target's batches are costly.
    pub fn pace(&mut self, min_gap: Duration, full_batch: usize) {
        self.settings.min_gap = min_gap;
        self.settings.full_batch = full_batch;
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
        if let Change::Renamed { from, to, is_dir } = change {
            if self.settings.renames && self.is_simple_rename(from, to) {
                self.record_rename(from, to, *is_dir, i128::from(seq), seq, now);
                self.enforce_caps(to, now);
                self.enforce_caps(from, now);
            } else {
                for c in change.split_rename() {
                    self.push(&c, seq, now);
                }
            }
            return;
        }
        let path = change.path();
        if let Change::Resync(_) = change {
            // The target may not hold what a rename meeting it would move.
            for to in self.renames_meeting(path) {
                self.degrade_rename(&to, now);
            }
        }
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
                if op == Op::Rename
                    && let Some(m) = self.moves.get_mut(path)
                {
                    // Changed since the rename: the rename stays, and a put follows it.
                    m.put = true;
                }
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
            Change::Renamed { .. } => {}
        }
        self.enforce_caps(path, now);
    }

    /// Whether a rename can be recorded as one (see the module docs).
    fn is_simple_rename(&self, from: &Path, to: &Path) -> bool {
        !from.as_os_str().is_empty()
            && !to.as_os_str().is_empty()
            && !from.starts_with(to)
            && !to.starts_with(from)
            && !self.is_covered(from)
            && !self.is_covered(to)
            && !self.pending.contains_key(from)
            && !self.has_below(from)
            && self.renames_meeting(from).is_empty()
            && self.renames_meeting(to).is_empty()
    }

    /// Records "`to` renamed from `from`" and a delete of `from`, superseding whatever is
    /// pending at or below `to`. The caller has checked that nothing is pending at `from`.
    fn record_rename(
        &mut self,
        from: &Path,
        to: &Path,
        is_dir: bool,
        order: i128,
        seq: u64,
        now: Instant,
    ) {
        let first = [self.remove_below(to), self.remove(to), Some(seq)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(seq);
        self.set(to, Op::Rename, first, now, None);
        self.moves.insert(
            to.to_path_buf(),
            Move {
                from: from.to_path_buf(),
                is_dir,
                order,
                put: false,
            },
        );
        self.ends.insert(from.to_path_buf(), to.to_path_buf());
        self.ends.insert(to.to_path_buf(), to.to_path_buf());
        self.set(from, Op::Delete, seq, now, None);
    }

    /// Whether a pending subtree resync or delete above `path` covers it (the nearest pending
    /// ancestor is the only one that can: nothing is pending below those).
    fn is_covered(&self, path: &Path) -> bool {
        path.ancestors()
            .skip(1)
            .find_map(|a| self.pending.get(a))
            .is_some_and(|e| matches!(e.op, Op::Tree | Op::Delete))
    }

    /// The pending renames (by their `to`) with an end at, above or below `path`.
    fn renames_meeting(&self, path: &Path) -> BTreeSet<PathBuf> {
        let mut out: BTreeSet<PathBuf> = path
            .ancestors()
            .filter_map(|a| self.ends.get(a).cloned())
            .collect();
        out.extend(
            self.ends
                .range::<Path, _>((Bound::Excluded(path), Bound::Unbounded))
                .take_while(|(p, _)| p.starts_with(path))
                .map(|(_, to)| to.clone()),
        );
        out
    }

    /// Whether anything pending is at, above or below `path`, or a pending rename meets it.
    fn meets_pending(&self, path: &Path) -> bool {
        path.ancestors().any(|a| self.pending.contains_key(a))
            || self.has_below(path)
            || !self.renames_meeting(path).is_empty()
    }

    /// Folds the pending rename onto `to` as a delete (already pending on `from`, or covered)
    /// and a creation: `to` is sent, a directory as a whole subtree.
    fn degrade_rename(&mut self, to: &Path, now: Instant) {
        let Some(m) = self.moves.get(to) else {
            return;
        };
        let (seq, writing) = self
            .pending
            .get(to)
            .map_or((0, None), |e| (e.first_seq, e.written_at));
        if m.is_dir {
            let seq = self.remove_below(to).unwrap_or(seq).min(seq);
            self.set(to, Op::Tree, seq, now, None);
        } else {
            self.set(to, Op::Put, seq, now, writing);
        }
    }

    /// Forgets the pending rename onto `to`, if any (its entry is being replaced or removed).
    fn forget_rename(&mut self, to: &Path) {
        if let Some(m) = self.moves.remove(to) {
            for end in [m.from.as_path(), to] {
                if self.ends.get(end).is_some_and(|t| t == to) {
                    self.ends.remove(end);
                }
            }
        }
    }

    /// Puts back a batch that failed, under whatever arrived since: newer operations on the
    /// same paths win.
    ///
    /// A rename of the batch is put back as a rename, before every pending one, unless a
    /// pending operation is at, above or below either of its ends: then it is a delete of
    /// `from` and a put (a subtree, for a directory) of `to`, each unless something newer is
    /// pending there. A pending rename that meets any path of the batch is folded the same way,
    /// since it was recorded against a target the failed batch should have changed first.
    ///
    /// A caller holding several failed batches must requeue the newest first.
    pub fn requeue(&mut self, batch: Batch, now: Instant) {
        // The batch covered changes after the last acknowledgement; numbering them all with
        // the oldest possible keeps the acknowledgement from passing them.
        let seq = 0;
        self.last_change = Some(now);
        // Judged against what is pending before anything of the batch is back.
        let (restore, fold): (Vec<Rename>, Vec<Rename>) =
            batch.renames.into_iter().partition(|r| {
                self.settings.renames && !self.meets_pending(&r.from) && !self.meets_pending(&r.to)
            });
        let touched: BTreeSet<PathBuf> = batch
            .trees
            .iter()
            .chain(&batch.deletes)
            .chain(&batch.puts)
            .chain(fold.iter().flat_map(|r| [&r.from, &r.to]))
            .chain(restore.iter().flat_map(|r| [&r.from, &r.to]))
            .flat_map(|p| self.renames_meeting(p))
            .collect();
        for to in touched {
            self.degrade_rename(&to, now);
        }
        // Before every pending rename, in their own order.
        let below = self
            .moves
            .values()
            .map(|m| m.order)
            .min()
            .unwrap_or(0)
            .min(0);
        let count = i128::try_from(restore.len()).unwrap_or(i128::MAX);
        for (i, r) in (0..).zip(&restore) {
            self.record_rename(&r.from, &r.to, r.is_dir, below - count + i, seq, now);
            if batch.puts.contains(&r.to)
                && let Some(m) = self.moves.get_mut(&r.to)
            {
                m.put = true;
            }
        }
        for tree in &batch.trees {
            if !self.absorbed_by_ancestor(tree, seq, now) {
                self.remove_below(tree);
                self.set(tree, Op::Tree, seq, now, None);
            }
        }
        /// What a path of the batch was.
        #[derive(PartialEq)]
        enum Was {
            Delete,
            Put,
            /// The `to` of a folded directory rename.
            DirTo,
        }
        let folded = fold.iter().flat_map(|r| {
            [
                (&r.from, Was::Delete),
                (&r.to, if r.is_dir { Was::DirTo } else { Was::Put }),
            ]
        });
        for (path, old) in batch
            .deletes
            .iter()
            .map(|p| (p, Was::Delete))
            .chain(batch.puts.iter().map(|p| (p, Was::Put)))
            .chain(folded)
        {
            if self.absorbed_by_ancestor(path, seq, now) {
                continue;
            }
            match self.pending.get(path).map(|e| e.op) {
                Some(Op::Put) if old == Was::DirTo => {
                    // A directory that never arrived: an attribute change is not enough.
                    self.remove_below(path);
                    self.set(path, Op::Tree, seq, now, None);
                }
                Some(op) => self.set(path, op, seq, now, None),
                None if old == Was::Delete && self.has_below(path) => {
                    // Deleted, then made again with new contents: compare it whole.
                    self.remove_below(path);
                    self.set(path, Op::Tree, seq, now, None);
                }
                None => {
                    let op = match old {
                        Was::Delete => Op::Delete,
                        Was::Put => Op::Put,
                        Was::DirTo => {
                            self.remove_below(path);
                            Op::Tree
                        }
                    };
                    self.set(path, op, seq, now, None);
                }
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
        let due = self.due()?;
        match self.last_take {
            Some(t) if self.pending.len() < self.settings.full_batch => {
                Some(due.max(t + self.settings.min_gap))
            }
            _ => Some(due),
        }
    }

    /// When the next batch is due by the settle delay, the latency cap and the files being
    /// written (before [`Settings::min_gap`]).
    fn due(&self) -> Option<Instant> {
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
        self.last_take = Some(now);
        let mut batch = Batch::default();
        let mut kept = BTreeMap::new();
        let mut renames = Vec::new();
        for (path, e) in std::mem::take(&mut self.pending) {
            let op = match (e.op, self.moves.remove(&path)) {
                (Op::Rename, Some(m)) => {
                    renames.push((
                        m.order,
                        Rename {
                            from: m.from,
                            to: path.clone(),
                            is_dir: m.is_dir,
                        },
                    ));
                    if !m.put {
                        continue;
                    }
                    // A file still being written holds back its put, not its rename.
                    Op::Put
                }
                (Op::Rename, None) => Op::Put,
                (op, _) => op,
            };
            if self.is_held(&e, now) {
                kept.insert(path, Entry { op, ..e });
                continue;
            }
            match op {
                Op::Put | Op::Rename => batch.puts.push(path),
                Op::Delete => batch.deletes.push(path),
                Op::Tree => batch.trees.push(path),
            }
        }
        renames.sort_by_key(|(order, _)| *order);
        batch.renames = renames.into_iter().map(|(_, r)| r).collect();
        self.moves.clear();
        self.ends.clear();
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
    /// An op other than a rename replaces a rename there.
    fn set(&mut self, path: &Path, op: Op, seq: u64, now: Instant, writing: Option<Instant>) {
        if op != Op::Rename {
            self.forget_rename(path);
        }
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
        self.forget_rename(path);
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
            self.moves.clear();
            self.ends.clear();
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
mod rename_tests;

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
            renames: Vec::new(),
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
    fn under_a_steady_stream_batches_keep_the_minimum_gap_unless_full() {
        let ms = Duration::from_millis;
        let s = Settings {
            min_gap: ms(300),
            full_batch: 5,
            ..Settings::default()
        };
        let mut c = Coalescer::new(s);
        let t0 = Instant::now();
        // The first change after a quiet spell goes once settled.
        c.push(&Change::Modified(p("a")), 1, t0);
        assert_eq!(c.deadline(), Some(t0 + s.settle));
        assert_eq!(c.take(t0 + s.settle).puts, [p("a")]);
        // One more, settled at once: it waits for the gap after the last batch.
        let t1 = t0 + ms(50);
        c.push(&Change::Modified(p("b")), 2, t1);
        assert_eq!(c.deadline(), Some(t0 + s.settle + ms(300)));
        assert!(!c.is_ready(t1 + ms(100)));
        // Five pending make a full batch: it goes as soon as it settles.
        for (i, name) in ["c", "d", "e", "f"].iter().enumerate() {
            c.push(&Change::Modified(p(name)), 3 + i as u64, t1 + ms(60));
        }
        assert_eq!(c.deadline(), Some(t1 + ms(60) + s.settle));
        assert_eq!(c.take(t1 + ms(80)).puts.len(), 5);
        // Without the setting, nothing waits for a gap.
        let mut plain = Coalescer::new(Settings::default());
        plain.take(t0);
        plain.push(&Change::Modified(p("g")), 1, t0);
        assert_eq!(plain.deadline(), Some(t0 + Settings::default().settle));
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
