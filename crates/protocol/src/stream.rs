//! The rtsync stream: a private protocol between two rtsync peers that carries a replication
//! engine's batches over one long-lived daemon connection, applied in order, each acknowledged
//! once it is durable on the target. A client may open several such connections to one module;
//! each is a stream of its own, and the daemon applies them independently.
//!
//! How peers find each other without disturbing stock rsync:
//! - an rtsync daemon appends [`CAPABILITY`] to the digest list of its `@RSYNCD:` greeting.
//!   Stock rsync (3.2.x to 3.5.x) picks its digest from that list by name and skips names it
//!   does not know (`compat.c parse_negotiate_str`), so the word is invisible to it;
//! - a client that saw the word may send [`STREAM_ARG`] as its only argument after `--server`
//!   (in place of rsync's options), once the module is open and authenticated as usual. A stock
//!   daemon never receives it, since a stock daemon never advertises the word.
//!
//! Then the conversation leaves rsync's format. Every frame is a 4-byte little-endian length
//! (of what follows), a 1-byte tag and the tag's payload; strings are a 4-byte length and the
//! bytes; numbers are fixed-size little-endian. The server answers the arguments with
//! [`Frame::Ready`] or [`Frame::Fatal`]. The client then sends batches — [`Frame::Begin`],
//! operations, [`Frame::Commit`] — without waiting, and the server answers each commit with
//! [`Frame::Done`] in order. Within a batch the operations apply in the order sent; a file's
//! content follows its [`Frame::File`] in [`Frame::Data`] frames up to [`Frame::End`].
//!
//! Everything here is sans-IO, and decoding checks every length: a hostile peer gets an error,
//! never a panic or an allocation larger than [`MAX_FRAME`].

use crate::ProtoError;

/// The word an rtsync daemon adds to its greeting's digest list.
pub const CAPABILITY: &str = "rtsync-stream.1";

/// The argument a client sends after `--server` to ask for the stream.
pub const STREAM_ARG: &str = "--rtsync-stream=1";

/// The largest frame (after its length) either side accepts.
pub const MAX_FRAME: usize = 1 << 20;

/// The longest path a frame may carry (Linux's `PATH_MAX`).
pub const MAX_PATH: usize = 4096;

/// How much file content one [`Frame::Data`] carries at most when we send.
pub const DATA_CHUNK: usize = 256 * 1024;

/// The version of the stream this code speaks: 2 added [`Frame::Copy`]. A client sends
/// frames of a later version only to a server whose [`Frame::Ready`] announced it.
pub const VERSION: u32 = 2;

/// The first version with [`Frame::Copy`].
pub const COPY_VERSION: u32 = 2;

/// The length of a SHA-256 digest, which [`Frame::Copy`] names content by.
pub const DIGEST_LEN: usize = 32;

/// What an entry looks like on the source: applied on the target as rsync's `-a` would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attrs {
    /// Permission bits (`& 0o7777`).
    pub perms: u32,
    /// Modification time, seconds.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
    /// Owner (numeric).
    pub uid: u32,
    /// Group (numeric).
    pub gid: u32,
}

/// What the source of a rename must be on the target for the rename to be safe: what the
/// destination is on the source now. Anything else makes the target report the rename missed
/// (and the client sends the destination instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A regular file of this size and modification time.
    File {
        /// Size in bytes.
        size: u64,
        /// Modification time, seconds.
        mtime_sec: i64,
        /// Modification time, nanoseconds.
        mtime_nsec: u32,
    },
    /// A directory (the destination must not exist on the target).
    Dir,
    /// A symlink with this target.
    Symlink(Vec<u8>),
}

/// One frame of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Server: the stream is open; its version.
    Ready {
        /// [`VERSION`] of the server.
        version: u32,
    },
    /// Server: the stream cannot go on (read-only module, refused, broken input). The client
    /// should treat `code` as rsync's exit code of a failed transfer.
    Fatal {
        /// rsync exit code (`RERR_*`).
        code: u8,
        /// What went wrong, for the log.
        message: String,
    },
    /// Client: batch `batch` starts.
    Begin {
        /// The client's batch number (increasing).
        batch: u64,
    },
    /// Client: make `path` a directory with `attrs` (its parents are made when missing).
    Mkdir {
        /// Path relative to the stream's root.
        path: Vec<u8>,
        /// Attributes.
        attrs: Attrs,
    },
    /// Client: a new version of regular file `path` follows in [`Frame::Data`] frames.
    File {
        /// Path relative to the stream's root.
        path: Vec<u8>,
        /// Attributes, applied once the content is complete.
        attrs: Attrs,
    },
    /// Client: the next piece of the current file's content.
    Data(Vec<u8>),
    /// Client: the current file is complete: `len` bytes in all.
    End {
        /// Total length sent, checked by the server.
        len: u64,
    },
    /// Client: make `path` a symlink to `target`.
    Symlink {
        /// Path relative to the stream's root.
        path: Vec<u8>,
        /// Link target, as it is on the source.
        target: Vec<u8>,
        /// Attributes (the time; symlinks have no permissions on Linux).
        attrs: Attrs,
    },
    /// Client: make regular file `path` from the target's own file `from`, if `from` holds
    /// exactly `size` bytes whose SHA-256 is `digest` (a copy, a move, a restore: content the
    /// target already has); otherwise report `path` missed, and the client sends it.
    Copy {
        /// Path relative to the stream's root.
        path: Vec<u8>,
        /// The file on the target thought to hold the same content.
        from: Vec<u8>,
        /// Attributes of the new file.
        attrs: Attrs,
        /// Its size.
        size: u64,
        /// SHA-256 of its content.
        digest: [u8; DIGEST_LEN],
    },
    /// Client: delete `path`, with everything below it; a missing path is fine.
    Delete {
        /// Path relative to the stream's root.
        path: Vec<u8>,
    },
    /// Client: rename `from` to `to` if `from` is `expect` there; otherwise report it missed.
    Rename {
        /// Old path.
        from: Vec<u8>,
        /// New path.
        to: Vec<u8>,
        /// What `from` must be.
        expect: Identity,
    },
    /// Client: directory `path` holds only `keep` (and what the module protects): remove the
    /// rest, as rsync's `--delete` does for a directory it sent whole.
    Prune {
        /// Path relative to the stream's root (empty for the root itself).
        path: Vec<u8>,
        /// The names the source has there.
        keep: Vec<Vec<u8>>,
    },
    /// Client: batch `batch` is complete; make it durable and answer with [`Frame::Done`].
    Commit {
        /// Same number as its [`Frame::Begin`].
        batch: u64,
    },
    /// Server: batch `batch` is applied and durable (or failed in part: `errors`).
    Done {
        /// The batch.
        batch: u64,
        /// Destinations of renames and copies not applied: the client must send them instead.
        missed: Vec<Vec<u8>>,
        /// Paths that could not be written, with the reason; the batch should be sent again.
        errors: Vec<(Vec<u8>, String)>,
    },
}

mod tag {
    pub const READY: u8 = 1;
    pub const FATAL: u8 = 2;
    pub const BEGIN: u8 = 3;
    pub const MKDIR: u8 = 4;
    pub const FILE: u8 = 5;
    pub const DATA: u8 = 6;
    pub const END: u8 = 7;
    pub const SYMLINK: u8 = 8;
    pub const DELETE: u8 = 9;
    pub const RENAME: u8 = 10;
    pub const COMMIT: u8 = 11;
    pub const DONE: u8 = 12;
    pub const PRUNE: u8 = 13;
    pub const COPY: u8 = 14;
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, u32::try_from(b.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(b);
}

fn put_attrs(out: &mut Vec<u8>, a: &Attrs) {
    put_u32(out, a.perms);
    put_u64(out, a.mtime_sec.cast_unsigned());
    put_u32(out, a.mtime_nsec);
    put_u32(out, a.uid);
    put_u32(out, a.gid);
}

/// The header of a [`Frame::Data`] of `len` bytes, for a writer that sends the content from
/// its own buffer rather than copying it into a frame.
#[must_use]
pub fn data_header(len: usize) -> [u8; 5] {
    let n = u32::try_from(len + 1).unwrap_or(u32::MAX).to_le_bytes();
    [n[0], n[1], n[2], n[3], tag::DATA]
}

impl Frame {
    /// Appends the frame's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        put_u32(out, 0);
        match self {
            Frame::Ready { version } => {
                out.push(tag::READY);
                put_u32(out, *version);
            }
            Frame::Fatal { code, message } => {
                out.push(tag::FATAL);
                out.push(*code);
                put_bytes(out, message.as_bytes());
            }
            Frame::Begin { batch } => {
                out.push(tag::BEGIN);
                put_u64(out, *batch);
            }
            Frame::Mkdir { path, attrs } => {
                out.push(tag::MKDIR);
                put_bytes(out, path);
                put_attrs(out, attrs);
            }
            Frame::File { path, attrs } => {
                out.push(tag::FILE);
                put_bytes(out, path);
                put_attrs(out, attrs);
            }
            Frame::Data(bytes) => {
                out.push(tag::DATA);
                out.extend_from_slice(bytes);
            }
            Frame::End { len } => {
                out.push(tag::END);
                put_u64(out, *len);
            }
            Frame::Symlink {
                path,
                target,
                attrs,
            } => {
                out.push(tag::SYMLINK);
                put_bytes(out, path);
                put_bytes(out, target);
                put_attrs(out, attrs);
            }
            Frame::Copy {
                path,
                from,
                attrs,
                size,
                digest,
            } => {
                out.push(tag::COPY);
                put_bytes(out, path);
                put_bytes(out, from);
                put_attrs(out, attrs);
                put_u64(out, *size);
                out.extend_from_slice(digest);
            }
            Frame::Delete { path } => {
                out.push(tag::DELETE);
                put_bytes(out, path);
            }
            Frame::Rename { from, to, expect } => {
                out.push(tag::RENAME);
                put_bytes(out, from);
                put_bytes(out, to);
                match expect {
                    Identity::File {
                        size,
                        mtime_sec,
                        mtime_nsec,
                    } => {
                        out.push(b'f');
                        put_u64(out, *size);
                        put_u64(out, mtime_sec.cast_unsigned());
                        put_u32(out, *mtime_nsec);
                    }
                    Identity::Dir => out.push(b'd'),
                    Identity::Symlink(target) => {
                        out.push(b'l');
                        put_bytes(out, target);
                    }
                }
            }
            Frame::Prune { path, keep } => {
                out.push(tag::PRUNE);
                put_bytes(out, path);
                put_u32(out, u32::try_from(keep.len()).unwrap_or(u32::MAX));
                for k in keep {
                    put_bytes(out, k);
                }
            }
            Frame::Commit { batch } => {
                out.push(tag::COMMIT);
                put_u64(out, *batch);
            }
            Frame::Done {
                batch,
                missed,
                errors,
            } => {
                out.push(tag::DONE);
                put_u64(out, *batch);
                put_u32(out, u32::try_from(missed.len()).unwrap_or(u32::MAX));
                for m in missed {
                    put_bytes(out, m);
                }
                put_u32(out, u32::try_from(errors.len()).unwrap_or(u32::MAX));
                for (path, why) in errors {
                    put_bytes(out, path);
                    put_bytes(out, why.as_bytes());
                }
            }
        }
        let len = u32::try_from(out.len() - start - 4).unwrap_or(u32::MAX);
        if let Some(head) = out.get_mut(start..start + 4) {
            head.copy_from_slice(&len.to_le_bytes());
        }
    }

    /// Decodes one frame from the front of `buf`: `Ok(None)` until it is all there, then the
    /// frame and how many bytes it used.
    ///
    /// # Errors
    /// A frame longer than [`MAX_FRAME`], an unknown tag, a path longer than [`MAX_PATH`], or a
    /// payload that does not parse to its exact end.
    pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, ProtoError> {
        let Some(head) = buf.get(..4).and_then(|h| <[u8; 4]>::try_from(h).ok()) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(head) as usize;
        if len == 0 || len > MAX_FRAME + 1 {
            return Err(bad(format!("a frame of {len} bytes")));
        }
        let Some(body) = buf.get(4..4 + len) else {
            return Ok(None);
        };
        let mut r = Reader { buf: body, at: 0 };
        let frame = match r.u8()? {
            tag::READY => Frame::Ready { version: r.u32()? },
            tag::FATAL => Frame::Fatal {
                code: r.u8()?,
                message: String::from_utf8_lossy(&r.bytes(MAX_FRAME)?).into_owned(),
            },
            tag::BEGIN => Frame::Begin { batch: r.u64()? },
            tag::MKDIR => Frame::Mkdir {
                path: r.path()?,
                attrs: r.attrs()?,
            },
            tag::FILE => Frame::File {
                path: r.path()?,
                attrs: r.attrs()?,
            },
            tag::DATA => {
                let rest = r.rest();
                Frame::Data(rest.to_vec())
            }
            tag::END => Frame::End { len: r.u64()? },
            tag::SYMLINK => Frame::Symlink {
                path: r.path()?,
                target: r.path()?,
                attrs: r.attrs()?,
            },
            tag::DELETE => Frame::Delete { path: r.path()? },
            tag::COPY => Frame::Copy {
                path: r.path()?,
                from: r.path()?,
                attrs: r.attrs()?,
                size: r.u64()?,
                digest: r
                    .take(DIGEST_LEN)?
                    .try_into()
                    .map_err(|_| bad("a short digest".into()))?,
            },
            tag::RENAME => Frame::Rename {
                from: r.path()?,
                to: r.path()?,
                expect: match r.u8()? {
                    b'f' => Identity::File {
                        size: r.u64()?,
                        mtime_sec: r.u64()?.cast_signed(),
                        mtime_nsec: r.u32()?,
                    },
                    b'd' => Identity::Dir,
                    b'l' => Identity::Symlink(r.path()?),
                    other => return Err(bad(format!("a rename identity of kind {other}"))),
                },
            },
            tag::COMMIT => Frame::Commit { batch: r.u64()? },
            tag::PRUNE => {
                let path = r.path()?;
                let n = r.count()?;
                let mut keep = Vec::with_capacity(n);
                for _ in 0..n {
                    keep.push(r.path()?);
                }
                Frame::Prune { path, keep }
            }
            tag::DONE => {
                let batch = r.u64()?;
                let n = r.count()?;
                let mut missed = Vec::with_capacity(n);
                for _ in 0..n {
                    missed.push(r.path()?);
                }
                let n = r.count()?;
                let mut errors = Vec::with_capacity(n);
                for _ in 0..n {
                    let path = r.path()?;
                    let why = String::from_utf8_lossy(&r.bytes(MAX_FRAME)?).into_owned();
                    errors.push((path, why));
                }
                Frame::Done {
                    batch,
                    missed,
                    errors,
                }
            }
            other => return Err(bad(format!("a frame of unknown kind {other}"))),
        };
        if r.at != body.len() {
            return Err(bad("a frame with bytes after its end".into()));
        }
        Ok(Some((frame, 4 + len)))
    }
}

fn bad(what: String) -> ProtoError {
    ProtoError::protocol("rtsync stream", format!("the peer sent {what}"))
}

/// A cursor over one frame's payload; every read is checked against its end.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ProtoError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or_else(|| bad("a bad length".into()))?;
        let out = self
            .buf
            .get(self.at..end)
            .ok_or_else(|| bad("a frame shorter than its contents".into()))?;
        self.at = end;
        Ok(out)
    }

    fn rest(&mut self) -> &[u8] {
        let out = self.buf.get(self.at..).unwrap_or_default();
        self.at = self.buf.len();
        out
    }

    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }

    fn u32(&mut self) -> Result<u32, ProtoError> {
        let b = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, ProtoError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn count(&mut self) -> Result<usize, ProtoError> {
        let n = self.u32()? as usize;
        // Each element takes at least its 4-byte length: a count the frame cannot hold is a
        // lie, refused before anything is allocated for it.
        if n > self.buf.len().saturating_sub(self.at) / 4 {
            return Err(bad(format!("a count of {n}")));
        }
        Ok(n)
    }

    fn bytes(&mut self, max: usize) -> Result<Vec<u8>, ProtoError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(bad(format!("a string of {n} bytes")));
        }
        Ok(self.take(n)?.to_vec())
    }

    fn path(&mut self) -> Result<Vec<u8>, ProtoError> {
        self.bytes(MAX_PATH)
    }

    fn attrs(&mut self) -> Result<Attrs, ProtoError> {
        Ok(Attrs {
            perms: self.u32()?,
            mtime_sec: self.u64()?.cast_signed(),
            mtime_nsec: self.u32()?,
            uid: self.u32()?,
            gid: self.u32()?,
        })
    }
}

/// Whether a greeting's digest list says the daemon speaks the stream.
#[must_use]
pub fn advertised(digests: Option<&[String]>) -> bool {
    digests.is_some_and(|d| d.iter().any(|w| w == CAPABILITY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(f: &Frame) {
        let mut out = Vec::new();
        f.encode(&mut out);
        let (back, used) = Frame::decode(&out).unwrap().unwrap();
        assert_eq!(&back, f);
        assert_eq!(used, out.len());
        for cut in 0..out.len() {
            assert_eq!(Frame::decode(&out[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn every_frame_kind_round_trips() {
        let attrs = Attrs {
            perms: 0o644,
            mtime_sec: -5,
            mtime_nsec: 999_999_999,
            uid: 1000,
            gid: 0,
        };
        for f in [
            Frame::Ready { version: VERSION },
            Frame::Fatal {
                code: 5,
                message: "module is read only".into(),
            },
            Frame::Begin { batch: 7 },
            Frame::Mkdir {
                path: b"a/b".to_vec(),
                attrs,
            },
            Frame::File {
                path: b"a\nb c".to_vec(),
                attrs,
            },
            Frame::Data(vec![0, 1, 2, 255]),
            Frame::Data(Vec::new()),
            Frame::End { len: 1 << 40 },
            Frame::Symlink {
                path: b"l".to_vec(),
                target: b"../x".to_vec(),
                attrs,
            },
            Frame::Delete {
                path: b"gone".to_vec(),
            },
            Frame::Rename {
                from: b"a".to_vec(),
                to: b"b".to_vec(),
                expect: Identity::File {
                    size: 3,
                    mtime_sec: 1_700_000_000,
                    mtime_nsec: 5,
                },
            },
            Frame::Rename {
                from: b"d".to_vec(),
                to: b"e/f".to_vec(),
                expect: Identity::Dir,
            },
            Frame::Rename {
                from: b"l".to_vec(),
                to: b"m".to_vec(),
                expect: Identity::Symlink(b"t".to_vec()),
            },
            Frame::Commit { batch: 7 },
            Frame::Copy {
                path: b"new copy".to_vec(),
                from: b"d/old".to_vec(),
                attrs: Attrs {
                    perms: 0o640,
                    mtime_sec: -5,
                    mtime_nsec: 999_999_999,
                    uid: 1,
                    gid: 2,
                },
                size: 5 << 30,
                digest: [0xab; DIGEST_LEN],
            },
            Frame::Prune {
                path: b"d".to_vec(),
                keep: vec![b"a".to_vec(), b"b c".to_vec()],
            },
            Frame::Done {
                batch: 7,
                missed: vec![b"e/f".to_vec()],
                errors: vec![(b"x".to_vec(), "No space left on device".into())],
            },
        ] {
            round_trip(&f);
        }
    }

    #[test]
    fn the_data_header_matches_the_encoder() {
        let mut out = Vec::new();
        Frame::Data(vec![9; 10]).encode(&mut out);
        assert_eq!(&out[..5], &data_header(10));
    }

    #[test]
    fn hostile_lengths_and_kinds_are_errors() {
        // A frame larger than allowed.
        let mut huge = ((MAX_FRAME + 2) as u32).to_le_bytes().to_vec();
        huge.push(tag::DATA);
        assert!(Frame::decode(&huge).is_err());
        // Zero length, unknown tag.
        assert!(Frame::decode(&[0, 0, 0, 0]).is_err());
        assert!(Frame::decode(&[1, 0, 0, 0, 99]).is_err());
        // A path longer than its frame, and one longer than PATH_MAX.
        let mut f = vec![9, 0, 0, 0, tag::DELETE];
        f.extend_from_slice(&100u32.to_le_bytes());
        f.extend_from_slice(b"abcd");
        assert!(Frame::decode(&f).is_err());
        let mut f = Vec::new();
        Frame::Delete {
            path: vec![b'a'; MAX_PATH + 1],
        }
        .encode(&mut f);
        assert!(Frame::decode(&f).is_err());
        // A count of a billion entries in a small frame.
        let mut f = vec![13, 0, 0, 0, tag::DONE];
        f.extend_from_slice(&1u64.to_le_bytes());
        f.extend_from_slice(&1_000_000_000u32.to_le_bytes());
        assert!(Frame::decode(&f).is_err());
        // Bytes after the end.
        let mut f = vec![10, 0, 0, 0, tag::COMMIT];
        f.extend_from_slice(&1u64.to_le_bytes());
        f.push(0);
        assert!(Frame::decode(&f).is_err());
    }

    #[test]
    fn the_capability_is_found_among_digest_names() {
        let list = |w: &[&str]| w.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
        assert!(advertised(Some(&list(&["md5", CAPABILITY]))));
        assert!(!advertised(Some(&list(&["md5", "md4"]))));
        assert!(!advertised(None));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Frame::decode(&bytes);
        }

        #[test]
        fn paths_of_any_bytes_round_trip(path in proptest::collection::vec(any::<u8>(), 0..300), batch in any::<u64>()) {
            round_trip(&Frame::Delete { path: path.clone() });
            round_trip(&Frame::Done { batch, missed: vec![path.clone()], errors: vec![(path, "x".into())] });
        }
    }
}
