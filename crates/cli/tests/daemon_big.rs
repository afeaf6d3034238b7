//! Large files against a stock `rsync --daemon`, witnessed by the daemon's own transfer log:
//! a 1 GiB file with 1 MiB changed crosses the wire as little more than 1 MiB each way, and a
//! sparse file over 4 GiB (offsets and block indexes past 32 bits) survives a push, an edit
//! near its end and a pull with `-S`, byte for byte and still sparse at both ends.

mod common;

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;

use common::daemon::StockDaemon;
use common::{have_rsync, noise_file, ok, rtsync, slash, stat, write_at};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The wire bytes the daemon logged for its last transfer of `name` in direction `op`.
fn logged_bytes(d: &StockDaemon, op: &str, name: &str) -> (u64, u64) {
    let (_, _, len, bytes) = d
        .transfers()
        .into_iter()
        .rev()
        .find(|(o, n, _, _)| o == op && n.ends_with(name))
        .unwrap_or_else(|| {
            panic!(
                "no '{op} {name}' line in the daemon log:\n{:?}",
                std::fs::read_to_string(d.dir.path().join("rsyncd.log"))
            )
        });
    (len, bytes)
}

#[test]
fn one_mib_changed_in_one_gib_crosses_the_wire_as_about_one_mib_each_way() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let big = src.join("big");
    noise_file(&big, GIB / MIB, 1);
    ok(&rtsync([
        "sync",
        "-a",
        "--timeout=120",
        &slash(&src),
        &d.url("open/"),
    ]));
    assert_eq!(logged_bytes(&d, "recv", "big").0, GIB);

    // Push: 1 MiB changed in the middle on our side.
    write_at(&big, GIB / 2, &testkit::noise(MIB as usize, 424_242));
    testkit::set_mtime(&big, 1_700_000_100, 0);
    let out = ok(&rtsync([
        "sync",
        "-a",
        "--stats",
        "--timeout=120",
        &slash(&src),
        &d.url("open/"),
    ]));
    let literal = stat(&out, "Literal data:");
    assert!((MIB..=MIB + 64 * 1024).contains(&literal), "{out}");
    let (len, wire) = logged_bytes(&d, "recv", "big");
    assert_eq!(len, GIB);
    assert!(
        (MIB..=MIB + 256 * 1024).contains(&wire),
        "daemon logged {wire} bytes received"
    );
    // The daemon checked the whole-file sum as it wrote; the content agrees here too.
    testkit::assert_same_tree_below(&src, &d.module_path("open"), true);

    // Pull: 1 MiB changed elsewhere on the daemon's side; our generator offers the old version.
    let back = t.path().join("back");
    fs::create_dir(&back).unwrap();
    fs::copy(&big, back.join("big")).unwrap();
    testkit::set_mtime(&back.join("big"), 1_700_000_100, 0);
    let module_big = d.module_path("open").join("big");
    write_at(&module_big, GIB / 4, &testkit::noise(MIB as usize, 900_001));
    testkit::set_mtime(&module_big, 1_700_000_200, 0);
    ok(&rtsync([
        "sync",
        "-a",
        "--timeout=120",
        &d.url("open/"),
        &slash(&back),
    ]));
    let (len, wire) = logged_bytes(&d, "send", "big");
    assert_eq!(len, GIB);
    assert!(
        (MIB..=MIB + 256 * 1024).contains(&wire),
        "daemon logged {wire} bytes sent"
    );
    testkit::assert_same_tree_below(&d.module_path("open"), &back, true);
}

#[test]
fn a_sparse_file_over_four_gib_pushes_edits_and_pulls_intact() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let huge = src.join("huge.sparse");
    let size = 4 * GIB + 123_457;
    File::create(&huge).unwrap().set_len(size).unwrap();
    // Data at the start, across the 2 GiB and 4 GiB boundaries, and in the last block.
    for (offset, seed) in [
        (0, 1),
        (2 * GIB - 500, 2),
        (4 * GIB - 700, 3),
        (size - 1000, 4),
    ] {
        write_at(&huge, offset, &testkit::noise(1000, seed));
    }
    testkit::set_mtime(&huge, 1_700_000_000, 0);
    ok(&rtsync([
        "sync",
        "-aS",
        "--timeout=300",
        &slash(&src),
        &d.url("push/"),
    ]));
    assert_eq!(logged_bytes(&d, "recv", "huge.sparse").0, size);
    testkit::assert_same_tree_below(&src, &d.module_path("push"), true);

    // An edit past 4 GiB: only blocks there change, so their indexes and offsets must be right.
    write_at(&huge, 4 * GIB + 10_000, &testkit::noise(5000, 5));
    testkit::set_mtime(&huge, 1_700_000_100, 0);
    let out = ok(&rtsync([
        "sync",
        "-aS",
        "--stats",
        "--timeout=300",
        &slash(&src),
        &d.url("push/"),
    ]));
    assert!(stat(&out, "Literal data:") < 2 * MIB, "{out}");
    testkit::assert_same_tree_below(&src, &d.module_path("push"), true);

    let back = t.path().join("back");
    ok(&rtsync([
        "sync",
        "-aS",
        "--timeout=300",
        &d.url("push/"),
        &slash(&back),
    ]));
    testkit::assert_same_tree_below(&src, &back, true);
    // `-S` both ways: the daemon and our receiver left the zeros as holes.
    for copy in [d.module_path("push"), back] {
        let used = fs::metadata(copy.join("huge.sparse")).unwrap().blocks() * 512;
        assert!(used < 64 * MIB, "{copy:?} takes {used} bytes on disk");
    }
}
