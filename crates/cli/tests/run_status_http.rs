//! `rtsync run --status-listen`: `/metrics` in Prometheus' format and `/status` as JSON report
//! what landed, and garbage or slow requests do not take the endpoint down.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::engine::{Engine, converges};

/// The whole answer to `request`; empty while nothing listens yet.
fn get(port: u16, request: &[u8]) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn metrics_and_status_report_what_landed_and_survive_garbage() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&dst).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let engine = Engine::start(
        &t.path().join("state"),
        &[
            "--status-listen",
            &addr,
            src.to_str().unwrap(),
            &format!("{}/", dst.display()),
        ],
    );
    // The workers publish at least once a second; `name` reaching `at_least` is waited for.
    let wait = |name: &str, at_least: f64| {
        let t0 = Instant::now();
        loop {
            let m = get(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
            let v = m
                .lines()
                .find(|l| l.starts_with(&format!("{name}{{")))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
            if v.is_some_and(|v| v >= at_least) {
                break m;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "{m}\n{}",
                engine.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // The initial sync (one subtree compared) first, then 20 files.
    wait("rtsync_target_batches_total", 1.0);
    let before = wait("rtsync_target_bytes_total", 0.0);
    let bytes_of = |m: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix("rtsync_target_bytes_total{"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap()
    };
    for i in 0..20 {
        std::fs::write(src.join(format!("f{i}")), [b'x'; 1000]).unwrap();
    }
    converges(&src, &dst, &[], &engine);
    let metrics = wait("rtsync_target_paths_total", 21.0);
    // Through rsync (a local target): the 20,000 bytes of data and rsync's framing.
    let sent = bytes_of(&metrics) - bytes_of(&before);
    assert!(
        (20_000.0..40_000.0).contains(&sent),
        "{sent} bytes\n{metrics}"
    );
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    assert!(metrics.contains("# TYPE rtsync_target_lag_seconds gauge"));
    assert!(
        metrics.contains(&format!("target=\"{}/\"", dst.display())),
        "{metrics}"
    );
    assert!(metrics.contains("rtsync_target_pending{"), "{metrics}");

    // Garbage, an oversized head, a client that sends nothing, a wrong method.
    assert!(get(port, b"\x00\x01\x02 what\r\n\r\n").starts_with("HTTP/1.1 400"));
    assert!(get(port, &vec![b'a'; 20_000]).starts_with("HTTP/1.1 400"));
    let silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(get(port, b"POST /status HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    drop(silent);
    assert!(get(port, b"GET /nothing HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));

    let status = get(port, b"GET /status HTTP/1.1\r\n\r\n");
    let body = status.split("\r\n\r\n").nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let target = &v["targets"][0];
    assert_eq!(target["dest"], format!("{}/", dst.display()));
    assert!(target["paths"].as_u64().unwrap() >= 21, "{body}");
    assert_eq!(target["pending"], 0, "{body}");
    assert_eq!(engine.stop(), Some(0));
}
