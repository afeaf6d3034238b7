//! `rtsync watch`: inotifywait and inotifywatch in one command.
//!
//! Without `--stats` it behaves as Debian's `inotifywait`: same options, same output for the
//! same events (`%w %e %f` by default, `--format`, `--csv`, `--timefmt`), same messages and exit
//! codes (0 after an event, 1 on error, 2 on timeout). With `--stats` (`-S`) it counts events per
//! watched directory and prints inotifywatch's table when the timeout expires or on Ctrl-C.
//! Unlike inotifywait, files created in a new directory before its watch existed are reported,
//! and paths below a renamed directory stay correct.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Arg, ArgAction, ArgMatches, Command};
use watch::{FanotifyWatcher, InotifyWatcher, RawEvent, Selector, WatchOptions, Watcher, mask};

fn command() -> Command {
    let event_help = "\
Events:
  access         file or directory contents were read
  modify         file or directory contents were written
  attrib         file or directory attributes changed
  close_write    file or directory closed, after being opened in writable mode
  close_nowrite  file or directory closed, after being opened in read-only mode
  close          file or directory closed, regardless of read/write mode
  open           file or directory opened
  moved_to       file or directory moved to watched directory
  moved_from     file or directory moved from watched directory
  move           file or directory moved to or from watched directory
  move_self      a watched file or directory was moved
  create         file or directory created within watched directory
  delete         file or directory deleted within watched directory
  delete_self    file or directory was deleted
  unmount        file system containing file or directory unmounted

Exit status: 0 an event occurred (or --stats finished), 1 an error, 2 the timeout expired.";
    Command::new("rtsync watch")
        .about("Print filesystem events, as inotifywait does (or count them, as inotifywatch)")
        .override_usage("rtsync watch [OPTIONS] FILE... (@FILE excludes FILE)")
        .after_help(event_help)
        .disable_version_flag(true)
        .arg(Arg::new("paths").num_args(0..).value_parser(clap::value_parser!(OsString)).value_name("FILE"))
        .arg(Arg::new("monitor").short('m').long("monitor").action(ArgAction::SetTrue).help("keep listening for events forever (or until --timeout)"))
        .arg(Arg::new("recursive").short('r').long("recursive").action(ArgAction::SetTrue).help("watch all subdirectories, including new ones"))
        .arg(Arg::new("quiet").short('q').long("quiet").action(ArgAction::Count).help("no setup messages (-qq: print nothing)"))
        .arg(Arg::new("event").short('e').long("event").action(ArgAction::Append).value_name("EVENT").help("listen for EVENT only (comma-separated, repeatable)"))
        .arg(Arg::new("exclude").long("exclude").action(ArgAction::Append).value_name("REGEX").help("ignore paths matching the extended regular expression"))
        .arg(Arg::new("excludei").long("excludei").action(ArgAction::Append).value_name("REGEX").help("like --exclude, ignoring case"))
        .arg(Arg::new("include").long("include").action(ArgAction::Append).value_name("REGEX").help("report only paths matching the regular expression"))
        .arg(Arg::new("includei").long("includei").action(ArgAction::Append).value_name("REGEX").help("like --include, ignoring case"))
        .arg(Arg::new("timeout").short('t').long("timeout").value_name("SECONDS").value_parser(clap::value_parser!(u64)).help("exit after SECONDS without an event (--stats: after SECONDS)"))
        .arg(Arg::new("timefmt").long("timefmt").value_name("FMT").help("strftime format for %T"))
        .arg(Arg::new("format").long("format").value_name("FMT").help("output format: %w watched path, %f name, %e events, %Xe events separated by X, %T time, %c cookie"))
        .arg(Arg::new("csv").short('c').long("csv").action(ArgAction::SetTrue).help("print events as CSV"))
        .arg(Arg::new("fromfile").long("fromfile").value_name("FILE").value_parser(clap::value_parser!(OsString)).help("read paths to watch from FILE (- for stdin; @path excludes)"))
        .arg(Arg::new("outfile").short('o').long("outfile").value_name("FILE").value_parser(clap::value_parser!(OsString)).help("append events to FILE instead of standard output"))
        .arg(Arg::new("daemon").short('d').long("daemon").action(ArgAction::SetTrue).help("run in the background (needs -o); with --stats: sort descending by EVENT"))
        .arg(Arg::new("syslog").short('s').long("syslog").action(ArgAction::SetTrue).help("send errors to syslog"))
        .arg(Arg::new("no-dereference").short('P').long("no-dereference").action(ArgAction::SetTrue).help("do not follow a symlink given as FILE"))
        .arg(Arg::new("fanotify").short('F').long("fanotify").action(ArgAction::SetTrue).help("watch whole filesystems with fanotify (root; no per-directory watches, no watch limit); falls back to inotify with a message"))
        .arg(Arg::new("stats").short('S').long("stats").action(ArgAction::SetTrue).help("count events per watched directory, as inotifywatch"))
        .arg(Arg::new("ascending").short('a').long("ascending").value_name("EVENT").help("--stats: sort ascending by EVENT's count"))
        .arg(Arg::new("descending").long("descending").value_name("EVENT").help("--stats: sort descending by EVENT's count (also -d EVENT with --stats)"))
        .arg(Arg::new("zero").short('z').long("zero").action(ArgAction::SetTrue).help("--stats: show rows and columns with zero counts"))
}

/// A refused command line: the message and the exit code.
struct Refusal(String);

fn parse_events(m: &ArgMatches) -> Result<u32, Refusal> {
    let Some(values) = m.get_many::<String>("event") else {
        return Ok(mask::ALL);
    };
    let mut bits = 0;
    for name in values.flat_map(|v| v.split(',')) {
        bits |= mask::from_name(name).ok_or_else(|| {
            Refusal(format!("'{name}' is not a valid event!  Run with the '--help' option to see a list of events."))
        })?;
    }
    Ok(bits)
}

fn selector(m: &ArgMatches, excluded_paths: &[PathBuf]) -> Result<Selector, Refusal> {
    let mut s = Selector::new();
    let bad = |e: regex::Error| Refusal(format!("Regex error: {e}"));
    for (id, exclude, icase) in [
        ("exclude", true, false),
        ("excludei", true, true),
        ("include", false, false),
        ("includei", false, true),
    ] {
        for pattern in m.get_many::<String>(id).into_iter().flatten() {
            if exclude {
                s.exclude_regex(pattern, icase).map_err(bad)?;
            } else {
                s.include_regex(pattern, icase).map_err(bad)?;
            }
        }
    }
    for p in excluded_paths {
        s.exclude_path(p);
    }
    Ok(s)
}

/// Paths to watch and paths excluded with `@`, from the arguments and `--fromfile`.
fn paths(m: &ArgMatches) -> Result<(Vec<PathBuf>, Vec<PathBuf>), Refusal> {
    let mut raw: Vec<Vec<u8>> = m
        .get_many::<OsString>("paths")
        .into_iter()
        .flatten()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    if let Some(file) = m.get_one::<OsString>("fromfile") {
        let content = if file == "-" {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).map(|_| v)
        } else {
            std::fs::read(file)
        }
        .map_err(|e| Refusal(format!("Couldn't open {}: {e}", Path::new(file).display())))?;
        raw.extend(
            content
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    let (mut watch, mut skip) = (Vec::new(), Vec::new());
    for p in raw {
        match p.strip_prefix(b"@") {
            Some(rest) => skip.push(PathBuf::from(OsString::from_vec(rest.to_vec()))),
            None => watch.push(PathBuf::from(OsString::from_vec(p))),
        }
    }
    if watch.is_empty() {
        return Err(Refusal("No files specified to watch!".into()));
    }
    Ok((watch, skip))
}

/// How each event is written.
enum Layout {
    /// `%w %e %f`.
    Plain,
    /// `--csv`.
    Csv,
    /// `--format`.
    Format(Vec<u8>),
}

fn csv_field(out: &mut Vec<u8>, field: &[u8]) {
    if field.iter().any(|&b| b == b',' || b == b'"' || b == b'\n') {
        out.push(b'"');
        for &b in field {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field);
    }
}

fn render(layout: &Layout, timefmt: Option<&str>, ev: &RawEvent) -> Vec<u8> {
    let w = ev.watch.as_os_str().as_bytes();
    let names = mask::names(ev.mask);
    let mut out = Vec::with_capacity(64);
    match layout {
        Layout::Plain => {
            out.extend_from_slice(w);
            out.push(b' ');
            out.extend_from_slice(names.join(",").as_bytes());
            out.push(b' ');
            out.extend_from_slice(&ev.name);
        }
        Layout::Csv => {
            csv_field(&mut out, w);
            out.push(b',');
            csv_field(&mut out, names.join(",").as_bytes());
            out.push(b',');
            csv_field(&mut out, &ev.name);
        }
        Layout::Format(fmt) => {
            let mut i = 0;
            while let Some(&c) = fmt.get(i) {
                i += 1;
                if c != b'%' {
                    out.push(c);
                    continue;
                }
                match (fmt.get(i), fmt.get(i + 1)) {
                    (Some(b'w'), _) => out.extend_from_slice(w),
                    (Some(b'f'), _) => out.extend_from_slice(&ev.name),
                    (Some(b'e'), _) => out.extend_from_slice(names.join(",").as_bytes()),
                    (Some(b'c'), _) => out.extend_from_slice(format!("{:x}", ev.cookie).as_bytes()),
                    (Some(b'T'), _) => {
                        let now = chrono::Local::now();
                        out.extend_from_slice(
                            now.format(timefmt.unwrap_or("")).to_string().as_bytes(),
                        );
                    }
                    (Some(b'%'), _) => out.push(b'%'),
                    (Some(&sep), Some(b'e')) => {
                        out.extend_from_slice(names.join(&char::from(sep).to_string()).as_bytes());
                        i += 1;
                    }
                    (Some(&other), _) => {
                        out.push(b'%');
                        out.push(other);
                    }
                    (None, _) => out.push(b'%'),
                }
                i += 1;
            }
        }
    }
    out.push(b'\n');
    out
}

/// Where lines go: standard output or `--outfile` (appended).
fn sink(m: &ArgMatches) -> Result<Box<dyn Write>, Refusal> {
    match m.get_one::<OsString>("outfile") {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    Refusal(format!("Couldn't open {}: {e}", Path::new(path).display()))
                })?;
            Ok(Box::new(std::io::BufWriter::new(f)))
        }
        None => Ok(Box::new(std::io::BufWriter::new(std::io::stdout().lock()))),
    }
}

/// `-s`: messages to syslog through `/dev/log`, as `rtsync-watch`.
fn syslog(message: &str) {
    let sock = std::os::unix::net::UnixDatagram::unbound();
    let sent = sock.and_then(|s| {
        s.send_to(
            format!("<11>rtsync-watch: {message}").as_bytes(),
            "/dev/log",
        )
    });
    if sent.is_err() {
        eprintln!("{message}");
    }
}

/// Re-runs this command in the background without `-d`, detached from the terminal.
fn daemonize(args: &[OsString]) -> ExitCode {
    let rest: Vec<&OsString> = args
        .iter()
        .filter(|a| *a != "-d" && *a != "--daemon")
        .collect();
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("rtsync"));
    let spawned = std::process::Command::new(exe)
        .arg("watch")
        .args(rest)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
    match spawned {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtsync watch: cannot start in the background: {e}");
            ExitCode::from(1)
        }
    }
}

use std::os::unix::process::CommandExt;

/// Runs `rtsync watch` with the arguments after the subcommand name.
pub fn main(args: &[OsString]) -> ExitCode {
    let argv = std::iter::once(OsString::from("rtsync watch")).chain(args.iter().cloned());
    let m = match command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(1);
        }
    };
    let use_syslog = m.get_flag("syslog");
    let fail = |msg: &str| {
        if use_syslog {
            syslog(msg);
        } else {
            eprintln!("{msg}");
        }
        ExitCode::from(1)
    };
    let stats = m.get_flag("stats");
    if !stats && m.get_flag("daemon") {
        if m.get_one::<OsString>("outfile").is_none() {
            return fail("-o must be specified with -d.");
        }
        return daemonize(args);
    }
    let result = if stats {
        run_stats(&m, args)
    } else {
        run_wait(&m)
    };
    match result {
        Ok(code) => code,
        Err(Refusal(msg)) => fail(&msg),
    }
}

fn setup(m: &ArgMatches, events: u32) -> Result<(Watcher, usize), Refusal> {
    let (watch_paths, skipped) = paths(m)?;
    let opts = WatchOptions {
        recursive: m.get_flag("recursive"),
        events,
        no_dereference: m.get_flag("no-dereference"),
        selector: selector(m, &skipped)?,
    };
    let mut w = if m.get_flag("fanotify") {
        match FanotifyWatcher::new(opts.clone()) {
            Ok(f) => Watcher::Fanotify(f),
            Err(e) => {
                eprintln!("rtsync watch: cannot use fanotify ({e}); watching with inotify");
                Watcher::Inotify(InotifyWatcher::new(opts).map_err(|e| Refusal(e.to_string()))?)
            }
        }
    } else {
        Watcher::Inotify(InotifyWatcher::new(opts).map_err(|e| Refusal(e.to_string()))?)
    };
    for p in &watch_paths {
        w.add(p).map_err(|e| Refusal(e.to_string()))?;
    }
    Ok((w, watch_paths.len()))
}

fn run_wait(m: &ArgMatches) -> Result<ExitCode, Refusal> {
    let quiet = m.get_count("quiet");
    let layout = match (m.get_flag("csv"), m.get_one::<String>("format")) {
        (true, Some(_)) => return Err(Refusal("-c and --format cannot both be specified.".into())),
        (true, None) => Layout::Csv,
        (false, Some(f)) => Layout::Format(f.as_bytes().to_vec()),
        (false, None) => Layout::Plain,
    };
    let timefmt = m.get_one::<String>("timefmt").map(String::as_str);
    if let (Layout::Format(f), None) = (&layout, timefmt)
        && f.windows(2).any(|w| w == b"%T")
    {
        return Err(Refusal(
            "%T is in --format string, but --timefmt was not specified.".into(),
        ));
    }
    let events = parse_events(m)?;
    let mut out = sink(m)?;
    if quiet == 0 {
        if m.get_flag("recursive") {
            eprintln!("Setting up watches.  Beware: since -r was given, this may take a while!");
        } else {
            eprintln!("Setting up watches.");
        }
    }
    let (mut w, _) = setup(m, events)?;
    if quiet == 0 {
        eprintln!("Watches established.");
    }
    let monitor = m.get_flag("monitor");
    let timeout = m
        .get_one::<u64>("timeout")
        .copied()
        .filter(|&t| t > 0)
        .map(Duration::from_secs);
    loop {
        let ev = w.next_event(timeout).map_err(|e| Refusal(e.to_string()))?;
        for e in w.take_errors() {
            eprintln!("{e}");
        }
        let Some(ev) = ev else {
            return Ok(ExitCode::from(2));
        };
        if quiet < 2 {
            let line = render(&layout, timefmt, &ev);
            // Lines leave as soon as no other event is already waiting: immediately when events
            // trickle, in large writes during a storm.
            let flushed = out
                .write_all(&line)
                .and_then(|()| if w.has_pending() { Ok(()) } else { out.flush() });
            if flushed.is_err() {
                // A closed pipe (`| head`) ends the watch quietly.
                return Ok(ExitCode::SUCCESS);
            }
        }
        if !monitor {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// Column order of inotifywatch's table.
const STAT_COLUMNS: [(&str, u32); 12] = [
    ("access", mask::ACCESS),
    ("modify", mask::MODIFY),
    ("attrib", mask::ATTRIB),
    ("close_write", mask::CLOSE_WRITE),
    ("close_nowrite", mask::CLOSE_NOWRITE),
    ("open", mask::OPEN),
    ("moved_from", mask::MOVED_FROM),
    ("moved_to", mask::MOVED_TO),
    ("move_self", mask::MOVE_SELF),
    ("create", mask::CREATE),
    ("delete", mask::DELETE),
    ("delete_self", mask::DELETE_SELF),
];

fn run_stats(m: &ArgMatches, args: &[OsString]) -> Result<ExitCode, Refusal> {
    let events = parse_events(m)?;
    // inotifywatch spells the descending sort -d; here -d is also --daemon, so look for it.
    let mut descending = m.get_one::<String>("descending").cloned();
    if descending.is_none() && m.get_flag("daemon") {
        let pos = args.iter().position(|a| a == "-d");
        descending = pos
            .and_then(|i| args.get(i + 1))
            .map(|a| a.to_string_lossy().into_owned());
    }
    let sort: Option<(u32, bool)> = match (m.get_one::<String>("ascending"), descending) {
        (Some(name), _) => Some((sort_key(name)?, true)),
        (None, Some(name)) => Some((sort_key(&name)?, false)),
        (None, None) => None,
    };
    eprintln!("Establishing watches...");
    let (mut w, _) = setup(m, events)?;
    eprintln!("Finished establishing watches, now collecting statistics.");
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
    }
    let end = m
        .get_one::<u64>("timeout")
        .copied()
        .filter(|&t| t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t));
    let mut table: Vec<(PathBuf, [u64; 12])> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let tick = Duration::from_millis(200);
        let wait = end.map_or(tick, |e| {
            e.saturating_duration_since(Instant::now()).min(tick)
        });
        if end.is_some_and(|e| Instant::now() >= e) {
            break;
        }
        let Some(ev) = w
            .next_event(Some(wait))
            .map_err(|e| Refusal(e.to_string()))?
        else {
            continue;
        };
        let row = match table.iter().position(|(p, _)| *p == ev.watch) {
            Some(i) => i,
            None => {
                table.push((ev.watch.clone(), [0; 12]));
                table.len() - 1
            }
        };
        if let Some((_, counts)) = table.get_mut(row) {
            for (i, (_, bit)) in STAT_COLUMNS.iter().enumerate() {
                if ev.mask & bit != 0
                    && let Some(c) = counts.get_mut(i)
                {
                    *c += 1;
                }
            }
        }
    }
    print!("{}", stats_table(&table, sort, m.get_flag("zero")));
    Ok(ExitCode::SUCCESS)
}

fn sort_key(name: &str) -> Result<u32, Refusal> {
    if name.eq_ignore_ascii_case("total") {
        return Ok(0);
    }
    mask::from_name(name).ok_or_else(|| {
        Refusal(format!(
            "'{name}' is not a valid event!  Run with the '--help' option to see a list of events."
        ))
    })
}

fn stats_table(table: &[(PathBuf, [u64; 12])], sort: Option<(u32, bool)>, zero: bool) -> String {
    let total = |c: &[u64; 12]| c.iter().sum::<u64>();
    let mut rows: Vec<&(PathBuf, [u64; 12])> =
        table.iter().filter(|(_, c)| zero || total(c) > 0).collect();
    if rows.is_empty() {
        return "No events occurred.\n".into();
    }
    let key = |c: &[u64; 12], bit: u32| -> u64 {
        if bit == 0 {
            return total(c);
        }
        STAT_COLUMNS
            .iter()
            .zip(c)
            .filter(|((_, b), _)| *b == bit)
            .map(|(_, n)| *n)
            .sum()
    };
    let (bit, ascending) = sort.unwrap_or((0, false));
    rows.sort_by(|a, b| {
        let (ka, kb) = (key(&a.1, bit), key(&b.1, bit));
        if ascending { ka.cmp(&kb) } else { kb.cmp(&ka) }
    });
    let columns: Vec<usize> = (0..STAT_COLUMNS.len())
        .filter(|&i| zero || rows.iter().any(|(_, c)| c.get(i).copied().unwrap_or(0) > 0))
        .collect();
    let mut out = String::new();
    let mut header = vec![("total".to_string(), 5usize)];
    header.extend(
        columns
            .iter()
            .filter_map(|&i| STAT_COLUMNS.get(i))
            .map(|(n, _)| (n.to_string(), n.len())),
    );
    for (name, width) in &header {
        out.push_str(&format!("{name:<width$}  "));
    }
    out.push_str("filename\n");
    for (path, counts) in rows {
        out.push_str(&format!("{:<5}  ", total(counts)));
        for &i in &columns {
            let width = STAT_COLUMNS.get(i).map_or(0, |(n, _)| n.len());
            out.push_str(&format!(
                "{:<width$}  ",
                counts.get(i).copied().unwrap_or(0)
            ));
        }
        out.push_str(&path.to_string_lossy());
        out.push('\n');
    }
    out
}
