//! Stock rsync 3.2.7 (the version many distributions ship) against `rtsync daemon` and
//! `rtsync sync`, through authentication (`auth users` + `secrets file`, `read only = no`), and
//! with an unknown name in a greeting's auth-digest list (`rtsync-stream.1`), which 3.2.7's
//! `parse_negotiate_str` skips (compat.c: `get_nni_by_name` returns NULL for it).
//!
//! 3.2.7 is built by `scripts/build-rsync-3.2.7` into `/opt/rsync-3.2.7/bin/rsync`; without it
//! every test here says so and returns.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::{SECRET_PASSWORD, SECRET_USER, StockDaemon, free_port, root_ids};
use common::{ok, run_bounded, slash};
use testkit::{assert_same_tree, tricky_tree};

const RSYNC_327: &str = "/opt/rsync-3.2.7/bin/rsync";
/// The name rtsync adds to its daemon greeting's digest list.
const TOKEN: &str = "rtsync-stream.1";
const LIMIT: Duration = Duration::from_secs(120);

/// Whether 3.2.7 is here; a skip message otherwise.
fn have_327() -> bool {
    let found = Command::new(RSYNC_327)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"rsync  version 3.2.7 "));
    if !found {
        eprintln!("skipping: {RSYNC_327} is not built (scripts/build-rsync-3.2.7)");
    }
    found
}

/// Runs 3.2.7 with `args`, the password (if any) in RSYNC_PASSWORD.
fn rsync327(password: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(RSYNC_327);
    cmd.args(args).env_remove("RSYNC_PASSWORD");
    if let Some(pw) = password {
        cmd.env("RSYNC_PASSWORD", pw);
    }
    run_bounded(&mut cmd, LIMIT)
}

/// Runs `rtsync sync` with `args`, the password (if any) in RSYNC_PASSWORD.
fn rtsync_sync(password: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rtsync"));
    cmd.arg("sync").args(args).env_remove("RSYNC_PASSWORD");
    if let Some(pw) = password {
        cmd.env("RSYNC_PASSWORD", pw);
    }
    run_bounded(&mut cmd, LIMIT)
}

/// `rsync://alice@127.0.0.1:PORT/rest`.
fn auth_url(port: u16, rest: &str) -> String {
    format!("rsync://{SECRET_USER}@127.0.0.1:{port}/{rest}")
}

/// A temporary directory with `src` holding the tricky tree.
fn source() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    tricky_tree(&src);
    (t, src)
}

/// The first line a daemon sends on a fresh connection.
fn greeting_of(port: u16) -> String {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

/// Exit 5 with the daemon's words for a wrong password.
fn assert_auth_failed(out: &Output, module: &str, who: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{who}: {err}");
    assert!(
        err.contains(&format!("@ERROR: auth failed on module {module}")),
        "{who}: {err}"
    );
}

/// Asserts `dest` holds what was pushed from `src`: the same tree, except that a daemon
/// without chroot drops the leading `/` of an absolute symlink target, as rsync's daemon does
/// (`abs-link -> /etc/hostname` arrives as `etc/hostname`; both 3.2.7's and rtsync's daemon).
fn assert_pushed(src: &Path, dest: &Path) {
    let diffs: Vec<String> = testkit::diff_trees(src, dest)
        .into_iter()
        .filter(|d| !(d.starts_with("\"abs-link\" differs:") && d.contains("-> \"etc/hostname\"")))
        .collect();
    assert!(
        diffs.is_empty(),
        "trees {} and {} differ:\n{}",
        src.display(),
        dest.display(),
        diffs.join("\n")
    );
}

/// Pushes `src` to `module` and pulls it back with 3.2.7 (`-aH`) through authentication on
/// `port`, comparing both copies with the source; then a wrong password is refused.
fn push_and_pull_327(port: u16, module: &str, module_path: &Path, src: &Path, t: &Path) {
    let url = auth_url(port, &format!("{module}/"));
    ok(&rsync327(
        Some(SECRET_PASSWORD),
        &["-aH", &slash(src), &url],
    ));
    assert_pushed(src, module_path);
    let back = t.join(format!("back-{port}"));
    ok(&rsync327(
        Some(SECRET_PASSWORD),
        &["-aH", &url, &slash(&back)],
    ));
    assert_same_tree(module_path, &back);
    // A second push finds nothing to do.
    let out = ok(&rsync327(
        Some(SECRET_PASSWORD),
        &["-aHi", &slash(src), &url],
    ));
    assert_eq!(out, "", "a no-change push itemized something");
    let out = rsync327(Some("wrong"), &["-aH", &url, &slash(&back)]);
    assert_auth_failed(&out, module, "rsync 3.2.7");
}

#[test]
fn rsync_327_pushes_to_and_pulls_from_rtsync_daemon_with_auth() {
    if !have_327() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    eprintln!("rtsync daemon greets: {}", greeting_of(d.port));
    let (t, src) = source();
    push_and_pull_327(d.port, "secret", &d.module_path("secret"), &src, t.path());
    // And the module without auth.
    ok(&rsync327(None, &["-aH", &slash(&src), &d.url("open/")]));
    assert_pushed(&src, &d.module_path("open"));
}

#[test]
fn rsync_327_ignores_an_unknown_name_in_the_daemon_greeting() {
    if !have_327() {
        return;
    }
    let d = StockDaemon::start_rtsync();
    // Whatever rtsync's daemon says, the client sees the name in the list.
    let proxy = GreetingProxy::start(d.port, Side::Daemon);
    let (t, src) = source();
    push_and_pull_327(
        proxy.port,
        "secret",
        &d.module_path("secret"),
        &src,
        t.path(),
    );
    let seen = proxy.greetings();
    assert!(!seen.is_empty(), "no connection went through the proxy");
    for g in &seen {
        assert!(
            g.starts_with("@RSYNCD: 31.0 ") && g.split(' ').any(|w| w == TOKEN),
            "greeting {g:?}"
        );
    }
    eprintln!("greetings 3.2.7 was given: {seen:?}");
}

#[test]
fn rtsync_sync_pushes_to_and_pulls_from_rsync_327_daemon_with_auth() {
    if !have_327() {
        return;
    }
    let d = Daemon327::start();
    let greeting = greeting_of(d.port);
    assert!(greeting.starts_with("@RSYNCD: 31.0"), "{greeting}");
    eprintln!("rsync 3.2.7 daemon greets: {greeting}");
    let (t, src) = source();
    let url = auth_url(d.port, "secret/");
    let module = d.dir.path().join("secret");
    ok(&rtsync_sync(
        Some(SECRET_PASSWORD),
        &["-aH", &slash(&src), &url],
    ));
    assert_pushed(&src, &module);
    let back = t.path().join("back");
    ok(&rtsync_sync(
        Some(SECRET_PASSWORD),
        &["-aH", &url, &slash(&back)],
    ));
    assert_same_tree(&module, &back);
    // Edits go across too.
    testkit::mutate(&src);
    ok(&rtsync_sync(
        Some(SECRET_PASSWORD),
        &["-aH", "--delete", &slash(&src), &url],
    ));
    assert_pushed(&src, &module);
    let out = rtsync_sync(Some("wrong"), &["-aH", &slash(&src), &url]);
    assert_auth_failed(&out, "secret", "rtsync sync");
}

#[test]
fn rsync_327_daemon_ignores_an_unknown_name_in_the_client_greeting() {
    if !have_327() {
        return;
    }
    let d = Daemon327::start();
    let proxy = GreetingProxy::start(d.port, Side::Client);
    let (t, src) = source();
    let url = auth_url(proxy.port, "secret/");
    ok(&rtsync_sync(
        Some(SECRET_PASSWORD),
        &["-aH", &slash(&src), &url],
    ));
    assert_pushed(&src, &d.dir.path().join("secret"));
    let back = t.path().join("back");
    ok(&rsync327(
        Some(SECRET_PASSWORD),
        &["-aH", &url, &slash(&back)],
    ));
    assert_same_tree(&d.dir.path().join("secret"), &back);
    let seen = proxy.greetings();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter().all(|g| g.split(' ').any(|w| w == TOKEN)),
        "{seen:?}"
    );
}

/// rsync 3.2.7's own daemon, serving `secret` (auth users = alice, read only = no) and
/// `open`, on a free loopback port; stopped by its pid.
struct Daemon327 {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Daemon327 {
    fn start() -> Daemon327 {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for m in ["open", "secret"] {
            std::fs::create_dir(d.join(m)).unwrap();
        }
        common::daemon::write_secrets(&d.join("secrets"));
        let conf = format!(
            "pid file = {d}/rsyncd.pid\nlog file = {d}/rsyncd.log\nuse chroot = no\n\
             hosts allow = 127.0.0.1\n{ids}munge symlinks = no\n\
             [open]\n  path = {d}/open\n  read only = no\n\
             [secret]\n  path = {d}/secret\n  read only = no\n  auth users = {SECRET_USER}\n  \
             secrets file = {d}/secrets\n",
            d = d.display(),
            ids = root_ids(),
        );
        std::fs::write(d.join("rsyncd.conf"), conf).unwrap();
        let port = free_port();
        let child = Command::new(RSYNC_327)
            .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--config={}", d.join("rsyncd.conf").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsync 3.2.7 --daemon");
        let daemon = Daemon327 { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsync 3.2.7 did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }
}

impl Drop for Daemon327 {
    fn drop(&mut self) {
        // Only the daemon this test started, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whose greeting the proxy extends.
#[derive(Clone, Copy)]
enum Side {
    Daemon,
    Client,
}

/// A loopback proxy in front of a daemon that adds [`TOKEN`] to one side's `@RSYNCD:` greeting
/// (unless it is there already) and passes everything else through untouched.
struct GreetingProxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl GreetingProxy {
    fn start(upstream: u16, side: Side) -> GreetingProxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        // The accepting thread ends with the test process; each connection ends with its peers.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { return };
                let seen = seen2.clone();
                std::thread::spawn(move || relay(client, upstream, side, &seen));
            }
        });
        GreetingProxy { port, seen }
    }

    /// The greetings the proxy passed on, extended.
    fn greetings(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn relay(client: TcpStream, upstream: u16, side: Side, seen: &Mutex<Vec<String>>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    for s in [&client, &server] {
        s.set_read_timeout(Some(LIMIT)).unwrap();
    }
    let (mut from, mut to) = match side {
        Side::Daemon => (server.try_clone().unwrap(), client.try_clone().unwrap()),
        Side::Client => (client.try_clone().unwrap(), server.try_clone().unwrap()),
    };
    // The greeting line, byte by byte so nothing after it is read here.
    let mut line = Vec::new();
    let mut b = [0u8];
    while from.read_exact(&mut b).is_ok() {
        line.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    let text = String::from_utf8_lossy(&line).trim_end().to_string();
    let text = if text.split(' ').any(|w| w == TOKEN) {
        text
    } else {
        format!("{text} {TOKEN}")
    };
    seen.lock().unwrap().push(text.clone());
    if to.write_all(format!("{text}\n").as_bytes()).is_err() {
        return;
    }
    let pipe = |mut a: TcpStream, mut b: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut a, &mut b);
            let _ = b.shutdown(Shutdown::Write);
        })
    };
    let one = pipe(from, to);
    let two = match side {
        Side::Daemon => pipe(client, server),
        Side::Client => pipe(server, client),
    };
    let _ = one.join();
    let _ = two.join();
}
