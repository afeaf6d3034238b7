//! `--bwlimit`: what each side sends is held to the rate, as rsync holds it — our client
//! pushing to and pulling from a stock daemon (which is asked to hold itself to it), and stock
//! rsync pulling from `rtsync daemon`; a bad rate gets rsync's message.

mod common;

use std::time::{Duration, Instant};

use common::daemon::StockDaemon;
use common::engine::{Engine, converges};
use common::{have_rsync, rsync, rtsync};

/// 1 MiB of incompressible data at 512 KiB/s: about 2 s (less a burst of the first writes).
const SIZE: usize = 1 << 20;
const RATE: &str = "--bwlimit=512";
const AT_LEAST: Duration = Duration::from_millis(1500);

fn timed(f: impl FnOnce() -> std::process::Output) -> Duration {
    let t0 = Instant::now();
    let out = f();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t0.elapsed()
}

#[test]
fn our_client_holds_to_the_rate_both_ways_against_a_stock_daemon() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("big"), testkit::noise(SIZE, 1)).unwrap();
    let url = format!("rsync://127.0.0.1:{}/open/", d.port);
    let push = timed(|| rtsync(["sync", "-a", RATE, &format!("{}/", src.display()), &url]));
    assert!(push >= AT_LEAST, "push took {push:?}");
    assert_eq!(
        std::fs::read(d.module_path("open").join("big")).unwrap(),
        std::fs::read(src.join("big")).unwrap()
    );
    let back = t.path().join("back");
    let pull = timed(|| rtsync(["sync", "-a", RATE, &url, back.to_str().unwrap()]));
    assert!(pull >= AT_LEAST, "pull took {pull:?}");
    assert_eq!(
        std::fs::read(back.join("big")).unwrap(),
        std::fs::read(src.join("big")).unwrap()
    );
    // No limit: well under the limited times.
    std::fs::remove_dir_all(&back).unwrap();
    let free = timed(|| rtsync(["sync", "-a", &url, back.to_str().unwrap()]));
    assert!(free < AT_LEAST, "unlimited pull took {free:?}");
}

#[test]
fn rtsync_daemon_holds_a_stock_pull_to_the_rate_it_asks() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    std::fs::write(d.module_path("open").join("big"), testkit::noise(SIZE, 2)).unwrap();
    let t = tempfile::tempdir().unwrap();
    let url = format!("rsync://127.0.0.1:{}/open/", d.port);
    let back = t.path().join("back");
    let pull = timed(|| rsync(["-a", RATE, &url, back.to_str().unwrap()]));
    assert!(pull >= AT_LEAST, "stock pull took {pull:?}");
    assert_eq!(
        std::fs::read(back.join("big")).unwrap(),
        std::fs::read(d.module_path("open").join("big")).unwrap()
    );
}

#[test]
fn rtsync_run_holds_to_the_rate_and_a_long_transfer_that_moves_is_not_killed() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // 2 MiB at 256 KiB/s: about 8 s, twice the 4 s a transfer may stay silent with
    // --timeout=1; it is not silent, so it must not be killed half-way.
    std::fs::write(src.join("big"), testkit::noise(2 * SIZE, 3)).unwrap();
    let url = format!("rsync://127.0.0.1:{}/open/", d.port);
    let t0 = Instant::now();
    let engine = Engine::start(
        &t.path().join("state"),
        &["--timeout=1", "--bwlimit=256", src.to_str().unwrap(), &url],
    );
    converges(&src, &d.module_path("open"), &[], &engine);
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(6), "{took:?}");
    assert!(
        !engine.log().contains("transfer stopped"),
        "{}",
        engine.log()
    );
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn a_bad_rate_gets_rsyncs_message() {
    let out = rtsync(["sync", "--bwlimit=100b", "a", "b"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--bwlimit=100b is too small"), "{err}");
}
