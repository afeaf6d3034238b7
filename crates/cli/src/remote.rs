//! `rtsync sync` with a remote side. Today: module listings of rsync daemons
//! (`rtsync sync rsync://host/`, `rtsync sync host::`); listings of a module's contents
//! (`--list-only`, or a daemon path given alone, as rsync does), which run the real protocol —
//! setup, checksum negotiation, multiplexed I/O, the file list and the closing phases; and
//! opening a module with authentication, which gives the daemon's own answers (unknown module,
//! auth failed, access denied) with rsync's exit codes. Copying files over the rsync protocol
//! is not built yet and exits with code 4 once the module is open.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::ArgMatches;
use client::daemon::{ConnectOptions, Connection, read_password_file};
use client::{ClientError, Remote};
use session::SessionError;

use crate::exit;
use crate::output::escape_name;

fn fail(e: &ClientError) -> ExitCode {
    match e {
        ClientError::Session(SessionError::Protocol(protocol::ProtoError::Remote(msg))) => {
            eprintln!("@ERROR: {msg}")
        }
        ClientError::Connect { .. } | ClientError::ConnectTimeout { .. } => {
            eprintln!("rtsync: {e}")
        }
        other => eprintln!("rtsync: {other}"),
    }
    exit::fail(e.exit_code())
}

/// A daemon's password, when it asks: from `--password-file`, else `RSYNC_PASSWORD`.
pub fn daemon_password(password_file: Option<&Path>) -> Result<Vec<u8>, ClientError> {
    if let Some(file) = password_file {
        return read_password_file(file);
    }
    if let Some(pw) = std::env::var_os("RSYNC_PASSWORD") {
        return Ok(pw.as_bytes().to_vec());
    }
    Err(ClientError::Password(
        "the daemon asks for a password: give --password-file=FILE or set RSYNC_PASSWORD".into(),
    ))
}

/// The name to log in to a daemon as: the URL's `user@`, else `$USER`, `$LOGNAME`, `nobody`.
pub fn login_name(user: Option<&String>) -> String {
    user.cloned()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| "nobody".into())
}

/// Where the rsync server is: a daemon module already opened, or a remote shell to start it.
enum Server {
    /// A daemon connection with its module open.
    Daemon(Option<Connection>),
    /// `RSH [-l USER] HOST RSYNC_PATH --server …`.
    Shell {
        command: Vec<String>,
        user: Option<String>,
        host: String,
        rsync_path: Vec<String>,
        child: Option<std::process::Child>,
    },
}

impl Server {
    /// The connection for a server started with `args`.
    fn open(&mut self, args: &[Vec<u8>]) -> Result<Connection, ClientError> {
        match self {
            Server::Daemon(conn) => conn.take().ok_or_else(|| {
                ClientError::from(std::io::Error::from(std::io::ErrorKind::NotConnected))
            }),
            Server::Shell {
                command,
                user,
                host,
                rsync_path,
                child,
            } => {
                let (program, rest) = command
                    .split_first()
                    .ok_or_else(|| ClientError::Password("empty --rsh command".into()))?;
                let mut cmd = std::process::Command::new(program);
                cmd.args(rest);
                if let Some(u) = user {
                    cmd.args(["-l", u.as_str()]);
                }
                cmd.arg(host.as_str()).args(rsync_path.iter());
                cmd.args(args.iter().map(|a| std::ffi::OsStr::from_bytes(a)));
                cmd.stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped());
                let mut spawned = cmd.spawn().map_err(|e| ClientError::Connect {
                    host: format!("{host} (via {program})"),
                    source: e,
                })?;
                let (Some(to), Some(from)) = (spawned.stdin.take(), spawned.stdout.take()) else {
                    return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe).into());
                };
                *child = Some(spawned);
                Connection::over_pipes(Box::new(to), Box::new(from))
            }
        }
    }

    /// Waits for a remote shell to end (its code, when it failed).
    fn finish(&mut self) -> Option<u8> {
        if let Server::Shell { child: Some(c), .. } = self {
            let status = c.wait().ok()?;
            if !status.success() {
                return Some(
                    status
                        .code()
                        .and_then(|c| u8::try_from(c).ok())
                        .unwrap_or(12),
                );
            }
        }
        None
    }
}

/// Handles a command line in which some path is remote.
pub fn main(m: &ArgMatches, paths: &[OsString]) -> ExitCode {
    let Some(remote) = paths.iter().find_map(|p| Remote::parse(p.as_bytes())) else {
        return exit::fail(exit::SYNTAX);
    };
    let (mut server, target) = match &remote {
        Remote::Shell { user, host, path } => {
            let words = |id: &str, default: &str| -> Vec<String> {
                m.get_one::<String>(id)
                    .map_or(default, String::as_str)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect()
            };
            let rsh = m
                .get_one::<String>("rsh")
                .cloned()
                .or_else(|| std::env::var("RSYNC_RSH").ok());
            let command = rsh
                .as_deref()
                .unwrap_or("ssh")
                .split_whitespace()
                .map(str::to_string)
                .collect();
            let target = if path.is_empty() {
                b".".to_vec()
            } else {
                path.clone()
            };
            let server = Server::Shell {
                command,
                user: user.clone(),
                host: host.clone(),
                rsync_path: words("rsync-path", "rsync"),
                child: None,
            };
            (server, target)
        }
        Remote::Daemon {
            user,
            host,
            port,
            module,
            path,
        } => {
            let opts = ConnectOptions {
                host: host.clone(),
                port: m
                    .get_one::<u16>("port")
                    .copied()
                    .or(*port)
                    .unwrap_or(protocol::RSYNC_PORT),
                connect_timeout: m
                    .get_one::<u64>("contimeout")
                    .copied()
                    .filter(|&s| s > 0)
                    .map(Duration::from_secs),
                io_timeout: m
                    .get_one::<u64>("timeout")
                    .copied()
                    .filter(|&s| s > 0)
                    .map(Duration::from_secs),
            };
            let mut conn = match Connection::connect(&opts) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            let mut out = std::io::stdout().lock();
            let mut text = |line: &[u8]| {
                let _ = out.write_all(line);
                let _ = out.write_all(b"\n");
            };
            let Some(module) = module else {
                // rsync lists the modules when no module is named (one argument, or --list-only).
                return match conn.list_modules(&mut text) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(&e),
                };
            };
            let password_file = m.get_one::<OsString>("password-file").cloned();
            let mut password = || daemon_password(password_file.as_deref().map(Path::new));
            if let Err(e) =
                conn.open_module(module, &login_name(user.as_ref()), &mut password, &mut text)
            {
                return fail(&e);
            }
            let mut target = module.as_bytes().to_vec();
            target.push(b'/');
            target.extend_from_slice(path);
            (Server::Daemon(Some(conn)), target)
        }
    };
    let is_remote = |p: &OsString| Remote::parse(p.as_bytes()).is_some();
    let source_is_remote = paths.first().is_some_and(is_remote);
    let dest_is_remote = paths.last().is_some_and(is_remote);
    let result = if m.get_flag("list-only") || paths.len() == 1 {
        list_module(&mut server, m, &target).map(|()| 0)
    } else if source_is_remote && !dest_is_remote && paths.len() == 2 {
        let dest = paths.last().map(Path::new).unwrap_or(Path::new("."));
        pull_module(&mut server, m, &target, dest)
    } else if dest_is_remote && !source_is_remote {
        push_module(&mut server, m, &target)
    } else {
        eprintln!(
            "rtsync: copying between two remote hosts, or from several remote sources, is not supported"
        );
        Ok(exit::SYNTAX)
    };
    let shell_code = server.finish();
    match result {
        Ok(0) => shell_code.map_or(ExitCode::SUCCESS, exit::fail),
        Ok(code) => exit::fail(code),
        Err(e @ ClientError::Session(SessionError::Socket(_)))
            if matches!(server, Server::Shell { .. }) =>
        {
            // The remote shell's pipes broke: rsync's "error in rsync protocol data stream"
            // (12), raised to the shell's own failing code (ssh gives 255) as rsync does when
            // it reaps the shell. `finish` has waited for the shell, so this does not race.
            match &e {
                ClientError::Session(SessionError::Socket(io))
                    if io.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    eprintln!("rtsync: connection unexpectedly closed");
                }
                _ => eprintln!("rtsync: {e}"),
            }
            exit::fail(shell_code.map_or(12, |s| s.max(12)))
        }
        Err(e) => fail(&e),
    }
}

/// The options that shape the file list, as the command line sets them.
#[allow(clippy::struct_excessive_bools)]
struct ListShape {
    recursive: bool,
    /// `-d` without `-r`: directories named are sent as entries, not skipped.
    dirs: bool,
    links: bool,
    owner: bool,
    group: bool,
    devices: bool,
    perms: bool,
    times: bool,
    numeric: bool,
    compress: bool,
    hard_links: bool,
    checksum: bool,
    sparse: bool,
    /// `-R`: names keep the paths they were given with.
    relative: bool,
    /// `-n`: the sender is told, so that it sends no file data.
    dry_run: bool,
    /// `--bwlimit`, KiB per second.
    bwlimit: Option<u64>,
}

impl ListShape {
    fn from_matches(m: &ArgMatches) -> Self {
        let on = |ids: &[&str], off: &[&str]| crate::sync::resolve(m, ids, off);
        ListShape {
            recursive: on(&["recursive", "archive"], &["no-recursive", "no-r"]),
            // A listing shows a directory's names; a push's receiver is told as before.
            dirs: true,
            links: on(&["links", "archive"], &["no-links", "no-l"]),
            owner: on(&["owner", "archive"], &["no-owner", "no-o"]),
            group: on(&["group", "archive"], &["no-group", "no-g"]),
            devices: on(&["devices", "D", "archive"], &["no-D"]),
            perms: on(&["perms", "archive"], &["no-perms", "no-p"]),
            times: on(&["times", "archive"], &["no-times", "no-t"]),
            numeric: m.get_flag("numeric-ids"),
            compress: m.get_flag("compress"),
            hard_links: m.get_flag("hard-links"),
            checksum: m.get_flag("checksum"),
            sparse: crate::sync::resolve(m, &["sparse"], &["no-sparse", "no-S"]),
            relative: m.get_flag("relative"),
            dry_run: m.get_flag("dry-run"),
            bwlimit: m.get_one::<u64>("bwlimit").copied().filter(|&k| k > 0),
        }
    }

    /// The short-option cluster for the server, with our capabilities.
    fn cluster(&self) -> String {
        let mut c = String::from(if self.recursive {
            "-r"
        } else if self.dirs {
            "-d"
        } else {
            "-"
        });
        for (on, letter) in [
            (self.links, 'l'),
            (self.owner, 'o'),
            (self.group, 'g'),
            (self.devices, 'D'),
            (self.times, 't'),
            (self.perms, 'p'),
        ] {
            if on {
                c.push(letter);
            }
        }
        if self.compress {
            c.push('z');
        }
        if self.hard_links {
            c.push('H');
        }
        if self.checksum {
            c.push('c');
        }
        if self.sparse {
            c.push('S');
        }
        if self.relative {
            c.push('R');
        }
        if self.dry_run {
            c.push('n');
        }
        c.push('e');
        c.push_str(client::daemon::CAPABILITIES);
        c
    }
}

fn print_message(code: protocol::mux::MsgCode, text: &[u8]) {
    if code == protocol::mux::MsgCode::ErrorXfer {
        // A file the peer could not write or read: the transfer is partial (rsync's
        // got_xfer_error, exit 23) even if everything else went through.
        PEER_XFER_ERRORS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    if code == protocol::mux::MsgCode::IoError {
        // rsync's sender tells its io_error bits this way: files that vanished (exit 24) or
        // could not be read (23). One transfer per process, so one record for it.
        if let Ok(bits) = <[u8; 4]>::try_from(text) {
            PEER_IO_ERROR.fetch_or(
                i32::from_le_bytes(bits),
                std::sync::atomic::Ordering::SeqCst,
            );
        }
    } else if code == protocol::mux::MsgCode::Info {
        let _ = std::io::stdout().write_all(text);
    } else {
        let _ = std::io::stderr().write_all(text);
    }
}

/// How many `MSG_ERROR_XFER` the peer sent.
static PEER_XFER_ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The io_error bits the peer's sender reported (`MSG_IO_ERROR`).
static PEER_IO_ERROR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The exit code of a pull: 23 for files not transferred (ours or the sender's), 24 when the
/// sender only lost files that vanished, 0 otherwise.
fn pull_exit(errors: u64) -> u8 {
    let peer = PEER_IO_ERROR.load(std::sync::atomic::Ordering::SeqCst);
    if errors > 0 || peer & 1 != 0 || peer_xfer_errors() {
        23
    } else if peer & 2 != 0 {
        24
    } else {
        0
    }
}

fn peer_xfer_errors() -> bool {
    PEER_XFER_ERRORS.load(std::sync::atomic::Ordering::SeqCst) > 0
}

/// Starts the daemon as the sender of `module/path`, sends our filter rules, and receives its
/// file list, sorted and without duplicates as rsync sorts it (indexes refer to this order).
fn receive_file_list(
    server: &mut Server,
    shape: &ListShape,
    target: &[u8],
    extra_args: &[&str],
    rules: &[Vec<u8>],
    files_from: Option<&[Vec<u8>]>,
    data: &mut session::mux::DataBuf,
) -> Result<
    (
        Connection,
        client::daemon::ServerSetup,
        Vec<protocol::flist::Entry>,
        u64,
    ),
    ClientError,
> {
    use protocol::flist::{FlistDecoder, FlistOptions, Item, decode_id_list};

    let mut args: Vec<Vec<u8>> = vec![
        b"--server".to_vec(),
        b"--sender".to_vec(),
        shape.cluster().into_bytes(),
    ];
    args.extend(extra_args.iter().map(|a| a.as_bytes().to_vec()));
    if files_from.is_some() {
        // The list is ours: it follows the filter rules on the socket, each name ending
        // with NUL whatever separated them in the file (rsync's forward_filesfrom_data).
        args.push(b"--files-from=-".to_vec());
        args.push(b"--from0".to_vec());
    }
    if shape.numeric {
        args.push(b"--numeric-ids".to_vec());
    }
    if let Some(kib) = shape.bwlimit {
        // The daemon sends: it holds itself to the rate, as rsync's client asks it to.
        args.push(format!("--bwlimit={kib}").into_bytes());
    }
    args.push(b".".to_vec());
    args.push(target.to_vec());
    let mut conn = server.open(&args)?;
    let setup = conn.start(&args, shape.compress)?;
    let mut filter = Vec::new();
    for rule in rules {
        protocol::wire::put_int(&mut filter, i32::try_from(rule.len()).unwrap_or(0));
        filter.extend_from_slice(rule);
    }
    protocol::wire::put_int(&mut filter, 0);
    if let Some(names) = files_from {
        for name in names {
            filter.extend_from_slice(name);
            filter.push(0);
        }
        // An empty name ends the list.
        filter.push(0);
    }
    conn.send_data(&filter)?;
    let opts = FlistOptions {
        protocol: conn.protocol,
        varint_flags: setup.compat & protocol::compat::CF_VARINT_FLIST_FLAGS != 0,
        uid: shape.owner,
        gid: shape.group,
        links: shape.links,
        devices: shape.devices,
        specials: shape.devices,
        checksum_len: shape.checksum.then(|| setup.checksum.digest_len()),
        hard_links: shape.hard_links,
    };
    let mut decoder = FlistDecoder::new(opts);
    let mut entries = Vec::new();
    let mut messages = print_message;
    // What the list took on the wire, for --stats ("File list size").
    let mut size = 0u64;
    let mut counted = |r: Result<Option<(Item, usize)>, protocol::ProtoError>| {
        if let Ok(Some((_, n))) = &r {
            size += *n as u64;
        }
        r
    };
    while let Item::Entry(e) =
        conn.recv_data(data, &mut messages, |b| counted(decoder.decode(b)))?
    {
        entries.push(e);
    }
    let id0 = setup.compat & protocol::compat::CF_ID0_NAMES != 0;
    let mut names = [Vec::new(), Vec::new()];
    for (wanted, list) in [shape.owner, shape.group].into_iter().zip(&mut names) {
        if wanted && !shape.numeric {
            *list = conn.recv_data(data, &mut messages, |b| {
                let r = decode_id_list(b, id0);
                if let Ok(Some((_, n))) = &r {
                    size += *n as u64;
                }
                r
            })?;
        }
    }
    session::flist::map_ids(&mut entries, &names[0], &names[1]);
    let entries = session::flist::sort_received(entries)?;
    Ok((conn, setup, entries, size))
}

/// Lists `module/path` as `rsync --list-only` does: the daemon is the sender, we receive its
/// file list, then close the session through its phases.
fn list_module(server: &mut Server, m: &ArgMatches, target: &[u8]) -> Result<(), ClientError> {
    use protocol::flist::mode_string;
    use protocol::wire::{NDX_DONE, NdxCodec, get_varlong};

    let shape = ListShape::from_matches(m);
    let mut data = session::mux::DataBuf::default();
    let (mut conn, _, entries, _) = receive_file_list(
        server,
        &shape,
        target,
        &["--list-only"],
        &[],
        None,
        &mut data,
    )?;
    let mut messages = print_message;
    // Closing phases: three NDX_DONEs (the sender echoes the first two, then ends with its own
    // NDX_DONE and its statistics), then the goodbye.
    let mut ndx_in = NdxCodec::default();
    let done = [0u8];
    for _ in 0..2 {
        conn.send_data(&done)?;
        conn.recv_data(&mut data, &mut messages, |b| ndx_in.decode(b))?;
    }
    conn.send_data(&done)?;
    conn.recv_data(&mut data, &mut messages, |b| ndx_in.decode(b))?;
    for _ in 0..5 {
        conn.recv_data(&mut data, &mut messages, |b| get_varlong(b, 3))?;
    }
    conn.send_data(&done)?;
    if conn.protocol >= 31 {
        let n = conn.recv_data(&mut data, &mut messages, |b| ndx_in.decode(b))?;
        if n != NDX_DONE {
            return Err(protocol::ProtoError::protocol_text(
                "goodbye",
                "the server did not say goodbye",
            )
            .into());
        }
        conn.send_data(&done)?;
    }
    let mut out = std::io::stdout().lock();
    for e in &entries {
        let when = chrono::DateTime::from_timestamp(e.mtime, 0)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y/%m/%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default();
        let size = mirror::stats::commas(e.size.cast_unsigned());
        let mut line = format!(
            "{} {size:>14} {when} {}",
            mode_string(e.mode),
            escape_name(&e.name)
        );
        if let Some(t) = &e.link_target {
            line.push_str(" -> ");
            line.push_str(&escape_name(t));
        }
        let _ = writeln!(out, "{line}");
    }
    Ok(())
}

/// Reads the local destination of a pull once the file list is in ([`mirror::placement`]):
/// `Ok((Some(dir), _))` to write into `dir`, `Ok((None, _))` when `dest` is to be made. For one
/// file written as the named path the entry takes the destination's name (the list's name is
/// returned, for the reports) and `dir` is the destination's parent.
fn pull_destination(
    dest: &Path,
    entries: &mut [protocol::flist::Entry],
) -> Result<(Option<PathBuf>, Option<Vec<u8>>), ClientError> {
    use mirror::placement::{self, Placement};
    let bytes = dest.as_os_str().as_bytes();
    let trailing_slash = placement::names_a_directory(bytes);
    let found = match placement::found(std::fs::metadata(dest)) {
        Ok(found) => found,
        Err(e) => {
            return Err(ClientError::Refused {
                code: 3,
                message: format!(
                    "ERROR: cannot stat destination {:?}: {}",
                    dest.display(),
                    describe_io(&e)
                ),
            });
        }
    };
    match session::flist::place_received(entries, found, trailing_slash) {
        Ok(Placement::Enter) => Ok((Some(dest.to_path_buf()), None)),
        Ok(Placement::MakeDir) => Ok((None, None)),
        Ok(Placement::WriteAs) => {
            let parent = dest
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if let Err(e) = std::fs::metadata(parent).and_then(|m| {
                if m.is_dir() {
                    Ok(())
                } else {
                    Err(std::io::Error::from(std::io::ErrorKind::NotADirectory))
                }
            }) {
                return Err(ClientError::Refused {
                    code: 3,
                    message: format!(
                        "rtsync: [Receiver] change_dir#3 {:?} failed: {}",
                        parent.display(),
                        describe_io(&e)
                    ),
                });
            }
            let list_name = dest
                .file_name()
                .and_then(|name| session::flist::write_as(entries, name.as_bytes()));
            Ok((Some(parent.to_path_buf()), list_name))
        }
        Err(refusal) => Err(ClientError::Refused {
            code: refusal.exit_code(),
            message: refusal.to_string(),
        }),
    }
}

/// An I/O error as rsync words it: the system's text and the errno.
fn describe_io(e: &std::io::Error) -> String {
    let text = e.to_string();
    // std appends " (os error N)"; rsync writes " (N)".
    match (text.find(" (os error "), e.raw_os_error()) {
        (Some(i), Some(n)) => format!("{} ({n})", text.get(..i).unwrap_or(&text)),
        _ => text,
    }
}

/// Pulls `module/path` into the local `dest` (created if missing, one level, as rsync does).
fn pull_module(
    server: &mut Server,
    m: &ArgMatches,
    target: &[u8],
    dest: &Path,
) -> Result<u8, ClientError> {
    let settings = crate::sync::Settings::from_matches(m)
        .map_err(|crate::sync::Refusal(message, code)| ClientError::Refused { code, message })?;
    let opts = &settings.options;
    let shape = ListShape {
        // --files-from turns -a's recursion off and -R on, as in rsync.
        recursive: opts.recursive,
        // Without -r or -d the daemon skips a directory it is asked for ("skipping
        // directory"), as a stock client asks.
        dirs: opts.dirs,
        relative: opts.relative,
        ..ListShape::from_matches(m)
    };
    let dry_run = opts.dry_run;
    let mut filters = crate::sync::filter_rules(m).map_err(ClientError::Password)?;
    if m.get_flag("delete-excluded") {
        filters.delete_excluded();
    }
    let delete = [
        "delete",
        "delete-before",
        "delete-during",
        "delete-after",
        "delete-delay",
        "delete-excluded",
    ]
    .iter()
    .any(|id| m.get_flag(id));
    let rules: Vec<Vec<u8>> = filters
        .rules()
        .iter()
        .filter(|r| r.sender)
        .map(filter::Rule::to_rule_text)
        .collect();
    let mut data = session::mux::DataBuf::default();
    let started = std::time::Instant::now();
    let verbose = m.get_count("verbose") > 0;
    let mut extra = Vec::new();
    if opts.delete_missing_args {
        // The sender lists a missing name with mode 0; we delete it.
        extra.push("--delete-missing-args");
    } else if opts.ignore_missing_args {
        extra.push("--ignore-missing-args");
    }
    let (conn, setup, mut entries, flist_size) = receive_file_list(
        server,
        &shape,
        target,
        &extra,
        &rules,
        settings.files_from.as_deref(),
        &mut data,
    )?;
    if verbose {
        // Without incremental recursion rsync's client says this, not "receiving incremental".
        println!("receiving file list ... done");
    }
    let (into, list_name) = pull_destination(dest, &mut entries)?;
    if entries.iter().all(protocol::flist::Entry::is_cleared) {
        // Nothing to receive: a stock sender hangs up once the list is out (rsync's
        // do_server_sender), so there is no more to say; what it could not list decides the
        // code.
        drop(conn);
        print_totals(
            &mirror::Stats {
                flist_size,
                ..mirror::Stats::default()
            },
            settings.stats,
            verbose,
            dry_run,
            started,
        );
        return Ok(pull_exit(0));
    }
    // A dry run into a directory that does not exist yet compares with an empty one (made
    // aside, never written): everything is new, nothing is deleted.
    let mut stand_in = None;
    let made_dest = into.is_none();
    if made_dest {
        if dry_run {
            let dir = std::env::temp_dir().join(format!("rtsync-dry-run.{}", std::process::id()));
            std::fs::create_dir(&dir)?;
            stand_in = Some(dir);
        } else if let Err(e) = std::fs::create_dir(dest) {
            return Err(ClientError::Refused {
                code: 11,
                message: format!(
                    "rtsync: [Receiver] mkdir {:?} failed: {}",
                    dest.display(),
                    describe_io(&e)
                ),
            });
        }
        if verbose {
            let shown = dest.display().to_string();
            let trimmed = shown.trim_end_matches('/');
            println!(
                "created directory {}",
                if trimmed.is_empty() { "/" } else { trimmed }
            );
        }
    }
    let into = into.unwrap_or_else(|| dest.to_path_buf());
    let total_size: u64 = entries
        .iter()
        .filter(|e| e.is_file() || e.is_symlink())
        .map(|e| e.size.cast_unsigned())
        .sum();
    let traffic = conn.traffic();
    let o = session::receiver::ReceiveOptions {
        perms: shape.perms,
        times: shape.times,
        owner: shape.owner,
        group: shape.group,
        links: shape.links,
        devices: shape.devices,
        whole_file: m.get_flag("whole-file"),
        sparse: shape.sparse,
        checksum: setup.checksum,
        seed: setup.seed,
        compat: setup.compat,
        protocol: conn.protocol,
        delete,
        compress: setup.compress,
        verbose: m.get_count("verbose") > 0 || m.get_count("itemize-changes") > 0,
        always_checksum: shape.checksum,
        quick: session::receiver::QuickCheck {
            size_only: m.get_flag("size-only"),
            ignore_times: m.get_flag("ignore-times"),
            update: m.get_flag("update"),
            ignore_existing: m.get_flag("ignore-existing"),
            existing: m.get_flag("existing"),
            modify_window: m.get_one::<i64>("modify-window").copied(),
        },
        sender_is_server: true,
        tell_deletions: false,
        tell_errors: false,
        dry_run,
        tell_items: false,
    };
    let protect: std::sync::Arc<session::receiver::Protect> =
        std::sync::Arc::new(move |path: &[u8], is_dir: bool| {
            filters.is_excluded(
                path,
                is_dir,
                filter::Side::Receiver {
                    in_deleted_dir: false,
                },
            )
        });
    let mut errors = Vec::new();
    let mut messages = print_message;
    // The receiver reports from both its threads: one printer, in turn.
    let printer = std::sync::Arc::new(std::sync::Mutex::new(crate::output::Printer::new(
        settings.verbosity,
    )));
    let shown = settings.verbosity.verbose > 0 || settings.verbosity.itemize > 0;
    // --stats counts what the receiver reports: entries listed, made, deleted, sent.
    let mut tally = mirror::Stats::default();
    for e in entries.iter().filter(|e| !e.is_cleared()) {
        mirror::stats::count(&mut tally.files, fsx::Kind::from_mode(e.mode));
    }
    if made_dest {
        // rsync counts the destination it had to make.
        mirror::stats::count(&mut tally.created, fsx::Kind::Dir);
    }
    let tally = std::sync::Arc::new(std::sync::Mutex::new(tally));
    let names: Option<std::sync::Arc<session::receiver::Reporter>> = (shown || settings.stats)
        .then(|| {
            let printer = std::sync::Arc::clone(&printer);
            let tally = std::sync::Arc::clone(&tally);
            let print = move |r: session::receiver::Report<'_>| {
                use mirror::{Item, Reporter as _, Update};
                let mut item = match r {
                    session::receiver::Report::Entry { entry, iflags } => {
                        let item = session::receiver::itemized(entry, iflags);
                        if item.update == Update::Received
                            && let Ok(mut t) = tally.lock()
                        {
                            t.transferred_size += entry.size.cast_unsigned();
                        }
                        item
                    }
                    session::receiver::Report::Linked { entry, to } => {
                        let mut item = Item::new(&entry.name, fsx::Kind::File, Update::HardLink);
                        item.is_new = true;
                        item.hardlink_to = Some(to.to_vec());
                        item
                    }
                    session::receiver::Report::Deleted { name, dir } => {
                        let kind = if dir { fsx::Kind::Dir } else { fsx::Kind::File };
                        Item::new(name, kind, Update::Deleted)
                    }
                };
                if let Some(name) = list_name.as_deref() {
                    // Written under the destination's name, told under the list's, as rsync.
                    item.name = name;
                }
                if let Ok(mut t) = tally.lock() {
                    if item.update == Update::Deleted {
                        mirror::stats::count(&mut t.deleted, item.kind);
                    } else if item.is_new {
                        mirror::stats::count(&mut t.created, item.kind);
                    }
                }
                if shown && let Ok(mut p) = printer.lock() {
                    p.item(&item);
                }
            };
            std::sync::Arc::new(print) as std::sync::Arc<session::receiver::Reporter>
        });
    let target = session::receiver::Destination {
        dir: stand_in.as_deref().unwrap_or(&into),
        protect,
        report: names,
        within_module: None,
    };
    let stats = session::receiver::receive(
        conn.into_halves(),
        entries,
        &target,
        o,
        &mut messages,
        &mut errors,
    );
    if let Some(dir) = &stand_in {
        let _ = std::fs::remove_dir(dir);
    }
    if let Ok(mut p) = printer.lock() {
        p.finish();
    }
    let stats = stats?;
    for e in &errors {
        eprintln!("rtsync: {e}");
    }
    let summary = mirror::Stats {
        flist_size,
        flist_time: std::time::Duration::from_millis(stats.sender_flist_ms.0),
        flist_xfer_time: std::time::Duration::from_millis(stats.sender_flist_ms.1),
        ..totals(
            tally.lock().map(|t| t.clone()).unwrap_or_default(),
            &traffic,
            total_size,
            (stats.transferred, stats.literal, stats.matched),
        )
    };
    print_totals(&summary, settings.stats, verbose, dry_run, started);
    Ok(pull_exit(stats.errors))
}

/// Pushes the local sources to `module/path` on the daemon.
fn push_module(server: &mut Server, m: &ArgMatches, target: &[u8]) -> Result<u8, ClientError> {
    let started = std::time::Instant::now();
    let verbose = m.get_count("verbose") > 0;
    let settings = crate::sync::Settings::from_matches(m)
        .map_err(|crate::sync::Refusal(message, code)| ClientError::Refused { code, message })?;
    let opts = &settings.options;
    let listing = std::time::Instant::now();
    let mut list = mirror::flist::build(
        &settings.sources,
        settings.files_from.as_deref(),
        opts,
        &settings.filters,
    );
    let flist_time = listing.elapsed();
    for e in &list.errors {
        eprintln!("rtsync: {e}");
    }
    // Names gone from the source are not sent as the mode-0 entries of --delete-missing-args,
    // which many stock receivers refuse, but as a --delete in their parent with receiver
    // rules sparing the rest of it (see missing_as_deletions).
    let deletion_rules = if opts.delete_missing_args {
        mirror::flist::missing_as_deletions(&mut list, opts.force)
    } else {
        Vec::new()
    };
    let delete_timing = opts
        .delete
        .or((!deletion_rules.is_empty()).then_some(mirror::DeleteTiming::During));
    let shape = ListShape {
        // --files-from turns -a's recursion off and -R on, as in rsync.
        recursive: opts.recursive,
        relative: opts.relative,
        dry_run: opts.dry_run,
        ..ListShape::from_matches(m)
    };
    let mut cluster = shape.cluster();
    // The daemon's generator makes the quick-check decisions, so it must hear these.
    for (on, letter) in [(opts.ignore_times, 'I'), (opts.update, 'u')] {
        if on {
            cluster.insert(cluster.find('e').unwrap_or(cluster.len()), letter);
        }
    }
    let mut args: Vec<Vec<u8>> = vec![b"--server".to_vec(), cluster.into_bytes()];
    if let Some(n) = opts.modify_window {
        // A stock receiver compares whole seconds unless told otherwise (-1: nanoseconds).
        args.push(format!("--modify-window={n}").into_bytes());
    }
    for (on, long) in [
        (opts.size_only, "--size-only"),
        (opts.ignore_existing, "--ignore-existing"),
        (opts.existing, "--existing"),
    ] {
        if on {
            args.push(long.as_bytes().to_vec());
        }
    }
    let delete = delete_timing.map(|t| match t {
        mirror::DeleteTiming::Before => "--delete-before",
        mirror::DeleteTiming::During => "--delete-during",
        mirror::DeleteTiming::After => "--delete-after",
    });
    if let Some(d) = delete {
        args.push(d.as_bytes().to_vec());
        if !opts.recursive {
            // rsync's client says this so that the server deletes with -d alone.
            args.push(b"--no-r".to_vec());
        }
    }
    if m.get_flag("delete-excluded") {
        args.push(b"--delete-excluded".to_vec());
    }
    if m.get_flag("force") {
        args.push(b"--force".to_vec());
    }
    if shape.numeric {
        args.push(b"--numeric-ids".to_vec());
    }
    args.push(b".".to_vec());
    args.push(target.to_vec());
    let mut conn = server.open(&args)?;
    conn.set_bwlimit(shape.bwlimit.map(|kib| kib.saturating_mul(1024)));
    let setup = conn.start(&args, shape.compress)?;

    let files = session::flist::to_send(&list, opts.checksum.then_some(setup.checksum));
    let receiver_rules = delete_timing.map(|_| {
        // Ours first: they name exactly what to delete and what to spare beside it.
        deletion_rules
            .iter()
            .cloned()
            .chain(
                settings
                    .filters
                    .rules()
                    .iter()
                    .filter(|r| r.receiver)
                    .map(filter::Rule::to_rule_text),
            )
            .collect()
    });
    let o = session::sender::SendOptions {
        flist: protocol::flist::FlistOptions {
            protocol: conn.protocol,
            varint_flags: setup.compat & protocol::compat::CF_VARINT_FLIST_FLAGS != 0,
            uid: shape.owner,
            gid: shape.group,
            links: shape.links,
            devices: shape.devices,
            specials: shape.devices,
            hard_links: opts.hard_links,
            checksum_len: opts.checksum.then(|| setup.checksum.digest_len()),
        },
        receiver_rules,
        checksum: setup.checksum,
        seed: setup.seed,
        compat: setup.compat,
        user_names: if shape.numeric {
            Vec::new()
        } else {
            session::flist::id_names("/etc/passwd", files.iter().filter_map(|f| f.entry.uid))
        },
        compress: setup.compress,
        dry_run: opts.dry_run,
        server: false,
        io_error: i32::from(!list.errors.is_empty()),
        beneath: None,
        group_names: if shape.numeric {
            Vec::new()
        } else {
            session::flist::id_names("/etc/group", files.iter().filter_map(|f| f.entry.gid))
        },
    };
    if verbose {
        // Without incremental recursion rsync's client says this, not "sending incremental".
        println!("building file list ... done");
    }
    let traffic = conn.traffic();
    let (reader, writer) = conn.into_halves();
    let mut errors = Vec::new();
    let mut total_size = 0u64;
    // --stats counts what the daemon's generator says it made and asked for.
    let mut tally = mirror::Stats::default();
    for f in &files {
        if f.entry.is_file() || f.entry.is_symlink() {
            total_size += f.entry.size.cast_unsigned();
        }
        mirror::stats::count(&mut tally.files, fsx::Kind::from_mode(f.entry.mode));
    }
    let itemize = settings.verbosity.itemize;
    let mut items = |f: &session::sender::SendFile, iflags: u16| {
        let mut item = session::receiver::itemized(&f.entry, iflags);
        if item.is_new {
            mirror::stats::count(&mut tally.created, item.kind);
        }
        if item.update == mirror::Update::Received {
            tally.transferred_size += f.entry.size.cast_unsigned();
        }
        if itemize > 0 {
            // What the daemon's generator decided, in its words (`<f.st......`).
            if item.update == mirror::Update::Received {
                item.update = mirror::Update::Sent;
            }
            if item.is_change() || itemize > 1 {
                println!("{} {}", item.itemize(), escape_name(&item.display_name()));
            }
        } else if verbose && session::sender::named_under_verbose(iflags, f.entry.is_dir()) {
            println!("{}", verbose_name(&f.entry));
        }
    };
    let messages: session::sender::Messages = Box::new(move |code, text| match code {
        protocol::mux::MsgCode::Deleted => {
            // A directory's name comes with a trailing NUL (`log.c log_delete`).
            let (name, slash) = match text.strip_suffix(b"\0") {
                Some(dir) => (dir, "/"),
                None => (text, ""),
            };
            let how = if itemize > 0 {
                "*deleting   "
            } else {
                "deleting "
            };
            if verbose || itemize > 0 {
                println!("{how}{}{slash}", escape_name(name));
            }
        }
        _ => print_message(code, text),
    });
    let stats = session::sender::send(
        (reader, writer),
        &files,
        &o,
        &mut errors,
        &mut items,
        messages,
    )?;
    for e in &errors {
        eprintln!("rtsync: {e}");
    }
    // The daemon's own count (NDX_DEL_STATS), which is what rsync's client shows: after a
    // --delete push to a stock 3.2.7 daemon both say 0.
    tally.deleted = stats.deleted;
    let summary = mirror::Stats {
        // (rsync's client says 0 for the size of a list it sent.)
        flist_time,
        ..totals(
            tally,
            &traffic,
            total_size,
            (stats.transferred, stats.literal, stats.matched),
        )
    };
    print_totals(&summary, settings.stats, verbose, opts.dry_run, started);
    Ok(
        if stats.errors > 0 || !list.errors.is_empty() || peer_xfer_errors() {
            23
        } else if stats.vanished > 0 {
            24
        } else {
            0
        },
    )
}

/// The end of a transfer's output: with `stats` rsync's `--stats` block, and with it or
/// `verbose` the two summary lines (marked as a dry run's).
fn print_totals(
    summary: &mirror::Stats,
    stats: bool,
    verbose: bool,
    dry_run: bool,
    started: std::time::Instant,
) {
    if stats {
        print!("\n{}", summary.render());
    }
    if verbose || stats {
        let dry = if dry_run { " (DRY RUN)" } else { "" };
        print!("\n{}", summary.summary(started.elapsed()).trim_end());
        println!("{dry}");
    }
}

/// A transfer's `--stats` totals: what was counted along the way (`tally`), the bytes of
/// the connection, and the (transferred, literal, matched) counts of the session.
fn totals(
    tally: mirror::Stats,
    traffic: &session::mux::Traffic,
    total_size: u64,
    (transferred, literal, matched): (u64, u64, u64),
) -> mirror::Stats {
    mirror::Stats {
        transferred,
        literal,
        matched,
        sent: traffic.sent(),
        received: traffic.received(),
        total_size,
        ..tally
    }
}

/// An entry as rsync's `-v` names it (`%n%L`): directories end in `/`, symlinks show their
/// target.
fn verbose_name(e: &protocol::flist::Entry) -> String {
    let mut line = escape_name(&e.name);
    if e.is_dir() {
        line.push('/');
    }
    if let (true, Some(t)) = (e.is_symlink(), &e.link_target) {
        line.push_str(" -> ");
        line.push_str(&escape_name(t));
    }
    line
}
