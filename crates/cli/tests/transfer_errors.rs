//! A file the receiving end cannot write (its disk is full) makes the pushing client exit 23
//! ("some files/attrs were not transferred"), whichever side is stock rsync. Found by the
//! proving ground: `rtsync sync` printed the daemon's errors and exited 0, so `rtsync run`
//! counted the batch as delivered and its changes never reached that target.

mod common;

use std::path::Path;
use std::process::Command;

use common::daemon::{StockDaemon, rustix_is_root};
use common::{have_rsync, rsync, rtsync};

/// A 4 MB tmpfs over `at`, unmounted (by its path) when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &Path) -> SmallDisk {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs on {}", at.display());
        SmallDisk(at.into())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_push_that_fills_the_daemons_disk_exits_23_for_stock_and_rtsync_clients() {
    if !have_rsync() {
        return;
    }
    if !rustix_is_root() {
        eprintln!("skipping: mounting a small disk needs root");
        return;
    }
    let d = StockDaemon::start_rtsync();
    let module = d.module_path("open");
    let _disk = SmallDisk::mount(&module);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..6 {
        std::fs::write(src.join(format!("f{i}")), testkit::noise(1_000_000, i + 1)).unwrap();
    }
    let source = format!("{}/", src.display());
    let stock = rsync(["-a", source.as_str(), &d.url("open/")]);
    assert_eq!(stock.status.code(), Some(23), "stock rsync: {stock:?}");
    for f in std::fs::read_dir(&module).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let ours = rtsync(["sync", "-a", source.as_str(), &d.url("open/")]);
    let stderr = String::from_utf8_lossy(&ours.stderr);
    assert_eq!(ours.status.code(), Some(23), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
}
