//! The periodic compare (sersync's crontab): it puts right what no event reports (a file
//! deleted on the target by hand), and skips what `resync_exclude` names (crontabfilter).

mod common;

use std::time::{Duration, Instant};

use common::engine::Engine;

#[test]
fn the_periodic_compare_repairs_the_target_but_skips_its_own_excludes() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    for d in ["keep", "skipped"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::create_dir(&dst).unwrap();
    std::fs::write(src.join("keep/a"), b"a").unwrap();
    std::fs::write(src.join("skipped/b"), b"b").unwrap();
    let file = t.path().join("rtsync.toml");
    std::fs::write(
        &file,
        format!(
            "source = {:?}\nstate_dir = {:?}\nresync_interval = 2\nresync_cron = \"0 3 * * *\"\n\
             resync_exclude = [\"/skipped/\"]\n[[target]]\ndest = {:?}\n",
            src.display().to_string(),
            t.path().join("state").display().to_string(),
            format!("{}/", dst.display())
        ),
    )
    .unwrap();
    let engine = Engine::start(
        &t.path().join("state"),
        &["--config", file.to_str().unwrap()],
    );
    // The initial sync compares everything, excludes of the periodic compare or not.
    let t0 = Instant::now();
    while !(dst.join("keep/a").exists() && dst.join("skipped/b").exists()) {
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", engine.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Changed on the target behind rtsync's back: only a compare can tell.
    std::fs::remove_file(dst.join("keep/a")).unwrap();
    std::fs::remove_file(dst.join("skipped/b")).unwrap();
    let t0 = Instant::now();
    while !dst.join("keep/a").exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", engine.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Two more periodic compares: skipped/ stays as the target has it.
    std::thread::sleep(Duration::from_secs(5));
    assert!(!dst.join("skipped/b").exists(), "{}", engine.log());
    assert_eq!(engine.stop(), Some(0));
}
