//! `rtsync sync`: rsync's command line for one-shot transfers.
//!
//! Options are parsed in two stages, as ripgrep does: clap collects what was typed, then
//! [`Settings::from_matches`] resolves rsync's rules — `-a` expands to `-rlptgoD`, a later
//! `--no-X` undoes an earlier `-X`, include/exclude/filter rules keep their command-line order,
//! `--files-from` implies `-R` and `-d` but not `-r` — into [`mirror::Options`] and a
//! [`filter::FilterList`]. rsync options that rtsync does not implement yet are recognised and
//! refused with exit code 4, unknown ones with exit code 1, as rsync does.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Arg, ArgAction, ArgMatches, Command};
use filter::FilterList;
use mirror::{DeleteTiming, Options, SourceArg};

use crate::exit;
use crate::output::{Printer, Verbosity};

/// rsync options rtsync knows but does not implement yet: (long name, short letter, takes value).
const UNSUPPORTED: &[(&str, Option<char>, bool)] = &[
    ("acls", Some('A'), false),
    ("xattrs", Some('X'), false),
    ("iconv", None, true),
    ("fuzzy", Some('y'), false),
    ("link-dest", None, true),
    ("copy-dest", None, true),
    ("compare-dest", None, true),
    ("write-batch", None, true),
    ("only-write-batch", None, true),
    ("read-batch", None, true),
    ("secluded-args", Some('s'), false),
    ("cvs-exclude", Some('C'), false),
    ("inplace", None, false),
    ("append", None, false),
    ("append-verify", None, false),
    ("one-file-system", Some('x'), false),
    ("remove-source-files", None, false),
    ("backup", Some('b'), false),
    ("backup-dir", None, true),
    ("suffix", None, true),
    ("chmod", None, true),
    ("chown", None, true),
    ("usermap", None, true),
    ("groupmap", None, true),
    ("copy-links", Some('L'), false),
    ("copy-dirlinks", Some('k'), false),
    ("keep-dirlinks", Some('K'), false),
    ("copy-unsafe-links", None, false),
    ("safe-links", None, false),
    ("munge-links", None, false),
    ("delay-updates", None, false),
    ("prune-empty-dirs", Some('m'), false),
    ("partial-dir", None, true),
    ("temp-dir", Some('T'), true),
    ("atimes", Some('U'), false),
    ("crtimes", Some('N'), false),
    ("executability", Some('E'), false),
    ("log-file", None, true),
    ("out-format", None, true),
];

fn flag(name: &'static str, short: Option<char>, help: &'static str) -> Arg {
    let mut a = Arg::new(name)
        .long(name)
        .action(ArgAction::SetTrue)
        .help(help);
    if let Some(s) = short {
        a = a.short(s);
    }
    a
}

/// `--no-NAME` for a flag, hidden from help as rsync's are.
fn no(name: &'static str, id: &'static str) -> Arg {
    Arg::new(id)
        .long(name)
        .action(ArgAction::SetTrue)
        .hide(true)
}

/// `--bwlimit=RATE`, read as rsync reads it (in KiB per second).
pub fn bwlimit_arg(help: &'static str) -> Arg {
    Arg::new("bwlimit")
        .long("bwlimit")
        .value_name("RATE")
        .value_parser(|v: &str| {
            daemon::args::parse_bwlimit(v.as_bytes()).map_err(|e| e.to_string())
        })
        .help(help)
}

fn values(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .value_name("PATTERN")
        .action(ArgAction::Append)
        .value_parser(clap::value_parser!(OsString))
        .allow_hyphen_values(true)
        .help(help)
}

fn command() -> Command {
    let mut cmd = Command::new("rtsync sync")
        .about("One-shot transfer with rsync's options and semantics")
        .long_about(
            "One-shot transfer with rsync's options and semantics.\n\n\
             A trailing slash on SRC copies the directory's contents; without it, the directory \
             itself. Unchanged files (same size and nanosecond mtime) are skipped; changed files \
             go through rsync's delta algorithm against the old version.",
        )
        .override_usage("rtsync sync [OPTIONS] SRC... DEST")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            Arg::new("help")
                .long("help")
                .action(ArgAction::Help)
                .help("print this help"),
        )
        .arg(
            Arg::new("paths")
                .num_args(0..)
                .value_parser(clap::value_parser!(OsString))
                .value_name("SRC... DEST"),
        )
        .arg(
            Arg::new("verbose")
                .short('v')
                .long("verbose")
                .action(ArgAction::Count)
                .help("list changed files (-vv: all)"),
        )
        .arg(flag("quiet", Some('q'), "print errors only"))
        .arg(flag("archive", Some('a'), "archive mode: -rlptgoD"))
        .arg(flag("recursive", Some('r'), "recurse into directories"))
        .arg(flag(
            "dirs",
            Some('d'),
            "transfer directories without recursing",
        ))
        .arg(flag("links", Some('l'), "copy symlinks as symlinks"))
        .arg(flag("perms", Some('p'), "preserve permissions"))
        .arg(flag(
            "times",
            Some('t'),
            "preserve modification times (with nanoseconds)",
        ))
        .arg(flag(
            "omit-dir-times",
            Some('O'),
            "do not preserve directory times",
        ))
        .arg(flag("group", Some('g'), "preserve group"))
        .arg(flag("owner", Some('o'), "preserve owner (root only)"))
        .arg(
            Arg::new("D")
                .short('D')
                .action(ArgAction::SetTrue)
                .help("same as --devices --specials"),
        )
        .arg(flag("devices", None, "preserve device files (root only)"))
        .arg(flag("specials", None, "preserve FIFOs and sockets"))
        .arg(flag("hard-links", Some('H'), "preserve hard links"))
        .arg(flag(
            "dry-run",
            Some('n'),
            "show what would change, change nothing",
        ))
        .arg(flag(
            "checksum",
            Some('c'),
            "skip files by whole-file checksum, not size and time",
        ))
        .arg(flag("size-only", None, "skip files whose size matches"))
        .arg(flag(
            "ignore-times",
            Some('I'),
            "do not skip files whose size and time match",
        ))
        .arg(flag(
            "update",
            Some('u'),
            "skip files that are newer on the destination",
        ))
        .arg(flag(
            "ignore-existing",
            None,
            "skip files that exist on the destination",
        ))
        .arg(flag(
            "existing",
            None,
            "skip creating new files on the destination",
        ))
        .arg(flag(
            "whole-file",
            Some('W'),
            "copy whole files, no delta algorithm",
        ))
        .arg(flag(
            "sparse",
            Some('S'),
            "turn sequences of nulls into holes in new files",
        ))
        .arg(flag(
            "delete",
            None,
            "delete extraneous destination files (during the transfer)",
        ))
        .arg(flag("delete-before", None, "delete before transferring"))
        .arg(flag("delete-during", None, "delete during the transfer"))
        .arg(flag("delete-after", None, "delete after transferring"))
        .arg(flag(
            "delete-delay",
            None,
            "find deletions during, delete after",
        ))
        .arg(flag(
            "delete-excluded",
            None,
            "also delete excluded files on the destination",
        ))
        .arg(flag(
            "delete-missing-args",
            None,
            "delete destination entries of missing source args",
        ))
        .arg(flag(
            "ignore-missing-args",
            None,
            "ignore missing source args",
        ))
        .arg(flag(
            "force",
            None,
            "replace non-empty directories by files even without --delete",
        ))
        .arg(
            Arg::new("max-delete")
                .long("max-delete")
                .value_name("NUM")
                .value_parser(clap::value_parser!(u64))
                .help("delete at most NUM entries"),
        )
        .arg(flag(
            "relative",
            Some('R'),
            "use full path names, creating implied directories",
        ))
        .arg(flag(
            "implied-dirs",
            None,
            "send implied directories with -R (default)",
        ))
        .arg(flag("partial", None, "keep partially transferred files"))
        .arg(
            Arg::new("P")
                .short('P')
                .action(ArgAction::SetTrue)
                .help("same as --partial --progress"),
        )
        .arg(flag(
            "numeric-ids",
            None,
            "do not map uid/gid values by name",
        ))
        .arg(flag("progress", None, "show progress per file"))
        .arg(flag("stats", None, "print transfer statistics"))
        .arg(
            Arg::new("itemize-changes")
                .short('i')
                .long("itemize-changes")
                .action(ArgAction::Count)
                .help("print a change summary for every update"),
        )
        .arg(flag(
            "human-readable",
            Some('h'),
            "accepted for compatibility; numbers are printed with commas",
        ))
        .arg(flag(
            "compress",
            Some('z'),
            "accepted; a local transfer has nothing to compress",
        ))
        .arg(flag(
            "fsync",
            None,
            "flush each file to disk before it replaces the old one",
        ))
        .arg(
            Arg::new("modify-window")
                .short('@')
                .long("modify-window")
                .value_name("NUM")
                .allow_negative_numbers(true)
                .value_parser(clap::value_parser!(i64))
                .help("times within NUM seconds match; -1 compares nanoseconds (the default here)"),
        )
        .arg(
            Arg::new("block-size")
                .short('B')
                .long("block-size")
                .value_name("SIZE")
                .value_parser(clap::value_parser!(u32).range(1..=(1 << 17)))
                .help("force the delta block size"),
        )
        .arg(
            Arg::new("checksum-choice")
                .long("checksum-choice")
                .visible_alias("cc")
                .value_name("ALG")
                .help("xxh128 (default), xxh3, xxh64, md5 or md4"),
        )
        .arg(values("exclude", "exclude files matching PATTERN"))
        .arg(values("include", "do not exclude files matching PATTERN"))
        .arg(values("exclude-from", "read exclude patterns from FILE").value_name("FILE"))
        .arg(values("include-from", "read include patterns from FILE").value_name("FILE"))
        .arg(
            values("filter", "add a filter rule (rsync syntax)")
                .short('f')
                .value_name("RULE"),
        )
        .arg(
            Arg::new("files-from")
                .long("files-from")
                .value_name("FILE")
                .value_parser(clap::value_parser!(OsString))
                .help("read the list of source names from FILE (- for stdin)"),
        )
        .arg(flag(
            "from0",
            Some('0'),
            "names in --files-from / *-from files are NUL-separated",
        ))
        .arg(
            flag(
                "no-inc-recursive",
                None,
                "accepted: rtsync never uses incremental recursion",
            )
            .hide(true),
        )
        .arg(flag(
            "list-only",
            None,
            "list instead of copying (with a daemon and no module: its modules)",
        ))
        .arg(
            Arg::new("port")
                .long("port")
                .value_name("PORT")
                .value_parser(clap::value_parser!(u16))
                .help("daemon port (default 873)"),
        )
        .arg(
            Arg::new("password-file")
                .long("password-file")
                .value_name("FILE")
                .value_parser(clap::value_parser!(OsString))
                .help("read the daemon password from FILE (else RSYNC_PASSWORD)"),
        )
        .arg(
            Arg::new("timeout")
                .long("timeout")
                .value_name("SECONDS")
                .value_parser(clap::value_parser!(u64))
                .help("I/O timeout in seconds"),
        )
        .arg(bwlimit_arg(
            "limit network I/O to RATE (KiB/s unless suffixed: 1.5M, 500K; 0: none); \
             a pull asks the server to hold its sending to it",
        ))
        .arg(
            Arg::new("contimeout")
                .long("contimeout")
                .value_name("SECONDS")
                .value_parser(clap::value_parser!(u64))
                .help("daemon connection timeout in seconds"),
        )
        .arg(
            Arg::new("rsh")
                .short('e')
                .long("rsh")
                .value_name("COMMAND")
                .help("remote shell for host:path (default ssh, or RSYNC_RSH)"),
        )
        .arg(
            Arg::new("rsync-path")
                .long("rsync-path")
                .value_name("PROGRAM")
                .help("the rsync to run on the remote host (default rsync)"),
        )
        .arg(no("no-whole-file", "no-whole-file"))
        .arg(no("no-W", "no-W"))
        .arg(no("no-sparse", "no-sparse"))
        .arg(no("no-S", "no-S"))
        .arg(no("no-recursive", "no-recursive"))
        .arg(no("no-r", "no-r"))
        .arg(no("no-perms", "no-perms"))
        .arg(no("no-p", "no-p"))
        .arg(no("no-times", "no-times"))
        .arg(no("no-t", "no-t"))
        .arg(no("no-owner", "no-owner"))
        .arg(no("no-o", "no-o"))
        .arg(no("no-group", "no-group"))
        .arg(no("no-g", "no-g"))
        .arg(no("no-links", "no-links"))
        .arg(no("no-l", "no-l"))
        .arg(no("no-D", "no-D"))
        .arg(no("no-implied-dirs", "no-implied-dirs"))
        .arg(Arg::new("F").short('F').action(ArgAction::Count).hide(true));
    for (name, short, takes_value) in UNSUPPORTED {
        let mut a = Arg::new(*name).long(*name).hide(true);
        a = if *takes_value {
            a.num_args(1).action(ArgAction::Append)
        } else {
            a.action(ArgAction::SetTrue)
        };
        if let Some(s) = short {
            a = a.short(*s);
        }
        cmd = cmd.arg(a);
    }
    cmd
}

/// The first option rtsync does not do, if one was given: refused (exit 4) for local and
/// remote transfers alike, never ignored (`--safe-links` ignored on a pull would let a server
/// plant links out of the destination: CVE-2024-12088's class).
fn unsupported_option(m: &ArgMatches) -> Option<Refusal> {
    UNSUPPORTED.iter().find_map(|(name, _, _)| {
        (m.value_source(name) == Some(clap::parser::ValueSource::CommandLine)).then(|| {
            Refusal(
                format!("option --{name}: not supported yet"),
                exit::UNSUPPORTED,
            )
        })
    })
}

/// The index of the last occurrence of an option, if given.
fn last(m: &ArgMatches, id: &str) -> Option<usize> {
    if m.value_source(id) != Some(clap::parser::ValueSource::CommandLine) {
        return None;
    }
    m.indices_of(id).and_then(Iterator::max)
}

/// Resolves an on/off option set by `on_ids` (e.g. `-p`, `-a`) and unset by `off_ids`
/// (`--no-perms`, `--no-p`): the one given last wins.
pub(crate) fn resolve(m: &ArgMatches, on_ids: &[&str], off_ids: &[&str]) -> bool {
    let on = on_ids.iter().filter_map(|id| last(m, id)).max();
    let off = off_ids.iter().filter_map(|id| last(m, id)).max();
    match (on, off) {
        (Some(a), Some(b)) => a > b,
        (Some(_), None) => true,
        _ => false,
    }
}

/// A command-line problem: its message and rsync's exit code for it.
pub(crate) struct Refusal(pub(crate) String, pub(crate) u8);

fn read_arg_file(path: &std::ffi::OsStr) -> Result<Vec<u8>, Refusal> {
    if path == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| Refusal(format!("reading standard input: {e}"), exit::FILE_IO))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| Refusal(format!("failed to open {path:?}: {e}"), exit::FILE_IO))
}

/// The filter rules of a command line, for a remote transfer (the message on failure).
pub(crate) fn filter_rules(m: &ArgMatches) -> Result<FilterList, String> {
    filters(m, m.get_flag("from0")).map_err(|Refusal(msg, _)| msg)
}

fn filters(m: &ArgMatches, from0: bool) -> Result<FilterList, Refusal> {
    // Gather every rule-bearing option with its position, then apply them in order.
    let mut ordered: Vec<(usize, &str, &OsString)> = Vec::new();
    for id in [
        "exclude",
        "include",
        "exclude-from",
        "include-from",
        "filter",
    ] {
        if let (Some(vals), Some(idx)) = (m.get_many::<OsString>(id), m.indices_of(id)) {
            ordered.extend(idx.zip(vals).map(|(i, v)| (i, id, v)));
        }
    }
    ordered.sort_by_key(|(i, _, _)| *i);
    let mut list = FilterList::new();
    let bad = |e: filter::FilterError| {
        let code = if e.is_unsupported() {
            exit::UNSUPPORTED
        } else {
            exit::SYNTAX
        };
        Refusal(e.to_string(), code)
    };
    for (_, id, value) in ordered {
        let bytes = value.as_bytes();
        match id {
            "exclude" => list.add_pattern(bytes, false).map_err(bad)?,
            "include" => list.add_pattern(bytes, true).map_err(bad)?,
            "exclude-from" | "include-from" => {
                let content = read_arg_file(value)?;
                list.add_pattern_file(&content, id == "include-from", from0)
                    .map_err(bad)?;
            }
            _ => {
                let mut read = |name: &[u8]| {
                    std::fs::read(std::ffi::OsStr::from_bytes(name)).map_err(|e| e.to_string())
                };
                list.add_filter(bytes, &mut read).map_err(bad)?;
            }
        }
    }
    Ok(list)
}

/// Everything `rtsync sync` needs, resolved from the command line.
pub(crate) struct Settings {
    pub(crate) options: Options,
    pub(crate) filters: FilterList,
    pub(crate) sources: Vec<SourceArg>,
    dest: PathBuf,
    pub(crate) files_from: Option<Vec<Vec<u8>>>,
    pub(crate) verbosity: Verbosity,
    pub(crate) stats: bool,
}

impl Settings {
    pub(crate) fn from_matches(m: &ArgMatches) -> Result<Settings, Refusal> {
        if let Some(refusal) = unsupported_option(m) {
            return Err(refusal);
        }
        if m.get_flag("list-only") {
            return Err(Refusal(
                "option --list-only: listing local paths is not supported yet".into(),
                exit::UNSUPPORTED,
            ));
        }
        if m.get_count("F") > 0 {
            return Err(Refusal(
                "option -F (per-directory .rsync-filter files): not supported yet".into(),
                exit::UNSUPPORTED,
            ));
        }
        let paths: Vec<OsString> = m
            .get_many::<OsString>("paths")
            .map(|v| v.cloned().collect())
            .unwrap_or_default();
        if paths.len() < 2 {
            return Err(Refusal(
                "rtsync sync needs at least one SRC and a DEST (see rtsync sync --help)".into(),
                if paths.len() == 1 {
                    exit::UNSUPPORTED
                } else {
                    exit::SYNTAX
                },
            ));
        }

        let from0 = m.get_flag("from0");
        let files_from = match m.get_one::<OsString>("files-from") {
            Some(path) => {
                let content = read_arg_file(path)?;
                let sep = if from0 { 0 } else { b'\n' };
                Some(
                    content
                        .split(|&b| b == sep)
                        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
                        .filter(|l| !l.is_empty())
                        .collect::<Vec<_>>(),
                )
            }
            None => None,
        };
        let (dest, sources) = paths
            .split_last()
            .ok_or_else(|| Refusal("missing DEST".into(), exit::SYNTAX))?;
        if files_from.is_some() && sources.len() != 1 {
            return Err(Refusal(
                "--files-from needs exactly one source directory".into(),
                exit::SYNTAX,
            ));
        }

        let mut o = Options::default();
        // -a does not imply -r with --files-from, as in rsync.
        let recursive_on: &[&str] = if files_from.is_some() {
            &["recursive"]
        } else {
            &["recursive", "archive"]
        };
        o.recursive = resolve(m, recursive_on, &["no-recursive", "no-r"]);
        o.dirs = m.get_flag("dirs") || files_from.is_some();
        o.links = resolve(m, &["links", "archive"], &["no-links", "no-l"]);
        o.perms = resolve(m, &["perms", "archive"], &["no-perms", "no-p"]);
        o.times = resolve(m, &["times", "archive"], &["no-times", "no-t"]);
        o.group = resolve(m, &["group", "archive"], &["no-group", "no-g"]);
        o.owner = resolve(m, &["owner", "archive"], &["no-owner", "no-o"]);
        o.devices = resolve(m, &["devices", "D", "archive"], &["no-D"]);
        o.specials = resolve(m, &["specials", "D", "archive"], &["no-D"]);
        o.omit_dir_times = m.get_flag("omit-dir-times");
        o.hard_links = m.get_flag("hard-links");
        o.dry_run = m.get_flag("dry-run");
        o.checksum = m.get_flag("checksum");
        o.size_only = m.get_flag("size-only");
        o.ignore_times = m.get_flag("ignore-times");
        o.update = m.get_flag("update");
        o.ignore_existing = m.get_flag("ignore-existing");
        o.existing = m.get_flag("existing");
        o.whole_file = resolve(m, &["whole-file"], &["no-whole-file", "no-W"]);
        o.sparse = resolve(m, &["sparse"], &["no-sparse", "no-S"]);
        o.delete = if m.get_flag("delete-before") {
            Some(DeleteTiming::Before)
        } else if m.get_flag("delete-after") || m.get_flag("delete-delay") {
            Some(DeleteTiming::After)
        } else if m.get_flag("delete")
            || m.get_flag("delete-during")
            || m.get_flag("delete-excluded")
        {
            Some(DeleteTiming::During)
        } else {
            None
        };
        o.delete_missing_args = m.get_flag("delete-missing-args");
        o.ignore_missing_args = m.get_flag("ignore-missing-args");
        o.force = m.get_flag("force");
        o.max_delete = m.get_one::<u64>("max-delete").copied();
        o.relative = m.get_flag("relative") || files_from.is_some();
        o.partial = m.get_flag("partial") || m.get_flag("P");
        o.numeric_ids = m.get_flag("numeric-ids");
        o.block_size = m.get_one::<u32>("block-size").copied();
        o.modify_window = m.get_one::<i64>("modify-window").copied();
        if m.get_flag("no-implied-dirs") {
            return Err(Refusal(
                "option --no-implied-dirs: not supported yet".into(),
                exit::UNSUPPORTED,
            ));
        }
        if let Some(name) = m.get_one::<String>("checksum-choice") {
            o.checksum_kind = delta::ChecksumKind::from_name(name)
                .ok_or_else(|| Refusal(format!("unknown checksum name: {name}"), exit::SYNTAX))?;
        }
        if m.get_flag("fsync") {
            o.persist = fsx::Persist::Sync;
        }

        let mut filters = filters(m, from0)?;
        if m.get_flag("delete-excluded") {
            filters.delete_excluded();
        }
        let verbosity = Verbosity {
            verbose: m.get_count("verbose"),
            itemize: m.get_count("itemize-changes"),
            quiet: m.get_flag("quiet"),
            progress: m.get_flag("progress") || m.get_flag("P"),
        };
        Ok(Settings {
            options: o,
            filters,
            sources: sources
                .iter()
                .map(|s| SourceArg(s.clone().into_vec()))
                .collect(),
            dest: PathBuf::from(dest),
            files_from,
            verbosity,
            stats: m.get_flag("stats"),
        })
    }
}

/// Runs `rtsync sync` with the arguments after the subcommand name.
pub fn main(args: &[OsString]) -> ExitCode {
    let argv = std::iter::once(OsString::from("rtsync sync")).chain(args.iter().cloned());
    let matches = match command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return exit::fail(exit::SYNTAX);
        }
    };
    let paths: Vec<OsString> = matches
        .get_many::<OsString>("paths")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    if paths
        .iter()
        .any(|p| client::Remote::parse(p.as_bytes()).is_some())
    {
        if let Some(Refusal(msg, code)) = unsupported_option(&matches) {
            eprintln!("rtsync: {msg}");
            return exit::fail(code);
        }
        return crate::remote::main(&matches, &paths);
    }
    let settings = match Settings::from_matches(&matches) {
        Ok(s) => s,
        Err(Refusal(msg, code)) => {
            eprintln!("rtsync: {msg}");
            return exit::fail(code);
        }
    };
    run(&settings)
}

fn run(s: &Settings) -> ExitCode {
    let started = Instant::now();
    let mut printer = Printer::new(s.verbosity);
    if s.verbosity.verbose > 0 || s.verbosity.progress {
        printer.line("sending incremental file list");
    }
    let result = mirror::run(
        &s.sources,
        s.files_from.as_deref(),
        &s.dest,
        &s.options,
        &s.filters,
        &mut printer,
    );
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            printer.finish();
            if let mirror::MirrorError::Placement(refusal) = &e {
                // rsync's own text, which starts with "ERROR:".
                eprintln!("{refusal}");
            } else {
                eprintln!("rtsync: {e}");
            }
            return exit::fail(e.exit_code());
        }
    };
    if s.stats {
        printer.line("");
        printer.line(outcome.stats.render().trim_end());
    }
    if s.verbosity.verbose > 0 || s.stats {
        printer.line("");
        printer.line(outcome.stats.summary(started.elapsed()).trim_end());
    }
    if s.options.dry_run && (s.verbosity.verbose > 0 || s.stats) {
        printer.line(" (DRY RUN)");
    }
    printer.finish();
    match u8::try_from(outcome.exit_code()).unwrap_or(1) {
        0 => ExitCode::SUCCESS,
        code => exit::fail(code),
    }
}
