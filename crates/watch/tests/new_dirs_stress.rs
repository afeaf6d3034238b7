//! Directories created while the watcher runs or while it is still adding its watches, filled at
//! once: every file written in them once the watch is in place must be reported with its exact
//! path, however the writer and the watcher's walks interleave. Busy threads compete for the CPU
//! meanwhile, so either side is preempted at random.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use watch::{InotifyWatcher, WatchOptions, mask};

/// The events `rtsync run` asks for (crates/cli/src/run.rs).
const EVENTS: u32 = mask::CREATE
    | mask::MODIFY
    | mask::CLOSE_WRITE
    | mask::ATTRIB
    | mask::DELETE
    | mask::MOVED_FROM
    | mask::MOVED_TO
    | mask::DELETE_SELF
    | mask::MOVE_SELF;

const ROUNDS: usize = 20;
const DIRS: usize = 4;
const FILES: usize = 60;

/// Spins on every core until dropped, so the watcher and the writer are preempted at random.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let n = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                        }
                    }
                })
            })
            .collect();
        Load { stop, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The directories of round `r`: flat ones under `data/`, and nested ones made by one
/// `create_dir_all` each.
fn round_dirs(root: &Path, r: usize) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = (0..DIRS)
        .map(|k| root.join(format!("data{r}/d{k}")))
        .collect();
    dirs.extend((0..DIRS).map(|k| root.join(format!("nest{r}/a/b{k}/c/d"))));
    dirs
}

/// Writes every round the way an upload directory fills (as `fill` in
/// crates/cli/tests/run_engine.rs): each file's directory is made just before it, if need be, so
/// the watcher meets directories that are filling while it reads them. Returns the files written.
fn write_all(root: &Path) -> Vec<PathBuf> {
    let mut written = Vec::new();
    for r in 0..ROUNDS {
        let dirs = round_dirs(root, r);
        for i in 0..FILES * dirs.len() {
            let d = &dirs[i % dirs.len()];
            fs::create_dir_all(d).unwrap();
            let f = d.join(format!("f{i}"));
            fs::write(&f, b"x").unwrap();
            written.push(f);
            if i.is_multiple_of(50) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    written
}

/// Every path reported as created or written, until the writer is `done` and nothing has come
/// for half a second. A consumer that syncs a journal now and then, as `rtsync run` does, so the
/// kernel queue fills meanwhile and is read in bigger batches.
fn collect(w: &mut InotifyWatcher, done: &AtomicBool) -> HashSet<PathBuf> {
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_since: Option<Instant> = None;
    let mut count = 0usize;
    loop {
        assert!(
            Instant::now() < deadline,
            "the writer and the watcher did not finish in 120 s"
        );
        match w.next_event(Some(Duration::from_millis(50))).unwrap() {
            Some(ev) => {
                quiet_since = None;
                count += 1;
                if count.is_multiple_of(97) {
                    std::thread::sleep(Duration::from_millis(3));
                }
                assert!(
                    ev.mask & mask::Q_OVERFLOW == 0,
                    "the queue overflowed: events were lost legitimately; write less"
                );
                if ev.mask & (mask::CREATE | mask::CLOSE_WRITE) != 0 {
                    seen.insert(ev.path());
                }
            }
            None if done.load(Ordering::SeqCst) => {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    break;
                }
            }
            None => {}
        }
    }
    let errors = w.take_errors();
    assert!(errors.is_empty(), "errors while watching: {errors:?}");
    seen
}

/// Fails listing the files of `expected` never reported, and their directories.
fn check(root: &Path, expected: &[PathBuf], seen: &HashSet<PathBuf>) {
    let missing: Vec<&PathBuf> = expected.iter().filter(|f| !seen.contains(*f)).collect();
    if missing.is_empty() {
        return;
    }
    let dirs: BTreeSet<&Path> = missing.iter().filter_map(|f| f.parent()).collect();
    let strays: BTreeSet<&PathBuf> = seen
        .iter()
        .filter(|p| !p.starts_with(root) || !p.exists())
        .collect();
    panic!(
        "{} of {} files never reported, in {} directories: {:?}\nfirst missing: {:?}\n\
         events on paths that do not exist: {:?}",
        missing.len(),
        expected.len(),
        dirs.len(),
        dirs,
        missing.iter().take(10).collect::<Vec<_>>(),
        strays.iter().take(20).collect::<Vec<_>>(),
    );
}

fn watcher() -> InotifyWatcher {
    InotifyWatcher::new(WatchOptions {
        events: EVENTS,
        no_dereference: true,
        ..WatchOptions::default()
    })
    .unwrap()
}

#[test]
fn every_file_in_new_directories_is_reported() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    let mut w = watcher();
    w.add(&root).unwrap();

    let _load = Load::start();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let root = root.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let written = write_all(&root);
            done.store(true, Ordering::SeqCst);
            written
        })
    };
    let seen = collect(&mut w, &done);
    let written = writer.join().unwrap();
    check(&root, &written, &seen);
}

/// One race of a writer against `add`: directories appear in the tree while `add` walks and
/// watches it. Every directory there once `add` has returned must be watched: a file written in
/// it afterwards must be reported.
fn race_the_first_walk() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    // A tree big enough that the first walk takes a while.
    for a in 0..40 {
        for b in 0..40 {
            fs::create_dir_all(root.join(format!("old/a{a}/b{b}"))).unwrap();
        }
    }
    let added = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (root, added, done) = (root.clone(), added.clone(), done.clone());
        std::thread::spawn(move || {
            let mut made: Vec<PathBuf> = Vec::new();
            let mut after_add: Vec<PathBuf> = Vec::new();
            let mut rounds_after = 0;
            for r in 0..100_000 {
                let dirs = round_dirs(&root, r);
                for i in 0..8 * dirs.len() {
                    let was_added = added.load(Ordering::SeqCst);
                    let d = &dirs[i % dirs.len()];
                    if fs::symlink_metadata(d).is_err() {
                        fs::create_dir_all(d).unwrap();
                        made.push(d.clone());
                    }
                    let f = d.join(format!("f{i}"));
                    fs::write(&f, b"x").unwrap();
                    if was_added {
                        after_add.push(f);
                    }
                }
                if added.load(Ordering::SeqCst) {
                    rounds_after += 1;
                    if rounds_after > 2 {
                        break;
                    }
                }
            }
            // One more file in every directory, well after `add` returned.
            for d in &made {
                let f = d.join("late");
                fs::write(&f, b"x").unwrap();
                after_add.push(f);
            }
            done.store(true, Ordering::SeqCst);
            after_add
        })
    };
    let mut w = watcher();
    w.add(&root).unwrap();
    added.store(true, Ordering::SeqCst);
    let seen = collect(&mut w, &done);
    let after_add = writer.join().unwrap();
    check(&root, &after_add, &seen);
}

#[test]
fn directories_made_during_the_first_walk_are_watched() {
    let _load = Load::start();
    for _ in 0..3 {
        race_the_first_walk();
    }
}
