//! The fanotify backend (root only, Linux 5.9+ for directory handles and names): one mark covers
//! a whole filesystem, events are filtered to the watched trees in user space, and no watch is
//! added per directory — so watching a tree of millions of directories costs the same as
//! watching one, and there is no watch limit to hit.
//!
//! Each event names its directory by a file handle; the handle is opened
//! (`open_by_handle_at`) and its path read from `/proc/self/fd`, with a cache per handle. A
//! rename arrives as one `FAN_RENAME` event carrying both names, reported as a `MOVED_FROM` /
//! `MOVED_TO` pair with a cookie of our own. The queue is unlimited (`FAN_UNLIMITED_QUEUE`), so
//! it does not overflow.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;

use crate::WatchError;
use crate::event::{RawEvent, mask};
use crate::inotify::WatchOptions;

/// The system calls with no safe wrapper in our dependencies.
#[allow(unsafe_code)]
mod sys {
    use std::os::fd::{FromRawFd, OwnedFd};

    use rustix::io::Errno;

    fn last_errno() -> Errno {
        Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    pub fn fanotify_init(flags: u32, event_f_flags: u32) -> Result<OwnedFd, Errno> {
        // SAFETY: plain system call with integer arguments; a non-negative result is a new fd
        // that nothing else owns.
        let fd = unsafe { libc::fanotify_init(flags, event_f_flags) };
        if fd < 0 {
            return Err(last_errno());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    pub fn fanotify_mark(
        fd: &OwnedFd,
        flags: u32,
        mask: u64,
        path: &std::ffi::CStr,
    ) -> Result<(), Errno> {
        use std::os::fd::AsRawFd;
        // SAFETY: `fd` is a live fanotify fd and `path` a NUL-terminated string that outlives
        // the call.
        let r = unsafe {
            libc::fanotify_mark(fd.as_raw_fd(), flags, mask, libc::AT_FDCWD, path.as_ptr())
        };
        if r < 0 { Err(last_errno()) } else { Ok(()) }
    }

    /// Opens the object a file handle names, `O_PATH`.
    pub fn open_by_handle(
        mount: &OwnedFd,
        handle_type: i32,
        handle: &[u8],
    ) -> Result<OwnedFd, Errno> {
        use std::os::fd::AsRawFd;
        // `struct file_handle`: u32 length, i32 type, then the bytes; copied into a u32 buffer
        // so that it is aligned, keeping the bytes in memory order.
        let len = u32::try_from(handle.len()).map_err(|_| Errno::INVAL)?;
        let mut bytes = Vec::with_capacity(8 + handle.len() + 3);
        bytes.extend_from_slice(&len.to_ne_bytes());
        bytes.extend_from_slice(&handle_type.to_ne_bytes());
        bytes.extend_from_slice(handle);
        bytes.resize(bytes.len().div_ceil(4) * 4, 0);
        let mut buf: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| u32::from_ne_bytes(c.try_into().unwrap_or([0; 4])))
            .collect();
        // SAFETY: `buf` holds a valid `struct file_handle` (length, type, `handle_bytes` bytes)
        // and lives across the call; `mount` is a live fd.
        let fd = unsafe {
            libc::open_by_handle_at(
                mount.as_raw_fd(),
                buf.as_mut_ptr().cast::<libc::file_handle>(),
                libc::O_PATH | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(last_errno());
        }
        // SAFETY: a new fd owned by no one else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

const FAN_CLOEXEC: u32 = 0x1;
const FAN_NONBLOCK: u32 = 0x2;
const FAN_UNLIMITED_QUEUE: u32 = 0x10;
const FAN_REPORT_DFID_NAME: u32 = 0x400 | 0x800;
const FAN_MARK_ADD: u32 = 0x1;
const FAN_MARK_FILESYSTEM: u32 = 0x100;
const FAN_ONDIR: u64 = 0x4000_0000;
const FAN_RENAME: u64 = 0x1000_0000;
const INFO_DFID_NAME: u8 = 2;
const INFO_OLD_DFID_NAME: u8 = 10;
const INFO_NEW_DFID_NAME: u8 = 12;
/// The events fanotify reports with a directory handle and a name (same bits as inotify's).
const SUPPORTED: u32 =
    mask::MODIFY | mask::ATTRIB | mask::CLOSE_WRITE | mask::CREATE | mask::DELETE | mask::MOVE;

struct Root {
    /// The path as given, which `%w` shows.
    shown: PathBuf,
    /// Its canonical form, which `/proc/self/fd` links show.
    real: PathBuf,
    /// An fd on its filesystem, for `open_by_handle_at` (which refuses `O_PATH` fds).
    mount: OwnedFd,
}

/// A fanotify group with one filesystem mark per watched tree.
pub struct FanotifyWatcher {
    fd: OwnedFd,
    opts: WatchOptions,
    roots: Vec<Root>,
    /// Directory handle → its real path.
    dirs: HashMap<Vec<u8>, PathBuf>,
    queue: VecDeque<RawEvent>,
    cookie: u32,
    buf: Vec<u8>,
}

fn errno_err(op: &'static str, path: &Path, e: Errno) -> WatchError {
    WatchError::Io {
        op,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// One directory-handle-and-name record of an event.
struct Named<'a> {
    kind: u8,
    handle_type: i32,
    handle: &'a [u8],
    name: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Splits a read buffer into events: (mask, named records). Malformed bytes end the parse.
fn parse(buf: &[u8]) -> Vec<(u64, Vec<Named<'_>>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(meta_len)) = (u32_at(buf, at), u16_at(buf, at + 6)) {
        let (len, meta_len) = (len as usize, usize::from(meta_len));
        if len < meta_len || meta_len < 24 {
            break;
        }
        let Some(event) = buf.get(at..at + len) else {
            break;
        };
        let Some(m) = u64_at(event, 8) else { break };
        let mut records = Vec::new();
        let mut r = meta_len;
        while let (Some(&kind), Some(rlen)) = (event.get(r), u16_at(event, r + 2)) {
            let rlen = usize::from(rlen);
            let Some(record) = event.get(r..r + rlen) else {
                break;
            };
            if rlen < 4 {
                break;
            }
            // hdr (4) + fsid (8) + handle_bytes (4) + handle_type (4) + handle + name\0
            if let (Some(hlen), Some(htype)) = (u32_at(record, 12), u32_at(record, 16)) {
                let hlen = hlen as usize;
                if let Some(handle) = record.get(20..20 + hlen) {
                    let rest = record.get(20 + hlen..).unwrap_or_default();
                    let name = rest.split(|&b| b == 0).next().unwrap_or_default();
                    records.push(Named {
                        kind,
                        handle_type: htype.cast_signed(),
                        handle,
                        name,
                    });
                }
            }
            r += rlen;
        }
        out.push((m, records));
        at += len;
    }
    out
}

impl FanotifyWatcher {
    /// Creates the fanotify group.
    ///
    /// # Errors
    /// [`WatchError::Io`] saying why fanotify cannot be used here (not root, kernel too old).
    pub fn new(opts: WatchOptions) -> Result<Self, WatchError> {
        let flags = FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE | FAN_REPORT_DFID_NAME;
        let fd = sys::fanotify_init(flags, (libc::O_RDONLY | libc::O_LARGEFILE).cast_unsigned()).map_err(|e| {
            let why = match e {
                Errno::PERM => "fanotify needs root (CAP_SYS_ADMIN)",
                Errno::INVAL => "this kernel's fanotify cannot report directory names (Linux 5.9 or newer needed)",
                Errno::NOSYS => "this kernel has no fanotify",
                _ => "fanotify_init failed",
            };
            errno_err(why, Path::new(""), e)
        })?;
        Ok(FanotifyWatcher {
            fd,
            opts,
            roots: Vec::new(),
            dirs: HashMap::new(),
            queue: VecDeque::new(),
            cookie: 0,
            buf: vec![0; 256 * 1024],
        })
    }

    /// Whether events are waiting in user space (the next call returns at once).
    #[must_use]
    pub fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Starts watching the tree at `path`: marks its whole filesystem and reports what happens
    /// below `path`.
    ///
    /// # Errors
    /// [`WatchError::NotFound`] or the OS error.
    pub fn add(&mut self, path: &Path) -> Result<(), WatchError> {
        let real =
            std::fs::canonicalize(path).map_err(|_| WatchError::NotFound(path.to_path_buf()))?;
        let mount = rustix::fs::open(
            &real,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| errno_err("open", path, e))?;
        let mut m = u64::from(self.opts.events & SUPPORTED) | FAN_ONDIR;
        if self.opts.events & mask::MOVE != 0 {
            m = (m & !u64::from(mask::MOVE)) | FAN_RENAME;
        }
        let c_path = std::ffi::CString::new(real.as_os_str().as_bytes())
            .map_err(|_| WatchError::NotFound(path.to_path_buf()))?;
        sys::fanotify_mark(&self.fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, m, &c_path)
            .map_err(|e| errno_err("fanotify_mark", path, e))?;
        self.roots.push(Root {
            shown: path.to_path_buf(),
            real,
            mount,
        });
        Ok(())
    }

    /// The next event below a watched tree, waiting at most `timeout`. `Ok(None)`: timed out.
    ///
    /// # Errors
    /// Reading the fanotify fd failed.
    pub fn next_event(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<RawEvent>, WatchError> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(Some(ev));
            }
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) => Some(Timespec {
                        tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                        tv_nsec: i64::from(left.subsec_nanos()),
                    }),
                    None => return Ok(None),
                },
                None => None,
            };
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, wait.as_ref()) {
                Ok(0) | Err(Errno::INTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(errno_err("poll", Path::new("fanotify"), e)),
            }
            let n = match rustix::io::read(&self.fd, &mut self.buf) {
                Ok(n) => n,
                Err(Errno::AGAIN | Errno::INTR) => continue,
                Err(e) => return Err(errno_err("read", Path::new("fanotify"), e)),
            };
            let data = self.buf.get(..n).unwrap_or_default().to_vec();
            for (m, records) in parse(&data) {
                self.handle(m, &records);
            }
        }
    }

    fn handle(&mut self, m: u64, records: &[Named<'_>]) {
        let bits = u32::try_from(m & 0xffff_ffff).unwrap_or(0);
        let is_dir = if m & FAN_ONDIR != 0 { mask::ISDIR } else { 0 };
        if bits & mask::Q_OVERFLOW != 0 {
            for r in &self.roots {
                self.queue.push_back(RawEvent {
                    watch: r.shown.clone(),
                    name: Vec::new(),
                    mask: mask::Q_OVERFLOW,
                    cookie: 0,
                    synthetic: false,
                });
            }
            return;
        }
        if m & FAN_RENAME != 0 {
            self.cookie = self.cookie.wrapping_add(1).max(1);
            let cookie = self.cookie;
            for (kind, bit) in [
                (INFO_OLD_DFID_NAME, mask::MOVED_FROM),
                (INFO_NEW_DFID_NAME, mask::MOVED_TO),
            ] {
                if let Some(r) = records.iter().find(|r| r.kind == kind) {
                    self.report(r, bit | is_dir, cookie);
                }
            }
            // Directory paths below a renamed directory changed: resolve them afresh.
            if is_dir != 0 {
                self.dirs.clear();
            }
            return;
        }
        if let Some(r) = records.iter().find(|r| r.kind == INFO_DFID_NAME) {
            // The event bits without the flags: one event kind each time.
            for bit in [
                mask::MODIFY,
                mask::ATTRIB,
                mask::CLOSE_WRITE,
                mask::CREATE,
                mask::DELETE,
            ] {
                if bits & bit != 0 {
                    self.report(r, bit | is_dir, 0);
                }
            }
        }
    }

    /// Queues one event on `record`'s directory and name, if it lies below a watched tree.
    fn report(&mut self, record: &Named<'_>, bits: u32, cookie: u32) {
        if bits & self.opts.events == 0 {
            return;
        }
        let Some(dir) = self.resolve(record) else {
            return;
        };
        let Some(root) = self.roots.iter().find(|r| dir.starts_with(&r.real)) else {
            return;
        };
        // Show the path the way the user gave the root, as inotifywait does.
        let below = dir.strip_prefix(&root.real).unwrap_or(Path::new(""));
        let mut watch = root.shown.join(below).into_os_string().into_vec();
        if !watch.ends_with(b"/") {
            watch.push(b'/');
        }
        let name = if record.name == b"." {
            Vec::new()
        } else {
            record.name.to_vec()
        };
        let watch = PathBuf::from(OsStr::from_bytes(&watch));
        let full = watch.join(OsStr::from_bytes(&name));
        let rel = full
            .strip_prefix(&root.shown)
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .unwrap_or_default();
        if self
            .opts
            .selector
            .is_excluded(&full, &rel, bits & mask::ISDIR != 0)
            || !self.opts.selector.is_reported(&full)
        {
            return;
        }
        self.queue.push_back(RawEvent {
            watch,
            name,
            mask: bits,
            cookie,
            synthetic: false,
        });
    }

    /// The current path of the directory a handle names (cached).
    fn resolve(&mut self, record: &Named<'_>) -> Option<PathBuf> {
        let mut key = record.handle_type.to_ne_bytes().to_vec();
        key.extend_from_slice(record.handle);
        if let Some(p) = self.dirs.get(&key) {
            return Some(p.clone());
        }
        let fd = self
            .roots
            .iter()
            .find_map(|r| sys::open_by_handle(&r.mount, record.handle_type, record.handle).ok())?;
        let link =
            rustix::fs::readlink(format!("/proc/self/fd/{}", fd.as_raw_fd()), Vec::new()).ok()?;
        let bytes = link.as_bytes();
        let bytes = bytes.strip_suffix(b" (deleted)").unwrap_or(bytes);
        let path = PathBuf::from(OsStr::from_bytes(bytes));
        if self.dirs.len() > 100_000 {
            self.dirs.clear();
        }
        self.dirs.insert(key, path.clone());
        Some(path)
    }
}
