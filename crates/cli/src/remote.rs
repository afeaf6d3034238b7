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
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::ArgMatches;
use client::daemon::{ConnectOptions, DaemonConnection, read_password_file};
use client::{ClientError, Remote};

use crate::exit;
use crate::output::escape_name;

fn fail(e: &ClientError) -> ExitCode {
    match e {
        ClientError::Protocol(protocol::ProtoError::Remote(msg)) => eprintln!("@ERROR: {msg}"),
        ClientError::Connect { .. } | ClientError::ConnectTimeout { .. } => {
            eprintln!("rtsync: {e}")
        }
        other => eprintln!("rtsync: {other}"),
    }
    exit::fail(e.exit_code())
}

fn login_name(user: Option<&String>) -> String {
    user.cloned()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| "nobody".into())
}

/// Handles a command line in which some path is remote.
pub fn main(m: &ArgMatches, paths: &[OsString]) -> ExitCode {
    let remotes: Vec<Remote> = paths
        .iter()
        .filter_map(|p| Remote::parse(p.as_bytes()))
        .collect();
    let Some(remote) = remotes.first() else {
        return exit::fail(exit::SYNTAX);
    };
    let Remote::Daemon {
        user,
        host,
        port,
        module,
        ..
    } = remote
    else {
        eprintln!("rtsync: transfers over a remote shell (host:path) are not supported yet");
        return exit::fail(exit::UNSUPPORTED);
    };
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
    let mut conn = match DaemonConnection::connect(&opts) {
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
    let mut password = || -> Result<Vec<u8>, ClientError> {
        if let Some(file) = &password_file {
            return read_password_file(Path::new(file));
        }
        if let Some(pw) = std::env::var_os("RSYNC_PASSWORD") {
            return Ok(pw.as_bytes().to_vec());
        }
        Err(ClientError::Password(
            "the daemon asks for a password: give --password-file=FILE or set RSYNC_PASSWORD"
                .into(),
        ))
    };
    if let Err(e) = conn.open_module(module, &login_name(user.as_ref()), &mut password, &mut text) {
        return fail(&e);
    }
    let listing = m.get_flag("list-only") || paths.len() == 1;
    let Remote::Daemon { path, .. } = remote else {
        return exit::fail(exit::SYNTAX);
    };
    if listing {
        return match list_module(&mut conn, m, module, path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    eprintln!(
        "rtsync: module {module} on {host} is open, but transfers over the rsync protocol are not built yet"
    );
    exit::fail(exit::UNSUPPORTED)
}

/// Lists `module/path` as `rsync --list-only` does: the daemon is the sender, we receive its
/// file list, then close the session through its phases.
fn list_module(
    conn: &mut DaemonConnection,
    m: &ArgMatches,
    module: &str,
    path: &[u8],
) -> Result<(), ClientError> {
    use protocol::flist::{FlistDecoder, FlistOptions, Item, decode_id_list, mode_string};
    use protocol::wire::{NDX_DONE, NdxCodec, get_varlong};

    let on = |ids: &[&str], off: &[&str]| crate::sync::resolve(m, ids, off);
    let recursive = on(&["recursive", "archive"], &["no-recursive", "no-r"]);
    let links = on(&["links", "archive"], &["no-links", "no-l"]);
    let owner = on(&["owner", "archive"], &["no-owner", "no-o"]);
    let group = on(&["group", "archive"], &["no-group", "no-g"]);
    let devices = on(&["devices", "D", "archive"], &["no-D"]);
    let numeric = m.get_flag("numeric-ids");
    let mut cluster = String::from(if recursive { "-r" } else { "-d" });
    for (on, letter) in [(links, 'l'), (owner, 'o'), (group, 'g'), (devices, 'D')] {
        if on {
            cluster.push(letter);
        }
    }
    cluster.push('e');
    cluster.push_str(client::daemon::CAPABILITIES);
    let mut target = module.as_bytes().to_vec();
    target.push(b'/');
    target.extend_from_slice(path);
    let mut args: Vec<Vec<u8>> = vec![
        b"--server".to_vec(),
        b"--sender".to_vec(),
        cluster.into_bytes(),
        b"--list-only".to_vec(),
    ];
    if numeric {
        args.push(b"--numeric-ids".to_vec());
    }
    args.push(b".".to_vec());
    args.push(target);
    let setup = conn.start(&args)?;

    let mut messages = |code: protocol::mux::MsgCode, text: &[u8]| {
        if code == protocol::mux::MsgCode::Info {
            let _ = std::io::stdout().write_all(text);
        } else {
            let _ = std::io::stderr().write_all(text);
        }
    };
    // No filter rules: an empty list.
    conn.send_data(&0i32.to_le_bytes())?;
    let opts = FlistOptions {
        protocol: conn.protocol,
        varint_flags: setup.compat & client::daemon::CF_VARINT_FLIST_FLAGS != 0,
        uid: owner,
        gid: group,
        links,
        devices,
        specials: devices,
        ..FlistOptions::default()
    };
    let mut decoder = FlistDecoder::new(opts);
    let mut data = Vec::new();
    let mut entries = Vec::new();
    while let Item::Entry(e) = conn.recv_data(&mut data, &mut messages, |b| decoder.decode(b))? {
        entries.push(e);
    }
    let id0 = setup.compat & client::daemon::CF_ID0_NAMES != 0;
    for wanted in [owner, group] {
        if wanted && !numeric {
            conn.recv_data(&mut data, &mut messages, |b| decode_id_list(b, id0))?;
        }
    }
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

    entries.sort_by(|a, b| mirror::flist::compare(&a.name, a.is_dir(), &b.name, b.is_dir()));
    entries.dedup_by(|a, b| a.name == b.name);
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
