//! The inotify backend against the real kernel, in temporary directories.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use watch::{FsEvent, InotifyWatcher, Pairer, RawEvent, WatchOptions, mask};

fn watcher(root: &Path, events: u32) -> InotifyWatcher {
    let mut w = InotifyWatcher::new(WatchOptions {
        events,
        ..WatchOptions::default()
    })
    .unwrap();
    w.add(root).unwrap();
    w
}

/// Every raw event until none arrives for `quiet`.
fn drain(w: &mut InotifyWatcher, quiet: Duration) -> Vec<RawEvent> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(ev) = w.next_event(Some(quiet)).unwrap() {
        out.push(ev);
        assert!(Instant::now() < deadline, "events kept coming for 30 s");
    }
    out
}

fn lines(events: &[RawEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e.watch.display(),
                mask::names(e.mask).join(","),
                String::from_utf8_lossy(&e.name)
            )
        })
        .collect()
}

fn semantic(events: &[RawEvent]) -> Vec<FsEvent> {
    let mut p = Pairer::new();
    let now = Instant::now();
    let mut out: Vec<FsEvent> = events.iter().flat_map(|e| p.push(e, now)).collect();
    out.extend(p.expire(now + Duration::from_secs(1)));
    out
}

#[test]
fn every_event_kind_is_reported() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::create_dir(root.join("d")).unwrap();
    let mut w = watcher(root, mask::ALL);
    fs::write(root.join("f"), b"data").unwrap();
    let _ = fs::read(root.join("f")).unwrap();
    fs::set_permissions(
        root.join("f"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    fs::rename(root.join("f"), root.join("g")).unwrap();
    fs::create_dir(root.join("e")).unwrap();
    fs::remove_file(root.join("g")).unwrap();
    fs::remove_dir(root.join("d")).unwrap();
    let got = lines(&drain(&mut w, Duration::from_millis(200)));
    let r = format!("{}/", root.display());
    // Setting up reads nothing that shows: the first event is the first change.
    assert_eq!(got.first(), Some(&format!("{r} CREATE f")), "{got:#?}");
    for want in [
        format!("{r} CREATE f"),
        format!("{r} OPEN f"),
        format!("{r} MODIFY f"),
        format!("{r} CLOSE_WRITE,CLOSE f"),
        format!("{r} ACCESS f"),
        format!("{r} CLOSE_NOWRITE,CLOSE f"),
        format!("{r} ATTRIB f"),
        format!("{r} MOVED_FROM f"),
        format!("{r} MOVED_TO g"),
        format!("{r} CREATE,ISDIR e"),
        format!("{r} DELETE g"),
        format!("{r} DELETE,ISDIR d"),
        format!("{r}d/ DELETE_SELF "),
    ] {
        assert!(got.contains(&want), "missing {want:?} in {got:#?}");
    }
}

#[test]
fn mkdir_p_and_touch_in_one_go_are_reported_completely() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let mut w = watcher(root, mask::CREATE | mask::CLOSE_WRITE);
    // No pause between the steps: the watches for a, b, c cannot exist before their contents.
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::write(root.join("a/b/c/f"), b"x").unwrap();
    let events = drain(&mut w, Duration::from_millis(300));
    let created: HashSet<PathBuf> = semantic(&events)
        .into_iter()
        .filter_map(|e| match e {
            FsEvent::Created { path, .. } => Some(path),
            _ => None,
        })
        .collect();
    for p in ["a", "a/b", "a/b/c", "a/b/c/f"] {
        assert!(
            created.contains(&root.join(p)),
            "{p} not reported: {:#?}",
            lines(&events)
        );
    }
    // And the new directories are watched from now on.
    fs::write(root.join("a/b/c/later"), b"y").unwrap();
    let later = lines(&drain(&mut w, Duration::from_millis(200)));
    assert!(
        later.contains(&format!("{}/a/b/c/ CREATE later", root.display())),
        "{later:#?}"
    );
}

#[test]
fn a_renamed_directory_reports_new_paths_below_it() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::create_dir_all(root.join("old/sub")).unwrap();
    for i in 0..5000 {
        fs::write(root.join(format!("old/f{i}")), b"").unwrap();
    }
    let mut w = watcher(root, mask::ALL);
    fs::rename(root.join("old"), root.join("new")).unwrap();
    fs::write(root.join("new/f1"), b"changed").unwrap();
    fs::write(root.join("new/sub/deep"), b"new").unwrap();
    let events = drain(&mut w, Duration::from_millis(300));
    let sem = semantic(&events);
    assert!(
        sem.contains(&FsEvent::Renamed {
            from: root.join("old"),
            to: root.join("new"),
            is_dir: true
        }),
        "{sem:#?}"
    );
    assert!(
        sem.contains(&FsEvent::ClosedWrite {
            path: root.join("new/f1")
        }),
        "{sem:#?}"
    );
    assert!(
        sem.contains(&FsEvent::Created {
            path: root.join("new/sub/deep"),
            is_dir: false
        }),
        "{sem:#?}"
    );
    assert!(
        !sem.iter().any(|e| e.path().starts_with(root.join("old"))),
        "stale path in {sem:#?}"
    );
}

#[test]
fn a_directory_moved_out_is_deleted_and_one_moved_in_is_watched() {
    let t = tempfile::tempdir().unwrap();
    let (root, outside) = (t.path().join("w"), t.path().join("outside"));
    fs::create_dir_all(root.join("leaving")).unwrap();
    fs::create_dir_all(outside.join("arriving/inner")).unwrap();
    let mut w = watcher(&root, mask::ALL);
    fs::rename(root.join("leaving"), t.path().join("gone")).unwrap();
    fs::rename(outside.join("arriving"), root.join("arrived")).unwrap();
    let events = drain(&mut w, Duration::from_millis(300));
    let sem = semantic(&events);
    assert!(
        sem.contains(&FsEvent::Deleted {
            path: root.join("leaving"),
            is_dir: true
        }),
        "{sem:#?}"
    );
    assert!(
        sem.contains(&FsEvent::Created {
            path: root.join("arrived"),
            is_dir: true
        }),
        "{sem:#?}"
    );
    fs::write(root.join("arrived/inner/x"), b"").unwrap();
    // Events below the directory that left no longer arrive.
    fs::write(t.path().join("gone/y"), b"").unwrap();
    let after = semantic(&drain(&mut w, Duration::from_millis(200)));
    assert!(
        after.contains(&FsEvent::Created {
            path: root.join("arrived/inner/x"),
            is_dir: false
        }),
        "{after:#?}"
    );
    assert!(!after.iter().any(|e| e.path().ends_with("y")), "{after:#?}");
}

#[test]
fn excluded_directories_get_no_watch() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::create_dir_all(root.join("keep/a")).unwrap();
    fs::create_dir_all(root.join("cache/a/b")).unwrap();
    let mut sel = watch::Selector::new();
    sel.exclude_regex("/cache", false).unwrap();
    let mut w = InotifyWatcher::new(WatchOptions {
        selector: sel,
        ..WatchOptions::default()
    })
    .unwrap();
    w.add(root).unwrap();
    assert_eq!(w.watch_count(), 3, "root, keep, keep/a");
    fs::write(root.join("cache/a/f"), b"").unwrap();
    fs::write(root.join("keep/a/f"), b"").unwrap();
    let got = lines(&drain(&mut w, Duration::from_millis(200)));
    assert!(got.iter().all(|l| !l.contains("cache")), "{got:#?}");
    assert!(
        got.iter().any(|l| l.contains("keep/a/ CREATE f")),
        "{got:#?}"
    );
}

#[test]
fn a_missing_path_is_an_error_in_inotifywaits_words() {
    let mut w = InotifyWatcher::new(WatchOptions::default()).unwrap();
    let err = w.add(Path::new("/nonexistent/rtsync-test")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Couldn't watch /nonexistent/rtsync-test: No such file or directory"
    );
}
