//! Stock `rsync` clients against `rtsync daemon` at size: a 1 GiB file with 1 MiB changed
//! crosses the wire as little more than 1 MiB each way (the stock client's own `--stats`
//! witness it), and 100,000 files go each way without a deadlock.

mod common;

use std::fs;

use common::daemon::StockDaemon;
use common::{have_rsync, noise_file, ok, rsync, slash, stat, write_at};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

#[test]
fn one_mib_changed_in_one_gib_crosses_as_about_one_mib_each_way() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let big = src.join("big");
    noise_file(&big, GIB / MIB, 7);
    ok(&rsync([
        "-a",
        "--timeout=120",
        &slash(&src),
        &d.url("open/"),
    ]));

    // Push: the stock sender matches against the daemon's signature.
    write_at(&big, GIB / 2, &testkit::noise(MIB as usize, 31_337));
    testkit::set_mtime(&big, 1_700_000_100, 0);
    let out = ok(&rsync([
        "-a",
        "--stats",
        "--timeout=120",
        &slash(&src),
        &d.url("open/"),
    ]));
    let literal = stat(&out, "Literal data:");
    assert!((MIB..=MIB + 64 * 1024).contains(&literal), "{out}");
    assert!(stat(&out, "Total bytes sent:") < MIB + 512 * 1024, "{out}");
    testkit::assert_same_tree_below(&src, &d.module_path("open"), true);

    // Pull: the daemon sends a delta against the stock generator's signature.
    let back = t.path().join("back");
    fs::create_dir(&back).unwrap();
    fs::copy(&big, back.join("big")).unwrap();
    testkit::set_mtime(&back.join("big"), 1_700_000_100, 0);
    let module_big = d.module_path("open").join("big");
    write_at(&module_big, GIB / 4, &testkit::noise(MIB as usize, 4_242));
    testkit::set_mtime(&module_big, 1_700_000_200, 0);
    let out = ok(&rsync([
        "-a",
        "--stats",
        "--timeout=120",
        &d.url("open/"),
        &slash(&back),
    ]));
    let literal = stat(&out, "Literal data:");
    assert!((MIB..=MIB + 64 * 1024).contains(&literal), "{out}");
    assert!(
        stat(&out, "Total bytes received:") < MIB + 512 * 1024,
        "{out}"
    );
    testkit::assert_same_tree_below(&d.module_path("open"), &back, true);
}

#[test]
fn a_hundred_thousand_files_each_way_without_deadlock() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    for dir in 0..100 {
        let dir_path = src.join(format!("d{dir:03}"));
        fs::create_dir_all(&dir_path).unwrap();
        for f in 0..1000 {
            fs::write(dir_path.join(format!("f{f:04}")), format!("{dir}/{f}")).unwrap();
        }
    }
    let timed = |args: [&str; 4]| {
        let started = std::time::Instant::now();
        ok(&rsync(args));
        started.elapsed()
    };
    let push = timed(["-a", "--timeout=120", &slash(&src), &d.url("open/")]);
    testkit::assert_same_tree_below(&src, &d.module_path("open"), true);
    let again = timed(["-a", "--timeout=120", &slash(&src), &d.url("open/")]);
    let back = t.path().join("back");
    let pull = timed(["-a", "--timeout=120", &d.url("open/"), &slash(&back)]);
    testkit::assert_same_tree_below(&src, &back, true);
    eprintln!(
        "100k files into rtsync daemon: push {push:?}, unchanged push {again:?}, pull {pull:?}"
    );
}
