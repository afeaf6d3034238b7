//! `rtsync run SRC DEST...`: the real-time mirror (what sersync and lsyncd do).
//!
//! One watcher thread owns the inotify instance. It turns events into [`Change`]s, appends them
//! to the journal, fsyncs it, and only then hands them to every target. Each target has its own
//! worker thread with its own [`Coalescer`], so a slow or dead target never holds up the others
//! and its backlog stays bounded (it widens into subtree resyncs rather than growing).
//!
//! A ready batch becomes at most two transfers, each a child `rtsync sync` (the same client a
//! user runs by hand, so every target kind — local directory, `host::module`, `rsync://`,
//! remote shell — works alike, and a crashing transfer cannot take the engine down):
//! - subtrees to resync: `-a -R --delete --force --delete-missing-args SRC/./dir...`;
//! - paths named by events: `-a -I --force --delete-missing-args --from0 --files-from=LIST`,
//!   `-I` because a rewrite within the same second at the same size would pass rsync's quick
//!   check unsent.
//!
//! A batch that lands is acknowledged in the journal; one that fails goes back under newer
//! changes and is retried with jittered backoff (forever for transient failures, slowly for
//! permanent ones). After a crash, each target replays what it never acknowledged, then
//! verifies with a full resync. SIGTERM or SIGINT stops watching, lets in-flight transfers end
//! within a bound, keeps the rest in the journal and exits 0.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::hash::{BuildHasher, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Arg, ArgAction, Command as Cli};
use engine::{Backoff, Batch, Change, Coalescer, Failure, Flights, Journal, Settings, changes_of};
use watch::{InotifyWatcher, Pairer, Selector, WatchOptions, Watcher, mask};

use crate::content_index;
use crate::exit;
use crate::plugins::Plugins;
use crate::push_stream::{self, Pipe};
use crate::rsync_errors;
use crate::run_config::{RunConfig, TargetConfig};
use crate::schedule::Schedule;
use crate::sd_notify;
use crate::status::{TargetStatus, instant_ms, now_ms};
use crate::status_http;
use crate::stream_lanes::{Choice, Lanes, Sent};

/// How often each worker rewrites its status file for `rtsync status`.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// How often the journal is cut down to what some target still needs.
const JOURNAL_COMPACTION: Duration = Duration::from_secs(10);

/// How long in-flight transfers may run on after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

fn cli() -> Cli {
    Cli::new("rtsync run")
        .about("Mirror SRC to every DEST in real time: watch it, push each change, lose nothing")
        .override_usage("rtsync run [OPTIONS] SRC DEST...")
        .arg(
            Arg::new("src")
                .required_unless_present_any(["config", "sersync"])
                .value_parser(clap::value_parser!(PathBuf)),
        )
        .arg(
            Arg::new("dest")
                .required_unless_present_any(["config", "sersync"])
                .num_args(1..)
                .value_parser(clap::value_parser!(OsString)),
        )
        .arg(
            Arg::new("config")
                .long("config")
                .short('o')
                .value_parser(clap::value_parser!(PathBuf))
                .conflicts_with_all([
                    "src",
                    "dest",
                    "exclude",
                    "no-default-excludes",
                    "initial-sync",
                    "no-initial-sync",
                    "state-dir",
                    "resync-interval",
                    "resync-cron",
                    "password-file",
                    "compress",
                    "bwlimit",
                ])
                .help("read the source, targets and settings from a TOML file (see README)"),
        )
        .arg(
            Arg::new("sersync")
                .long("sersync")
                .value_parser(clap::value_parser!(PathBuf))
                .conflicts_with_all(["src", "dest", "config", "exclude", "password-file"])
                .help("read a sersync confxml.xml (what cannot be mapped is named in a warning)"),
        )
        .arg(
            Arg::new("exclude")
                .long("exclude")
                .action(ArgAction::Append)
                .help("rsync pattern of paths not to replicate (repeatable)"),
        )
        .arg(
            Arg::new("no-default-excludes")
                .long("no-default-excludes")
                .action(ArgAction::SetTrue)
                .help("replicate editor temp files too (*.swp, *.swx, *~, .#*, 4913, .~tmp~)"),
        )
        .arg(
            Arg::new("initial-sync")
                .short('r')
                .long("initial-sync")
                .action(ArgAction::SetTrue)
                .help("full sync of every target at start (the default; sersync's -r)"),
        )
        .arg(
            Arg::new("no-initial-sync")
                .long("no-initial-sync")
                .action(ArgAction::SetTrue)
                .conflicts_with("initial-sync")
                .help("send only what changes from now on"),
        )
        .arg(
            Arg::new("resync-interval")
                .long("resync-interval")
                .value_parser(clap::value_parser!(u64).range(1..))
                .help("also compare everything every N seconds (sersync's crontab)"),
        )
        .arg(
            Arg::new("workers")
                .short('n')
                .long("workers")
                .value_parser(|v: &str| match v.parse::<usize>() {
                    Ok(n @ 1..=64) => Ok(n),
                    _ => Err(format!("{v:?} is not a number from 1 to 64")),
                })
                .help("transfers a big batch to a target may go as at once (sersync's -n; default 4); also the stream connections to an rtsync daemon"),
        )
        .arg(
            Arg::new("log-format")
                .long("log-format")
                .value_parser(["human", "json"])
                .default_value("human")
                .help("the log's form: a line per event for people, or JSON lines with every field"),
        )
        .arg(
            Arg::new("status-listen")
                .long("status-listen")
                .value_name("ADDR")
                .help("serve GET /metrics (Prometheus) and /status (JSON) on ADDR, say 127.0.0.1:9873"),
        )
        .arg(
            Arg::new("resync-cron")
                .long("resync-cron")
                .value_name("EXPR")
                .help("also compare everything at the times of a cron expression, local time (\"0 3 * * *\": 03:00 daily)"),
        )
        .arg(
            Arg::new("state-dir")
                .long("state-dir")
                .value_parser(clap::value_parser!(PathBuf))
                .help("where the journal lives (default: /var/lib/rtsync/ID as root, else ~/.local/state/rtsync/ID)"),
        )
        .arg(
            Arg::new("settle")
                .long("settle")
                .value_parser(clap::value_parser!(u64))
                .default_value("20")
                .help("milliseconds without changes before a batch goes"),
        )
        .arg(
            Arg::new("max-latency")
                .long("max-latency")
                .value_parser(clap::value_parser!(u64))
                .default_value("200")
                .help("milliseconds a change may wait at most under a steady stream"),
        )
        .arg(
            Arg::new("batch-gap")
                .long("batch-gap")
                .value_parser(clap::value_parser!(u64))
                .default_value("500")
                .help("milliseconds between batches through rsync under a steady stream (each costs a connection; 0: none)"),
        )
        .arg(
            Arg::new("password-file")
                .long("password-file")
                .value_parser(clap::value_parser!(PathBuf))
                .help("password for rsync daemon targets"),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_parser(clap::value_parser!(u64))
                .default_value("15")
                .help("I/O timeout of each transfer, in seconds"),
        )
        .arg(crate::sync::bwlimit_arg(
            "limit each target's network I/O to RATE (KiB/s unless suffixed: 1.5M)",
        ))
        .arg(
            Arg::new("compress")
                .short('z')
                .long("compress")
                .action(ArgAction::SetTrue)
                .help("compress transfers to remote targets"),
        )
        .arg(
            Arg::new("detach")
                .short('d')
                .long("detach")
                .action(ArgAction::SetTrue)
                .help("run in the background (sersync's -d): log to --log-file, write --pid-file"),
        )
        .arg(
            Arg::new("pid-file")
                .long("pid-file")
                .value_parser(clap::value_parser!(PathBuf))
                .help("write the process id here (removed on a clean stop)"),
        )
        .arg(
            Arg::new("log-file")
                .long("log-file")
                .value_parser(clap::value_parser!(PathBuf))
                .help("with -d: where the log goes (default: rtsync.log in the state dir)"),
        )
        .arg(
            Arg::new("verbose")
                .short('v')
                .long("verbose")
                .action(ArgAction::SetTrue)
                .help("log every batch"),
        )
}

/// One place changes go to.
#[derive(Clone)]
struct Target {
    /// Stable name for its journal acknowledgement.
    id: String,
    dest: OsString,
    /// Its own `rtsync sync` options (password file, compression, timeout).
    args: Vec<OsString>,
    /// A transfer that does no I/O for this long is killed.
    kill_after: Duration,
    /// `--timeout`: how long a stream may stay silent while a batch awaits its
    /// acknowledgement.
    silence: Duration,
    /// A daemon module, which may offer the rtsync stream.
    stream: Option<push_stream::StreamTarget>,
    /// Bytes its `rtsync sync` transfers said they sent, not yet counted in its status.
    rsync_sent: Arc<AtomicU64>,
}

/// What every transfer of the run shares.
struct Transfers {
    exe: PathBuf,
    src: PathBuf,
    state: PathBuf,
    common: Vec<OsString>,
    verbose: bool,
    /// When to compare everything, whatever the events say.
    resync: Schedule,
    /// What those periodic compares also skip.
    resync_exclude: Vec<String>,
    /// Set on shutdown after the grace period: running transfers are killed.
    abort: Arc<AtomicBool>,
    /// What the source holds, for content shortcuts on the stream (only with daemon targets).
    contents: Option<content_index::Shared>,
    /// Told what lands.
    plugins: Arc<Plugins>,
    /// Every target's status as its worker last saved it, for `--status-listen`.
    live: Option<status_http::Live>,
    /// How many transfers a big batch may go as at once (sersync's `-n`).
    workers: usize,
}

/// How one child transfer ended: on failure, its kind, the cause for the log, and all it
/// printed (for [`rsync_errors`]).
type Outcome = Result<(), (Failure, String, String)>;

/// What a `rtsync sync --stats` printed as sent, from its closing line
/// `sent 1,234 bytes  received 56 bytes  ...`: to a daemon or over a remote shell the bytes
/// written to the connection (file list included), to a local directory the file data and its
/// framing, as rsync counts them. `None` without such a line.
fn sent_bytes(stdout: &str) -> Option<u64> {
    stdout.lines().rev().find_map(|line| {
        let (n, _) = line.strip_prefix("sent ")?.split_once(" bytes")?;
        n.replace(',', "").parse().ok()
    })
}

/// Why a transfer through rsync failed.
struct Failed {
    failure: Failure,
    why: String,
    /// For a partial failure (rsync's exit 23), what to send again when its error lines
    /// tell (see [`rsync_errors`]); `None`: the whole batch.
    resend: Option<Vec<Change>>,
}

impl Failed {
    fn new(failure: Failure, why: String) -> Failed {
        Failed {
            failure,
            why,
            resend: None,
        }
    }
}

enum Msg {
    Changes(Vec<(u64, Change)>, Instant),
    /// A batch through rsync ended: its number in [`Flights`], how, the batch, how long it took.
    Done(u64, Result<(), Failed>, Batch, Duration),
    /// From a stream's acknowledgement reader: its connection's generation and what came.
    Stream(u64, push_stream::Event),
    Stop,
}

fn fnv(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{h:016x}")
}

fn jitter() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// An event of the run as a whole (see [`crate::logging`] for how it is written).
fn log(msg: &str) {
    tracing::info!("{msg}");
}

pub fn main(args: &[OsString]) -> ExitCode {
    let m = match cli().no_binary_name(true).try_get_matches_from(args.iter()) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::SYNTAX } else { 0 });
        }
    };
    crate::logging::init(
        m.get_one::<String>("log-format")
            .is_some_and(|f| f == "json"),
    );
    if m.get_flag("detach") {
        return detach(args, &m);
    }
    let config = load_config(&m);
    let pid_file = m.get_one::<PathBuf>("pid-file").cloned();
    if let Some(p) = &pid_file
        && let Err(e) = std::fs::write(p, format!("{}\n", std::process::id()))
    {
        eprintln!("rtsync run: {}: {e}", p.display());
        return ExitCode::from(exit::SYNTAX);
    }
    let result = config.and_then(|c| run(&c, &|| load_config(&m)));
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("rtsync run: {msg}");
            ExitCode::from(exit::SYNTAX)
        }
    }
}

/// The run's configuration, from `--sersync`, `--config` or the command line (read again on
/// SIGHUP).
fn load_config(m: &clap::ArgMatches) -> Result<RunConfig, String> {
    if let Some(path) = m.get_one::<PathBuf>("sersync") {
        crate::sersync::read(path).map(|mapped| {
            for w in &mapped.warnings {
                log(&format!("{}: {w}", path.display()));
            }
            let mut config = mapped.config;
            config.state_dir = m.get_one::<PathBuf>("state-dir").cloned();
            config.verbose = m.get_flag("verbose");
            config.initial_sync = !m.get_flag("no-initial-sync");
            config.status_listen = m.get_one::<String>("status-listen").cloned();
            if let Some(n) = m.get_one::<usize>("workers") {
                config.workers = *n;
            }
            config
        })
    } else if let Some(path) = m.get_one::<PathBuf>("config") {
        RunConfig::from_file(path).map(|mut config| {
            if let Some(addr) = m.get_one::<String>("status-listen") {
                config.status_listen = Some(addr.clone());
            }
            if let Some(n) = m.get_one::<usize>("workers") {
                config.workers = *n;
            }
            config
        })
    } else {
        RunConfig::from_args(m)
    }
}

/// `-d`: starts this same command again without `-d`, in its own process group (so the
/// terminal's Ctrl-C and hang-up do not reach it), its output going to the log file, and
/// returns once it runs. The child writes the pid file itself, so it names the real process.
fn detach(args: &[OsString], m: &clap::ArgMatches) -> ExitCode {
    let rest: Vec<&OsString> = args
        .iter()
        .filter(|a| a.as_os_str() != "-d" && a.as_os_str() != "--detach")
        .collect();
    let log_path = m
        .get_one::<PathBuf>("log-file")
        .cloned()
        .unwrap_or_else(|| {
            m.get_one::<PathBuf>("state-dir")
                .cloned()
                .unwrap_or_else(std::env::temp_dir)
                .join("rtsync.log")
        });
    if let Some(dir) = log_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("rtsync run: {}: {e}", log_path.display());
            return ExitCode::from(exit::SYNTAX);
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("rtsync run: cannot find my own binary: {e}");
            return ExitCode::from(exit::SYNTAX);
        }
    };
    let spawned = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .arg("run")
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
    };
    match spawned {
        Ok(child) => {
            eprintln!(
                "rtsync run: running in the background as pid {}, logging to {}",
                child.id(),
                log_path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rtsync run: cannot start in the background: {e}");
            ExitCode::from(exit::SYNTAX)
        }
    }
}

/// Set on each transfer `rtsync run` starts: the engine's pid.
const ENGINE_PID: &str = "RTSYNC_ENGINE_PID";

/// In a transfer started by `rtsync run`: asks the kernel to kill it when the engine dies, and
/// says whether the engine is gone already. An engine killed with `kill -9` must not leave a
/// transfer behind that applies an old batch (say, a delete) after the next engine has sent
/// newer changes to the same paths.
pub fn transfer_outlived_its_engine() -> bool {
    let Some(engine) = std::env::var(ENGINE_PID)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return false;
    };
    // The signal comes when the thread that started us ends: the engine's thread for a batch
    // waits for its transfer, so that is when the engine dies.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    rustix::process::getppid()
        .map(rustix::process::Pid::as_raw_nonzero)
        .map(std::num::NonZero::get)
        != Some(engine)
}

fn default_state_dir(id: &str) -> PathBuf {
    crate::status::default_base().join(id)
}

/// The index of the source's content for shortcuts on the stream, built by one walk beside
/// everything else; only when some target may take the stream.
fn content_index_for(
    targets: &[Target],
    src: &Path,
    rules: &filter::FilterList,
) -> Option<content_index::Shared> {
    targets.iter().any(|t| t.stream.is_some()).then(|| {
        let index = content_index::Shared::default();
        let (index2, src2, rules2) = (index.clone(), src.to_path_buf(), rules.clone());
        std::thread::spawn(move || {
            let excluded =
                |p: &[u8], is_dir: bool| rules2.is_excluded(p, is_dir, filter::Side::Sender);
            content_index::walk(&index2, &src2, &excluded);
        });
        index
    })
}

/// The targets `config` names, with what their transfers need.
fn targets_of(config: &RunConfig) -> Vec<Target> {
    config
        .targets
        .iter()
        .map(|t| {
            let mut args: Vec<OsString> = vec![format!("--timeout={}", t.timeout).into()];
            if t.compress {
                args.push("-z".into());
            }
            if let Some(pw) = &t.password_file {
                let mut arg = OsString::from("--password-file=");
                arg.push(pw);
                args.push(arg);
            }
            if let Some(kib) = t.bwlimit {
                args.push(format!("--bwlimit={kib}").into());
            }
            Target {
                id: fnv(t.dest.as_bytes()),
                dest: t.dest.clone(),
                stream: push_stream::StreamTarget::of(
                    t.dest.as_bytes(),
                    t.password_file.as_deref(),
                    t.timeout,
                )
                .map(|s| push_stream::StreamTarget {
                    bwlimit: t.bwlimit.map(|kib| kib.saturating_mul(1024)),
                    ..s
                }),
                args,
                // A backstop: the child's own --timeout ends a silent transfer first.
                kill_after: Duration::from_secs(t.timeout.max(1) * 4),
                silence: Duration::from_secs(t.timeout.max(1)),
                rsync_sent: Arc::default(),
            }
        })
        .collect()
}

fn is_remote(dest: &OsString) -> bool {
    let b = dest.as_bytes();
    b.starts_with(b"rsync://") || b.windows(2).any(|w| w == b"::")
}

#[allow(clippy::too_many_lines)]
fn run(
    config: &RunConfig,
    reload_config: &dyn Fn() -> Result<RunConfig, String>,
) -> Result<(), String> {
    let src = std::fs::canonicalize(&config.source)
        .map_err(|e| format!("{}: {e}", config.source.display()))?;
    if !src.is_dir() {
        return Err(format!("{} is not a directory", src.display()));
    }
    let targets = targets_of(config);

    let patterns = &config.exclude;
    let mut rules = filter::FilterList::new();
    for p in patterns {
        rules
            .add_pattern(p.as_bytes(), false)
            .map_err(|e| format!("exclude {p:?}: {e}"))?;
    }

    let run_id = {
        let mut key = src.as_os_str().as_bytes().to_vec();
        for t in &targets {
            key.push(0);
            key.extend_from_slice(t.dest.as_bytes());
        }
        fnv(&key)
    };
    let state = config
        .state_dir
        .clone()
        .unwrap_or_else(|| default_state_dir(&run_id));
    let journal = Journal::open(&state).map_err(|e| e.to_string())?;
    let journal = Arc::new(Mutex::new(journal));
    // Present while we run: finding it at start means the last run did not stop cleanly, and
    // whatever changed while nobody watched must be found by comparing everything.
    let running = state.join("running");
    let crashed = running.exists();
    std::fs::write(&running, std::process::id().to_string())
        .map_err(|e| format!("{}: {e}", running.display()))?;

    // -H: links made together (and the whole tree at a resync) stay links on the target.
    // --modify-window=-1: a stock receiver otherwise calls two times in the same second equal,
    // and a file rewritten within a second at the same size would never be put right.
    let mut common: Vec<OsString> = vec!["-H".into(), "--modify-window=-1".into()];
    for p in patterns {
        common.push(format!("--exclude={p}").into());
    }
    let contents = content_index_for(&targets, &src, &rules);
    let abort = Arc::new(AtomicBool::new(false));
    let transfers = Arc::new(Transfers {
        exe: std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?,
        src: src.clone(),
        state: state.clone(),
        common,
        verbose: config.verbose,
        resync: Schedule::new(config.resync_interval, config.resync_cron.as_deref())?,
        resync_exclude: config.resync_exclude.clone(),
        abort: abort.clone(),
        contents: contents.clone(),
        plugins: Arc::new(Plugins::start(&config.plugins, &src, &state)?),
        workers: config.workers,
        live: match &config.status_listen {
            Some(addr) => Some(status_http::start(addr, &state)?),
            None => None,
        },
    });
    let settings = Settings {
        settle: config.settle,
        max_latency: config.max_latency,
        min_gap: config.batch_gap,
        ..Settings::default()
    };
    let initial_sync = config.initial_sync;
    if crashed {
        log("the last run did not stop cleanly: every target is compared in full after its replay");
    }

    // Watch first: whatever changes during the initial sync is queued, not missed.
    let mut selector = Selector::new();
    selector.rsync_rules(rules.clone());
    let opts = WatchOptions {
        recursive: true,
        // MODIFY too: setting a modification time alone is reported as a write, not ATTRIB.
        events: mask::CREATE
            | mask::MODIFY
            | mask::CLOSE_WRITE
            | mask::ATTRIB
            | mask::DELETE
            | mask::MOVED_FROM
            | mask::MOVED_TO
            | mask::DELETE_SELF
            | mask::MOVE_SELF,
        no_dereference: true,
        selector,
    };
    let mut watcher = Watcher::Inotify(InotifyWatcher::new(opts).map_err(|e| e.to_string())?);
    watcher.add(&src).map_err(|e| e.to_string())?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| e.to_string())?;
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
        .map_err(|e| e.to_string())?;

    let mut fleet = Fleet {
        workers: Vec::new(),
        config: config.clone(),
        transfers: transfers.clone(),
    };
    for (t, tc) in targets.into_iter().zip(&config.targets) {
        let settings = settings_for(&t, settings);
        fleet.start(
            t,
            tc,
            &transfers,
            &journal,
            settings,
            (initial_sync, crashed),
        )?;
    }
    let watching = format!(
        "watching {} and replicating to {} target(s); journal in {}",
        src.display(),
        fleet.workers.len(),
        state.display()
    );
    log(&watching);
    sd_notify::ready(&watching);

    let mut pairer = Pairer::new();
    let result = loop {
        let ids: Vec<String> = fleet.workers.iter().map(|w| w.id.clone()).collect();
        let senders: Vec<Sender<Msg>> = fleet.workers.iter().map(|w| w.tx.clone()).collect();
        let looped = watch_loop(
            &mut watcher,
            &mut pairer,
            &src,
            &journal,
            &ids,
            &senders,
            (&stop, &reload),
        );
        if looped.is_err() || stop.load(Ordering::SeqCst) {
            break looped;
        }
        reload.store(false, Ordering::SeqCst);
        sd_notify::reloading();
        match reload_config() {
            Ok(new) => {
                if let Err(e) = fleet.reload(&new, &src, &rules, &journal) {
                    log(&format!("reload: {e}"));
                }
            }
            Err(e) => log(&format!("reload: {e}; going on as before")),
        }
        sd_notify::ready(&format!(
            "watching {} and replicating to {} target(s)",
            src.display(),
            fleet.workers.len()
        ));
    };
    sd_notify::stopping();
    for w in &fleet.workers {
        let _ = w.tx.send(Msg::Stop);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while fleet.workers.iter().any(|w| !w.handle.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    abort.store(true, Ordering::SeqCst);
    for w in fleet.workers {
        let _ = w.handle.join();
    }
    if let Ok(mut j) = journal.lock() {
        let _ = j.sync();
    }
    if result.is_ok() {
        let _ = std::fs::remove_file(&running);
    }
    log("stopped; what was not sent stays in the journal for the next start");
    result
}

/// Reads events until asked to stop (or to reload), journals them, and fans them out.
fn watch_loop(
    watcher: &mut Watcher,
    pairer: &mut Pairer,
    src: &Path,
    journal: &Mutex<Journal>,
    ids: &[String],
    senders: &[Sender<Msg>],
    (stop, reload): (&AtomicBool, &AtomicBool),
) -> Result<(), String> {
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut compacted = Instant::now();
    while !stop.load(Ordering::SeqCst) && !reload.load(Ordering::SeqCst) {
        if compacted.elapsed() > JOURNAL_COMPACTION {
            // Drop what every target has; the journal holds only what some target still needs.
            compacted = Instant::now();
            let mut j = journal.lock().map_err(|_| "journal lock poisoned")?;
            j.compact(&ids).map_err(|e| e.to_string())?;
        }
        let wait = pairer
            .deadline()
            .map_or(Duration::from_millis(100), |d| {
                d.saturating_duration_since(Instant::now())
            })
            .min(Duration::from_millis(100));
        let mut changes: Vec<Change> = Vec::new();
        let first = watcher.next_event(Some(wait)).map_err(|e| e.to_string())?;
        let now = Instant::now();
        let mut raw = first.into_iter().collect::<Vec<_>>();
        // Drain what is already read, so one journal sync covers a whole burst.
        while raw.len() < 4096 && watcher.has_pending() {
            match watcher
                .next_event(Some(Duration::ZERO))
                .map_err(|e| e.to_string())?
            {
                Some(ev) => raw.push(ev),
                None => break,
            }
        }
        let mut events = Vec::new();
        for ev in &raw {
            events.extend(pairer.push(ev, now));
        }
        events.extend(pairer.expire(now));
        for ev in &events {
            changes.extend(changes_of(ev, src));
        }
        for e in watcher.take_errors() {
            log(&format!("{e}"));
            changes.push(Change::Resync(PathBuf::new()));
        }
        if changes.is_empty() {
            continue;
        }
        let seqs = {
            let mut j = journal.lock().map_err(|_| "journal lock poisoned")?;
            let seqs = j.append(&changes).map_err(|e| e.to_string())?;
            j.sync().map_err(|e| e.to_string())?;
            seqs
        };
        let numbered: Vec<(u64, Change)> = seqs.into_iter().zip(changes).collect();
        for tx in senders {
            let _ = tx.send(Msg::Changes(numbered.clone(), now));
        }
    }
    Ok(())
}

/// A worker running for one target.
struct Running {
    id: String,
    /// What it was started with: a reload restarts it only if that changed.
    config: TargetConfig,
    tx: Sender<Msg>,
    handle: std::thread::JoinHandle<()>,
}

/// The run's workers, one per target, and the configuration they follow.
struct Fleet {
    workers: Vec<Running>,
    config: RunConfig,
    /// What workers started from now share.
    transfers: Arc<Transfers>,
}

/// A target's coalescer settings: a batch on the stream costs no connection of its own, so
/// under a steady stream one goes every 50 ms rather than every `--max-latency` (a stock
/// target's batches grow while its one transfer runs anyway).
fn settings_for(target: &Target, base: Settings) -> Settings {
    match target.stream {
        Some(_) => Settings {
            renames: true,
            max_latency: base.max_latency.min(STREAM_MAX_LATENCY),
            ..base
        },
        None => base,
    }
}

impl Fleet {
    /// Starts `target`'s worker, which first replays what the journal holds for it.
    fn start(
        &mut self,
        target: Target,
        config: &TargetConfig,
        transfers: &Arc<Transfers>,
        journal: &Arc<Mutex<Journal>>,
        settings: Settings,
        (initial_sync, crashed): (bool, bool),
    ) -> Result<(), String> {
        let (tx, rx) = mpsc::channel();
        let replay = journal
            .lock()
            .map_err(|_| "journal lock poisoned")?
            .unacknowledged(&target.id)
            .map_err(|e| e.to_string())?;
        let id = target.id.clone();
        let ctx = Worker {
            target,
            transfers: transfers.clone(),
            journal: journal.clone(),
            me: tx.clone(),
        };
        let handle = std::thread::spawn(move || {
            ctx.worker(&rx, settings, replay, initial_sync, crashed);
        });
        self.workers.push(Running {
            id,
            config: config.clone(),
            tx,
            handle,
        });
        Ok(())
    }

    /// SIGHUP: follows `new` without comparing everything again. A target whose settings
    /// changed (or all of them, when the batching or logging settings did) finishes what it
    /// has in flight and starts again from the journal; a new target starts with the initial
    /// sync the config asks for; a removed one stops. The source and the excludes stay as they
    /// are (the watcher follows them): changing those needs a restart, and says so.
    fn reload(
        &mut self,
        new: &RunConfig,
        src: &Path,
        rules: &filter::FilterList,
        journal: &Arc<Mutex<Journal>>,
    ) -> Result<(), String> {
        if std::fs::canonicalize(&new.source).ok().as_deref() != Some(src) {
            return Err(format!(
                "the source is now {}: restart rtsync run to watch another tree; going on with {}",
                new.source.display(),
                src.display()
            ));
        }
        if new.exclude != self.config.exclude {
            log(
                "reload: excludes changed; they apply at the next start (the watcher keeps the old ones)",
            );
        }
        if new.plugins != self.config.plugins || new.status_listen != self.config.status_listen {
            log("reload: plugins or status_listen changed; they apply at the next start");
        }
        let old = &self.config;
        let all = new.settle != old.settle
            || new.max_latency != old.max_latency
            || new.batch_gap != old.batch_gap
            || new.verbose != old.verbose
            || new.resync_interval != old.resync_interval
            || new.resync_cron != old.resync_cron
            || new.resync_exclude != old.resync_exclude
            || new.workers != old.workers;
        let targets = targets_of(new);
        let now = &self.transfers;
        let transfers = Arc::new(Transfers {
            exe: now.exe.clone(),
            src: now.src.clone(),
            state: now.state.clone(),
            common: now.common.clone(),
            verbose: new.verbose,
            resync: Schedule::new(new.resync_interval, new.resync_cron.as_deref())?,
            resync_exclude: new.resync_exclude.clone(),
            abort: now.abort.clone(),
            contents: now
                .contents
                .clone()
                .or_else(|| content_index_for(&targets, src, rules)),
            plugins: now.plugins.clone(),
            live: now.live.clone(),
            workers: new.workers,
        });
        let (mut kept, mut stopping) = (Vec::new(), Vec::new());
        for w in self.workers.drain(..) {
            let same = new
                .targets
                .iter()
                .any(|t| fnv(t.dest.as_bytes()) == w.id && *t == w.config);
            if same && !all {
                kept.push(w);
            } else {
                let _ = w.tx.send(Msg::Stop);
                stopping.push(w);
            }
        }
        let stopped: Vec<String> = stopping.iter().map(|w| w.id.clone()).collect();
        for w in stopping {
            let _ = w.handle.join();
        }
        self.workers = kept;
        let settings = Settings {
            settle: new.settle,
            max_latency: new.max_latency,
            min_gap: new.batch_gap,
            ..Settings::default()
        };
        let (mut restarted, mut added) = (0, 0);
        for (t, tc) in targets.into_iter().zip(&new.targets) {
            if self.workers.iter().any(|w| w.id == t.id) {
                continue;
            }
            let known = stopped.contains(&t.id);
            if known {
                restarted += 1;
            } else {
                added += 1;
            }
            let settings = settings_for(&t, settings);
            let initial = !known && new.initial_sync;
            self.start(t, tc, &transfers, journal, settings, (initial, false))?;
        }
        let removed = stopped.len() - restarted;
        log(&format!(
            "reloaded: {} target(s); {restarted} restarted, {added} added, {removed} removed",
            self.workers.len()
        ));
        self.config = new.clone();
        self.transfers = transfers;
        Ok(())
    }
}

struct Worker {
    target: Target,
    transfers: Arc<Transfers>,
    journal: Arc<Mutex<Journal>>,
    me: Sender<Msg>,
}

/// The longest a change waits under a steady stream to a daemon that may take the stream.
const STREAM_MAX_LATENCY: Duration = Duration::from_millis(50);

/// Through rsync, a batch follows the one before it at least `--batch-gap` later, unless this
/// many paths are pending (see `engine::Settings::min_gap`).
const RSYNC_FULL_BATCH: usize = 256;

/// Batches to a target without the stream that may go through rsync at once. Each pays a
/// connection, a login and a file list; with two, one is sent while the next is gathered and
/// connects, so a change waits for at most one batch before its own.
const RSYNC_PIPELINE: usize = 2;

/// How long a daemon that did not offer the stream is taken at its word.
const NOT_OFFERED_FOR: Duration = Duration::from_secs(300);

/// The stream to one target, as far as the worker knows.
enum StreamState {
    /// Not a daemon target, or the daemon does not offer it (until then).
    Off(Option<Instant>),
    /// Its connections (none yet: the next stream batch connects).
    On(Lanes),
}

impl StreamState {
    fn in_flight(&self) -> usize {
        match self {
            StreamState::On(lanes) => lanes.in_flight(),
            StreamState::Off(_) => 0,
        }
    }

    /// Closes every connection; what was in flight, newest first.
    fn close(&mut self, max: usize) -> Vec<Sent> {
        match self {
            StreamState::On(lanes) => lanes.close_all(max),
            StreamState::Off(_) => Vec::new(),
        }
    }
}

impl Worker {
    fn name(&self) -> String {
        self.target.dest.to_string_lossy().into_owned()
    }

    /// One target's loop: fold changes in, send ready batches, retry failures. Batches for a
    /// stream go back to back, over up to `--workers` connections (see [`crate::stream_lanes`]);
    /// one for rsync waits until the stream's are acknowledged, and runs alone. Without a
    /// stream, up to [`RSYNC_PIPELINE`] batches go through rsync at once, none touching
    /// another's paths (see [`Flights`]).
    #[allow(clippy::too_many_lines)]
    fn worker(
        &self,
        rx: &mpsc::Receiver<Msg>,
        settings: Settings,
        replay: Vec<(u64, Change)>,
        initial_sync: bool,
        crashed: bool,
    ) {
        let started = Instant::now();
        let mut p = Progress {
            // Paced only while batches go through rsync (below).
            pending: Coalescer::new(Settings {
                min_gap: Duration::ZERO,
                ..settings
            }),
            // Retries of a transient failure at most every 2 s, with short connection attempts
            // (see `apply`): a target whose link or daemon comes back is caught up within
            // seconds.
            backoff: Backoff::new(
                Duration::from_millis(200),
                Duration::from_secs(2),
                Duration::from_secs(30),
            ),
            retry_at: None,
            failing: false,
            status: TargetStatus {
                dest: self.name(),
                pid: std::process::id(),
                ..TargetStatus::default()
            },
            status_saved: Instant::now()
                .checked_sub(STATUS_EVERY)
                .unwrap_or_else(Instant::now),
            // After a crash: send what was never acknowledged, then compare everything
            // (changes made while nothing watched are in no journal).
            verify_after_replay: crashed || !replay.is_empty(),
            rates: VecDeque::new(),
            unlanded_bytes: 0,
        };
        if p.verify_after_replay {
            log(&format!(
                "{}: replaying {} unacknowledged change(s) from the journal",
                self.name(),
                replay.len()
            ));
        }
        for (seq, c) in &replay {
            p.pending.push(c, *seq, started);
        }
        if (initial_sync || p.verify_after_replay) && replay.is_empty() {
            p.verify_after_replay = false;
            let seq = self.journal.lock().map_or(0, |j| j.last_seq());
            p.pending
                .push(&Change::Resync(PathBuf::new()), seq, started);
        }
        let lanes_max = self.stream_connections();
        let mut stream = if self.target.stream.is_some() {
            StreamState::On(Lanes::new(lanes_max))
        } else {
            StreamState::Off(None)
        };
        let mut generation = 0u64;
        let mut recent = push_stream::Recent::default();
        // Stream batches taken and not yet sent: the pieces of a big one (see
        // `push_stream::parts`), and the one at the front may meet batches in flight on two
        // connections, so that it waits until it meets at most one.
        let mut waiting: VecDeque<Batch> = VecDeque::new();
        // Batches for rsync, taken and not yet started: waiting for the stream's batches before
        // them, or for a running batch they meet.
        let mut held: VecDeque<(u64, Batch)> = VecDeque::new();
        let mut flights = Flights::new();
        let mut stopping = false;
        let mut next_resync = self.transfers.resync.next(started);
        // A periodic compare is queued: the next batch comparing the whole tree skips what
        // `resync_exclude` says.
        let mut periodic = false;
        let trace = std::env::var_os("RTSYNC_TRACE_STREAM").is_some();
        loop {
            let now = Instant::now();
            if let Some(at) = next_resync
                && now >= at
            {
                // Catches what no event can tell: a hard link changed under its other name,
                // a directory time moved by an excluded entry, a change made on the target.
                let seq = self.journal.lock().map_or(0, |j| j.last_seq());
                p.pending.push(&Change::Resync(PathBuf::new()), seq, now);
                periodic = true;
                next_resync = self.transfers.resync.next(now);
            }
            if let StreamState::Off(Some(until)) = stream
                && now >= until
            {
                stream = StreamState::On(Lanes::new(lanes_max));
            }
            // Without a stream, several batches go through rsync at once; with one, a batch for
            // rsync runs alone, after the stream's.
            let rsync_only = self.target.stream.is_none() || matches!(stream, StreamState::Off(_));
            let depth = if rsync_only { RSYNC_PIPELINE } else { 1 };
            let streaming = stream.in_flight();
            let rsync_running = flights.running().saturating_sub(streaming);
            if streaming == 0
                && rsync_running < depth
                && p.retry_at.is_none_or(|t| now >= t)
                && let Some(k) = held.iter().position(|(_, b)| !flights.meets(b))
                && let Some((id, batch)) = held.remove(k)
            {
                flights.start(id, &batch);
                let whole = batch.trees.iter().any(|t| t.as_os_str().is_empty());
                self.start_rsync(id, batch, p.failing, whole && std::mem::take(&mut periodic));
                continue;
            }
            // Through rsync each batch costs a connection and processes at both ends: under
            // a steady stream, fewer and larger batches.
            if rsync_only {
                p.pending.pace(settings.min_gap, RSYNC_FULL_BATCH);
            } else {
                p.pending.pace(Duration::ZERO, usize::MAX);
            }
            let may_take = rsync_running < depth && held.is_empty() && !stopping;
            let room = match &stream {
                StreamState::On(lanes) => streaming < lanes.room(),
                StreamState::Off(_) => true,
            };
            let next = if let Some(front) = waiting.front() {
                if room && !stopping && lanes_met(&stream, &flights, front).len() <= 1 {
                    waiting.pop_front()
                } else {
                    None
                }
            } else if may_take
                && room
                && p.retry_at.is_none_or(|t| now >= t)
                && p.pending.is_ready(now)
            {
                let batch = p.pending.take(now);
                // Whole to a daemon not known to take the stream: it may go through rsync,
                // which splits big batches its own way.
                if let StreamState::On(lanes) = &stream
                    && lanes.offered()
                {
                    waiting.extend(push_stream::parts(&self.transfers.src, batch));
                    waiting.pop_front()
                } else {
                    Some(batch)
                }
            } else {
                None
            };
            if let Some(batch) = next {
                match self.dispatch(
                    batch,
                    &mut stream,
                    &mut flights,
                    &mut generation,
                    &mut recent,
                    p.failing,
                ) {
                    Dispatched::Stream => {}
                    Dispatched::Wait(batch) => waiting.push_front(batch),
                    Dispatched::Rsync(batch) => held.extend(flights.take(batch)),
                    Dispatched::Failed(batch, failure, why) => {
                        // Newest first: those taken after it, the batch, then those still in
                        // flight.
                        let mut failed: Vec<Batch> = waiting.drain(..).rev().collect();
                        failed.push(batch);
                        failed.extend(not_landed(
                            &mut held,
                            &mut waiting,
                            stream.close(lanes_max),
                            &mut flights,
                        ));
                        p.failed(self, failed, failure, &why, false);
                    }
                }
                continue;
            }
            // What is held stays in the journal for the next start.
            if stopping && flights.running() == 0 {
                return;
            }
            // A stream connection silent for `--timeout` while a batch awaits its
            // acknowledgement (the last acknowledgement, or the batch's sending, that long ago)
            // is taken as lost, as rsync's --timeout takes a silent peer: the connections are
            // cut and everything in flight goes again.
            if let StreamState::On(lanes) = &stream
                && lanes.silent_for(self.target.silence)
            {
                let failed = not_landed(
                    &mut held,
                    &mut waiting,
                    stream.close(lanes_max),
                    &mut flights,
                );
                p.failed(
                    self,
                    failed,
                    Failure::Transient,
                    "the daemon did not acknowledge a batch in time",
                    false,
                );
                continue;
            }
            // A transfer's Done message wakes us when it ends; otherwise the next batch due, a
            // retry for what is held, the next scheduled resync.
            let busy = flights.running() > 0 || stopping || !waiting.is_empty();
            let batch_due = if may_take {
                [p.pending.deadline(), p.retry_at]
                    .into_iter()
                    .flatten()
                    .max()
            } else if held.is_empty() {
                None
            } else {
                p.retry_at
            };
            let resync_due = if busy { None } else { next_resync };
            let wake = [batch_due, resync_due]
                .into_iter()
                .flatten()
                .min()
                .map_or(
                    Duration::from_millis(if streaming == 0 { 1000 } else { 100 }),
                    |t| t.saturating_duration_since(now),
                )
                .clamp(Duration::from_millis(1), Duration::from_secs(1));
            if p.status_saved.elapsed() >= STATUS_EVERY {
                p.save_status(self, now);
            }
            match rx.recv_timeout(wake.min(STATUS_EVERY)) {
                Ok(Msg::Changes(list, at)) => {
                    for (seq, c) in &list {
                        if trace {
                            log(&format!("{}: change {seq} {c:?}", self.name()));
                        }
                        p.pending.push(c, *seq, at);
                    }
                }
                Ok(Msg::Done(id, Ok(()), batch, took)) => {
                    recent.rsync_ended();
                    p.unlanded_bytes += self.target.rsync_sent.swap(0, Ordering::Relaxed);
                    let ack = flights.landed(id);
                    p.landed(self, &batch, took, "by rsync", &[], ack);
                }
                Ok(Msg::Done(id, Err(failed), batch, took)) => {
                    recent.rsync_ended();
                    // Sent, though not all of it landed: counted with what lands next.
                    p.unlanded_bytes += self.target.rsync_sent.swap(0, Ordering::Relaxed);
                    match failed.resend {
                        // Only what failed goes again; the rest of the batch has landed.
                        Some(changes) if failed.failure == Failure::Partial => {
                            let again: Vec<PathBuf> =
                                changes.iter().map(|c| c.path().to_path_buf()).collect();
                            p.resend(self, changes);
                            let ack = flights.landed(id);
                            p.acknowledge(self, &batch, took, "by rsync", &again, ack);
                            p.failed(self, Vec::new(), failed.failure, &failed.why, false);
                        }
                        _ => {
                            p.failed(self, vec![batch], failed.failure, &failed.why, true);
                            if let Some(upto) = flights.failed(id) {
                                p.ack_journal(self, upto);
                            }
                        }
                    }
                }
                Ok(Msg::Stream(generation_of, event)) => {
                    let StreamState::On(lanes) = &mut stream else {
                        continue;
                    };
                    // Else from a connection closed since.
                    let Some(lane) = lanes.by_generation(generation_of) else {
                        continue;
                    };
                    // Paths the target could not write (a full disk, a path in the way) go
                    // again, alone, after a backoff; the rest of the batch has landed. A
                    // failure without a path (the target's sync) leaves the batch's
                    // durability unknown: all of it goes again, below.
                    let in_turn = matches!(&event, push_stream::Event::Done { batch, errors, .. }
                        if lane.window.front().is_some_and(|s| s.number == *batch)
                            && errors.iter().all(|(path, _)| !path.as_os_str().is_empty()));
                    let (sent, wire) = if in_turn {
                        lane.acked_at = Instant::now();
                        (lane.window.pop_front(), lane.written_since())
                    } else {
                        (None, 0)
                    };
                    match (event, sent) {
                        (push_stream::Event::Done { missed, errors, .. }, Some(sent)) => {
                            let stale = lanes.stale_dirs(&sent);
                            p.unlanded_bytes += wire;
                            p.fall_back(self, &missed, &sent.batch);
                            p.resend(
                                self,
                                errors
                                    .iter()
                                    .map(|(path, _)| Change::Created(path.clone()))
                                    .chain(stale.into_iter().map(Change::Modified))
                                    .collect(),
                            );
                            // Plugins hear of what landed, not of what goes again.
                            let again: Vec<PathBuf> = missed
                                .iter()
                                .chain(errors.iter().map(|(path, _)| path))
                                .cloned()
                                .collect();
                            let took = sent.at.elapsed();
                            let ack = flights.landed(sent.flight);
                            if errors.is_empty() {
                                p.landed(self, &sent.batch, took, "on the stream", &again, ack);
                            } else {
                                p.acknowledge(
                                    self,
                                    &sent.batch,
                                    took,
                                    "on the stream",
                                    &again,
                                    ack,
                                );
                            }
                            if let Some((path, why)) = errors.first() {
                                let why = format!(
                                    "{} path(s) failed on the target, first {}: {why}",
                                    errors.len(),
                                    path.display()
                                );
                                p.failed(self, Vec::new(), Failure::Partial, &why, false);
                            }
                        }
                        (other, _) => {
                            let (failure, why) = match other {
                                push_stream::Event::Done { errors, .. } if !errors.is_empty() => {
                                    let (path, why) = errors.first().cloned().unwrap_or_default();
                                    (
                                        Failure::Partial,
                                        format!(
                                            "{} path(s) failed on the target, first {}: {why}",
                                            errors.len(),
                                            path.display()
                                        ),
                                    )
                                }
                                push_stream::Event::Broken(why) => {
                                    // A connection with nothing in flight goes alone.
                                    if lanes.drop_idle(generation_of) {
                                        continue;
                                    }
                                    (Failure::Transient, why)
                                }
                                push_stream::Event::Done { batch, .. } => (
                                    Failure::Transient,
                                    format!("the daemon acknowledged batch {batch} out of turn"),
                                ),
                            };
                            let failed = not_landed(
                                &mut held,
                                &mut waiting,
                                stream.close(lanes_max),
                                &mut flights,
                            );
                            if !failed.is_empty() {
                                p.failed(self, failed, failure, &why, false);
                            }
                        }
                    }
                }
                Ok(Msg::Stop) => stopping = true,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// How many connections the stream to this target may use: one under `--bwlimit` (the
    /// limit is per connection), else `--workers`.
    fn stream_connections(&self) -> usize {
        match &self.target.stream {
            Some(t) if t.bwlimit.is_none() => self.transfers.workers.max(1),
            _ => 1,
        }
    }

    /// Sends `batch` on the stream when it can go that way, on the connection
    /// [`Lanes::choose`] picks, opening it first if needed.
    fn dispatch(
        &self,
        batch: Batch,
        stream: &mut StreamState,
        flights: &mut Flights,
        generation: &mut u64,
        recent: &mut push_stream::Recent,
        retrying: bool,
    ) -> Dispatched {
        let Some(target) = &self.target.stream else {
            return Dispatched::Rsync(push_stream::without_renames(batch));
        };
        let met = lanes_met(stream, flights, &batch);
        let StreamState::On(lanes) = stream else {
            return Dispatched::Rsync(push_stream::without_renames(batch));
        };
        let Some(choice) = lanes.choose(&met, Instant::now()) else {
            return Dispatched::Wait(batch);
        };
        let Some(plan) = push_stream::plan(
            &self.transfers.src,
            &batch,
            recent,
            self.transfers.contents.as_ref(),
        ) else {
            return Dispatched::Rsync(push_stream::without_renames(batch));
        };
        let k = match choice {
            Choice::Lane(k) => k,
            Choice::Open => match self.open_lane(target, lanes, generation, retrying) {
                Ok(k) => k,
                Err(None) if lanes.is_closed() => {
                    *stream = StreamState::Off(Some(Instant::now() + NOT_OFFERED_FOR));
                    return Dispatched::Rsync(push_stream::without_renames(batch));
                }
                Err(Some((code, why))) if lanes.is_closed() => {
                    let failure = Failure::of_exit(i32::from(code)).unwrap_or(Failure::Transient);
                    return Dispatched::Failed(batch, failure, why);
                }
                // One more connection refused (`max connections`, say): those open carry on.
                Err(refused) => {
                    lanes.cap_at_open();
                    log(&format!(
                        "{}: staying with {} stream connection(s): {}",
                        self.name(),
                        lanes.open(),
                        refused.map_or_else(|| "the stream was not offered".into(), |(_, why)| why)
                    ));
                    match lanes.choose(&met, Instant::now()) {
                        Some(Choice::Lane(k)) => k,
                        _ => return Dispatched::Wait(batch),
                    }
                }
            },
        };
        let Some(lane) = lanes.lane_mut(k) else {
            return Dispatched::Wait(batch);
        };
        let (bytes, dirs) = (plan.bytes(), plan.dirs());
        match lane.pipe.send(plan) {
            Some(number) => {
                let flight = flights.fly(&batch, lane.generation);
                lanes.push(
                    k,
                    Sent {
                        number,
                        flight,
                        batch,
                        at: Instant::now(),
                        bytes,
                        dirs,
                    },
                );
                Dispatched::Stream
            }
            None => Dispatched::Failed(
                batch,
                Failure::Transient,
                "the stream connection ended".into(),
            ),
        }
    }

    /// Opens one more stream connection; its index in `lanes`. `Err(None)`: the daemon does
    /// not offer the stream; else rsync's exit code and why.
    fn open_lane(
        &self,
        target: &push_stream::StreamTarget,
        lanes: &mut Lanes,
        generation: &mut u64,
        retrying: bool,
    ) -> Result<usize, Option<(u8, String)>> {
        *generation += 1;
        let connect = Duration::from_secs(if retrying { 3 } else { 10 });
        let me = self.me.clone();
        let (tx, rx) = mpsc::channel::<(u64, push_stream::Event)>();
        // The reader thread's events reach the worker's own channel.
        std::thread::spawn(move || {
            while let Ok((g, ev)) = rx.recv() {
                if me.send(Msg::Stream(g, ev)).is_err() {
                    return;
                }
            }
        });
        match Pipe::open(target, connect, *generation, tx) {
            Ok(push_stream::Open::Pipe(pipe)) => {
                let k = lanes.add(pipe.start(self.transfers.src.clone()), *generation);
                if self.transfers.verbose {
                    log(&format!(
                        "{}: stream open ({} connection(s))",
                        self.name(),
                        lanes.open()
                    ));
                }
                Ok(k)
            }
            Ok(push_stream::Open::NotOffered) => Err(None),
            Err(e) => Err(Some(e)),
        }
    }

    /// Runs `batch` (number `id` in the worker's [`Flights`]) through a child `rtsync sync` on
    /// a thread of its own.
    fn start_rsync(&self, id: u64, batch: Batch, retrying: bool, periodic: bool) {
        let transfers = self.transfers.clone();
        let target = self.target.clone();
        let me = self.me.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let result = transfers.apply(&target, &batch, retrying, periodic);
            let _ = me.send(Msg::Done(id, result, batch, t0.elapsed()));
        });
    }
}

/// `batch` less the entries that go again: what landed of it.
fn without(batch: &Batch, again: &[PathBuf]) -> Batch {
    let going = |p: &PathBuf| again.contains(p);
    Batch {
        renames: batch
            .renames
            .iter()
            .filter(|r| !going(&r.to))
            .cloned()
            .collect(),
        puts: batch.puts.iter().filter(|p| !going(p)).cloned().collect(),
        deletes: batch
            .deletes
            .iter()
            .filter(|p| !going(p))
            .cloned()
            .collect(),
        trees: batch.trees.iter().filter(|p| !going(p)).cloned().collect(),
        upto: batch.upto,
    }
}

/// Bytes a process has read and written so far (`/proc/PID/io`), 0 if that cannot be read.
fn child_io(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .map_or(0, |text| {
            text.lines()
                .filter(|l| l.starts_with("rchar:") || l.starts_with("wchar:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        })
}

/// A batch's puts and deletes of at least this many paths per part are split.
const SPLIT_PART: usize = 500;

/// How deep [`split_by_dir`] looks for directories to split a batch by.
const SPLIT_DEPTH: usize = 8;

/// `puts` and `deletes` as up to `workers` batches, one unless there are at least
/// [`SPLIT_PART`] paths for each of two. The paths are grouped by their directory at the
/// shallowest depth that gives enough groups (an upload tree under one top-level directory
/// splits by the directories below it), and the groups spread evenly. Paths no deeper than that
/// go in the first batch with the directories above the groups: a delete there has nothing
/// below it in the batch (the coalescer folds such pairs into a resync), so the batches share
/// at most directories that each receiver makes if missing and sets the times of when it is
/// done.
fn split_by_dir(puts: &[PathBuf], deletes: &[PathBuf], workers: usize) -> Vec<Batch> {
    let n = workers
        .min((puts.len() + deletes.len()) / SPLIT_PART)
        .max(1);
    if n == 1 {
        return vec![Batch {
            puts: puts.to_vec(),
            deletes: deletes.to_vec(),
            ..Batch::default()
        }];
    }
    let all = || puts.iter().chain(deletes);
    // The group of `p` at `depth`: its first `depth` components, when it lies below them.
    let group = |p: &Path, depth: usize| -> Option<PathBuf> {
        (p.components().count() > depth).then(|| p.components().take(depth).collect())
    };
    let mut best: (usize, HashMap<PathBuf, usize>) = (1, HashMap::new());
    for depth in 1..=SPLIT_DEPTH {
        let mut sizes: HashMap<PathBuf, usize> = HashMap::new();
        for p in all() {
            if let Some(g) = group(p, depth) {
                *sizes.entry(g).or_default() += 1;
            }
        }
        if sizes.len() > best.1.len() {
            best = (depth, sizes);
        }
        if best.1.len() >= 2 * n {
            break;
        }
    }
    let (depth, sizes) = best;
    let short = all().filter(|p| group(p, depth).is_none()).count();
    // Largest groups first, each to the least loaded part.
    let mut groups: Vec<(PathBuf, usize)> = sizes.into_iter().collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut load = vec![0usize; n];
    if let Some(first) = load.first_mut() {
        *first = short;
    }
    let mut slot_of: HashMap<PathBuf, usize> = HashMap::new();
    for (g, size) in groups {
        let k = (0..n).min_by_key(|&k| load.get(k).copied()).unwrap_or(0);
        if let Some(l) = load.get_mut(k) {
            *l += size;
        }
        slot_of.insert(g, k);
    }
    let slot = |p: &Path| {
        group(p, depth)
            .and_then(|g| slot_of.get(&g).copied())
            .unwrap_or(0)
    };
    let mut parts = vec![Batch::default(); n];
    for p in puts {
        if let Some(part) = parts.get_mut(slot(p)) {
            part.puts.push(p.clone());
        }
    }
    for p in deletes {
        if let Some(part) = parts.get_mut(slot(p)) {
            part.deletes.push(p.clone());
        }
    }
    parts.retain(|b| !b.is_empty());
    parts
}

/// The stream connections (generations) `batch` must wait for, or go on if only one: those
/// whose batches in flight it meets; for a batch that renames, deletes or compares a subtree,
/// every connection with a batch in flight, so that such a batch is applied alone (what it
/// moves or removes may hold what a batch on another connection writes).
fn lanes_met(stream: &StreamState, flights: &Flights, batch: &Batch) -> Vec<u64> {
    match stream {
        StreamState::On(lanes)
            if !batch.renames.is_empty()
                || !batch.deletes.is_empty()
                || !batch.trees.is_empty() =>
        {
            lanes.busy()
        }
        _ => flights.lanes_met(batch),
    }
}

/// Every batch taken and not landed, newest first (the order a requeue needs): those
/// waiting for the stream, those held for rsync, then the stream's `sent` (newest first
/// already); each in flight marked failed in `flights`.
fn not_landed(
    held: &mut VecDeque<(u64, Batch)>,
    waiting: &mut VecDeque<Batch>,
    sent: Vec<Sent>,
    flights: &mut Flights,
) -> Vec<Batch> {
    let mut batches: Vec<Batch> = waiting.drain(..).rev().collect();
    while let Some((id, batch)) = held.pop_back() {
        flights.failed(id);
        batches.push(batch);
    }
    for s in sent {
        flights.failed(s.flight);
        batches.push(s.batch);
    }
    batches
}

/// Where a batch went.
enum Dispatched {
    /// Sent on the stream.
    Stream,
    /// It meets batches in flight on two stream connections: it waits.
    Wait(Batch),
    Rsync(Batch),
    Failed(Batch, Failure, String),
}

/// A worker's changing state.
struct Progress {
    pending: Coalescer,
    backoff: Backoff,
    retry_at: Option<Instant>,
    failing: bool,
    status: TargetStatus,
    status_saved: Instant,
    verify_after_replay: bool,
    /// Landings of the last [`RATE_WINDOW`]: when, paths, stream bytes.
    rates: VecDeque<(Instant, u64, u64)>,
    /// Stream bytes of the batch about to be acknowledged.
    unlanded_bytes: u64,
}

/// The window `rtsync status` rates are taken over.
const RATE_WINDOW: Duration = Duration::from_secs(10);

impl Progress {
    fn save_status(&mut self, w: &Worker, now: Instant) {
        while self
            .rates
            .front()
            .is_some_and(|(at, ..)| now.saturating_duration_since(*at) > RATE_WINDOW)
        {
            self.rates.pop_front();
        }
        let (paths, bytes) = self
            .rates
            .iter()
            .fold((0, 0), |(p, b), (_, np, nb)| (p + np, b + nb));
        #[allow(clippy::cast_precision_loss)]
        {
            self.status.paths_per_sec = paths as f64 / RATE_WINDOW.as_secs_f64();
            self.status.bytes_per_sec = bytes as f64 / RATE_WINDOW.as_secs_f64();
        }
        self.status.pending = self.pending.len();
        self.status.oldest_pending_ms = self.pending.oldest().map(instant_ms);
        self.status.next_retry_ms = self.retry_at.filter(|t| *t > now).map(instant_ms);
        self.status.updated_ms = now_ms();
        let _ = self.status.save(&w.transfers.state, &w.target.id);
        if let Some(Ok(mut live)) = w.transfers.live.as_ref().map(|l| l.lock()) {
            live.insert(w.target.id.clone(), self.status.clone());
        }
        self.status_saved = Instant::now();
    }

    fn save_soon(&mut self) {
        self.status_saved = Instant::now()
            .checked_sub(STATUS_EVERY)
            .unwrap_or_else(Instant::now);
    }

    /// A batch landed (`again`: but for paths already queued again): acknowledge it in the
    /// journal.
    fn landed(
        &mut self,
        w: &Worker,
        batch: &Batch,
        took: Duration,
        lane: &str,
        again: &[PathBuf],
        ack: Option<u64>,
    ) {
        self.retry_at = None;
        self.backoff.reset();
        if self.failing {
            self.failing = false;
            log(&format!("{}: recovered", w.name()));
        }
        self.acknowledge(w, batch, took, lane, again, ack);
    }

    /// A batch was applied (all of it, or all but the paths in `again`, already queued again):
    /// plugins hear of what landed, and the journal is acknowledged up to `ack` (none: batches
    /// taken before this one have yet to land).
    fn acknowledge(
        &mut self,
        w: &Worker,
        batch: &Batch,
        took: Duration,
        lane: &str,
        again: &[PathBuf],
        ack: Option<u64>,
    ) {
        if again.is_empty() {
            w.transfers.plugins.landed(&w.target.dest, batch);
        } else {
            w.transfers
                .plugins
                .landed(&w.target.dest, &without(batch, again));
        }
        let bytes = std::mem::take(&mut self.unlanded_bytes);
        self.status.bytes += bytes;
        self.rates
            .push_back((Instant::now(), batch.len() as u64, bytes));
        self.status.batches += 1;
        self.status.paths += batch.len() as u64;
        self.status.last_ok_ms = Some(now_ms());
        self.save_soon();
        if w.transfers.verbose {
            let name = w.name();
            let (sent, renamed, deleted, trees) = (
                batch.puts.len(),
                batch.renames.len(),
                batch.deletes.len(),
                batch.trees.len(),
            );
            let took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
            tracing::info!(
                target_dest = %name,
                lane,
                sent,
                renamed,
                deleted,
                trees,
                took_ms,
                "{name}: {sent} sent, {renamed} renamed, {deleted} deleted, {trees} subtree(s) compared in {took_ms} ms {lane}"
            );
        }
        if let Some(upto) = ack {
            self.ack_journal(w, upto);
        }
        if self.verify_after_replay {
            self.verify_after_replay = false;
            self.pending
                .push(&Change::Resync(PathBuf::new()), batch.upto, Instant::now());
        }
    }

    /// The target has every change up to journal number `upto`.
    fn ack_journal(&self, w: &Worker, upto: u64) {
        if let Ok(j) = w.journal.lock()
            && let Err(e) = j.acknowledge(&w.target.id, upto)
        {
            log(&format!("{}: {e}", w.name()));
        }
    }

    /// Renames the target could not make safely: their destinations are sent as content.
    /// They go into the journal first, so the acknowledgement that follows loses nothing.
    fn fall_back(&mut self, w: &Worker, missed: &[PathBuf], batch: &Batch) {
        if missed.is_empty() {
            return;
        }
        if let Some(Ok(mut ix)) = w.transfers.contents.as_ref().map(|c| c.lock()) {
            for to in missed {
                ix.discredit(to);
            }
        }
        let changes: Vec<Change> = missed
            .iter()
            .map(|to| {
                let is_dir = batch.renames.iter().any(|r| r.to == *to && r.is_dir);
                if is_dir {
                    Change::Resync(to.clone())
                } else {
                    Change::Created(to.clone())
                }
            })
            .collect();
        if std::env::var_os("RTSYNC_TRACE_STREAM").is_some() {
            log(&format!("{}: fallback {changes:?}", w.name()));
        }
        self.resend(w, changes);
        if w.transfers.verbose {
            log(&format!(
                "{}: {} rename(s) or copies sent as content instead",
                w.name(),
                missed.len()
            ));
        }
    }

    /// Changes to send again, put in the journal first, so that the acknowledgement of the
    /// batch they came from loses nothing.
    fn resend(&mut self, w: &Worker, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let now = Instant::now();
        let seqs = w.journal.lock().ok().and_then(|mut j| {
            let seqs = j.append(&changes).ok()?;
            j.sync().ok()?;
            Some(seqs)
        });
        match seqs {
            Some(seqs) => {
                for (seq, c) in seqs.into_iter().zip(&changes) {
                    self.pending.push(c, seq, now);
                }
            }
            // Not journaled: keep them from being acknowledged past (seq 0).
            None => {
                for c in &changes {
                    self.pending.push(c, 0, now);
                }
            }
        }
    }

    /// Batches that failed, newest first, go back under newer changes and are retried after a
    /// backoff.
    /// `swept`: the batches went through rsync, whose receiver may have left temporary files
    /// (the stream's are taken over when the file comes again, see `fsx::Dir::create_stable_temp`).
    fn failed(
        &mut self,
        w: &Worker,
        batches: Vec<Batch>,
        failure: Failure,
        why: &str,
        rsync: bool,
    ) {
        let now = Instant::now();
        for batch in batches {
            // A connection that died mid-transfer (a daemon killed, a link cut) can leave the
            // receiver's temporary files behind in the directories it was writing to; the next
            // try compares those directories in full, which deletes them. (Found by the
            // proving ground's kill -9 rounds.)
            let swept: Vec<PathBuf> = if rsync && failure == Failure::Transient {
                let mut dirs: Vec<PathBuf> = batch
                    .puts
                    .iter()
                    .map(|p| p.parent().map(Path::to_path_buf).unwrap_or_default())
                    .collect();
                dirs.sort();
                dirs.dedup();
                dirs
            } else {
                Vec::new()
            };
            let upto = batch.upto;
            self.pending.requeue(batch, now);
            for dir in swept {
                self.pending.push(&Change::Resync(dir), upto, now);
            }
        }
        let delay = self.backoff.next_delay(failure, jitter());
        self.retry_at = Some(now + delay);
        self.failing = true;
        self.status.failures += 1;
        self.status.last_error = Some(why.to_string());
        self.status.last_error_ms = Some(now_ms());
        self.save_soon();
        let kind = match failure {
            Failure::Transient => "will retry",
            Failure::Partial => "some paths failed; will send them again",
            Failure::Permanent => "needs attention; retrying slowly",
        };
        let (name, retry_in_s, attempt) = (w.name(), delay.as_secs_f64(), self.backoff.attempts());
        tracing::warn!(
            target_dest = %name,
            error = why,
            failure = ?failure,
            retry_in_s,
            attempt,
            "{name}: {why} ({kind} in {retry_in_s:.1} s, attempt {attempt})"
        );
    }
}

impl Transfers {
    /// Applies one batch to `target`; `retrying` after a failure.
    /// `periodic`: the batch holds a scheduled compare of the whole tree, which skips what
    /// `resync_exclude` names.
    fn apply(
        &self,
        target: &Target,
        batch: &Batch,
        retrying: bool,
        periodic: bool,
    ) -> Result<(), Failed> {
        let dest = &target.dest;
        let mut src_slash = self.src.clone().into_os_string();
        src_slash.push("/");
        let mut partial: Option<Failed> = None;
        let mut remote: Vec<OsString> = Vec::new();
        if is_remote(dest) {
            // A host that was unreachable a moment ago gets short attempts: TCP resends an
            // unanswered SYN after 1 s, then 3 s, then 7 s, so one long attempt would notice a
            // returning link only seconds late; a new attempt after 3 s sends a fresh SYN.
            remote.push(
                if retrying {
                    "--contimeout=3"
                } else {
                    "--contimeout=10"
                }
                .into(),
            );
        }
        if !batch.trees.is_empty() {
            let mut args: Vec<OsString> = vec!["-a".into(), "--delete".into(), "--force".into()];
            if batch.trees.iter().any(|t| t.as_os_str().is_empty()) {
                if periodic {
                    args.extend(
                        self.resync_exclude
                            .iter()
                            .map(|p| OsString::from(format!("--exclude={p}"))),
                    );
                }
                args.push(src_slash.clone());
            } else {
                args.extend(["-R".into(), "--delete-missing-args".into()]);
                for t in &batch.trees {
                    let mut arg = src_slash.clone();
                    arg.push("./");
                    arg.push(t);
                    args.push(arg);
                }
            }
            let trees = Batch {
                trees: batch.trees.clone(),
                ..Batch::default()
            };
            partial = Self::partly(self.sync(target, args, &remote), &trees, partial)?;
        }
        if !batch.puts.is_empty() || !batch.deletes.is_empty() {
            // A big batch goes as several transfers at once, split by top-level entry so that
            // no two of them touch the same path or one above it.
            let parts = split_by_dir(&batch.puts, &batch.deletes, self.workers);
            if parts.len() > 1 && self.verbose {
                log(&format!(
                    "{}: {} path(s) go as {} transfers at once",
                    target.dest.to_string_lossy(),
                    batch.puts.len() + batch.deletes.len(),
                    parts.len()
                ));
            }
            let outcomes: Vec<(Batch, Outcome)> = std::thread::scope(|scope| {
                let running: Vec<_> = parts
                    .into_iter()
                    .enumerate()
                    .map(|(k, part)| {
                        let (src_slash, remote) = (&src_slash, &remote);
                        scope.spawn(move || {
                            let r = self.files_transfer(target, &part, k, src_slash, remote);
                            (part, r)
                        })
                    })
                    .collect();
                running.into_iter().filter_map(|h| h.join().ok()).collect()
            });
            let mut hard: Option<Failed> = None;
            for (part, outcome) in outcomes {
                match Self::partly(outcome, &part, partial.take()) {
                    Ok(p) => partial = p,
                    Err(f) => hard = hard.or(Some(f)),
                }
            }
            if let Some(f) = hard {
                return Err(f);
            }
        }
        partial.map_or(Ok(()), Err)
    }

    /// One `--files-from` transfer of `part`'s puts and deletes (the `k`th of its batch).
    fn files_transfer(
        &self,
        target: &Target,
        part: &Batch,
        k: usize,
        src_slash: &OsString,
        remote: &[OsString],
    ) -> Outcome {
        // Batches of one target run at once (see `RSYNC_PIPELINE`): each part its own list.
        static LISTS: AtomicU64 = AtomicU64::new(0);
        let n = LISTS.fetch_add(1, Ordering::Relaxed);
        let list = self.state.join(format!("batch-{}-{n}-{k}", target.id));
        let mut names: Vec<&PathBuf> = part.puts.iter().chain(&part.deletes).collect();
        names.sort();
        let mut bytes = Vec::new();
        for n in names {
            bytes.extend_from_slice(n.as_os_str().as_bytes());
            bytes.push(0);
        }
        std::fs::write(&list, bytes).map_err(|e| {
            (
                Failure::Transient,
                format!("{}: {e}", list.display()),
                String::new(),
            )
        })?;
        let mut files_from = OsString::from("--files-from=");
        files_from.push(&list);
        let args: Vec<OsString> = vec![
            "-a".into(),
            "-I".into(),
            "--force".into(),
            "--delete-missing-args".into(),
            "--from0".into(),
            files_from,
            src_slash.clone(),
        ];
        let outcome = self.sync(target, args, remote);
        let _ = std::fs::remove_file(&list);
        outcome
    }

    /// Folds one transfer's outcome into the batch's: a partial failure is kept (with what
    /// its error lines say to send again, joined to the earlier one's) and the batch goes on;
    /// any other ends it.
    fn partly(
        outcome: Outcome,
        part: &Batch,
        before: Option<Failed>,
    ) -> Result<Option<Failed>, Failed> {
        match outcome {
            Ok(()) => Ok(before),
            Err((Failure::Partial, why, text)) => {
                let mine = rsync_errors::failed_changes(&text, part);
                let resend = match before {
                    None => mine,
                    Some(b) => b.resend.zip(mine).map(|(mut a, m)| {
                        a.extend(m);
                        a
                    }),
                };
                Ok(Some(Failed {
                    failure: Failure::Partial,
                    why,
                    resend,
                }))
            }
            Err((failure, why, _)) => Err(Failed::new(failure, why)),
        }
    }

    /// Runs one `rtsync sync`, bounded in time and killed on shutdown (and by the kernel if
    /// this process dies, see [`transfer_outlived_its_engine`]).
    fn sync(&self, target: &Target, args: Vec<OsString>, remote: &[OsString]) -> Outcome {
        let mut cmd = Command::new(&self.exe);
        cmd.env(ENGINE_PID, std::process::id().to_string())
            .arg("sync")
            .args(&self.common)
            .args(&target.args)
            .args(remote)
            .args(args)
            .arg("--stats")
            .arg(&target.dest)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            (
                Failure::Transient,
                format!("cannot start a transfer: {e}"),
                String::new(),
            )
        })?;
        let read_all = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_string(&mut text);
                }
                text
            })
        };
        let reader = read_all(child.stderr.take().map(|p| Box::new(p) as _));
        let stats = read_all(child.stdout.take().map(|p| Box::new(p) as _));
        // A transfer is killed once it has done no I/O for `kill_after` (its own --timeout
        // should end it before): a long one that moves data (a big file over a slow or
        // --bwlimit'ed link) runs to its end.
        let mut io = child_io(child.id());
        let mut moved_at = Instant::now();
        let mut looked_at = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) => {}
                Err(_) => break None,
            }
            if looked_at.elapsed() >= Duration::from_secs(1) {
                looked_at = Instant::now();
                let now = child_io(child.id());
                if now != io {
                    io = now;
                    moved_at = looked_at;
                }
            }
            if self.abort.load(Ordering::SeqCst) || moved_at.elapsed() > target.kill_after {
                // Only our own child, by its pid.
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let text = reader.join().unwrap_or_default();
        if let Some(sent) = sent_bytes(&stats.join().unwrap_or_default()) {
            target.rsync_sent.fetch_add(sent, Ordering::Relaxed);
        }
        // The cause (say "@ERROR: auth failed on module www"), not rsync's closing summary.
        let detail = text
            .lines()
            .rfind(|l| !l.trim().is_empty() && !l.starts_with("rtsync error:"))
            .or_else(|| text.lines().rfind(|l| !l.trim().is_empty()))
            .unwrap_or("")
            .to_string();
        match status.and_then(|s| s.code()) {
            Some(code) => match Failure::of_exit(code) {
                None => Ok(()),
                Some(failure) => Err((
                    failure,
                    format!("transfer failed with exit {code}: {detail}"),
                    text,
                )),
            },
            None => Err((
                Failure::Transient,
                "transfer stopped (timed out, killed or shutting down)".to_string(),
                text,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_sent_come_from_the_closing_line() {
        let out = "Number of files: 2\nTotal bytes sent: 1,999\n\n\
                   sent 300,060 bytes  received 35 bytes  31,945.35 bytes/sec\n\
                   total size is 300,000  speedup is 1.00\n";
        assert_eq!(sent_bytes(out), Some(300_060));
        assert_eq!(sent_bytes("sent 12 bytes  received 0 bytes"), Some(12));
        assert_eq!(sent_bytes("nothing here\nsent many bytes"), None);
        assert_eq!(sent_bytes(""), None);
    }

    #[test]
    fn big_batches_split_by_directory_and_small_ones_do_not() {
        let paths = |n: usize, dir: &str| -> Vec<PathBuf> {
            (0..n)
                .map(|i| PathBuf::from(format!("{dir}{i}/f")))
                .collect()
        };
        assert_eq!(split_by_dir(&paths(999, "d"), &[], 4).len(), 1);
        assert_eq!(split_by_dir(&paths(5000, "d"), &[], 1).len(), 1);
        let puts = paths(4000, "d");
        let deletes = paths(100, "gone");
        let parts = split_by_dir(&puts, &deletes, 4);
        assert_eq!(parts.len(), 4);
        assert_eq!(
            parts
                .iter()
                .map(|p| p.puts.len() + p.deletes.len())
                .sum::<usize>(),
            4100
        );
        for part in &parts {
            let size = part.puts.len() + part.deletes.len();
            assert!((1000..=1050).contains(&size), "{size}: spread evenly");
        }
        // No top-level entry in two parts.
        let top = |p: &PathBuf| p.components().next().map(|c| c.as_os_str().to_owned());
        for (i, a) in parts.iter().enumerate() {
            for b in parts.iter().skip(i + 1) {
                for p in a.puts.iter().chain(&a.deletes) {
                    assert!(!b.puts.iter().chain(&b.deletes).any(|q| top(q) == top(p)));
                }
            }
        }
    }

    #[test]
    fn one_upload_directory_splits_by_the_directories_below_it() {
        // s/dNN/fMMMM, as an upload tree: one top-level entry, 50 directories under it.
        let mut puts: Vec<PathBuf> = (0..3000)
            .map(|i| PathBuf::from(format!("s/d{:02}/f{i:04}", i % 50)))
            .collect();
        puts.push("s".into());
        puts.push("s/d07".into());
        puts.push("top-file".into());
        let parts = split_by_dir(&puts, &[], 4);
        assert_eq!(parts.len(), 4);
        // What lies above the groups goes with the first part.
        for short in ["s", "s/d07", "top-file"] {
            assert!(parts[0].puts.contains(&PathBuf::from(short)), "{short}");
        }
        // A directory's files stay together.
        let dir = |p: &PathBuf| p.parent().map(Path::to_path_buf);
        for (i, a) in parts.iter().enumerate() {
            for b in parts.iter().skip(i + 1) {
                for p in a.puts.iter().filter(|p| p.components().count() == 3) {
                    assert!(
                        !b.puts
                            .iter()
                            .any(|q| q.components().count() == 3 && dir(q) == dir(p))
                    );
                }
            }
        }
        // Everything below one directory stays together however many files there are.
        let one: Vec<PathBuf> = (0..3000)
            .map(|i| PathBuf::from(format!("same/x/f{i}")))
            .collect();
        assert_eq!(split_by_dir(&one, &[], 4).len(), 1);
    }
}
