//! A path a stock rsync daemon cannot write (rsync's exit 23) is sent again alone, read from
//! rsync's error lines; the rest of its batch counts as delivered and is not sent again.

mod common;

use std::time::Duration;

use common::daemon::StockDaemon;
use common::engine::{Engine, converges, one_path_sent_again_alone, start_telling};
use common::have_rsync;

#[test]
fn a_path_a_stock_daemon_cannot_write_is_sent_again_alone() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let url = format!("rsync://127.0.0.1:{}/open/", d.port);
    let told = t.path().join("told");
    let engine = start_telling(&t.path().join("state"), &src, &url, &told);
    let module = d.module_path("open");
    one_path_sent_again_alone(&src, &module, &engine, "exit 23", &told);
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
    // Several transfers ran beside each other, and their file lists were cleared away.
    assert!(
        engine.log().contains("path(s) go as 4 transfers at once"),
        "{}",
        engine.log()
    );
    let lists = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("batch-"))
        .count();
    assert_eq!(lists, 0, "file lists left behind");
    assert!(engine.log().contains("3000 sent"), "{}", engine.log());
    assert_eq!(engine.stop(), Some(0));
}
