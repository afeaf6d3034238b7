//! The fanotify backend against the real kernel (root only; skips with a message elsewhere).

use std::fs;
use std::time::{Duration, Instant};

use watch::{FanotifyWatcher, FsEvent, Pairer, WatchOptions, mask};

#[test]
fn fanotify_reports_changes_below_the_tree_only() {
    let t = tempfile::tempdir().unwrap();
    let (root, outside) = (t.path().join("w"), t.path().join("outside"));
    fs::create_dir_all(root.join("old")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let events =
        mask::CREATE | mask::DELETE | mask::CLOSE_WRITE | mask::MOVE | mask::ATTRIB | mask::MODIFY;
    let mut w = match FanotifyWatcher::new(WatchOptions {
        events,
        ..WatchOptions::default()
    }) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("skipping: {e}");
            return;
        }
    };
    w.add(&root).unwrap();
    fs::write(root.join("f"), b"x").unwrap();
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::write(root.join("a/b/c/deep"), b"y").unwrap();
    fs::rename(root.join("old"), root.join("new")).unwrap();
    fs::write(root.join("new/inside"), b"z").unwrap();
    fs::write(outside.join("not-ours"), b"q").unwrap();
    fs::remove_file(root.join("f")).unwrap();

    let mut pairer = Pairer::new();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(ev) = w.next_event(Some(Duration::from_millis(300))).unwrap() {
        got.extend(pairer.push(&ev, Instant::now()));
        assert!(Instant::now() < deadline);
    }
    let has = |e: FsEvent| got.contains(&e);
    assert!(
        has(FsEvent::Created {
            path: root.join("f"),
            is_dir: false
        }),
        "{got:#?}"
    );
    assert!(
        has(FsEvent::ClosedWrite {
            path: root.join("f")
        }),
        "{got:#?}"
    );
    assert!(
        has(FsEvent::Created {
            path: root.join("a/b/c"),
            is_dir: true
        }),
        "{got:#?}"
    );
    assert!(
        has(FsEvent::Created {
            path: root.join("a/b/c/deep"),
            is_dir: false
        }),
        "{got:#?}"
    );
    assert!(
        has(FsEvent::Renamed {
            from: root.join("old"),
            to: root.join("new"),
            is_dir: true
        }),
        "{got:#?}"
    );
    assert!(
        has(FsEvent::ClosedWrite {
            path: root.join("new/inside")
        }),
        "{got:#?}"
    );
    assert!(
        has(FsEvent::Deleted {
            path: root.join("f"),
            is_dir: false
        }),
        "{got:#?}"
    );
    assert!(
        !got.iter().any(|e| e.path().starts_with(&outside)),
        "{got:#?}"
    );
}
