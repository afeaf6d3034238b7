//! `rtsync daemon` as an operator runs it: detached by default with its pid file written and
//! locked, the configuration re-read on SIGHUP, a secrets file others can read refused under
//! `strict modes`, and SIGTERM ending it cleanly (exit 0, pid file gone).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{have_rsync, rsync};

fn conf(d: &Path, port: u16, extra_module: &str) -> String {
    let ids = common::daemon::root_ids();
    format!(
        "{ids}use chroot = no\nport = {port}\naddress = 127.0.0.1\npid file = {d}/rtsyncd.pid\n\
         log file = {d}/rtsyncd.log\n\
         [first]\npath = {d}/first\nread only = no\n\
         [locked]\npath = {d}/first\nauth users = alice\nsecrets file = {d}/secrets\n\
         {extra_module}",
        d = d.display()
    )
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pid_of(d: &Path) -> Option<i32> {
    std::fs::read_to_string(d.join("rtsyncd.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Stops the detached daemon this test started (by the pid it wrote) if the test fails first.
struct Stop(i32);

impl Drop for Stop {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = Command::new("kill").arg(self.0.to_string()).status();
        }
    }
}

#[test]
fn detached_reloaded_on_sighup_and_stopped_by_sigterm() {
    if !have_rsync() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("first")).unwrap();
    std::fs::create_dir(d.join("second")).unwrap();
    std::fs::write(d.join("secrets"), "alice:pw\n").unwrap();
    std::fs::set_permissions(
        d.join("secrets"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let port = common::daemon::free_port();
    std::fs::write(d.join("rsyncd.conf"), conf(d, port, "")).unwrap();

    // Detaches: the command returns at once, the daemon runs on with its pid in the file.
    let started = Command::new(env!("CARGO_BIN_EXE_rtsync"))
        .args(["daemon", "--config"])
        .arg(d.join("rsyncd.conf"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(started.status.code(), Some(0));
    wait_for("the pid file", || pid_of(d).is_some_and(alive));
    let pid = pid_of(d).unwrap();
    let _stop = Stop(pid);
    wait_for("the port", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let listing = || {
        String::from_utf8_lossy(&rsync([format!("rsync://127.0.0.1:{port}/")]).stdout).into_owned()
    };
    assert!(listing().contains("first"));
    assert!(!listing().contains("second"));

    // A second daemon on the same pid file is refused: the file is locked.
    let second = Command::new(env!("CARGO_BIN_EXE_rtsync"))
        .args(["daemon", "--no-detach", "--port", "1", "--config"])
        .arg(d.join("rsyncd.conf"))
        .output()
        .unwrap();
    assert_ne!(second.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("locked"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // A secrets file others can read: `strict modes` refuses every login.
    let pw = d.join("pw");
    std::fs::write(&pw, "pw\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let login = rsync([
        format!("rsync://alice@127.0.0.1:{port}/locked/"),
        format!("--password-file={}", pw.display()),
    ]);
    assert_eq!(login.status.code(), Some(5));
    let log = std::fs::read_to_string(d.join("rtsyncd.log")).unwrap();
    assert!(log.contains("auth failed on module locked"), "{log}");

    // SIGHUP: a module added to the file is served to new connections.
    std::fs::write(
        d.join("rsyncd.conf"),
        conf(
            d,
            port,
            &format!("[second]\npath = {}/second\n", d.display()),
        ),
    )
    .unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status();
    assert!(hup.unwrap().success());
    wait_for("the reload", || listing().contains("second"));

    // SIGTERM: it stops, exit 0 (it is not our child: its pid file and /proc tell), and
    // removes its pid file.
    let term = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    assert!(term.unwrap().success());
    wait_for("the stop", || !alive(pid));
    assert!(!d.join("rtsyncd.pid").exists());
    let log = std::fs::read_to_string(d.join("rtsyncd.log")).unwrap();
    assert!(log.contains("rtsync daemon stopped"), "{log}");
}
