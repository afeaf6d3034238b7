//! `rtsync run` to an `rtsync daemon`: the stream between rtsync peers carries every change,
//! renames of whole directories go as renames, and cutting the connection or killing the
//! daemon at any moment of a stream of creates, renames and deletes loses nothing, duplicates
//! nothing and leaves no half-written file.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::StockDaemon;
use common::engine::{Engine, converges, one_path_sent_again_alone, start_telling};
use common::ground::Rng;

#[test]
fn a_renamed_directory_of_5000_files_reaches_an_rtsync_daemon_as_a_rename() {
    let d = StockDaemon::start_rtsync();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("big")).unwrap();
    for i in 0..5000 {
        std::fs::write(
            src.join(format!("big/f{i}")),
            testkit::noise(1000 + i % 500, i as u64),
        )
        .unwrap();
    }
    let relay = Relay::start(d.port);
    let url = format!("rsync://127.0.0.1:{}/open/", relay.port);
    let engine = Engine::start(
        &t.path().join("state"),
        &["-v", src.to_str().unwrap(), &url],
    );
    let module = d.module_path("open");
    converges(&src, &module, &[], &engine);
    let before = std::fs::metadata(module.join("big/f4999")).unwrap().ino();

    std::thread::sleep(Duration::from_millis(300));
    let wire_before = relay.bytes.load(Ordering::SeqCst);
    let t0 = Instant::now();
    std::fs::rename(src.join("big"), src.join("renamed")).unwrap();
    while !module.join("renamed").exists() || module.join("big").exists() {
        assert!(t0.elapsed() < Duration::from_secs(30), "{}", engine.log());
        std::thread::sleep(Duration::from_millis(1));
    }
    let arrived = t0.elapsed();
    let took = converges(&src, &module, &[], &engine);
    // Moved on the target, not sent again: the same inode under the new name.
    assert_eq!(
        std::fs::metadata(module.join("renamed/f4999"))
            .unwrap()
            .ino(),
        before,
        "the directory was sent again instead of renamed\n{}",
        engine.log()
    );
    assert!(engine.log().contains("1 renamed"), "{}", engine.log());
    let wire = relay.bytes.load(Ordering::SeqCst) - wire_before;
    eprintln!(
        "rename of 5000 files: on the target {arrived:?} after the mv, {wire} bytes on the wire; \
         trees compared equal after {took:?} more"
    );
    assert!(wire < 1_000_000, "{wire} bytes on the wire for a rename");
    // The goal is 0.2 s (26 ms measured); a loaded test machine gets slack.
    assert!(arrived < Duration::from_secs(1), "{arrived:?}");
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn copies_of_files_the_target_holds_are_made_there_not_sent() {
    let d = StockDaemon::start_rtsync();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("tree")).unwrap();
    std::fs::write(src.join("orig"), testkit::noise(8 << 20, 1)).unwrap();
    // Past the size the stream sends whole (16 MB): without a copy, rsync would send it.
    std::fs::write(src.join("huge"), testkit::noise(20 << 20, 2)).unwrap();
    for i in 0..3 {
        std::fs::write(
            src.join(format!("tree/f{i}")),
            testkit::noise(1 << 20, 10 + i),
        )
        .unwrap();
    }
    // Same size as orig, other content: hashed, and not taken for it.
    std::fs::write(src.join("decoy"), testkit::noise(8 << 20, 3)).unwrap();
    let relay = Relay::start(d.port);
    let url = format!("rsync://127.0.0.1:{}/open/", relay.port);
    let engine = Engine::start(
        &t.path().join("state"),
        &["-v", src.to_str().unwrap(), &url],
    );
    let module = d.module_path("open");
    converges(&src, &module, &[], &engine);

    std::thread::sleep(Duration::from_millis(300));
    let wire_before = relay.bytes.load(Ordering::SeqCst);
    std::fs::copy(src.join("orig"), src.join("copy")).unwrap();
    std::fs::copy(src.join("huge"), src.join("huge copy")).unwrap();
    std::fs::create_dir(src.join("tree2")).unwrap();
    for i in 0..3 {
        std::fs::copy(
            src.join(format!("tree/f{i}")),
            src.join(format!("tree2/f{i}")),
        )
        .unwrap();
    }
    // A restore: deleted, then put back as it was.
    let kept = std::fs::read(src.join("tree/f1")).unwrap();
    std::fs::remove_file(src.join("tree/f1")).unwrap();
    std::fs::write(src.join("tree/f1"), &kept).unwrap();
    let took = converges(&src, &module, &[], &engine);
    let wire = relay.bytes.load(Ordering::SeqCst) - wire_before;
    eprintln!("copies of 34 MB converged after {took:?}, {wire} bytes on the wire");
    assert!(
        wire < 200_000,
        "{wire} bytes on the wire for copies\n{}",
        engine.log()
    );
    // Only the initial compare went through rsync: the 20 MB copy too was made on the target.
    assert_eq!(
        engine.log().matches("by rsync").count(),
        1,
        "{}",
        engine.log()
    );

    // The target's files are not what the source's are (changed there by hand): each copy is
    // refused by its digest (one from orig, then one from copy), and the content is sent.
    std::fs::write(module.join("orig"), testkit::noise(8 << 20, 4)).unwrap();
    std::fs::write(module.join("copy"), testkit::noise(8 << 20, 4)).unwrap();
    let wire_before = relay.bytes.load(Ordering::SeqCst);
    std::fs::copy(src.join("orig"), src.join("copy2")).unwrap();
    let t0 = Instant::now();
    while std::fs::read(module.join("copy2")).ok() != std::fs::read(src.join("copy2")).ok() {
        assert!(t0.elapsed() < Duration::from_secs(30), "{}", engine.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let wire = relay.bytes.load(Ordering::SeqCst) - wire_before;
    assert!(
        wire > 8 << 20,
        "{wire} bytes: copy2 was not sent\n{}",
        engine.log()
    );
    assert!(
        engine.log().contains("copies sent as content"),
        "{}",
        engine.log()
    );
    // Put right on the target by their next change.
    std::fs::write(src.join("orig"), testkit::noise(8 << 20, 5)).unwrap();
    std::fs::write(src.join("copy"), testkit::noise(8 << 20, 6)).unwrap();
    converges(&src, &module, &[], &engine);
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn a_path_the_target_cannot_write_is_sent_again_alone() {
    let d = StockDaemon::start_rtsync();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let url = format!("rsync://127.0.0.1:{}/open/", d.port);
    let told = t.path().join("told");
    let engine = start_telling(&t.path().join("state"), &src, &url, &told);
    let module = d.module_path("open");
    one_path_sent_again_alone(&src, &module, &engine, "failed on the target", &told);
    assert_eq!(engine.stop(), Some(0));
}

/// A TCP relay between the engine and the daemon whose connections the test can cut.
struct Relay {
    port: u16,
    /// Bytes relayed both ways.
    bytes: Arc<AtomicU64>,
    live: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(upstream: u16) -> Relay {
        Relay::delaying(upstream, Duration::ZERO)
    }

    /// A relay that holds what it carries for `delay` each way, as a long link does.
    fn delaying(upstream: u16, delay: Duration) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let bytes = Arc::new(AtomicU64::new(0));
        let (l, s, b) = (live.clone(), stop.clone(), bytes.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                l.lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let b = b.clone();
                    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
                    let mut out = to.try_clone().unwrap();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0
                                || tx
                                    .send((Instant::now() + delay, buf[..n].to_vec()))
                                    .is_err()
                            {
                                break;
                            }
                            b.fetch_add(n as u64, Ordering::SeqCst);
                        }
                        drop(tx);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                    std::thread::spawn(move || {
                        while let Ok((due, chunk)) = rx.recv() {
                            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                            if out.write_all(&chunk).is_err() {
                                break;
                            }
                        }
                        let _ = out.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay {
            port,
            bytes,
            live,
            stop,
        }
    }

    /// Cuts every connection through the relay, as a broken link would.
    fn cut(&self) -> usize {
        let mut live = self.live.lock().unwrap();
        for s in live.iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let n = live.len() / 2;
        live.clear();
        n
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
    }
}

/// One random change: create or rewrite a file, rename a file or a directory (sometimes over
/// an existing file), delete a file or a directory, make a directory.
fn churn_once(src: &Path, rng: &mut Rng, n: &mut u64) {
    let dirs: Vec<PathBuf> = std::iter::once(src.to_path_buf())
        .chain(
            walkdir(src)
                .into_iter()
                .filter(|p| p.is_dir() && !p.is_symlink()),
        )
        .collect();
    let files: Vec<PathBuf> = walkdir(src).into_iter().filter(|p| p.is_file()).collect();
    let pick = |rng: &mut Rng, v: &[PathBuf]| v[rng.below(v.len() as u64) as usize].clone();
    *n += 1;
    match rng.below(10) {
        0..=3 => {
            let dir = pick(rng, &dirs);
            // One in four of one size and three contents: copies of what the target holds
            // (made there on the stream), and rewrites at the same size (a copy tried from
            // the old version, missed).
            let content = if rng.below(4) == 0 {
                testkit::noise(70_000, rng.below(3))
            } else {
                testkit::noise(100 + rng.below(20_000) as usize, *n)
            };
            let _ = std::fs::write(dir.join(format!("f{n}")), content);
        }
        4 if !files.is_empty() => {
            let size = if rng.below(2) == 0 { 70_000 } else { 50 };
            let _ = std::fs::write(pick(rng, &files), testkit::noise(size, *n % 5));
        }
        5 if !files.is_empty() => {
            let to = pick(rng, &dirs).join(format!("r{n}"));
            let _ = std::fs::rename(pick(rng, &files), to);
        }
        6 if files.len() > 1 => {
            // Over an existing file: the atomic-replace pattern.
            let _ = std::fs::rename(pick(rng, &files), pick(rng, &files));
        }
        7 if dirs.len() > 1 => {
            let from = pick(rng, &dirs[1..]);
            let to = pick(rng, &dirs).join(format!("d{n}"));
            if !to.starts_with(&from) {
                let _ = std::fs::rename(from, to);
            }
        }
        8 if !files.is_empty() => {
            let _ = std::fs::remove_file(pick(rng, &files));
        }
        9 if dirs.len() > 4 => {
            let _ = std::fs::remove_dir_all(pick(rng, &dirs[1..]));
        }
        _ => {
            let _ = std::fs::create_dir(pick(rng, &dirs).join(format!("d{n}")));
        }
    }
}

/// No temporary file (a dot name) is left anywhere below `module`.
fn assert_no_temporary_files(module: &Path) {
    let stray: Vec<_> = walkdir(module)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    assert!(stray.is_empty(), "half-written files left: {stray:?}");
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.clone());
            if p.is_dir() && !p.is_symlink() {
                out.extend(walkdir(&p));
            }
        }
    }
    out
}

/// Over a long link one connection is not enough: the stream spreads over several, and
/// batches on different connections, applied concurrently, still leave the target as the
/// source, directory times included (a batch that set a directory's time over a newer one is
/// followed by the directory again).
#[test]
fn a_stream_over_several_connections_keeps_every_change_in_order() {
    let d = StockDaemon::start_rtsync();
    let relay = Relay::delaying(d.port, Duration::from_millis(25));
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    // Random changes below one directory, the steady load below another.
    let churned = src.join("churn");
    std::fs::create_dir_all(&churned).unwrap();
    let mut rng = Rng(0x5eed_0002);
    let mut n = 0;
    for _ in 0..100 {
        churn_once(&churned, &mut rng, &mut n);
    }
    let url = format!("rsync://127.0.0.1:{}/open/", relay.port);
    let engine = Engine::start(
        &t.path().join("state"),
        &["-v", "-n", "4", src.to_str().unwrap(), &url],
    );
    let module = d.module_path("open");
    converges(&src, &module, &[], &engine);
    for d in 0..20 {
        std::fs::create_dir_all(src.join(format!("load/s{d}"))).unwrap();
    }
    // New files in twenty directories, faster than one connection's acknowledgements come
    // back, with random creates, rewrites, renames and deletes among them.
    let t0 = Instant::now();
    for i in 0..3000u64 {
        let dir = src.join(format!("load/s{}", i % 20));
        std::fs::write(
            dir.join(format!("f{i}")),
            testkit::noise(2000 + (i as usize % 7) * 3000, i),
        )
        .unwrap();
        if i % 10 == 0 {
            churn_once(&churned, &mut rng, &mut n);
        }
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // A big file and, just after it, a small one beside it: the second goes on another
    // connection and lands first, the first then sets the directory's time as it was before
    // the second came.
    for k in 0..4 {
        let dir = src.join(format!("load/s{k}"));
        std::fs::write(dir.join("big"), testkit::noise(12 << 20, k)).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        std::fs::write(dir.join("small"), b"small").unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = converges(&src, &module, &[], &engine);
    let log = engine.log();
    let most = log
        .lines()
        .filter_map(|l| {
            l.split("stream open (")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    eprintln!(
        "3000 files and {n} other changes in {:?}; converged {took:?} after the last, over up to {most} connections",
        t0.elapsed()
    );
    assert!(
        most >= 2,
        "the stream never spread over more than one connection\n{log}"
    );
    assert_no_temporary_files(&module);
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn cut_connections_and_killed_daemons_lose_nothing_on_the_stream() {
    let rounds: u64 = std::env::var("STREAM_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut d = StockDaemon::start_rtsync();
    let relay = Relay::start(d.port);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut rng = Rng(0x5eed_0001);
    let mut n = 0;
    for _ in 0..200 {
        churn_once(&src, &mut rng, &mut n);
    }
    let url = format!("rsync://127.0.0.1:{}/open/", relay.port);
    let engine = Engine::start(
        &t.path().join("state"),
        &["-v", "--timeout=5", src.to_str().unwrap(), &url],
    );
    let module = d.module_path("open");
    converges(&src, &module, &[], &engine);
    let (mut cuts, mut kills) = (0, 0);
    for round in 0..rounds {
        // A burst of changes with a fault at a random moment inside it.
        let ops = 20 + rng.below(60);
        let fault_at = rng.below(ops);
        for i in 0..ops {
            churn_once(&src, &mut rng, &mut n);
            if i == fault_at {
                if round % 4 == 3 {
                    d.pause();
                    kills += 1;
                    std::thread::sleep(Duration::from_millis(rng.below(300)));
                    d.resume();
                } else {
                    cuts += relay.cut();
                }
            }
            std::thread::sleep(Duration::from_millis(rng.below(8)));
        }
    }
    let took = converges(&src, &module, &[], &engine);
    assert_no_temporary_files(&module);
    let log = engine.log();
    let streamed = log.matches("on the stream").count();
    let by_rsync = log.matches("by rsync").count();
    let opened = log.matches("stream open").count();
    eprintln!(
        "{rounds} rounds, {cuts} connection(s) cut, {kills} daemon kill(s), {n} operations: \
         converged {took:?} after the last; {streamed} batches on the stream ({opened} \
         connections), {by_rsync} by rsync"
    );
    // The faults must have hit the stream, not only rsync's transfers.
    assert!(opened > rounds as usize / 2 && streamed > by_rsync, "{log}");
    assert_eq!(engine.stop(), Some(0));
}
