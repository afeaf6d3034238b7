//! Model-based test of the [`Coalescer`]: whatever happens on the source, the batches it hands
//! out bring a target that started identical back to identical.
//!
//! The model:
//! - A tree is a map from relative path to [`Node`] (a file with a content number, or a
//!   directory); the root `""` is always a directory. Names come from `a`, `b`, `c` and paths are
//!   at most three deep, so operations collide often. Every write makes a content never seen
//!   before, so a missed update always shows.
//! - [`Step`]s are file system operations on the source, each resolved against the current
//!   source (indices pick among the existing files or directories; an operation that makes no
//!   sense there does nothing), plus time advances and takes. Each operation yields the
//!   [`Change`]s the watcher and [`engine::changes_of`] report for it: a creation is `Created`
//!   (then maybe `Written`, and `Modified` on close), a write `Written` (and `Modified` on
//!   close), a close or an attribute change `Modified`, `mkdir` is `CreatedDir`, a removal
//!   `Deleted` (for `rm -r`, maybe each entry below first, deepest first), a rename `Renamed`
//!   (or, as the engine reported it before renames were changes of their own, `Deleted` then
//!   `Created`/`CreatedDir`; maybe followed by the entries the watcher finds in a renamed
//!   directory), a queue overflow `Resync` of a directory. A [`Step::Lose`] drops the events of
//!   the next operation and reports a `Resync` of the directory holding everything it touched
//!   instead, as an overflow does. In one run a rename may also replace a file or an empty
//!   directory, as `rename(2)` does: inotify reports nothing of the entry replaced.
//! - A take hands out a batch, applied to the target the way `rtsync run` applies it
//!   (`Transfers::apply`), against the source as it is when it lands: every tree is made equal
//!   to the source's subtree (or deleted if the source lacks it), then every put and delete is
//!   synced as one entry, not recursively (`--files-from` with `-R --delete-missing-args`):
//!   sent if the source has it (a directory is only created), deleted with its contents if not.
//!   Implied parent directories are created. Before all that, every rename of the batch is
//!   applied as the target contract of [`engine::coalesce`] says, against the target and the
//!   source as they are when it lands: a file only from a file with the content the source's
//!   new name has now (any file if the new name is among the puts), not over a directory; a
//!   directory only from a directory and onto nothing; in both cases only into a directory
//!   and never into itself. A rename not applied is "missed", and `Resync(to)` is pushed with a
//!   new journal number. A batch lands at once or, like a transfer still
//!   running while the source changes, just before the next take (the worker sends one batch at
//!   a time). A take may fail instead: any subset of the batch lands, and the batch is requeued
//!   before the next take.
//! - Checks: the target equals the source after every successful take that lands at once and
//!   leaves nothing pending, and after a final series of takes 10 s later (each must be
//!   `is_ready`, and they must empty the coalescer); something pending always has a deadline;
//!   no more than `max_pending` paths are pending; a batch's lists are sorted, name no path
//!   twice and nothing below one of its trees or deletes; `Batch::upto` never passes the last
//!   journal number and never goes down unless a requeued batch may still be pending.
//!
//! It runs with the default settings, with tiny caps (5 pending, 2 per directory) and fewer
//! takes so the widening to subtree and whole-tree resyncs happens all the time, and with
//! replacing renames — each with renames reported the old way (`Deleted` + `Created`). Then
//! with renames reported as `Renamed`: with [`Settings::renames`] (replacing or not, and with
//! tiny caps), and without it (the coalescer splits them).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::{Batch, Change, Coalescer, Rename, Settings};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u32),
    Dir,
}

type Tree = BTreeMap<PathBuf, Node>;

const NAMES: [&str; 3] = ["a", "b", "c"];
const MAX_DEPTH: usize = 3;

/// How the events of a write come.
#[derive(Debug, Clone, Copy)]
enum Writes {
    /// No write event at all (a file moved in from outside, say); only for creations.
    None,
    /// Written, then closed.
    Closed,
    /// Written, and still open.
    Open,
}

#[derive(Debug, Clone)]
enum Step {
    /// A new file in the `dir`-th directory; a write if it is a file already.
    Create {
        dir: usize,
        name: usize,
        how: Writes,
    },
    /// New content for the `file`-th file.
    Write {
        file: usize,
        how: Writes,
    },
    /// The `file`-th file, open for writing, is closed.
    Close {
        file: usize,
    },
    /// An attribute change: new "content" for a file, nothing visible for a directory.
    Chmod {
        node: usize,
    },
    Mkdir {
        dir: usize,
        name: usize,
    },
    Delete {
        file: usize,
    },
    /// `rm -r` of the `dir`-th directory (never the root).
    RemoveTree {
        dir: usize,
        children_first: bool,
    },
    /// `mv`: to a path that does not exist (or, when `replace` is on, over a file or an empty
    /// directory).
    Rename {
        node: usize,
        dir: usize,
        name: usize,
        found_inside: bool,
    },
    /// The watcher's queue overflowed below the `dir`-th directory.
    Overflow {
        dir: usize,
    },
    /// The next operation's events are lost to an overflow.
    Lose,
    Advance {
        ms: u64,
    },
    /// Take a batch. It lands at once, or with `late` just before the next take (the source
    /// may have changed meanwhile); with `fail`, only the entries whose bit is set land and it
    /// is requeued.
    Take {
        fail: Option<u32>,
        late: bool,
    },
}

fn writes() -> impl Strategy<Value = Writes> {
    prop_oneof![Just(Writes::None), Just(Writes::Closed), Just(Writes::Open)]
}

/// Steps; `take` weighs takes (1 is rare: more pending, bigger batches). Overflows are rare,
/// since a resync covers everything that follows it below its directory.
fn step(take: u32) -> impl Strategy<Value = Step> {
    step_with(take, 6)
}

/// Steps, renames weighing `rename` (6 elsewhere).
fn step_with(take: u32, rename: u32) -> impl Strategy<Value = Step> {
    let pick = || 0..16usize;
    let name = || 0..NAMES.len();
    prop_oneof![
        8 => (pick(), name(), writes())
            .prop_map(|(dir, name, how)| Step::Create { dir, name, how }),
        6 => (pick(), writes()).prop_map(|(file, how)| Step::Write { file, how }),
        2 => pick().prop_map(|file| Step::Close { file }),
        2 => pick().prop_map(|node| Step::Chmod { node }),
        6 => (pick(), name()).prop_map(|(dir, name)| Step::Mkdir { dir, name }),
        4 => pick().prop_map(|file| Step::Delete { file }),
        4 => (pick(), any::<bool>())
            .prop_map(|(dir, children_first)| Step::RemoveTree { dir, children_first }),
        rename => (pick(), pick(), name(), any::<bool>()).prop_map(|(node, dir, name, found_inside)| {
            Step::Rename { node, dir, name, found_inside }
        }),
        1 => pick().prop_map(|dir| Step::Overflow { dir }),
        1 => Just(Step::Lose),
        6 => prop_oneof![0..30u64, 0..300u64, 400..1_000u64, Just(6_000u64)]
            .prop_map(|ms| Step::Advance { ms }),
        take * 2 => (prop_oneof![3 => Just(None), 1 => any::<u32>().prop_map(Some)], any::<bool>())
            .prop_map(|(fail, late)| Step::Take { fail, late }),
    ]
}

fn depth(p: &Path) -> usize {
    p.components().count()
}

fn pick<T: Clone>(v: &[T], i: usize) -> Option<T> {
    (!v.is_empty()).then(|| v[i % v.len()].clone())
}

/// `p` and everything below it.
fn subtree(t: &Tree, p: &Path) -> Vec<PathBuf> {
    t.keys().filter(|k| k.starts_with(p)).cloned().collect()
}

/// Removes `p` with everything below it; the root itself stays.
fn remove_tree(t: &mut Tree, p: &Path) {
    for k in subtree(t, p) {
        if !k.as_os_str().is_empty() {
            t.remove(&k);
        }
    }
}

/// Makes every parent of `p` a directory on the target, as `-R` does.
fn implied_dirs(dst: &mut Tree, p: &Path) {
    let parents: Vec<PathBuf> = p.ancestors().skip(1).map(Path::to_path_buf).collect();
    for a in parents.into_iter().rev() {
        if dst.get(&a) != Some(&Node::Dir) {
            remove_tree(dst, &a);
            dst.insert(a, Node::Dir);
        }
    }
}

/// A subtree resync: `rsync -a --delete -R src/./t dst`.
fn sync_tree(src: &Tree, dst: &mut Tree, t: &Path) {
    remove_tree(dst, t);
    if src.contains_key(t) {
        implied_dirs(dst, t);
        for k in subtree(src, t) {
            dst.insert(k.clone(), src[&k]);
        }
    }
}

/// One entry of a `--files-from` list, with `--delete-missing-args`.
fn sync_entry(src: &Tree, dst: &mut Tree, p: &Path) {
    match src.get(p) {
        None => remove_tree(dst, p),
        Some(&node) => {
            implied_dirs(dst, p);
            match (node, dst.get(p)) {
                (Node::Dir, Some(Node::Dir)) => {}
                _ => {
                    remove_tree(dst, p);
                    dst.insert(p.to_path_buf(), node);
                }
            }
        }
    }
}

/// Whether the target may apply rename `r` now (the contract in [`engine::coalesce`]).
fn rename_is_safe(src: &Tree, dst: &Tree, r: &Rename, put_follows: bool) -> bool {
    let parent = r.to.parent().unwrap_or(Path::new(""));
    if r.to.starts_with(&r.from) || r.from.starts_with(&r.to) || dst.get(parent) != Some(&Node::Dir)
    {
        return false;
    }
    match (r.is_dir, dst.get(&r.from)) {
        (true, Some(Node::Dir)) => !dst.contains_key(&r.to),
        (false, Some(Node::File(c))) => {
            dst.get(&r.to) != Some(&Node::Dir)
                && (put_follows || src.get(&r.to) == Some(&Node::File(*c)))
        }
        _ => false,
    }
}

/// What the target remembers of what it applied, for directory renames (see [`apply`]).
#[derive(Default)]
struct Memory {
    /// The journal number when each path was applied, and whether it was a tree.
    applied: Vec<(u64, PathBuf, bool)>,
    /// The journal number of each rename reported, by (from, to).
    renamed_at: HashMap<(PathBuf, PathBuf), u64>,
    /// The journal number now.
    seq: u64,
}

/// What a failed transfer managed: the entries whose bit is set in `landed`. Returns the new
/// names of the renames missed.
///
/// After a directory rename, whatever was applied at or below its old name since the rename
/// happened on the source is applied again under the new name, and a subtree synced at or above
/// the old name since then means the new name is synced whole: a batch planned after the rename
/// (before its event arrived) found nothing there and deleted it on the target, or found what
/// was made there since.
fn apply(src: &Tree, dst: &mut Tree, b: &Batch, landed: u32, mem: &mut Memory) -> Vec<PathBuf> {
    let mut bits = (0..32).cycle().map(|i| landed & (1 << i) != 0);
    let mut missed = Vec::new();
    for r in &b.renames {
        if bits.next() != Some(true) {
            continue;
        }
        if !rename_is_safe(src, dst, r, b.puts.contains(&r.to)) {
            missed.push(r.to.clone());
            continue;
        }
        remove_tree(dst, &r.to);
        let moved: Vec<(PathBuf, Node)> = subtree(dst, &r.from)
            .into_iter()
            .map(|p| {
                let rest = p
                    .strip_prefix(&r.from)
                    .unwrap_or(Path::new(""))
                    .to_path_buf();
                let node = dst[&p];
                let new = if rest.as_os_str().is_empty() {
                    r.to.clone()
                } else {
                    r.to.join(rest)
                };
                (new, node)
            })
            .collect();
        remove_tree(dst, &r.from);
        dst.extend(moved);
        if r.is_dir {
            let since = mem
                .renamed_at
                .get(&(r.from.clone(), r.to.clone()))
                .copied()
                .unwrap_or(0);
            let again: Vec<(PathBuf, bool)> = mem
                .applied
                .iter()
                .filter(|(at, ..)| *at >= since)
                .filter_map(|(_, p, tree)| match p.strip_prefix(&r.from) {
                    Ok(rest) if rest.as_os_str().is_empty() => Some((r.to.clone(), *tree)),
                    Ok(rest) => Some((r.to.join(rest), *tree)),
                    // A subtree synced above the old name: it may hold anything now.
                    Err(_) if *tree && r.from.starts_with(p) => Some((r.to.clone(), true)),
                    Err(_) => None,
                })
                .collect();
            for (p, tree) in again {
                if tree {
                    sync_tree(src, dst, &p);
                } else {
                    sync_entry(src, dst, &p);
                }
            }
        }
    }
    for t in &b.trees {
        if bits.next() == Some(true) {
            sync_tree(src, dst, t);
            mem.applied.push((mem.seq, t.clone(), true));
        }
    }
    for p in b.puts.iter().chain(&b.deletes) {
        if bits.next() == Some(true) {
            sync_entry(src, dst, p);
            mem.applied.push((mem.seq, p.clone(), false));
        }
    }
    missed
}

/// Lists sorted, no path twice, nothing below a tree or a delete (those cover it).
fn well_formed(b: &Batch) -> Result<(), String> {
    let lists = [&b.trees, &b.puts, &b.deletes];
    if lists.iter().any(|l| l.windows(2).any(|w| w[0] >= w[1])) {
        return Err(format!("a list is not sorted or has duplicates: {b:?}"));
    }
    let all: Vec<&PathBuf> = lists.iter().flat_map(|l| l.iter()).collect();
    for (i, p) in all.iter().enumerate() {
        for (j, q) in all.iter().enumerate() {
            if i != j && p == q {
                return Err(format!("{} is in two lists: {b:?}", p.display()));
            }
        }
    }
    for cover in b.trees.iter().chain(&b.deletes) {
        if let Some(p) = all.iter().find(|p| p.starts_with(cover) && **p != cover) {
            return Err(format!(
                "{} is below {}: {b:?}",
                p.display(),
                cover.display()
            ));
        }
        if let Some(r) = b.renames.iter().find(|r| r.to.starts_with(cover)) {
            return Err(format!(
                "rename to {} at or below {}: {b:?}",
                r.to.display(),
                cover.display()
            ));
        }
    }
    // The renames of one batch never touch each other's paths.
    let ends: Vec<&PathBuf> = b.renames.iter().flat_map(|r| [&r.from, &r.to]).collect();
    for (i, p) in ends.iter().enumerate() {
        for q in &ends[i + 1..] {
            if p.starts_with(q) || q.starts_with(p) {
                return Err(format!("renames meet at {}: {b:?}", p.display()));
            }
        }
    }
    Ok(())
}

fn show(t: &Tree) -> String {
    t.iter()
        .map(|(k, n)| match n {
            Node::Dir => format!("{}/", k.display()),
            Node::File(c) => format!("{}={c}", k.display()),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

struct Model {
    settings: Settings,
    /// Whether a rename may replace an existing file, as `rename(2)` does.
    replace: bool,
    /// Whether renames are reported as `Renamed` (else as `Deleted` + `Created`).
    renamed: bool,
    /// A missed rename's resync was pushed.
    fell_back: bool,
    /// What the target remembers.
    mem: Memory,
    c: Coalescer,
    src: Tree,
    dst: Tree,
    now: Instant,
    seq: u64,
    content: u32,
    lose_next: bool,
    /// The batch sent last, not yet landed or requeued: (batch, landed entries, landed yet).
    in_flight: Option<(Batch, Option<u32>, bool)>,
    last_upto: u64,
    /// A requeued batch (numbered 0) may still be pending, so `upto` may go down.
    requeue_in_play: bool,
    trace: String,
}

impl Model {
    fn new(settings: Settings, replace: bool, renamed: bool) -> Self {
        let mut src = Tree::new();
        src.insert(PathBuf::new(), Node::Dir);
        Model {
            settings,
            replace,
            renamed,
            fell_back: false,
            mem: Memory::default(),
            c: Coalescer::new(settings),
            dst: src.clone(),
            src,
            now: Instant::now(),
            seq: 0,
            content: 0,
            lose_next: false,
            in_flight: None,
            last_upto: 0,
            requeue_in_play: false,
            trace: String::new(),
        }
    }

    fn fresh(&mut self) -> u32 {
        self.content += 1;
        self.content
    }

    fn files(&self) -> Vec<PathBuf> {
        self.src
            .iter()
            .filter(|(_, n)| matches!(n, Node::File(_)))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Directories, the root first; `room`: only those that may hold another level.
    fn dirs(&self, room: bool) -> Vec<PathBuf> {
        self.src
            .iter()
            .filter(|(k, n)| **n == Node::Dir && (!room || depth(k) < MAX_DEPTH))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn nodes(&self) -> Vec<PathBuf> {
        self.src.keys().skip(1).cloned().collect()
    }

    fn push(&mut self, changes: Vec<Change>) {
        let changes = if std::mem::take(&mut self.lose_next) && !changes.is_empty() {
            // The events are lost; the overflow names a directory holding all of them.
            let up = |p: &Path| p.parent().unwrap_or(Path::new("")).to_path_buf();
            let touched = |ch: &Change| match ch {
                Change::Resync(p) => vec![p.clone()],
                Change::Renamed { from, to, .. } => vec![up(from), up(to)],
                _ => vec![up(ch.path())],
            };
            let mut common = touched(&changes[0])[0].clone();
            for t in changes.iter().flat_map(touched) {
                while !t.starts_with(&common) {
                    common = up(&common);
                }
            }
            assert_eq!(self.src.get(&common), Some(&Node::Dir));
            vec![Change::Resync(common)]
        } else {
            changes
        };
        for ch in changes {
            self.seq += 1;
            let _ = writeln!(self.trace, "  push {ch:?}");
            if let Change::Renamed { from, to, .. } = &ch {
                self.mem
                    .renamed_at
                    .insert((from.clone(), to.clone()), self.seq);
            }
            self.c.push(&ch, self.seq, self.now);
        }
    }

    fn write_changes(p: &Path, how: Writes, out: &mut Vec<Change>) {
        match how {
            Writes::None => {}
            Writes::Closed => {
                out.push(Change::Written(p.to_path_buf()));
                out.push(Change::Modified(p.to_path_buf()));
            }
            Writes::Open => out.push(Change::Written(p.to_path_buf())),
        }
    }

    fn step(&mut self, s: &Step) -> Result<(), String> {
        let mut out = Vec::new();
        match *s {
            Step::Create { dir, name, how } => {
                let Some(d) = pick(&self.dirs(true), dir) else {
                    return Ok(());
                };
                let p = d.join(NAMES[name]);
                match self.src.get(&p) {
                    None => out.push(Change::Created(p.clone())),
                    Some(Node::File(_)) => {}
                    Some(Node::Dir) => return Ok(()),
                }
                let content = self.fresh();
                self.src.insert(p.clone(), Node::File(content));
                // Opening an existing file for writing and closing it reports a close anyway.
                let how = match (how, out.is_empty()) {
                    (Writes::None, true) => Writes::Closed,
                    _ => how,
                };
                Self::write_changes(&p, how, &mut out);
            }
            Step::Write { file, how } => {
                let Some(p) = pick(&self.files(), file) else {
                    return Ok(());
                };
                let content = self.fresh();
                self.src.insert(p.clone(), Node::File(content));
                let how = match how {
                    Writes::None => Writes::Closed,
                    how => how,
                };
                Self::write_changes(&p, how, &mut out);
            }
            Step::Close { file } => {
                let Some(p) = pick(&self.files(), file) else {
                    return Ok(());
                };
                out.push(Change::Modified(p));
            }
            Step::Chmod { node } => {
                let Some(p) = pick(&self.nodes(), node) else {
                    return Ok(());
                };
                if let Some(Node::File(_)) = self.src.get(&p) {
                    let content = self.fresh();
                    self.src.insert(p.clone(), Node::File(content));
                }
                out.push(Change::Modified(p));
            }
            Step::Mkdir { dir, name } => {
                let Some(d) = pick(&self.dirs(true), dir) else {
                    return Ok(());
                };
                let p = d.join(NAMES[name]);
                if self.src.contains_key(&p) {
                    return Ok(());
                }
                self.src.insert(p.clone(), Node::Dir);
                out.push(Change::CreatedDir(p));
            }
            Step::Delete { file } => {
                let Some(p) = pick(&self.files(), file) else {
                    return Ok(());
                };
                self.src.remove(&p);
                out.push(Change::Deleted(p));
            }
            Step::RemoveTree {
                dir,
                children_first,
            } => {
                let dirs = self.dirs(false);
                let Some(d) = pick(&dirs[1..], dir) else {
                    return Ok(());
                };
                let gone = subtree(&self.src, &d);
                remove_tree(&mut self.src, &d);
                if children_first {
                    // Each directory's entries before it: the reverse of path order.
                    out.extend(gone.into_iter().skip(1).rev().map(Change::Deleted));
                }
                out.push(Change::Deleted(d));
            }
            Step::Rename {
                node,
                dir,
                name,
                found_inside,
            } => {
                let Some(from) = pick(&self.nodes(), node) else {
                    return Ok(());
                };
                let Some(d) = pick(&self.dirs(true), dir) else {
                    return Ok(());
                };
                let to = d.join(NAMES[name]);
                let is_dir = self.src[&from] == Node::Dir;
                if to.starts_with(&from) {
                    return Ok(());
                }
                // rename(2) replaces a file by a file and an empty directory by a directory,
                // and inotify says nothing of what was replaced.
                match self.src.get(&to) {
                    None => {}
                    Some(Node::File(_)) if self.replace && !is_dir => {}
                    Some(Node::Dir)
                        if self.replace && is_dir && subtree(&self.src, &to).len() == 1 => {}
                    Some(_) => return Ok(()),
                }
                let moved = subtree(&self.src, &from);
                if moved
                    .iter()
                    .any(|p| depth(&to) + depth(p) - depth(&from) > MAX_DEPTH)
                {
                    return Ok(());
                }
                self.src.remove(&to);
                let entries: Vec<(PathBuf, Node)> = moved
                    .iter()
                    .map(|p| {
                        let rest = p.strip_prefix(&from).unwrap_or(Path::new(""));
                        let new = if rest.as_os_str().is_empty() {
                            to.clone()
                        } else {
                            to.join(rest)
                        };
                        (new, self.src[p])
                    })
                    .collect();
                remove_tree(&mut self.src, &from);
                self.src.extend(entries.iter().cloned());
                if self.renamed {
                    out.push(Change::Renamed {
                        from,
                        to: to.clone(),
                        is_dir,
                    });
                } else {
                    out.push(Change::Deleted(from));
                }
                if is_dir {
                    if !self.renamed {
                        out.push(Change::CreatedDir(to));
                    }
                    if found_inside {
                        // The watcher reads the new directory and reports what it finds.
                        for (p, n) in entries.into_iter().skip(1) {
                            out.push(match n {
                                Node::Dir => Change::CreatedDir(p),
                                Node::File(_) => Change::Created(p),
                            });
                        }
                    }
                } else if !self.renamed {
                    out.push(Change::Created(to));
                }
            }
            Step::Overflow { dir } => {
                let Some(d) = pick(&self.dirs(false), dir) else {
                    return Ok(());
                };
                out.push(Change::Resync(d));
            }
            Step::Lose => {
                self.lose_next = true;
                return Ok(());
            }
            Step::Advance { ms } => {
                self.now += Duration::from_millis(ms);
                let _ = writeln!(self.trace, "  +{ms} ms");
                return Ok(());
            }
            Step::Take { fail, late } => return self.take(fail, late),
        }
        self.push(out);
        if self.c.len() > self.settings.max_pending {
            return Err(format!("{} pending, past the cap", self.c.len()));
        }
        if !self.c.is_empty() && self.c.deadline().is_none() {
            return Err("something is pending but there is no deadline".into());
        }
        Ok(())
    }

    /// The batch in flight lands (all of it, or what `fail` says) and, if it failed, is
    /// requeued.
    fn land(&mut self) {
        let Some((b, fail, landed)) = self.in_flight.take() else {
            return;
        };
        if !landed {
            let _ = writeln!(
                self.trace,
                "  lands{}",
                if fail.is_some() { " (partly)" } else { "" }
            );
            let missed = self.apply(&b, fail);
            self.fall_back(missed);
        }
        if fail.is_some() {
            let _ = writeln!(self.trace, "  requeue");
            self.c.requeue(b, self.now);
            self.requeue_in_play = true;
        }
    }

    fn apply(&mut self, b: &Batch, fail: Option<u32>) -> Vec<PathBuf> {
        self.mem.seq = self.seq;
        apply(
            &self.src,
            &mut self.dst,
            b,
            fail.unwrap_or(u32::MAX),
            &mut self.mem,
        )
    }

    /// Renames the target missed: their new names are resynced, journalled as new changes.
    fn fall_back(&mut self, missed: Vec<PathBuf>) {
        self.fell_back |= !missed.is_empty();
        for to in missed {
            let _ = writeln!(self.trace, "  missed rename to {}", to.display());
            self.seq += 1;
            self.c.push(&Change::Resync(to), self.seq, self.now);
        }
    }

    fn take(&mut self, fail: Option<u32>, late: bool) -> Result<(), String> {
        self.land();
        let b = self.c.take(self.now);
        let _ = writeln!(
            self.trace,
            "  take {:?}{}{}",
            b,
            if fail.is_some() { " (fails)" } else { "" },
            if late { " (lands later)" } else { "" }
        );
        well_formed(&b)?;
        if b.upto > self.seq {
            return Err(format!("upto {} past the last change {}", b.upto, self.seq));
        }
        if !self.requeue_in_play && b.upto < self.last_upto {
            return Err(format!("upto went down: {} → {}", self.last_upto, b.upto));
        }
        self.last_upto = b.upto;
        if self.c.is_empty() {
            self.requeue_in_play = false;
        }
        if !late {
            let missed = self.apply(&b, fail);
            self.fall_back(missed);
            if fail.is_none() && self.c.is_empty() && self.src != self.dst {
                return Err("nothing pending, yet the target differs".into());
            }
        }
        self.in_flight = Some((b, fail, !late));
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        self.land();
        self.now += Duration::from_secs(10);
        let _ = writeln!(self.trace, "  +10 s");
        for _ in 0..4 {
            if self.c.is_empty() {
                break;
            }
            if !self.c.is_ready(self.now) {
                if !std::mem::take(&mut self.fell_back) {
                    return Err(format!("pending but not ready: {:?}", self.c.deadline()));
                }
                // A missed rename's resync, pushed just now, settles first.
                self.now += Duration::from_secs(10);
                let _ = writeln!(self.trace, "  +10 s");
            }
            self.take(None, false)?;
        }
        self.land();
        if !self.c.is_empty() {
            return Err("still pending after the final takes".into());
        }
        if self.src != self.dst {
            return Err("the target differs at the end".into());
        }
        Ok(())
    }
}

fn check(settings: Settings, replace: bool, steps: &[Step]) -> Result<(), TestCaseError> {
    check_renamed(settings, replace, false, steps)
}

fn check_renamed(
    settings: Settings,
    replace: bool,
    renamed: bool,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let mut m = Model::new(settings, replace, renamed);
    let result = steps
        .iter()
        .try_for_each(|s| m.step(s))
        .and_then(|()| m.finish());
    result.map_err(|why| {
        TestCaseError::fail(format!(
            "{why}\nsource: {}\ntarget: {}\nhistory:\n{}",
            show(&m.src),
            show(&m.dst),
            m.trace
        ))
    })
}

fn with_renames(settings: Settings) -> Settings {
    Settings {
        renames: true,
        ..settings
    }
}

fn tiny() -> Settings {
    Settings {
        max_pending: 5,
        max_per_dir: 2,
        ..Settings::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn batches_converge_with_default_settings(steps in prop::collection::vec(step(4), 1..60)) {
        check(Settings::default(), false, &steps)?;
    }

    /// Fewer takes, so the caps are reached.
    #[test]
    fn batches_converge_with_tiny_caps(steps in prop::collection::vec(step(1), 1..60)) {
        check(tiny(), false, &steps)?;
    }

    #[test]
    fn batches_converge_when_renames_replace(steps in prop::collection::vec(step(2), 1..60)) {
        check(Settings::default(), true, &steps)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Renames as renames, over files and empty directories too.
    #[test]
    fn renames_as_renames_converge(steps in prop::collection::vec(step_with(3, 16), 1..90)) {
        check_renamed(with_renames(Settings::default()), true, true, &steps)?;
    }

    #[test]
    fn renames_as_renames_converge_onto_free_names(
        steps in prop::collection::vec(step_with(3, 16), 1..90)
    ) {
        check_renamed(with_renames(Settings::default()), false, true, &steps)?;
    }

    #[test]
    fn renames_as_renames_converge_with_tiny_caps(
        steps in prop::collection::vec(step_with(1, 16), 1..90)
    ) {
        check_renamed(with_renames(tiny()), true, true, &steps)?;
    }

    /// `Renamed` changes without the setting: the coalescer splits them.
    #[test]
    fn renamed_changes_converge_without_the_setting(
        steps in prop::collection::vec(step_with(3, 16), 1..90)
    ) {
        check_renamed(Settings::default(), true, true, &steps)?;
    }
}
