//! Several batches in flight to one target at once, each on a lane of its own (a new rsync
//! connection per batch, or one of several stream connections): which batch may start where,
//! and how far the journal may be acknowledged while batches land out of order.
//!
//! Batches that run on different lanes at the same time never touch the same path, nor one
//! above or below it, so the order in which they land cannot matter: each sends the source as
//! it is when it reads it, and no two write the same entry. A lane that applies its batches in
//! order (a stream connection) may carry several that meet ([`Flights::lanes_met`]). A batch
//! for rsync taken while others run is split: what meets a running batch waits
//! ([`Flights::meets`]) and starts once those have landed; the rest starts at once.
//!
//! A batch's [`Batch::upto`] says the target has every change up to that journal number once
//! it and every batch taken before it have landed, so acknowledgements go in take order: a
//! batch that lands early waits for the ones before it. A batch that fails has its changes put
//! back in the coalescer (with the oldest journal number, see [`crate::Coalescer::requeue`]); the
//! next batch taken holds them, so the failed one counts as landed once every part of that next
//! take has. Time plays no part; nothing here does I/O.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use crate::coalesce::Batch;

/// The batches of one target that are taken and not yet acknowledged.
#[derive(Debug, Default)]
pub struct Flights {
    /// In take order.
    queue: VecDeque<Flight>,
    /// Every path of every running batch, with the lane of each batch holding it.
    busy: BTreeMap<PathBuf, Vec<u64>>,
    /// Takes so far: the parts of one batch share a number.
    takes: u64,
    next_id: u64,
    /// The highest journal number acknowledged through here.
    acked: u64,
}

#[derive(Debug)]
struct Flight {
    id: u64,
    take: u64,
    upto: u64,
    state: State,
    paths: Vec<PathBuf>,
    lane: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Taken, waiting for a running batch it meets.
    Waiting,
    Running,
    Landed,
    /// Failed and put back: covered once every part of take `covered_by` has landed.
    Failed {
        covered_by: u64,
    },
}

/// Every path a batch touches.
fn paths_of(batch: &Batch) -> Vec<PathBuf> {
    batch
        .renames
        .iter()
        .flat_map(|r| [r.from.clone(), r.to.clone()])
        .chain(batch.puts.iter().cloned())
        .chain(batch.deletes.iter().cloned())
        .chain(batch.trees.iter().cloned())
        .collect()
}

impl Flights {
    /// Nothing in flight.
    #[must_use]
    pub fn new() -> Self {
        Flights::default()
    }

    /// How many batches are running.
    #[must_use]
    pub fn running(&self) -> usize {
        self.queue
            .iter()
            .filter(|f| f.state == State::Running)
            .count()
    }

    /// Whether nothing is taken and unacknowledged.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The lanes of the running batches holding `path`, a path above it or one below it.
    fn lanes_at<'a>(&'a self, path: &'a Path) -> impl Iterator<Item = u64> + 'a {
        let above = path.ancestors().filter_map(|a| self.busy.get(a));
        // Paths order by component, so whatever lies below `path` comes right after it.
        let below = self
            .busy
            .range::<Path, _>((Bound::Excluded(path), Bound::Unbounded))
            .take_while(move |(p, _)| p.starts_with(path))
            .map(|(_, lanes)| lanes);
        above.chain(below).flatten().copied()
    }

    /// Whether `path` is, lies above or lies below a path of a running batch.
    #[must_use]
    pub fn meets_path(&self, path: &Path) -> bool {
        self.lanes_at(path).next().is_some()
    }

    /// Whether any path of `batch` meets a running batch.
    #[must_use]
    pub fn meets(&self, batch: &Batch) -> bool {
        paths_of(batch).iter().any(|p| self.meets_path(p))
    }

    /// The lanes, in order and each once, whose running batches `batch` meets: it may go on
    /// the one lane it meets, if that lane applies in order, or on any lane if it meets none.
    #[must_use]
    pub fn lanes_met(&self, batch: &Batch) -> Vec<u64> {
        let mut lanes: Vec<u64> = paths_of(batch)
            .iter()
            .flat_map(|p| self.lanes_at(p).collect::<Vec<_>>())
            .collect();
        lanes.sort_unstable();
        lanes.dedup();
        lanes
    }

    /// Records `batch`, whole, as taken and running on `lane`; returns its number. The caller
    /// has checked that it meets no running batch on another lane.
    pub fn fly(&mut self, batch: &Batch, lane: u64) -> u64 {
        self.takes += 1;
        self.next_id += 1;
        let paths = paths_of(batch);
        for p in &paths {
            self.busy.entry(p.clone()).or_default().push(lane);
        }
        self.queue.push_back(Flight {
            id: self.next_id,
            take: self.takes,
            upto: batch.upto,
            state: State::Running,
            paths,
            lane,
        });
        self.next_id
    }

    /// Records a batch just taken from the coalescer, split into what may start now and what
    /// meets a running batch, in that order; each part with its number for [`Flights::start`].
    /// Renames, which must stay in order with everything else, keep the whole batch waiting.
    pub fn take(&mut self, batch: Batch) -> Vec<(u64, Batch)> {
        if batch.is_empty() {
            // Numbered takes hold something: a failed batch waits for one that does.
            return Vec::new();
        }
        self.takes += 1;
        let (free, blocked) = if batch.renames.is_empty() {
            self.split(batch)
        } else {
            (Batch::default(), batch)
        };
        let mut parts = Vec::new();
        for part in [free, blocked] {
            if part.is_empty() {
                continue;
            }
            self.next_id += 1;
            self.queue.push_back(Flight {
                id: self.next_id,
                take: self.takes,
                upto: part.upto,
                state: State::Waiting,
                paths: Vec::new(),
                lane: 0,
            });
            parts.push((self.next_id, part));
        }
        parts
    }

    fn split(&self, batch: Batch) -> (Batch, Batch) {
        let upto = batch.upto;
        let mut free = Batch {
            upto,
            ..Batch::default()
        };
        let mut blocked = free.clone();
        for (list, free_list, blocked_list) in [
            (batch.puts, &mut free.puts, &mut blocked.puts),
            (batch.deletes, &mut free.deletes, &mut blocked.deletes),
            (batch.trees, &mut free.trees, &mut blocked.trees),
        ] {
            for p in list {
                if self.meets_path(&p) {
                    blocked_list.push(p);
                } else {
                    free_list.push(p);
                }
            }
        }
        (free, blocked)
    }

    /// Marks batch `id` (from [`Flights::take`]) as running, on lane 0; the caller has
    /// checked that it meets no running batch.
    pub fn start(&mut self, id: u64, batch: &Batch) {
        if let Some(f) = self.queue.iter_mut().find(|f| f.id == id) {
            f.state = State::Running;
            f.paths = paths_of(batch);
            for p in &f.paths {
                self.busy.entry(p.clone()).or_default().push(f.lane);
            }
        }
    }

    fn finish(&mut self, id: u64, state: State) {
        if let Some(f) = self.queue.iter_mut().find(|f| f.id == id) {
            f.state = state;
            for p in std::mem::take(&mut f.paths) {
                if let Some(lanes) = self.busy.get_mut(&p) {
                    if let Some(k) = lanes.iter().position(|&l| l == f.lane) {
                        lanes.swap_remove(k);
                    }
                    if lanes.is_empty() {
                        self.busy.remove(&p);
                    }
                }
            }
        }
    }

    /// Batch `id` landed: the journal number up to which the target now has every change, if
    /// that moved.
    pub fn landed(&mut self, id: u64) -> Option<u64> {
        self.finish(id, State::Landed);
        self.advance()
    }

    /// Batch `id` (running or waiting) failed and its changes are back in the coalescer, as are
    /// those of every batch failed before: the next take holds them all.
    pub fn failed(&mut self, id: u64) -> Option<u64> {
        self.finish(id, State::Failed { covered_by: 0 });
        let covered_by = self.takes + 1;
        for f in &mut self.queue {
            if let State::Failed { covered_by: c } = &mut f.state {
                *c = covered_by;
            }
        }
        self.advance()
    }

    fn covered(&self, take: u64) -> bool {
        let mut parts = self.queue.iter().filter(|f| f.take == take).peekable();
        parts.peek().is_some() && parts.all(|f| f.state == State::Landed)
    }

    fn advance(&mut self) -> Option<u64> {
        let before = self.acked;
        while let Some(front) = self.queue.front() {
            match front.state {
                // The other part of its take, behind it, has not landed.
                State::Landed if self.queue.iter().skip(1).any(|f| f.take == front.take) => {}
                State::Landed => self.acked = self.acked.max(front.upto),
                // Alone, nothing can be acknowledged past it before the next take lands.
                State::Failed { covered_by }
                    if self.queue.len() == 1 || self.covered(covered_by) => {}
                _ => break,
            }
            self.queue.pop_front();
        }
        (self.acked > before).then_some(self.acked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(puts: &[&str], deletes: &[&str], trees: &[&str], upto: u64) -> Batch {
        let v = |s: &[&str]| s.iter().map(PathBuf::from).collect();
        Batch {
            puts: v(puts),
            deletes: v(deletes),
            trees: v(trees),
            upto,
            ..Batch::default()
        }
    }

    fn start_all(f: &mut Flights, b: Batch) -> Vec<(u64, Batch)> {
        let parts = f.take(b);
        for (id, part) in &parts {
            if !f.meets(part) {
                f.start(*id, part);
            }
        }
        parts
    }

    #[test]
    fn a_path_meets_itself_its_ancestors_and_its_descendants_only() {
        let mut f = Flights::new();
        start_all(&mut f, batch(&["s/d1/f1", "s/d2"], &[], &[], 3));
        for p in ["s/d1/f1", "s/d1", "s", "", "s/d2", "s/d2/x/y"] {
            assert!(f.meets_path(Path::new(p)), "{p}");
        }
        for p in ["s/d1/f2", "s/d10", "s/d1/f1x", "t", "s/d", "s/d1x/f1"] {
            assert!(!f.meets_path(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn a_root_resync_meets_everything() {
        let mut f = Flights::new();
        start_all(&mut f, batch(&[], &[], &[""], 1));
        assert!(f.meets_path(Path::new("a/b")));
        let parts = f.take(batch(&["x"], &[], &[], 2));
        assert_eq!(parts.len(), 1);
        assert!(f.meets(&parts[0].1));
    }

    #[test]
    fn a_new_batch_splits_into_what_is_free_and_what_waits() {
        let mut f = Flights::new();
        start_all(&mut f, batch(&["a/1", "b"], &[], &[], 5));
        let parts = f.take(batch(&["a/1", "a/2", "c"], &["b/old"], &[], 9));
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1, batch(&["a/2", "c"], &[], &[], 9));
        assert_eq!(parts[1].1, batch(&["a/1"], &["b/old"], &[], 9));
        assert!(!f.meets(&parts[0].1));
        assert!(f.meets(&parts[1].1));
    }

    #[test]
    fn acknowledgements_wait_for_every_earlier_batch() {
        let mut f = Flights::new();
        let first = start_all(&mut f, batch(&["a"], &[], &[], 5));
        let second = start_all(&mut f, batch(&["b"], &[], &[], 9));
        assert_eq!(f.running(), 2);
        assert_eq!(f.landed(second[0].0), None, "the first has not landed");
        assert_eq!(f.landed(first[0].0), Some(9));
        assert!(f.is_empty());
    }

    #[test]
    fn both_parts_of_a_take_must_land_before_its_number_is_acknowledged() {
        let mut f = Flights::new();
        let first = start_all(&mut f, batch(&["a"], &[], &[], 5));
        let second = start_all(&mut f, batch(&["a", "b"], &[], &[], 9));
        assert_eq!(second.len(), 2);
        assert_eq!(f.landed(second[0].0), None);
        assert_eq!(f.landed(first[0].0), Some(5));
        f.start(second[1].0, &second[1].1);
        assert_eq!(f.landed(second[1].0), Some(9));
    }

    #[test]
    fn a_failed_batch_holds_acknowledgements_until_the_next_take_lands() {
        let mut f = Flights::new();
        let first = start_all(&mut f, batch(&["a"], &[], &[], 5));
        let second = start_all(&mut f, batch(&["b"], &[], &[], 9));
        assert_eq!(f.failed(first[0].0), None);
        // The second was taken before the first failed: it cannot cover it.
        assert_eq!(f.landed(second[0].0), None);
        let third = start_all(&mut f, batch(&["a", "c"], &[], &[], 12));
        assert_eq!(f.landed(third[0].0), Some(12));
        assert!(f.is_empty());
    }

    #[test]
    fn a_failure_of_the_covering_take_moves_the_cover_on() {
        let mut f = Flights::new();
        let first = start_all(&mut f, batch(&["a"], &[], &[], 5));
        let second = start_all(&mut f, batch(&["b"], &[], &[], 9));
        f.failed(first[0].0);
        let third = start_all(&mut f, batch(&["a"], &[], &[], 12));
        assert_eq!(f.failed(third[0].0), None);
        assert_eq!(f.landed(second[0].0), None);
        let fourth = start_all(&mut f, batch(&["a"], &[], &[], 14));
        assert_eq!(f.landed(fourth[0].0), Some(14));
    }

    #[test]
    fn a_lone_failure_leaves_nothing_behind() {
        let mut f = Flights::new();
        let first = start_all(&mut f, batch(&["a"], &[], &[], 5));
        assert_eq!(f.failed(first[0].0), None);
        assert!(f.is_empty());
        assert!(!f.meets_path(Path::new("a")));
    }

    #[test]
    fn a_batch_with_renames_waits_whole() {
        let mut f = Flights::new();
        let mut b = batch(&["x"], &[], &[], 3);
        b.renames.push(crate::coalesce::Rename {
            from: "p".into(),
            to: "q".into(),
            is_dir: false,
        });
        let parts = f.take(b.clone());
        assert_eq!(parts, vec![(1, b)]);
    }

    #[test]
    fn a_batch_meets_the_lanes_of_the_batches_it_touches() {
        let mut f = Flights::new();
        f.fly(&batch(&["s1/a", "s2/b"], &[], &[], 3), 0);
        f.fly(&batch(&["s3/c"], &["old"], &[], 5), 1);
        assert_eq!(
            f.lanes_met(&batch(&["s1/x", "s4/y"], &[], &[], 6)),
            Vec::<u64>::new()
        );
        assert_eq!(
            f.lanes_met(&batch(&["s1/a", "s2/b/z"], &[], &[], 6)),
            vec![0]
        );
        assert_eq!(f.lanes_met(&batch(&["s1/a"], &["s3"], &[], 6)), vec![0, 1]);
        assert_eq!(f.lanes_met(&batch(&[], &[], &[""], 6)), vec![0, 1]);
    }

    #[test]
    fn a_path_stays_busy_while_any_batch_of_its_lane_holds_it() {
        let mut f = Flights::new();
        let first = f.fly(&batch(&["a"], &[], &[], 3), 2);
        let second = f.fly(&batch(&["a", "b"], &[], &[], 5), 2);
        assert_eq!(f.landed(first), Some(3));
        assert_eq!(f.lanes_met(&batch(&["a"], &[], &[], 6)), vec![2]);
        assert_eq!(f.landed(second), Some(5));
        assert!(!f.meets_path(Path::new("a")));
        assert!(f.is_empty());
    }

    #[test]
    fn batches_on_several_lanes_are_acknowledged_in_take_order() {
        let mut f = Flights::new();
        let on0 = f.fly(&batch(&["a"], &[], &[], 3), 0);
        let on1 = f.fly(&batch(&["b"], &[], &[], 5), 1);
        let on2 = f.fly(&batch(&["c"], &[], &[], 8), 2);
        assert_eq!(f.landed(on2), None);
        assert_eq!(f.landed(on0), Some(3));
        assert_eq!(f.failed(on1), None, "the next take holds what failed");
        let again = f.fly(&batch(&["b", "d"], &[], &[], 9), 0);
        assert_eq!(f.landed(again), Some(9));
        assert!(f.is_empty());
    }
}
