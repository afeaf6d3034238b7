//! `rtsync run` end to end: one source mirrored in real time to a local directory and a stock
//! `rsync --daemon` at once, through edits, renames, deletes, bursts, a crash and restart.

mod common;

use std::path::Path;
use std::time::Duration;

use common::daemon::StockDaemon;
use common::engine::{Engine, converges};
use common::have_rsync;

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
fn mirrors_a_tree_to_a_local_dir_a_stock_daemon_and_an_rtsync_daemon_through_every_change() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let ours = StockDaemon::start_rtsync();
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
            &ours.url("push/"),
        ],
    );
    let module = d.module_path("push");
    let our_module = ours.module_path("push");
    // A stock daemon without chroot strips the leading '/' of absolute symlinks (rsync's
    // sanitize_paths): the same happens with stock rsync pushing there.
    let daemon_differs = ["abs-link"];
    converges(&src, &local, &[], &engine);
    converges(&src, &module, &daemon_differs, &engine);
    converges(&src, &our_module, &daemon_differs, &engine);

    workload(&src);
    // The swap file is excluded, so it exists on the source only.
    let took = converges(&src, &local, &["a/.text.txt.swp"], &engine);
    converges(&src, &module, &["a/.text.txt.swp", "abs-link"], &engine);
    converges(&src, &our_module, &["a/.text.txt.swp", "abs-link"], &engine);
    testkit::assert_same_tree_below(&module, &our_module, true);
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
    converges(&src, &dst, &[], &engine);
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
    converges(&src, &dst, &[], &engine);
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
    converges(&src, &local, &[], &engine);
    converges(&src, &module, &[], &engine);

    d.pause();
    fill(&src, "during outage", 10, 300);
    std::fs::remove_dir_all(src.join("start/d0")).unwrap();
    // The local target keeps up while the daemon is down.
    let local_lag = converges(&src, &local, &[], &engine);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        testkit::diff_trees_below(&src, &module, true)
            .iter()
            .any(|d| d.contains("during outage")),
        "the daemon was down, yet its module changed"
    );
    d.resume();
    let caught_up = converges(&src, &module, &[], &engine);
    eprintln!("local target during the outage: {local_lag:?}; daemon after restart: {caught_up:?}");
    assert!(engine.log().contains("will retry"), "{}", engine.log());
    // The module can match before the worker has heard its transfer end.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !engine.log().contains("recovered") {
        assert!(std::time::Instant::now() < deadline, "{}", engine.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn a_target_with_a_wrong_password_is_reported_and_the_others_go_on() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let (src, local) = (t.path().join("src"), t.path().join("local"));
    std::fs::create_dir(&src).unwrap();
    let pw = t.path().join("wrong.pass");
    write(&pw, b"not the password\n");
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let secret = format!(
        "rsync://{}@127.0.0.1:{}/secret/",
        common::daemon::SECRET_USER,
        d.port
    );
    let engine = Engine::start(
        &t.path().join("state"),
        &[
            "-v",
            &format!("--password-file={}", pw.display()),
            src.to_str().unwrap(),
            local.to_str().unwrap(),
            &secret,
        ],
    );
    fill(&src, "data", 4, 100);
    converges(&src, &local, &[], &engine);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !engine.log().contains("auth failed") {
        assert!(std::time::Instant::now() < deadline, "{}", engine.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = engine.log();
    assert!(log.contains("needs attention"), "{log}");
    assert!(log.contains(&secret), "{log}");
    // `rtsync status` shows the failing target with its cause, and the other one fine.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let table = loop {
        let out = common::rtsync([
            "status",
            &format!("--state-dir={}", t.path().join("state").display()),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("auth failed") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let line_of = |dest: &str| {
        table
            .lines()
            .find(|l| l.starts_with(dest))
            .unwrap_or_else(|| panic!("no line for {dest} in\n{table}"))
            .to_string()
    };
    let failing = line_of(&secret);
    assert!(
        failing.contains("retry") && failing.contains("auth failed"),
        "{table}"
    );
    let fine = line_of(local.to_str().unwrap());
    assert!(fine.contains(" ok ") && !fine.contains("auth"), "{table}");
    // Nothing reached the module, and the local target kept up after the failure too.
    assert!(
        std::fs::read_dir(d.module_path("secret"))
            .unwrap()
            .next()
            .is_none()
    );
    write(&src.join("after the failure"), b"still replicated");
    converges(&src, &local, &[], &engine);
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn a_periodic_resync_repairs_what_no_event_reports() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    fill(&src, "data", 2, 20);
    let engine = Engine::start(
        &t.path().join("state"),
        &[
            "--resync-interval=1",
            src.to_str().unwrap(),
            dst.to_str().unwrap(),
        ],
    );
    converges(&src, &dst, &[], &engine);
    // Drift on the target side: no source event will ever mention these.
    write(&dst.join("data/d0/f0"), b"edited on the target");
    std::fs::remove_file(dst.join("data/d1/f1")).unwrap();
    write(&dst.join("stray"), b"not on the source");
    let took = converges(&src, &dst, &[], &engine);
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn a_toml_config_drives_the_same_engine() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let (src, local) = (t.path().join("src"), t.path().join("local"));
    std::fs::create_dir(&src).unwrap();
    fill(&src, "data", 3, 30);
    write(&src.join("notes.tmp"), b"scratch");
    let config = t.path().join("rtsync.toml");
    write(
        &config,
        format!(
            "source = {src:?}\nstate_dir = {state:?}\nexclude = [\"*.tmp\"]\nverbose = true\n\
             \n[[target]]\ndest = {local:?}\n\
             \n[[target]]\ndest = {daemon:?}\ncompress = true\ntimeout = 20\n",
            src = src.display().to_string(),
            state = t.path().join("state").display().to_string(),
            local = format!("{}/", local.display()),
            daemon = d.url("push/"),
        )
        .as_bytes(),
    );
    let engine = Engine::start(
        &t.path().join("unused-state"),
        &["--config", config.to_str().unwrap()],
    );
    converges(&src, &local, &["notes.tmp"], &engine);
    converges(&src, &d.module_path("push"), &["notes.tmp"], &engine);
    fill(&src, "more", 2, 40);
    converges(&src, &local, &["notes.tmp"], &engine);
    converges(&src, &d.module_path("push"), &["notes.tmp"], &engine);
    assert!(!local.join("notes.tmp").exists());
    assert!(
        t.path().join("state/journal").exists(),
        "state_dir from the file is used"
    );
    assert_eq!(engine.stop(), Some(0));
}

#[test]
fn detached_with_a_pid_file_and_stopped_by_it() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    let (pid_file, log) = (t.path().join("run.pid"), t.path().join("run.log"));
    let out = common::rtsync([
        "run",
        "-d",
        &format!("--pid-file={}", pid_file.display()),
        &format!("--log-file={}", log.display()),
        &format!("--state-dir={}", t.path().join("state").display()),
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
    ]);
    common::ok(&out);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Ok(text) = std::fs::read_to_string(&pid_file)
            && let Ok(pid) = text.trim().parse::<i32>()
        {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "no pid file");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Killed by its pid should the test fail before the clean stop below.
    struct KillOnDrop(Option<i32>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Some(pid) = self.0.and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
    let mut guard = KillOnDrop(Some(pid));
    write(&src.join("hello"), b"from the background");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read(dst.join("hello")).ok().as_deref() != Some(&b"from the background"[..]) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            std::fs::read_to_string(&log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stopped by the pid it wrote (ours alone); a clean stop removes the pid file.
    let pid = rustix::process::Pid::from_raw(pid).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    guard.0 = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while pid_file.exists() {
        assert!(std::time::Instant::now() < deadline, "still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(std::fs::read_to_string(&log).unwrap().contains("stopped"));
}

#[test]
fn a_sersync_confxml_runs_as_it_is() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    fill(&src, "site", 3, 30);
    write(
        &src.join("backup.tar.gz"),
        b"filtered out by sersync's filter",
    );
    let xml = t.path().join("confxml.xml");
    write(
        &xml,
        format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<head version="2.5">
    <host hostip="localhost" port="8008"></host>
    <debug start="false"/>
    <fileSystem xfs="false"/>
    <filter start="true">
        <exclude expression="(.*)\.gz"></exclude>
    </filter>
    <inotify>
        <delete start="true"/>
        <createFolder start="true"/>
        <createFile start="false"/>
        <closeWrite start="true"/>
        <moveFrom start="true"/>
        <moveTo start="true"/>
        <attrib start="false"/>
        <modify start="false"/>
    </inotify>
    <sersync>
        <localpath watch="{src}">
            <remote ip="127.0.0.1" name="open"/>
            <remote ip="127.0.0.1" name="push"/>
        </localpath>
        <rsync>
            <commonParams params="-artuz"/>
            <auth start="false" users="root" passwordfile="/etc/rsync.pas"/>
            <userDefinedPort start="true" port="{port}"/>
            <timeout start="true" time="30"/>
            <ssh start="false"/>
        </rsync>
        <failLog path="/tmp/rsync_fail_log.sh" timeToExecute="60"/>
        <crontab start="false" schedule="600">
            <crontabfilter start="false"><exclude expression="*.php"></exclude></crontabfilter>
        </crontab>
        <plugin start="false" name="command"/>
    </sersync>
    <plugin name="command">
        <param prefix="/bin/sh" suffix="" ignoreError="true"/>
    </plugin>
</head>
"#,
            src = src.display(),
            port = d.port
        )
        .as_bytes(),
    );
    let engine = Engine::start(
        &t.path().join("state"),
        &["-v", "--sersync", xml.to_str().unwrap()],
    );
    let filtered = ["backup.tar.gz"];
    converges(&src, &d.module_path("open"), &filtered, &engine);
    converges(&src, &d.module_path("push"), &filtered, &engine);
    fill(&src, "more", 2, 20);
    std::fs::remove_dir_all(src.join("site/d1")).unwrap();
    converges(&src, &d.module_path("open"), &filtered, &engine);
    converges(&src, &d.module_path("push"), &filtered, &engine);
    assert!(!d.module_path("open").join("backup.tar.gz").exists());
    let log = engine.log();
    assert!(log.contains("failLog is ignored"), "{log}");
    assert_eq!(engine.stop(), Some(0));
}

/// The children of process `pid` (every thread's).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out
}

/// Whether `pid` still runs (a zombie waiting for a reaper does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Found by the proving ground's kill -9 rounds: a transfer the engine had started lived on
/// after the engine was killed, and could apply its old batch (a delete, say) after the next
/// engine had sent newer changes to the same paths.
#[test]
fn a_transfer_does_not_outlive_an_engine_killed_with_kill_9() {
    // A "daemon" that accepts and never answers: the engine's transfer to it waits.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write(&src.join("file"), b"data");
    let engine = Engine::start(
        &tmp.path().join("state"),
        &[
            &format!("{}/", src.display()),
            &format!("rsync://127.0.0.1:{port}/m/"),
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let transfer = loop {
        if let Some(c) = children(engine.pid()).first() {
            break *c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no transfer started:\n{}",
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    engine.kill9();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while running(transfer) {
        assert!(
            std::time::Instant::now() < deadline,
            "transfer {transfer} outlived the engine"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(listener);
}

/// Found by the proving ground's kill -9 rounds: a daemon killed while it wrote a file leaves
/// its temporary file (`.name.XXXXXX`) in the module; retrying the batch alone never removes
/// it, so the target never equalled the source. The retry after a broken connection now
/// compares the directories the batch was writing to in full.
#[test]
fn a_daemon_killed_mid_file_leaves_no_temporary_file_behind() {
    if !have_rsync() {
        return;
    }
    let mut d = StockDaemon::start_rtsync();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    let engine = Engine::start(
        &tmp.path().join("state"),
        &[&format!("{}/", src.display()), &d.url("open/")],
    );
    let module = d.module_path("open");
    converges(&src, &module, &[], &engine);
    common::noise_file(&src.join("dir/big"), 400, 7);
    // Kill the daemon once its temporary file for "big" is there.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let temp_seen = loop {
        let temp = std::fs::read_dir(module.join("dir"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".big."));
        if temp || std::time::Instant::now() > deadline {
            break temp;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    d.pause();
    let left = std::fs::read_dir(module.join("dir"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".big."))
        .count();
    d.resume();
    assert!(
        temp_seen && left > 0,
        "the daemon left no temporary file to clean up"
    );
    converges(&src, &module, &[], &engine);
    assert_eq!(engine.stop(), Some(0));
}

/// Found by the soak run: under steady churn almost every batch named some file that was
/// deleted or renamed before its turn, the transfer exited 24, and the engine sent the whole
/// batch again after a backoff, failing again, lag growing by seconds. Exit 24 now counts as
/// delivered (each vanished file's own later change follows).
#[test]
fn files_vanishing_mid_batch_do_not_make_the_batch_retry() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let engine = Engine::start(
        &tmp.path().join("state"),
        &[&format!("{}/", src.display()), &d.url("open/")],
    );
    let module = d.module_path("open");
    converges(&src, &module, &[], &engine);
    for round in 0..5 {
        let dir = src.join(format!("r{round}"));
        std::fs::create_dir(&dir).unwrap();
        for i in 0..600 {
            write(
                &dir.join(format!("f{i:04}")),
                &testkit::noise(50_000, i + 1),
            );
        }
        // Once the first file has landed, every other one of the last 300 goes.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !module.join(format!("r{round}/f0000")).exists()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        for i in (300..600).step_by(2) {
            let _ = std::fs::remove_file(dir.join(format!("f{i:04}")));
        }
        converges(&src, &module, &[], &engine);
    }
    let log = engine.log();
    assert!(
        !log.contains("exit 24"),
        "a batch was retried for vanished files:\n{log}"
    );
    assert_eq!(engine.stop(), Some(0));
}
