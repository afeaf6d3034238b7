//! [`Root`], [`Dir`] and [`TempFile`]: confined, race-free operations on a destination tree.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::FsError;
use crate::meta::{Kind, Meta, Persist, Stat, Timespec};
use crate::name::{check_name, split_rel_path};

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// An open destination root. Everything below it is reached through [`Dir`]s.
#[derive(Debug)]
pub struct Root {
    top: Dir,
}

impl Root {
    /// Opens an existing directory as a root. The root path itself may pass through symlinks
    /// (it is the operator's choice); nothing below it may.
    ///
    /// # Errors
    /// [`FsError::Io`] if it is missing or not a directory.
    pub fn open(path: &Path, persist: Persist) -> Result<Root, FsError> {
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::io("open directory", path.to_path_buf(), e))?;
        Ok(Root {
            top: Dir {
                fd,
                path: path.to_path_buf(),
                persist,
            },
        })
    }

    /// The root directory itself.
    #[must_use]
    pub fn top(&self) -> &Dir {
        &self.top
    }

    /// The root's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.top.path
    }

    /// Opens the directory at relative path `rel` (`.` or empty for the root), never following a
    /// symlink on the way.
    ///
    /// # Errors
    /// [`FsError::Unsafe`] for `..` or absolute paths, or when a component is a symlink;
    /// [`FsError::Io`] when a component is missing or not a directory.
    pub fn open_dir(&self, rel: &[u8]) -> Result<Dir, FsError> {
        let parts = split_rel_path(rel)?;
        let mut dir = self.top.try_clone()?;
        for part in parts {
            dir = dir.open_dir(part)?;
        }
        Ok(dir)
    }

    /// Opens the file at relative path `rel` for reading, never following a symlink on the
    /// way or at the end: a directory swapped for a symlink after the path was listed is
    /// refused, not read through (rsync's CVE-2024-12747 and CVE-2026-29518 class).
    ///
    /// # Errors
    /// As [`Root::open_dir`] for the directories, and [`Dir::open_file`] for the file (an
    /// empty path names no file).
    pub fn open_file(&self, rel: &[u8]) -> Result<File, FsError> {
        let mut parts = split_rel_path(rel)?;
        let name = parts.pop().unwrap_or(b".");
        let mut dir = self.top.try_clone()?;
        for part in parts {
            dir = dir.open_dir(part)?;
        }
        dir.open_file(name)
    }
}

/// An open directory inside a [`Root`]. All names given to its methods are single components.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    persist: Persist,
}

static TEMP_COUNTER: AtomicU32 = AtomicU32::new(0);

fn temp_name(name: &[u8]) -> Vec<u8> {
    // `.name.XXXXXX` like rsync; the name is cut so the result stays within NAME_MAX (255).
    let keep = name.len().min(255 - 9);
    let mut out = Vec::with_capacity(keep + 9);
    out.push(b'.');
    out.extend_from_slice(name.get(..keep).unwrap_or(name));
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let salt = std::process::id().wrapping_mul(0x9E37_79B9) ^ n.wrapping_mul(0x85EB_CA6B);
    out.push(b'.');
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut v = salt;
    for _ in 0..6 {
        out.push(ALPHABET.get((v % 36) as usize).copied().unwrap_or(b'x'));
        v /= 36;
    }
    out
}

fn to_rustix_time(t: Timespec) -> rfs::Timespec {
    rfs::Timespec {
        tv_sec: t.sec,
        tv_nsec: i64::from(t.nsec),
    }
}

fn times(mtime: Timespec) -> rfs::Timestamps {
    rfs::Timestamps {
        last_access: rfs::Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_OMIT,
        },
        last_modification: to_rustix_time(mtime),
    }
}

/// Whether a failed chown may be ignored: without privilege, rsync silently keeps the owner.
fn chown_refusal_is_fine(e: Errno) -> bool {
    e == Errno::PERM && !crate::is_root()
}

impl Dir {
    /// Path of this directory, for messages.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn child(&self, name: &[u8]) -> PathBuf {
        self.path.join(os(name))
    }

    fn err(&self, op: &'static str, name: &[u8]) -> impl FnOnce(Errno) -> FsError {
        let path = self.child(name);
        move |e| FsError::io(op, path, e)
    }

    /// Another handle on the same directory.
    ///
    /// # Errors
    /// [`FsError::Io`] if the fd cannot be duplicated.
    pub fn try_clone(&self) -> Result<Dir, FsError> {
        let fd = self.fd.try_clone().map_err(|source| FsError::Io {
            op: "dup",
            path: self.path.clone(),
            source,
        })?;
        Ok(Dir {
            fd,
            path: self.path.clone(),
            persist: self.persist,
        })
    }

    /// `lstat` of an entry; `None` if it does not exist.
    ///
    /// # Errors
    /// [`FsError`] for an invalid name or any error but "not found".
    pub fn stat(&self, name: &[u8]) -> Result<Option<Stat>, FsError> {
        check_name(name)?;
        match rfs::statat(&self.fd, os(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Stat::from_raw(&st))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.err("lstat", name)(e)),
        }
    }

    /// `fstat` of this directory.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn stat_self(&self) -> Result<Stat, FsError> {
        rfs::fstat(&self.fd)
            .map(|st| Stat::from_raw(&st))
            .map_err(|e| FsError::io("stat", self.path.clone(), e))
    }

    /// Names in this directory, without `.` and `..`, in no particular order.
    ///
    /// # Errors
    /// [`FsError::Io`] if the directory cannot be read.
    pub fn names(&self) -> Result<Vec<Vec<u8>>, FsError> {
        let read_err = |e| FsError::io("read directory", self.path.clone(), e);
        let mut dir = rfs::Dir::read_from(&self.fd).map_err(read_err)?;
        let mut names = Vec::new();
        for entry in &mut dir {
            let entry = entry.map_err(read_err)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        Ok(names)
    }

    /// Opens subdirectory `name` without following a symlink.
    ///
    /// # Errors
    /// [`FsError::Unsafe`] if `name` is a symlink; [`FsError::Io`] otherwise.
    pub fn open_dir(&self, name: &[u8]) -> Result<Dir, FsError> {
        check_name(name)?;
        match rfs::openat(&self.fd, os(name), DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Dir {
                fd,
                path: self.child(name),
                persist: self.persist,
            }),
            // With O_DIRECTORY a symlink is reported as ENOTDIR (or ELOOP on some kernels).
            Err(Errno::LOOP | Errno::NOTDIR)
                if self
                    .stat(name)
                    .ok()
                    .flatten()
                    .is_some_and(|st| st.kind == Kind::Symlink) =>
            {
                Err(FsError::Unsafe {
                    path: self.child(name),
                    why: "is a symlink, not a directory",
                })
            }
            Err(e) => Err(self.err("open directory", name)(e)),
        }
    }

    /// Creates subdirectory `name`. The mode given to `mkdir` keeps the owner's `rwx` so the
    /// tree can be filled; the final mode is applied with [`Dir::set_meta`] afterwards.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure (including "exists").
    pub fn mkdir(&self, name: &[u8], perms: u32) -> Result<(), FsError> {
        check_name(name)?;
        rfs::mkdirat(
            &self.fd,
            os(name),
            Mode::from_raw_mode((perms | 0o700) & 0o7777),
        )
        .map_err(self.err("mkdir", name))
    }

    /// Creates subdirectory `name` as [`Dir::mkdir`] does, or leaves it be when a directory
    /// of that name appeared meanwhile (another transfer into the same tree made it): whether
    /// this call made it.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure, including "exists" when what exists is not a directory.
    pub fn mkdir_or_found(&self, name: &[u8], perms: u32) -> Result<bool, FsError> {
        match self.mkdir(name, perms) {
            Ok(()) => Ok(true),
            Err(FsError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists
                    && self.stat(name)?.is_some_and(|st| st.kind == Kind::Dir) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens regular file `name` for reading, never through a symlink.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn open_file(&self, name: &[u8]) -> Result<File, FsError> {
        check_name(name)?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
        rfs::openat(&self.fd, os(name), flags, Mode::empty())
            .map(File::from)
            .map_err(self.err("open", name))
    }

    /// The target of symlink `name`.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn read_link(&self, name: &[u8]) -> Result<Vec<u8>, FsError> {
        check_name(name)?;
        rfs::readlinkat(&self.fd, os(name), Vec::new())
            .map(|c| c.into_bytes())
            .map_err(self.err("readlink", name))
    }

    /// Starts writing a new version of `name` in a temporary file beside it.
    ///
    /// # Errors
    /// [`FsError::Io`] if the temporary file cannot be created.
    pub fn create_temp(&self, name: &[u8]) -> Result<TempFile<'_>, FsError> {
        let (file, tmp) = self.create_temp_file(name)?;
        Ok(TempFile {
            dir: self,
            name: name.to_vec(),
            tmp: Some(tmp),
            file,
        })
    }

    /// Like [`Dir::create_temp`] without the guard: the open file and its temporary name, for
    /// a caller that holds them apart from the directory. The caller removes the temporary
    /// file if it never calls [`Dir::commit_temp`].
    ///
    /// # Errors
    /// [`FsError::Io`] if the temporary file cannot be created.
    pub fn create_temp_file(&self, name: &[u8]) -> Result<(File, Vec<u8>), FsError> {
        check_name(name)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        loop {
            let tmp = temp_name(name);
            match rfs::openat(&self.fd, os(&tmp), flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => return Ok((File::from(fd), tmp)),
                Err(Errno::EXIST) => {}
                Err(e) => return Err(self.err("create temporary file for", name)(e)),
            }
        }
    }

    /// The temporary name [`Dir::create_stable_temp`] uses for `name`.
    #[must_use]
    pub fn stable_temp_name(name: &[u8]) -> Vec<u8> {
        let keep = name.len().min(255 - 8);
        let mut out = Vec::with_capacity(keep + 8);
        out.push(b'.');
        out.extend_from_slice(name.get(..keep).unwrap_or(name));
        // Six letters after a dot, as rsync's own temporary names have: tools that know to
        // skip those (`.*.??????`) skip these too.
        out.extend_from_slice(b".rtsync");
        out
    }

    /// Like [`Dir::create_temp_file`], but always under the same temporary name for `name`
    /// (see [`Dir::stable_temp_name`]), locked while it is written: one left behind by a writer
    /// that died is taken over and emptied, so a file sent again after a crash replaces its
    /// own leftover instead of adding one. A name locked by a live writer gets a fresh random
    /// temporary name instead.
    ///
    /// # Errors
    /// [`FsError::Io`] if no temporary file can be created.
    pub fn create_stable_temp(&self, name: &[u8]) -> Result<(File, Vec<u8>), FsError> {
        check_name(name)?;
        let tmp = Self::stable_temp_name(name);
        let lock = rfs::FlockOperation::NonBlockingLockExclusive;
        let create =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rfs::openat(&self.fd, os(&tmp), create, Mode::from_raw_mode(0o600)) {
            Ok(fd) => {
                let _ = rfs::flock(&fd, lock);
                return Ok((File::from(fd), tmp));
            }
            Err(Errno::EXIST) => {}
            Err(e) => return Err(self.err("create temporary file for", name)(e)),
        }
        let reuse = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if let Ok(fd) = rfs::openat(&self.fd, os(&tmp), reuse, Mode::empty())
            && rfs::fstat(&fd).is_ok_and(|st| Kind::from_mode(st.st_mode) == Kind::File)
            && rfs::flock(&fd, lock).is_ok()
            && rfs::ftruncate(&fd, 0).is_ok()
        {
            return Ok((File::from(fd), tmp));
        }
        self.create_temp_file(name)
    }

    /// Applies `meta` to temporary file `tmp` (open as `file`), flushes as the root's
    /// [`Persist`] asks and renames it over `name`; the temporary file is removed on failure.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn commit_temp(
        &self,
        file: &File,
        tmp: &[u8],
        name: &[u8],
        meta: &Meta,
    ) -> Result<(), FsError> {
        check_name(name)?;
        let result = self.finish_temp(file, tmp, name, meta);
        if result.is_err() {
            let _ = rfs::unlinkat(&self.fd, os(tmp), AtFlags::empty());
        }
        result
    }

    fn finish_temp(
        &self,
        file: &File,
        tmp: &[u8],
        name: &[u8],
        meta: &Meta,
    ) -> Result<(), FsError> {
        let fd = file.as_fd();
        let err = |op| {
            let path = self.child(name);
            move |e| FsError::io(op, path, e)
        };
        if meta.uid.is_some() || meta.gid.is_some() {
            let uid = meta.uid.map(rfs::Uid::from_raw);
            let gid = meta.gid.map(rfs::Gid::from_raw);
            match rfs::fchown(fd, uid, gid) {
                Err(e) if chown_refusal_is_fine(e) => {
                    if let Err(e) = rfs::fchown(fd, None, gid)
                        && !chown_refusal_is_fine(e)
                    {
                        return Err(err("chown")(e));
                    }
                }
                Err(e) => return Err(err("chown")(e)),
                Ok(()) => {}
            }
        }
        if let Some(perms) = meta.perms {
            rfs::fchmod(fd, Mode::from_raw_mode(perms & 0o7777)).map_err(err("chmod"))?;
        }
        if let Some(mtime) = meta.mtime {
            rfs::futimens(fd, &times(mtime)).map_err(err("set times on"))?;
        }
        if self.persist == Persist::Sync {
            rfs::fdatasync(fd).map_err(err("fsync"))?;
        }
        rfs::renameat(&self.fd, os(tmp), &self.fd, os(name)).map_err(err("rename into place"))?;
        self.sync_if_asked()
    }

    /// Makes `name` a symlink to `target`, replacing what is there atomically.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn symlink(&self, name: &[u8], target: &[u8], meta: &Meta) -> Result<(), FsError> {
        check_name(name)?;
        self.make_and_rename(name, meta, Kind::Symlink, |dir, tmp| {
            rfs::symlinkat(os(target), &dir.fd, os(tmp))
        })
    }

    /// Makes `name` a device, FIFO or socket node, replacing what is there atomically.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure (devices need root).
    pub fn mknod(&self, name: &[u8], kind: Kind, rdev: u64, meta: &Meta) -> Result<(), FsError> {
        check_name(name)?;
        let perms = meta.perms.unwrap_or(0o600) & 0o7777;
        self.make_and_rename(name, meta, kind, |dir, tmp| {
            rfs::mknodat(
                &dir.fd,
                os(tmp),
                kind.file_type(),
                Mode::from_raw_mode(perms),
                rdev,
            )
        })
    }

    /// Makes `name` a hard link to `from_name` in `from`, replacing what is there atomically.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn hard_link(&self, name: &[u8], from: &Dir, from_name: &[u8]) -> Result<(), FsError> {
        check_name(name)?;
        check_name(from_name)?;
        let tmp = temp_name(name);
        rfs::linkat(
            &from.fd,
            os(from_name),
            &self.fd,
            os(&tmp),
            AtFlags::empty(),
        )
        .map_err(self.err("hard link", name))?;
        self.rename_into_place(&tmp, name)
    }

    fn make_and_rename(
        &self,
        name: &[u8],
        meta: &Meta,
        kind: Kind,
        make: impl Fn(&Dir, &[u8]) -> rustix::io::Result<()>,
    ) -> Result<(), FsError> {
        let tmp = loop {
            let tmp = temp_name(name);
            match make(self, &tmp) {
                Ok(()) => break tmp,
                Err(Errno::EXIST) => {}
                Err(e) => return Err(self.err("create", name)(e)),
            }
        };
        let applied = self.set_meta_kind(&tmp, kind, meta);
        if let Err(e) = applied {
            let _ = rfs::unlinkat(&self.fd, os(&tmp), AtFlags::empty());
            return Err(e);
        }
        self.rename_into_place(&tmp, name)
    }

    fn rename_into_place(&self, tmp: &[u8], name: &[u8]) -> Result<(), FsError> {
        if let Err(e) = rfs::renameat(&self.fd, os(tmp), &self.fd, os(name)) {
            let _ = rfs::unlinkat(&self.fd, os(tmp), AtFlags::empty());
            return Err(self.err("rename into place", name)(e));
        }
        self.sync_if_asked()
    }

    fn sync_if_asked(&self) -> Result<(), FsError> {
        if self.persist == Persist::Sync {
            rfs::fsync(&self.fd)
                .map_err(|e| FsError::io("fsync directory", self.path.clone(), e))?;
        }
        Ok(())
    }

    /// Renames `from` to `to`, both in this directory.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn rename(&self, from: &[u8], to: &[u8]) -> Result<(), FsError> {
        check_name(from)?;
        check_name(to)?;
        rfs::renameat(&self.fd, os(from), &self.fd, os(to)).map_err(self.err("rename", from))?;
        self.sync_if_asked()
    }

    /// Moves `from` in directory `from_dir` to `to` in this directory (both inside the same
    /// root). With `replace` false an existing `to` is never replaced: the move fails with
    /// `EEXIST` instead (`RENAME_NOREPLACE`, atomic).
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn move_here(
        &self,
        from_dir: &Dir,
        from: &[u8],
        to: &[u8],
        replace: bool,
    ) -> Result<(), FsError> {
        check_name(from)?;
        check_name(to)?;
        let flags = if replace {
            rfs::RenameFlags::empty()
        } else {
            rfs::RenameFlags::NOREPLACE
        };
        rfs::renameat_with(&from_dir.fd, os(from), &self.fd, os(to), flags)
            .map_err(self.err("rename to", to))?;
        self.sync_if_asked()
    }

    /// Removes a non-directory entry, or an empty directory when `is_dir`.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn remove(&self, name: &[u8], is_dir: bool) -> Result<(), FsError> {
        check_name(name)?;
        let flags = if is_dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rfs::unlinkat(&self.fd, os(name), flags).map_err(self.err("remove", name))
    }

    /// Removes `name` and, if it is a directory, everything below it, never following symlinks.
    /// `keep(path relative to this dir, kind)` may spare entries (protected or excluded files);
    /// directories holding a spared entry stay. Returns the removed paths, deepest first.
    ///
    /// # Errors
    /// [`FsError`] from the first operation that fails.
    pub fn remove_tree(
        &self,
        name: &[u8],
        keep: &mut dyn FnMut(&[u8], Kind) -> bool,
    ) -> Result<Vec<(Vec<u8>, Kind)>, FsError> {
        let mut removed = Vec::new();
        self.remove_tree_into(name, name, keep, &mut removed)?;
        Ok(removed)
    }

    fn remove_tree_into(
        &self,
        name: &[u8],
        rel: &[u8],
        keep: &mut dyn FnMut(&[u8], Kind) -> bool,
        removed: &mut Vec<(Vec<u8>, Kind)>,
    ) -> Result<bool, FsError> {
        let Some(st) = self.stat(name)? else {
            return Ok(true);
        };
        if keep(rel, st.kind) {
            return Ok(false);
        }
        if st.kind == Kind::Dir {
            let sub = self.open_dir(name)?;
            let mut all_gone = true;
            let mut names = sub.names()?;
            names.sort();
            for child in names {
                let mut child_rel = rel.to_vec();
                child_rel.push(b'/');
                child_rel.extend_from_slice(&child);
                all_gone &= sub.remove_tree_into(&child, &child_rel, keep, removed)?;
            }
            if !all_gone {
                return Ok(false);
            }
        }
        self.remove(name, st.kind == Kind::Dir)?;
        removed.push((rel.to_vec(), st.kind));
        Ok(true)
    }

    /// Applies metadata to an existing entry of kind `kind`, never through a symlink.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn set_meta(&self, name: &[u8], kind: Kind, meta: &Meta) -> Result<(), FsError> {
        check_name(name)?;
        self.set_meta_kind(name, kind, meta)
    }

    fn set_meta_kind(&self, name: &[u8], kind: Kind, meta: &Meta) -> Result<(), FsError> {
        if meta.uid.is_some() || meta.gid.is_some() {
            let r = rfs::chownat(
                &self.fd,
                os(name),
                meta.uid.map(rfs::Uid::from_raw),
                meta.gid.map(rfs::Gid::from_raw),
                AtFlags::SYMLINK_NOFOLLOW,
            );
            match r {
                Err(e) if chown_refusal_is_fine(e) => {
                    // Keep trying the group alone: a member of the group may set it.
                    if meta.uid.is_some() && meta.gid.is_some() {
                        let g = meta.gid.map(rfs::Gid::from_raw);
                        match rfs::chownat(&self.fd, os(name), None, g, AtFlags::SYMLINK_NOFOLLOW) {
                            Err(e) if !chown_refusal_is_fine(e) => {
                                return Err(self.err("chown", name)(e));
                            }
                            _ => {}
                        }
                    }
                }
                Err(e) => return Err(self.err("chown", name)(e)),
                Ok(()) => {}
            }
        }
        if let (Some(perms), false) = (meta.perms, kind == Kind::Symlink) {
            self.chmod_nofollow(name, perms & 0o7777)?;
        }
        if let Some(mtime) = meta.mtime {
            rfs::utimensat(&self.fd, os(name), &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(self.err("set times on", name))?;
        }
        Ok(())
    }

    /// `chmod` that cannot be redirected by a symlink swapped in: open the entry itself with
    /// `O_PATH | O_NOFOLLOW`, check it is not a symlink, then change it through `/proc/self/fd`.
    fn chmod_nofollow(&self, name: &[u8], perms: u32) -> Result<(), FsError> {
        let mode = Mode::from_raw_mode(perms);
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(&self.fd, os(name), flags, Mode::empty())
            .map_err(self.err("chmod", name))?;
        let st = rfs::fstat(&fd).map_err(self.err("chmod", name))?;
        if Kind::from_mode(st.st_mode) == Kind::Symlink {
            return Ok(());
        }
        let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        match rfs::chmod(proc_path.as_str(), mode) {
            Ok(()) => Ok(()),
            // No /proc: fall back to the plain call, which follows only a final symlink.
            Err(Errno::NOENT) => rfs::chmodat(&self.fd, os(name), mode, AtFlags::empty())
                .map_err(self.err("chmod", name)),
            Err(e) => Err(self.err("chmod", name)(e)),
        }
    }

    /// Applies metadata to this directory itself (used for a transfer's root).
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn set_own_meta(&self, meta: &Meta) -> Result<(), FsError> {
        let err = |op| {
            let path = self.path.clone();
            move |e| FsError::io(op, path, e)
        };
        if meta.uid.is_some() || meta.gid.is_some() {
            let uid = meta.uid.map(rfs::Uid::from_raw);
            let gid = meta.gid.map(rfs::Gid::from_raw);
            match rfs::fchown(&self.fd, uid, gid) {
                Err(e) if chown_refusal_is_fine(e) => {}
                Err(e) => return Err(err("chown")(e)),
                Ok(()) => {}
            }
        }
        if let Some(perms) = meta.perms {
            rfs::fchmod(&self.fd, Mode::from_raw_mode(perms & 0o7777)).map_err(err("chmod"))?;
        }
        if let Some(mtime) = meta.mtime {
            rfs::futimens(&self.fd, &times(mtime)).map_err(err("set times on"))?;
        }
        Ok(())
    }

    /// Flushes everything written on this directory's filesystem to disk (`syncfs`): one call
    /// makes a whole batch of files and renames durable.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn sync_filesystem(&self) -> Result<(), FsError> {
        rfs::syncfs(&self.fd).map_err(|e| FsError::io("syncfs", self.path.clone(), e))
    }

    /// Flushes this directory's entries to disk (after renames into it).
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn sync(&self) -> Result<(), FsError> {
        rfs::fsync(&self.fd).map_err(|e| FsError::io("fsync directory", self.path.clone(), e))
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A new file being written beside its final name. Dropping it without [`TempFile::commit`]
/// removes it: an interrupted transfer leaves the old file untouched.
#[derive(Debug)]
pub struct TempFile<'d> {
    dir: &'d Dir,
    name: Vec<u8>,
    tmp: Option<Vec<u8>>,
    file: File,
}

impl TempFile<'_> {
    /// The open file, for writing the content.
    pub fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }

    /// Applies `meta`, flushes as the root's [`Persist`] asks, and renames over the final name.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure; the temporary file is removed.
    pub fn commit(mut self, meta: &Meta) -> Result<(), FsError> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        let result = self.finish(&tmp, meta);
        if result.is_err() {
            let _ = rfs::unlinkat(&self.dir.fd, os(&tmp), AtFlags::empty());
        }
        result
    }

    fn finish(&self, tmp: &[u8], meta: &Meta) -> Result<(), FsError> {
        self.dir.finish_temp(&self.file, tmp, &self.name, meta)
    }

    /// Keeps what was written under the final name without metadata: rsync's `--partial`.
    ///
    /// # Errors
    /// [`FsError::Io`] on failure.
    pub fn keep_partial(mut self) -> Result<(), FsError> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        self.dir.rename_into_place(&tmp, &self.name)
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = rfs::unlinkat(&self.dir.fd, os(&tmp), AtFlags::empty());
        }
    }
}
