//! Exit codes, as rsync's `errcode.h` numbers them, and the text rsync prints for each.

/// Syntax or usage error.
pub const SYNTAX: u8 = 1;
/// Requested action not supported.
pub const UNSUPPORTED: u8 = 4;
/// Error in file I/O.
pub const FILE_IO: u8 = 11;

/// rsync's wording for an exit code, for the final `rtsync error: ...` line.
pub fn describe(code: u8) -> &'static str {
    match code {
        1 => "syntax or usage error",
        2 => "protocol incompatibility",
        3 => "errors selecting input/output files, dirs",
        4 => "requested action not supported",
        5 => "error starting client-server protocol",
        10 => "error in socket IO",
        11 => "error in file IO",
        12 => "error in rsync protocol data stream",
        23 => "some files/attrs were not transferred (see previous errors)",
        24 => "some files vanished before they could be transferred",
        25 => "the --max-delete limit stopped deletions",
        30 => "timeout in data send/receive",
        35 => "timeout waiting for daemon connection",
        _ => "unexplained error",
    }
}

/// Prints rsync's closing error line and returns the code.
pub fn fail(code: u8) -> std::process::ExitCode {
    eprintln!("rtsync error: {} (code {code})", describe(code));
    std::process::ExitCode::from(code)
}
