//! A daemon started by a test — stock `rsync --daemon`, or `rtsync daemon` given the very same
//! rsyncd.conf (`auth users`, `secrets file`, `hosts allow`, `read only = no`) — on a free
//! loopback port, stopped by its own pid.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running daemon (stock rsync's unless started with [`StockDaemon::start_rtsync`]).
pub struct StockDaemon {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
    program: Program,
}

/// Which daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// Debian's `rsync --daemon`.
    Rsync,
    /// `rtsync daemon`.
    Rtsync,
}

pub const SECRET_USER: &str = "alice";
pub const SECRET_PASSWORD: &str = "s3cret pass";

impl StockDaemon {
    /// Starts rsync's daemon with modules `open` and `push` (read-write, no auth), `secret`
    /// (auth users = alice) and `ro` (read only); symlinks are not munged.
    pub fn start() -> StockDaemon {
        Self::start_program(Program::Rsync)
    }

    /// `rtsync daemon` with the configuration [`StockDaemon::start`] gives rsync.
    pub fn start_rtsync() -> StockDaemon {
        Self::start_program(Program::Rtsync)
    }

    /// `program` serving the standard test modules.
    pub fn start_program(program: Program) -> StockDaemon {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for m in ["open", "secret", "ro", "push"] {
            std::fs::create_dir(d.join(m)).unwrap();
        }
        write_secrets(&d.join("secrets"));
        // `log file` in the config, not `--log-file`: rsync 3.5.0 drops a module's transfer
        // lines when the log file comes from the command line.
        let conf = format!(
            "pid file = {d}/rsyncd.pid\nlog file = {d}/rsyncd.log\nuse chroot = no\nhosts allow = 127.0.0.1\n{ids}\
             munge symlinks = no\ntransfer logging = yes\nlog format = %o %f %l %b\n\
             [open]\n  path = {d}/open\n  read only = no\n  comment = open to all\n\
             [push]\n  path = {d}/push\n  read only = no\n  comment = second open module\n\
             [secret]\n  path = {d}/secret\n  read only = no\n  auth users = {SECRET_USER}\n  secrets file = {d}/secrets\n  comment = needs a password\n\
             [ro]\n  path = {d}/ro\n  read only = yes\n",
            d = d.display(),
            ids = root_ids(),
        );
        std::fs::write(d.join("rsyncd.conf"), conf).unwrap();
        Self::with_config(program, dir)
    }

    /// `program` serving `dir/rsyncd.conf` as the caller wrote it.
    pub fn with_config(program: Program, dir: tempfile::TempDir) -> StockDaemon {
        let port = free_port();
        let child = spawn(dir.path(), port, program);
        StockDaemon {
            port,
            dir,
            child,
            program,
        }
    }

    /// Stops the daemon (a target host going down); [`StockDaemon::resume`] brings it back on
    /// the same port.
    pub fn pause(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the daemon again after [`StockDaemon::pause`].
    pub fn resume(&mut self) {
        // A killed daemon leaves its pid file, which a new one refuses to overwrite.
        let _ = std::fs::remove_file(self.dir.path().join("rsyncd.pid"));
        self.child = spawn(self.dir.path(), self.port, self.program);
    }

    pub fn url(&self, rest: &str) -> String {
        format!("rsync://127.0.0.1:{}/{rest}", self.port)
    }

    pub fn module_path(&self, module: &str) -> PathBuf {
        self.dir.path().join(module)
    }

    /// The daemon's own account of each transfer, from its log (`log format = %o %f %l %b`):
    /// operation (`send`/`recv`), name, file length and bytes that crossed the wire for it.
    pub fn transfers(&self) -> Vec<(String, String, u64, u64)> {
        let log = std::fs::read_to_string(self.dir.path().join("rsyncd.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let [.., op, name, len, bytes] = fields.as_slice() else {
                    return None;
                };
                if *op != "send" && *op != "recv" {
                    return None;
                }
                Some((
                    op.to_string(),
                    name.to_string(),
                    len.parse().ok()?,
                    bytes.parse().ok()?,
                ))
            })
            .collect()
    }
}

impl Drop for StockDaemon {
    fn drop(&mut self) {
        // Only the daemon this test started, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the daemon with the config in `d` and waits until it listens.
fn spawn(d: &std::path::Path, port: u16, program: Program) -> Child {
    let mut cmd = match program {
        Program::Rsync => Command::new("rsync"),
        Program::Rtsync => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_rtsync"));
            c.arg("daemon");
            c
        }
    };
    let child = cmd
        .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--config={}", d.join("rsyncd.conf").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{program:?} daemon did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// The secrets file of the test modules (`alice`), readable by its owner only, as rsync
/// wants it.
pub fn write_secrets(path: &std::path::Path) {
    std::fs::write(path, format!("{SECRET_USER}:{SECRET_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The rsyncd.conf lines that keep a daemon started as root writing as root (stock rsync
/// would switch to `nobody`); nothing otherwise.
pub fn root_ids() -> &'static str {
    if rustix_is_root() {
        "uid = root\ngid = root\n"
    } else {
        ""
    }
}

pub fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}
