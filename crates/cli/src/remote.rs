//! `rtsync sync` with a remote side. Today: module listings of rsync daemons
//! (`rtsync sync rsync://host/`, `rtsync sync host::`), and opening a module with
//! authentication, which gives the daemon's own answers (unknown module, auth failed, access
//! denied) with rsync's exit codes. The transfer itself over the rsync protocol is not built yet
//! and exits with code 4 once the module is open.

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
    eprintln!(
        "rtsync: module {module} on {host} is open, but transfers over the rsync protocol are not built yet"
    );
    exit::fail(exit::UNSUPPORTED)
}
