//! Plugins of `rtsync run`: after a batch lands, a command gets the paths as arguments, an
//! http endpoint gets them as JSON, a socket gets them one per line; a plugin that hangs is
//! killed at its timeout and counted, and never holds replication up.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::engine::{Engine, converges};

/// A one-thread server that answers each request with 204 and keeps the bodies.
fn http_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let keep = bodies.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then Content-Length bytes of body.
            loop {
                let text = String::from_utf8_lossy(&got).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|n| n.trim().parse().ok())
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len {
                        keep.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&got[end + 4..end + 4 + len]).into());
                        break;
                    }
                }
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    (port, bodies)
}

/// A listener that keeps what each connection sends.
fn socket_server() -> (u16, Arc<Mutex<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let text: Arc<Mutex<String>> = Arc::default();
    let keep = text.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut got = String::new();
            let _ = s.read_to_string(&mut got);
            keep.lock().unwrap().push_str(&got);
        }
    });
    (port, text)
}

fn wait_for(what: &str, engine: &Engine, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{what} did not happen\n{}",
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn command_http_and_socket_plugins_hear_what_landed_and_a_hung_one_holds_nothing_up() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst, state) = (
        t.path().join("src"),
        t.path().join("dst"),
        t.path().join("state"),
    );
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&dst).unwrap();
    let out = t.path().join("command.out");
    let (http_port, bodies) = http_server();
    let (socket_port, lines) = socket_server();
    // The command appends each path it gets, NUL-terminated, once the file is on the target.
    let script = format!(
        "for p; do test -e \"{dst}/${{p#{src}/}}\" && printf '%s\\0' \"$p\" >> {out}; done",
        dst = dst.display(),
        src = src.display(),
        out = out.display()
    );
    let config = format!(
        r#"source = {src:?}
state_dir = {state:?}
[[target]]
dest = {dst:?}

[[plugin]]
name = "list"
kind = "command"
command = ["sh", "-c", {script:?}, "sh"]

[[plugin]]
name = "cdn"
kind = "http"
url = "http://127.0.0.1:{http_port}/purge"
include = ["*.html"]

[[plugin]]
name = "feed"
kind = "socket"
address = "127.0.0.1:{socket_port}"

[[plugin]]
name = "stuck"
kind = "command"
command = ["sh", "-c", "sleep 30", "sh"]
timeout_ms = 300
"#,
        src = src.display().to_string(),
        state = state.display().to_string(),
        dst = format!("{}/", dst.display()),
    );
    let file = t.path().join("rtsync.toml");
    std::fs::write(&file, config).unwrap();
    let engine = Engine::start(&state, &["--config", file.to_str().unwrap()]);
    // The initial sync has landed (its plugins heard of the tree as a whole).
    wait_for("the initial sync", &engine, || {
        status(&state).is_some_and(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "list" && p["calls"].as_u64().unwrap_or(0) >= 1)
        })
    });

    let names = ["with space.html", "new\nline.txt", "plain.html"];
    for n in names {
        std::fs::write(src.join(n), n).unwrap();
    }
    // Replication does not wait for the stuck plugin.
    let took = converges(&src, &dst, &[], &engine);
    assert!(took < Duration::from_secs(5), "{took:?}");

    let want: Vec<String> = names
        .iter()
        .map(|n| format!("{}", src.join(n).display()))
        .collect();
    wait_for("the command's paths", &engine, || {
        let got = std::fs::read(&out).unwrap_or_default();
        let got: Vec<String> = got
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        want.iter().all(|w| got.contains(w))
    });
    wait_for("the http POST", &engine, || {
        let b = bodies.lock().unwrap().join("\n");
        b.contains("with space.html") && b.contains("plain.html")
    });
    let all = bodies.lock().unwrap().join("\n");
    assert!(
        !all.contains("line.txt"),
        "the include let a .txt through: {all}"
    );
    let body: serde_json::Value =
        serde_json::from_str(bodies.lock().unwrap().last().unwrap()).unwrap();
    assert_eq!(body["target"], format!("{}/", dst.display()));
    wait_for("the socket's lines", &engine, || {
        let l = lines.lock().unwrap();
        l.contains("with space.html\n") && l.contains("new\nline.txt\n")
    });
    // A deletion: the http and socket plugins hear of it, the command (sersync's) does not.
    std::fs::remove_file(src.join("plain.html")).unwrap();
    converges(&src, &dst, &[], &engine);
    wait_for("the deletion's POST", &engine, || {
        bodies
            .lock()
            .unwrap()
            .iter()
            .any(|b| b.contains("\"deleted\":[\"plain.html\"]"))
    });
    // The stuck one was killed at its timeout and counted.
    wait_for(
        "the stuck plugin's failures in plugins.json",
        &engine,
        || {
            status(&state).is_some_and(|s| {
                s.as_array().unwrap().iter().any(|p| {
                    p["name"] == "stuck"
                        && p["failures"].as_u64().unwrap_or(0) >= 1
                        && p["last_error"].as_str().unwrap_or("").contains("killed")
                })
            })
        },
    );
    let s = status(&state).unwrap();
    let list = s
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "list")
        .unwrap();
    assert_eq!(list["failures"], 0, "{s}");
    let shown = common::rtsync(["status", "--state-dir", state.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("stuck") && shown.contains("killed"),
        "{shown}"
    );
    let json = common::rtsync(["status", "--json", "--state-dir", state.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["targets"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json["targets"][0]["dest"], format!("{}/", dst.display()));
    let stuck = json["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "stuck"))
        .unwrap_or_else(|| panic!("no plugin \"stuck\" in {json}"));
    assert!(stuck["failures"].as_u64().unwrap_or(0) >= 1, "{json}");
    assert_eq!(engine.stop(), Some(0));
}

fn status(state: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(state.join("plugins.json")).ok()?).ok()
}
