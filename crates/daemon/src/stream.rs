//! The server side of the rtsync stream (see [`protocol::stream`]): an rtsync client that saw
//! our greeting's capability word opened a module as any rsync client does (hosts allow, auth
//! users, max connections, read only — all checked by [`crate::conn`] before we run) and asked
//! for the stream instead of an rsync transfer.
//!
//! Batches apply in the order they come, each operation in order, every path confined to the
//! destination through `fsx` exactly as a push is: no `..`, no absolute path, no symlink
//! followed on the way. A file is written to a temporary name and renamed over the old one,
//! so a reader never sees half of it. The module's own filter rules protect what they exclude:
//! such paths are neither written nor deleted. `incoming chmod` applies to permissions, and
//! received symlinks are munged or cleaned as for a push. At each commit the filesystem is
//! synced (`syncfs`) before the batch is acknowledged, so an acknowledged batch survives a
//! crash of the target.
//!
//! A failing operation (a full disk, a path in the way) does not end the stream: it is
//! reported with the batch's acknowledgement and the client sends the batch again. Broken
//! framing does end it, with a [`Frame::Fatal`].

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use filter::Side;
use fsx::{Dir, FsError, Kind, Meta, Root, Timespec};
use protocol::stream::{Attrs, DIGEST_LEN, Frame, Identity, VERSION};
use session::SessionError;
use session::mux::{MuxReader, MuxWriter};

use crate::serve::{ModuleView, Outcome, TransferLog};

/// What munged symlinks start with (rsync's `SYMLINK_PREFIX`).
const MUNGE_PREFIX: &[u8] = b"/rsyncd-munged/";

/// A batch's results so far.
#[derive(Default)]
struct BatchState {
    batch: u64,
    missed: Vec<Vec<u8>>,
    errors: Vec<(Vec<u8>, String)>,
}

/// The file whose content is arriving.
struct Incoming {
    path: Vec<u8>,
    attrs: Attrs,
    /// `None` when it could not be started: its data is read and dropped, its error reported.
    sink: Option<(Dir, tempfile_state::Temp)>,
    len: u64,
}

impl Drop for Incoming {
    // A connection that ends half-way through a file leaves no temporary file behind.
    fn drop(&mut self) {
        drop_temp(self.sink.take());
    }
}

/// A temporary file owned together with its directory (fsx's `TempFile` borrows the `Dir`).
mod tempfile_state {
    use std::fs::File;

    /// The open temporary file and its name in the parent directory.
    pub struct Temp {
        pub file: File,
        pub tmp: Vec<u8>,
    }
}

fn fail(writer: &mut MuxWriter, code: u8, message: &str) -> SessionError {
    let mut out = Vec::new();
    Frame::Fatal {
        code,
        message: message.to_owned(),
    }
    .encode(&mut out);
    let _ = writer.send(&out);
    writer.shutdown();
    SessionError::Protocol(protocol::ProtoError::Remote(message.to_owned()))
}

/// Serves the stream into the module, or into the directory `rel` below it that the client
/// named (made when missing, one level, as rsync does), until the client closes the connection.
///
/// # Errors
/// Socket errors, broken framing, or a refusal (read-only module), each told to the client
/// when the connection still allows it.
pub fn serve(
    (mut reader, mut writer): (MuxReader, MuxWriter),
    module: &ModuleView,
    rel: &[u8],
    log: &Arc<TransferLog>,
) -> Result<Outcome, SessionError> {
    if module.read_only {
        return Err(fail(&mut writer, 1, "ERROR: module is read only"));
    }
    let top = match open_destination(&module.root, rel) {
        Ok(d) => d,
        Err(e) => return Err(fail(&mut writer, 11, &format!("ERROR: {e}"))),
    };
    let mut hello = Vec::new();
    Frame::Ready { version: VERSION }.encode(&mut hello);
    writer.send(&hello)?;
    let mut applier = Applier {
        top: &top,
        module,
        log,
        outcome: Outcome::default(),
    };
    let mut batch: Option<BatchState> = None;
    let mut incoming: Option<Incoming> = None;
    loop {
        let frame = match reader.read_raw(Frame::decode) {
            Ok(f) => f,
            // The client closes the connection when it is done (or gone): not an error.
            Err(SessionError::Socket(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(applier.outcome);
            }
            Err(e) => return Err(e),
        };
        match (frame, &mut batch, &mut incoming) {
            (Frame::Begin { batch: n }, None, None) => {
                batch = Some(BatchState {
                    batch: n,
                    ..BatchState::default()
                });
            }
            (Frame::Data(bytes), Some(_), Some(inc)) => {
                inc.len += bytes.len() as u64;
                if let Some((_, temp)) = &mut inc.sink
                    && let Err(e) = temp.file.write_all(&bytes)
                {
                    if let Some(state) = &mut batch {
                        let name = String::from_utf8_lossy(&inc.path).into_owned();
                        state
                            .errors
                            .push((inc.path.clone(), format!("write {name}: {e}")));
                    }
                    drop_temp(inc.sink.take());
                }
            }
            (Frame::End { len }, Some(state), Some(_)) => {
                let Some(inc) = incoming.take() else {
                    continue;
                };
                if len != inc.len {
                    return Err(fail(
                        &mut writer,
                        2,
                        "ERROR: file length does not match its data",
                    ));
                }
                applier.finish_file(inc, state);
            }
            (Frame::Commit { batch: n }, Some(state), None) if state.batch == n => {
                if let Err(e) = top.sync_filesystem() {
                    state.errors.push((Vec::new(), e.to_string()));
                }
                let done = batch.take().unwrap_or_default();
                let mut out = Vec::new();
                Frame::Done {
                    batch: done.batch,
                    missed: done.missed,
                    errors: done.errors,
                }
                .encode(&mut out);
                writer.send(&out)?;
            }
            (Frame::File { path, attrs }, Some(state), None) => {
                incoming = Some(applier.start_file(path, attrs, state));
            }
            (op, Some(state), None) => {
                if !applier.apply(op, state) {
                    return Err(fail(
                        &mut writer,
                        2,
                        "ERROR: the client sent a frame out of order",
                    ));
                }
            }
            _ => {
                return Err(fail(
                    &mut writer,
                    2,
                    "ERROR: the client sent a frame out of order",
                ));
            }
        }
    }
}

/// The directory the stream writes into, reached from the module's root without following a
/// symlink; its last component is made when missing.
fn open_destination(module_root: &Path, rel: &[u8]) -> Result<Dir, FsError> {
    let root = Root::open(module_root, fsx::Persist::Buffered)?;
    let mut dir = root.top().try_clone()?;
    let parts = fsx::split_rel_path(rel)?;
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.into_iter().enumerate() {
        dir = match dir.open_dir(part) {
            Err(e) if e.is_not_found() && i == last => {
                dir.mkdir(part, 0o755)?;
                dir.open_dir(part)?
            }
            other => other?,
        };
    }
    Ok(dir)
}

fn drop_temp(sink: Option<(Dir, tempfile_state::Temp)>) {
    if let Some((dir, temp)) = sink {
        let _ = dir.remove(&temp.tmp, false);
    }
}

struct Applier<'a> {
    top: &'a Dir,
    module: &'a ModuleView,
    log: &'a Arc<TransferLog>,
    outcome: Outcome,
}

fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(b)
}

impl Applier<'_> {
    /// Applies one operation other than a file; `false` for a frame that has no place here.
    fn apply(&mut self, op: Frame, state: &mut BatchState) -> bool {
        let (path, result) = match op {
            Frame::Mkdir { path, attrs } => {
                let r = self.mkdir(&path, &attrs);
                (path, r)
            }
            Frame::Symlink {
                path,
                target,
                attrs,
            } => {
                let r = self.symlink(&path, &target, &attrs);
                (path, r)
            }
            Frame::Delete { path } => {
                let r = self.delete(&path);
                (path, r)
            }
            Frame::Prune { path, keep } => {
                let r = self.prune(&path, &keep);
                (path, r)
            }
            Frame::Copy {
                path,
                from,
                attrs,
                size,
                digest,
            } => {
                // Whatever stops the copy (the source changed, the disk is full), the client
                // sends the content instead, and that reports a real failure.
                if !matches!(self.copy(&path, &from, &attrs, size, &digest), Ok(true)) {
                    state.missed.push(path);
                }
                return true;
            }
            Frame::Rename { from, to, expect } => {
                match self.rename(&from, &to, &expect) {
                    Ok(true) => {}
                    Ok(false) => state.missed.push(to),
                    // A rename that cannot be made is sent as content instead.
                    Err(_) => state.missed.push(to),
                }
                return true;
            }
            _ => return false,
        };
        if let Err(e) = result {
            state.errors.push((path, e.to_string()));
        }
        true
    }

    /// Whether the module's rules keep `path` out of reach of the client.
    fn excluded(&self, path: &[u8], is_dir: bool) -> bool {
        self.module.filters.is_excluded(
            path,
            is_dir,
            Side::Receiver {
                in_deleted_dir: false,
            },
        )
    }

    /// The directory holding `path` and the last component; missing directories on the way
    /// are made when `create`.
    fn parent(&self, path: &[u8], create: bool) -> Result<Option<(Dir, Vec<u8>)>, FsError> {
        let mut parts = fsx::split_rel_path(path)?;
        let Some(name) = parts.pop() else {
            return Err(FsError::Unsafe {
                path: PathBuf::from(os(path)),
                why: "names the destination itself",
            });
        };
        let mut dir = self.top.try_clone()?;
        for part in parts {
            dir = match dir.open_dir(part) {
                Ok(d) => d,
                Err(e) if e.is_not_found() && create => {
                    dir.mkdir(part, 0o755)?;
                    dir.open_dir(part)?
                }
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            };
        }
        Ok(Some((dir, name.to_vec())))
    }

    fn meta(&self, attrs: &Attrs, is_dir: bool) -> Meta {
        let perms = if self.module.incoming_chmod.is_empty() {
            attrs.perms & 0o7777
        } else {
            let kind = if is_dir { 0o040_000 } else { 0o100_000 };
            self.module
                .incoming_chmod
                .apply(kind | (attrs.perms & 0o7777), is_dir)
        };
        let root = fsx::is_root();
        Meta {
            perms: Some(perms),
            uid: root.then_some(attrs.uid),
            gid: Some(attrs.gid),
            mtime: Some(Timespec {
                sec: attrs.mtime_sec,
                nsec: attrs.mtime_nsec,
            }),
        }
    }

    /// Clears whatever of another kind stands at `name`, so the new entry can take its place.
    fn clear_other_kind(
        &self,
        dir: &Dir,
        name: &[u8],
        rel: &[u8],
        keep: Kind,
    ) -> Result<(), FsError> {
        if let Some(st) = dir.stat(name)?
            && st.kind != keep
            && (st.kind == Kind::Dir || keep == Kind::Dir)
        {
            let mut protect = |p: &[u8], k: Kind| self.protects(rel, p, k);
            dir.remove_tree(name, &mut protect)?;
        }
        Ok(())
    }

    /// Whether an entry at `sub` (relative to `rel`'s parent) is protected by the module.
    fn protects(&self, rel: &[u8], sub: &[u8], kind: Kind) -> bool {
        let mut full = match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => rel.get(..=i).unwrap_or_default().to_vec(),
            None => Vec::new(),
        };
        full.extend_from_slice(sub);
        self.excluded(&full, kind == Kind::Dir)
    }

    fn mkdir(&mut self, path: &[u8], attrs: &Attrs) -> Result<(), FsError> {
        if fsx::split_rel_path(path)?.is_empty() {
            // The destination itself: its attributes, as rsync sets those of `.`.
            return self.top.set_own_meta(&self.meta(attrs, true));
        }
        if self.excluded(path, true) {
            return Ok(());
        }
        let Some((dir, name)) = self.parent(path, true)? else {
            return Ok(());
        };
        self.clear_other_kind(&dir, &name, path, Kind::Dir)?;
        match dir.mkdir(&name, attrs.perms) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc_eexist()) => {}
            Err(e) => return Err(e),
        }
        dir.set_meta(&name, Kind::Dir, &self.meta(attrs, true))
    }

    fn symlink(&mut self, path: &[u8], target: &[u8], attrs: &Attrs) -> Result<(), FsError> {
        if self.excluded(path, false) {
            return Ok(());
        }
        let Some((dir, name)) = self.parent(path, true)? else {
            return Ok(());
        };
        let target = if self.module.munge_symlinks {
            let mut t = MUNGE_PREFIX.to_vec();
            t.extend_from_slice(target);
            t
        } else if self.module.sanitize_links {
            let depth = path.iter().filter(|&&b| b == b'/').count();
            crate::serve::sanitize_link(target, depth)
        } else {
            target.to_vec()
        };
        self.clear_other_kind(&dir, &name, path, Kind::Symlink)?;
        let meta = Meta {
            mtime: Some(Timespec {
                sec: attrs.mtime_sec,
                nsec: attrs.mtime_nsec,
            }),
            ..Meta::default()
        };
        dir.symlink(&name, &target, &meta)
    }

    fn delete(&mut self, path: &[u8]) -> Result<(), FsError> {
        let Some((dir, name)) = self.parent(path, false)? else {
            return Ok(());
        };
        // What a stream cut off half-way through this file left behind.
        let _ = dir.remove(&Dir::stable_temp_name(&name), false);
        let Some(st) = dir.stat(&name)? else {
            return Ok(());
        };
        if self.excluded(path, st.kind == Kind::Dir) {
            return Ok(());
        }
        let mut protect = |p: &[u8], k: Kind| self.protects(path, p, k);
        let removed = dir.remove_tree(&name, &mut protect)?;
        for (p, _) in removed.iter().rev().take(1) {
            let mut full = path.to_vec();
            if let Some(rest) = p.strip_prefix(name.as_slice()) {
                full.extend_from_slice(rest);
            }
            (self.log)("del.", &full, 0);
        }
        Ok(())
    }

    /// Removes what directory `path` holds beyond `keep`, sparing what the module protects.
    fn prune(&mut self, path: &[u8], keep: &[Vec<u8>]) -> Result<(), FsError> {
        let parts = fsx::split_rel_path(path)?;
        let mut dir = self.top.try_clone()?;
        for part in parts {
            dir = match dir.open_dir(part) {
                Err(e) if e.is_not_found() => return Ok(()),
                other => other?,
            };
        }
        let keep: std::collections::HashSet<&[u8]> = keep.iter().map(Vec::as_slice).collect();
        for name in dir.names()? {
            if keep.contains(name.as_slice()) {
                continue;
            }
            let mut rel = path.to_vec();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&name);
            let is_dir = dir.stat(&name)?.is_some_and(|st| st.kind == Kind::Dir);
            if self.excluded(&rel, is_dir) {
                continue;
            }
            let mut protect = |p: &[u8], k: Kind| self.protects(&rel, p, k);
            dir.remove_tree(&name, &mut protect)?;
            (self.log)("del.", &rel, 0);
        }
        Ok(())
    }

    /// Renames when `from` is what the client expects; `Ok(false)` when it is not (missing,
    /// changed, or a directory would land on an existing entry).
    fn rename(&mut self, from: &[u8], to: &[u8], expect: &Identity) -> Result<bool, FsError> {
        let is_dir = matches!(expect, Identity::Dir);
        if self.excluded(from, is_dir) || self.excluded(to, is_dir) {
            return Ok(false);
        }
        let Some((from_dir, from_name)) = self.parent(from, false)? else {
            return Ok(false);
        };
        let Some(st) = from_dir.stat(&from_name)? else {
            return Ok(false);
        };
        let same = match expect {
            Identity::File {
                size,
                mtime_sec,
                mtime_nsec,
            } => {
                st.kind == Kind::File
                    && st.size == *size
                    && st.mtime.sec == *mtime_sec
                    && (st.mtime.nsec == *mtime_nsec || st.mtime.nsec == 0 || *mtime_nsec == 0)
            }
            Identity::Dir => st.kind == Kind::Dir,
            Identity::Symlink(target) => {
                st.kind == Kind::Symlink && from_dir.read_link(&from_name)? == *target
            }
        };
        if !same {
            return Ok(false);
        }
        let Some((to_dir, to_name)) = self.parent(to, true)? else {
            return Ok(false);
        };
        if !is_dir
            && let Some(there) = to_dir.stat(&to_name)?
            && there.kind == Kind::Dir
        {
            // A file replacing a directory: rename(2) cannot; send the content instead.
            return Ok(false);
        }
        match to_dir.move_here(&from_dir, &from_name, &to_name, !is_dir) {
            Ok(()) => {
                (self.log)("rename", to, st.size);
                Ok(true)
            }
            Err(e) if e.raw_os_error() == Some(libc_eexist()) || e.raw_os_error() == Some(39) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes `path` from the module's file `from` when `from` holds `size` bytes with SHA-256
    /// `digest`: copied to the temporary file while hashed, committed only if both match.
    /// `Ok(false)` when they do not, when `from` is not a regular file reachable without a
    /// symlink, or when the module hides it: its rules, or `write only` (a copy answers
    /// "does this file hold that content", which a client that may not read must not learn).
    fn copy(
        &mut self,
        path: &[u8],
        from: &[u8],
        attrs: &Attrs,
        size: u64,
        digest: &[u8; DIGEST_LEN],
    ) -> Result<bool, FsError> {
        use sha2::Digest;
        if self.excluded(path, false) {
            return Ok(true);
        }
        if self.module.write_only || self.excluded(from, false) {
            return Ok(false);
        }
        let Some((from_dir, from_name)) = self.parent(from, false)? else {
            return Ok(false);
        };
        let Ok(mut source) = from_dir.open_file(&from_name) else {
            return Ok(false);
        };
        match source.metadata() {
            Ok(md) if md.is_file() && md.len() == size => {}
            _ => return Ok(false),
        }
        let (dir, temp) = self.open_temp(path)?;
        let sink = Some((dir, temp));
        let mut inc = Incoming {
            path: path.to_vec(),
            attrs: *attrs,
            sink,
            len: 0,
        };
        let mut hasher = sha2::Sha256::new();
        let mut chunk = vec![0u8; protocol::stream::DATA_CHUNK];
        loop {
            let n = match source.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return Ok(false),
            };
            let bytes = chunk.get(..n).unwrap_or_default();
            inc.len += n as u64;
            if inc.len > size {
                return Ok(false);
            }
            hasher.update(bytes);
            if let Some((_, temp)) = &mut inc.sink {
                temp.file.write_all(bytes).map_err(|e| FsError::Io {
                    op: "write",
                    path: PathBuf::from(os(path)),
                    source: e,
                })?;
            }
        }
        if inc.len != size || hasher.finalize().as_slice() != digest.as_slice() {
            return Ok(false);
        }
        let (dir, temp) = inc.sink.take().ok_or(FsError::Unsafe {
            path: PathBuf::from(os(path)),
            why: "lost its temporary file",
        })?;
        self.commit(&dir, &temp, path, attrs)?;
        self.outcome.transferred += 1;
        (self.log)("copy", path, size);
        Ok(true)
    }

    fn start_file(&mut self, path: Vec<u8>, attrs: Attrs, state: &mut BatchState) -> Incoming {
        let sink = if self.excluded(&path, false) {
            None
        } else {
            match self.open_temp(&path) {
                Ok(s) => Some(s),
                Err(e) => {
                    state.errors.push((path.clone(), e.to_string()));
                    None
                }
            }
        };
        Incoming {
            path,
            attrs,
            sink,
            len: 0,
        }
    }

    fn open_temp(&self, path: &[u8]) -> Result<(Dir, tempfile_state::Temp), FsError> {
        let Some((dir, name)) = self.parent(path, true)? else {
            return Err(FsError::Unsafe {
                path: PathBuf::from(os(path)),
                why: "has no parent",
            });
        };
        let (file, tmp) = dir.create_stable_temp(&name)?;
        Ok((dir, tempfile_state::Temp { file, tmp }))
    }

    fn finish_file(&mut self, mut inc: Incoming, state: &mut BatchState) {
        let Some((dir, temp)) = inc.sink.take() else {
            return;
        };
        match self.commit(&dir, &temp, &inc.path, &inc.attrs) {
            Ok(()) => {
                self.outcome.transferred += 1;
                self.outcome.literal += inc.len;
                (self.log)("recv", &inc.path, inc.len);
            }
            Err(e) => state.errors.push((inc.path.clone(), e.to_string())),
        }
    }

    /// Puts a complete temporary file in place of `path` with `attrs`; on failure it is
    /// removed.
    fn commit(
        &self,
        dir: &Dir,
        temp: &tempfile_state::Temp,
        path: &[u8],
        attrs: &Attrs,
    ) -> Result<(), FsError> {
        let name = path.rsplit(|&b| b == b'/').next().unwrap_or_default();
        let result = self
            .clear_other_kind(dir, name, path, Kind::File)
            .and_then(|()| dir.commit_temp(&temp.file, &temp.tmp, name, &self.meta(attrs, false)));
        if result.is_err() {
            let _ = dir.remove(&temp.tmp, false);
        }
        result
    }
}

/// `EEXIST`, which fsx reports as a raw OS error.
fn libc_eexist() -> i32 {
    rustix::io::Errno::EXIST.raw_os_error()
}
