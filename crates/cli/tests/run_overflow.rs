//! `rtsync run` when the kernel's event queue overflows (root only: the queue is made tiny with
//! `fs.inotify.max_queued_events` while the engine starts, then restored). Lost events become a
//! full comparison, never a lost change. In its own test binary, so no other watcher starts
//! while the limit is low.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::engine::{Engine, converges};

#[test]
fn an_overflowed_event_queue_still_converges() {
    let path = "/proc/sys/fs/inotify/max_queued_events";
    let Ok(old) = fs::read_to_string(path) else {
        eprintln!("skipping: no {path}");
        return;
    };
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: needs root to change fs.inotify.max_queued_events");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir(&src).unwrap();
    let engine = {
        fs::write(path, "16").unwrap();
        let engine = Engine::start(
            &t.path().join("state"),
            &["-v", src.to_str().unwrap(), dst.to_str().unwrap()],
        );
        // The queue size is fixed when the engine creates its inotify instance.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !engine.log().contains("watching") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        fs::write(path, old.trim()).unwrap();
        engine
    };
    converges(&src, &dst, &[], &engine);
    // Far more events than 16 at once, in new and old directories.
    for d in 0..20 {
        let dir = src.join(format!("d{d}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..50 {
            fs::write(dir.join(format!("f{f}")), format!("{d}/{f}")).unwrap();
        }
    }
    for f in 0..300 {
        fs::write(src.join(format!("top{f}")), b"x").unwrap();
    }
    converges(&src, &dst, &[], &engine);
    assert_eq!(engine.stop(), Some(0));
}
