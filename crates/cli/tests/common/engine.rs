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
