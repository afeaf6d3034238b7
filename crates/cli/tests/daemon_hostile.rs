//! Hostile clients against `rtsync daemon`: a test client that writes raw bytes sends names
//! that leave the module, writes through a symlink that points out of it, asks for absurd
//! block signatures and files that are not in the list, stops in the middle of every phase,
//! and goes silent past the module's `timeout`. Each time the daemon ends that connection,
//! writes nothing outside the module, and goes on serving a stock client.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::StockDaemon;
use common::{have_rsync, rsync};
use protocol::flist::{DirRole, Entry, FlistEncoder, FlistOptions};
use protocol::mux::MsgCode;
use protocol::wire::{NdxCodec, get_varint, put_int, put_vstring};

/// A raw connection to a module, speaking just enough of the protocol by hand.
struct Raw {
    s: TcpStream,
    pending: Vec<u8>,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Raw {
            s,
            pending: Vec::new(),
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
        let (_, n) = get_varint(&self.pending).unwrap().unwrap();
        let len = usize::from(self.pending[n]);
        self.pending.drain(..n + 1 + len);
        let mut list = Vec::new();
        put_vstring(&mut list, b"md5").unwrap();
        self.send(&list);
        assert!(self.read_until(|b| b.len() >= 4));
        self.pending.drain(..4);
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
