//! `rtsync`: one binary for the classic replication stack. This file only dispatches to the
//! subcommands; each lives in its own module.

mod content_index;
mod doctor;
mod exit;
mod logging;
mod output;
mod plugin_config;
mod plugins;
mod push_stream;
mod remote;
mod rsync_errors;
mod rsyncd;
mod run;
mod run_config;
mod schedule;
mod sd_notify;
mod sersync;
mod status;
mod status_http;
mod stream_lanes;
mod sync;
mod watch;

use std::process::ExitCode;

const USAGE: &str = "\
rtsync — real-time file replication speaking the rsync protocol

Usage: rtsync <COMMAND> [ARGS]...

Commands:
  run     mirror SRC to every DEST in real time (rtsync run SRC DEST...)
  status  each target's queue, lag and last error, for every rtsync run
  daemon  an rsync daemon serving rsyncd.conf modules to stock rsync clients
  sync    one-shot transfer with rsync's options: local, rsync daemon or remote shell
  watch   print filesystem events as inotifywait does (--stats: count them as inotifywatch)
  doctor  check inotify limits and fanotify for the trees given, with the sysctl lines to fix them

Options:
  -h, --help       print this help (use `rtsync sync --help` for a command's options)
  -V, --version    print the version
";

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let _program = args.next();
    let rest: Vec<std::ffi::OsString> = args.collect();
    let Some(command) = rest.first().and_then(|a| a.to_str()) else {
        eprint!("{USAGE}");
        return ExitCode::from(exit::SYNTAX);
    };
    match command {
        "sync" => {
            if run::transfer_outlived_its_engine() {
                return ExitCode::from(exit::SIGNAL);
            }
            sync::main(rest.get(1..).unwrap_or_default())
        }
        "run" => run::main(rest.get(1..).unwrap_or_default()),
        "daemon" => rsyncd::main(rest.get(1..).unwrap_or_default()),
        // What a client starts over a remote shell with `--rsync-path=rtsync`.
        "--server" => {
            let words: Vec<Vec<u8>> = rest.iter().map(|a| a.as_encoded_bytes().to_vec()).collect();
            ExitCode::from(daemon::shell::run(&words))
        }
        "status" => status::main(rest.get(1..).unwrap_or_default()),
        "watch" => watch::main(rest.get(1..).unwrap_or_default()),
        "doctor" => doctor::main(rest.get(1..).unwrap_or_default()),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        "-V" | "--version" => {
            println!("rtsync {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("rtsync: unknown command {other:?}\n");
            eprint!("{USAGE}");
            ExitCode::from(exit::SYNTAX)
        }
    }
}
