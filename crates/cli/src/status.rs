//! `rtsync status`: what each target of each `rtsync run` is doing, read from the status files
//! the run's workers keep in its state directory (`status-ID.json`, replaced atomically about
//! once a second and after every batch), so it works without talking to the running process.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Arg, ArgAction, Command as Cli};
use serde::{Deserialize, Serialize};

use crate::exit;

/// One target's state, as `rtsync status` shows it. Times are Unix milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetStatus {
    pub dest: String,
    /// Paths waiting to be sent.
    pub pending: usize,
    /// When the oldest of them changed: the lag is now minus this.
    pub oldest_pending_ms: Option<u64>,
    pub last_ok_ms: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<u64>,
    pub next_retry_ms: Option<u64>,
    /// Batches landed, paths they named, and failed attempts, since the run started.
    pub batches: u64,
    pub paths: u64,
    pub failures: u64,
    /// Bytes sent for batches that landed: on the rtsync stream, its frames; through rsync,
    /// what each `rtsync sync` counted as sent (`--stats`).
    #[serde(default)]
    pub bytes: u64,
    /// Paths landed per second, and bytes per second, over the last 10 seconds.
    #[serde(default)]
    pub paths_per_sec: f64,
    #[serde(default)]
    pub bytes_per_sec: f64,
    /// The pid of the run that wrote this.
    pub pid: u32,
    pub updated_ms: u64,
}

/// Milliseconds since the epoch, now.
#[must_use]
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An `Instant` as Unix milliseconds.
#[must_use]
pub fn instant_ms(t: Instant) -> u64 {
    let now = Instant::now();
    let ago = now.saturating_duration_since(t);
    let ahead = t.saturating_duration_since(now);
    (now_ms() + u64::try_from(ahead.as_millis()).unwrap_or(0))
        .saturating_sub(u64::try_from(ago.as_millis()).unwrap_or(0))
}

impl TargetStatus {
    /// Replaces `status-ID.json` in `state` (temp file, then rename).
    ///
    /// # Errors
    /// The OS error.
    pub fn save(&self, state: &Path, id: &str) -> std::io::Result<()> {
        let path = state.join(format!("status-{id}.json"));
        let tmp = state.join(format!("status-{id}.json.tmp"));
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)
    }
}

fn cli() -> Cli {
    Cli::new("rtsync status")
        .about("Show each target's queue, lag and last error for running (or stopped) rtsync runs")
        .arg(
            Arg::new("state-dir")
                .long("state-dir")
                .action(ArgAction::Append)
                .value_parser(clap::value_parser!(PathBuf))
                .help("a run's state directory (default: every run under the default base)"),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .action(ArgAction::SetTrue)
                .help("print the status files as one JSON array"),
        )
}

/// Where runs keep their state by default, one directory per run (see `rtsync run --state-dir`).
pub fn default_base() -> PathBuf {
    if fsx::is_root() {
        return PathBuf::from("/var/lib/rtsync");
    }
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("rtsync")
}

fn read_dir_statuses(dir: &Path) -> Vec<TargetStatus> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<TargetStatus> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("status-") && name.ends_with(".json")
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect();
    out.sort_by(|a: &TargetStatus, b| a.dest.cmp(&b.dest));
    out
}

fn age(ms: Option<u64>, now: u64) -> String {
    ms.map_or_else(
        || "-".to_string(),
        |t| {
            let d = Duration::from_millis(now.saturating_sub(t));
            if d < Duration::from_secs(10) {
                format!("{:.2}s", d.as_secs_f64())
            } else {
                format!("{}s", d.as_secs())
            }
        },
    )
}

fn alive(pid: u32) -> bool {
    PathBuf::from(format!("/proc/{pid}")).exists()
}

pub fn main(args: &[OsString]) -> ExitCode {
    let m = match cli().no_binary_name(true).try_get_matches_from(args.iter()) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::SYNTAX } else { 0 });
        }
    };
    let dirs: Vec<PathBuf> = match m.get_many::<PathBuf>("state-dir") {
        Some(d) => d.cloned().collect(),
        None => std::fs::read_dir(default_base())
            .map(|it| it.flatten().map(|e| e.path()).collect())
            .unwrap_or_default(),
    };
    let statuses: Vec<(PathBuf, TargetStatus)> = dirs
        .iter()
        .flat_map(|d| {
            read_dir_statuses(d)
                .into_iter()
                .map(move |s| (d.clone(), s))
        })
        .collect();
    if m.get_flag("json") {
        // The shape of the HTTP endpoint's `GET /status`.
        let targets: Vec<&TargetStatus> = statuses.iter().map(|(_, s)| s).collect();
        let all = serde_json::json!({ "targets": targets, "plugins": plugins_of(&dirs) });
        match serde_json::to_string_pretty(&all) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("rtsync status: {e}");
                return ExitCode::from(exit::SYNTAX);
            }
        }
        return ExitCode::SUCCESS;
    }
    if statuses.is_empty() {
        eprintln!("rtsync status: no rtsync run state found (give --state-dir DIR)");
        return ExitCode::from(exit::SYNTAX);
    }
    let now = now_ms();
    println!(
        "{:<40} {:>5} {:>8} {:>8} {:>8} {:>7} {:>8} {:>9}  LAST ERROR",
        "TARGET", "STATE", "PENDING", "LAG", "LAST OK", "BATCHES", "PATHS/S", "FAILURES"
    );
    for (_, s) in &statuses {
        let state = if !alive(s.pid) {
            "down"
        } else if s.next_retry_ms.is_some() {
            "retry"
        } else {
            "ok"
        };
        let error = match (&s.last_error, s.next_retry_ms) {
            (Some(e), Some(at)) => format!("{e} (retry in {})", age(Some(now), at)),
            (Some(e), None) => format!("{e} ({} ago)", age(s.last_error_ms, now)),
            (None, _) => String::new(),
        };
        println!(
            "{:<40} {:>5} {:>8} {:>8} {:>8} {:>7} {:>8.1} {:>9}  {}",
            s.dest,
            state,
            s.pending,
            age(s.oldest_pending_ms, now),
            age(s.last_ok_ms, now),
            s.batches,
            s.paths_per_sec,
            s.failures,
            error
        );
    }
    print_plugins(&dirs, now);
    ExitCode::SUCCESS
}

/// The plugins of the runs in `dirs` (`plugins.json`, see `plugins.rs`).
fn plugins_of(dirs: &[PathBuf]) -> Vec<crate::plugins::PluginStatus> {
    dirs.iter()
        .filter_map(|d| std::fs::read(d.join("plugins.json")).ok())
        .filter_map(|bytes| {
            serde_json::from_slice::<Vec<crate::plugins::PluginStatus>>(&bytes).ok()
        })
        .flatten()
        .collect()
}

/// The plugins' table, if there are any.
fn print_plugins(dirs: &[PathBuf], now: u64) {
    let plugins = plugins_of(dirs);
    if plugins.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<24} {:<8} {:>7} {:>9} {:>8} {:>8}  LAST ERROR",
        "PLUGIN", "KIND", "CALLS", "FAILURES", "DROPPED", "LAST OK"
    );
    for p in plugins {
        let error = p
            .last_error
            .map(|e| format!("{e} ({} ago)", age(p.last_error_ms, now)))
            .unwrap_or_default();
        println!(
            "{:<24} {:<8} {:>7} {:>9} {:>8} {:>8}  {}",
            p.name,
            p.kind,
            p.calls,
            p.failures,
            p.dropped,
            age(p.last_ok_ms, now),
            error
        );
    }
}
