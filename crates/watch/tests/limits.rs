//! Kernel limits forced low (root only): queue overflow becomes a rescan, and the watch limit
//! is an error that says what to raise. Each test restores the setting it changed; they live in
//! their own test binary so that no other watcher runs while a limit is low.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use watch::{FsEvent, InotifyWatcher, Pairer, WatchError, WatchOptions, mask};

/// Sets a `/proc/sys/fs/inotify` value for the life of the guard.
struct Sysctl {
    name: &'static str,
    old: String,
}

impl Sysctl {
    fn set(name: &'static str, value: u64) -> Option<Sysctl> {
        let path = format!("/proc/sys/fs/inotify/{name}");
        let old = fs::read_to_string(&path).ok()?;
        fs::write(&path, value.to_string()).ok()?;
        Some(Sysctl { name, old })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = fs::write(
            format!("/proc/sys/fs/inotify/{}", self.name),
            self.old.trim(),
        );
    }
}

fn privileged() -> bool {
    let ok = rustix::process::geteuid().is_root()
        && fs::metadata("/proc/sys/fs/inotify/max_queued_events").is_ok();
    if !ok {
        eprintln!("skipping: needs root to change fs.inotify limits");
    }
    ok
}

#[test]
fn limits_forced_low() {
    if !privileged() {
        return;
    }
    overflow_becomes_a_rescan();
    watch_limit_is_explained();
}

fn overflow_becomes_a_rescan() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let mut w = {
        let _guard = Sysctl::set("max_queued_events", 16).expect("set max_queued_events");
        // The queue size is fixed when the instance is created.
        let mut w = InotifyWatcher::new(WatchOptions {
            events: mask::ALL,
            ..WatchOptions::default()
        })
        .unwrap();
        w.add(root).unwrap();
        w
    };
    for i in 0..200 {
        fs::write(root.join(format!("f{i}")), b"x").unwrap();
    }
    fs::create_dir(root.join("made-during-overflow")).unwrap();
    let mut pairer = Pairer::new();
    let mut rescans = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(ev) = w.next_event(Some(Duration::from_millis(300))).unwrap() {
        for e in pairer.push(&ev, Instant::now()) {
            if e == (FsEvent::Rescan {
                path: root.to_path_buf(),
            }) {
                rescans += 1;
            }
        }
        assert!(Instant::now() < deadline);
    }
    assert!(rescans >= 1, "no rescan after overflow");
    // Directories made while events were lost are watched after the rescan.
    fs::write(root.join("made-during-overflow/f"), b"").unwrap();
    let ev = w
        .next_event(Some(Duration::from_secs(2)))
        .unwrap()
        .expect("event in the new directory");
    assert!(ev.watch.ends_with("made-during-overflow"), "{ev:?}");
}

fn watch_limit_is_explained() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    for d in ["a", "b", "c"] {
        fs::create_dir(root.join(d)).unwrap();
    }
    let err = {
        let _guard = Sysctl::set("max_user_watches", 1).expect("set max_user_watches");
        let mut w = InotifyWatcher::new(WatchOptions::default()).unwrap();
        w.add(Path::new(root)).unwrap_err()
    };
    assert!(matches!(err, WatchError::TooManyWatches { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("fs.inotify.max_user_watches is 1"), "{text}");
    assert!(
        text.contains("the watched trees hold 4 directories"),
        "{text}"
    );
    assert!(
        text.contains("sysctl -w fs.inotify.max_user_watches="),
        "{text}"
    );
}
