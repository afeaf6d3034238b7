//! systemd's readiness protocol (`Type=notify`): one datagram per state change to the socket
//! named by `$NOTIFY_SOCKET`. Without that variable (not under systemd) every call is a no-op,
//! and a send that fails is ignored: readiness reports must never stop replication.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (newline-separated `KEY=VALUE` lines, e.g. `READY=1`) to systemd, if it asked.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Some(addr) = address(path.as_encoded_bytes()) else {
        return;
    };
    if let Ok(socket) = UnixDatagram::unbound() {
        let _ = socket.send_to_addr(state.as_bytes(), &addr);
    }
}

/// `READY=1` with a one-line status that `systemctl status` shows.
pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={}", one_line(status)));
}

/// `RELOADING=1` (with the clock systemd 253+ wants beside it), before a configuration reload.
pub fn reloading() {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}

/// `STOPPING=1`, once a stop has begun.
pub fn stopping() {
    notify("STOPPING=1");
}

/// The socket's address: a path, or (leading `@`) a name in the abstract namespace.
fn address(name: &[u8]) -> Option<SocketAddr> {
    match name.split_first() {
        None => None,
        Some((b'@', rest)) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(rest).ok()
        }
        Some(_) => {
            let path = std::path::Path::new(std::ffi::OsStr::from_bytes(name));
            SocketAddr::from_pathname(path).ok()
        }
    }
}

fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_abstract_names_are_told_apart() {
        let abs = address(b"@/org/systemd/notify").unwrap();
        use std::os::linux::net::SocketAddrExt;
        assert_eq!(abs.as_abstract_name(), Some(&b"/org/systemd/notify"[..]));
        let path = address(b"/run/systemd/notify").unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        assert!(address(b"").is_none());
    }

    #[test]
    fn a_status_stays_on_one_line() {
        assert_eq!(one_line("a\nb"), "a b");
    }
}
