//! SIGHUP makes `rtsync run --config` read its file again: a target added starts (with its
//! initial sync), a target removed stops, one whose settings changed starts again from the
//! journal, the others go on untouched, and nothing is compared in full; a broken file
//! changes nothing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::engine::{Engine, converges};

fn config(path: &Path, src: &Path, state: &Path, targets: &[(&Path, u64)]) {
    let mut text = format!(
        "source = {:?}\nstate_dir = {:?}\nverbose = true\n",
        src.display().to_string(),
        state.display().to_string()
    );
    for (dest, timeout) in targets {
        text.push_str(&format!(
            "[[target]]\ndest = {:?}\ntimeout = {timeout}\n",
            format!("{}/", dest.display())
        ));
    }
    std::fs::write(path, text).unwrap();
}

fn hup(engine: &Engine) {
    let pid = rustix::process::Pid::from_raw(engine.pid() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
}

fn wait_log(engine: &Engine, what: &str) {
    let t0 = Instant::now();
    while !engine.log().contains(what) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no {what:?} in the log:\n{}",
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_adds_removes_and_restarts_targets_without_a_full_compare() {
    let t = tempfile::tempdir().unwrap();
    let (src, a, b) = (t.path().join("src"), t.path().join("a"), t.path().join("b"));
    for d in [&src, &a, &b] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(src.join("first"), b"1").unwrap();
    let state = t.path().join("state");
    let file = t.path().join("rtsync.toml");
    config(&file, &src, &state, &[(&a, 15)]);
    let engine = Engine::start(&state, &["--config", file.to_str().unwrap()]);
    converges(&src, &a, &[], &engine);

    // Add b: it gets the initial sync; a is not touched.
    config(&file, &src, &state, &[(&a, 15), (&b, 15)]);
    hup(&engine);
    wait_log(
        &engine,
        "reloaded: 2 target(s); 0 restarted, 1 added, 0 removed",
    );
    converges(&src, &b, &[], &engine);
    std::fs::write(src.join("second"), b"2").unwrap();
    converges(&src, &a, &[], &engine);
    converges(&src, &b, &[], &engine);

    // A broken file: nothing changes, replication goes on.
    std::fs::write(&file, "source = \n").unwrap();
    hup(&engine);
    wait_log(&engine, "going on as before");
    std::fs::write(src.join("third"), b"3").unwrap();
    converges(&src, &a, &[], &engine);
    converges(&src, &b, &[], &engine);

    // Remove a, change b's timeout: b starts again from the journal, a gets nothing more.
    config(&file, &src, &state, &[(&b, 20)]);
    hup(&engine);
    wait_log(
        &engine,
        "reloaded: 1 target(s); 1 restarted, 0 added, 1 removed",
    );
    std::fs::write(src.join("fourth"), b"4").unwrap();
    converges(&src, &b, &[], &engine);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!a.join("fourth").exists());
    // One full compare per target that was added (a at start, b when added), none more.
    assert_eq!(
        engine.log().matches("1 subtree(s) compared").count(),
        2,
        "{}",
        engine.log()
    );
    assert_eq!(engine.stop(), Some(0));
}
