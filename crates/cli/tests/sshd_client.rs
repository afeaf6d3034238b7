//! `rtsync sync` over a real remote shell: a throwaway `sshd` on loopback (its own host key,
//! config and free port, started and stopped by this test), `ssh` as the `-e` program and stock
//! `rsync` as the server at the far end. Stock rsync and rtsync push the same tree, push it again
//! after changes, pull it back and list it, and the results are compared; a key the server does
//! not know fails both with the same exit code.
//!
//! Needs root (sshd checks the login against the system's users, and runs as root) and
//! `/usr/sbin/sshd`: without them the test skips, or fails when `CI` is set.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{have_rsync, ok, rsync, rtsync, run_bounded, slash};

const SSHD: &str = "/usr/sbin/sshd";

/// A running `sshd -D` of this test's own; dropping it kills exactly that process.
struct Sshd {
    port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

fn have_program(name: &str) -> bool {
    Command::new(name)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Whether this machine can run the test: skips with a note, or fails when `CI` is set.
fn can_run() -> bool {
    let missing = if !Path::new(SSHD).exists() {
        Some(format!(
            "{SSHD} is not installed (apt-get install openssh-server)"
        ))
    } else if !have_program("ssh") {
        Some("ssh is not installed (apt-get install openssh-client)".into())
    } else if !is_root() {
        Some("the test runs sshd and logs in as root, so it must run as root".into())
    } else {
        None
    };
    match missing {
        Some(why) if std::env::var_os("CI").is_some() => panic!("CI is set, but {why}"),
        Some(why) => {
            eprintln!("skipping: {why}");
            false
        }
        None => have_rsync(),
    }
}

fn keygen(path: &Path) {
    ok(&run_bounded(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path),
        Duration::from_secs(30),
    ));
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    /// Starts sshd on a free loopback port with a fresh host key; `user_key` may log in,
    /// `wrong_key` (also made here) may not.
    fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host_key", "user_key", "wrong_key"] {
            keygen(&d.join(key));
        }
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        // The privilege separation directory sshd insists on.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = free_port();
        let cfg = d.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 LogLevel ERROR\n",
                d = d.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let mut sshd = Sshd { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = || std::fs::read_to_string(sshd.dir.path().join("sshd.log")).unwrap();
            if let Some(status) = sshd.child.try_wait().unwrap() {
                panic!("sshd exited ({status}) before listening:\n{}", log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {port} within 10 s:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sshd
    }

    /// The `-e` command that logs in with `key` (a file name in the test's directory).
    fn rsh(&self, key: &str) -> String {
        format!(
            "ssh -p {} -i {} -F /dev/null -o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
            self.port,
            self.dir.path().join(key).display()
        )
    }
}

/// `root@127.0.0.1:PATH/`.
fn remote(path: &Path) -> String {
    format!("root@127.0.0.1:{}", slash(path))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn push_pull_and_list_through_a_real_sshd_match_rsync() {
    if !can_run() {
        return;
    }
    let sshd = Sshd::start();
    let rsh = sshd.rsh("user_key");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    testkit::tricky_tree(&src);
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let push = || {
        let args = ["-a", "--delete", "-e", &rsh, &slash(&src)];
        ok(&rsync(args.iter().copied().chain([remote(&a).as_str()])));
        ok(&rtsync(
            ["sync"]
                .iter()
                .chain(&args)
                .copied()
                .chain([remote(&b).as_str()]),
        ));
        testkit::assert_same_tree(&a, &b);
    };
    push();
    testkit::mutate(&src);
    push();

    // Both directions: each tool pulls each pushed copy back into a fresh directory.
    for (n, from) in [&a, &b].into_iter().enumerate() {
        let (c, d) = (
            t.path().join(format!("c{n}")),
            t.path().join(format!("d{n}")),
        );
        ok(&rsync(["-a", "-e", &rsh, &remote(from), &slash(&c)]));
        ok(&rtsync([
            "sync",
            "-a",
            "-e",
            &rsh,
            &remote(from),
            &slash(&d),
        ]));
        testkit::assert_same_tree(&c, &d);
        testkit::assert_same_tree(&a, &d);
    }

    // Listings over ssh, one level and recursive, print the same lines.
    for extra in [&[][..], &["-r"][..]] {
        let args: Vec<&str> = ["--list-only", "-e", &rsh]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let theirs = ok(&rsync(args.iter().copied().chain([remote(&a).as_str()])));
        let ours = ok(&rtsync(
            ["sync"]
                .into_iter()
                .chain(args.iter().copied())
                .chain([remote(&a).as_str()]),
        ));
        assert!(theirs.lines().count() > 1, "{theirs}");
        assert_eq!(theirs, ours, "--list-only {extra:?}");
    }
}

#[test]
fn a_key_the_server_does_not_know_fails_both_alike() {
    if !can_run() {
        return;
    }
    let sshd = Sshd::start();
    let wrong = sshd.rsh("wrong_key");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("file"), b"never sent").unwrap();
    let never = t.path().join("never");
    let pull_into = t.path().join("pulled");
    let push_args = ["-a", "-e", &wrong, &slash(&src), &remote(&never)].map(String::from);
    let pull_args = ["-a", "-e", &wrong, &remote(&src), &slash(&pull_into)].map(String::from);
    for (what, args) in [("push", &push_args), ("pull", &pull_args)] {
        let ours = rtsync(["sync"].iter().map(|s| s.to_string()).chain(args.clone()));
        // ssh ends with 255 and rsync exits with the shell's code when it has reaped it; but it
        // reaps without waiting (WNOHANG), so when ssh has not quite exited it reports its own
        // "error in rsync protocol data stream" (12) instead. rtsync waits for the shell, so it
        // gives 255 every time; stock rsync must give that too within a few tries.
        assert_eq!(
            ours.status.code(),
            Some(255),
            "rtsync {what}: {}",
            stderr(&ours)
        );
        assert!(
            stderr(&ours).contains("Permission denied (publickey)"),
            "rtsync {what}: {}",
            stderr(&ours)
        );
        let mut codes = Vec::new();
        for _ in 0..10 {
            let theirs = rsync(args.iter());
            let code = theirs.status.code();
            assert!(
                matches!(code, Some(12 | 255)),
                "rsync {what}: {code:?} {}",
                stderr(&theirs)
            );
            assert!(
                stderr(&theirs).contains("Permission denied (publickey)"),
                "rsync {what}: {}",
                stderr(&theirs)
            );
            codes.push(code);
            if code == ours.status.code() {
                break;
            }
        }
        assert_eq!(
            codes.last().copied().flatten(),
            ours.status.code(),
            "{what}: stock rsync gave {codes:?}, rtsync {:?}",
            ours.status.code()
        );
    }
    assert!(!never.exists() && !pull_into.exists());
}
