//! The receiving roles (`generator.c` + `receiver.c`), for a client pulling and for a daemon
//! serving a push: a generator thread compares the peer's file list with the destination,
//! makes directories, symlinks and nodes, and requests each changed file with the block
//! signature of its old version; this thread receives each file as literals and block copies,
//! rebuilds it through the delta patcher into a temporary file, checks the whole-file sum, and
//! renames it into place. Reading and writing run in separate threads, so neither side of the
//! socket can block the other. Every write goes through an `fsx::Root`, confined to the
//! destination.

use std::io::BufWriter;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use delta::{BlockSizeRule, ChecksumKind, Patcher, Signature, SumSizes};
use fsx::{Kind, Meta, Persist, Root, Timespec};
use protocol::flist::Entry;
use protocol::token::{Token, TokenDecoder};
use protocol::wire::{NDX_DONE, NdxCodec, get_int, get_short, get_varlong, get_vstring, put_int};

use crate::SessionError;
use crate::mux::{MessageSink, MuxReader, MuxWriter};

/// `ITEM_TRANSFER`.
const ITEM_TRANSFER: u16 = 1 << 15;
/// `ITEM_IS_NEW`.
const ITEM_IS_NEW: u16 = 1 << 13;
/// `ITEM_BASIS_TYPE_FOLLOWS`.
const ITEM_BASIS_TYPE_FOLLOWS: u16 = 1 << 11;
/// `ITEM_XNAME_FOLLOWS`.
const ITEM_XNAME_FOLLOWS: u16 = 1 << 12;
/// `ITEM_LOCAL_CHANGE`: the receiver made or changed it itself (no data needed).
const ITEM_LOCAL_CHANGE: u16 = 1 << 14;
/// `ITEM_REPORT_TIME`.
const ITEM_REPORT_TIME: u16 = 1 << 3;
/// `ITEM_REPORT_CHANGE`.
const ITEM_REPORT_CHANGE: u16 = 1 << 1;
/// `ITEM_REPORT_PERMS`.
const ITEM_REPORT_PERMS: u16 = 1 << 4;
/// `ITEM_REPORT_SIZE`.
const ITEM_REPORT_SIZE: u16 = 1 << 2;
/// `ITEM_REPORT_OWNER`.
const ITEM_REPORT_OWNER: u16 = 1 << 5;
/// `ITEM_REPORT_GROUP`.
const ITEM_REPORT_GROUP: u16 = 1 << 6;
use protocol::compat::CF_CHKSUM_SEED_FIX;

/// What a receiver preserves, and the session's checksum settings.
#[derive(Debug, Clone, Copy)]
#[allow(clippy::struct_excessive_bools)]
pub struct ReceiveOptions {
    /// `-p`.
    pub perms: bool,
    /// `-t`.
    pub times: bool,
    /// `-o` (effective as root).
    pub owner: bool,
    /// `-g`.
    pub group: bool,
    /// `-l`.
    pub links: bool,
    /// `--devices` / `--specials`.
    pub devices: bool,
    /// `-W`: no signatures, whole files.
    pub whole_file: bool,
    /// `-S`: runs of zeros become holes in the files written.
    pub sparse: bool,
    /// Negotiated checksum.
    pub checksum: ChecksumKind,
    /// Session seed.
    pub seed: i32,
    /// Compat flags.
    pub compat: u32,
    /// Negotiated protocol.
    pub protocol: u32,
    /// `--delete`: remove destination entries the list does not have, in the directories
    /// whose contents it covers.
    pub delete: bool,
    /// `-z`: tokens come compressed (zstd).
    pub compress: bool,
    /// `-v` or `-i`: say which files failed verification and will be fetched again.
    pub verbose: bool,
    /// `-c`: a file of the same size is unchanged when its whole-file sum matches the list's,
    /// whatever its time.
    pub always_checksum: bool,
    /// How the quick check decides, and which files it may skip outright.
    pub quick: QuickCheck,
    /// The sender is a server: its totals follow its last file (`main.c handle_stats`).
    pub sender_is_server: bool,
    /// We are a server and the client wants to hear what `--delete` removed (`MSG_DELETED`).
    pub tell_deletions: bool,
    /// We are a server: per-file errors go to the client as they happen.
    pub tell_errors: bool,
    /// We are a server and the client wants to hear what we made or changed ourselves
    /// (directories, symlinks, devices), as rsync's generator tells a `-v` client.
    pub tell_items: bool,
    /// `-n`: change nothing; say what would be transferred and deleted. The sender sends no
    /// data for it (`sender.c`), so the receiver reads only the items.
    pub dry_run: bool,
}

/// The generator's quick-check options (`generator.c recv_generator`).
#[derive(Debug, Clone, Copy, Default)]
#[allow(clippy::struct_excessive_bools)]
pub struct QuickCheck {
    /// `--size-only`: the same size is enough.
    pub size_only: bool,
    /// `-I`: nothing is unchanged; every file goes through the delta.
    pub ignore_times: bool,
    /// `-u`: files newer here are left alone.
    pub update: bool,
    /// `--ignore-existing`: files that exist here are left alone.
    pub ignore_existing: bool,
    /// `--existing`: nothing new is made here (no file, no directory and nothing below it);
    /// what exists is updated.
    pub existing: bool,
    /// `--modify-window`: `None` compares times to the nanosecond.
    pub modify_window: Option<i64>,
}

/// What the receiver tells the generator as it goes.
enum Progress {
    /// File `ndx` failed its whole-file check in the first pass: ask for it again.
    Redo(usize),
    /// The sender ended a phase with `NDX_DONE`.
    PhaseEnded,
    /// A file failed in the receiver; a server tells the client.
    Failed(String),
}

/// Sends the errors from `told` on to the client as `MSG_ERROR_XFER` (a server receiver's
/// errors make the client exit 23, as rsync's do).
fn tell_errors(
    errors: &[String],
    told: &mut usize,
    writer: &mut MuxWriter,
    within: Option<&(PathBuf, String)>,
) -> Result<(), SessionError> {
    let mut frames = Vec::new();
    for e in errors.iter().skip(*told) {
        let e = match within {
            Some((root, module)) => crate::told::within_module(e, root, module),
            None => e.clone(),
        };
        let text = format!("rtsync: [receiver] {e}\n");
        protocol::mux::encode(
            &mut frames,
            protocol::mux::MsgCode::ErrorXfer,
            text.as_bytes(),
        )?;
    }
    *told = errors.len();
    if !frames.is_empty() {
        writer.send_raw(&frames)?;
    }
    Ok(())
}

/// Which destination paths `--delete` must leave alone (receiver-side filter rules).
pub type Protect = dyn Fn(&[u8], bool) -> bool + Send + Sync;

/// One thing a receiver did that rsync's `-v` names.
#[derive(Debug, Clone, Copy)]
pub enum Report<'a> {
    /// An entry made or changed: a file received, a directory made or retimed, a symlink or
    /// node made (or, in a dry run, that would be).
    Entry {
        /// The entry.
        entry: &'a Entry,
        /// What changed, as rsync's item flags (see [`itemized`]).
        iflags: u16,
    },
    /// A hard-link follower linked to its leader (`-H`).
    Linked {
        /// The follower.
        entry: &'a Entry,
        /// The leader's path.
        to: &'a [u8],
    },
    /// A destination entry `--delete` removed.
    Deleted {
        /// Its path in the destination.
        name: &'a [u8],
        /// A directory.
        dir: bool,
    },
}

/// Where a receiver's reports go (from both of its threads).
pub type Reporter = dyn Fn(Report<'_>) + Send + Sync;

/// A reported entry as an itemized change (`-i`: `>f.st......`, `cd+++++++++`), from the
/// item flags the generator decided on.
#[must_use]
pub fn itemized(entry: &Entry, iflags: u16) -> mirror::Item<'_> {
    use mirror::Update;
    let kind = kind_of(entry);
    let has = |bit: u16| iflags & bit != 0;
    let update = if has(ITEM_LOCAL_CHANGE) {
        Update::Created
    } else if has(ITEM_TRANSFER) {
        Update::Received
    } else {
        Update::Unchanged
    };
    let mut item = mirror::Item::new(&entry.name, kind, update);
    item.is_new = has(ITEM_IS_NEW);
    item.checksum = has(ITEM_REPORT_CHANGE);
    item.size = has(ITEM_REPORT_SIZE);
    item.time = has(ITEM_REPORT_TIME);
    item.perms = has(ITEM_REPORT_PERMS);
    item.owner = has(ITEM_REPORT_OWNER);
    item.group = has(ITEM_REPORT_GROUP);
    item.link_target = entry.link_target.as_deref();
    item
}

/// The caller's say in the generator's work: what to spare, where to report.
#[derive(Clone, Copy)]
struct Hooks<'a> {
    protect: &'a Protect,
    report: Option<&'a Reporter>,
    /// A daemon's module (its path, its name): errors told name files within it.
    within: Option<&'a (PathBuf, String)>,
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir == b"." {
        return name.to_vec();
    }
    let mut v = dir.to_vec();
    v.push(b'/');
    v.extend_from_slice(name);
    v
}

/// `--delete`, before any transfer: in every directory whose contents the list covers, remove
/// what the list does not name, except what `protect` spares. Returns what it removed (path,
/// directory or not).
fn delete_extraneous(
    entries: &[Entry],
    root: &Root,
    o: &ReceiveOptions,
    protect: &Protect,
    errors: &mut Vec<String>,
) -> Vec<(Vec<u8>, bool)> {
    let mut deleted = Vec::new();
    use std::collections::{HashMap, HashSet};
    let mut children: HashMap<&[u8], HashSet<&[u8]>> = HashMap::new();
    for e in entries.iter().filter(|e| e.name != b"." && !e.is_cleared()) {
        let (parent, name) = split(&e.name);
        children.entry(parent).or_default().insert(name);
    }
    let no_content = protocol::flist::SAME_RDEV_MAJOR;
    for dir_entry in entries
        .iter()
        // A directory carries its contents unless marked otherwise (with -r every one,
        // with -d the top; what --delete-missing-args became, see
        // mirror::flist::missing_as_deletions, marks the parents it names).
        .filter(|e| e.is_dir() && e.flags & no_content == 0)
    {
        let Ok(dir) = root.open_dir(&dir_entry.name) else {
            continue;
        };
        let Ok(names) = dir.names() else { continue };
        let wanted = children.get(dir_entry.name.as_slice());
        for name in names {
            if wanted.is_some_and(|w| w.contains(name.as_slice())) {
                continue;
            }
            let path = join(&dir_entry.name, &name);
            let is_dir = dir
                .stat(&name)
                .ok()
                .flatten()
                .is_some_and(|st| st.kind == Kind::Dir);
            if protect(&path, is_dir) {
                continue;
            }
            if o.dry_run {
                would_remove(&dir, &name, &path, &mut deleted);
                continue;
            }
            let base = dir_entry.name.clone();
            let removed = dir.remove_tree(&name, &mut |rel, kind| {
                protect(&join(&base, rel), kind == Kind::Dir)
            });
            match removed {
                Ok(gone) => deleted.extend(
                    gone.into_iter()
                        .map(|(rel, kind)| (join(&base, &rel), kind == Kind::Dir)),
                ),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    deleted
}

/// Totals of a receiver.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceiveStats {
    /// Files whose content was received.
    pub transferred: u64,
    /// Literal bytes received.
    pub literal: u64,
    /// Bytes rebuilt from the old versions.
    pub matched: u64,
    /// Entries that failed.
    pub errors: u64,
    /// A server sender's file-list build and send times, in ms, from its totals (`main.c
    /// handle_stats`): what rsync's client shows as the list's generation and transfer times.
    pub sender_flist_ms: (u64, u64),
}

use mirror::flist::split_path as split;

fn meta_of(e: &Entry, o: &ReceiveOptions) -> Meta {
    Meta {
        perms: Some(e.mode & 0o7777).filter(|_| o.perms || e.mode & 0o170_000 != 0o040_000),
        uid: e.uid.filter(|_| o.owner && fsx::is_root()),
        gid: e.gid.filter(|_| o.group),
        mtime: o.times.then_some(Timespec {
            sec: e.mtime,
            nsec: e.mtime_nsec,
        }),
    }
}

/// The generator: makes what needs no data, requests the rest, then follows the phases the
/// receiver reports.
fn generate(
    entries: &[Entry],
    root: &Root,
    o: &ReceiveOptions,
    hooks: Hooks<'_>,
    writer: &mut MuxWriter,
    progress: &mpsc::Receiver<Progress>,
    errors: &mut Vec<String>,
) -> Result<(), SessionError> {
    let report = hooks.report;
    let mut parent_dir: Option<(Vec<u8>, fsx::Dir)> = None;
    // How many of `errors` the client has heard of (a server tells it as they happen).
    let mut told = 0;
    if o.delete {
        let deleted = delete_extraneous(entries, root, o, hooks.protect, errors);
        let mut told = Vec::new();
        for (name, dir) in &deleted {
            report.inspect(|r| r(Report::Deleted { name, dir: *dir }));
            if o.tell_deletions {
                // A directory's name goes with a trailing NUL (`log.c log_delete`).
                let mut text = name.clone();
                if *dir {
                    text.push(0);
                }
                protocol::mux::encode(&mut told, protocol::mux::MsgCode::Deleted, &text)?;
            }
        }
        if !told.is_empty() {
            writer.send_raw(&told)?;
        }
    }
    let mut ndx = NdxCodec::default();
    let mut out = Vec::new();
    let rule = BlockSizeRule {
        protocol: o.protocol,
        digest_len: o.checksum.digest_len() as u32,
        ..BlockSizeRule::default()
    };
    // `--existing`: directories not made here, whose contents are skipped too.
    let mut not_made: Vec<&[u8]> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.is_cleared() {
            continue;
        }
        let (parent, name) = split(&e.name);
        if o.quick.existing && e.name != b"." && e.mode & 0o170_000 != 0 {
            let below = |d: &&[u8]| {
                e.name.len() > d.len()
                    && e.name.starts_with(d)
                    && e.name.get(d.len()) == Some(&b'/')
            };
            if not_made.iter().any(below) {
                continue;
            }
            let here = root
                .open_dir(parent)
                .ok()
                .and_then(|d| d.stat(name).ok().flatten());
            if here.is_none() {
                if e.is_dir() {
                    not_made.push(&e.name);
                }
                continue;
            }
        }
        if e.name == b"." {
            // (A dry run does not tell the client about the top, as rsync's does not.)
            if let Ok(st) = root.top().stat_self() {
                let tell = o.tell_items && !o.dry_run;
                announce(
                    &mut out,
                    &mut ndx,
                    report,
                    tell,
                    i,
                    e,
                    attr_flags(&st, e, o),
                );
            }
            continue;
        }
        if o.dry_run {
            // Nothing changes; what would is said. A directory the run would make does not
            // exist, so everything below it is new.
            let dir = root.open_dir(parent).ok();
            let existing = dir.as_ref().and_then(|d| d.stat(name).ok().flatten());
            if e.mode & 0o170_000 == 0 {
                if let Some(st) = existing {
                    report.inspect(|r| {
                        r(Report::Deleted {
                            name: &e.name,
                            dir: st.kind == Kind::Dir,
                        });
                    });
                }
            } else if e.is_file() && e.hardlink_leader.is_none() {
                let current = dir
                    .as_ref()
                    .is_some_and(|d| file_is_current(d, name, e, existing, o));
                if !current {
                    // The sender echoes it without data; the receiver reports it then (as
                    // rsync's, a file is named once it has arrived, or would have).
                    item(&mut out, &mut ndx, i, transfer_flags(existing, e, o));
                }
            } else if !e.is_file() {
                let flags = match existing {
                    None => ITEM_LOCAL_CHANGE | ITEM_IS_NEW,
                    Some(st) if st.kind != kind_of(e) => ITEM_LOCAL_CHANGE | ITEM_IS_NEW,
                    Some(st) if e.is_symlink() => {
                        let same = dir.as_ref().is_some_and(|d| {
                            d.read_link(name)
                                .is_ok_and(|t| Some(&t) == e.link_target.as_ref())
                        });
                        if same {
                            attr_flags(&st, e, o)
                        } else {
                            ITEM_LOCAL_CHANGE | changed_or_new(existing, e, o)
                        }
                    }
                    Some(st) => attr_flags(&st, e, o),
                };
                let wanted = match kind_of(e) {
                    Kind::Dir => true,
                    Kind::Symlink => o.links,
                    _ => o.devices,
                };
                if wanted {
                    announce(&mut out, &mut ndx, report, o.tell_items, i, e, flags);
                }
            }
            continue;
        }
        // Entries come directory by directory: the parent stays open for its children
        // (opening it walks the path from the root, one component at a time).
        if parent_dir
            .as_ref()
            .is_none_or(|(p, _)| p.as_slice() != parent)
        {
            match root.open_dir(parent) {
                Ok(d) => parent_dir = Some((parent.to_vec(), d)),
                Err(err) => {
                    parent_dir = None;
                    errors.push(err.to_string());
                    continue;
                }
            }
        }
        let Some((_, dir)) = parent_dir.as_ref() else {
            continue;
        };
        let existing = dir.stat(name)?;
        let mut gone = Vec::new();
        let result: Result<(), fsx::FsError> = (|| {
            if e.mode & 0o170_000 == 0 {
                // `--delete-missing-args`: the sender names what no longer exists there.
                if let Some(st) = existing
                    && !(hooks.protect)(&e.name, st.kind == Kind::Dir)
                {
                    for (rel, kind) in dir.remove_tree(name, &mut |_, _| false)? {
                        gone.push((join(parent, &rel), kind == Kind::Dir));
                    }
                }
            } else if e.is_dir() {
                match existing {
                    Some(st) if st.kind == Kind::Dir => {
                        let flags = attr_flags(&st, e, o);
                        announce(&mut out, &mut ndx, report, o.tell_items, i, e, flags);
                    }
                    Some(_) => {
                        dir.remove_tree(name, &mut |_, _| false)?;
                        dir.mkdir(name, e.mode & 0o7777)?;
                        let flags = ITEM_LOCAL_CHANGE | ITEM_IS_NEW;
                        announce(&mut out, &mut ndx, report, o.tell_items, i, e, flags);
                    }
                    None => {
                        dir.mkdir_or_found(name, e.mode & 0o7777)?;
                        let flags = ITEM_LOCAL_CHANGE | ITEM_IS_NEW;
                        announce(&mut out, &mut ndx, report, o.tell_items, i, e, flags);
                    }
                }
            } else if e.is_symlink() {
                if let (true, Some(target)) = (o.links, &e.link_target) {
                    let same = existing.is_some_and(|st| st.kind == Kind::Symlink)
                        && dir.read_link(name).is_ok_and(|t| t == *target);
                    if same {
                        // Same target: its owner and times may still have changed.
                        let flags = existing.map_or(0, |st| attr_flags(&st, e, o));
                        dir.set_meta(name, Kind::Symlink, &meta_of(e, o))?;
                        announce(&mut out, &mut ndx, report, o.tell_items, i, e, flags);
                    } else {
                        if existing.is_some_and(|st| st.kind == Kind::Dir) {
                            dir.remove_tree(name, &mut |_, _| false)?;
                        }
                        dir.symlink(name, target, &meta_of(e, o))?;
                        let flags = ITEM_LOCAL_CHANGE | changed_or_new(existing, e, o);
                        announce(&mut out, &mut ndx, report, o.tell_items, i, e, flags);
                    }
                }
            } else if e.is_file() && e.hardlink_leader.is_some() {
                // A follower of a hard-link group is linked to its leader once the leader
                // has arrived (at the end of the pull).
            } else if e.is_file() {
                let mtime = Timespec {
                    sec: e.mtime,
                    nsec: e.mtime_nsec,
                };
                let here = existing.filter(|st| st.kind == Kind::File);
                if here.is_some_and(|st| {
                    o.quick.ignore_existing || (o.quick.update && st.mtime > mtime)
                }) {
                    return Ok(());
                }
                if file_is_current(dir, name, e, existing, o) {
                    // Same content: what else differs (a time, with -c; permissions, owner)
                    // is put right.
                    let flags = here.map_or(0, |st| attr_flags(&st, e, o));
                    if flags != 0 {
                        dir.set_meta(name, Kind::File, &meta_of(e, o))?;
                        announce(&mut out, &mut ndx, report, o.tell_items, i, e, flags);
                    }
                    return Ok(());
                }
                if existing.is_some_and(|st| st.kind == Kind::Dir) {
                    dir.remove_tree(name, &mut |_, _| false)?;
                }
                request(&mut out, &mut ndx, (i, e), dir, name, existing, o, rule)?;
            } else if o.devices {
                let kind = match e.mode & 0o170_000 {
                    0o020_000 => Kind::CharDev,
                    0o060_000 => Kind::BlockDev,
                    0o010_000 => Kind::Fifo,
                    _ => Kind::Socket,
                };
                let (major, minor) = e.rdev.unwrap_or((0, 0));
                let rdev = rustix_makedev(major, minor);
                match existing {
                    Some(st) if st.kind == kind && (!kind.is_device() || st.rdev == rdev) => {
                        let flags = attr_flags(&st, e, o);
                        dir.set_meta(name, kind, &meta_of(e, o))?;
                        announce(&mut out, &mut ndx, report, o.tell_items, i, e, flags);
                    }
                    _ => {
                        if existing.is_some_and(|st| st.kind == Kind::Dir) {
                            dir.remove_tree(name, &mut |_, _| false)?;
                        }
                        dir.mknod(name, kind, rdev, &meta_of(e, o))?;
                        let flags = ITEM_LOCAL_CHANGE | changed_or_new(existing, e, o);
                        announce(&mut out, &mut ndx, report, o.tell_items, i, e, flags);
                    }
                }
            }
            Ok(())
        })();
        if let Err(err) = result {
            errors.push(err.to_string());
        }
        for (name, dir) in &gone {
            report.inspect(|r| r(Report::Deleted { name, dir: *dir }));
        }
        if o.tell_deletions && !gone.is_empty() {
            let mut told_frames = Vec::new();
            for (name, dir) in &gone {
                let mut text = name.clone();
                if *dir {
                    text.push(0);
                }
                protocol::mux::encode(&mut told_frames, protocol::mux::MsgCode::Deleted, &text)?;
            }
            writer.send_data(&out)?;
            out.clear();
            writer.send_raw(&told_frames)?;
        }
        if out.len() > 64 * 1024 {
            writer.send_data(&out)?;
            out.clear();
        }
        if o.tell_errors && errors.len() > told {
            writer.send_data(&out)?;
            out.clear();
            tell_errors(errors, &mut told, writer, hooks.within)?;
        }
    }
    // End of the first pass. When the sender ends it too, the receiver has checked every
    // file: those that failed are asked for once more (`generator.c`, phase 2), with full
    // strong sums so that a block is never wrongly matched twice.
    out.push(0);
    writer.send_data(&out)?;
    out.clear();
    let redo_rule = BlockSizeRule {
        csum_length: delta::sizes::SUM_LENGTH,
        ..rule
    };
    let mut phases_seen = 0;
    while phases_seen < 4 {
        match progress.recv() {
            Err(_) => return Ok(()),
            Ok(Progress::Redo(i)) => {
                let Some(e) = entries.get(i) else { continue };
                let (parent, name) = split(&e.name);
                let result = root.open_dir(parent).and_then(|dir| {
                    let existing = dir.stat(name)?;
                    request(
                        &mut out,
                        &mut ndx,
                        (i, e),
                        &dir,
                        name,
                        existing,
                        o,
                        redo_rule,
                    )
                });
                if let Err(err) = result {
                    errors.push(err.to_string());
                }
            }
            Ok(Progress::Failed(text)) => {
                // Counted by the receiver already; only the client is told here.
                let mut told_one = 0;
                tell_errors(&[text], &mut told_one, writer, hooks.within)?;
            }
            Ok(Progress::PhaseEnded) => {
                phases_seen += 1;
                if phases_seen == 3 && !o.dry_run {
                    // Every file is in: hard links and directory times now, before the
                    // goodbye (a client may read the tree as soon as it has it).
                    finish_tree(entries, root, o, report, errors);
                }
                if o.tell_errors {
                    tell_errors(errors, &mut told, writer, hooks.within)?;
                }
                out.push(0);
                writer.send_data(&out)?;
                out.clear();
            }
        }
    }
    writer.shutdown();
    Ok(())
}

/// What removing `name` (at `path` in the destination) would remove, children first, for a
/// dry run's report.
fn would_remove(dir: &fsx::Dir, name: &[u8], path: &[u8], out: &mut Vec<(Vec<u8>, bool)>) {
    let is_dir = dir
        .stat(name)
        .ok()
        .flatten()
        .is_some_and(|st| st.kind == Kind::Dir);
    if is_dir && let Ok(sub) = dir.open_dir(name) {
        let mut names = sub.names().unwrap_or_default();
        names.sort();
        for child in names.iter().rev() {
            would_remove(&sub, child, &join(path, child), out);
        }
    }
    out.push((path.to_vec(), is_dir));
}

/// How an entry here of the same type differs from the sender's, as `-i` shows it (`generator.c
/// itemize`): size (files), time, permissions (not symlinks), owner (as root), group — each
/// only when preserved.
fn attr_flags(st: &fsx::Stat, e: &Entry, o: &ReceiveOptions) -> u16 {
    let time = Timespec {
        sec: e.mtime,
        nsec: e.mtime_nsec,
    };
    let mut flags = 0;
    if e.is_file() && st.size != e.size.cast_unsigned() {
        flags |= ITEM_REPORT_SIZE;
    }
    if o.times && st.mtime != time {
        flags |= ITEM_REPORT_TIME;
    }
    if o.perms && !e.is_symlink() && st.perms != e.mode & 0o7777 {
        flags |= ITEM_REPORT_PERMS;
    }
    if o.owner && fsx::is_root() && e.uid.is_some_and(|u| u != st.uid) {
        flags |= ITEM_REPORT_OWNER;
    }
    if o.group && e.gid.is_some_and(|g| g != st.gid) {
        flags |= ITEM_REPORT_GROUP;
    }
    flags
}

/// The flags of a file asked for: new, or what differs from the one here (its content too,
/// with `-c`).
fn transfer_flags(existing: Option<fsx::Stat>, e: &Entry, o: &ReceiveOptions) -> u16 {
    match existing.filter(|st| st.kind == Kind::File) {
        None => ITEM_TRANSFER | ITEM_IS_NEW,
        Some(st) => {
            let sum = if o.always_checksum {
                ITEM_REPORT_CHANGE
            } else {
                0
            };
            ITEM_TRANSFER | sum | attr_flags(&st, e, o)
        }
    }
}

/// `ITEM_IS_NEW` when nothing of this type is there yet, else `ITEM_REPORT_CHANGE` (what is
/// there was replaced: a symlink's target, a device's numbers) and what else differs.
fn changed_or_new(existing: Option<fsx::Stat>, e: &Entry, o: &ReceiveOptions) -> u16 {
    match existing.filter(|st| st.kind == kind_of(e)) {
        Some(st) => ITEM_REPORT_CHANGE | attr_flags(&st, e, o),
        None => ITEM_IS_NEW,
    }
}

/// The kind of file an entry is.
fn kind_of(e: &Entry) -> Kind {
    Kind::from_mode(e.mode)
}

/// Says what was (in a dry run: would be) made or changed without data, when anything was:
/// to the caller's reporter, and to the client with `tell`.
fn announce(
    out: &mut Vec<u8>,
    ndx: &mut NdxCodec,
    report: Option<&Reporter>,
    tell: bool,
    i: usize,
    e: &Entry,
    iflags: u16,
) {
    if iflags == 0 {
        return;
    }
    report.inspect(|r| r(Report::Entry { entry: e, iflags }));
    if tell {
        item(out, ndx, i, iflags);
    }
}

/// Tells the sender about entry `i` without asking for data (`generator.c itemize`): a
/// client prints the names of what its server made or changed under `-v`.
fn item(out: &mut Vec<u8>, ndx: &mut NdxCodec, i: usize, iflags: u16) {
    ndx.encode(out, i32::try_from(i).unwrap_or(i32::MAX));
    out.extend_from_slice(&iflags.to_le_bytes());
}

/// The generator's quick check (`generator.c recv_generator`): whether the file here needs
/// no transfer — it is left alone (`--ignore-existing`, `-u` and newer here), or has the
/// entry's size and time (or sum, with `-c`; or size alone with `--size-only`).
fn file_is_current(
    dir: &fsx::Dir,
    name: &[u8],
    e: &Entry,
    existing: Option<fsx::Stat>,
    o: &ReceiveOptions,
) -> bool {
    let mtime = Timespec {
        sec: e.mtime,
        nsec: e.mtime_nsec,
    };
    let Some(st) = existing.filter(|st| st.kind == Kind::File) else {
        return false;
    };
    if o.quick.ignore_existing || (o.quick.update && st.mtime > mtime) {
        return true;
    }
    !o.quick.ignore_times
        && st.size == e.size.cast_unsigned()
        && if o.always_checksum {
            same_sum(dir, name, e, o.checksum)
        } else {
            o.quick.size_only || st.mtime.same_within(&mtime, o.quick.modify_window)
        }
}

/// The end of a transfer (`generator.c touch_up_dirs`, `hlink.c finish_hard_link`): hard-link
/// followers linked to their leaders, then directory attributes, last because writing into a
/// directory changes its times.
fn finish_tree(
    entries: &[Entry],
    root: &Root,
    o: &ReceiveOptions,
    report: Option<&Reporter>,
    errors: &mut Vec<String>,
) {
    for e in entries {
        let Some(leader) = e.hardlink_leader.and_then(|l| entries.get(l as usize)) else {
            continue;
        };
        match link_follower(root, leader, e) {
            Err(err) => errors.push(err.to_string()),
            Ok(()) => {
                if let Some(r) = report {
                    r(Report::Linked {
                        entry: e,
                        to: &leader.name,
                    });
                }
            }
        }
    }
    for e in entries.iter().rev().filter(|e| e.is_dir()) {
        let m = meta_of(e, o);
        let r = if e.name == b"." {
            root.top().set_own_meta(&m)
        } else {
            let (parent, name) = split(&e.name);
            match root.open_dir(parent) {
                // `--existing` made no new directory: there is none to set.
                Err(e) if o.quick.existing && e.is_not_found() => Ok(()),
                Err(e) => Err(e),
                Ok(d) if o.quick.existing && d.stat(name).ok().flatten().is_none() => Ok(()),
                Ok(d) => d.set_meta(name, Kind::Dir, &m),
            }
        };
        if let Err(err) = r {
            errors.push(err.to_string());
        }
    }
}

/// Makes `follower` a hard link to `leader`, unless it already is one.
fn link_follower(root: &Root, leader: &Entry, follower: &Entry) -> Result<(), fsx::FsError> {
    let (lp, ln) = split(&leader.name);
    let (fp, fname) = split(&follower.name);
    let (ldir, fdir) = (root.open_dir(lp)?, root.open_dir(fp)?);
    let (Some(l), f) = (ldir.stat(ln)?, fdir.stat(fname)?) else {
        return Ok(()); // The leader could not be made; its error is already counted.
    };
    if f.is_some_and(|f| f.dev == l.dev && f.ino == l.ino) {
        return Ok(());
    }
    if f.is_some_and(|f| f.kind == Kind::Dir) {
        fdir.remove_tree(fname, &mut |_, _| false)?;
    }
    fdir.hard_link(fname, &ldir, ln)
}

/// Whether the file here has the whole-file sum the list carries (`-c`).
fn same_sum(dir: &fsx::Dir, name: &[u8], e: &Entry, kind: ChecksumKind) -> bool {
    let Some(expected) = e.checksum.as_deref() else {
        return false;
    };
    let Ok(mut file) = dir.open_file(name) else {
        return false;
    };
    let mut h = delta::FileHasher::new(kind);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match std::io::Read::read(&mut file, &mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(buf.get(..n).unwrap_or_default()),
            Err(_) => return false,
        }
    }
    h.finish().as_bytes() == expected
}

/// Asks the sender for file `i`: its index, the item flags, and the block signature of the
/// version here (none when there is none, or with `-W`).
#[allow(clippy::too_many_arguments)]
fn request(
    out: &mut Vec<u8>,
    ndx: &mut NdxCodec,
    (i, e): (usize, &Entry),
    dir: &fsx::Dir,
    name: &[u8],
    existing: Option<fsx::Stat>,
    o: &ReceiveOptions,
    rule: BlockSizeRule,
) -> Result<(), fsx::FsError> {
    let basis = existing.filter(|st| st.kind == Kind::File && st.size > 0 && !o.whole_file);
    ndx.encode(out, i32::try_from(i).unwrap_or(i32::MAX));
    let iflags = transfer_flags(existing, e, o);
    out.extend_from_slice(&iflags.to_le_bytes());
    let Some(st) = basis else {
        for _ in 0..4 {
            put_int(out, 0);
        }
        return Ok(());
    };
    let sizes = SumSizes::for_file(st.size, rule);
    let file = dir.open_file(name)?;
    let sig = Signature::generate(
        &mut std::io::BufReader::new(file),
        sizes,
        o.checksum,
        o.seed,
        o.compat & CF_CHKSUM_SEED_FIX != 0,
    )
    .map_err(|err| fsx::FsError::Io {
        op: "read basis",
        path: dir.path().join(std::ffi::OsStr::from_bytes(name)),
        source: std::io::Error::other(err.to_string()),
    })?;
    for v in [sizes.count, sizes.block_len, sizes.s2_len, sizes.remainder] {
        put_int(out, i32::try_from(v).unwrap_or(0));
    }
    for b in &sig.blocks {
        out.extend_from_slice(&b.sum1.to_le_bytes());
        out.extend_from_slice(b.strong.as_bytes());
    }
    Ok(())
}

fn rustix_makedev(major: u32, minor: u32) -> u64 {
    (u64::from(major & 0xfffff000) << 32)
        | (u64::from(major & 0xfff) << 8)
        | (u64::from(minor & 0xffffff00) << 12)
        | u64::from(minor & 0xff)
}

/// Where a receiver writes: the destination directory (which must exist) and the entries in
/// it that `--delete` must spare.
pub struct Destination<'a> {
    /// The destination directory.
    pub dir: &'a Path,
    /// Receiver-side filter rules.
    pub protect: Arc<Protect>,
    /// Where `-v` reports go; `None` reports nothing.
    pub report: Option<Arc<Reporter>>,
    /// A daemon's module (its path, its name): the errors told to the client name files
    /// within it, not by the server's paths. `None` tells paths as they are.
    pub within_module: Option<(&'a Path, &'a str)>,
}

/// Receives the peer's files into `dest`, as the file list `entries` (sorted as rsync sorts
/// it) describes them.
///
/// # Errors
/// Socket or protocol errors; per-file problems are counted in the stats.
pub fn receive(
    (mut reader, mut writer): (MuxReader, MuxWriter),
    entries: Vec<Entry>,
    dest: &Destination<'_>,
    o: ReceiveOptions,
    messages: &mut MessageSink<'_>,
    errors_out: &mut Vec<String>,
) -> Result<ReceiveStats, SessionError> {
    let protect = Arc::clone(&dest.protect);
    let report = dest.report.clone();
    let gen_report = dest.report.clone();
    let within = dest
        .within_module
        .map(|(root, name)| (root.to_path_buf(), name.to_owned()));
    let dest = dest.dir;
    let root = Root::open(dest, Persist::Buffered)?;
    let entries = Arc::new(entries);
    let (progress_tx, progress_rx) = mpsc::channel::<Progress>();
    let gen_entries = Arc::clone(&entries);
    let gen_root = Root::open(dest, Persist::Buffered)?;
    let generator = std::thread::spawn(move || {
        let mut errors = Vec::new();
        let r = generate(
            &gen_entries,
            &gen_root,
            &o,
            Hooks {
                protect: &*protect,
                report: gen_report.as_deref(),
                within: within.as_ref(),
            },
            &mut writer,
            &progress_rx,
            &mut errors,
        );
        (r, errors)
    });

    let mut stats = ReceiveStats::default();
    let mut data = crate::mux::DataBuf::default();
    let mut ndx_in = NdxCodec::default();
    let mut phase = 0;
    let digest = o.checksum.digest_len();
    // With -z the token stream is one zstd stream for the whole session.
    let mut decoder = if o.compress {
        Some(TokenDecoder::new()?)
    } else {
        None
    };
    let result: Result<(), SessionError> = (|| {
        loop {
            let n = reader.recv_data(&mut data, messages, |b| ndx_in.decode(b))?;
            if n == NDX_DONE {
                phase += 1;
                if phase == 3 && o.sender_is_server {
                    let mut totals = [0i64; 5];
                    for v in &mut totals {
                        *v = reader.recv_data(&mut data, messages, |b| get_varlong(b, 3))?;
                    }
                    let ms = |v: i64| u64::try_from(v).unwrap_or(0);
                    stats.sender_flist_ms = (ms(totals[3]), ms(totals[4]));
                }
                let _ = progress_tx.send(Progress::PhaseEnded);
                if phase == 4 || (phase == 3 && o.protocol < 31) {
                    return Ok(());
                }
                continue;
            }
            let index = usize::try_from(n).unwrap_or(usize::MAX);
            let entry = entries
                .get(index)
                .filter(|e| !e.is_cleared())
                .ok_or_else(|| {
                    protocol::ProtoError::protocol_text(
                        "receiver",
                        "the sender named a file that is not in the list",
                    )
                })?;
            let iflags = reader.recv_data(&mut data, messages, |b| Ok(get_short(b)))?;
            if iflags & ITEM_BASIS_TYPE_FOLLOWS != 0 {
                reader.recv_data(&mut data, messages, |b| Ok(b.first().map(|&x| (x, 1))))?;
            }
            if iflags & ITEM_XNAME_FOLLOWS != 0 {
                reader.recv_data(&mut data, messages, |b| {
                    Ok(get_vstring(b).map(|(s, n)| (s.to_vec(), n)))
                })?;
            }
            if iflags & ITEM_TRANSFER == 0 || o.dry_run {
                if o.dry_run && iflags & ITEM_TRANSFER != 0 {
                    report
                        .as_deref()
                        .inspect(|r| r(Report::Entry { entry, iflags }));
                }
                continue;
            }
            let mut head = [0i32; 4];
            for v in &mut head {
                *v = reader.recv_data(&mut data, messages, |b| Ok(get_int(b)))?;
            }
            let sizes = SumSizes::checked(head[0], head[1], head[2], head[3], digest)
                .map_err(|e| protocol::ProtoError::protocol_text("sum header", &e.to_string()))?;
            let (parent, name) = split(&entry.name);
            let dir = root.open_dir(parent)?;
            let basis: Box<dyn delta::Basis> = if sizes.count > 0 {
                Box::new(dir.open_file(name)?)
            } else {
                Box::new(&[][..])
            };
            let mut tmp = dir.create_temp(name)?;
            // Sized to the file: a 256 KiB buffer for every small file was an mmap and a
            // munmap each.
            let capacity = usize::try_from(entry.size)
                .unwrap_or(0)
                .clamp(8 * 1024, 256 * 1024);
            let out = BufWriter::with_capacity(
                capacity,
                fsx::SparseWriter::new(tmp.file_mut(), o.sparse),
            );
            let mut patcher = Patcher::new(basis, sizes, o.checksum, out);
            let mut failed = None;
            if let Some(dec) = decoder.as_mut() {
                dec.start_file();
            }
            loop {
                let token = match decoder.as_mut() {
                    Some(dec) => reader.recv_data(&mut data, messages, |b| dec.decode(b))?,
                    None => {
                        let t = reader.recv_data(&mut data, messages, |b| Ok(get_int(b)))?;
                        if t > 0 {
                            let len = usize::try_from(t).unwrap_or(0);
                            if len > 1 << 24 {
                                return Err(protocol::ProtoError::protocol_text(
                                    "token stream",
                                    "literal record too long",
                                )
                                .into());
                            }
                            Token::Literal(reader.recv_data(&mut data, messages, |b| {
                                Ok(b.get(..len).map(|s| (s.to_vec(), len)))
                            })?)
                        } else if t < 0 {
                            Token::Copy(t.unsigned_abs() - 1)
                        } else {
                            Token::End
                        }
                    }
                };
                match token {
                    Token::End => break,
                    Token::Literal(bytes) => {
                        if let Err(e) = patcher.write_literal(&bytes) {
                            failed.get_or_insert(e.to_string());
                        }
                        stats.literal += bytes.len() as u64;
                    }
                    Token::Copy(block) => {
                        let before = patcher.written();
                        if let Err(e) = patcher.copy_block(u64::from(block)) {
                            failed.get_or_insert(e.to_string());
                        }
                        stats.matched += patcher.written() - before;
                    }
                }
            }
            let sum = reader.recv_data(&mut data, messages, |b| {
                Ok(b.get(..digest).map(|s| (s.to_vec(), digest)))
            })?;
            let written = match (failed, patcher.finish(&sum)) {
                (None, Ok(w)) => w
                    .into_inner()
                    .map_err(|e| e.to_string())
                    .and_then(|w| w.finish().map_err(|e| e.to_string())),
                (Some(e), _) => Err(e),
                (None, Err(delta::DeltaError::ChecksumMismatch { .. })) if phase == 0 => {
                    // The file changed under the sender, or the basis under us: the
                    // generator asks again once the first pass is over.
                    if o.verbose {
                        let text = format!(
                            "WARNING: {} failed verification -- update discarded (will try again).\n",
                            String::from_utf8_lossy(&entry.name)
                        );
                        messages(protocol::mux::MsgCode::Warning, text.as_bytes());
                    }
                    let _ = progress_tx.send(Progress::Redo(index));
                    continue;
                }
                (None, Err(e @ delta::DeltaError::ChecksumMismatch { .. })) => {
                    Err(format!("failed verification -- update discarded ({e})"))
                }
                (None, Err(e)) => Err(e.to_string()),
            };
            match written {
                Ok(()) => match tmp.commit(&meta_of(entry, &o)) {
                    Ok(()) => {
                        stats.transferred += 1;
                        report
                            .as_deref()
                            .inspect(|r| r(Report::Entry { entry, iflags }));
                    }
                    Err(e) => {
                        stats.errors += 1;
                        errors_out.push(e.to_string());
                        if o.tell_errors {
                            let _ = progress_tx.send(Progress::Failed(e.to_string()));
                        }
                    }
                },
                Err(e) => {
                    stats.errors += 1;
                    let text = format!("{}: {e}", String::from_utf8_lossy(&entry.name));
                    if o.tell_errors {
                        let _ = progress_tx.send(Progress::Failed(text.clone()));
                    }
                    errors_out.push(text);
                }
            }
        }
    })();
    drop(progress_tx);
    let (gen_result, gen_errors) = generator
        .join()
        .map_err(|_| SessionError::Socket(std::io::Error::other("generator thread panicked")))?;
    stats.errors += gen_errors.len() as u64;
    errors_out.extend(gen_errors);
    result?;
    gen_result?;
    Ok(stats)
}
