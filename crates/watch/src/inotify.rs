//! The inotify backend: one actor owns the inotify fd and the tree of watches; callers pull
//! events with [`InotifyWatcher::next_event`].
//!
//! Recursion is done here, not by the kernel: every directory gets its own watch, added by a walk
//! that skips excluded directories. The walk is post-order — a directory is listed, its
//! subdirectories are watched, and only then the directory itself — so the walk's own reading
//! never shows as events, as with inotifywait. Each directory's modification time is taken before
//! it is listed and checked again once its watch exists — in the first walk of a tree as in the
//! walk of a new directory; if it moved, the directory is listed again, so nothing created between
//! the listing and the watch is missed. (This needs the time to move with every change, which
//! Linux makes sure of since 6.13 once the time has been read; older kernels stamp changes from a
//! clock that ticks every few milliseconds, and a change within the tick can go unseen.) Entries
//! found in a directory created while we run are reported as synthetic `CREATE`s.
//!
//! Watches form a tree: each holds its parent's watch descriptor and its own name, and paths are
//! rebuilt from that chain when an event arrives. This keeps memory to a few dozen bytes per
//! directory, and a renamed directory is one update however much lies below it. An overflowed
//! queue is reported as `Q_OVERFLOW`, and every root is walked again to add the watches that may
//! have been missed.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::OFlags;
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
use rustix::io::Errno;

use crate::event::{RawEvent, mask};
use crate::pairing::MOVE_TIMEOUT;
use crate::select::Selector;
use crate::{WatchError, limits};

/// What to watch and report.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Watch directories below the given ones too.
    pub recursive: bool,
    /// The events to report (`mask::*` bits).
    pub events: u32,
    /// Do not follow a symlink given as a path to watch (inotifywait's `--no-dereference`).
    pub no_dereference: bool,
    /// What is excluded or included.
    pub selector: Selector,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            recursive: true,
            events: mask::ALL,
            no_dereference: false,
            selector: Selector::new(),
        }
    }
}

#[derive(Debug)]
struct Watch {
    /// The watch of the parent directory; `None` for a root (and, for a moment, for a directory
    /// whose parent is not watched yet during a walk).
    parent: Option<i32>,
    /// The name in the parent; for a root, the path as given.
    name: Box<[u8]>,
    /// Index of the root it belongs to.
    root: u32,
    /// A directory (a root may be a file).
    is_dir: bool,
}

/// Events the watcher needs for itself when it recurses, whatever the user asked for.
const TRACKING: u32 =
    mask::CREATE | mask::MOVED_FROM | mask::MOVED_TO | mask::DELETE_SELF | mask::MOVE_SELF;

/// An inotify instance watching one or more trees.
pub struct InotifyWatcher {
    fd: OwnedFd,
    opts: WatchOptions,
    watches: HashMap<i32, Watch>,
    roots: Vec<PathBuf>,
    queue: VecDeque<RawEvent>,
    /// Watched directories moved out of their parent, waiting for their `MOVED_TO`:
    /// (cookie, their watch, when).
    moved_dirs: Vec<(u32, i32, Instant)>,
    buf: Vec<MaybeUninit<u8>>,
    /// Problems met while adding watches for new directories.
    errors: Vec<WatchError>,
}

/// An entry found while watching a new directory: (parent's `%w`, name, is a directory).
type Found = Vec<(PathBuf, Vec<u8>, bool)>;

fn io_err(op: &'static str, path: &Path, e: Errno) -> WatchError {
    WatchError::Io {
        op,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

fn mtime(path: &Path) -> Option<(i64, u64)> {
    rustix::fs::lstat(path)
        .ok()
        .map(|st| (st.st_mtime, st.st_mtime_nsec))
}

/// Whether directory `path`, whose modification time was `before` when it was listed, must be
/// listed again: its time moved, or was unknown.
fn changed(path: &Path, before: Option<(i64, u64)>) -> bool {
    before.is_none() || before != mtime(path)
}

/// The entries of directory `path` (without `.` and `..`) and whether each is a directory;
/// only the directories with `dirs_only`.
fn list(path: &Path, dirs_only: bool) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::open(path, flags, rustix::fs::Mode::empty()) else {
        return out;
    };
    let Ok(mut dir) = rustix::fs::Dir::new(fd) else {
        return out;
    };
    while let Some(Ok(entry)) = dir.read() {
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            rustix::fs::FileType::Directory => true,
            // Some filesystems do not fill in the type.
            rustix::fs::FileType::Unknown => {
                std::fs::symlink_metadata(path.join(OsStr::from_bytes(name)))
                    .is_ok_and(|md| md.is_dir())
            }
            _ => false,
        };
        if is_dir || !dirs_only {
            out.push((name.to_vec(), is_dir));
        }
    }
    out
}

/// A directory found by the start-up walk.
struct TreeDir {
    /// Index of its parent in the walk's list.
    parent: Option<u32>,
    /// Its name (for the root: its path as `%w` shows it).
    name: Box<[u8]>,
    /// Its modification time just before it was listed.
    mtime: Option<(i64, u64)>,
    /// Where its subdirectories are in the walk's list.
    children: std::ops::Range<u32>,
}

/// Lists every directory below `root` that the selector lets through, parents before children,
/// with as many threads as there are cores (listing is most of the cost of watching a tree).
fn walk_tree(
    root: &Path,
    root_name: Box<[u8]>,
    selector: &Selector,
    rel: &(dyn Fn(&Path) -> Vec<u8> + Sync),
) -> Vec<TreeDir> {
    use std::sync::{Condvar, Mutex};
    struct Shared {
        found: Vec<TreeDir>,
        todo: Vec<(u32, PathBuf)>,
        busy: usize,
    }
    let shared = Mutex::new(Shared {
        found: vec![TreeDir {
            parent: None,
            name: root_name,
            mtime: None,
            children: 0..0,
        }],
        todo: vec![(0, root.to_path_buf())],
        busy: 0,
    });
    let wake = Condvar::new();
    let worker = || {
        loop {
            let (index, path) = {
                let Ok(mut s) = shared.lock() else { return };
                loop {
                    if let Some(task) = s.todo.pop() {
                        s.busy += 1;
                        break task;
                    }
                    if s.busy == 0 {
                        wake.notify_all();
                        return;
                    }
                    s = match wake.wait(s) {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                }
            };
            let before = mtime(&path);
            let mut subdirs = Vec::new();
            for (name, _) in list(&path, true) {
                let child = path.join(OsStr::from_bytes(&name));
                if !selector.is_excluded(&child, &rel(&child), true) {
                    subdirs.push((name, child));
                }
            }
            let Ok(mut s) = shared.lock() else { return };
            let first = u32::try_from(s.found.len()).unwrap_or(u32::MAX);
            for (name, child) in subdirs {
                let i = u32::try_from(s.found.len()).unwrap_or(u32::MAX);
                s.found.push(TreeDir {
                    parent: Some(index),
                    name: name.into(),
                    mtime: None,
                    children: 0..0,
                });
                s.todo.push((i, child));
            }
            let end = u32::try_from(s.found.len()).unwrap_or(u32::MAX);
            if let Some(dir) = s.found.get_mut(index as usize) {
                dir.mtime = before;
                dir.children = first..end;
            }
            s.busy -= 1;
            wake.notify_all();
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(8);
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(worker);
        }
        worker();
    });
    shared.into_inner().map(|s| s.found).unwrap_or_default()
}

/// `path` as `%w` shows a directory: with a trailing `/`.
fn with_slash(path: &Path) -> PathBuf {
    let bytes = path.as_os_str().as_bytes();
    if bytes.ends_with(b"/") {
        return path.to_path_buf();
    }
    let mut v = bytes.to_vec();
    v.push(b'/');
    PathBuf::from(OsStr::from_bytes(&v))
}

impl InotifyWatcher {
    /// Creates the inotify instance.
    ///
    /// # Errors
    /// [`WatchError::TooManyInstances`] or the OS error.
    pub fn new(opts: WatchOptions) -> Result<Self, WatchError> {
        let fd =
            inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).map_err(|e| match e {
                Errno::MFILE => WatchError::TooManyInstances,
                e => io_err("inotify_init", Path::new(""), e),
            })?;
        Ok(InotifyWatcher {
            fd,
            opts,
            watches: HashMap::new(),
            roots: Vec::new(),
            queue: VecDeque::new(),
            moved_dirs: Vec::new(),
            buf: vec![MaybeUninit::uninit(); 64 * 1024],
            errors: Vec::new(),
        })
    }

    /// Whether events are waiting in user space (the next call returns at once).
    #[must_use]
    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Number of watches held (one per watched directory).
    #[must_use]
    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }

    /// Problems met since the last call while watching new directories.
    pub fn take_errors(&mut self) -> Vec<WatchError> {
        std::mem::take(&mut self.errors)
    }

    fn kernel_mask(&self) -> u32 {
        let base = self.opts.events & mask::ALL;
        if self.opts.recursive {
            base | TRACKING
        } else {
            base
        }
    }

    /// Starts watching `path` (and, when recursive, every directory below it).
    ///
    /// # Errors
    /// [`WatchError::NotFound`], [`WatchError::TooManyWatches`] (with the advice to give), or the
    /// OS error for the root itself.
    pub fn add(&mut self, path: &Path) -> Result<(), WatchError> {
        let meta = if self.opts.no_dereference {
            std::fs::symlink_metadata(path)
        } else {
            std::fs::metadata(path)
        };
        let meta = meta.map_err(|_| WatchError::NotFound(path.to_path_buf()))?;
        let root = u32::try_from(self.roots.len()).unwrap_or(u32::MAX);
        self.roots.push(path.to_path_buf());
        if !meta.is_dir() {
            let name = path.as_os_str().as_bytes().into();
            self.add_watch(
                path,
                Watch {
                    parent: None,
                    name,
                    root,
                    is_dir: false,
                },
                true,
            )?;
            return Ok(());
        }
        let name: Box<[u8]> = with_slash(path).as_os_str().as_bytes().into();
        if !self.opts.recursive {
            self.add_watch(
                path,
                Watch {
                    parent: None,
                    name,
                    root,
                    is_dir: true,
                },
                true,
            )?;
            return Ok(());
        }
        // List the whole tree first, on every core (no watch exists yet, so the listing makes no
        // events), then watch it deepest first, listing again each directory that changed since.
        let mut dirs = walk_tree(path, name, &self.opts.selector, &|p| {
            self.rel(root, p).to_vec()
        });
        let mut wds: Vec<Option<i32>> = vec![None; dirs.len()];
        let mut buf = Vec::new();
        for i in (0..dirs.len()).rev() {
            // The path, from the chain of parents.
            buf.clear();
            let mut chain = Vec::new();
            let mut cur = Some(i);
            while let Some(c) = cur {
                chain.push(c);
                cur = dirs.get(c).and_then(|d| d.parent).map(|p| p as usize);
            }
            for (n, c) in chain.iter().rev().enumerate() {
                if n > 0 {
                    buf.push(b'/');
                }
                if let Some(d) = dirs.get(*c) {
                    let part: &[u8] = &d.name;
                    buf.extend_from_slice(if n == 0 {
                        part.strip_suffix(b"/").unwrap_or(part)
                    } else {
                        part
                    });
                }
            }
            let dir_name = dirs
                .get_mut(i)
                .map(|d| std::mem::take(&mut d.name))
                .unwrap_or_default();
            let watch = Watch {
                parent: None,
                name: dir_name,
                root,
                is_dir: true,
            };
            let wd = self.add_watch(Path::new(OsStr::from_bytes(&buf)), watch, i == 0)?;
            if let Some(slot) = wds.get_mut(i) {
                *slot = wd;
            }
            // A directory made in it between its listing and its watch sent no event: it is in
            // a second listing. (Its subdirectories from the first one are watched by now.)
            if let (Some(wd), Some(dir)) = (wd, dirs.get(i)) {
                let mut path = PathBuf::from(OsStr::from_bytes(&buf));
                if changed(&path, dir.mtime) {
                    let known: Vec<Box<[u8]>> = wds
                        .get(dir.children.start as usize..dir.children.end as usize)
                        .unwrap_or_default()
                        .iter()
                        .flatten()
                        .filter_map(|c| self.watches.get(c).map(|w| w.name.clone()))
                        .collect();
                    for (child, _) in list(&path, true) {
                        if !known.iter().any(|k| **k == *child) {
                            self.visit(&mut path, &child, true, Some(wd), root, None)?;
                        }
                    }
                }
            }
        }
        for (dir, wd) in dirs.iter().zip(&wds) {
            let parent = dir
                .parent
                .and_then(|p| wds.get(p as usize).copied().flatten());
            if let (Some(wd), Some(parent)) = (wd, parent)
                && let Some(w) = self.watches.get_mut(wd)
            {
                w.parent = Some(parent);
            }
        }
        Ok(())
    }

    fn add_watch(
        &mut self,
        path: &Path,
        watch: Watch,
        is_root: bool,
    ) -> Result<Option<i32>, WatchError> {
        let mut flags = WatchFlags::from_bits_retain(self.kernel_mask());
        if !is_root || self.opts.no_dereference {
            flags |= WatchFlags::DONT_FOLLOW;
        }
        match inotify::add_watch(&self.fd, path, flags) {
            Ok(wd) => {
                self.watches.insert(wd, watch);
                Ok(Some(wd))
            }
            // Gone before we got to it: its parent's DELETE tells the story.
            Err(Errno::NOENT | Errno::NOTDIR) if !is_root => Ok(None),
            Err(Errno::NOSPC) => {
                let needed = self.roots.iter().map(|r| limits::count_dirs(r)).sum();
                Err(WatchError::TooManyWatches {
                    path: path.to_path_buf(),
                    limit: limits::read("max_user_watches"),
                    needed: Some(needed),
                })
            }
            Err(Errno::NOENT) => Err(WatchError::NotFound(path.to_path_buf())),
            Err(e) => Err(io_err("Couldn't watch", path, e)),
        }
    }

    /// The path below its root, for rsync-style rules.
    fn rel<'p>(&self, root: u32, path: &'p Path) -> &'p [u8] {
        let root_path = self
            .roots
            .get(root as usize)
            .map(|r| with_slash(r))
            .unwrap_or_default();
        let bytes = path.as_os_str().as_bytes();
        let rel = bytes
            .strip_prefix(root_path.as_os_str().as_bytes())
            .unwrap_or(bytes);
        rel.strip_suffix(b"/").unwrap_or(rel)
    }

    /// One entry `child` of directory `path` met by a walk: recorded in `found`, and watched
    /// (with everything below it) if it is a directory. Returns its watch.
    fn visit(
        &mut self,
        path: &mut PathBuf,
        child: &[u8],
        is_dir: bool,
        parent: Option<i32>,
        root: u32,
        found: Option<&mut Found>,
    ) -> Result<Option<i32>, WatchError> {
        path.push(OsStr::from_bytes(child));
        let mut wd = None;
        if !self
            .opts
            .selector
            .is_excluded(path, self.rel(root, path), is_dir)
        {
            let mut found = found;
            if let Some(found) = found.as_deref_mut() {
                found.push((
                    with_slash(path.parent().unwrap_or(Path::new(""))),
                    child.to_vec(),
                    is_dir,
                ));
            }
            if is_dir {
                let result = self.watch_tree(path, child.into(), parent, root, false, found);
                wd = match result {
                    Ok(w) => w,
                    Err(e) => {
                        path.pop();
                        return Err(e);
                    }
                };
            }
        }
        path.pop();
        Ok(wd)
    }

    /// Watches directory `path` and, if recursive, everything below it, deepest first. `name`
    /// and `parent` place it in the tree. Entries met are recorded in `found`. Returns its
    /// watch, or `None` if it vanished.
    fn watch_tree(
        &mut self,
        path: &mut PathBuf,
        name: Box<[u8]>,
        parent: Option<i32>,
        root: u32,
        is_root: bool,
        mut found: Option<&mut Found>,
    ) -> Result<Option<i32>, WatchError> {
        let check = self.opts.recursive;
        let before = if check { mtime(path) } else { None };
        let mut entries = if self.opts.recursive {
            list(path, false)
        } else {
            Vec::new()
        };
        let mut children = Vec::new();
        for (child, is_dir) in entries.clone() {
            if let Some(wd) = self.visit(path, &child, is_dir, None, root, found.as_deref_mut())? {
                children.push(wd);
            }
        }
        let Some(wd) = self.add_watch(
            path,
            Watch {
                parent,
                name,
                root,
                is_dir: true,
            },
            is_root,
        )?
        else {
            return Ok(None);
        };
        for child in children {
            if let Some(w) = self.watches.get_mut(&child) {
                w.parent = Some(wd);
            }
        }
        // Whatever appeared between the listing and the watch is in a second listing.
        if check && changed(path, before) {
            for (child, is_dir) in list(path, false) {
                if entries.iter().any(|(n, _)| *n == child) {
                    continue;
                }
                self.visit(path, &child, is_dir, Some(wd), root, found.as_deref_mut())?;
                entries.push((child, is_dir));
            }
        }
        Ok(Some(wd))
    }

    /// The `%w` of a watch: its root as given, then each name, directories ending in `/`.
    fn path_of(&self, wd: i32) -> Option<PathBuf> {
        let mut chain = Vec::new();
        let mut cur = wd;
        loop {
            let w = self.watches.get(&cur)?;
            chain.push(w);
            match w.parent {
                Some(p) if chain.len() < 4096 => cur = p,
                Some(_) => return None,
                None => break,
            }
        }
        let mut bytes = Vec::new();
        for (i, w) in chain.iter().rev().enumerate() {
            bytes.extend_from_slice(&w.name);
            if i > 0 && w.is_dir {
                bytes.push(b'/');
            }
        }
        Some(PathBuf::from(OsStr::from_bytes(&bytes)))
    }

    /// Whether watch `wd` is `ancestor` or lies below it.
    fn descends_from(&self, wd: i32, ancestor: i32) -> bool {
        let mut cur = Some(wd);
        let mut steps = 0;
        while let Some(c) = cur {
            if c == ancestor {
                return true;
            }
            steps += 1;
            if steps > 4096 {
                return false;
            }
            cur = self.watches.get(&c).and_then(|w| w.parent);
        }
        false
    }

    /// Forgets watch `top` and every watch below it (moved out of every watched tree).
    fn drop_watches_below(&mut self, top: i32) {
        let gone: Vec<i32> = self
            .watches
            .keys()
            .copied()
            .filter(|&wd| self.descends_from(wd, top))
            .collect();
        for wd in gone {
            let _ = inotify::remove_watch(&self.fd, wd);
            self.watches.remove(&wd);
        }
    }

    /// The next event, waiting at most `timeout` (forever with `None`). `Ok(None)`: timed out.
    ///
    /// # Errors
    /// Reading the inotify fd failed.
    pub fn next_event(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<RawEvent>, WatchError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(Some(ev));
            }
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) => Some(left),
                    None => return Ok(None),
                },
                None => None,
            };
            // Wake up in time to settle a directory moved out of the tree.
            let wait = match (wait, self.moved_dirs.first()) {
                (w, Some((.., seen))) => {
                    let settle = (*seen + MOVE_TIMEOUT).saturating_duration_since(Instant::now());
                    Some(w.map_or(settle, |w| w.min(settle)))
                }
                (w, None) => w,
            };
            if self.wait_readable(wait)? {
                self.read_batch()?;
            }
            self.settle_moved_dirs(Instant::now());
        }
    }

    fn wait_readable(&self, wait: Option<Duration>) -> Result<bool, WatchError> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let ts = wait.map(|w| Timespec {
            tv_sec: i64::try_from(w.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(w.subsec_nanos()),
        });
        match poll(&mut fds, ts.as_ref()) {
            Ok(n) => Ok(n > 0),
            Err(Errno::INTR) => Ok(false),
            Err(e) => Err(io_err("poll", Path::new("inotify"), e)),
        }
    }

    fn settle_moved_dirs(&mut self, now: Instant) {
        let expired: Vec<i32> = self
            .moved_dirs
            .iter()
            .filter(|(.., seen)| now.duration_since(*seen) >= MOVE_TIMEOUT)
            .map(|(_, wd, _)| *wd)
            .collect();
        self.moved_dirs
            .retain(|(.., seen)| now.duration_since(*seen) < MOVE_TIMEOUT);
        for wd in expired {
            self.drop_watches_below(wd);
        }
    }

    fn read_batch(&mut self) -> Result<(), WatchError> {
        let mut raw: Vec<(i32, u32, u32, Vec<u8>)> = Vec::new();
        {
            let mut reader = inotify::Reader::new(&self.fd, &mut self.buf);
            loop {
                match reader.next() {
                    Ok(e) => raw.push((
                        e.wd(),
                        e.events().bits(),
                        e.cookie(),
                        e.file_name()
                            .map(|n| n.to_bytes().to_vec())
                            .unwrap_or_default(),
                    )),
                    Err(Errno::AGAIN | Errno::INTR) => break,
                    Err(e) => return Err(io_err("read", Path::new("inotify"), e)),
                }
            }
        }
        let now = Instant::now();
        for (wd, m, cookie, name) in raw {
            self.handle(wd, m, cookie, name, now);
        }
        Ok(())
    }

    fn handle(&mut self, wd: i32, m: u32, cookie: u32, name: Vec<u8>, now: Instant) {
        if m & mask::Q_OVERFLOW != 0 {
            for root in self.roots.clone() {
                self.queue.push_back(RawEvent {
                    watch: root,
                    name: Vec::new(),
                    mask: m,
                    cookie: 0,
                    synthetic: false,
                });
            }
            // Directories created while events were lost have no watch yet: walk again
            // (existing watches are found again and keep their descriptors).
            for (i, root) in self.roots.clone().iter().enumerate() {
                if std::fs::metadata(root).is_ok_and(|md| md.is_dir()) {
                    let name: Box<[u8]> = with_slash(root).as_os_str().as_bytes().into();
                    let root_index = u32::try_from(i).unwrap_or(u32::MAX);
                    if let Err(e) =
                        self.watch_tree(&mut root.clone(), name, None, root_index, true, None)
                    {
                        self.errors.push(e);
                    }
                }
            }
            return;
        }
        if m & mask::IGNORED != 0 {
            self.watches.remove(&wd);
            return;
        }
        let Some(root) = self.watches.get(&wd).map(|w| w.root) else {
            return;
        };
        let Some(watch_path) = self.path_of(wd) else {
            return;
        };
        let full = if name.is_empty() {
            watch_path.clone()
        } else {
            watch_path.join(OsStr::from_bytes(&name))
        };
        let is_dir = m & mask::ISDIR != 0;
        let excluded = !name.is_empty()
            && self
                .opts
                .selector
                .is_excluded(&full, self.rel(root, &full), is_dir);
        let mut synthetic = Vec::new();
        if is_dir && self.opts.recursive && !excluded {
            if m & mask::MOVED_FROM != 0 {
                let child = self
                    .watches
                    .iter()
                    .find(|(_, w)| w.parent == Some(wd) && *w.name == *name)
                    .map(|(c, _)| *c);
                if let Some(child) = child {
                    self.moved_dirs.push((cookie, child, now));
                }
            } else if m & mask::MOVED_TO != 0 {
                match self.moved_dirs.iter().position(|(c, ..)| *c == cookie) {
                    Some(i) => {
                        let (_, child, _) = self.moved_dirs.remove(i);
                        if let Some(w) = self.watches.get_mut(&child) {
                            w.parent = Some(wd);
                            w.name = name.clone().into();
                            w.root = root;
                        }
                    }
                    None => {
                        if let Err(e) = self.watch_tree(
                            &mut full.clone(),
                            name.clone().into(),
                            Some(wd),
                            root,
                            false,
                            None,
                        ) {
                            self.errors.push(e);
                        }
                    }
                }
            } else if m & mask::CREATE != 0
                && let Err(e) = self.watch_tree(
                    &mut full.clone(),
                    name.clone().into(),
                    Some(wd),
                    root,
                    false,
                    Some(&mut synthetic),
                )
            {
                self.errors.push(e);
            }
        }
        // `isdir` among the requested events asks for every event on a directory, as in
        // inotifywait.
        let wanted = m & self.opts.events != 0;
        if wanted && !excluded && self.opts.selector.is_reported(&full) {
            self.queue.push_back(RawEvent {
                watch: watch_path,
                name,
                mask: m,
                cookie,
                synthetic: false,
            });
        }
        if self.opts.events & mask::CREATE != 0 {
            for (parent, child, child_is_dir) in synthetic {
                let ev = RawEvent {
                    watch: parent,
                    name: child,
                    mask: mask::CREATE | if child_is_dir { mask::ISDIR } else { 0 },
                    cookie: 0,
                    synthetic: true,
                };
                if self.opts.selector.is_reported(&ev.path()) {
                    self.queue.push_back(ev);
                }
            }
        }
    }
}
