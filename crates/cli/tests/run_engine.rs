//! `rtsync run` end to end: one source mirrored in real time to a local directory and a stock
//! `rsync --daemon` at once, through edits, renames, deletes, bursts, a crash and restart.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::StockDaemon;
use common::have_rsync;

/// A running `rtsync run`, killed by its pid when dropped.
struct Engine {
    child: Child,
    log: PathBuf,
}

impl Engine {
    fn start(state: &Path, args: &[&str]) -> Engine {
        let log = state.with_extension("log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rtsync"))
            .arg("run")
            .arg(format!("--state-dir={}", state.display()))
            .args(args)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start rtsync run");
        Engine { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status within a bound.
    fn stop(mut self) -> Option<i32> {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "rtsync run ignored SIGTERM\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a difference is only a directory's or symlink's modification time within the same
/// second. A stock rsync receiver leaves that: it creates a directory, sets its time, then fills
/// it (which moves the time again), and its final pass, comparing whole seconds, sees nothing
/// to fix; a symlink made again gets the same treatment.
fn time_within_second(diff: &str) -> bool {
    let lines: Vec<&str> = diff.lines().skip(1).map(str::trim).collect();
    let whole_seconds = |l: &str| {
        let mut out = String::new();
        let mut in_fraction = false;
        for ch in l.chars() {
            if ch == '.' && out.ends_with(|c: char| c.is_ascii_digit()) {
                in_fraction = true;
            } else if in_fraction && ch.is_ascii_digit() {
            } else {
                in_fraction = false;
                out.push(ch);
            }
        }
        out
    };
    lines.len() == 2
        && lines
            .iter()
            .all(|l| l.starts_with("dir,") || l.starts_with("symlink "))
        && whole_seconds(lines[0]) == whole_seconds(lines[1])
}

/// Waits until `dst` equals `src` (roots aside, and entries named in `unlike` aside), or fails
/// with the differences and the log. `stock` relaxes directory times to whole seconds.
fn converges(src: &Path, dst: &Path, unlike: &[&str], stock: bool, engine: &Engine) -> Duration {
    let start = Instant::now();
    let within = Duration::from_secs(30);
    loop {
        let diffs: Vec<String> = if dst.exists() {
            testkit::diff_trees_below(src, dst, true)
                .into_iter()
                .filter(|d| !unlike.iter().any(|u| d.contains(&format!("{u:?}"))))
                .filter(|d| !(stock && time_within_second(d)))
                .collect()
        } else {
            vec![format!("{} does not exist yet", dst.display())]
        };
        if diffs.is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{} did not converge to {} within {within:?}:\n{}\nlog:\n{}",
            dst.display(),
            src.display(),
            diffs.join("\n"),
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write(path: &Path, body: &[u8]) {
    std::fs::write(path, body).unwrap();
}

/// The operations the issue lists, on top of the tricky tree's own `mutate`.
fn workload(src: &Path) {
    use std::os::unix::fs::PermissionsExt;
    testkit::mutate(src);
    for d in 0..20 {
        let dir = src.join(format!("burst/level {d}/deeper"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..10 {
            write(
                &dir.join(format!("file {f}")),
                format!("{d}/{f}").as_bytes(),
            );
        }
    }
    // Editor litter is not replicated. (Made before the next entry in "a": the directory's
    // time moves with it, and an excluded name sends no event to carry that time over.)
    write(&src.join("a/.text.txt.swp"), b"swap");
    let log = src.join("a/app.log");
    write(&log, b"line 1\n");
    for i in 2..50 {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, format!("line {i}\n").as_bytes()).unwrap();
    }
    std::fs::rename(src.join("burst/level 3"), src.join("moved level 3")).unwrap();
    std::fs::remove_dir_all(src.join("burst/level 4")).unwrap();
    std::fs::set_permissions(
        src.join("a/text.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::symlink("moved level 3/deeper", src.join("link to moved")).unwrap();
    // Rewritten twice within the same second at the same size: rsync's quick check alone
    // would miss the second version.
    write(&src.join("same size"), b"version 1");
    std::thread::sleep(Duration::from_millis(300));
    write(&src.join("same size"), b"version 2");
}

#[test]
fn mirrors_a_tree_to_a_local_dir_and_a_stock_daemon_through_every_kind_of_change() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let (src, local) = (t.path().join("src"), t.path().join("local"));
    std::fs::create_dir(&src).unwrap();
    testkit::tricky_tree(&src);
    let engine = Engine::start(
        &t.path().join("state"),
        &[
            "-v",
            src.to_str().unwrap(),
            &format!("{}/", local.display()),
            &d.url("push/"),
        ],
    );
    let module = d.module_path("push");
    // A stock daemon without chroot strips the leading '/' of absolute symlinks (rsync's
    // sanitize_paths): the same happens with stock rsync pushing there.
    let daemon_differs = ["abs-link"];
    converges(&src, &local, &[], false, &engine);
    converges(&src, &module, &daemon_differs, true, &engine);

    workload(&src);
    // The swap file is excluded, so it exists on the source only.
    let took = converges(&src, &local, &["a/.text.txt.swp"], false, &engine);
    converges(
        &src,
        &module,
        &["a/.text.txt.swp", "abs-link"],
        true,
        &engine,
    );
    eprintln!("converged {took:?} after the workload");
    assert!(!local.join("a/.text.txt.swp").exists());
    assert_eq!(
        std::fs::read(local.join("same size")).unwrap(),
        b"version 2"
    );
    assert_eq!(engine.stop(), Some(0));
}

/// Writes `count` files in `dirs` directories under `root/tag`, pausing now and then, the way
/// an upload directory fills.
fn fill(root: &Path, tag: &str, dirs: usize, count: usize) {
    for i in 0..count {
        let dir = root.join(format!("{tag}/d{}", i % dirs));
        std::fs::create_dir_all(&dir).unwrap();
        write(
            &dir.join(format!("f{i}")),
            &testkit::noise(500 + i % 3000, i as u64),
        );
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn kill_9_mid_burst_then_restart_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    fill(&src, "before", 5, 200);
    let state = t.path().join("state");
    let args = [src.to_str().unwrap(), dst.to_str().unwrap()];
    let engine = Engine::start(&state, &args);
    converges(&src, &dst, &[], false, &engine);
    let writer = {
        let src = src.clone();
        std::thread::spawn(move || fill(&src, "burst", 20, 2000))
    };
    std::thread::sleep(Duration::from_millis(150));
    engine.kill9();
    // More changes while nothing watches: only the verification after restart can find them.
    std::fs::remove_dir_all(src.join("before/d1")).unwrap();
    writer.join().unwrap();
    write(&src.join("while down"), b"made while the engine was dead");
    // Without an initial sync: the journal replay and the crash check must do it all.
    let engine = Engine::start(&state, &["--no-initial-sync", args[0], args[1]]);
    converges(&src, &dst, &[], false, &engine);
    assert!(
        engine.log().contains("did not stop cleanly"),
        "{}",
        engine.log()
    );
    assert_eq!(engine.stop(), Some(0));
    // A clean stop leaves no crash marker behind.
    assert!(!state.join("running").exists());
}

#[test]
fn a_target_that_goes_down_catches_up_and_never_stalls_the_others() {
    if !have_rsync() {
        return;
    }
    let mut d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let (src, local) = (t.path().join("src"), t.path().join("local"));
    std::fs::create_dir(&src).unwrap();
    fill(&src, "start", 3, 30);
    let engine = Engine::start(
        &t.path().join("state"),
        &[
            "-v",
            "--timeout=5",
            src.to_str().unwrap(),
            local.to_str().unwrap(),
            &d.url("push/"),
        ],
    );
    let module = d.module_path("push");
    converges(&src, &local, &[], false, &engine);
    converges(&src, &module, &[], true, &engine);

    d.pause();
    fill(&src, "during outage", 10, 300);
    std::fs::remove_dir_all(src.join("start/d0")).unwrap();
    // The local target keeps up while the daemon is down.
    let local_lag = converges(&src, &local, &[], false, &engine);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        testkit::diff_trees_below(&src, &module, true)
            .iter()
            .any(|d| d.contains("during outage")),
        "the daemon was down, yet its module changed"
    );
    d.resume();
    let caught_up = converges(&src, &module, &[], true, &engine);
    eprintln!("local target during the outage: {local_lag:?}; daemon after restart: {caught_up:?}");
    assert!(engine.log().contains("will retry"), "{}", engine.log());
    assert!(engine.log().contains("recovered"), "{}", engine.log());
    assert_eq!(engine.stop(), Some(0));
}
