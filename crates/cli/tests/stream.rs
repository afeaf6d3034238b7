//! The rtsync stream against `rtsync daemon`, spoken frame by frame: what a well-behaved peer
//! gets (files, directories, symlinks, renames applied as renames, deletes, durable
//! acknowledgements), what the module's rules refuse, and what a hostile peer cannot do
//! (paths out of the module, through symlinks, broken framing).

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use client::daemon::{ConnectOptions, MuxReader, MuxWriter};
use client::stream::Opened;
use common::daemon::{SECRET_PASSWORD, SECRET_USER, StockDaemon};
use protocol::stream::{Attrs, Frame, Identity};

fn open(d: &StockDaemon, module: &str, user: &str) -> Result<(MuxReader, MuxWriter), String> {
    let opts = ConnectOptions {
        host: "127.0.0.1".into(),
        port: d.port,
        connect_timeout: Some(Duration::from_secs(5)),
        io_timeout: Some(Duration::from_secs(10)),
    };
    let mut pw = || Ok(SECRET_PASSWORD.as_bytes().to_vec());
    match client::stream::open(&opts, module, b"", user, &mut pw) {
        Ok(Opened::Stream(r, w, _)) => Ok((r, w)),
        Ok(Opened::NotOffered) => Err("not offered".into()),
        Err(e) => Err(format!("{e} (exit {})", e.exit_code())),
    }
}

fn attrs(perms: u32) -> Attrs {
    Attrs {
        perms,
        mtime_sec: 1_600_000_000,
        mtime_nsec: 5,
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
    }
}

/// Sends `frames` as batch `n` and returns the daemon's answer.
fn batch(conn: &mut (MuxReader, MuxWriter), n: u64, frames: &[Frame]) -> Frame {
    let mut out = Vec::new();
    Frame::Begin { batch: n }.encode(&mut out);
    for f in frames {
        f.encode(&mut out);
    }
    Frame::Commit { batch: n }.encode(&mut out);
    conn.1.send(&out).unwrap();
    conn.0.read_raw(Frame::decode).unwrap()
}

fn file(path: &str, body: &[u8]) -> Vec<Frame> {
    vec![
        Frame::File {
            path: path.as_bytes().to_vec(),
            attrs: attrs(0o640),
        },
        Frame::Data(body.to_vec()),
        Frame::End {
            len: body.len() as u64,
        },
    ]
}

fn done(batch: u64) -> Frame {
    Frame::Done {
        batch,
        missed: vec![],
        errors: vec![],
    }
}

#[test]
fn a_stream_writes_renames_and_deletes_inside_the_module() {
    let d = StockDaemon::start_rtsync();
    let m = d.module_path("secret");
    let mut conn = open(&d, "secret", SECRET_USER).unwrap();
    let mut ops = vec![Frame::Mkdir {
        path: b"dir/sub".to_vec(),
        attrs: attrs(0o750),
    }];
    ops.extend(file("dir/sub/a.txt", b"hello"));
    ops.push(Frame::Symlink {
        path: b"dir/link".to_vec(),
        target: b"sub/a.txt".to_vec(),
        attrs: attrs(0o777),
    });
    ops.extend(file("gone", b"x"));
    assert_eq!(batch(&mut conn, 1, &ops), done(1));
    assert_eq!(std::fs::read(m.join("dir/sub/a.txt")).unwrap(), b"hello");
    let md = std::fs::metadata(m.join("dir/sub/a.txt")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.mtime()), (0o640, 1_600_000_000));
    assert_eq!(
        std::fs::metadata(m.join("dir/sub")).unwrap().mode() & 0o7777,
        0o750
    );
    assert_eq!(
        std::fs::read_link(m.join("dir/link")).unwrap(),
        std::path::Path::new("sub/a.txt")
    );
    let inode = md.ino();

    // A rename whose source is what the client expects is applied as a rename (same inode);
    // one whose source differs, or is missing, is reported missed and not touched.
    let ident = Identity::File {
        size: 5,
        mtime_sec: 1_600_000_000,
        mtime_nsec: 5,
    };
    let answer = batch(
        &mut conn,
        2,
        &[
            Frame::Rename {
                from: b"dir/sub".to_vec(),
                to: b"moved/sub2".to_vec(),
                expect: Identity::Dir,
            },
            Frame::Rename {
                from: b"moved/sub2/a.txt".to_vec(),
                to: b"b.txt".to_vec(),
                expect: ident.clone(),
            },
            Frame::Rename {
                from: b"gone".to_vec(),
                to: b"other".to_vec(),
                expect: ident,
            },
            Frame::Rename {
                from: b"nothing-here".to_vec(),
                to: b"elsewhere".to_vec(),
                expect: Identity::Dir,
            },
            Frame::Delete {
                path: b"dir".to_vec(),
            },
        ],
    );
    assert_eq!(
        answer,
        Frame::Done {
            batch: 2,
            missed: vec![b"other".to_vec(), b"elsewhere".to_vec()],
            errors: vec![],
        }
    );
    assert_eq!(std::fs::metadata(m.join("b.txt")).unwrap().ino(), inode);
    assert!(m.join("moved/sub2").is_dir());
    assert!(!m.join("dir").exists());
    assert!(m.join("gone").exists(), "a missed rename leaves its source");
    assert!(!m.join("other").exists());
    // Nothing half-written is left beside the files.
    let stray: Vec<_> = walk(&m)
        .into_iter()
        .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with('.')))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.display().to_string());
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
    }
    out
}

#[test]
fn hostile_paths_never_leave_the_module() {
    let d = StockDaemon::start_rtsync();
    let m = d.module_path("open");
    // A symlink in the module pointing out of it: nothing may be written through it.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), m.join("escape")).unwrap();
    let mut conn = open(&d, "open", "nobody").unwrap();
    let mut ops = Vec::new();
    for p in [
        "../up.txt",
        "/abs.txt",
        "escape/through.txt",
        "a/../../up2.txt",
    ] {
        ops.extend(file(p, b"evil"));
    }
    ops.push(Frame::Delete {
        path: b"escape/..".to_vec(),
    });
    ops.push(Frame::Rename {
        from: b"escape".to_vec(),
        to: b"../moved".to_vec(),
        expect: Identity::Dir,
    });
    let Frame::Done { errors, .. } = batch(&mut conn, 1, &ops) else {
        panic!("no acknowledgement");
    };
    assert_eq!(errors.len(), 5, "{errors:?}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(!d.dir.path().join("up.txt").exists());
    assert!(!std::path::Path::new("/abs.txt").exists());
    assert!(m.join("escape").is_symlink());

    // Broken framing ends the stream with a reason, and the daemon lives on.
    let mut out = Vec::new();
    Frame::Data(b"no file open".to_vec()).encode(&mut out);
    conn.1.send(&out).unwrap();
    assert!(matches!(
        conn.0.read_raw(Frame::decode),
        Ok(Frame::Fatal { code: 2, .. })
    ));
    let mut again = open(&d, "open", "nobody").unwrap();
    let mut ops = file("fine.txt", b"ok");
    ops.push(Frame::Delete {
        path: b"escape".to_vec(),
    });
    assert_eq!(batch(&mut again, 1, &ops), done(1));
    assert_eq!(std::fs::read(m.join("fine.txt")).unwrap(), b"ok");
    assert!(!m.join("escape").exists() && outside.path().exists());
}

#[test]
fn copies_are_made_only_from_matching_files_inside_the_module() {
    use sha2::Digest as _;
    let d = StockDaemon::start_rtsync();
    let m = d.module_path("open");
    let body = testkit::noise(300_000, 7);
    let digest: [u8; 32] = sha2::Sha256::digest(&body).into();
    std::fs::write(m.join("have.bin"), &body).unwrap();
    std::os::unix::fs::symlink("have.bin", m.join("link.bin")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.bin"), &body).unwrap();
    std::os::unix::fs::symlink(outside.path(), m.join("escape")).unwrap();
    let copy = |path: &str, from: &str, digest: [u8; 32]| Frame::Copy {
        path: path.as_bytes().to_vec(),
        from: from.as_bytes().to_vec(),
        attrs: attrs(0o640),
        size: body.len() as u64,
        digest,
    };
    let mut conn = open(&d, "open", "nobody").unwrap();
    let ops = [
        copy("sub/made.bin", "have.bin", digest),
        copy("wrong.bin", "have.bin", [0; 32]),
        copy("via-link.bin", "link.bin", digest),
        copy("via-escape.bin", "escape/secret.bin", digest),
        copy("up.bin", "../open/have.bin", digest),
        copy("../up.bin", "have.bin", digest),
        copy("absent.bin", "nothing.bin", digest),
    ];
    let Frame::Done { missed, errors, .. } = batch(&mut conn, 1, &ops) else {
        panic!("no acknowledgement");
    };
    assert!(errors.is_empty(), "{errors:?}");
    let missed: Vec<String> = missed
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert_eq!(
        missed,
        [
            "wrong.bin",
            "via-link.bin",
            "via-escape.bin",
            "up.bin",
            "../up.bin",
            "absent.bin"
        ]
    );
    assert_eq!(std::fs::read(m.join("sub/made.bin")).unwrap(), body);
    let md = std::fs::metadata(m.join("sub/made.bin")).unwrap();
    assert_eq!(md.mode() & 0o777, 0o640);
    assert_eq!(md.mtime(), attrs(0).mtime_sec);
    // Nothing else was made, and no temporary file is left.
    let prefix = format!("{}/", m.display());
    let mut names: Vec<String> = walk(&m)
        .iter()
        .map(|p| p.strip_prefix(&prefix).unwrap_or(p).to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["escape", "have.bin", "link.bin", "sub", "sub/made.bin"]
    );
    assert!(!d.dir.path().join("up.bin").exists());
}

#[test]
fn the_modules_rules_hold_for_the_stream() {
    let d = StockDaemon::start_rtsync();
    // Read only: refused before anything is written, with rsync's words.
    let e = open(&d, "ro", "nobody")
        .err()
        .expect("a read-only module accepted the stream");
    assert!(e.contains("read only"), "{e}");
    // A wrong password is refused as for rsync (exit 5).
    let opts = ConnectOptions {
        host: "127.0.0.1".into(),
        port: d.port,
        connect_timeout: Some(Duration::from_secs(5)),
        io_timeout: Some(Duration::from_secs(10)),
    };
    let mut wrong = || Ok(b"wrong".to_vec());
    let e = client::stream::open(&opts, "secret", b"", SECRET_USER, &mut wrong)
        .err()
        .expect("a wrong password was accepted");
    assert_eq!(e.exit_code(), 5, "{e}");
}

#[test]
fn a_stock_rsync_daemon_is_not_offered_the_stream() {
    if !common::have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    assert_eq!(open(&d, "open", "nobody").err().unwrap(), "not offered");
    // And it was never asked: nothing in its log about an unknown option.
    let log = std::fs::read_to_string(d.dir.path().join("rsyncd.log")).unwrap_or_default();
    assert!(!log.contains("rtsync-stream"), "{log}");
}

#[test]
fn the_daemon_keeps_idle_connections_alive_to_find_vanished_peers() {
    // A stream is idle between batches, and a module may have no `timeout`: TCP keepalive is
    // what ends the thread of a peer whose link was cut without a word.
    if std::process::Command::new("ss").arg("-V").output().is_err() {
        eprintln!("skipped: no ss");
        return;
    }
    let d = StockDaemon::start_rtsync();
    let _conn = open(&d, "open", "nobody").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .arg(format!("( sport = :{} )", d.port))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("keepalive"), "{text}");
}
