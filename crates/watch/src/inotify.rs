//! The inotify backend: one actor owns the inotify fd and the map from watch descriptors to
//! paths; callers pull events with [`InotifyWatcher::next_event`].
//!
//! Recursion is done here, not by the kernel: every directory gets its own watch, added by a walk
//! that skips excluded directories. When a directory is created, its watch is added *first* and
//! the directory read *afterwards*, so an entry created in between is seen by the read even
//! though no event reached us for it; such entries are reported as synthetic `CREATE`s. Renames
//! of watched directories rewrite the paths of every watch below them, so later events carry the
//! new paths. An overflowed queue is reported as `Q_OVERFLOW` and every root is walked again to
//! add the watches that may have been missed.

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
    /// The path as reported in `%w`: directories end in `/`.
    path: PathBuf,
    /// Index of the root it belongs to.
    root: usize,
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
    /// Directories moved out of a watched directory, waiting for their `MOVED_TO`.
    moved_dirs: Vec<(u32, PathBuf, Instant)>,
    buf: Vec<MaybeUninit<u8>>,
    /// Problems met while adding watches for new directories (the caller should rescan those).
    errors: Vec<WatchError>,
}

fn dir_path(path: &Path) -> PathBuf {
    let mut bytes = path.as_os_str().as_bytes().to_vec();
    if !bytes.ends_with(b"/") {
        bytes.push(b'/');
    }
    PathBuf::from(OsStr::from_bytes(&bytes))
}

/// The entries of a directory (without `.` and `..`) and whether each is a directory.
fn read_names(dir: &mut rustix::fs::Dir, path: &Path) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
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
        out.push((name.to_vec(), is_dir));
    }
    out
}

fn io_err(op: &'static str, path: &Path, e: Errno) -> WatchError {
    WatchError::Io {
        op,
        path: path.to_path_buf(),
        source: e.into(),
    }
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

    /// Number of watches held (one per watched directory).
    #[must_use]
    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }

    /// Problems met since the last call while watching new directories (each such directory
    /// is also reported as a `Q_OVERFLOW`-style rescan of its root by the engine).
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
        let root = self.roots.len();
        self.roots.push(path.to_path_buf());
        if meta.is_dir() {
            self.add_tree(&dir_path(path), root, true, None)
        } else {
            self.add_watch(path, root, true).map(|_| ())
        }
    }

    fn add_watch(&mut self, path: &Path, root: usize, is_root: bool) -> Result<bool, WatchError> {
        let mut flags = WatchFlags::from_bits_retain(self.kernel_mask());
        if !is_root || self.opts.no_dereference {
            flags |= WatchFlags::DONT_FOLLOW;
        }
        match inotify::add_watch(&self.fd, path, flags) {
            Ok(wd) => {
                self.watches.insert(
                    wd,
                    Watch {
                        path: path.to_path_buf(),
                        root,
                    },
                );
                Ok(true)
            }
            // Gone before we got to it: its parent's DELETE tells the story.
            Err(Errno::NOENT | Errno::NOTDIR) if !is_root => Ok(false),
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

    fn rel<'p>(&self, root: usize, path: &'p Path) -> &'p [u8] {
        let root_path = self
            .roots
            .get(root)
            .map(|r| dir_path(r))
            .unwrap_or_default();
        let bytes = path.as_os_str().as_bytes();
        let rel = bytes
            .strip_prefix(root_path.as_os_str().as_bytes())
            .unwrap_or(bytes);
        rel.strip_suffix(b"/").unwrap_or(rel)
    }

    /// Watches `dir` (a path ending in `/`) and, if recursive, the directories below it. With
    /// `found`, every entry met is recorded as (parent watch path, name, is_dir).
    ///
    /// At start-up (`is_root`) the tree is listed first and watched afterwards, as inotifywait
    /// does, so that our own reading produces no events. A directory created while we run is
    /// watched first and read afterwards, so nothing created in it can slip between the two.
    fn add_tree(
        &mut self,
        dir: &Path,
        root: usize,
        is_root: bool,
        mut found: Option<&mut Vec<(PathBuf, Vec<u8>, bool)>>,
    ) -> Result<(), WatchError> {
        if is_root {
            let mut dirs = vec![dir.to_path_buf()];
            let mut i = 0;
            while let (true, Some(d)) = (self.opts.recursive, dirs.get(i).cloned()) {
                dirs.extend(self.subdirs(&d, root, None));
                i += 1;
            }
            for (n, d) in dirs.iter().enumerate() {
                self.add_watch(d, root, n == 0)?;
            }
            return Ok(());
        }
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            // Read first, watch, then read again only if the directory changed in between
            // (`fstat` makes no event). Nothing created in between is missed, and our reading
            // shows on the parent's watch only, as inotifywait's does.
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let Ok(fd) = rustix::fs::open(&dir, flags, rustix::fs::Mode::empty()) else {
                continue;
            };
            let Ok(mut listing) = rustix::fs::Dir::new(fd) else {
                continue;
            };
            let before = listing
                .stat()
                .map(|st| (st.st_mtime, st.st_mtime_nsec))
                .ok();
            let mut names = read_names(&mut listing, &dir);
            // Closed before the watch exists, so its CLOSE_NOWRITE shows only on the parent.
            drop(listing);
            if !self.add_watch(&dir, root, false)? || !self.opts.recursive {
                continue;
            }
            let after = rustix::fs::lstat(&dir)
                .map(|st| (st.st_mtime, st.st_mtime_nsec))
                .ok();
            if before.is_none() || before != after {
                let Ok(fd) = rustix::fs::open(&dir, flags, rustix::fs::Mode::empty()) else {
                    continue;
                };
                let Ok(mut listing) = rustix::fs::Dir::new(fd) else {
                    continue;
                };
                for entry in read_names(&mut listing, &dir) {
                    if !names.iter().any(|(n, _)| *n == entry.0) {
                        names.push(entry);
                    }
                }
            }
            for (name, is_dir) in names {
                let path = dir.join(OsStr::from_bytes(&name));
                if self
                    .opts
                    .selector
                    .is_excluded(&path, self.rel(root, &path), is_dir)
                {
                    continue;
                }
                if let Some(found) = found.as_deref_mut() {
                    found.push((dir.clone(), name, is_dir));
                }
                if is_dir {
                    stack.push(dir_path(&path));
                }
            }
        }
        Ok(())
    }

    /// The subdirectories of `dir` that are not excluded, as watch paths; every entry met is
    /// recorded in `found`.
    fn subdirs(
        &self,
        dir: &Path,
        root: usize,
        mut found: Option<&mut Vec<(PathBuf, Vec<u8>, bool)>>,
    ) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let path = dir.join(entry.file_name());
            if self
                .opts
                .selector
                .is_excluded(&path, self.rel(root, &path), is_dir)
            {
                continue;
            }
            if let Some(found) = found.as_deref_mut() {
                found.push((
                    dir.to_path_buf(),
                    entry.file_name().as_bytes().to_vec(),
                    is_dir,
                ));
            }
            if is_dir {
                out.push(dir_path(&path));
            }
        }
        out
    }

    /// Rewrites the paths of `old` and every watch below it to start with `new`.
    fn rename_watches(&mut self, old: &Path, new: &Path) {
        let (old, new) = (dir_path(old), dir_path(new));
        let (old_b, new_b) = (old.as_os_str().as_bytes(), new.as_os_str().as_bytes());
        for w in self.watches.values_mut() {
            if let Some(rest) = w.path.as_os_str().as_bytes().strip_prefix(old_b) {
                let mut p = new_b.to_vec();
                p.extend_from_slice(rest);
                w.path = PathBuf::from(OsStr::from_bytes(&p));
            }
        }
    }

    /// Forgets watches at or below `dir` (moved out of every watched tree).
    fn drop_watches_below(&mut self, dir: &Path) {
        let prefix = dir_path(dir);
        let gone: Vec<i32> = self
            .watches
            .iter()
            .filter(|(_, w)| {
                w.path
                    .as_os_str()
                    .as_bytes()
                    .starts_with(prefix.as_os_str().as_bytes())
            })
            .map(|(wd, _)| *wd)
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
        let expired: Vec<PathBuf> = self
            .moved_dirs
            .iter()
            .filter(|(.., seen)| now.duration_since(*seen) >= MOVE_TIMEOUT)
            .map(|(_, p, _)| p.clone())
            .collect();
        self.moved_dirs
            .retain(|(.., seen)| now.duration_since(*seen) < MOVE_TIMEOUT);
        for p in expired {
            self.drop_watches_below(&p);
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
            // Directories created while events were lost have no watch yet.
            for (i, root) in self.roots.clone().iter().enumerate() {
                if std::fs::metadata(root).is_ok_and(|md| md.is_dir())
                    && let Err(e) = self.add_tree(&dir_path(root), i, true, None)
                {
                    self.errors.push(e);
                }
            }
            return;
        }
        let Some(w) = self.watches.get(&wd) else {
            return;
        };
        let (watch_path, root) = (w.path.clone(), w.root);
        if m & mask::IGNORED != 0 {
            self.watches.remove(&wd);
            return;
        }
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
                self.moved_dirs.push((cookie, full.clone(), now));
            } else if m & mask::MOVED_TO != 0 {
                match self.moved_dirs.iter().position(|(c, ..)| *c == cookie) {
                    Some(i) => {
                        let (_, old, _) = self.moved_dirs.remove(i);
                        self.rename_watches(&old, &full);
                    }
                    None => {
                        if let Err(e) = self.add_tree(&dir_path(&full), root, false, None) {
                            self.errors.push(e);
                        }
                    }
                }
            } else if m & mask::CREATE != 0
                && let Err(e) = self.add_tree(&dir_path(&full), root, false, Some(&mut synthetic))
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
