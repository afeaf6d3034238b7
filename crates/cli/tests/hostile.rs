//! Hostile input, in one suite (issue 6): raw-byte clients against `rtsync daemon` and fake
//! raw-byte servers against `rtsync sync`, one test per rsync CVE class from 2024 on (each
//! named after its class, its doc comment citing the CVE), the 2026 hardening classes (bounded
//! wire counts, receiver block-index bounds), a module directory swapped for a symlink while a
//! stock rsync client transfers, and malformed rsyncd.conf, rtsync.toml and confxml.xml files.
//!
//! Every test asserts what happened, not only that nothing panicked: the connection ends with
//! an error (or the client exits non-zero), nothing is written or read outside the module or
//! the destination, and the daemon still serves a stock client afterwards. Every socket read
//! has a timeout and every process is waited for with a deadline and killed by its pid.
//!
//! Run with `scripts/hostile` (this suite, then every fuzz target), or alone with
//! `cargo test -p rtsync --test hostile`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::daemon::StockDaemon;
use common::{have_rsync, rsync};
use protocol::flist::{DirRole, Entry, FlistDecoder, FlistEncoder, FlistOptions, Item};
use protocol::mux::MsgCode;
use protocol::wire::{NDX_DONE, NdxCodec, get_int, get_short, get_varint, put_int, put_vstring};
use session::mux::{DataBuf, MuxReader, Traffic};

/// A raw connection to a module, speaking just enough of the protocol by hand.
struct Raw {
    s: TcpStream,
    pending: Vec<u8>,
    /// The daemon's compat flags and checksum seed, once [`Raw::setup`] has read them.
    compat: u32,
    seed: i32,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Raw {
            s,
            pending: Vec::new(),
            compat: 0,
            seed: 0,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        // The daemon may already have hung up: that is an acceptable answer to hostile bytes.
        let _ = self.s.write_all(bytes);
    }

    /// Reads until `pred` holds for what arrived, or the connection ends.
    fn read_until(&mut self, pred: impl Fn(&[u8]) -> bool) -> bool {
        let mut buf = [0u8; 65536];
        while !pred(&self.pending) {
            match self.s.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    /// Greeting, module, OK, then the argument words (a push unless `--sender` is in them).
    fn open(port: u16, module: &str, args: &[&str]) -> Raw {
        let mut r = Raw::connect(port);
        r.send(b"@RSYNCD: 31.0 md5\n");
        r.send(format!("{module}\n").as_bytes());
        assert!(
            r.read_until(|b| String::from_utf8_lossy(b).contains("@RSYNCD: OK\n")),
            "{}",
            String::from_utf8_lossy(&r.pending)
        );
        r.pending.clear();
        let mut words = Vec::new();
        for a in args {
            words.extend_from_slice(a.as_bytes());
            words.push(0);
        }
        words.push(0);
        r.send(&words);
        r
    }

    /// The client half of the setup: the daemon's compat flags and checksum list, ours
    /// (`md5`), then the seed. Everything after is multiplexed.
    fn setup(&mut self) {
        assert!(self.read_until(|b| {
            get_varint(b).ok().flatten().is_some_and(|(_, n)| {
                b.get(n)
                    .is_some_and(|&len| b.len() >= n + 1 + usize::from(len))
            })
        }));
        let (compat, n) = get_varint(&self.pending).unwrap().unwrap();
        self.compat = compat.cast_unsigned();
        let len = usize::from(self.pending[n]);
        self.pending.drain(..n + 1 + len);
        let mut list = Vec::new();
        put_vstring(&mut list, b"md5").unwrap();
        self.send(&list);
        assert!(self.read_until(|b| b.len() >= 4));
        self.seed = get_int(&self.pending).unwrap().0;
        self.pending.drain(..4);
    }

    /// A reader of the daemon's multiplexed stream from here on (what already arrived first),
    /// every read bounded by the socket's timeout.
    fn reader(&mut self) -> MuxReader {
        let pending = std::mem::take(&mut self.pending);
        let rest = std::io::Cursor::new(pending).chain(self.s.try_clone().unwrap());
        MuxReader::new(
            Box::new(rest),
            Some(Duration::from_secs(20)),
            Arc::new(Traffic::default()),
        )
    }

    fn send_data(&mut self, payload: &[u8]) {
        let mut frame = Vec::new();
        protocol::mux::encode(&mut frame, MsgCode::Data, payload).unwrap();
        self.send(&frame);
    }

    /// Waits for the daemon to close the connection (bounded); true when it did.
    fn closed_by_daemon(&mut self) -> bool {
        let mut buf = [0u8; 65536];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                // The read timeout: the daemon kept the connection open.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }
}

/// What the daemon's directory holds outside the module `open` (its config, log, secrets…).
fn outside(d: &StockDaemon) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walk(d.dir.path())
        .into_iter()
        .filter(|p| !p.starts_with(d.module_path("open")) && !p.ends_with("rsyncd.log"))
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.push(p.clone());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

/// The daemon still serves a stock client, and the module holds nothing half-written.
fn still_serving(d: &StockDaemon) {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("proof"), "alive").unwrap();
    let out = rsync([
        "-a".to_string(),
        format!("{}/", t.path().display()),
        d.url("push/"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(d.module_path("push").join("proof")).unwrap(),
        b"alive"
    );
    for p in walk(&d.module_path("open")) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".~tmp~") && !name.contains(".rtsync-tmp"),
            "{p:?}"
        );
    }
}

fn list_opts() -> FlistOptions {
    FlistOptions {
        protocol: 31,
        varint_flags: true,
        links: true,
        ..FlistOptions::default()
    }
}

fn file(name: &[u8]) -> Entry {
    Entry {
        name: name.to_vec(),
        size: 5,
        mtime: 1_600_000_000,
        mode: 0o100_644,
        ..Entry::default()
    }
}

/// Pushes a hand-made file list (after `-lre.LsfxCIvu`), and sends each requested file as
/// five literal bytes.
fn push_list(port: u16, entries: &[(Entry, DirRole)]) -> Raw {
    let mut r = Raw::open(port, "open", &["--server", "-lre.LsfxCIvu", ".", "open/"]);
    r.setup();
    let mut out = Vec::new();
    let mut enc = FlistEncoder::new(list_opts());
    for (e, role) in entries {
        enc.encode(&mut out, e, *role).unwrap();
    }
    enc.finish(&mut out, 0);
    r.send_data(&out);
    r
}

#[test]
fn names_that_leave_the_module_end_the_connection_and_write_nothing() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    let before = outside(&d);
    for bad in [
        &b"../escape"[..],
        b"/tmp/rtsync-hostile-abs",
        b"a/../../escape",
        b"a/./../../x",
    ] {
        let mut r = push_list(d.port, &[(file(bad), DirRole::Listed)]);
        assert!(r.closed_by_daemon(), "{bad:?}");
        let said = String::from_utf8_lossy(&r.pending).into_owned();
        assert!(said.contains("unsafe pathname"), "{bad:?}: {said:?}");
    }
    assert!(!Path::new("/tmp/rtsync-hostile-abs").exists());
    assert_eq!(outside(&d), before);
    still_serving(&d);
}

#[test]
fn a_symlink_in_the_module_is_never_written_through() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    let target = d.dir.path().join("outside");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&target, d.module_path("open").join("link")).unwrap();
    let before = outside(&d);
    // A file below the symlink, without the directory's own entry: the generator must not
    // follow the link to make it.
    let mut r = push_list(d.port, &[(file(b"link/evil"), DirRole::Listed)]);
    // Answer whatever the daemon asks with a five-byte file and the end of the phases.
    let _ = r.read_until(|b| b.len() > 4);
    drop(r);
    // And a stock client pushing a directory named like the link.
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("link")).unwrap();
    std::fs::write(t.path().join("link/evil"), "evil").unwrap();
    let _ = rsync([
        "-a".to_string(),
        format!("{}/", t.path().display()),
        d.url("open/"),
    ]);
    assert!(std::fs::read_dir(&target).unwrap().next().is_none());
    assert_eq!(outside(&d), before);
    still_serving(&d);
}

/// Opens a pull of the module `open` (which holds one file) and reads the daemon's list.
fn pull(port: u16) -> Raw {
    let mut r = Raw::open(
        port,
        "open",
        &["--server", "--sender", "-lre.LsfxCIvu", ".", "open/"],
    );
    r.setup();
    let mut filters = Vec::new();
    put_int(&mut filters, 0);
    r.send_data(&filters);
    r
}

#[test]
fn absurd_signatures_and_files_not_in_the_list_are_refused() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    std::fs::write(d.module_path("open").join("f"), vec![7u8; 100_000]).unwrap();
    let heads: [[i32; 4]; 4] = [
        [i32::MAX, 700, 16, 0], // two billion blocks
        [10, 700, 9999, 0],     // a strong sum longer than any digest
        [10, i32::MAX, 16, 0],  // a block longer than rsync allows
        [-5, 700, 16, 0],       // a negative count
    ];
    for head in heads {
        let mut r = pull(d.port);
        let mut out = Vec::new();
        let mut ndx = NdxCodec::default();
        ndx.encode(&mut out, 1);
        out.extend_from_slice(&(1u16 << 15).to_le_bytes());
        for v in head {
            put_int(&mut out, v);
        }
        r.send_data(&out);
        assert!(r.closed_by_daemon(), "{head:?}");
    }
    // An index past the end of the list, and a negative one that is not a phase marker.
    for bad in [5000, -70] {
        let mut r = pull(d.port);
        let mut out = Vec::new();
        let mut ndx = NdxCodec::default();
        ndx.encode(&mut out, bad);
        out.extend_from_slice(&(1u16 << 15).to_le_bytes());
        r.send_data(&out);
        assert!(r.closed_by_daemon(), "{bad}");
    }
    still_serving(&d);
}

#[test]
fn a_connection_cut_in_any_phase_leaves_the_daemon_serving() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    let before = outside(&d);
    // Each prefix of a session, then the connection drops.
    let cuts: Vec<Vec<u8>> = vec![
        b"@RSYN".to_vec(),
        b"@RSYNCD: 31.0 md5\n".to_vec(),
        b"@RSYNCD: 31.0 md5\nop".to_vec(),
        b"@RSYNCD: 31.0 md5\nopen\n--server\0-lr".to_vec(),
        b"@RSYNCD: 31.0 md5\nopen\n--server\0-lre.LsfxCIvu\0.\0open/\0\0\x03md".to_vec(),
    ];
    for cut in cuts {
        let mut r = Raw::connect(d.port);
        r.send(&cut);
        drop(r);
    }
    // After the setup: half a frame header, half a frame, half a file list.
    for stop in 0..3 {
        let mut r = Raw::open(d.port, "open", &["--server", "-lre.LsfxCIvu", ".", "open/"]);
        r.setup();
        let mut list = Vec::new();
        let mut enc = FlistEncoder::new(list_opts());
        enc.encode(&mut list, &file(b"partial"), DirRole::Listed)
            .unwrap();
        let mut frame = Vec::new();
        protocol::mux::encode(&mut frame, MsgCode::Data, &list).unwrap();
        let upto = match stop {
            0 => 2,
            1 => frame.len() - 2,
            _ => frame.len(),
        };
        r.send(&frame[..upto]);
        drop(r);
    }
    // A frame that claims 16 MiB and delivers a few bytes, and a message code no client sends.
    let mut r = Raw::open(d.port, "open", &["--server", "-lre.LsfxCIvu", ".", "open/"]);
    r.setup();
    r.send(&[0xff, 0xff, 0xff, 0x07, 1, 2, 3]);
    drop(r);
    let mut r = Raw::open(d.port, "open", &["--server", "-lre.LsfxCIvu", ".", "open/"]);
    r.setup();
    r.send(&[0, 0, 0, 0x07 + 5]);
    assert!(r.closed_by_daemon());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!d.module_path("open").join("partial").exists());
    assert_eq!(outside(&d), before);
    still_serving(&d);
}

#[test]
fn a_silent_client_is_dropped_after_the_modules_timeout() {
    if !have_rsync() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("open")).unwrap();
    std::fs::create_dir(dir.path().join("push")).unwrap();
    let ids = common::daemon::root_ids();
    std::fs::write(
        dir.path().join("rsyncd.conf"),
        format!(
            "{ids}use chroot = no\ntimeout = 1\n[open]\npath = {d}/open\nread only = no\n\
             [push]\npath = {d}/push\nread only = no\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let d = StockDaemon::with_config(common::daemon::Program::Rtsync, dir);
    let mut r = Raw::open(d.port, "open", &["--server", "-lre.LsfxCIvu", ".", "open/"]);
    r.setup();
    let started = Instant::now();
    assert!(r.closed_by_daemon());
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    still_serving(&d);
}

// ---------------------------------------------------------------------------------------------
// Raw clients against the daemon, one per CVE class.

const ITEM_TRANSFER: u16 = 1 << 15;
const ITEM_BASIS_TYPE_FOLLOWS: u16 = 1 << 11;
const ITEM_XNAME_FOLLOWS: u16 = 1 << 12;

/// Messages other than data, kept to show in a failure.
fn keep(told: &mut Vec<String>) -> impl FnMut(MsgCode, &[u8]) + '_ {
    move |code, text| told.push(format!("{code:?}: {}", String::from_utf8_lossy(text)))
}

/// A pull of module `open` (see [`pull`]) with the daemon's file list read, sorted as rsync
/// sorts it (the indexes a request names).
fn pull_listed(port: u16) -> (Raw, MuxReader, DataBuf, Vec<Entry>) {
    let mut r = pull(port);
    let mut reader = r.reader();
    let mut data = DataBuf::default();
    let mut told = Vec::new();
    let mut decoder = FlistDecoder::new(list_opts());
    let mut entries = Vec::new();
    loop {
        let item = reader.recv_data(&mut data, &mut keep(&mut told), |b| decoder.decode(b));
        match item {
            Ok(Item::Entry(e)) => entries.push(e),
            Ok(_) => break,
            Err(e) => panic!("reading the list: {e} {told:?}"),
        }
    }
    let entries = session::flist::sort_received(entries).unwrap();
    (r, reader, data, entries)
}

fn index_of(entries: &[Entry], name: &[u8]) -> i32 {
    i32::try_from(entries.iter().position(|e| e.name == name).unwrap()).unwrap()
}

/// What the daemon sent for one requested file: the literal bytes and copied blocks of its
/// token stream, and the whole-file sum after it.
#[derive(Debug, Default)]
struct Reply {
    ndx: i32,
    head: [i32; 4],
    literal: Vec<u8>,
    /// (position in the rebuilt file, block index).
    copies: Vec<(usize, u32)>,
    rebuilt_len: usize,
    sum: Vec<u8>,
}

/// Reads the daemon's answer to a request (or its `NDX_DONE` when it sent nothing).
fn read_reply(reader: &mut MuxReader, data: &mut DataBuf, told: &mut Vec<String>) -> Reply {
    let mut ndx_in = NdxCodec::default();
    let mut sink = keep(told);
    let mut reply = Reply {
        ndx: reader
            .recv_data(data, &mut sink, |b| ndx_in.decode(b))
            .unwrap(),
        ..Reply::default()
    };
    if reply.ndx == NDX_DONE {
        return reply;
    }
    let iflags = reader
        .recv_data(data, &mut sink, |b| Ok(get_short(b)))
        .unwrap();
    assert_eq!(
        iflags & (ITEM_BASIS_TYPE_FOLLOWS | ITEM_XNAME_FOLLOWS),
        0,
        "{iflags:#x}"
    );
    for v in &mut reply.head {
        *v = reader
            .recv_data(data, &mut sink, |b| Ok(get_int(b)))
            .unwrap();
    }
    loop {
        let t = reader
            .recv_data(data, &mut sink, |b| Ok(get_int(b)))
            .unwrap();
        if t == 0 {
            break;
        }
        if t > 0 {
            let len = usize::try_from(t).unwrap();
            let piece = reader
                .recv_data(data, &mut sink, |b| {
                    Ok(b.get(..len).map(|s| (s.to_vec(), len)))
                })
                .unwrap();
            reply.literal.extend_from_slice(&piece);
            reply.rebuilt_len += len;
        } else {
            let block = t.unsigned_abs() - 1;
            reply.copies.push((reply.rebuilt_len, block));
            let [count, blen, _, rem] = reply.head;
            let len = if i64::from(block) + 1 == i64::from(count) && rem > 0 {
                rem
            } else {
                blen
            };
            reply.rebuilt_len += usize::try_from(len).unwrap();
        }
    }
    reply.sum = reader
        .recv_data(data, &mut sink, |b| {
            Ok(b.get(..16).map(|s| (s.to_vec(), 16)))
        })
        .unwrap();
    reply
}

/// Sends one request (index, `ITEM_TRANSFER`, sum header, sums) and then `NDX_DONE`, so a
/// daemon that sends nothing for it answers with its own `NDX_DONE` instead of waiting.
fn request(r: &mut Raw, ndx: i32, head: [i32; 4], sums: &[u8]) {
    let mut out = Vec::new();
    let mut codec = NdxCodec::default();
    codec.encode(&mut out, ndx);
    out.extend_from_slice(&ITEM_TRANSFER.to_le_bytes());
    for v in head {
        put_int(&mut out, v);
    }
    out.extend_from_slice(sums);
    codec.encode(&mut out, NDX_DONE);
    r.send_data(&out);
}

fn md5(data: &[u8]) -> Vec<u8> {
    let mut h = delta::FileHasher::new(delta::ChecksumKind::Md5);
    h.update(data);
    h.finish().as_bytes().to_vec()
}

/// CVE-2024-12084 (heap overflow in the sender's reading of the checksum header: a strong-sum
/// length `s2length` above the digest length, and block counts and lengths whose product
/// overflows, from a client pulling). Every header outside rsync's bounds — a strong sum
/// longer than the negotiated digest, a negative one, more blocks than 2^25, a block longer
/// than 128 KiB, a remainder longer than the block, blocks of length 0 — ends the connection
/// before any sum is read; the daemon then serves a stock client.
#[test]
fn cve_2024_12084_sum_header_overflow_ends_the_connection() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    std::fs::write(d.module_path("open").join("f"), vec![7u8; 100_000]).unwrap();
    let heads: [[i32; 4]; 9] = [
        [10, 700, 17, 0],            // one byte more than md5's 16
        [10, 700, i32::MAX, 0],      // s2length that overflows any buffer
        [10, 700, -1, 0],            // negative s2length
        [(1 << 25) + 1, 700, 16, 0], // one block more than the bound
        [i32::MAX, 1 << 17, 16, 0],  // count × length overflows 32 and 64-bit sizes
        [10, (1 << 17) + 1, 16, 0],  // a block longer than rsync allows
        [10, 700, 16, 701],          // remainder longer than a block
        [10, 0, 16, 0],              // blocks of length 0
        [-1, 700, 16, 0],            // negative count
    ];
    for head in heads {
        let (mut r, mut reader, mut data, entries) = pull_listed(d.port);
        request(&mut r, index_of(&entries, b"f"), head, &[]);
        let mut told = Vec::new();
        let got = reader.recv_data(&mut data, &mut keep(&mut told), |b| {
            NdxCodec::default().decode(b)
        });
        assert!(got.is_err(), "{head:?}: the daemon answered {got:?}");
        drop(r);
    }
    still_serving(&d);
}

/// CVE-2024-12085 (information leak: with a strong-sum length shorter than the digest the
/// sender compared sums against uninitialised stack bytes, and a client learnt them one at a
/// time from which blocks matched). A pull asks for a 100 000-byte file with one-byte strong
/// sums, every other block's real and the rest wrong: what the daemon sends must rebuild
/// exactly the file from its literals and the blocks it names (all inside the header's
/// count), end with the file's md5, and hold nothing else.
#[test]
fn cve_2024_12085_short_strong_sums_leak_nothing() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    let content = testkit::noise(100_000, 12085);
    std::fs::write(d.module_path("open").join("f"), &content).unwrap();
    let (mut r, mut reader, mut data, entries) = pull_listed(d.port);
    let seed_fix = r.compat & protocol::compat::CF_CHKSUM_SEED_FIX != 0;
    let blen = 700usize;
    let blocks: Vec<&[u8]> = content.chunks(blen).collect();
    let count = i32::try_from(blocks.len()).unwrap();
    let rem = i32::try_from(content.len() % blen).unwrap();
    let mut sums = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let sum1 = delta::sum1(b);
        let strong = delta::block_sum(delta::ChecksumKind::Md5, r.seed, seed_fix, b);
        if i % 2 == 0 {
            sums.extend_from_slice(&sum1.to_le_bytes());
            sums.push(strong.as_bytes()[0]);
        } else {
            sums.extend_from_slice(&(sum1 ^ 0x5a5a_5a5a).to_le_bytes());
            sums.push(!strong.as_bytes()[0]);
        }
    }
    request(
        &mut r,
        index_of(&entries, b"f"),
        [count, 700, 1, rem],
        &sums,
    );
    let mut told = Vec::new();
    let reply = read_reply(&mut reader, &mut data, &mut told);
    assert_eq!(reply.head, [count, 700, 1, rem], "{told:?}");
    let mut rebuilt = Vec::new();
    let mut lit = reply.literal.as_slice();
    let mut copies = reply.copies.iter().peekable();
    while rebuilt.len() < reply.rebuilt_len {
        if let Some(&&(at, block)) = copies.peek()
            && at == rebuilt.len()
        {
            copies.next();
            assert!(block < count.cast_unsigned(), "block {block} of {count}");
            rebuilt.extend_from_slice(blocks[block as usize]);
            continue;
        }
        let upto = copies.peek().map_or(reply.rebuilt_len, |&&(at, _)| at);
        let (piece, rest) = lit.split_at(upto - rebuilt.len());
        rebuilt.extend_from_slice(piece);
        lit = rest;
    }
    assert!(lit.is_empty());
    assert_eq!(rebuilt.len(), content.len());
    assert!(
        rebuilt == content,
        "the rebuilt file differs from the module's"
    );
    assert_eq!(reply.sum, md5(&content));
    assert!(!reply.copies.is_empty(), "no block matched");
    drop(r);
    still_serving(&d);
}

/// CVE-2024-12747 and CVE-2026-29518 (symlink races: a path component inside the module
/// replaced by a symlink between the file list and the open, so a daemon without chroot reads
/// or writes outside the module; 29518 is the write side, "replacing parent directory
/// components with symbolic links", fixed in rsync 3.4.3 with `openat2(RESOLVE_BENEATH)`).
/// Deterministic read side: the list names `tree/secret`, then `tree` becomes a symlink to a
/// directory outside the module holding another `secret`; the request for it must not send a
/// byte of the outside file.
#[test]
fn cve_2024_12747_a_directory_swapped_for_a_symlink_after_the_list_is_not_read_through() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    let module = d.module_path("open");
    std::fs::create_dir(module.join("tree")).unwrap();
    std::fs::write(module.join("tree/secret"), "public data in the module\n").unwrap();
    let outside = d.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let secret = b"TOPSECRET outside the module\n";
    std::fs::write(outside.join("secret"), secret).unwrap();

    let (mut r, mut reader, mut data, entries) = pull_listed(d.port);
    std::fs::rename(module.join("tree"), module.join("tree.real")).unwrap();
    std::os::unix::fs::symlink(&outside, module.join("tree")).unwrap();
    request(
        &mut r,
        index_of(&entries, b"tree/secret"),
        [0, 0, 0, 0],
        &[],
    );
    let mut told = Vec::new();
    let reply = read_reply(&mut reader, &mut data, &mut told);
    assert!(
        !reply.literal.windows(9).any(|w| w == b"TOPSECRET"),
        "the daemon sent the file outside the module: {:?}",
        String::from_utf8_lossy(&reply.literal)
    );
    drop(r);
    still_serving(&d);
}

/// The 2026 hardening "bound wire-supplied counts" (rsync `v3.2.7-sec-patches1` f50c1d59): a
/// filter rule whose length is 2^31 − 1 or negative, and a checksum header announcing 2^25
/// blocks followed by nothing, cost the daemon no allocation of that size and end the
/// connection (the first two at once; the last when the client goes away).
#[test]
fn bounded_wire_counts_end_the_connection() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    for len in [i32::MAX, -5, 1 << 20] {
        let mut r = Raw::open(
            d.port,
            "open",
            &["--server", "--sender", "-lre.LsfxCIvu", ".", "open/"],
        );
        r.setup();
        let mut out = Vec::new();
        put_int(&mut out, len);
        out.extend_from_slice(b"- x");
        r.send_data(&out);
        // The daemon hangs up without a message (rsync says "overflow" first).
        assert!(r.closed_by_daemon(), "rule length {len}");
    }
    std::fs::write(d.module_path("open").join("f"), b"hello").unwrap();
    let (mut r, _reader, _data, entries) = pull_listed(d.port);
    let mut out = Vec::new();
    let mut codec = NdxCodec::default();
    codec.encode(&mut out, index_of(&entries, b"f"));
    out.extend_from_slice(&ITEM_TRANSFER.to_le_bytes());
    for v in [1 << 25, 700, 16, 0] {
        put_int(&mut out, v);
    }
    r.send_data(&out);
    std::thread::sleep(Duration::from_millis(200));
    drop(r);
    still_serving(&d);
}

/// Pushes one file `f` (five bytes, a time the module's copy does not have) and answers the
/// daemon's request for it with `tokens` (`int`s as the uncompressed stream carries them) and
/// the md5 of `hello`.
fn push_tokens(port: u16, tokens: &[i32]) -> Vec<String> {
    let mut r = push_list(port, &[(file(b"f"), DirRole::Listed)]);
    let mut reader = r.reader();
    let mut data = DataBuf::default();
    let mut told = Vec::new();
    let mut ndx_in = NdxCodec::default();
    let ndx = reader.recv_data(&mut data, &mut keep(&mut told), |b| ndx_in.decode(b));
    let Ok(ndx) = ndx else {
        return told;
    };
    let iflags = reader
        .recv_data(&mut data, &mut keep(&mut told), |b| Ok(get_short(b)))
        .unwrap();
    let mut head = [0i32; 4];
    for v in &mut head {
        *v = reader
            .recv_data(&mut data, &mut keep(&mut told), |b| Ok(get_int(b)))
            .unwrap();
    }
    let sums = usize::try_from(head[0]).unwrap() * (4 + usize::try_from(head[2]).unwrap());
    reader
        .recv_data(&mut data, &mut keep(&mut told), |b| {
            Ok(b.get(..sums).map(|s| (s.to_vec(), sums)))
        })
        .unwrap();
    let mut out = Vec::new();
    NdxCodec::default().encode(&mut out, ndx);
    out.extend_from_slice(&(iflags | ITEM_TRANSFER).to_le_bytes());
    for v in head {
        put_int(&mut out, v);
    }
    for &t in tokens {
        put_int(&mut out, t);
    }
    out.extend_from_slice(&md5(b"hello"));
    r.send_data(&out);
    // The daemon then waits for the next request: a moment is enough for it to refuse this one.
    r.s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = r.closed_by_daemon();
    told
}

/// The 2026 hardening "receiver block-index bounds" (rsync `v3.2.7-sec-patches1` 3ac8349e,
/// and CVE-2026-43620's class: an index the receiver trusts to point into its arrays). A
/// pushing client answers the daemon's request for `f` with copies of blocks the daemon never
/// described (block 1 of a one-block signature, block 10^6, block 2^31 − 1): the file fails,
/// the module's copy stays as it was, no temporary file is left, and the daemon serves on.
#[test]
fn receiver_block_index_bounds_refuse_blocks_outside_the_signature() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    let f = d.module_path("open").join("f");
    for token in [-2, -1_000_001, i32::MIN] {
        std::fs::write(&f, b"hello").unwrap();
        let told = push_tokens(d.port, &[token, 0]);
        assert_eq!(
            std::fs::read(&f).unwrap(),
            b"hello",
            "token {token}: {told:?}"
        );
    }
    still_serving(&d);
}

// ---------------------------------------------------------------------------------------------
// A fake server against `rtsync sync`, one per CVE class where the server is the attacker.

/// What a fake server does once the session is set up: it gets the connection's two halves
/// (its reader already past the client's filter list on a pull) and may do anything.
type Script = Box<dyn FnOnce(&mut MuxReader, &mut DataBuf, &mut TcpStream) + Send>;

/// A one-connection rsync daemon on a free loopback port that greets, accepts any module,
/// negotiates md5 and hands the session to a script. Every read has a timeout.
struct FakeServer {
    port: u16,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    fn start(script: Script) -> FakeServer {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut reader = MuxReader::new(
                Box::new(s.try_clone().unwrap()),
                Some(Duration::from_secs(20)),
                Arc::new(Traffic::default()),
            );
            let _ = s.write_all(b"@RSYNCD: 31.0 md5\n");
            let Ok(_greeting) = reader.read_line() else {
                return;
            };
            let Ok(_module) = reader.read_line() else {
                return;
            };
            let _ = s.write_all(b"@RSYNCD: OK\n");
            // The arguments: NUL-terminated words, ended by an empty one.
            let Ok(args) = reader.read_raw(|b| {
                Ok(b.windows(2)
                    .position(|w| w == [0, 0])
                    .map(|at| (b[..at].to_vec(), at + 2)))
            }) else {
                return;
            };
            let pull = args.split(|&b| b == 0).any(|w| w == b"--sender");
            let mut out = Vec::new();
            protocol::wire::put_varint(
                &mut out,
                (protocol::compat::CF_VARINT_FLIST_FLAGS | protocol::compat::CF_CHKSUM_SEED_FIX)
                    .cast_signed(),
            );
            put_vstring(&mut out, b"md5").unwrap();
            let _ = s.write_all(&out);
            let Ok(_list) = reader
                .read_raw(|b| Ok(protocol::wire::get_vstring(b).map(|(v, n)| (v.to_vec(), n))))
            else {
                return;
            };
            let mut seed = Vec::new();
            put_int(&mut seed, 12345);
            let _ = s.write_all(&seed);
            let mut data = DataBuf::default();
            if pull {
                // The client's filter rules: int length + text, ended by 0.
                loop {
                    let Ok(len) = reader.recv_data(&mut data, &mut |_, _| {}, |b| Ok(get_int(b)))
                    else {
                        return;
                    };
                    if len <= 0 {
                        break;
                    }
                    let len = usize::try_from(len).unwrap();
                    if reader
                        .recv_data(&mut data, &mut |_, _| {}, |b| {
                            Ok(b.get(..len).map(|s| (s.to_vec(), len)))
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
            script(&mut reader, &mut data, &mut s);
        });
        FakeServer {
            port,
            thread: Some(thread),
        }
    }

    fn url(&self, rest: &str) -> String {
        format!("rsync://127.0.0.1:{}/{rest}", self.port)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The options of the lists a `rtsync sync -rlt` client and a fake server exchange.
fn rlt_opts() -> FlistOptions {
    list_opts()
}

/// Sends `entries` as the server's file list (after `.`).
fn send_list(s: &mut TcpStream, entries: &[Entry]) {
    let mut out = Vec::new();
    let mut enc = FlistEncoder::new(rlt_opts());
    let mut top = file(b".");
    top.mode = 0o040_755;
    enc.encode(&mut out, &top, DirRole::Content { top: true })
        .unwrap();
    for e in entries {
        let role = if e.is_dir() {
            DirRole::Content { top: false }
        } else {
            DirRole::Listed
        };
        enc.encode(&mut out, e, role).unwrap();
    }
    enc.finish(&mut out, 0);
    let mut frame = Vec::new();
    protocol::mux::encode(&mut frame, MsgCode::Data, &out).unwrap();
    let _ = s.write_all(&frame);
}

fn send_frame(s: &mut TcpStream, payload: &[u8]) {
    let mut frame = Vec::new();
    protocol::mux::encode(&mut frame, MsgCode::Data, payload).unwrap();
    let _ = s.write_all(&frame);
}

/// One request from the client's generator: its index, and the sum header and sums if it
/// asked for data (`None` for an `NDX_DONE`).
struct Request {
    ndx: i32,
    head: Option<[i32; 4]>,
}

fn next_request(
    reader: &mut MuxReader,
    data: &mut DataBuf,
    ndx_in: &mut NdxCodec,
) -> Option<Request> {
    let ndx = reader
        .recv_data(data, &mut |_, _| {}, |b| ndx_in.decode(b))
        .ok()?;
    if ndx < 0 {
        return Some(Request { ndx, head: None });
    }
    let iflags = reader
        .recv_data(data, &mut |_, _| {}, |b| Ok(get_short(b)))
        .ok()?;
    if iflags & ITEM_TRANSFER == 0 {
        return Some(Request { ndx, head: None });
    }
    let mut head = [0i32; 4];
    for v in &mut head {
        *v = reader
            .recv_data(data, &mut |_, _| {}, |b| Ok(get_int(b)))
            .ok()?;
    }
    let sums = usize::try_from(head[0]).ok()? * (4 + usize::try_from(head[2]).ok()?);
    reader
        .recv_data(data, &mut |_, _| {}, |b| {
            Ok(b.get(..sums).map(|s| (s.to_vec(), sums)))
        })
        .ok()?;
    Some(Request {
        ndx,
        head: Some(head),
    })
}

/// Ends the session as a sender does once the client's generator is done: echoes its
/// `NDX_DONE`s, sends the totals after the third and the goodbye after the fourth.
fn finish_phases(
    reader: &mut MuxReader,
    data: &mut DataBuf,
    s: &mut TcpStream,
    ndx_in: &mut NdxCodec,
) {
    let mut dones = 0;
    while let Some(req) = next_request(reader, data, ndx_in) {
        if req.ndx != NDX_DONE {
            continue;
        }
        dones += 1;
        let mut out = vec![0u8];
        if dones == 3 {
            for _ in 0..5 {
                protocol::wire::put_varlong(&mut out, 0, 3);
            }
        }
        send_frame(s, &out);
        if dones == 4 {
            break;
        }
    }
}

/// Runs `rtsync sync` against a fake server, bounded at 60 s.
fn client(args: &[String]) -> std::process::Output {
    common::run_bounded(
        std::process::Command::new(env!("CARGO_BIN_EXE_rtsync"))
            .arg("sync")
            .args(args),
        Duration::from_secs(60),
    )
}

fn assert_no_panic(out: &std::process::Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Every file under `dir`, not following symlinks.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .collect()
}

/// CVE-2024-12087 (path traversal by a malicious server: file-list names with `..`, absolute
/// names, or names below a symlink the same list makes, so a pulling client writes outside
/// its destination). Each list is refused with rsync's "unsafe pathname" before anything is
/// written, or (the symlink) the file below it fails: nothing appears outside the
/// destination, and the client exits non-zero.
#[test]
fn cve_2024_12087_server_names_outside_the_destination_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let abs = outside.join("abs");
    let abs_name = abs.as_os_str().as_encoded_bytes().to_vec();
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        ("dotdot", vec![file(b"../outside/evil")]),
        ("absolute", vec![file(&abs_name)]),
        ("inner dotdot", vec![file(b"a/../../outside/evil")]),
        ("dot component", vec![file(b"a/./../outside/evil")]),
    ];
    for (what, entries) in cases {
        let dest = t.path().join(format!("dest-{}", what.replace(' ', "-")));
        let server = FakeServer::start(Box::new(move |reader, data, s| {
            send_list(s, &entries);
            let mut ndx_in = NdxCodec::default();
            finish_phases(reader, data, s, &mut ndx_in);
        }));
        let out = client(&[
            "-rlt".into(),
            server.url("mod/"),
            format!("{}/", dest.display()),
        ]);
        assert_no_panic(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{what}: {err}");
        assert!(err.contains("unsafe pathname"), "{what}: {err}");
        drop(server);
    }
    // A symlink to a directory outside, then a file below it.
    let dest = t.path().join("dest-symlink");
    let target = outside.as_os_str().as_encoded_bytes().to_vec();
    let server = FakeServer::start(Box::new(move |reader, data, s| {
        let link = Entry {
            mode: 0o120_777,
            link_target: Some(target),
            ..file(b"link")
        };
        send_list(s, &[link, file(b"link/evil")]);
        let mut ndx_in = NdxCodec::default();
        while let Some(req) = next_request(reader, data, &mut ndx_in) {
            if req.ndx == NDX_DONE {
                send_frame(s, &[0]);
                finish_phases(reader, data, s, &mut ndx_in);
                break;
            }
            if let Some(head) = req.head {
                // Five literal bytes as the file's content.
                let mut out = Vec::new();
                NdxCodec::default().encode(&mut out, req.ndx);
                out.extend_from_slice(&ITEM_TRANSFER.to_le_bytes());
                for v in head {
                    put_int(&mut out, v);
                }
                put_int(&mut out, 5);
                out.extend_from_slice(b"evil!");
                put_int(&mut out, 0);
                out.extend_from_slice(&md5(b"evil!"));
                send_frame(s, &out);
            }
        }
    }));
    let out = client(&[
        "-rlt".into(),
        server.url("mod/"),
        format!("{}/", dest.display()),
    ]);
    assert_no_panic(&out);
    drop(server);
    assert!(
        files_under(&outside).is_empty(),
        "{:?}",
        files_under(&outside)
    );
    assert!(!abs.exists());
    assert!(!t.path().join("evil").exists());
    assert_ne!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// CVE-2024-12086 (a malicious server makes the client leak files outside the transfer: on a
/// pull, by naming a basis file of its choosing — `ITEM_BASIS_TYPE_FOLLOWS` with a fuzzy type
/// and `ITEM_XNAME_FOLLOWS` with a path outside the destination — and copying its blocks; on
/// a push, by asking for indexes the client never listed or for a symlink's data). rtsync's
/// receiver ignores the basis the server names (it only ever uses the destination's own
/// file), so the pulled file cannot hold the outside file's bytes; its sender refuses an
/// index outside its list and never opens a symlink, so nothing it sends holds them either.
#[test]
fn cve_2024_12086_a_server_cannot_make_the_client_read_outside_its_files() {
    let t = tempfile::tempdir().unwrap();
    let secret_path = t.path().join("secret");
    let secret = b"TOPSECRET the client never listed this\n".to_vec();
    std::fs::write(&secret_path, &secret).unwrap();

    // Pull: the server names the secret as the basis of `f` and copies its block 0.
    let dest = t.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("f"), b"old local f").unwrap();
    let xname = secret_path.as_os_str().as_encoded_bytes().to_vec();
    let secret_sum = md5(&secret);
    let secret_len = i32::try_from(secret.len()).unwrap();
    let server = FakeServer::start(Box::new(move |reader, data, s| {
        send_list(
            s,
            &[Entry {
                size: i64::from(secret_len),
                ..file(b"f")
            }],
        );
        let mut ndx_in = NdxCodec::default();
        let mut ndx_out = NdxCodec::default();
        while let Some(req) = next_request(reader, data, &mut ndx_in) {
            if req.ndx == NDX_DONE {
                send_frame(s, &[0]);
                finish_phases(reader, data, s, &mut ndx_in);
                break;
            }
            if req.head.is_some() {
                let mut out = Vec::new();
                ndx_out.encode(&mut out, req.ndx);
                let iflags = ITEM_TRANSFER | ITEM_BASIS_TYPE_FOLLOWS | ITEM_XNAME_FOLLOWS;
                out.extend_from_slice(&iflags.to_le_bytes());
                out.push(0x83); // FNAMECMP_FUZZY
                put_vstring(&mut out, &xname).unwrap();
                for v in [1, 700, 16, secret_len] {
                    put_int(&mut out, v);
                }
                put_int(&mut out, -1); // block 0 of the basis
                put_int(&mut out, 0);
                out.extend_from_slice(&secret_sum);
                send_frame(s, &out);
            }
        }
    }));
    let out = client(&[
        "-rlt".into(),
        server.url("mod/"),
        format!("{}/", dest.display()),
    ]);
    assert_no_panic(&out);
    drop(server);
    for f in files_under(&dest) {
        let got = std::fs::read(&f).unwrap();
        assert!(
            !got.windows(9).any(|w| w == b"TOPSECRET"),
            "{f:?} holds the outside file"
        );
    }
    assert_ne!(out.status.code(), Some(0));

    // Push: the server asks for an index past the list, then for the symlink's data.
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"listed").unwrap();
    std::os::unix::fs::symlink(&secret_path, src.join("link")).unwrap();
    for ask in ["past the list", "the symlink"] {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep_seen = Arc::clone(&seen);
        let server = FakeServer::start(Box::new(move |reader, data, s| {
            let mut decoder = FlistDecoder::new(rlt_opts());
            let mut entries = Vec::new();
            while let Ok(Item::Entry(e)) =
                reader.recv_data(data, &mut |_, _| {}, |b| decoder.decode(b))
            {
                entries.push(e);
            }
            let entries = session::flist::sort_received(entries).unwrap();
            let ndx = if ask == "the symlink" {
                index_of(&entries, b"link")
            } else {
                5000
            };
            let mut out = Vec::new();
            NdxCodec::default().encode(&mut out, ndx);
            out.extend_from_slice(&ITEM_TRANSFER.to_le_bytes());
            for v in [0, 0, 0, 0] {
                put_int(&mut out, v);
            }
            send_frame(s, &out);
            // Whatever comes back, until the client goes.
            while let Ok(Some(frame)) = reader.next_data(&mut |_, _| {}) {
                keep_seen.lock().unwrap().extend_from_slice(&frame);
            }
        }));
        let out = client(&[
            "-rlt".into(),
            format!("{}/", src.display()),
            server.url("mod/"),
        ]);
        assert_no_panic(&out);
        drop(server);
        let seen = seen.lock().unwrap();
        assert!(
            !seen.windows(9).any(|w| w == b"TOPSECRET"),
            "{ask}: the client sent the secret"
        );
        assert_ne!(
            out.status.code(),
            Some(0),
            "{ask}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// CVE-2026-43620's class on the client (a malicious server names, in a transfer record, an
/// index the receiver never listed — rsync read before its array and crashed): records for
/// index 5000, for the list's top directory `.`, and a negative index that is no phase marker
/// end the pull with an error, never a crash, and nothing is written.
#[test]
fn a_server_naming_an_index_the_client_never_listed_ends_the_pull() {
    let t = tempfile::tempdir().unwrap();
    for (what, ndx) in [
        ("past the list", 5000),
        ("the top directory", 0),
        ("negative", -70),
    ] {
        let dest = t.path().join(format!("dest-{ndx}"));
        let server = FakeServer::start(Box::new(move |reader, data, s| {
            send_list(s, &[file(b"f")]);
            let mut ndx_in = NdxCodec::default();
            if let Some(req) = next_request(reader, data, &mut ndx_in)
                && let Some(head) = req.head
            {
                let mut out = Vec::new();
                NdxCodec::default().encode(&mut out, ndx);
                out.extend_from_slice(&ITEM_TRANSFER.to_le_bytes());
                for v in head {
                    put_int(&mut out, v);
                }
                put_int(&mut out, 5);
                out.extend_from_slice(b"evil!");
                put_int(&mut out, 0);
                out.extend_from_slice(&md5(b"evil!"));
                send_frame(s, &out);
            }
            // Then nothing more: the client must end on its own.
            let mut buf = [0u8; 4096];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }));
        let out = client(&[
            "-rlt".into(),
            "--timeout=20".into(),
            server.url("mod/"),
            format!("{}/", dest.display()),
        ]);
        assert_no_panic(&out);
        drop(server);
        assert_ne!(out.status.code(), Some(0), "{what}");
        let written: Vec<Vec<u8>> = files_under(&dest)
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        assert!(written.iter().all(|c| c != b"evil!"), "{what}: {written:?}");
    }
}

/// Whether a symlink target, read from a link `depth` directories below the module, stays
/// inside the module when its components are followed in order (rsync's `unsafe_symlink`).
fn stays_inside(target: &[u8], depth: usize) -> bool {
    if target.starts_with(b"/") {
        return false;
    }
    let mut at = depth;
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => match at.checked_sub(1) {
                Some(up) => at = up,
                None => return false,
            },
            _ => at += 1,
        }
    }
    true
}

/// CVE-2024-12088 (`--safe-links` bypass: a symlink target that looks safe but escapes once
/// its `..` components are followed, e.g. `a/../../x`, let a malicious sender place a link
/// out of the destination). A stock client pushes, with `--safe-links`, links that escape
/// plainly, after normalisation, absolutely, and safe ones, to an `rtsync daemon` module
/// without chroot and not munged: every link in the module then stays inside it (the daemon
/// cuts each target down as rsync's `sanitize_paths` does). On the client, `rtsync sync
/// --safe-links` is refused (exit 4): rtsync does not filter links it receives as a client.
#[test]
fn cve_2024_12088_safe_links_no_link_in_the_module_escapes() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    let t = tempfile::tempdir().unwrap();
    let src = t.path();
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    let links: [(&str, &str); 8] = [
        ("ok", "sub/deeper"),
        ("up", "../outside"),
        ("esc", "a/../../outside"),
        ("dots", "./.././outside"),
        ("abs", "/etc/passwd"),
        ("sub/fine", "../ok"),
        ("sub/esc", "deeper/../../../outside"),
        ("sub/deeper/far", "../../../../../../etc"),
    ];
    for (name, target) in links {
        std::os::unix::fs::symlink(target, src.join(name)).unwrap();
    }
    let out = rsync([
        "-a".to_string(),
        "--safe-links".to_string(),
        format!("{}/", src.display()),
        d.url("open/"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let module = d.module_path("open");
    let mut seen = Vec::new();
    for p in walk(&module) {
        let md = std::fs::symlink_metadata(&p).unwrap();
        if !md.file_type().is_symlink() {
            continue;
        }
        let rel = p.strip_prefix(&module).unwrap();
        let depth = rel.components().count() - 1;
        let target = std::fs::read_link(&p).unwrap();
        let bytes = target.as_os_str().as_encoded_bytes();
        assert!(
            stays_inside(bytes, depth),
            "{rel:?} -> {target:?} leaves the module"
        );
        seen.push(rel.display().to_string());
    }
    assert!(seen.contains(&"ok".to_string()), "{seen:?}");
    still_serving(&d);

    // Regression: remote transfers ignored every option rtsync does not do, --safe-links
    // among them, where local ones refused it.
    let dest = t.path().join("dest");
    for args in [
        [d.url("open/"), dest.display().to_string()],
        [format!("{}/", src.display()), d.url("push/")],
    ] {
        let out = common::rtsync(
            ["sync", "-a", "--safe-links"]
                .into_iter()
                .map(String::from)
                .chain(args),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{err}");
        assert!(err.contains("--safe-links"), "{err}");
    }
    assert!(!dest.exists());
}

/// Swaps `dir` for a symlink to `to` and back, over and over, until `stop`; returns the number
/// of swaps made.
fn swap_loop(dir: PathBuf, to: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let aside = dir.with_extension("aside");
        let mut swaps = 0;
        while !stop.load(Ordering::Relaxed) {
            if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir())
                && std::fs::rename(&dir, &aside).is_ok()
            {
                if std::os::unix::fs::symlink(&to, &dir).is_ok() {
                    swaps += 1;
                    std::thread::sleep(Duration::from_micros(300));
                    let _ = std::fs::remove_file(&dir);
                }
                let _ = std::fs::rename(&aside, &dir);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        swaps
    })
}

/// CVE-2024-12747 and CVE-2026-29518, the filesystem race, write side: a stock rsync
/// client pushes a tree of 2 000 files to `rtsync daemon` again and again while a thread
/// swaps the module's `tree/sub` for a symlink to a directory outside the module and back.
/// Nothing is ever written outside the module, and the daemon keeps serving.
#[test]
fn symlink_race_a_target_directory_swapped_during_a_push_is_never_written_through() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    let outside = d.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("tree/sub")).unwrap();
    for i in 0..2000 {
        std::fs::write(
            src.path().join(format!("tree/sub/f{i:04}")),
            format!("file {i}\n").repeat(20),
        )
        .unwrap();
    }
    let module = d.module_path("open");
    let stop = Arc::new(AtomicBool::new(false));
    let racer = swap_loop(module.join("tree/sub"), outside.clone(), Arc::clone(&stop));
    let mut codes = Vec::new();
    for round in 0..4 {
        // Change every file each round, so every round writes.
        for i in (0..2000).step_by(7) {
            std::fs::write(
                src.path().join(format!("tree/sub/f{i:04}")),
                format!("round {round} file {i}\n"),
            )
            .unwrap();
        }
        let out = rsync([
            "-a".to_string(),
            "--timeout=60".to_string(),
            format!("{}/", src.path().display()),
            d.url("open/"),
        ]);
        codes.push(out.status.code());
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    eprintln!("push race: {swaps} swaps, rsync exit codes {codes:?}");
    assert!(swaps > 0, "the race never ran");
    assert!(
        walk(&outside).is_empty(),
        "written outside the module: {:?}",
        walk(&outside)
    );
    still_serving(&d);
}

/// The same race, read side (CVE-2024-12747: a daemon sender reading through a symlink swapped
/// in during the transfer): stock clients pull `tree/` again and again while `tree/sub` is
/// swapped for a symlink to a directory outside the module that holds files of the same names.
/// No pulled file ever holds the outside content.
#[test]
fn symlink_race_a_source_directory_swapped_during_a_pull_is_never_read_through() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    let outside = d.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let module = d.module_path("open");
    std::fs::create_dir_all(module.join("tree/sub")).unwrap();
    for i in 0..300 {
        let name = format!("f{i:03}");
        std::fs::write(module.join("tree/sub").join(&name), "public\n").unwrap();
        std::fs::write(outside.join(&name), "TOPSECRET\n").unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let racer = swap_loop(module.join("tree/sub"), outside.clone(), Arc::clone(&stop));
    let t = tempfile::tempdir().unwrap();
    let mut leaked = Vec::new();
    for round in 0..15 {
        let dest = t.path().join(format!("round{round}"));
        let _ = rsync([
            "-a".to_string(),
            "--timeout=60".to_string(),
            d.url("open/tree/"),
            format!("{}/", dest.display()),
        ]);
        for f in files_under(&dest) {
            if std::fs::read(&f).unwrap().starts_with(b"TOPSECRET") {
                leaked.push(f);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    eprintln!("pull race: {swaps} swaps");
    assert!(swaps > 0, "the race never ran");
    assert!(leaked.is_empty(), "read outside the module: {leaked:?}");
    still_serving(&d);
}

// ---------------------------------------------------------------------------------------------
// Malformed configuration files.

/// Runs `rtsync` with `args`, bounded at 20 s, and checks it failed cleanly with exit 1 and a
/// message naming `file` (and `line`, where given).
fn refuses(args: &[String], file: &Path, line: Option<usize>) -> String {
    let out = common::run_bounded(
        std::process::Command::new(env!("CARGO_BIN_EXE_rtsync")).args(args),
        Duration::from_secs(20),
    );
    assert_no_panic(&out);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    let name = file.display().to_string();
    match line {
        Some(n) => assert!(
            err.contains(&format!("{name}:{n}:")) || err.contains(&format!("at line {n},")),
            "{args:?}: no {name}:{n} in {err}"
        ),
        None => assert!(err.contains(&name), "{args:?}: no {name} in {err}"),
    }
    err
}

/// Broken rsyncd.conf files: `rtsync daemon` refuses each with its file and line, exit 1,
/// and never starts listening.
#[test]
fn malformed_rsyncd_conf_is_refused_with_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], Option<usize>); 7] = [
        ("unterminated", b"[mod\npath = /tmp\n", Some(1)),
        ("bad port", b"port = abc\n[m]\npath = /tmp\n", Some(1)),
        (
            "bad boolean",
            b"[m]\npath = /tmp\nread only = maybe\n",
            Some(3),
        ),
        ("bad bracket", b"[m]\npath = /tmp\nname = a]b\n", Some(3)),
        (
            "missing include",
            b"[m]\npath = /tmp\n&include /nonexistent/rtsync-hostile.d\n",
            Some(3),
        ),
        ("binary", b"\x00\xff\xfe[\x01]\n=\x00=\n", None),
        ("missing file", b"", None),
    ];
    for (what, text, line) in cases {
        let conf = t.path().join(format!("{}.conf", what.replace(' ', "-")));
        if what != "missing file" {
            std::fs::write(&conf, text).unwrap();
        }
        let port = common::daemon::free_port();
        let args = vec![
            "daemon".to_string(),
            "--no-detach".to_string(),
            "--address=127.0.0.1".to_string(),
            format!("--port={port}"),
            format!("--config={}", conf.display()),
        ];
        let out = common::run_bounded(
            std::process::Command::new(env!("CARGO_BIN_EXE_rtsync")).args(&args),
            Duration::from_secs(20),
        );
        assert_no_panic(&out);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if what == "binary" && out.status.code() == Some(0) {
            panic!("{what}: a binary file was accepted: {err}");
        }
        let _ = refuses(&args, &conf, line);
    }
}

/// Broken `rtsync run --config` files: each refused with its file (and line where TOML has
/// one), exit 1, before anything is watched.
#[test]
fn malformed_rtsync_toml_is_refused_with_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], Option<usize>); 7] = [
        (
            "unknown key",
            b"source = \"/tmp\"\nbogus = 1\n[[target]]\ndest = \"/tmp/x\"\n",
            Some(2),
        ),
        ("wrong type", b"source = 5\n", Some(1)),
        ("no target", b"source = \"/tmp\"\n", None),
        (
            "target without dest",
            b"source = \"/tmp\"\n[[target]]\n",
            Some(2),
        ),
        ("unclosed table", b"[[target]\n", Some(1)),
        ("not utf-8", b"source = \"\xff\xfe\"\n", None),
        (
            "negative timeout",
            b"source = \"/tmp\"\ntimeout = -1\n[[target]]\ndest = \"/tmp/x\"\n",
            Some(2),
        ),
    ];
    for (what, text, line) in cases {
        let file = t.path().join(format!("{}.toml", what.replace(' ', "-")));
        std::fs::write(&file, text).unwrap();
        let err = refuses(
            &[
                "run".to_string(),
                "--config".to_string(),
                file.display().to_string(),
            ],
            &file,
            line,
        );
        assert!(!err.contains("watching"), "{what}: {err}");
    }
}

/// Broken sersync `confxml.xml` files for `rtsync run --sersync`: each refused with its file
/// (and line for XML errors), exit 1, before anything is watched. A file cut short used to be
/// read as far as it went.
#[test]
fn malformed_confxml_is_refused_with_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], Option<usize>); 6] = [
        (
            "cut short",
            b"<head>\n<sersync>\n<localpath watch=\"/tmp\">\n<remote ip=\"127.0.0.1\" name=\"m\"/>\n",
            Some(5),
        ),
        ("mismatched", b"<head>\n<a>\n</b>\n</head>\n", Some(3)),
        ("no localpath", b"<head><sersync></sersync></head>", None),
        (
            "no remote",
            b"<head><sersync><localpath watch=\"/tmp\"></localpath></sersync></head>",
            None,
        ),
        ("binary", b"\x00\x01\xff<", None),
        ("empty", b"", None),
    ];
    for (what, text, line) in cases {
        let file = t.path().join(format!("{}.xml", what.replace(' ', "-")));
        std::fs::write(&file, text).unwrap();
        let err = refuses(
            &[
                "run".to_string(),
                "--sersync".to_string(),
                file.display().to_string(),
            ],
            &file,
            line,
        );
        assert!(!err.contains("watching"), "{what}: {err}");
    }
}
