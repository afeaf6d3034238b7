//! A path a stock rsync daemon cannot write (rsync's exit 23) is sent again alone, read from
//! rsync's error lines; the rest of its batch counts as delivered and is not sent again.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use common::Immutable;
use common::daemon::StockDaemon;
use common::engine::{Engine, converges};
use common::have_rsync;

#[test]
fn a_path_a_stock_daemon_cannot_write_is_sent_again_alone() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("locked")).unwrap();
    std::fs::create_dir_all(src.join("free")).unwrap();
    let url = format!("rsync://127.0.0.1:{}/open/", d.port);
    let engine = Engine::start(
        &t.path().join("state"),
        &["-v", src.to_str().unwrap(), &url],
    );
    let module = d.module_path("open");
    converges(&src, &module, &[], &engine);
    let Some(lock) = Immutable::set(&module.join("locked")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chattr +i is needed in CI"
        );
        eprintln!("skipped: chattr +i does not work here");
        return;
    };
    std::fs::write(src.join("locked/a"), b"cannot land yet").unwrap();
    std::fs::write(src.join("free/b"), b"lands").unwrap();
    let t0 = Instant::now();
    while !module.join("free/b").exists() || !engine.log().contains("exit 23") {
        assert!(t0.elapsed() < Duration::from_secs(30), "{}", engine.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let ino = std::fs::metadata(module.join("free/b")).unwrap().ino();
    std::thread::sleep(Duration::from_secs(3));
    let log = engine.log();
    assert!(log.contains("attempt 3"), "{log}");
    // free/b was not sent again (rsync would have made a new file), and each retry sent one.
    assert_eq!(
        std::fs::metadata(module.join("free/b")).unwrap().ino(),
        ino,
        "{log}"
    );
    let retries = &log[log.find("exit 23").unwrap()..];
    assert!(!retries.contains("2 sent"), "{log}");
    assert!(!module.join("locked/a").exists());
    drop(lock);
    converges(&src, &module, &[], &engine);
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn a_big_batch_to_a_stock_daemon_goes_as_several_transfers_at_once() {
    if !have_rsync() {
        return;
    }
    let mut d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for dir in 0..30 {
        std::fs::create_dir(src.join(format!("d{dir}"))).unwrap();
    }
    let state = t.path().join("state");
    let url = format!("rsync://127.0.0.1:{}/open/", d.port);
    let engine = Engine::start(&state, &["-v", "-n", "4", src.to_str().unwrap(), &url]);
    let module = d.module_path("open");
    converges(&src, &module, &[], &engine);
    // The target is down while 3,000 files in 30 directories are written: the failed batches
    // gather into one, sent once it is back.
    d.pause();
    for i in 0..3000 {
        std::fs::write(src.join(format!("d{}/f{i}", i % 30)), i.to_string()).unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    d.resume();
    converges(&src, &module, &[], &engine);
    // The batch's file lists: one per transfer that ran beside the others.
    let lists = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("batch-"))
        .count();
    assert!(lists >= 2, "{lists} transfer(s)\n{}", engine.log());
    assert!(engine.log().contains("3000 sent"), "{}", engine.log());
    assert_eq!(engine.stop(), Some(0));
}
