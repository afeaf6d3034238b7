//! The accept loop (`clientserver.c daemon_main`): one thread per connection, `max
//! connections` per module, a stop that lets transfers finish within a bound, and a reload
//! that applies to new connections only.

use std::collections::HashMap;
use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::Log;
use crate::config::Config;
use crate::conn::{self, Ending, Peer};

/// Connections in use per module, for `max connections` (rsync counts them in its lock file;
/// one daemon process counts them in memory).
#[derive(Debug, Default)]
pub struct Slots {
    used: Mutex<HashMap<String, u32>>,
}

/// A claimed connection slot, given back when dropped.
#[derive(Debug)]
pub struct Slot<'a> {
    slots: &'a Slots,
    module: String,
}

impl Slots {
    /// Claims a slot of `module`; `None` when `max` (above 0) are in use.
    pub fn claim(&self, module: &str, max: i32) -> Option<Slot<'_>> {
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = used.entry(module.to_owned()).or_default();
        if max > 0 && i64::from(*n) >= i64::from(max) {
            return None;
        }
        *n += 1;
        Some(Slot {
            slots: self,
            module: module.to_owned(),
        })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut used = self
            .slots
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = used.get_mut(&self.module) {
            *n = n.saturating_sub(1);
        }
    }
}

/// What the loop watches besides the socket.
pub struct Control {
    /// Set to stop accepting (SIGTERM).
    pub stop: Arc<AtomicBool>,
    /// Set to re-read the configuration (SIGHUP); cleared once done.
    pub reload: Arc<AtomicBool>,
    /// How long running transfers may go on after a stop.
    pub drain: Duration,
    /// The configuration file: when its time changes, the next connection re-reads it (rsync
    /// re-reads it for every connection; SIGHUP forces it).
    pub config_path: Option<std::path::PathBuf>,
}

fn modified(path: Option<&std::path::Path>) -> Option<std::time::SystemTime> {
    std::fs::metadata(path?).and_then(|m| m.modified()).ok()
}

/// The client's host name as rsync logs it: by reverse lookup, `UNKNOWN` when that fails.
fn host_name(addr: IpAddr, reverse_lookup: bool) -> String {
    if !reverse_lookup {
        return "UNDETERMINED".to_owned();
    }
    dns_lookup::lookup_addr(&addr).unwrap_or_else(|_| crate::hosts::UNKNOWN_HOST.to_owned())
}

/// Accepts connections until `control.stop`, serving each in its own thread with the
/// configuration of the moment; `reload` gives a fresh configuration (or an error to log and
/// keep the old one).
pub fn run(
    listener: &TcpListener,
    config: Config,
    reload: &dyn Fn() -> Result<Config, String>,
    log: &Arc<dyn Log>,
    control: &Control,
) {
    let config = Arc::new(RwLock::new(Arc::new(config)));
    let slots = Arc::new(Slots::default());
    let active = Arc::new(AtomicUsize::new(0));
    let _ = listener.set_nonblocking(true);
    let mut seen = modified(control.config_path.as_deref());
    let reload_now = |seen: &mut Option<std::time::SystemTime>, forced: bool| {
        let now = modified(control.config_path.as_deref());
        if !forced && now == *seen {
            return;
        }
        *seen = now;
        match reload() {
            Ok(fresh) => {
                for w in &fresh.warnings {
                    log.line(&w.to_string());
                }
                *config
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
                log.line("configuration reloaded");
            }
            Err(e) => log.line(&format!(
                "reload failed, keeping the old configuration: {e}"
            )),
        }
    };
    while !control.stop.load(Ordering::Relaxed) {
        if control.reload.swap(false, Ordering::Relaxed) {
            reload_now(&mut seen, true);
        }
        let (stream, addr) = match listener.accept() {
            Ok(pair) => pair,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Wake for the next connection at once, or after a while to look at the
                // stop and reload flags.
                let mut fds = [rustix::event::PollFd::new(
                    listener,
                    rustix::event::PollFlags::IN,
                )];
                let wait = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 200_000_000,
                };
                let _ = rustix::event::poll(&mut fds, Some(&wait));
                continue;
            }
            Err(e) => {
                log.line(&format!("accept failed: {e}"));
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        keep_alive(&stream);
        reload_now(&mut seen, false);
        let current = Arc::clone(
            &config
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let (slots, conn_log, conn_active) =
            (Arc::clone(&slots), Arc::clone(log), Arc::clone(&active));
        active.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name(format!("conn {addr}"))
            .spawn(move || {
                let ip = match addr.ip() {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                    v4 => v4,
                };
                let peer = Peer {
                    addr: ip,
                    host: host_name(ip, current.global.defaults.reverse_lookup),
                };
                conn_log.line(&format!("connect from {} ({})", peer.host, peer.addr));
                let ending = conn::handle(stream, &peer, &current, &slots, &conn_log);
                report(&ending, &peer, conn_log.as_ref());
                conn_active.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
            log.line("could not start a thread for a connection");
        }
    }
    let deadline = Instant::now() + control.drain;
    while active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = active.load(Ordering::SeqCst);
    if left > 0 {
        log.line(&format!("stopping with {left} transfer(s) still running"));
    }
}

/// The last log line of a connection.
/// TCP keepalive on a client's connection: a peer that vanished (a cut link, a host gone)
/// without closing is found within about two minutes and its thread ends, even in a module
/// without `timeout` and on an rtsync stream, which is idle between batches by design. (The
/// proving ground's soak saw memory grow with every link outage before this.)
fn keep_alive(stream: &std::net::TcpStream) {
    use rustix::net::sockopt;
    let _ = sockopt::set_socket_keepalive(stream, true);
    let _ = sockopt::set_tcp_keepidle(stream, Duration::from_secs(60));
    let _ = sockopt::set_tcp_keepintvl(stream, Duration::from_secs(10));
    let _ = sockopt::set_tcp_keepcnt(stream, 6);
}

fn report(ending: &Ending, peer: &Peer, log: &dyn Log) {
    match ending {
        Ending::Listed => {}
        Ending::Refused(why) => log.line(&format!("refused {} ({}): {why}", peer.host, peer.addr)),
        Ending::Transferred {
            result: Ok(outcome),
            ..
        } => {
            for e in &outcome.errors {
                log.line(e);
            }
            log.line(&format!(
                "sent/received: {} files, {} literal bytes, {} matched bytes",
                outcome.transferred, outcome.literal, outcome.matched
            ));
        }
        Ending::Transferred {
            module,
            result: Err(e),
            ..
        } => log.line(&format!(
            "transfer on module {module} from {} ({}) failed: {e} (code {})",
            peer.host,
            peer.addr,
            e.exit_code()
        )),
    }
}
