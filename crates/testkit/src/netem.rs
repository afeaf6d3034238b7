//! A network link between two network namespaces, emulated in user space: what `tc netem`
//! does (delay, jitter, loss, a link that goes dark), for kernels built without `sch_netem`.
//!
//! Each end is a TUN device made inside its namespace (a thread enters the namespace, opens
//! `/dev/net/tun`, and the device stays there); a thread per direction reads whole IP packets
//! from one end and writes them to the other once their delay has passed. TCP runs end to end
//! over it, exactly as between two hosts on a cable: a link that is "down" silently drops
//! every packet (a cut cable, not "network unreachable"), and recovery after it comes back is
//! TCP's and the application's own.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One end of a link: the namespace it lives in (a name under `/run/netns`), the device name
/// there and its address with prefix length (`10.77.1.1/24`).
#[derive(Debug, Clone)]
pub struct End {
    pub netns: String,
    pub dev: String,
    pub addr: String,
}

/// What the link does to packets now. The default is a clean, fast link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// One-way delay added to every packet.
    pub delay: Duration,
    /// Up to this much more, uniformly; packets still leave in the order they came.
    pub jitter: Duration,
    /// Fraction of packets dropped, 0.0 to 1.0.
    pub loss: f64,
    /// `false`: every packet is dropped, including those already on the wire.
    pub up: bool,
    /// Bytes per second the link carries (0: no limit).
    pub rate: u64,
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            up: true,
            rate: 0,
        }
    }
}

impl Impairment {
    /// Parses netem-like words: `delay 50ms [JITTER]`, `loss 1%`, `rate 10mbit`, `down`,
    /// `up`; `off` (or nothing) is a clean link.
    ///
    /// # Errors
    /// A word it does not know, or a value it cannot read.
    pub fn parse(spec: &str) -> Result<Impairment, String> {
        let mut imp = Impairment::default();
        let words: Vec<&str> = spec.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            let arg = |k: usize| {
                words
                    .get(k)
                    .copied()
                    .ok_or_else(|| format!("{} needs a value", words[i]))
            };
            match words[i] {
                "off" | "up" => {}
                "down" => imp.up = false,
                "delay" => {
                    imp.delay = duration(arg(i + 1)?)?;
                    i += 1;
                    if let Some(j) = words.get(i + 1).and_then(|w| duration(w).ok()) {
                        imp.jitter = j;
                        i += 1;
                    }
                }
                "loss" => {
                    let v = arg(i + 1)?;
                    let pct: f64 = v
                        .trim_end_matches('%')
                        .parse()
                        .map_err(|_| format!("bad loss {v:?}"))?;
                    imp.loss = (pct / 100.0).clamp(0.0, 1.0);
                    i += 1;
                }
                "rate" => {
                    let v = arg(i + 1)?;
                    imp.rate = rate(v)?;
                    i += 1;
                }
                w => return Err(format!("unknown word {w:?}")),
            }
            i += 1;
        }
        Ok(imp)
    }
}

fn duration(v: &str) -> Result<Duration, String> {
    let bad = || format!("bad duration {v:?} (say 50ms, 1s or 200us)");
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "ms" => n / 1e3,
        "us" => n / 1e6,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn rate(v: &str) -> Result<u64, String> {
    let bad = || format!("bad rate {v:?} (say 100mbit or 10mbps)");
    let at = v.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?;
    let n: f64 = v[..at].parse().map_err(|_| bad())?;
    let bytes = match &v[at..] {
        "kbit" => n * 1e3 / 8.0,
        "mbit" => n * 1e6 / 8.0,
        "gbit" => n * 1e9 / 8.0,
        "kbps" => n * 1e3,
        "mbps" => n * 1e6,
        _ => return Err(bad()),
    };
    Ok(bytes as u64)
}

/// A running link; dropping it removes both devices.
pub struct Link {
    state: Arc<Mutex<Impairment>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Big packets keep the per-packet cost (two system calls and a copy) far below what the
/// kernel's own TCP stack costs: a 64 KiB MTU carries hundreds of MB/s through one thread.
const MTU: usize = 65_000;

impl Link {
    /// Makes the two devices, gives them their addresses, brings them up and starts carrying
    /// packets between them.
    ///
    /// # Errors
    /// A namespace that does not exist, no `/dev/net/tun`, or `ip` failing.
    pub fn start(a: &End, b: &End) -> Result<Link, String> {
        let fa = tun_in(&a.netns, &a.dev)?;
        let fb = tun_in(&b.netns, &b.dev)?;
        for end in [a, b] {
            let mtu = MTU.to_string();
            ip(&["-n", &end.netns, "link", "set", &end.dev, "mtu", &mtu, "up"])?;
            ip(&["-n", &end.netns, "addr", "add", &end.addr, "dev", &end.dev])?;
        }
        let state = Arc::new(Mutex::new(Impairment::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let (ra, wa) = (fa.try_clone().map_err(|e| e.to_string())?, fa);
        let (rb, wb) = (fb.try_clone().map_err(|e| e.to_string())?, fb);
        for (from, to, seed) in [(ra, wb, 1u64), (rb, wa, 2u64)] {
            let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
            let (s, st) = (state.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                carry_in(from, &tx, &s, &st, seed)
            }));
            let (s, st) = (state.clone(), stop.clone());
            threads.push(std::thread::spawn(move || carry_out(to, &rx, &s, &st)));
        }
        Ok(Link {
            state,
            stop,
            threads,
        })
    }

    /// Changes what the link does from now on.
    pub fn set(&self, imp: Impairment) {
        if let Ok(mut s) = self.state.lock() {
            *s = imp;
        }
    }

    /// What the link does now.
    #[must_use]
    pub fn get(&self) -> Impairment {
        self.state.lock().map(|s| *s).unwrap_or_default()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Runs `ip ARGS`, its error text as the error.
pub(crate) fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Opens a TUN device named `dev` inside `netns`. Namespaces belong to threads, so a
/// short-lived thread enters the namespace, and the device it makes stays there.
fn tun_in(netns: &str, dev: &str) -> Result<File, String> {
    let (netns, dev) = (netns.to_string(), dev.to_string());
    std::thread::spawn(move || -> Result<File, String> {
        let ns = File::open(format!("/run/netns/{netns}"))
            .map_err(|e| format!("namespace {netns}: {e}"))?;
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| format!("enter namespace {netns}: {e}"))?;
        let tun = File::options()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(|e| format!("/dev/net/tun: {e}"))?;
        sys::attach_tun(&tun, &dev).map_err(|e| format!("make {dev} in {netns}: {e}"))?;
        Ok(tun)
    })
    .join()
    .map_err(|_| "the namespace thread panicked".to_string())?
}

/// The one system call with no safe wrapper in our dependencies.
#[allow(unsafe_code)]
mod sys {
    use std::fs::File;
    use std::os::fd::AsRawFd;

    /// `TUNSETIFF`: makes `file` (an open `/dev/net/tun`) the TUN device `name`, carrying bare
    /// IP packets.
    pub fn attach_tun(file: &File, name: &str) -> Result<(), String> {
        // SAFETY: ifreq is plain old data, for which all zeroes is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        if name.len() >= req.ifr_name.len() {
            return Err(format!("device name {name:?} is too long"));
        }
        for (slot, byte) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *slot = byte as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes the ifreq we pass, which outlives the call, on a
        // descriptor we hold open.
        if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        Ok(())
    }
}

/// Waits up to 100 ms for `fd` to have a packet, so the stop flag is seen.
fn readable(fd: &File) -> bool {
    let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
    let timeout = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    rustix::event::poll(&mut fds, Some(&timeout)).is_ok_and(|n| n > 0)
}

/// Reads packets from one end and stamps each with when it may leave the other.
fn carry_in(
    mut from: File,
    tx: &mpsc::Sender<(Instant, Vec<u8>)>,
    state: &Mutex<Impairment>,
    stop: &AtomicBool,
    seed: u64,
) {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut random = move || {
        // xorshift64*: plenty for loss and jitter.
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut buf = vec![0u8; MTU + 64];
    // The time the previous packet leaves: packets never overtake one another, and a rate
    // limit queues them behind each other.
    let mut last_due = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if !readable(&from) {
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => continue,
            Ok(n) => n,
        };
        let imp = state.lock().map(|s| *s).unwrap_or_default();
        if !imp.up || (imp.loss > 0.0 && random() < imp.loss) {
            continue;
        }
        let now = Instant::now();
        let mut due = now + imp.delay + imp.jitter.mul_f64(random());
        if imp.rate > 0 {
            let wire = Duration::from_secs_f64(n as f64 / imp.rate as f64);
            due = due.max(last_due + wire);
        }
        due = due.max(last_due);
        last_due = due;
        if tx.send((due, buf[..n].to_vec())).is_err() {
            return;
        }
    }
}

/// Writes packets to the other end once their time has come; a link that went down loses
/// what was still on the wire.
fn carry_out(
    mut to: File,
    rx: &mpsc::Receiver<(Instant, Vec<u8>)>,
    state: &Mutex<Impairment>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        let Ok((due, packet)) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let wait = due.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        if state.lock().map(|s| s.up).unwrap_or(true) {
            // A full queue on the far side drops the packet, as a real link would.
            let _ = to.write(&packet);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netem_words() {
        let i = Impairment::parse("delay 50ms 10ms loss 1%").unwrap();
        assert_eq!(i.delay, Duration::from_millis(50));
        assert_eq!(i.jitter, Duration::from_millis(10));
        assert!((i.loss - 0.01).abs() < 1e-9);
        assert!(i.up);
        assert!(!Impairment::parse("down").unwrap().up);
        assert_eq!(Impairment::parse("off").unwrap(), Impairment::default());
        assert_eq!(
            Impairment::parse("rate 8mbit").unwrap().rate,
            1_000_000,
            "8 Mbit/s is 1 MB/s"
        );
        assert!(Impairment::parse("delay").is_err());
        assert!(Impairment::parse("delay 5 parsecs").is_err());
        assert!(Impairment::parse("corrupt 1%").is_err());
    }
}
