//! The sending role (`flist.c send_file_list`, `sender.c send_files`), for a client pushing and
//! for a daemon serving a pull: send the file list, then answer each file the peer's generator
//! requests with a delta against the block signature it sent — literal records of at most
//! 32 KiB and block copies — followed by the whole-file sum. A reader thread drains the socket
//! into a channel the whole time, so a peer busy writing to us can never stall our writing
//! (rsync's classic deadlock).

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use delta::{BlockSum, ChecksumKind, DeltaSink, Matcher, Signature, StrongSum, SumSizes};
use protocol::flist::{DirRole, Entry, FlistEncoder, FlistOptions, encode_id_list};
use protocol::token::TokenEncoder;
use protocol::wire::{
    NDX_DEL_STATS, NDX_DONE, NdxCodec, get_int, get_short, get_varint, get_vstring, put_int,
};

use crate::SessionError;
use crate::mux::{DataBuf, MuxReader, MuxWriter};

const ITEM_TRANSFER: u16 = 1 << 15;
const ITEM_BASIS_TYPE_FOLLOWS: u16 = 1 << 11;
const ITEM_XNAME_FOLLOWS: u16 = 1 << 12;
use protocol::compat::{CF_CHKSUM_SEED_FIX, CF_ID0_NAMES};

/// One entry to send and where its content is read from.
#[derive(Debug, Clone)]
pub struct SendFile {
    /// The entry as the list carries it.
    pub entry: Entry,
    /// Its path here.
    pub source: PathBuf,
    /// For a directory: what its entry covers.
    pub role: DirRole,
}

/// How the session was set up and what the list carries.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// What each entry carries.
    pub flist: FlistOptions,
    /// Filter rules a receiving daemon applies when it deletes; `None` sends no list (no
    /// deletion, or we are the daemon).
    pub receiver_rules: Option<Vec<Vec<u8>>>,
    /// Negotiated checksum.
    pub checksum: ChecksumKind,
    /// Session seed.
    pub seed: i32,
    /// Compat flags.
    pub compat: u32,
    /// Owner names by id (empty with `--numeric-ids`).
    pub user_names: Vec<(u32, Vec<u8>)>,
    /// Group names by id.
    pub group_names: Vec<(u32, Vec<u8>)>,
    /// `-z`: compress tokens with zstd.
    pub compress: bool,
    /// `-n`: the receiver changes nothing and asks for no data; items are only reported.
    pub dry_run: bool,
    /// We are the server: the totals go to the client after the last file (`main.c
    /// handle_stats`).
    pub server: bool,
    /// The list's I/O error flags (`IOERR_GENERAL` 1 when some source could not be read): the
    /// receiver then deletes nothing and ends with exit 23.
    pub io_error: i32,
    /// A daemon's module: every source is opened beneath this directory one component at a
    /// time, no symlink followed, so a directory swapped for a symlink after the list was made
    /// cannot lead the read outside. `None` opens each source by its path (the client's own
    /// files, or a remote-shell server's), only a final symlink refused.
    pub beneath: Option<PathBuf>,
}

/// Opens the sources for reading: beneath the module when there is one (see
/// [`SendOptions::beneath`]), else by their paths with only a final symlink refused.
///
/// The directory of the last source stays open: requests come in list order, a directory's
/// files together, so one walk from the module's top serves them all (a walk per file was a
/// `dup`, an `openat` and two `close`s more per file than rsync makes). A directory swapped for
/// a symlink after it was opened is not followed: the open descriptor is the directory it was.
struct Sources {
    root: Option<fsx::Root>,
    /// The parent (relative to the module) of the last source opened, and that directory.
    last: Option<(Vec<u8>, fsx::Dir)>,
}

impl Sources {
    fn open(&mut self, source: &Path) -> std::io::Result<std::fs::File> {
        let Some(root) = &self.root else {
            return fsx::open_nofollow(source);
        };
        let rel = source.strip_prefix(root.path()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the source is not inside the module",
            )
        })?;
        let (parent, name) = mirror::flist::split_path(rel.as_os_str().as_encoded_bytes());
        let dir = match self.last.take() {
            Some((p, dir)) if p.as_slice() == parent => self.last.insert((p, dir)),
            _ => {
                let dir = root.open_dir(parent).map_err(into_io)?;
                self.last.insert((parent.to_vec(), dir))
            }
        };
        dir.1.open_file(name).map_err(into_io)
    }
}

fn into_io(e: fsx::FsError) -> std::io::Error {
    match e {
        fsx::FsError::Io { source, .. } => source,
        other => std::io::Error::new(std::io::ErrorKind::PermissionDenied, other.to_string()),
    }
}

/// Totals of a send.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendStats {
    /// Files whose content was sent.
    pub transferred: u64,
    /// Literal bytes sent.
    pub literal: u64,
    /// Bytes the receiver rebuilt from its old versions.
    pub matched: u64,
    /// Files that could not be read.
    pub errors: u64,
    /// Files that were gone by the time they were to be sent (rsync's exit 24).
    pub vanished: u64,
    /// What the peer's generator said it deleted (`NDX_DEL_STATS`): regular files,
    /// directories, symlinks, devices, specials.
    pub deleted: [u64; 5],
}

/// Reads the five counts of `NDX_DEL_STATS` (all deleted, then directories, symlinks,
/// devices, specials) as per-kind counts, regular files first.
fn del_stats(incoming: &mut Incoming, writer: &mut MuxWriter) -> Result<[u64; 5], SessionError> {
    let mut v = [0u64; 5];
    for n in &mut v {
        *n = u64::try_from(incoming.next(writer, get_varint)?).unwrap_or(0);
    }
    let [all, dirs, links, devices, specials] = v;
    let others = dirs
        .saturating_add(links)
        .saturating_add(devices)
        .saturating_add(specials);
    Ok([all.saturating_sub(others), dirs, links, devices, specials])
}

/// rsync's `IOERR_VANISHED` bit of `io_error`: a source file vanished.
const IOERR_VANISHED: i32 = 2;

/// `ITEM_LOCAL_CHANGE`.
const ITEM_LOCAL_CHANGE: u16 = 1 << 14;

/// Whether rsync's client names an item the daemon reports under `-v` (`log.c
/// maybe_log_item`, `sender.c send_files`): every transfer; otherwise a directory, or an
/// entry the daemon made itself (symlink, device), with a change that matters.
#[must_use]
pub fn named_under_verbose(iflags: u16, is_dir: bool) -> bool {
    let significant = iflags & !(ITEM_BASIS_TYPE_FOLLOWS | ITEM_XNAME_FOLLOWS | ITEM_LOCAL_CHANGE);
    iflags & ITEM_TRANSFER != 0 || (significant != 0 && (is_dir || iflags & ITEM_LOCAL_CHANGE != 0))
}

/// The peer's data, fed by the reader thread.
struct Incoming {
    rx: mpsc::Receiver<Result<Vec<u8>, SessionError>>,
    // Read from the front with a cursor: the generator's requests come thousands to a frame,
    // and dropping the front after each value moved the rest of the frame every time.
    buf: DataBuf,
}

impl Incoming {
    /// The next value `decode` finds in the peer's data. What `writer` holds back is sent
    /// before waiting, since the peer may be waiting for it.
    fn next<T>(
        &mut self,
        writer: &mut MuxWriter,
        mut decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, protocol::ProtoError>,
    ) -> Result<T, SessionError> {
        loop {
            if let Some((v, used)) = decode(self.buf.unread())? {
                self.buf.consume(used);
                return Ok(v);
            }
            let ready = match self.rx.try_recv() {
                Ok(chunk) => Ok(chunk),
                Err(mpsc::TryRecvError::Empty) => {
                    writer.flush()?;
                    self.rx.recv()
                }
                Err(mpsc::TryRecvError::Disconnected) => Err(mpsc::RecvError),
            };
            match ready {
                Ok(Ok(chunk)) => self.buf.push(&chunk),
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(SessionError::Socket(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed by the peer",
                    )));
                }
            }
        }
    }
}

/// Writes the token stream into multiplexed frames as the matcher produces it: plain int
/// records, or with `-z` the compressed framing.
struct TokenWriter<'w> {
    writer: &'w mut MuxWriter,
    out: Vec<u8>,
    encoder: Option<&'w mut TokenEncoder>,
}

impl TokenWriter<'_> {
    fn flush_if_big(&mut self) -> std::io::Result<()> {
        if self.out.len() >= 256 * 1024 {
            self.writer
                .send_data(&self.out)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            self.out.clear();
        }
        Ok(())
    }
}

impl DeltaSink for TokenWriter<'_> {
    fn literal(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self.encoder.as_mut() {
            Some(enc) => enc
                .literal(&mut self.out, data)
                .map_err(std::io::Error::other)?,
            None => {
                // The tokens before it, its length and the piece itself, in one write: the
                // file's bytes are not copied into the token buffer.
                let len = i32::try_from(data.len()).unwrap_or(i32::MAX).to_le_bytes();
                self.writer
                    .send_data_parts(&[&self.out, &len, data])
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                self.out.clear();
                return Ok(());
            }
        }
        self.flush_if_big()
    }

    fn copy(&mut self, block: u32) -> std::io::Result<()> {
        match self.encoder.as_mut() {
            Some(enc) => enc
                .copy(&mut self.out, block)
                .map_err(std::io::Error::other)?,
            None => put_int(&mut self.out, -i32::try_from(block).unwrap_or(i32::MAX) - 1),
        }
        self.flush_if_big()
    }
}

/// What the peer sent besides data (errors, warnings, deletions), from the reader thread.
pub type Messages = Box<dyn FnMut(protocol::mux::MsgCode, &[u8]) + Send>;

/// Sends `files` (sorted as rsync sorts them: indexes refer to this order) and serves the
/// peer's requests until the goodbye. `items` hears each item the peer's generator names.
///
/// # Errors
/// Socket or protocol errors; unreadable files are counted in the stats.
pub fn send(
    (mut reader, mut writer): (MuxReader, MuxWriter),
    files: &[SendFile],
    o: &SendOptions,
    errors: &mut Vec<String>,
    items: &mut dyn FnMut(&SendFile, u16),
    mut messages: Messages,
) -> Result<SendStats, SessionError> {
    let mut out = Vec::new();
    if let Some(rules) = &o.receiver_rules {
        for rule in rules {
            put_int(&mut out, i32::try_from(rule.len()).unwrap_or(0));
            out.extend_from_slice(rule);
        }
        put_int(&mut out, 0);
    }
    let mut enc = FlistEncoder::new(o.flist);
    for f in files {
        enc.encode(&mut out, &f.entry, f.role)?;
        if out.len() > 64 * 1024 {
            writer.send_data(&out)?;
            out.clear();
        }
    }
    enc.finish(&mut out, o.io_error);
    let id0 = o.compat & CF_ID0_NAMES != 0;
    if o.flist.uid {
        encode_id_list(&mut out, &o.user_names, id0, b"root");
    }
    if o.flist.gid {
        encode_id_list(&mut out, &o.group_names, id0, b"root");
    }
    writer.send_data(&out)?;
    out.clear();
    if files.is_empty() && o.server {
        // A server with nothing to send hangs up once the list is out, as rsync's does
        // (`do_server_sender`); its client expects no more, and stops too.
        return Ok(SendStats::default());
    }
    // Many small files make many small writes: they gather (and go before each wait).
    writer.coalesce_writes();

    // From now on the socket is drained by its own thread.
    let (tx, rx) = mpsc::channel();
    let drain = std::thread::spawn(move || {
        loop {
            match reader.next_data(&mut *messages) {
                Ok(Some(chunk)) => {
                    if tx.send(Ok(chunk)).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    let result = (|| -> Result<SendStats, SessionError> {
        let mut incoming = Incoming {
            rx,
            buf: DataBuf::default(),
        };
        let mut ndx_in = NdxCodec::default();
        let mut ndx_out = NdxCodec::default();
        let mut stats = SendStats::default();
        let digest = o.checksum.digest_len();
        let seed_fix = o.compat & CF_CHKSUM_SEED_FIX != 0;
        let mut sources = Sources {
            root: match &o.beneath {
                Some(dir) => Some(fsx::Root::open(dir, fsx::Persist::Buffered)?),
                None => None,
            },
            last: None,
        };
        let mut phase = 0;
        let (mut file_buf, mut spare_out) = (Vec::new(), Vec::new());
        // With -z the token stream is one zstd stream for the whole session.
        let mut encoder = if o.compress {
            Some(TokenEncoder::new(3)?)
        } else {
            None
        };
        loop {
            let ndx = incoming.next(&mut writer, |b| ndx_in.decode(b))?;
            if ndx == NDX_DONE {
                phase += 1;
                if phase > 2 {
                    break;
                }
                writer.send_data(&[0])?;
                continue;
            }
            if ndx == NDX_DEL_STATS {
                stats.deleted = del_stats(&mut incoming, &mut writer)?;
                continue;
            }
            let file = usize::try_from(ndx)
                .ok()
                .and_then(|i| files.get(i))
                .ok_or_else(|| {
                    protocol::ProtoError::protocol_text(
                        "sender",
                        "the peer asked for a file that is not in the list",
                    )
                })?;
            let iflags = incoming.next(&mut writer, |b| Ok(get_short(b)))?;
            let mut echo = std::mem::take(&mut spare_out);
            echo.clear();
            let ndx_before = ndx_out;
            ndx_out.encode(&mut echo, ndx);
            echo.extend_from_slice(&iflags.to_le_bytes());
            if iflags & ITEM_BASIS_TYPE_FOLLOWS != 0 {
                let t = incoming.next(&mut writer, |b| Ok(b.first().map(|&x| (x, 1))))?;
                echo.push(t);
            }
            if iflags & ITEM_XNAME_FOLLOWS != 0 {
                let x = incoming.next(&mut writer, |b| {
                    Ok(get_vstring(b).map(|(s, n)| (s.to_vec(), n)))
                })?;
                protocol::wire::put_vstring(&mut echo, &x)?;
            }
            items(file, iflags);
            if iflags & ITEM_TRANSFER == 0 || o.dry_run {
                // Nothing to send (with -n the receiver reads no sums and no data either).
                writer.send_data(&echo)?;
                spare_out = echo;
                continue;
            }
            let mut head = [0i32; 4];
            for v in &mut head {
                *v = incoming.next(&mut writer, |b| Ok(get_int(b)))?;
            }
            let sizes = SumSizes::checked(head[0], head[1], head[2], head[3], digest)
                .map_err(|e| protocol::ProtoError::protocol_text("sum header", &e.to_string()))?;
            let s2 = sizes.s2_len as usize;
            let mut blocks = Vec::with_capacity(sizes.count.min(1 << 20) as usize);
            for _ in 0..sizes.count {
                let (sum1, strong) = incoming.next(&mut writer, |b| {
                    Ok(b.get(..4 + s2).map(|s| {
                        let sum1 = u32::from_le_bytes(
                            s.get(..4).and_then(|b| b.try_into().ok()).unwrap_or([0; 4]),
                        );
                        (
                            (sum1, StrongSum::from_slice(s.get(4..).unwrap_or_default())),
                            4 + s2,
                        )
                    }))
                })?;
                blocks.push(BlockSum { sum1, strong });
            }
            let sig = Signature::from_blocks(sizes, o.checksum, o.seed, seed_fix, blocks);
            let source = match sources.open(&file.source) {
                Ok(f) => f,
                Err(e) => {
                    // rsync's MSG_NO_SEND: the generator will not wait for this file. The echo
                    // is never sent, so the index coder must not remember it: the receiver
                    // decodes the next index against the last one it actually saw.
                    ndx_out = ndx_before;
                    let vanished = e.kind() == std::io::ErrorKind::NotFound;
                    let name = String::from_utf8_lossy(&file.entry.name);
                    let text = if vanished {
                        stats.vanished += 1;
                        format!("file has vanished: {:?}", file.source)
                    } else {
                        stats.errors += 1;
                        format!("send_files failed to open {:?}: {e}", file.source)
                    };
                    let mut msg = Vec::new();
                    if o.server {
                        // The client hears it as from rsync's sender: a warning for a file
                        // that vanished (exit 24), an error otherwise (exit 23).
                        let (code, line) = if vanished {
                            (
                                protocol::mux::MsgCode::Warning,
                                format!("file has vanished: {name:?}\n"),
                            )
                        } else {
                            (
                                protocol::mux::MsgCode::ErrorXfer,
                                format!(
                                    "rtsync: [sender] send_files failed to open {name:?}: {e}\n"
                                ),
                            )
                        };
                        protocol::mux::encode(&mut msg, code, line.as_bytes())?;
                        if vanished {
                            protocol::mux::encode(
                                &mut msg,
                                protocol::mux::MsgCode::IoError,
                                &IOERR_VANISHED.to_le_bytes(),
                            )?;
                        }
                    }
                    errors.push(text);
                    protocol::mux::encode(
                        &mut msg,
                        protocol::mux::MsgCode::NoSend,
                        &ndx.to_le_bytes(),
                    )?;
                    writer.send_raw(&msg)?;
                    continue;
                }
            };
            for v in head {
                put_int(&mut echo, v);
            }
            if let Some(enc) = encoder.as_mut() {
                enc.start_file();
            }
            let mut tokens = TokenWriter {
                writer: &mut writer,
                out: echo,
                encoder: encoder.as_mut(),
            };
            // One read buffer and one output buffer serve every file: fresh ones of 256 KiB
            // per file were an mmap, page faults and a munmap each.
            let mut source = source;
            let (mstats, sum) = Matcher::new(&sig)
                .run_with(&mut source, &mut tokens, &mut file_buf)
                .map_err(|e| SessionError::Socket(std::io::Error::other(e.to_string())))?;
            match tokens.encoder.as_mut() {
                Some(enc) => enc.end_file(&mut tokens.out)?,
                None => put_int(&mut tokens.out, 0),
            }
            tokens.out.extend_from_slice(sum.as_bytes());
            let rest = std::mem::take(&mut tokens.out);
            writer.send_data(&rest)?;
            spare_out = rest;
            stats.transferred += 1;
            stats.literal += mstats.literal_bytes;
            stats.matched += mstats.matched_bytes;
        }
        // End of our files; a server adds its totals (`main.c handle_stats`); then the goodbye
        // (deletion statistics may come first).
        writer.send_data(&[0])?;
        if o.server {
            // The totals count what has gone out.
            writer.flush()?;
            let traffic = writer.traffic();
            let total_size: u64 = files
                .iter()
                .filter(|f| f.entry.is_file() || f.entry.is_symlink())
                .map(|f| f.entry.size.cast_unsigned())
                .sum();
            let mut totals = Vec::new();
            for v in [traffic.received(), traffic.sent(), total_size, 0, 0] {
                protocol::wire::put_varlong(&mut totals, i64::try_from(v).unwrap_or(i64::MAX), 3);
            }
            writer.send_data(&totals)?;
        }
        let mut peer_deleted = stats.deleted;
        let mut next_ndx =
            |incoming: &mut Incoming, writer: &mut MuxWriter| -> Result<i32, SessionError> {
                loop {
                    let n = incoming.next(writer, |b| ndx_in.decode(b))?;
                    if n != NDX_DEL_STATS {
                        return Ok(n);
                    }
                    peer_deleted = del_stats(incoming, writer)?;
                }
            };
        let n = next_ndx(&mut incoming, &mut writer)?;
        if n == NDX_DONE && o.flist.protocol >= 31 {
            writer.send_data(&[0])?;
            next_ndx(&mut incoming, &mut writer)?;
        }
        stats.deleted = peer_deleted;
        writer.shutdown();
        Ok(stats)
    })();
    if result.is_err() {
        // Both ways: the reader thread then sees the end and exits, and the peer sees us gone.
        writer.abort();
    }
    // Over pipes nothing can wake the reader thread: the peer keeps its end open until we
    // exit (rsync's client waits for its remote shell), so the thread is left to end with
    // the process.
    if writer.is_socket() {
        let _ = drain.join();
    }
    result
}
