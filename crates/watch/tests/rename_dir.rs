//! A directory renamed inside the watched tree is one rename, however much it holds: the
//! watcher moves its watches and reports nothing of its contents, so the engine can send it to
//! a target that renames as one operation.

use std::fs;
use std::time::{Duration, Instant};

use watch::{FsEvent, InotifyWatcher, Pairer, WatchOptions, mask};

#[test]
fn mv_of_a_directory_of_thousands_of_files_is_one_rename_and_no_creations() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::create_dir_all(root.join("dir1/sub/deeper")).unwrap();
    for i in 0..3000 {
        fs::write(root.join(format!("dir1/f{i}")), b"x").unwrap();
    }
    for i in 0..500 {
        fs::write(root.join(format!("dir1/sub/deeper/g{i}")), b"y").unwrap();
    }
    let mut w = InotifyWatcher::new(WatchOptions {
        events: mask::ALL,
        ..WatchOptions::default()
    })
    .unwrap();
    w.add(root).unwrap();
    fs::rename(root.join("dir1"), root.join("dir2")).unwrap();

    let started = Instant::now();
    let mut raw = Vec::new();
    while let Some(ev) = w.next_event(Some(Duration::from_millis(300))).unwrap() {
        raw.push(ev);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "events kept coming: {} so far",
            raw.len()
        );
    }
    assert!(
        !raw.iter().any(|e| e.synthetic),
        "synthetic events for a moved directory: {raw:#?}"
    );
    let mut p = Pairer::new();
    let now = Instant::now();
    let mut sem: Vec<FsEvent> = raw.iter().flat_map(|e| p.push(e, now)).collect();
    sem.extend(p.expire(now + Duration::from_secs(1)));
    assert_eq!(
        sem,
        [FsEvent::Renamed {
            from: root.join("dir1"),
            to: root.join("dir2"),
            is_dir: true
        }],
        "raw: {raw:#?}"
    );

    // The watches moved with it: a change below reports the new path.
    fs::write(root.join("dir2/sub/deeper/g7"), b"changed").unwrap();
    let mut after = Vec::new();
    while let Some(ev) = w.next_event(Some(Duration::from_millis(300))).unwrap() {
        after.extend(p.push(&ev, Instant::now()));
        assert!(started.elapsed() < Duration::from_secs(40));
    }
    assert!(
        after.contains(&FsEvent::ClosedWrite {
            path: root.join("dir2/sub/deeper/g7")
        }),
        "{after:#?}"
    );
}
