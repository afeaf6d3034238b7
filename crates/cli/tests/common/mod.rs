//! Helpers for the end-to-end tests: run the `rtsync` binary and stock `rsync` side by side.
#![allow(dead_code)]

pub mod daemon;
pub mod engine;
pub mod ground;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Runs `rtsync` with `args`, bounded in time, and returns its output.
pub fn rtsync<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_rtsync")).args(args),
        Duration::from_secs(300),
    )
}

/// Runs stock `rsync` with `args`.
pub fn rsync<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_bounded(Command::new("rsync").args(args), Duration::from_secs(300))
}

/// Runs a command and kills it (by its own pid) if it outlives `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out_t.join().expect("stdout"),
        stderr: err_t.join().expect("stderr"),
    }
}

/// Whether stock rsync is here. Without it a test may skip, but never when `CI` is set.
pub fn have_rsync() -> bool {
    let found = Command::new("rsync")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "stock rsync is required when CI is set"
        );
        eprintln!("skipping: stock rsync is not installed");
    }
    found
}

/// Asserts a successful exit, showing output otherwise.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `path` with a trailing slash, as rsync's "contents of" syntax.
pub fn slash(path: &Path) -> String {
    format!("{}/", path.display())
}

/// A "remote shell" that runs the command here: it drops `-l USER` and the host and executes
/// the rest (where sshd cannot run; `sshd_client.rs` uses a real one).
pub fn fake_ssh(dir: &Path) -> String {
    let path = dir.join("fake-ssh");
    std::fs::write(&path, "#!/bin/sh\n# Drops -l USER and the host, runs the rest here.\nif [ \"$1\" = \"-l\" ]; then shift 2; fi\nshift\nexec \"$@\"\n").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// Overwrites `data` at `offset` in an existing file.
pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(data).unwrap();
}

/// A `--stats` summary line (rtsync's or rsync's), as a number.
pub fn stat(out: &str, label: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no '{label}' in\n{out}"));
    line[label.len()..]
        .trim()
        .trim_end_matches(" bytes")
        .replace(',', "")
        .parse()
        .expect("number")
}

/// A file of `mib` MiB of noise (each MiB from its own seed, `seed` + its index), with a
/// fixed time.
pub fn noise_file(path: &Path, mib: u64, seed: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    for i in 0..mib {
        f.write_all(&testkit::noise(1 << 20, seed + i)).unwrap();
    }
    testkit::set_mtime(path, 1_700_000_000, 0);
}

/// `chattr +i` on a directory, undone when dropped (else nothing could delete it).
pub struct Immutable(std::path::PathBuf);

impl Immutable {
    /// `None` where the filesystem or the user cannot.
    pub fn set(dir: &Path) -> Option<Immutable> {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Immutable(dir.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}
