//! `rtsync run`'s log: a line per event for people, and with `--log-format json` one JSON
//! object per line carrying the event's fields.

mod common;

use std::time::{Duration, Instant};

use common::engine::{Engine, converges};

#[test]
fn json_lines_carry_the_fields_of_each_event() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&dst).unwrap();
    let dest = format!("{}/", dst.display());
    let engine = Engine::start(
        &t.path().join("state"),
        &["-v", "--log-format", "json", src.to_str().unwrap(), &dest],
    );
    std::fs::write(src.join("a"), b"a").unwrap();
    converges(&src, &dst, &[], &engine);
    let t0 = Instant::now();
    let landed = loop {
        let log = engine.log();
        let events: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{log}")))
            .collect();
        if let Some(e) = events.iter().find(|e| e["sent"].is_u64()) {
            break e.clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(landed["level"], "INFO");
    assert_eq!(landed["target_dest"], dest);
    assert_eq!(landed["lane"], "by rsync");
    assert!(landed["took_ms"].is_u64(), "{landed}");
    assert!(
        landed["message"].as_str().unwrap().contains(" sent, "),
        "{landed}"
    );
    assert!(landed["timestamp"].is_string(), "{landed}");
    assert_eq!(engine.stop(), Some(0));
}
