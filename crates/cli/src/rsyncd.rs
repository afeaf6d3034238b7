//! `rtsync daemon`: `rsync --daemon` for stock rsync clients. Reads an rsyncd.conf (by default
//! `/etc/rsyncd.conf`), listens on its port (873), and serves its modules until SIGTERM.
//! Detaches by default as rsync does; `--no-detach` stays in the foreground (systemd).
//! SIGHUP re-reads the configuration for new connections.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches};

use crate::exit;

fn command() -> clap::Command {
    clap::Command::new("rtsync daemon")
        .about("An rsync daemon: serves rsyncd.conf modules to stock rsync clients")
        .arg(
            Arg::new("config")
                .long("config")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("the rsyncd.conf to read (default /etc/rsyncd.conf)"),
        )
        .arg(
            Arg::new("port")
                .long("port")
                .value_name("PORT")
                .value_parser(clap::value_parser!(u16))
                .help("listen on PORT instead of the config's (873)"),
        )
        .arg(
            Arg::new("address")
                .long("address")
                .value_name("ADDRESS")
                .help("listen on ADDRESS only"),
        )
        .arg(
            Arg::new("no-detach")
                .long("no-detach")
                .action(ArgAction::SetTrue)
                .help("stay in the foreground (for systemd or a terminal)"),
        )
        .arg(
            Arg::new("log-file")
                .long("log-file")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("log here instead of the config's log file"),
        )
        .arg(
            Arg::new("daemon")
                .long("daemon")
                .action(ArgAction::SetTrue)
                .hide(true)
                .help("accepted for rsync's spelling (`--daemon`)"),
        )
}

/// The daemon's log: rsync's `YYYY/MM/DD HH:MM:SS [pid] text` lines, to a file or stderr.
struct DaemonLog {
    out: Mutex<Box<dyn Write + Send>>,
    pid: u32,
}

impl DaemonLog {
    fn stamp() -> String {
        chrono::Local::now().format("%Y/%m/%d %H:%M:%S").to_string()
    }
}

impl daemon::Log for DaemonLog {
    fn line(&self, text: &str) {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(out, "{} [{}] {text}", Self::stamp(), self.pid);
        let _ = out.flush();
    }

    fn transfer(&self, e: &daemon::TransferEntry<'_>) {
        let line = expand(e, &Self::stamp(), self.pid);
        self.line(&line);
    }
}

/// A transfer-log line: the module's `log format` expanded for one entry.
fn expand(e: &daemon::TransferEntry<'_>, time: &str, pid: u32) -> String {
    let file = String::from_utf8_lossy(e.file);
    let opt = |s: &str| -> Option<String> { (!s.is_empty()).then(|| s.to_owned()) };
    let (user, module_path) = (opt(e.user), opt(e.module_path));
    let ctx = daemon::logfmt::LogContext {
        time,
        pid,
        addr: Some(e.addr),
        host: Some(e.host),
        module: Some(e.module),
        module_path: module_path.as_deref(),
        user: user.as_deref(),
        op: e.op,
        file: &file,
        name: &file,
        length: i64::try_from(e.len).unwrap_or(i64::MAX),
        bytes: i64::try_from(e.len).unwrap_or(i64::MAX),
        sending: e.op == "send",
        ..daemon::logfmt::LogContext::default()
    };
    daemon::logfmt::expand(e.format, &ctx)
}

fn load(path: &Path) -> Result<daemon::config::Config, String> {
    daemon::config::load(path).map_err(|e| e.to_string())
}

/// Entry point of `rtsync daemon`.
pub fn main(args: &[OsString]) -> ExitCode {
    let m = match command().try_get_matches_from(
        std::iter::once(OsString::from("rtsync daemon")).chain(args.iter().cloned()),
    ) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::SYNTAX } else { 0 });
        }
    };
    let config_path = m
        .get_one::<PathBuf>("config")
        .cloned()
        .unwrap_or_else(|| PathBuf::from("/etc/rsyncd.conf"));
    let config = match load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rtsync daemon: {e}");
            return ExitCode::from(exit::SYNTAX);
        }
    };
    for w in &config.warnings {
        eprintln!("rtsync daemon: warning: {w}");
    }
    if !m.get_flag("no-detach") {
        return detach(args);
    }
    serve(&m, &config_path, config)
}

/// Starts this same command again with `--no-detach`, in its own process group and session
/// of output, and returns once it runs (rsync forks and the parent exits).
fn detach(args: &[OsString]) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("rtsync daemon: cannot find my own binary: {e}");
            return ExitCode::from(exit::SYNTAX);
        }
    };
    let spawned = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .arg("daemon")
            .arg("--no-detach")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
    };
    match spawned {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtsync daemon: cannot start in the background: {e}");
            ExitCode::from(exit::SYNTAX)
        }
    }
}

/// Writes and locks the pid file; the lock lives as long as the returned file.
fn pid_file(path: &str) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("failed to create pid file {path}: {e}"))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| format!("pid file {path} is locked: is another daemon running?"))?;
    file.set_len(0)
        .and_then(|()| writeln!(&file, "{}", std::process::id()))
        .map_err(|e| format!("failed to write pid file {path}: {e}"))?;
    Ok(file)
}

fn serve(m: &ArgMatches, config_path: &Path, config: daemon::config::Config) -> ExitCode {
    let log_target = m
        .get_one::<PathBuf>("log-file")
        .cloned()
        .or_else(|| config.global.defaults.log_file.as_ref().map(PathBuf::from));
    let out: Box<dyn Write + Send> = match &log_target {
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!(
                    "rtsync daemon: failed to open log file {}: {e}",
                    path.display()
                );
                return ExitCode::from(exit::SYNTAX);
            }
        },
        None => Box::new(std::io::stderr()),
    };
    let log: Arc<dyn daemon::Log> = Arc::new(DaemonLog {
        out: Mutex::new(out),
        pid: std::process::id(),
    });
    let pid_path = config.global.pid_file.clone();
    let _pid = match pid_path.as_deref().map(pid_file).transpose() {
        Ok(f) => f,
        Err(e) => {
            log.line(&e);
            eprintln!("rtsync daemon: {e}");
            return ExitCode::from(exit::SYNTAX);
        }
    };
    let port = m
        .get_one::<u16>("port")
        .copied()
        .unwrap_or(config.global.port);
    let address = m
        .get_one::<String>("address")
        .cloned()
        .or_else(|| config.global.address.clone())
        .unwrap_or_else(|| "0.0.0.0".to_owned());
    let listener = match std::net::TcpListener::bind((address.as_str(), port)) {
        Ok(l) => l,
        Err(e) => {
            let text = format!("failed to bind {address}:{port}: {e}");
            log.line(&text);
            eprintln!("rtsync daemon: {text}");
            return ExitCode::from(10);
        }
    };
    let control = daemon::listener::Control {
        stop: Arc::new(AtomicBool::new(false)),
        reload: Arc::new(AtomicBool::new(false)),
        drain: Duration::from_secs(30),
        config_path: Some(config_path.to_path_buf()),
    };
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&control.stop));
    }
    let _ = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&control.reload));
    log.line(&format!(
        "rtsync daemon {} starting, listening on port {port}",
        env!("CARGO_PKG_VERSION")
    ));
    let path = config_path.to_path_buf();
    crate::sd_notify::ready(&format!("listening on {address}:{port}"));
    daemon::listener::run(&listener, config, &|| load(&path), &log, &control);
    crate::sd_notify::stopping();
    log.line("rtsync daemon stopped");
    if let Some(path) = &pid_path {
        let _ = std::fs::remove_file(path);
    }
    ExitCode::SUCCESS
}
