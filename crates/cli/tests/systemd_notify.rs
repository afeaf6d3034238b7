//! `Type=notify` under systemd: `rtsync run` and `rtsync daemon` tell `$NOTIFY_SOCKET` when
//! they are ready (every directory watched; the port bound), when a SIGHUP reload starts and
//! ends, and when they stop. The test plays systemd's part with its own datagram socket.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::engine::{Engine, converges};

/// The next message on `socket`, within 30 s.
fn next(socket: &UnixDatagram) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification within 30 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

#[test]
fn run_reports_ready_reloading_and_stopping() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&dst).unwrap();
    let file = t.path().join("rtsync.toml");
    std::fs::write(
        &file,
        format!(
            "source = {:?}\nstate_dir = {:?}\n[[target]]\ndest = {:?}\n",
            src.display().to_string(),
            t.path().join("state").display().to_string(),
            format!("{}/", dst.display())
        ),
    )
    .unwrap();
    let sock_path = t.path().join("notify");
    let socket = UnixDatagram::bind(&sock_path).unwrap();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rtsync"));
    cmd.args(["run", "--config", file.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &sock_path);
    let engine = Engine::spawn(cmd, t.path().join("run.log"));

    let ready = next(&socket);
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(
        ready.contains(&format!("STATUS=watching {}", src.display())),
        "{ready:?}"
    );
    // Ready means watched: a file written right after it is not missed.
    std::fs::write(src.join("after-ready"), b"x").unwrap();
    converges(&src, &dst, &[], &engine);

    signal(engine.pid(), rustix::process::Signal::HUP);
    let reloading = next(&socket);
    assert!(reloading.starts_with("RELOADING=1\n"), "{reloading:?}");
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC beside RELOADING")
        .parse()
        .unwrap();
    assert!(usec > 0);
    assert!(next(&socket).starts_with("READY=1\n"));

    let pid = engine.pid();
    signal(pid, rustix::process::Signal::TERM);
    assert_eq!(next(&socket), "STOPPING=1");
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn daemon_reports_ready_once_bound_and_stopping_on_sigterm() {
    let t = tempfile::tempdir().unwrap();
    let port = common::daemon::free_port();
    std::fs::create_dir(t.path().join("m")).unwrap();
    let conf = t.path().join("rsyncd.conf");
    std::fs::write(
        &conf,
        format!(
            "{}use chroot = no\n[m]\npath = {}\n",
            common::daemon::root_ids(),
            t.path().join("m").display()
        ),
    )
    .unwrap();
    // An abstract socket name, as systemd gives by default.
    let name = format!("rtsync-test-{}-{port}", std::process::id());
    let socket = {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        UnixDatagram::bind_addr(&addr).unwrap()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtsync"))
        .args(["daemon", "--no-detach", "--address", "127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--config={}", conf.display()))
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = next(&socket);
    assert_eq!(
        ready,
        format!("READY=1\nSTATUS=listening on 127.0.0.1:{port}")
    );
    // Ready means bound: a connection right now is served.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    signal(child.id(), rustix::process::Signal::TERM);
    assert_eq!(next(&socket), "STOPPING=1");
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the daemon ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
}
