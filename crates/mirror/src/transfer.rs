//! The generator and receiver of a local transfer: compare each listed entry with the
//! destination, delete what the source no longer has, and write every change through `fsx`
//! (`generator.c recv_generator`, `receiver.c recv_files`, `generator.c delete_in_dir`).

use std::collections::{HashMap, HashSet};

use rustc_hash::FxHashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use delta::{BlockSizeRule, FileHasher, Matcher, Signature, SumSizes};
use filter::{FilterList, Side};
use fsx::{Dir, FsError, Kind, Meta, Root, Stat};

use crate::MirrorError;
use crate::flist::{self, FileEntry, FileList, SourceArg, compare};
use crate::item::{Item, Update};
use crate::options::{DeleteTiming, Options};
use crate::placement::{self, Placement};
use crate::stats::Stats;

/// Where a transfer reports what it does. Every method has a quiet default.
pub trait Reporter {
    /// An entry was created, changed, checked or deleted.
    fn item(&mut self, _item: &Item<'_>) {}
    /// A file's content was written (for `--progress`).
    fn file_done(&mut self, _item: &Item<'_>, _elapsed: Duration) {}
    /// A problem with one entry; the transfer goes on and ends with exit code 23 or 24.
    fn error(&mut self, _message: &str) {}
    /// Information that is not an error ("skipping non-regular file").
    fn note(&mut self, _message: &str) {}
    /// `done` of `total` entries handled (for a progress bar).
    fn tick(&mut self, _done: usize, _total: usize) {}
}

/// How a transfer ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Totals for `--stats`.
    pub stats: Stats,
    /// Entries that failed.
    pub errors: u64,
    /// Source files that vanished before they could be read.
    pub vanished: u64,
    /// `--max-delete` stopped some deletions.
    pub max_delete_exceeded: bool,
}

impl Outcome {
    /// rsync's exit code for this outcome: 0, 23 (partial), 24 (vanished) or 25 (max-delete).
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        if self.errors > 0 {
            23
        } else if self.max_delete_exceeded {
            25
        } else if self.vanished > 0 {
            24
        } else {
            0
        }
    }
}

/// Keeps the directories on the path to the current entry open, so that consecutive entries in
/// one directory reuse its fd and every directory is reached without following symlinks.
struct DirCursor {
    stack: Vec<(Vec<u8>, Dir)>,
}

impl DirCursor {
    fn open<'c>(&'c mut self, root: &'c Root, rel: &[u8]) -> Result<&'c Dir, FsError> {
        let comps = fsx::split_rel_path(rel)?;
        let keep = self
            .stack
            .iter()
            .zip(&comps)
            .take_while(|((name, _), c)| name == *c)
            .count();
        self.stack.truncate(keep);
        for comp in comps.get(keep..).unwrap_or_default() {
            let next = match self.stack.last() {
                Some((_, d)) => d.open_dir(comp)?,
                None => root.open_dir(comp)?,
            };
            self.stack.push((comp.to_vec(), next));
        }
        Ok(match self.stack.last() {
            Some((_, d)) => d,
            None => root.top(),
        })
    }

    fn forget(&mut self) {
        self.stack.clear();
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir == b"." || dir.is_empty() {
        return name.to_vec();
    }
    let mut v = dir.to_vec();
    v.push(b'/');
    v.extend_from_slice(name);
    v
}

struct Transfer<'a> {
    opts: &'a Options,
    filters: &'a FilterList,
    flist: &'a FileList,
    /// `None` in a dry run whose destination does not exist yet.
    root: Option<Root>,
    /// A single file transferred to a new name.
    rename: Option<&'a [u8]>,
    /// The destination directory was created by this run.
    created_root: bool,
    /// `lstat` of every destination entry, scanned while the source was walked; `None` when
    /// the destination was not scanned (then each entry is looked up as it comes).
    known: Option<FxHashMap<Vec<u8>, Stat>>,
    reporter: &'a mut dyn Reporter,
    cursor: DirCursor,
    children: HashMap<&'a [u8], HashSet<&'a [u8]>>,
    dirs_to_finish: Vec<(&'a FileEntry, Meta)>,
    hardlinks: HashMap<(u64, u64), Vec<u8>>,
    outcome: Outcome,
    deletions: u64,
    umask: u32,
    seed: i32,
    is_root: bool,
}

impl<'a> Transfer<'a> {
    fn error(&mut self, message: String) {
        self.outcome.errors += 1;
        self.reporter.error(&message);
    }

    fn fs_error(&mut self, e: &FsError) {
        self.error(e.to_string());
    }

    fn meta_for(&self, entry: &FileEntry, is_new: bool) -> Meta {
        let kind = entry.kind.unwrap_or(Kind::File);
        let perms = if self.opts.perms {
            Some(entry.perms)
        } else if is_new {
            Some(entry.perms & !self.umask & 0o7777)
        } else {
            None
        };
        let times = self.opts.times && !(kind == Kind::Dir && self.opts.omit_dir_times);
        Meta {
            perms,
            uid: (self.opts.owner && self.is_root).then_some(entry.uid),
            gid: self.opts.group.then_some(entry.gid),
            mtime: times.then_some(entry.mtime),
        }
    }

    /// Compares attributes of an existing destination entry with the source, for itemizing
    /// and to know whether anything must be applied.
    fn attr_diff(&self, entry: &FileEntry, st: &Stat, item: &mut Item) {
        let kind = entry.kind.unwrap_or(Kind::File);
        let times = self.opts.times && !(kind == Kind::Dir && self.opts.omit_dir_times);
        item.time = times && st.mtime != entry.mtime;
        item.perms = self.opts.perms && kind != Kind::Symlink && st.perms != entry.perms;
        item.owner = self.opts.owner && self.is_root && st.uid != entry.uid;
        item.group = self.opts.group && st.gid != entry.gid;
    }

    fn dest_name(&self, entry: &'a FileEntry) -> (&'a [u8], &'a [u8]) {
        let (parent, base) = entry.split_name();
        match self.rename {
            Some(name) => (b".", name),
            None => (parent, base),
        }
    }

    fn run(&mut self) {
        let total = self.flist.entries.len();
        if self.opts.delete == Some(DeleteTiming::Before) {
            for entry in &self.flist.entries {
                if entry.is_dir() && entry.content_dir {
                    self.delete_extraneous(&entry.name);
                }
            }
        }
        for (i, entry) in self.flist.entries.iter().enumerate() {
            self.count(entry);
            self.process(entry);
            self.reporter.tick(i + 1, total);
        }
        if self.opts.delete == Some(DeleteTiming::After) {
            for entry in &self.flist.entries {
                if entry.is_dir() && entry.content_dir {
                    self.delete_extraneous(&entry.name);
                }
            }
        }
        self.finish_dirs();
    }

    fn count(&mut self, entry: &FileEntry) {
        if let Some(kind) = entry.kind {
            let stats = &mut self.outcome.stats;
            crate::stats::count(&mut stats.files, kind);
            if matches!(kind, Kind::File | Kind::Symlink) {
                stats.total_size += entry.size;
            }
        }
    }

    fn process(&mut self, entry: &'a FileEntry) {
        // A lone "." written as the named path (`-d src/ new`) is an ordinary directory there.
        if entry.name == b"." && self.rename.is_none() {
            self.root_dir(entry);
            return;
        }
        let (parent, name) = self.dest_name(entry);
        let Some(root) = &self.root else {
            // Dry run into a destination that does not exist: everything would be new.
            self.report_new(entry);
            return;
        };
        let existing = if let Some(known) = &self.known {
            // A dry run never creates the directories it reports; below one, all is new.
            let parent_is_dir =
                parent == b"." || known.get(parent).is_some_and(|st| st.kind == Kind::Dir);
            if self.opts.dry_run && !parent_is_dir {
                self.report_new(entry);
                return;
            }
            // Without a rename (the only case with a scan), the entry's name is its path.
            known.get(entry.name.as_slice()).copied()
        } else {
            match self.cursor.open(root, parent) {
                Ok(dir) => match dir.stat(name) {
                    Ok(st) => st,
                    Err(e) => return self.fs_error(&e),
                },
                Err(e) if e.is_not_found() && self.opts.dry_run => {
                    self.report_new(entry);
                    return;
                }
                Err(e) => return self.fs_error(&e),
            }
        };
        let result = match entry.kind {
            None => self.delete_missing(entry, parent, name, existing),
            Some(Kind::Dir) => self.directory(entry, parent, name, existing),
            Some(Kind::File) => self.regular(entry, parent, name, existing),
            Some(Kind::Symlink) => self.symlink(entry, parent, name, existing),
            Some(kind) => self.node(entry, kind, parent, name, existing),
        };
        if let Err(e) = result {
            self.fs_error(&e);
        }
    }

    fn report_new(&mut self, entry: &FileEntry) {
        let Some(kind) = entry.kind else { return };
        let update = if kind == Kind::File {
            Update::Received
        } else {
            Update::Created
        };
        let mut item = Item::new(&entry.name, kind, update);
        item.is_new = true;
        item.link_target = entry.link_target.as_deref();
        if kind == Kind::File {
            self.outcome.stats.transferred += 1;
            self.outcome.stats.transferred_size += entry.size;
        }
        crate::stats::count(&mut self.outcome.stats.created, kind);
        self.reporter.item(&item);
    }

    fn root_dir(&mut self, entry: &'a FileEntry) {
        let Some(root) = &self.root else {
            self.report_new(entry);
            return;
        };
        let st = match root.top().stat_self() {
            Ok(st) => st,
            Err(e) => return self.fs_error(&e),
        };
        let mut item = Item::new(b".", Kind::Dir, Update::Unchanged);
        if self.created_root {
            item.update = Update::Created;
            item.is_new = true;
            // rsync counts the destination it had to make among the created entries.
            crate::stats::count(&mut self.outcome.stats.created, Kind::Dir);
        } else {
            self.attr_diff(entry, &st, &mut item);
        }
        // rsync reports a directory's deletions before the directory itself.
        if self.opts.delete == Some(DeleteTiming::During) && entry.content_dir {
            self.delete_extraneous(b".");
        }
        self.reporter.item(&item);
        if !self.opts.dry_run {
            self.dirs_to_finish
                .push((entry, self.meta_for(entry, false)));
        }
    }

    /// Clears the way for a new entry where `existing` stands in the way (wrong type).
    fn make_way(
        &mut self,
        parent: &[u8],
        name: &[u8],
        existing: &Stat,
        for_kind: Kind,
    ) -> Result<(), FsError> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        let dir = self.cursor.open(root, parent)?;
        if existing.kind != Kind::Dir {
            if for_kind == Kind::Dir {
                dir.remove(name, false)?;
            }
            // Other replacements happen atomically by rename.
            return Ok(());
        }
        match dir.remove(name, true) {
            Ok(()) => Ok(()),
            Err(e)
                if e.raw_os_error() == Some(39)
                    && (self.opts.delete.is_some() || self.opts.force) =>
            {
                let rel_dir = parent.to_vec();
                let filters = self.filters;
                let removed = dir.remove_tree(name, &mut |rel, kind| {
                    filters.is_excluded(
                        &join(&rel_dir, rel),
                        kind == Kind::Dir,
                        Side::Receiver {
                            in_deleted_dir: true,
                        },
                    )
                })?;
                self.cursor.forget();
                for (rel, kind) in removed {
                    self.report_deleted(&join(parent, &rel), kind);
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn report_deleted(&mut self, path: &[u8], kind: Kind) {
        if let Some(known) = &mut self.known {
            known.remove(path);
        }
        crate::stats::count(&mut self.outcome.stats.deleted, kind);
        self.reporter.item(&Item::new(path, kind, Update::Deleted));
    }

    fn directory(
        &mut self,
        entry: &'a FileEntry,
        parent: &[u8],
        name: &[u8],
        existing: Option<Stat>,
    ) -> Result<(), FsError> {
        let mut item = Item::new(&entry.name, Kind::Dir, Update::Created);
        match existing {
            Some(st) if st.kind == Kind::Dir => {
                item.update = Update::Unchanged;
                self.attr_diff(entry, &st, &mut item);
            }
            other => {
                if let Some(st) = other
                    && !self.opts.dry_run
                {
                    self.make_way(parent, name, &st, Kind::Dir)?;
                }
                item.is_new = true;
                if !self.opts.dry_run
                    && let Some(root) = &self.root
                {
                    let dir = self.cursor.open(root, parent)?;
                    dir.mkdir_or_found(name, entry.perms)?;
                }
                if let Some(n) = self.outcome.stats.created.get_mut(1) {
                    *n += 1;
                }
            }
        }
        if self.opts.delete == Some(DeleteTiming::During) && entry.content_dir && !item.is_new {
            self.delete_extraneous(&entry.name);
        }
        self.reporter.item(&item);
        if !self.opts.dry_run {
            self.dirs_to_finish
                .push((entry, self.meta_for(entry, item.is_new)));
        }
        Ok(())
    }

    fn quick_check_equal(
        &mut self,
        entry: &FileEntry,
        st: &Stat,
        dir_path: &[u8],
        name: &[u8],
    ) -> bool {
        if self.opts.ignore_times || st.size != entry.size {
            return false;
        }
        if self.opts.size_only {
            return true;
        }
        if self.opts.checksum {
            let src = self.flist.source_path(entry);
            let dest = self
                .root
                .as_ref()
                .map(|r| r.path().join(OsStr::from_bytes(&join(dir_path, name))));
            let (Some(a), Some(b)) = (
                file_sum(&src, self.opts),
                dest.and_then(|d| file_sum(&d, self.opts)),
            ) else {
                return false;
            };
            return a == b;
        }
        st.mtime.same_within(&entry.mtime, self.opts.modify_window)
    }

    fn regular(
        &mut self,
        entry: &FileEntry,
        parent: &[u8],
        name: &[u8],
        existing: Option<Stat>,
    ) -> Result<(), FsError> {
        let mut item = Item::new(&entry.name, Kind::File, Update::Received);
        let basis = match existing {
            Some(st) if st.kind == Kind::File => {
                if self.opts.ignore_existing || (self.opts.update && st.mtime > entry.mtime) {
                    return Ok(());
                }
                if let Some(done) = self.linked_already(entry, &st)? {
                    if done {
                        return Ok(());
                    }
                } else if self.quick_check_equal(entry, &st, parent, name) {
                    item.update = Update::Unchanged;
                    self.keep_with_attrs(entry, parent, name, &st, &mut item)?;
                    self.remember_leader(entry, parent, name);
                    return Ok(());
                }
                item.size = st.size != entry.size;
                item.checksum = self.opts.checksum;
                self.attr_diff(entry, &st, &mut item);
                Some(st)
            }
            Some(st) => {
                if self.opts.existing {
                    return Ok(());
                }
                if !self.opts.dry_run {
                    self.make_way(parent, name, &st, Kind::File)?;
                }
                item.is_new = true;
                None
            }
            None => {
                if self.opts.existing {
                    return Ok(());
                }
                item.is_new = true;
                None
            }
        };
        if let Some(leader) = self.hardlink_leader(entry) {
            return self.link_to_leader(entry, parent, name, leader, item.is_new);
        }
        if item.is_new
            && let Some(n) = self.outcome.stats.created.get_mut(0)
        {
            *n += 1;
        }
        self.outcome.stats.transferred += 1;
        self.outcome.stats.transferred_size += entry.size;
        if self.opts.dry_run {
            self.reporter.item(&item);
            return Ok(());
        }
        let started = Instant::now();
        let meta = self.meta_for(entry, item.is_new);
        let Some(root) = &self.root else {
            return Ok(());
        };
        let src_path = self.flist.source_path(entry);
        let dir = self.cursor.open(root, parent)?;
        match write_file(
            dir,
            name,
            &src_path,
            basis.as_ref(),
            &meta,
            self.opts,
            self.seed,
        ) {
            Ok(counts) => {
                let stats = &mut self.outcome.stats;
                stats.literal += counts.literal;
                stats.matched += counts.matched;
                stats.sent += counts.sent;
                stats.received += counts.received;
                item.bytes = entry.size;
                self.reporter.item(&item);
                self.reporter.file_done(&item, started.elapsed());
                self.remember_leader(entry, parent, name);
            }
            Err(WriteError::Vanished) => {
                self.outcome.vanished += 1;
                self.outcome.stats.transferred -= 1;
                self.reporter
                    .error(&format!("file has vanished: {:?}", src_path));
            }
            Err(WriteError::Fs(e)) => return Err(e),
            Err(WriteError::Other(msg)) => self.error(msg),
        }
        Ok(())
    }

    fn hardlink_leader(&self, entry: &FileEntry) -> Option<Vec<u8>> {
        entry
            .hardlink
            .and_then(|key| self.hardlinks.get(&key).cloned())
    }

    fn remember_leader(&mut self, entry: &FileEntry, parent: &[u8], name: &[u8]) {
        if let Some(key) = entry.hardlink {
            self.hardlinks
                .entry(key)
                .or_insert_with(|| join(parent, name));
        }
    }

    /// For a hard-link follower (`-H`) whose leader is already in place: whether the existing
    /// destination entry `st` already is that link (`Some(true)`) or must be linked
    /// (`Some(false)`). `None` for entries that are not followers.
    fn linked_already(&mut self, entry: &FileEntry, st: &Stat) -> Result<Option<bool>, FsError> {
        let Some(leader) = self.hardlink_leader(entry) else {
            return Ok(None);
        };
        let Some(root) = &self.root else {
            return Ok(Some(false));
        };
        let (lp, ln) = crate::flist::split_path(&leader);
        let lst = self.cursor.open(root, lp)?.stat(ln)?;
        Ok(Some(
            lst.is_some_and(|l| l.dev == st.dev && l.ino == st.ino),
        ))
    }

    fn link_to_leader(
        &mut self,
        entry: &FileEntry,
        parent: &[u8],
        name: &[u8],
        leader: Vec<u8>,
        is_new: bool,
    ) -> Result<(), FsError> {
        let mut item = Item::new(&entry.name, Kind::File, Update::HardLink);
        item.is_new = is_new;
        item.hardlink_to = Some(leader.clone());
        if !self.opts.dry_run
            && let Some(root) = &self.root
        {
            let (lp, ln) = crate::flist::split_path(&leader);
            let leader_dir = root.open_dir(lp)?;
            self.cursor
                .open(root, parent)?
                .hard_link(name, &leader_dir, ln)?;
        }
        self.reporter.item(&item);
        Ok(())
    }

    /// An existing entry that stays: applies the attributes that differ and reports it.
    fn keep_with_attrs(
        &mut self,
        entry: &FileEntry,
        parent: &[u8],
        name: &[u8],
        st: &Stat,
        item: &mut Item<'_>,
    ) -> Result<(), FsError> {
        self.attr_diff(entry, st, item);
        if item.is_change() && !self.opts.dry_run {
            let meta = self.meta_for(entry, false);
            if let Some(root) = &self.root {
                self.cursor
                    .open(root, parent)?
                    .set_meta(name, item.kind, &meta)?;
            }
        }
        self.reporter.item(item);
        Ok(())
    }

    /// Makes a symlink or node (new, or replacing what `existing` is), counts and reports it.
    /// `make` creates it in its parent directory with its metadata.
    fn make_special(
        &mut self,
        entry: &FileEntry,
        parent: &[u8],
        name: &[u8],
        existing: Option<Stat>,
        item: &mut Item<'_>,
        make: impl FnOnce(&Dir, &Meta) -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        match existing {
            Some(st) if st.kind == item.kind => {
                // Same type, other content (target or device number).
                item.checksum = true;
                self.attr_diff(entry, &st, item);
            }
            Some(st) => {
                if !self.opts.dry_run {
                    self.make_way(parent, name, &st, item.kind)?;
                }
                item.is_new = true;
            }
            None => item.is_new = true,
        }
        if item.is_new {
            crate::stats::count(&mut self.outcome.stats.created, item.kind);
        }
        if !self.opts.dry_run
            && let Some(root) = &self.root
        {
            let meta = self.meta_for(entry, true);
            make(self.cursor.open(root, parent)?, &meta)?;
        }
        self.reporter.item(item);
        Ok(())
    }

    fn symlink(
        &mut self,
        entry: &FileEntry,
        parent: &[u8],
        name: &[u8],
        existing: Option<Stat>,
    ) -> Result<(), FsError> {
        let target: &[u8] = entry.link_target.as_deref().unwrap_or_default();
        let mut item = Item::new(&entry.name, Kind::Symlink, Update::Created);
        item.link_target = Some(target);
        if let (Some(st), Some(root)) = (existing, &self.root)
            && st.kind == Kind::Symlink
            && self.cursor.open(root, parent)?.read_link(name)? == target
        {
            return self.keep_with_attrs(entry, parent, name, &st, &mut item);
        }
        self.make_special(entry, parent, name, existing, &mut item, |dir, meta| {
            dir.symlink(name, target, meta)
        })
    }

    fn node(
        &mut self,
        entry: &FileEntry,
        kind: Kind,
        parent: &[u8],
        name: &[u8],
        existing: Option<Stat>,
    ) -> Result<(), FsError> {
        let mut item = Item::new(&entry.name, kind, Update::Created);
        if let Some(st) = existing
            && st.kind == kind
            && (!kind.is_device() || st.rdev == entry.rdev)
        {
            return self.keep_with_attrs(entry, parent, name, &st, &mut item);
        }
        self.make_special(entry, parent, name, existing, &mut item, |dir, meta| {
            dir.mknod(name, kind, entry.rdev, meta)
        })
    }

    fn delete_missing(
        &mut self,
        entry: &FileEntry,
        parent: &[u8],
        name: &[u8],
        existing: Option<Stat>,
    ) -> Result<(), FsError> {
        let Some(st) = existing else { return Ok(()) };
        // Like rsync, a missing argument removes a non-empty directory only when deletion or
        // --force is on.
        if st.kind == Kind::Dir && self.opts.delete.is_none() && !self.opts.force {
            let Some(root) = &self.root else {
                return Ok(());
            };
            let dir = self.cursor.open(root, parent)?;
            let empty = dir.open_dir(name)?.names()?.is_empty();
            if !empty {
                self.reporter.note(&format!(
                    "cannot delete non-empty directory: {}",
                    String::from_utf8_lossy(&entry.name)
                ));
                return Ok(());
            }
        }
        self.delete_one(parent, name, st.kind)
    }

    /// Deletes `dir/name` and everything below it that receiver-side filters do not protect.
    fn delete_one(&mut self, dir_rel: &[u8], name: &[u8], kind: Kind) -> Result<(), FsError> {
        if let Some(max) = self.opts.max_delete
            && self.deletions >= max
        {
            self.outcome.max_delete_exceeded = true;
            return Ok(());
        }
        let Some(root) = &self.root else {
            return Ok(());
        };
        let filters = self.filters;
        let rel_dir = dir_rel.to_vec();
        let mut keep = |rel: &[u8], k: Kind| {
            filters.is_excluded(
                &join(&rel_dir, rel),
                k == Kind::Dir,
                Side::Receiver {
                    in_deleted_dir: true,
                },
            )
        };
        let dir = self.cursor.open(root, dir_rel)?;
        let removed = if self.opts.dry_run {
            list_tree(dir, name, kind, &mut keep)?
        } else {
            dir.remove_tree(name, &mut keep)?
        };
        if kind == Kind::Dir {
            self.cursor.forget();
        }
        for (rel, k) in removed {
            self.deletions += 1;
            self.report_deleted(&join(dir_rel, &rel), k);
        }
        Ok(())
    }

    /// `--delete`: removes what the destination directory `dir_rel` has and the list does not.
    fn delete_extraneous(&mut self, dir_rel: &'a [u8]) {
        // One entry written as the named path: the root is that path's parent, which is not
        // the transfer's to clean (and a directory written so is new, with nothing to delete).
        if self.rename.is_some() {
            return;
        }
        let Some(root) = &self.root else { return };
        let names = match self.cursor.open(root, dir_rel).and_then(|d| {
            let names = d.names()?;
            let mut typed = Vec::with_capacity(names.len());
            for n in names {
                if let Some(st) = d.stat(&n)? {
                    typed.push((n, st.kind));
                }
            }
            Ok(typed)
        }) {
            Ok(n) => n,
            Err(e) if e.is_not_found() => return,
            Err(e) => return self.fs_error(&e),
        };
        let wanted = self.children.get(dir_rel);
        let mut extra: Vec<(Vec<u8>, Kind)> = names
            .into_iter()
            .filter(|(n, _)| !wanted.is_some_and(|w| w.contains(n.as_slice())))
            .collect();
        // rsync deletes in reverse list order.
        extra.sort_by(|a, b| compare(&b.0, b.1 == Kind::Dir, &a.0, a.1 == Kind::Dir));
        for (name, kind) in extra {
            let path = join(dir_rel, &name);
            if self.filters.is_excluded(
                &path,
                kind == Kind::Dir,
                Side::Receiver {
                    in_deleted_dir: false,
                },
            ) {
                continue;
            }
            if let Err(e) = self.delete_one(dir_rel, &name, kind) {
                self.fs_error(&e);
            }
        }
    }

    fn finish_dirs(&mut self) {
        let Some(root) = &self.root else { return };
        let todo = std::mem::take(&mut self.dirs_to_finish);
        for (entry, meta) in todo.iter().rev() {
            let result = if entry.name == b"." && self.rename.is_none() {
                root.top().set_own_meta(meta)
            } else {
                let (parent, name) = self.dest_name(entry);
                self.cursor
                    .open(root, parent)
                    .and_then(|d| d.set_meta(name, Kind::Dir, meta))
            };
            if let Err(e) = result {
                self.outcome.errors += 1;
                self.reporter.error(&e.to_string());
            }
        }
    }
}

/// `lstat` of everything below `dest`, never following a symlink; `None` if it cannot be read.
fn scan_dest(dest: &Path) -> Option<FxHashMap<Vec<u8>, Stat>> {
    fn walk(dir: &Dir, prefix: &[u8], out: &mut FxHashMap<Vec<u8>, Stat>) -> Result<(), FsError> {
        for name in dir.names()? {
            let Some(st) = dir.stat(&name)? else { continue };
            let path = join(prefix, &name);
            if st.kind == Kind::Dir {
                walk(&dir.open_dir(&name)?, &path, out)?;
            }
            out.insert(path, st);
        }
        Ok(())
    }
    let root = Root::open(dest, fsx::Persist::Buffered).ok()?;
    let mut out = FxHashMap::default();
    walk(root.top(), b".", &mut out).ok()?;
    Some(out)
}

/// What `--delete` would remove below `dir/name`, for a dry run.
fn list_tree(
    dir: &Dir,
    name: &[u8],
    kind: Kind,
    keep: &mut dyn FnMut(&[u8], Kind) -> bool,
) -> Result<Vec<(Vec<u8>, Kind)>, FsError> {
    fn walk(
        dir: &Dir,
        name: &[u8],
        rel: &[u8],
        kind: Kind,
        keep: &mut dyn FnMut(&[u8], Kind) -> bool,
        out: &mut Vec<(Vec<u8>, Kind)>,
    ) -> Result<bool, FsError> {
        if keep(rel, kind) {
            return Ok(false);
        }
        let mut all = true;
        if kind == Kind::Dir {
            let sub = dir.open_dir(name)?;
            let mut names = sub.names()?;
            names.sort();
            for child in names {
                if let Some(st) = sub.stat(&child)? {
                    all &= walk(&sub, &child, &join(rel, &child), st.kind, keep, out)?;
                }
            }
        }
        if all {
            out.push((rel.to_vec(), kind));
        }
        Ok(all)
    }
    let mut out = Vec::new();
    walk(dir, name, name, kind, keep, &mut out)?;
    Ok(out)
}

#[derive(Debug, Default)]
struct WriteCounts {
    literal: u64,
    matched: u64,
    sent: u64,
    received: u64,
}

enum WriteError {
    Vanished,
    Fs(FsError),
    Other(String),
}

const IO_BUF: usize = 256 * 1024;

fn open_source(path: &Path) -> Result<File, WriteError> {
    fsx::open_nofollow(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => WriteError::Vanished,
        _ => WriteError::Other(format!("send_files failed to open {path:?}: {e}")),
    })
}

/// Writes the new version of `dir/name` from `src_path`: through the delta engine against the
/// old version when there is one, else as a plain copy; then commits it atomically.
fn write_file(
    dir: &Dir,
    name: &[u8],
    src_path: &Path,
    basis: Option<&Stat>,
    meta: &Meta,
    opts: &Options,
    seed: i32,
) -> Result<WriteCounts, WriteError> {
    let mut src = open_source(src_path)?;
    let mut tmp = dir.create_temp(name).map_err(WriteError::Fs)?;
    let kind = opts.checksum_kind;
    let digest = kind.digest_len() as u64;
    let io_err = |what: &str, e: &dyn std::fmt::Display| {
        WriteError::Other(format!("{what} {src_path:?}: {e}"))
    };
    let mut counts = WriteCounts::default();
    let use_delta = !opts.whole_file && !opts.sparse && basis.is_some_and(|b| b.size > 0);
    let result: Result<(), WriteError> = (|| {
        if use_delta {
            let basis_len = basis.map_or(0, |b| b.size);
            let basis_file = dir.open_file(name).map_err(WriteError::Fs)?;
            // Locally the signature never crosses a wire, so it carries full-length strong sums:
            // a false block match is then as unlikely as an xxh128 collision, and the rebuilt
            // file needs no second pass to verify it.
            let rule = BlockSizeRule {
                forced: opts.block_size,
                csum_length: delta::sizes::SUM_LENGTH,
                ..BlockSizeRule::default()
            };
            let sizes = SumSizes::for_file(basis_len, rule);
            let aligned = {
                let mut sink = LocalPatch::new(&basis_file, sizes, tmp.file_mut());
                let found = aligned_delta(&mut src, &basis_file, sizes, &mut sink)
                    .map_err(|e| io_err("delta transfer of", &e))?;
                sink.flush().map_err(|e| io_err("writing", &e))?;
                found
            };
            let stats = match aligned {
                Some(stats) => stats,
                None => {
                    // Content moved within the file: start over with rsync's rolling search.
                    use std::io::Seek;
                    let restart = |f: &mut File| f.set_len(0).and_then(|()| f.rewind());
                    restart(tmp.file_mut()).map_err(|e| io_err("rewinding", &e))?;
                    src.rewind().map_err(|e| io_err("rewinding", &e))?;
                    let sig = local_signature(&basis_file, sizes, kind, seed)
                        .map_err(|e| io_err("reading basis for", &e))?;
                    counts.received = sig.wire_len();
                    let mut sink = LocalPatch::new(&basis_file, sizes, tmp.file_mut());
                    let (stats, _) = Matcher::new(&sig)
                        .run(&mut BufReader::with_capacity(IO_BUF, &mut src), &mut sink)
                        .map_err(|e| io_err("delta transfer of", &e))?;
                    sink.flush().map_err(|e| io_err("writing", &e))?;
                    stats
                }
            };
            counts.literal = stats.literal_bytes;
            counts.matched = stats.matched_bytes;
            counts.sent =
                stats.literal_bytes + 4 * (stats.literal_tokens + stats.copy_tokens + 1) + digest;
        } else {
            let copied = if opts.sparse {
                let mut out = fsx::SparseWriter::new(tmp.file_mut(), true);
                let mut reader = BufReader::with_capacity(IO_BUF, &mut src);
                let n = std::io::copy(&mut reader, &mut out).map_err(|e| io_err("copying", &e))?;
                out.finish().map_err(|e| io_err("writing", &e))?;
                n
            } else {
                // File to file: the kernel copies (copy_file_range), often without reading.
                std::io::copy(&mut src, tmp.file_mut()).map_err(|e| io_err("copying", &e))?
            };
            counts.literal = copied;
            counts.sent = copied + 4 * (copied.div_ceil(delta::CHUNK_SIZE as u64) + 1) + digest;
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            tmp.commit(meta).map_err(WriteError::Fs)?;
            Ok(counts)
        }
        Err(e) => {
            if opts.partial {
                let _ = tmp.keep_partial();
            }
            Err(e)
        }
    }
}

/// The local fast path of the delta engine: compare each block of the new file with the basis
/// block at the same offset, byte for byte, and send it as a copy when equal. Files edited in
/// place or appended to (databases, images, logs) are fully described this way without a single
/// checksum. When too many blocks differ, content has probably moved, and `None` asks the
/// caller to run rsync's rolling search instead.
fn aligned_delta(
    src: &mut File,
    basis: &File,
    sizes: SumSizes,
    sink: &mut dyn delta::DeltaSink,
) -> std::io::Result<Option<delta::MatchStats>> {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let blen = sizes.block_len as usize;
    let mut stats = delta::MatchStats::default();
    let mut new = vec![0u8; blen.max(1)];
    let mut old = vec![0u8; blen.max(1)];
    let mut differing: u32 = 0;
    let mut block: u32 = 0;
    loop {
        // Fill one block of the new file (short only at its end).
        let mut got = 0;
        while got < new.len() {
            let n = src.read(new.get_mut(got..).unwrap_or_default())?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got == 0 {
            break;
        }
        let data = new.get(..got).unwrap_or_default();
        let same = block < sizes.count && sizes.len_of(block) as usize == got && {
            let old = old.get_mut(..got).unwrap_or_default();
            basis.read_exact_at(old, sizes.offset_of(block))?;
            *old == *data
        };
        if same {
            sink.copy(block)?;
            stats.copy_tokens += 1;
            stats.matched_bytes += got as u64;
        } else {
            differing += 1;
            if block < sizes.count && differing > 16 && differing > block / 8 {
                return Ok(None);
            }
            for piece in data.chunks(delta::CHUNK_SIZE) {
                sink.literal(piece)?;
                stats.literal_tokens += 1;
                stats.literal_bytes += piece.len() as u64;
            }
        }
        block = block.saturating_add(1);
        if got < new.len() {
            break;
        }
    }
    Ok(Some(stats))
}

/// The signature of a local basis file, computed on every core: blocks are independent, and
/// this is the larger half of a local delta transfer's CPU time.
fn local_signature(
    basis: &File,
    sizes: SumSizes,
    kind: delta::ChecksumKind,
    seed: i32,
) -> std::io::Result<Signature> {
    use std::os::unix::fs::FileExt;
    const SPAN_BLOCKS: u32 = 64;
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(4);
    let spans: Vec<u32> = (0..sizes.count).step_by(SPAN_BLOCKS as usize).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::<(u32, Vec<delta::BlockSum>)>::new());
    let work = || -> std::io::Result<()> {
        let mut buf = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(&first) = spans.get(i) else {
                return Ok(());
            };
            let last = (first + SPAN_BLOCKS).min(sizes.count);
            let start = sizes.offset_of(first);
            let end = sizes.offset_of(last - 1) + u64::from(sizes.len_of(last - 1));
            buf.resize(usize::try_from(end - start).unwrap_or(0), 0);
            basis.read_exact_at(&mut buf, start)?;
            let sums = Signature::block_sums(&buf, first, sizes, kind, seed, true);
            if let Ok(mut r) = results.lock() {
                r.push((first, sums));
            }
        }
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..workers).map(|_| scope.spawn(work)).collect();
        let mut outcome = work();
        for h in handles {
            match h.join() {
                Ok(r) => outcome = outcome.and(r),
                Err(_) => outcome = Err(std::io::Error::other("signature worker panicked")),
            }
        }
        outcome
    })?;
    let mut parts = results
        .into_inner()
        .map_err(|_| std::io::Error::other("signature lock poisoned"))?;
    parts.sort_by_key(|(first, _)| *first);
    let blocks: Vec<delta::BlockSum> = parts.into_iter().flat_map(|(_, b)| b).collect();
    if blocks.len() != sizes.count as usize {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Signature::from_blocks(sizes, kind, seed, true, blocks))
}

/// Rebuilds a file on the same host: literals are buffered writes, runs of consecutive basis
/// blocks become one in-kernel range copy from the old file.
struct LocalPatch<'f> {
    basis: &'f File,
    sizes: SumSizes,
    out: &'f mut File,
    literal: Vec<u8>,
    /// Pending basis range (offset, length) not yet copied.
    run: Option<(u64, u64)>,
}

impl<'f> LocalPatch<'f> {
    fn new(basis: &'f File, sizes: SumSizes, out: &'f mut File) -> Self {
        LocalPatch {
            basis,
            sizes,
            out,
            literal: Vec::with_capacity(IO_BUF),
            run: None,
        }
    }

    fn flush_literal(&mut self) -> std::io::Result<()> {
        if !self.literal.is_empty() {
            self.out.write_all(&self.literal)?;
            self.literal.clear();
        }
        Ok(())
    }

    fn flush_run(&mut self) -> std::io::Result<()> {
        if let Some((offset, len)) = self.run.take() {
            fsx::copy_range(self.basis, offset, self.out, len)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_literal()?;
        self.flush_run()
    }
}

impl delta::DeltaSink for LocalPatch<'_> {
    fn literal(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.flush_run()?;
        self.literal.extend_from_slice(data);
        if self.literal.len() >= IO_BUF {
            self.flush_literal()?;
        }
        Ok(())
    }

    fn copy(&mut self, block: u32) -> std::io::Result<()> {
        if block >= self.sizes.count {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "block index out of range",
            ));
        }
        self.flush_literal()?;
        let offset = self.sizes.offset_of(block);
        let len = u64::from(self.sizes.len_of(block));
        match &mut self.run {
            Some((start, run_len)) if *start + *run_len == offset => *run_len += len,
            _ => {
                self.flush_run()?;
                self.run = Some((offset, len));
            }
        }
        Ok(())
    }
}

fn file_sum(path: &Path, opts: &Options) -> Option<Vec<u8>> {
    whole_file_sum(path, opts.checksum_kind)
}

/// The whole-file sum `-c` compares, as rsync's `file_checksum` computes it; `None` when the
/// file cannot be read (rsync then sends zeros, which match nothing).
#[must_use]
pub fn whole_file_sum(path: &Path, kind: delta::ChecksumKind) -> Option<Vec<u8>> {
    let mut f = fsx::open_nofollow(path).ok()?;
    let mut h = FileHasher::new(kind);
    let mut buf = vec![0u8; IO_BUF];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n)?);
    }
    Some(h.finish().as_bytes().to_vec())
}

/// Runs a local transfer of `sources` into `dest`, as `rsync [opts] SOURCES... DEST` would.
/// `files_from` holds `--files-from` names (relative to the single source directory).
///
/// # Errors
/// [`MirrorError`] when the destination cannot be used at all; everything else is reported
/// per entry and counted in the [`Outcome`].
pub fn run(
    sources: &[SourceArg],
    files_from: Option<&[Vec<u8>]>,
    dest: &Path,
    opts: &Options,
    filters: &FilterList,
    reporter: &mut dyn Reporter,
) -> Result<Outcome, MirrorError> {
    let started = Instant::now();
    // While the sources are walked, the other core reads the destination: this is most of the
    // work of a run where little changed.
    let dest_is_dir = std::fs::metadata(dest).is_ok_and(|m| m.is_dir());
    let (list, known) = std::thread::scope(|scope| {
        let scan = dest_is_dir.then(|| scope.spawn(|| scan_dest(dest)));
        let list = flist::build(sources, files_from, opts, filters);
        let known = scan.and_then(|h| h.join().ok()).flatten();
        (list, known)
    });
    let flist_time = started.elapsed();
    let mut errors = 0;
    for note in &list.notes {
        reporter.note(note);
    }
    for e in &list.errors {
        errors += 1;
        reporter.error(e);
    }

    let dest_bytes = dest.as_os_str().as_bytes();
    let dest_is_dir_syntax = placement::names_a_directory(dest_bytes);
    let found =
        placement::found(std::fs::metadata(dest)).map_err(|source| MirrorError::Destination {
            path: dest.to_path_buf(),
            source: FsError::Io {
                op: "stat",
                path: dest.to_path_buf(),
                source,
            },
        })?;
    let first_is_dir = list.entries.first().is_some_and(FileEntry::is_dir);
    let placement = placement::place(found, dest_is_dir_syntax, list.entries.len(), first_is_dir)
        .map_err(MirrorError::Placement)?;
    let (root_path, rename): (PathBuf, Option<Vec<u8>>) = if placement == Placement::WriteAs {
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dest.file_name().map(|n| n.as_bytes().to_vec());
        (parent.to_path_buf(), name)
    } else {
        (dest.to_path_buf(), None)
    };
    let mut created_root = false;
    let root = match Root::open(&root_path, opts.persist) {
        Ok(r) => Some(r),
        Err(source) if source.is_not_found() && placement == Placement::WriteAs => {
            return Err(MirrorError::Parent {
                path: root_path,
                source,
            });
        }
        Err(e) if e.is_not_found() => {
            if opts.dry_run {
                None
            } else {
                std::fs::create_dir(&root_path).map_err(|source| MirrorError::Destination {
                    path: root_path.clone(),
                    source: FsError::Io {
                        op: "mkdir",
                        path: root_path.clone(),
                        source,
                    },
                })?;
                created_root = true;
                let shown = root_path.as_os_str().as_bytes();
                let shown = shown.strip_suffix(b"/").unwrap_or(shown);
                reporter.note(&format!(
                    "created directory {}",
                    String::from_utf8_lossy(shown)
                ));
                Some(Root::open(&root_path, opts.persist).map_err(|source| {
                    MirrorError::Destination {
                        path: root_path.clone(),
                        source,
                    }
                })?)
            }
        }
        Err(source) => {
            return Err(MirrorError::Destination {
                path: root_path,
                source,
            });
        }
    };

    let mut children: HashMap<&[u8], HashSet<&[u8]>> = HashMap::new();
    if opts.delete.is_some() {
        for e in &list.entries {
            if e.name != b"." {
                let (parent, name) = e.split_name();
                children.entry(parent).or_default().insert(name);
            }
        }
    }
    let seed = i32::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            ^ std::process::id().wrapping_shl(6),
    )
    .unwrap_or(1);
    let mut t = Transfer {
        opts,
        filters,
        flist: &list,
        root,
        known: if rename.is_none() && !created_root {
            known
        } else {
            None
        },
        rename: rename.as_deref(),
        created_root,
        reporter,
        cursor: DirCursor { stack: Vec::new() },
        children,
        dirs_to_finish: Vec::new(),
        hardlinks: HashMap::new(),
        outcome: Outcome::default(),
        deletions: 0,
        umask: fsx::umask(),
        seed,
        is_root: fsx::is_root(),
    };
    t.outcome.errors = errors;
    t.run();
    let mut outcome = t.outcome;
    outcome.stats.flist_time = flist_time;
    Ok(outcome)
}
