//! `rtsync run`'s fast path to an rtsync daemon: long-lived connections (see
//! [`crate::stream_lanes`] for how a target's batches spread over several) that carry batches
//! back to back (see [`protocol::stream`]), renames applied as renames.
//!
//! A batch goes this way when it can be said with the stream's operations: no subtree to
//! compare but small ones (sent whole, with what the source lacks pruned: a new directory,
//! typically; a big one needs rsync's quick check), no file larger than
//! [`WHOLE_FILE_LIMIT`] (rsync's delta sends only what changed in a big file), no hard link
//! (rsync's `-H` keeps the names together), no device or special file. Any other batch goes
//! through a child `rtsync sync` as before, once the stream's batches in flight are
//! acknowledged, so the order of changes holds across both ways.
//!
//! A file whose content the target already holds under another name (or under its own, at
//! an older version) is made there from it ([`content_index`] finds it; the target checks the
//! digest), whatever its size.
//!
//! Each connection has two threads: one writes the batches the worker hands it ([`Feed`]),
//! reading each file as it goes, so a connection that waits on its peer holds up no other;
//! one reads the acknowledgements, so the daemon never blocks writing them.

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use client::daemon::{ConnectOptions, MuxWriter};
use client::stream::Opened;
use engine::Batch;
use protocol::stream::{Attrs, COPY_VERSION, DATA_CHUNK, Frame, Identity, data_header};

use crate::content_index::{self, Digest, Shared};

/// Files larger than this go through rsync, whose delta transfer sends only what changed.
pub const WHOLE_FILE_LIMIT: u64 = 16 << 20;

/// Where a stream goes: a daemon module, and how to log in.
#[derive(Debug, Clone)]
pub struct StreamTarget {
    pub host: String,
    pub port: u16,
    pub module: String,
    pub path: Vec<u8>,
    pub user: String,
    pub password_file: Option<PathBuf>,
    pub timeout: Duration,
    /// Bytes per second the stream may send (`--bwlimit`).
    pub bwlimit: Option<u64>,
}

impl StreamTarget {
    /// The stream target `dest` names, if it is a daemon module.
    pub fn of(dest: &[u8], password_file: Option<&Path>, timeout: u64) -> Option<StreamTarget> {
        match client::Remote::parse(dest)? {
            client::Remote::Daemon {
                user,
                host,
                port,
                module: Some(module),
                path,
            } => Some(StreamTarget {
                host,
                port: port.unwrap_or(protocol::RSYNC_PORT),
                module,
                path,
                user: crate::remote::login_name(user.as_ref()),
                password_file: password_file.map(Path::to_path_buf),
                timeout: Duration::from_secs(timeout.max(1)),
                bwlimit: None,
            }),
            _ => None,
        }
    }
}

/// One operation of a planned batch.
#[derive(Debug, Clone)]
enum Op {
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
        expect: Identity,
    },
    Delete(Vec<u8>),
    Mkdir(Vec<u8>, Attrs),
    File(Vec<u8>, Attrs),
    /// Made on the target from its file `from`, whose content the index says is the same.
    Copy {
        to: Vec<u8>,
        from: Vec<u8>,
        attrs: Attrs,
        size: u64,
        digest: Digest,
    },
    Symlink(Vec<u8>, Vec<u8>, Attrs),
    Prune(Vec<u8>, Vec<Vec<u8>>),
}

/// A batch as stream operations, decided from the source as it is now.
#[derive(Debug, Default)]
pub struct Plan {
    ops: Vec<Op>,
    /// The content it sends, as the source's sizes said when it was planned.
    bytes: u64,
}

impl Plan {
    /// The content it sends, as planned.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The directories whose attributes it sets.
    #[must_use]
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Mkdir(p, _) => Some(path_of(p)),
                _ => None,
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }
}

fn bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

fn attrs_of(md: &std::fs::Metadata) -> Attrs {
    Attrs {
        perms: md.mode() & 0o7777,
        mtime_sec: md.mtime(),
        mtime_nsec: u32::try_from(md.mtime_nsec()).unwrap_or(0),
        uid: md.uid(),
        gid: md.gid(),
    }
}

/// A subtree to compare goes on the stream, sent whole, only when it is this small (a new
/// directory, typically); a bigger one goes to rsync, whose quick check skips what the target
/// already has.
const TREE_ENTRIES: usize = 2_000;
const TREE_BYTES: u64 = 32 << 20;

/// What sending subtrees whole may still cost in this batch.
struct Budget {
    entries: usize,
    bytes: u64,
}

/// The operations that make `rel` on the target what it is on the source, recursively, with
/// a [`Op::Prune`] for every directory; `None` when it is too big or holds what only rsync
/// sends (hard links, devices, special files, big files).
fn tree_ops(
    src: &Path,
    rel: &Path,
    ops: &mut Vec<Op>,
    budget: &mut Budget,
    index: Option<&Shared>,
) -> Option<()> {
    budget.entries = budget.entries.checked_sub(1)?;
    let full = src.join(rel);
    let md = match std::fs::symlink_metadata(&full) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ops.push(Op::Delete(bytes(rel)));
            return Some(());
        }
        Err(_) => return None,
    };
    if md.is_dir() {
        ops.push(Op::Mkdir(bytes(rel), attrs_of(&md)));
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(&full)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        for name in &names {
            tree_ops(src, &rel.join(name), ops, budget, index)?;
        }
        ops.push(Op::Prune(
            bytes(rel),
            names.iter().map(|n| n.as_bytes().to_vec()).collect(),
        ));
        // Again, now that its entries are in: writing them moved the directory's time.
        ops.push(Op::Mkdir(bytes(rel), attrs_of(&md)));
    } else if md.file_type().is_symlink() {
        let target = std::fs::read_link(&full).ok()?;
        ops.push(Op::Symlink(bytes(rel), bytes(&target), attrs_of(&md)));
    } else if md.is_file() {
        let (op, sent) = file_op(src, rel, &md, index)?;
        budget.bytes = budget.bytes.checked_sub(sent)?;
        ops.push(op);
    } else {
        return None;
    }
    Some(())
}

/// How regular file `rel` goes on the stream, and how many bytes of content that sends: made
/// from a file the target holds when the index knows one ([`content_index`]), else sent whole;
/// `None` when only rsync should send it (a hard link, or too big to send whole).
fn file_op(
    src: &Path,
    rel: &Path,
    md: &std::fs::Metadata,
    index: Option<&Shared>,
) -> Option<(Op, u64)> {
    if md.nlink() > 1 {
        return None;
    }
    let version = content_index::Version::of(md);
    if let Some(index) = index {
        if let Some((from, digest)) = content_index::find_copy(index, src, rel, version) {
            let op = Op::Copy {
                to: bytes(rel),
                from: bytes(&from),
                attrs: attrs_of(md),
                size: md.len(),
                digest,
            };
            return Some((op, 0));
        }
        if let Ok(mut ix) = index.lock() {
            ix.note(rel, version, None);
        }
    }
    if md.len() > WHOLE_FILE_LIMIT {
        return None;
    }
    Some((Op::File(bytes(rel), attrs_of(md)), md.len()))
}

/// The paths the stream's recent batches read from the source, and when.
///
/// A directory renamed on the source while a batch was being planned makes the batch miss the
/// files below its old name (they look deleted), and the rename that follows would then move
/// an incomplete directory on the target. So a directory rename also sends again whatever was
/// planned below its old name shortly before; if too much was planned to remember, the rename
/// goes to rsync as a delete and a subtree.
#[derive(Debug, Default)]
pub struct Recent {
    /// When, what, and whether it was a directory sent whole (pruned).
    planned: std::collections::VecDeque<(std::time::Instant, PathBuf, bool)>,
    forgot_at: Option<std::time::Instant>,
    /// When the last batch through rsync ended: rsync read the source without saying what.
    rsync_ended_at: Option<std::time::Instant>,
}

/// A directory rename planned this soon after a batch through rsync ended may have happened
/// while rsync read the tree (the rename waited for it), so its new name is compared whole.
const AFTER_RSYNC: Duration = Duration::from_millis(250);

/// How long a planned path is remembered: longer than an event takes to arrive after its
/// rename, with batches backed up behind a slow link.
const RECENT_FOR: Duration = Duration::from_secs(60);
/// How many are remembered at most.
const RECENT_MAX: usize = 200_000;

impl Recent {
    /// A batch through rsync just ended.
    pub fn rsync_ended(&mut self) {
        self.rsync_ended_at = Some(std::time::Instant::now());
    }

    fn note(&mut self, path: &[u8], pruned: bool, now: std::time::Instant) {
        if self.planned.len() >= RECENT_MAX {
            self.planned.pop_front();
            self.forgot_at = Some(now);
        }
        self.planned.push_back((now, path_of(path), pruned));
    }

    fn expire(&mut self, now: std::time::Instant) {
        while self
            .planned
            .front()
            .is_some_and(|(at, ..)| now.duration_since(*at) > RECENT_FOR)
        {
            self.planned.pop_front();
        }
        if self
            .forgot_at
            .is_some_and(|at| now.duration_since(at) > RECENT_FOR)
        {
            self.forgot_at = None;
        }
    }

    /// What was planned at or below `dir`, and whether a directory there was sent whole (its
    /// old contents pruned, so only a full compare can put them right under the new name);
    /// `None` if that cannot be known.
    fn below(&self, dir: &Path) -> Option<(Vec<PathBuf>, bool)> {
        if self.forgot_at.is_some() {
            return None;
        }
        let mut pruned = false;
        let mut paths = Vec::new();
        for (_, p, whole) in &self.planned {
            if p.starts_with(dir) {
                pruned |= *whole;
                paths.push(p.clone());
            }
        }
        Some((paths, pruned))
    }
}

/// The stream operations for `batch`, or `None` when it needs rsync (see the module doc).
/// `recent` remembers what was planned (see [`Recent`]).
pub fn plan(
    src: &Path,
    batch: &Batch,
    recent: &mut Recent,
    index: Option<&Shared>,
) -> Option<Plan> {
    let now = std::time::Instant::now();
    recent.expire(now);
    let plan = plan_ops(src, batch, recent, index)?;
    for op in &plan.ops {
        let path = match op {
            Op::Rename { to, .. } | Op::Copy { to, .. } => to,
            Op::Delete(p)
            | Op::Mkdir(p, _)
            | Op::File(p, _)
            | Op::Symlink(p, ..)
            | Op::Prune(p, _) => p,
        };
        recent.note(path, matches!(op, Op::Prune(..)), now);
    }
    // A rename's new name read as missing became a delete of the old one: it was read too.
    for r in &batch.renames {
        recent.note(r.to.as_os_str().as_bytes(), false, now);
    }
    Some(plan)
}

fn plan_ops(src: &Path, batch: &Batch, recent: &Recent, index: Option<&Shared>) -> Option<Plan> {
    if batch.trees.iter().any(|t| t.as_os_str().is_empty()) {
        return None;
    }
    if let Some(Ok(mut ix)) = index.map(|i| i.lock()) {
        for r in &batch.renames {
            ix.rename(&r.from, &r.to);
        }
    }
    let mut ops = Vec::new();
    for r in &batch.renames {
        let (from, to) = (bytes(&r.from), bytes(&r.to));
        match std::fs::symlink_metadata(src.join(&r.to)) {
            Ok(md) if md.is_dir() => ops.push(Op::Rename {
                from,
                to,
                expect: Identity::Dir,
            }),
            Ok(md) if md.file_type().is_symlink() => {
                let target = std::fs::read_link(src.join(&r.to)).ok()?;
                ops.push(Op::Rename {
                    from,
                    to,
                    expect: Identity::Symlink(bytes(&target)),
                });
            }
            Ok(md) if md.is_file() => ops.push(Op::Rename {
                from,
                to,
                expect: Identity::File {
                    size: md.len(),
                    mtime_sec: md.mtime(),
                    mtime_nsec: u32::try_from(md.mtime_nsec()).unwrap_or(0),
                },
            }),
            // Gone again, or a special file: whatever it became is in the batch or a later one;
            // the old name must go.
            _ => ops.push(Op::Delete(from)),
        }
    }
    // Whatever was read below a renamed directory's old name may have been read after the
    // rename: sent again under the new name once the rename is made.
    let mut again: Vec<PathBuf> = Vec::new();
    let mut whole_again: Vec<&Path> = Vec::new();
    let after_rsync = recent
        .rsync_ended_at
        .is_some_and(|at| at.elapsed() < AFTER_RSYNC);
    for r in batch.renames.iter().filter(|r| r.is_dir) {
        let (paths, pruned) = recent.below(&r.from)?;
        if pruned || after_rsync {
            whole_again.push(&r.to);
        }
        for p in paths {
            if let Ok(rest) = p.strip_prefix(&r.from) {
                again.push(r.to.join(rest));
            }
        }
    }
    again.retain(|p| !batch.puts.contains(p));
    again.sort();
    again.dedup();
    for d in &batch.deletes {
        ops.push(Op::Delete(bytes(d)));
    }
    let mut budget = Budget {
        entries: TREE_ENTRIES,
        bytes: TREE_BYTES,
    };
    for t in batch.trees.iter().map(PathBuf::as_path).chain(whole_again) {
        tree_ops(src, t, &mut ops, &mut budget, index)?;
    }
    for p in batch.puts.iter().chain(&again) {
        let full = src.join(p);
        match std::fs::symlink_metadata(&full) {
            Ok(md) if md.is_dir() => ops.push(Op::Mkdir(bytes(p), attrs_of(&md))),
            Ok(md) if md.file_type().is_symlink() => {
                let target = std::fs::read_link(&full).ok()?;
                ops.push(Op::Symlink(bytes(p), bytes(&target), attrs_of(&md)));
            }
            Ok(md) if md.is_file() => ops.push(file_op(src, p, &md, index)?.0),
            Ok(_) => return None,
            // Missing at the source: what rsync's --delete-missing-args does.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ops.push(Op::Delete(bytes(p))),
            Err(_) => return None,
        }
    }
    // Every directory whose entries changed gets its attributes again at the end: the
    // target's own writes moved its time.
    let mut parents: Vec<&Path> = batch
        .renames
        .iter()
        .flat_map(|r| [r.from.as_path(), r.to.as_path()])
        .chain(batch.deletes.iter().map(PathBuf::as_path))
        .chain(batch.trees.iter().map(PathBuf::as_path))
        .chain(batch.puts.iter().map(PathBuf::as_path))
        .chain(again.iter().map(PathBuf::as_path))
        .filter_map(Path::parent)
        .collect();
    parents.sort();
    parents.dedup();
    for dir in parents {
        if let Ok(md) = std::fs::symlink_metadata(src.join(dir))
            && md.is_dir()
        {
            ops.push(Op::Mkdir(bytes(dir), attrs_of(&md)));
        }
    }
    if let Some(Ok(mut ix)) = index.map(|i| i.lock()) {
        for op in &ops {
            if let Op::Delete(p) = op {
                ix.forget(&path_of(p));
            }
        }
    }
    let bytes = ops
        .iter()
        .map(|op| match op {
            Op::File(p, _) => {
                std::fs::symlink_metadata(src.join(path_of(p))).map_or(0, |m| m.len())
            }
            _ => 0,
        })
        .sum();
    Some(Plan { ops, bytes })
}

/// What the acknowledgement reader tells the worker.
pub enum Event {
    /// A batch is applied and durable; `missed` renames must be sent as content; `errors`
    /// name paths that failed (the batch must be sent again).
    Done {
        batch: u64,
        missed: Vec<PathBuf>,
        errors: Vec<(PathBuf, String)>,
    },
    /// The connection ended (or broke); nothing more comes from it.
    Broken(String),
}

/// An open stream to one target.
pub struct Pipe {
    writer: MuxWriter,
    /// The stream version the daemon speaks.
    version: u32,
    next_batch: u64,
    out: Vec<u8>,
    generation: u64,
    events: Sender<(u64, Event)>,
}

/// What opening a stream gave.
pub enum Open {
    Pipe(Pipe),
    /// The daemon does not offer the stream: use rsync.
    NotOffered,
}

impl Pipe {
    /// Connects and opens the stream; events go to `events` as `(generation, event)`, the
    /// generation telling this connection's events from those of an older one.
    pub fn open(
        target: &StreamTarget,
        connect_timeout: Duration,
        generation: u64,
        events: Sender<(u64, Event)>,
    ) -> Result<Open, (u8, String)> {
        let opts = ConnectOptions {
            host: target.host.clone(),
            port: target.port,
            connect_timeout: Some(connect_timeout),
            io_timeout: Some(target.timeout),
        };
        let mut password = || crate::remote::daemon_password(target.password_file.as_deref());
        let opened = client::stream::open(
            &opts,
            &target.module,
            &target.path,
            &target.user,
            &mut password,
        )
        .map_err(|e| (e.exit_code(), e.to_string()))?;
        let (mut reader, mut writer, version) = match opened {
            Opened::Stream(r, w, version) => (r, w, version),
            Opened::NotOffered => return Ok(Open::NotOffered),
        };
        writer.set_bwlimit(target.bwlimit);
        // The daemon is quiet between batches: only a stalled acknowledgement is a timeout,
        // and the worker sees that as a batch not acknowledged in time.
        reader.set_io_timeout(None);
        let reader_events = events.clone();
        std::thread::spawn(move || {
            let events = reader_events;
            loop {
                let event = match reader.read_raw(Frame::decode) {
                    Ok(Frame::Done {
                        batch,
                        missed,
                        errors,
                    }) => Event::Done {
                        batch,
                        missed: missed.iter().map(|m| path_of(m)).collect(),
                        errors: errors
                            .iter()
                            .map(|(p, w)| (path_of(p), w.clone()))
                            .collect(),
                    },
                    Ok(Frame::Fatal { code, message }) => Event::Broken(format!(
                        "the daemon ended the stream: {message} (code {code})"
                    )),
                    Ok(other) => Event::Broken(format!("the daemon sent {other:?}")),
                    Err(e) => Event::Broken(e.to_string()),
                };
                let last = matches!(event, Event::Broken(_));
                if events.send((generation, event)).is_err() || last {
                    return;
                }
            }
        });
        Ok(Open::Pipe(Pipe {
            writer,
            version,
            next_batch: 1,
            out: Vec::with_capacity(DATA_CHUNK + 64),
            generation,
            events,
        }))
    }

    /// Hands the connection to a thread of its own that sends the plans fed to it, in order,
    /// numbered 1, 2, ...; a failure to send is reported as [`Event::Broken`], and ends it.
    pub fn start(self, src: PathBuf) -> Feed {
        let (plans, rx) = mpsc::channel::<Plan>();
        let socket = self.writer.socket();
        let traffic = self.writer.traffic();
        let mut pipe = self;
        std::thread::spawn(move || {
            while let Ok(plan) = rx.recv() {
                if let Err(why) = pipe.send(&src, &plan) {
                    let _ = pipe.events.send((pipe.generation, Event::Broken(why)));
                    pipe.close();
                    return;
                }
            }
            pipe.close();
        });
        Feed {
            plans,
            socket,
            traffic,
            queued: 0,
        }
    }

    fn frame(&mut self, f: &Frame) -> Result<(), String> {
        f.encode(&mut self.out);
        if self.out.len() >= DATA_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = self.writer.send(&self.out).map_err(|e| e.to_string());
        self.out.clear();
        r
    }

    /// Sends one batch, returning its number (acknowledged later through the events).
    fn send(&mut self, src: &Path, plan: &Plan) -> Result<u64, String> {
        let batch = self.next_batch;
        self.next_batch += 1;
        self.frame(&Frame::Begin { batch })?;
        let trace = std::env::var_os("RTSYNC_TRACE_STREAM").is_some();
        for op in &plan.ops {
            if trace {
                eprintln!("stream batch {batch}: {op:?}");
            }
            match op {
                Op::Rename { from, to, expect } => self.frame(&Frame::Rename {
                    from: from.clone(),
                    to: to.clone(),
                    expect: expect.clone(),
                })?,
                Op::Delete(path) => self.frame(&Frame::Delete { path: path.clone() })?,
                Op::Mkdir(path, attrs) => self.frame(&Frame::Mkdir {
                    path: path.clone(),
                    attrs: *attrs,
                })?,
                Op::Symlink(path, target, attrs) => self.frame(&Frame::Symlink {
                    path: path.clone(),
                    target: target.clone(),
                    attrs: *attrs,
                })?,
                Op::File(path, attrs) => self.file(src, path, attrs)?,
                Op::Copy {
                    to,
                    from,
                    attrs,
                    size,
                    digest,
                } if self.version >= COPY_VERSION => self.frame(&Frame::Copy {
                    path: to.clone(),
                    from: from.clone(),
                    attrs: *attrs,
                    size: *size,
                    digest: *digest,
                })?,
                // An older daemon: the content goes.
                Op::Copy { to, attrs, .. } => self.file(src, to, attrs)?,
                Op::Prune(path, keep) => self.frame(&Frame::Prune {
                    path: path.clone(),
                    keep: keep.clone(),
                })?,
            }
        }
        self.frame(&Frame::Commit { batch })?;
        self.flush()?;
        Ok(batch)
    }

    /// A file's frames. One that vanished since the plan is sent as a delete (rsync's
    /// "file has vanished"; its own delete event follows).
    fn file(&mut self, src: &Path, path: &[u8], attrs: &Attrs) -> Result<(), String> {
        let full = src.join(path_of(path));
        let Ok(mut f) = File::open(&full) else {
            return self.frame(&Frame::Delete {
                path: path.to_vec(),
            });
        };
        // The attributes as the content is read: a file rewritten since the plan carries its
        // newer time, and its own event sends it again anyway.
        let attrs = f.metadata().map_or(*attrs, |md| attrs_of(&md));
        self.frame(&Frame::File {
            path: path.to_vec(),
            attrs,
        })?;
        let mut total = 0u64;
        let mut chunk = vec![0u8; DATA_CHUNK];
        loop {
            let n = match f.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // A read error half-way: what was sent stays short of the end; the batch is
                // still consistent (the file is replaced whole, at its next event).
                Err(_) => break,
            };
            self.out.extend_from_slice(&data_header(n));
            self.out
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
            total += n as u64;
            if self.out.len() >= DATA_CHUNK {
                self.flush()?;
            }
        }
        self.frame(&Frame::End { len: total })
    }

    /// Ends the connection (the reader thread then reports it broken, and is ignored).
    fn close(mut self) {
        self.writer.abort();
    }
}

/// A connection's sending thread, as the worker holds it.
pub struct Feed {
    plans: mpsc::Sender<Plan>,
    socket: Option<std::net::TcpStream>,
    traffic: std::sync::Arc<client::daemon::Traffic>,
    queued: u64,
}

impl Feed {
    /// Queues a plan; returns its number on the connection (the daemon acknowledges it by
    /// that number). `None`: the thread has ended (and reported why).
    pub fn send(&mut self, plan: Plan) -> Option<u64> {
        self.plans.send(plan).ok()?;
        self.queued += 1;
        Some(self.queued)
    }

    /// Bytes the connection has written so far.
    #[must_use]
    pub fn sent_bytes(&self) -> u64 {
        self.traffic.sent()
    }

    /// Ends the connection now, even half-way through a write (the threads then end, and
    /// what they report is ignored).
    pub fn close(self) {
        if let Some(s) = &self.socket {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn path_of(b: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

/// A batch sent on the stream in one piece goes on one connection; a backlog (after an
/// outage, or while every connection is busy) is cut into pieces of about this much content,
/// which several connections carry at once.
const PART_BYTES: u64 = 4 << 20;
/// And of at most this many paths.
const PART_PATHS: usize = 1000;

/// `batch` in pieces for the stream (see [`PART_BYTES`]), its puts in order across them;
/// only the last carries the batch's journal number (the target has every change up to it
/// once all have landed). Its renames, deletes and subtrees go with the first piece, and so do
/// the files only rsync sends (hard links, which `-H` must see together; big files), the
/// first piece then holding nothing else. The sizes are read from the source now.
pub fn parts(src: &Path, batch: Batch) -> Vec<Batch> {
    if batch.puts.len() < 2 {
        return vec![batch];
    }
    let mut for_rsync = Vec::new();
    let mut sized = Vec::new();
    for p in &batch.puts {
        match std::fs::symlink_metadata(src.join(p)) {
            Ok(md) if md.is_file() && (md.nlink() > 1 || md.len() > WHOLE_FILE_LIMIT) => {
                for_rsync.push(p.clone());
            }
            Ok(md) => sized.push((p.clone(), md.len())),
            Err(_) => sized.push((p.clone(), 0)),
        }
    }
    let total: u64 = sized.iter().map(|(_, n)| n).sum();
    if total <= PART_BYTES && sized.len() <= PART_PATHS {
        return vec![batch];
    }
    let upto = batch.upto;
    let mut out = Vec::new();
    let mut part = Batch {
        puts: for_rsync,
        upto: 0,
        ..batch
    };
    // The first piece takes files for the stream only if it holds none for rsync.
    let mut open = part.puts.is_empty();
    let mut bytes = 0u64;
    for (p, len) in sized {
        if !open || bytes >= PART_BYTES || part.puts.len() >= PART_PATHS {
            out.push(std::mem::take(&mut part));
            (open, bytes) = (true, 0);
        }
        part.puts.push(p);
        bytes += len;
    }
    out.push(part);
    out.retain(|b| !b.is_empty());
    if let Some(last) = out.last_mut() {
        last.upto = upto;
    }
    out
}

/// A batch for rsync, with its renames said the way rsync can: the old name deleted and the
/// new one sent (a directory as a whole subtree).
pub fn without_renames(mut batch: Batch) -> Batch {
    for r in std::mem::take(&mut batch.renames) {
        batch.deletes.push(r.from);
        if r.is_dir {
            batch.trees.push(r.to);
        } else {
            batch.puts.push(r.to);
        }
    }
    batch.deletes.sort();
    batch.deletes.dedup();
    batch.trees.sort();
    batch.trees.dedup();
    batch.puts.sort();
    batch.puts.dedup();
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_batch_goes_in_pieces_with_what_only_rsync_sends_first_and_the_number_last() {
        let t = tempfile::tempdir().unwrap();
        let mut puts = Vec::new();
        for i in 0..30 {
            std::fs::write(t.path().join(format!("f{i:02}")), vec![7u8; 300_000]).unwrap();
            puts.push(PathBuf::from(format!("f{i:02}")));
        }
        std::fs::write(t.path().join("h1"), b"linked").unwrap();
        std::fs::hard_link(t.path().join("h1"), t.path().join("h2")).unwrap();
        puts.extend([PathBuf::from("h1"), PathBuf::from("h2")]);
        let batch = Batch {
            puts: puts.clone(),
            deletes: vec![PathBuf::from("gone")],
            upto: 41,
            ..Batch::default()
        };
        let parts = parts(t.path(), batch);
        assert_eq!(
            parts[0].puts,
            vec![PathBuf::from("h1"), PathBuf::from("h2")]
        );
        assert_eq!(parts[0].deletes, vec![PathBuf::from("gone")]);
        // 9 MB of files to stream: 4 MiB (14 files of 300 KB), then the same, then the rest.
        let sizes: Vec<usize> = parts[1..].iter().map(|p| p.puts.len()).collect();
        assert_eq!(sizes, vec![14, 14, 2]);
        let ups: Vec<u64> = parts.iter().map(|p| p.upto).collect();
        assert_eq!(ups, vec![0, 0, 0, 41]);
        let mut all: Vec<PathBuf> = parts.iter().flat_map(|p| p.puts.clone()).collect();
        all.sort();
        puts.sort();
        assert_eq!(all, puts);
    }

    #[test]
    fn a_small_batch_stays_whole() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("a"), b"a").unwrap();
        let batch = Batch {
            puts: vec![PathBuf::from("a"), PathBuf::from("missing")],
            upto: 3,
            ..Batch::default()
        };
        assert_eq!(parts(t.path(), batch.clone()), vec![batch]);
    }
}
