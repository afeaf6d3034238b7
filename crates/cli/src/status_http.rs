//! `rtsync run --status-listen ADDR`: the run's status over HTTP, for Prometheus and for
//! scripts — `GET /metrics` in Prometheus' text format, `GET /status` as the JSON that
//! `rtsync status --json` prints, with the plugins' counters.
//!
//! A few lines of HTTP/1.1 on one thread of its own, not a server library: requests are tiny,
//! one at a time is plenty for a scraper, and every connection is bounded (8 KiB of request,
//! 2 s to send it) so a slow or hostile client cannot hold the endpoint for long. Workers
//! never wait for it: they put their status in a shared map under a short lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::plugins::PluginStatus;
use crate::status::{TargetStatus, now_ms};

/// Every target's last status, by target id.
pub type Live = Arc<Mutex<BTreeMap<String, TargetStatus>>>;

/// The largest request read, and how long a client has to send it.
const MAX_REQUEST: usize = 8 << 10;
const REQUEST_TIME: Duration = Duration::from_secs(2);

/// Binds `addr` and serves from a thread; `state` is the run's state directory (for the
/// plugins' counters).
///
/// # Errors
/// The address cannot be bound.
pub fn start(addr: &str, state: &Path) -> Result<Live, String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("--status-listen {addr}: {e}"))?;
    let live: Live = Arc::default();
    let (l, state) = (live.clone(), state.to_path_buf());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            answer(conn, &l, &state);
        }
    });
    Ok(live)
}

fn answer(mut conn: TcpStream, live: &Live, state: &Path) {
    let (status, kind, body) = match read_request(&mut conn) {
        Some(head) => respond(&head, live, state),
        None => (400, "text/plain", b"bad request\n".to_vec()),
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Bad Request",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.set_write_timeout(Some(REQUEST_TIME));
    let _ = conn
        .write_all(head.as_bytes())
        .and_then(|()| conn.write_all(&body));
}

/// The request line and headers, if they come whole, in time and small enough.
fn read_request(conn: &mut TcpStream) -> Option<String> {
    let deadline = Instant::now() + REQUEST_TIME;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && !got.windows(2).any(|w| w == b"\n\n") {
        let left = deadline.checked_duration_since(Instant::now())?;
        conn.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let n = conn.read(&mut buf).ok().filter(|&n| n > 0)?;
        got.extend_from_slice(buf.get(..n)?);
        if got.len() > MAX_REQUEST {
            return None;
        }
    }
    String::from_utf8(got).ok()
}

/// Status code, content type and body for a request head.
fn respond(head: &str, live: &Live, state: &Path) -> (u16, &'static str, Vec<u8>) {
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return (400, "text/plain", b"bad request\n".to_vec());
    };
    if !version.starts_with("HTTP/1.") {
        return (400, "text/plain", b"bad request\n".to_vec());
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" && path != "/status" {
        return (
            404,
            "text/plain",
            b"not found: try /metrics or /status\n".to_vec(),
        );
    }
    if method != "GET" && method != "HEAD" {
        return (405, "text/plain", b"only GET\n".to_vec());
    }
    let targets: Vec<TargetStatus> = live
        .lock()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    let plugins = read_plugins(state);
    if path == "/metrics" {
        (
            200,
            "text/plain; version=0.0.4",
            render_metrics(&targets, &plugins, now_ms()).into_bytes(),
        )
    } else {
        let v = serde_json::json!({ "targets": targets, "plugins": plugins });
        (
            200,
            "application/json",
            serde_json::to_vec_pretty(&v).unwrap_or_default(),
        )
    }
}

fn read_plugins(state: &Path) -> Vec<PluginStatus> {
    let path: PathBuf = state.join("plugins.json");
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// A label value as the exposition format wants it: `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[allow(clippy::cast_precision_loss)]
fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The Prometheus text for `targets` and `plugins`, lag measured at `now` (Unix ms).
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn render_metrics(targets: &[TargetStatus], plugins: &[PluginStatus], now: u64) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let by_target = |f: &dyn Fn(&TargetStatus) -> f64| -> Vec<(String, f64)> {
        targets
            .iter()
            .map(|t| (format!("target=\"{}\"", label(&t.dest)), f(t)))
            .collect()
    };
    family(
        "rtsync_target_pending",
        "gauge",
        "Paths waiting to be sent.",
        by_target(&|t| t.pending as f64),
    );
    family(
        "rtsync_target_lag_seconds",
        "gauge",
        "Age of the oldest change not yet on the target (0 when none).",
        by_target(&|t| {
            t.oldest_pending_ms
                .map_or(0.0, |o| secs(now.saturating_sub(o)))
        }),
    );
    family(
        "rtsync_target_failing",
        "gauge",
        "1 while the target's last attempt failed and a retry is due.",
        by_target(&|t| if t.next_retry_ms.is_some() { 1.0 } else { 0.0 }),
    );
    family(
        "rtsync_target_batches_total",
        "counter",
        "Batches landed since the run started.",
        by_target(&|t| t.batches as f64),
    );
    family(
        "rtsync_target_paths_total",
        "counter",
        "Paths those batches named.",
        by_target(&|t| t.paths as f64),
    );
    family(
        "rtsync_target_failures_total",
        "counter",
        "Failed attempts since the run started.",
        by_target(&|t| t.failures as f64),
    );
    family(
        "rtsync_target_bytes_total",
        "counter",
        "Bytes sent for batches that landed (stream frames; rsync transfers as their --stats count them).",
        by_target(&|t| t.bytes as f64),
    );
    family(
        "rtsync_target_last_success_timestamp_seconds",
        "gauge",
        "When a batch last landed (Unix time; 0: never).",
        by_target(&|t| t.last_ok_ms.map_or(0.0, secs)),
    );
    let by_plugin = |f: &dyn Fn(&PluginStatus) -> f64| -> Vec<(String, f64)> {
        plugins
            .iter()
            .map(|p| {
                (
                    format!("plugin=\"{}\",kind=\"{}\"", label(&p.name), label(&p.kind)),
                    f(p),
                )
            })
            .collect()
    };
    if !plugins.is_empty() {
        family(
            "rtsync_plugin_calls_total",
            "counter",
            "Plugin calls made.",
            by_plugin(&|p| p.calls as f64),
        );
        family(
            "rtsync_plugin_failures_total",
            "counter",
            "Plugin calls that failed or timed out.",
            by_plugin(&|p| p.failures as f64),
        );
        family(
            "rtsync_plugin_dropped_total",
            "counter",
            "Batches not told to a plugin because its queue was full.",
            by_plugin(&|p| p.dropped as f64),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(dest: &str) -> TargetStatus {
        TargetStatus {
            dest: dest.into(),
            pending: 3,
            oldest_pending_ms: Some(9_000),
            batches: 7,
            paths: 70,
            last_ok_ms: Some(5_500),
            ..TargetStatus::default()
        }
    }

    #[test]
    fn metrics_have_help_type_and_escaped_labels() {
        let text = render_metrics(&[target("h::m\"x\\y\nz")], &[], 10_000);
        assert!(text.contains("# TYPE rtsync_target_pending gauge"));
        assert!(
            text.contains("rtsync_target_pending{target=\"h::m\\\"x\\\\y\\nz\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("rtsync_target_lag_seconds{target=\"h::m\\\"x\\\\y\\nz\"} 1"),
            "{text}"
        );
        assert!(text.contains("rtsync_target_last_success_timestamp_seconds{"));
        assert!(text.contains("} 5.5\n"), "{text}");
        assert!(!text.contains("rtsync_plugin"));
        let p = PluginStatus {
            name: "cdn".into(),
            kind: "http".into(),
            calls: 2,
            ..PluginStatus::default()
        };
        let text = render_metrics(&[], &[p], 0);
        assert!(text.contains("rtsync_plugin_calls_total{plugin=\"cdn\",kind=\"http\"} 2"));
    }

    #[test]
    fn requests_route_or_are_refused() {
        let live: Live = Arc::default();
        live.lock().unwrap().insert("a".into(), target("h::m"));
        let dir = tempfile::tempdir().unwrap();
        let r = |head: &str| respond(head, &live, dir.path()).0;
        assert_eq!(r("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
        assert_eq!(r("GET /status?pretty HTTP/1.0\r\n\r\n"), 200);
        assert_eq!(r("GET / HTTP/1.1\r\n\r\n"), 404);
        assert_eq!(r("POST /metrics HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(r("GET /metrics\r\n\r\n"), 400);
        assert_eq!(r("\u{1}\u{2} garbage"), 400);
        let (_, _, body) = respond("GET /status HTTP/1.1\r\n\r\n", &live, dir.path());
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["targets"][0]["dest"], "h::m");
    }
}
