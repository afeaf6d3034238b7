//! Exit codes, as rsync's `errcode.h` numbers them, and the text rsync prints for each.

/// Syntax or usage error.
pub const SYNTAX: u8 = 1;
/// Requested action not supported.
pub const UNSUPPORTED: u8 = 4;
/// Error in file I/O.
pub const FILE_IO: u8 = 11;
/// Ended by a signal (rsync's RERR_SIGNAL).
pub const SIGNAL: u8 = 20;

/// rsync's wording for an exit code, for the final `rtsync error: ...` line.
pub fn describe(code: u8) -> &'static str {
    protocol::errcode::describe(code)
}

/// Prints rsync's closing error line and returns the code.
pub fn fail(code: u8) -> std::process::ExitCode {
    eprintln!("rtsync error: {} (code {code})", describe(code));
    std::process::ExitCode::from(code)
}
