//! Plugins of `rtsync run` (sersync's): after a batch lands on a target, programs and services
//! are told which paths changed — a `command` run with them (no shell), an `http` POST of them
//! as JSON (the CDN-refresh case), or a `socket` that gets them one per line.
//!
//! Replication never waits for a plugin: each has its own thread and a bounded queue, and a
//! batch that finds the queue full is dropped for that plugin (counted and logged). Each call
//! has a timeout (a command past it is killed, by its own pid). Calls, failures, drops and the
//! last error are kept in `plugins.json` in the run's state directory, which `rtsync status`
//! shows.
//!
//! The http plugin speaks plain HTTP/1.1 over a socket of its own (a few lines, no client
//! library): `https://` is refused when the configuration is read, since a local relay or the
//! CDN's plain endpoint is what these setups use, and a TLS stack would be most of the binary.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::Batch;

pub use crate::plugin_config::{Kind, PluginConfig};
use serde::Serialize;

/// How many landed batches wait for a plugin at most before new ones are dropped for it.
const QUEUE: usize = 256;

/// At most this many paths (and bytes of them) go to one run of a command.
const ARG_BYTES: usize = 64 << 10;

/// What one plugin has done, for `rtsync status`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct PluginStatus {
    pub name: String,
    pub kind: String,
    pub calls: u64,
    pub failures: u64,
    /// Batches not told because its queue was full.
    pub dropped: u64,
    pub last_error: Option<String>,
    pub last_error_ms: Option<u64>,
    pub last_ok_ms: Option<u64>,
}

/// One landed batch for one plugin.
struct Job {
    target: String,
    changed: Vec<PathBuf>,
    deleted: Vec<PathBuf>,
}

struct Runner {
    config: PluginConfig,
    include: Option<filter::FilterList>,
    tx: SyncSender<Job>,
    status: Arc<Mutex<PluginStatus>>,
}

/// The run's plugins.
#[derive(Default)]
pub struct Plugins {
    runners: Vec<Runner>,
}

fn log(msg: &str) {
    tracing::warn!("{msg}");
}

impl Plugins {
    /// Starts a thread per plugin; `src` is the watched tree, `state` where `plugins.json`
    /// goes.
    ///
    /// # Errors
    /// An include pattern that does not parse.
    pub fn start(configs: &[PluginConfig], src: &Path, state: &Path) -> Result<Plugins, String> {
        let all: Arc<Mutex<Vec<Arc<Mutex<PluginStatus>>>>> = Arc::default();
        let mut runners = Vec::new();
        for config in configs {
            let include = if config.include.is_empty() {
                None
            } else {
                let mut list = filter::FilterList::new();
                for p in &config.include {
                    list.add_pattern(p.as_bytes(), false)
                        .map_err(|e| format!("plugin {}: include {p:?}: {e}", config.name))?;
                }
                Some(list)
            };
            let status = Arc::new(Mutex::new(PluginStatus {
                name: config.name.clone(),
                kind: match config.kind {
                    Kind::Command { .. } => "command",
                    Kind::Http { .. } => "http",
                    Kind::Socket { .. } => "socket",
                }
                .to_string(),
                ..PluginStatus::default()
            }));
            if let Ok(mut a) = all.lock() {
                a.push(status.clone());
            }
            let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
            let (c, s, src, state, all) = (
                config.clone(),
                status.clone(),
                src.to_path_buf(),
                state.to_path_buf(),
                all.clone(),
            );
            std::thread::spawn(move || serve(&c, &rx, &s, &src, &|| save(&state, &all)));
            runners.push(Runner {
                config: config.clone(),
                include,
                tx,
                status,
            });
        }
        if !runners.is_empty() {
            save(state, &all);
        }
        Ok(Plugins { runners })
    }

    /// `batch` landed on target `dest`: each plugin that follows it is told, unless its queue
    /// is full. Never blocks.
    pub fn landed(&self, dest: &OsStr, batch: &Batch) {
        for r in &self.runners {
            if !r.config.targets.is_empty() && !r.config.targets.iter().any(|t| t == dest) {
                continue;
            }
            let wanted = |p: &&PathBuf| {
                r.include.as_ref().is_none_or(|inc| {
                    inc.is_excluded(p.as_os_str().as_bytes(), false, filter::Side::Sender)
                })
            };
            let changed: Vec<PathBuf> = batch
                .puts
                .iter()
                .chain(&batch.trees)
                .chain(batch.renames.iter().map(|r| &r.to))
                .filter(wanted)
                .cloned()
                .collect();
            let deleted: Vec<PathBuf> = if r.config.deletes {
                batch
                    .deletes
                    .iter()
                    .chain(batch.renames.iter().map(|r| &r.from))
                    .filter(wanted)
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            if changed.is_empty() && deleted.is_empty() {
                continue;
            }
            let job = Job {
                target: dest.to_string_lossy().into_owned(),
                changed,
                deleted,
            };
            if let Err(TrySendError::Full(_)) = r.tx.try_send(job)
                && let Ok(mut s) = r.status.lock()
            {
                s.dropped += 1;
                // Said once, then every 100th, not at every batch of a flood.
                if s.dropped % 100 == 1 {
                    log(&format!(
                        "plugin {}: busy, {} batch(es) not told so far",
                        r.config.name, s.dropped
                    ));
                }
            }
        }
    }
}

/// Writes every plugin's status to `plugins.json` (temp file, then rename).
fn save(state: &Path, all: &Mutex<Vec<Arc<Mutex<PluginStatus>>>>) {
    let list: Vec<PluginStatus> = all.lock().map_or_else(
        |_| Vec::new(),
        |a| {
            a.iter()
                .filter_map(|s| s.lock().ok().map(|s| s.clone()))
                .collect()
        },
    );
    let (path, tmp) = (state.join("plugins.json"), state.join("plugins.json.tmp"));
    if let Ok(text) = serde_json::to_vec_pretty(&list)
        && std::fs::write(&tmp, text).is_ok()
    {
        let _ = std::fs::rename(&tmp, &path);
    }
}

/// A plugin's thread: one job after another until the run ends.
fn serve(
    c: &PluginConfig,
    rx: &Receiver<Job>,
    status: &Mutex<PluginStatus>,
    src: &Path,
    save: &dyn Fn(),
) {
    while let Ok(job) = rx.recv() {
        let result = match &c.kind {
            Kind::Command {
                argv,
                after,
                per_run,
                stdin,
            } => run_command(argv, after, *per_run, *stdin, src, &job, c.timeout),
            Kind::Http { host, port, path } => post(host, *port, path, &job, c.timeout),
            Kind::Socket { address } => send_lines(address, &job, c.timeout),
        };
        if let Ok(mut s) = status.lock() {
            s.calls += 1;
            match result {
                Ok(()) => s.last_ok_ms = Some(crate::status::now_ms()),
                Err(e) => {
                    tracing::warn!(plugin = %c.name, error = %e, "plugin {}: {e}", c.name);
                    s.failures += 1;
                    s.last_error = Some(e);
                    s.last_error_ms = Some(crate::status::now_ms());
                }
            }
        }
        save();
    }
}

/// Runs the command once per `per_run` paths (fewer when their bytes would pass
/// [`ARG_BYTES`]), or once with all of them on standard input.
fn run_command(
    argv: &[OsString],
    after: &[OsString],
    per_run: usize,
    stdin: bool,
    src: &Path,
    job: &Job,
    timeout: Duration,
) -> Result<(), String> {
    let paths: Vec<PathBuf> = job
        .changed
        .iter()
        .chain(&job.deleted)
        .map(|p| src.join(p))
        .collect();
    if stdin {
        let mut input = Vec::new();
        for p in &paths {
            input.extend_from_slice(p.as_os_str().as_bytes());
            input.push(0);
        }
        return spawn(argv, &[], after, &job.target, Some(&input), timeout);
    }
    let mut chunk: Vec<&OsStr> = Vec::new();
    let mut bytes = 0;
    for p in &paths {
        if !chunk.is_empty() && (chunk.len() >= per_run.max(1) || bytes >= ARG_BYTES) {
            spawn(argv, &chunk, after, &job.target, None, timeout)?;
            chunk.clear();
            bytes = 0;
        }
        bytes += p.as_os_str().len() + 1;
        chunk.push(p.as_os_str());
    }
    if chunk.is_empty() {
        return Ok(());
    }
    spawn(argv, &chunk, after, &job.target, None, timeout)
}

fn spawn(
    argv: &[OsString],
    paths: &[&OsStr],
    after: &[OsString],
    target: &str,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<(), String> {
    let (program, args) = argv.split_first().ok_or("an empty command")?;
    let mut child = Command::new(program)
        .args(args)
        .args(paths)
        .args(after)
        .env("RTSYNC_TARGET", target)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", program.to_string_lossy()))?;
    if let (Some(bytes), Some(mut pipe)) = (input, child.stdin.take()) {
        let bytes = bytes.to_vec();
        // A thread, so that a command that does not read cannot hold us past the timeout.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!("{} ended with {status}", program.to_string_lossy()));
            }
            Ok(None) if Instant::now() >= deadline => {
                // Our own child, by its pid.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} killed after {} ms",
                    program.to_string_lossy(),
                    timeout.as_millis()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Path text for the JSON body and the socket: UTF-8 where the name is (others lossily).
fn text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn connect(address: &str, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<_> = address
        .to_socket_addrs()
        .map_err(|e| format!("{address}: {e}"))?
        .collect();
    let mut last = format!("{address}: no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                let _ = s.set_read_timeout(Some(timeout));
                let _ = s.set_write_timeout(Some(timeout));
                return Ok(s);
            }
            Err(e) => last = format!("{address}: {e}"),
        }
    }
    Err(last)
}

/// The JSON body of an http call.
fn body(job: &Job) -> Vec<u8> {
    let v = serde_json::json!({
        "target": job.target,
        "paths": job.changed.iter().map(|p| text(p)).collect::<Vec<_>>(),
        "deleted": job.deleted.iter().map(|p| text(p)).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

fn post(host: &str, port: u16, path: &str, job: &Job, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    let mut s = connect(&format!("{host}:{port}"), timeout)?;
    let body = body(job);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: rtsync\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(&body))
        .map_err(|e| format!("http://{host}:{port}{path}: {e}"))?;
    // The status line is all we need: "HTTP/1.1 204 No Content".
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.contains(&b'\n') && got.len() < 4096 {
        if started.elapsed() > timeout {
            return Err(format!("http://{host}:{port}{path}: no answer in time"));
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) => return Err(format!("http://{host}:{port}{path}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&got);
    let line = line.lines().next().unwrap_or("").trim();
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(200..=299) => Ok(()),
        _ => Err(format!("http://{host}:{port}{path} answered {line:?}")),
    }
}

fn send_lines(address: &str, job: &Job, timeout: Duration) -> Result<(), String> {
    let mut s = connect(address, timeout)?;
    let mut out = Vec::new();
    for p in job.changed.iter().chain(&job.deleted) {
        out.extend_from_slice(p.as_os_str().as_bytes());
        out.push(b'\n');
    }
    s.write_all(&out).map_err(|e| format!("{address}: {e}"))?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_the_target_the_paths_and_the_deleted() {
        let job = Job {
            target: "h::m".into(),
            changed: vec![PathBuf::from("a b"), PathBuf::from("d/\"q\"")],
            deleted: vec![PathBuf::from("gone")],
        };
        let v: serde_json::Value = serde_json::from_slice(&body(&job)).unwrap();
        assert_eq!(v["target"], "h::m");
        assert_eq!(v["paths"][1], "d/\"q\"");
        assert_eq!(v["deleted"][0], "gone");
    }

    #[test]
    fn a_command_gets_the_paths_in_bounded_runs_and_a_hung_one_is_killed() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let script = format!("printf '%s\\n' \"$@\" >> {}", out.display());
        let argv: Vec<OsString> = vec!["sh".into(), "-c".into(), script.into(), "sh".into()];
        let job = Job {
            target: "t".into(),
            changed: (0..5).map(|i| PathBuf::from(format!("f{i}"))).collect(),
            deleted: Vec::new(),
        };
        let src = Path::new("/src");
        run_command(&argv, &[], 2, false, src, &job, Duration::from_secs(5)).unwrap();
        let lines = std::fs::read_to_string(&out).unwrap();
        assert_eq!(lines.lines().count(), 5);
        assert!(lines.starts_with("/src/f0\n"));
        let hang: Vec<OsString> = vec!["sh".into(), "-c".into(), "sleep 10".into(), "sh".into()];
        let t0 = Instant::now();
        let e =
            run_command(&hang, &[], 1, false, src, &job, Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("killed"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
