//! A running `rtsync run` for the engine's end-to-end tests, and the wait for a target to
//! converge to its source.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `rtsync run`, killed by its pid when dropped.
pub struct Engine {
    child: Child,
    log: PathBuf,
}

impl Engine {
    /// Starts `rtsync run ARGS` with its journal in `state` (unless a `--config` names one)
    /// and its log next to it.
    pub fn start(state: &Path, args: &[&str]) -> Engine {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rtsync"));
        cmd.arg("run");
        if !args.contains(&"--config") {
            cmd.arg(format!("--state-dir={}", state.display()));
        }
        cmd.args(args);
        Self::spawn(cmd, state.with_extension("log"))
    }

    /// Starts `cmd` (an `rtsync run` however it is wrapped, say in `ip netns exec`), its
    /// output appended to `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Engine {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start rtsync run");
        Engine { child, log }
    }

    /// The engine's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status within a bound.
    pub fn stop(mut self) -> Option<i32> {
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

    pub fn kill9(mut self) {
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

/// Waits until `dst` equals `src` (roots aside, and entries named in `unlike` aside), or fails
/// with the differences and the log.
pub fn converges(src: &Path, dst: &Path, unlike: &[&str], engine: &Engine) -> Duration {
    let start = Instant::now();
    let within = Duration::from_secs(30);
    loop {
        let diffs: Vec<String> = if dst.exists() {
            testkit::diff_trees_below(src, dst, true)
                .into_iter()
                .filter(|d| !unlike.iter().any(|u| d.contains(&format!("{u:?}"))))
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

/// Starts `rtsync run -v SRC DEST` from a config file (in `state`'s parent) that adds a
/// `command` plugin appending each path it is told of, one per line, to the file `told`.
pub fn start_telling(state: &Path, src: &Path, dest: &str, told: &Path) -> Engine {
    let script = format!(
        "for p; do printf '%s\\n' \"$p\"; done >> '{}'",
        told.display()
    );
    let config = format!(
        "source = {:?}\nstate_dir = {:?}\nverbose = true\n[[target]]\ndest = {dest:?}\n\
         [[plugin]]\nname = \"told\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", {script:?}, \"sh\"]\n",
        src.display().to_string(),
        state.display().to_string(),
    );
    let file = state.with_extension("toml");
    std::fs::write(&file, config).unwrap();
    Engine::start(state, &["--config", file.to_str().unwrap()])
}

/// One path the target cannot write while another lands (its directory `locked/` made
/// immutable on the target, `module`): the other is not sent again while the failing one is
/// retried alone with a growing backoff, and both are there once the directory is unlocked.
/// Plugins (the engine's, from [`start_telling`], writing to `told`) hear of each path once,
/// when it has landed. `failure` is what the log says of the failure. Skips (outside CI)
/// where `chattr +i` does not work.
pub fn one_path_sent_again_alone(
    src: &Path,
    module: &Path,
    engine: &Engine,
    failure: &str,
    told: &Path,
) {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(src.join("locked")).unwrap();
    std::fs::create_dir_all(src.join("free")).unwrap();
    converges(src, module, &[], engine);
    let Some(lock) = super::Immutable::set(&module.join("locked")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chattr +i is needed in CI"
        );
        eprintln!("skipped: chattr +i does not work here");
        return;
    };
    std::fs::write(src.join("locked/a"), b"cannot land yet").unwrap();
    std::fs::write(src.join("free/b"), b"lands").unwrap();
    let t0 = Instant::now();
    while !module.join("free/b").exists() || !engine.log().contains(failure) {
        assert!(t0.elapsed() < Duration::from_secs(30), "{}", engine.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!module.join("locked/a").exists());
    // free/b, sent again, would come as a new file.
    let ino = std::fs::metadata(module.join("free/b")).unwrap().ino();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(std::fs::metadata(module.join("free/b")).unwrap().ino(), ino);
    let log = engine.log();
    assert!(log.contains("attempt 3"), "{log}");
    assert!(!log.contains("recovered"), "{log}");
    let told_of = |name: &str| {
        let line = src.join(name).display().to_string();
        std::fs::read_to_string(told)
            .unwrap_or_default()
            .lines()
            .filter(|l| **l == line)
            .count()
    };
    assert_eq!(told_of("free/b"), 1, "{log}");
    assert_eq!(
        told_of("locked/a"),
        0,
        "told of a path that has not landed\n{log}"
    );
    drop(lock);
    converges(src, module, &[], engine);
    let t0 = Instant::now();
    while !engine.log().contains("recovered") || told_of("locked/a") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", engine.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!((told_of("free/b"), told_of("locked/a")), (1, 1));
}
