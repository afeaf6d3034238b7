//! The proving ground's hosts: a source and three targets (`b`, `c`, `d`), each a network
//! namespace, each target joined to the source by its own emulated link ([`crate::netem`]),
//! as in the classic a → b, c, d replication setup.
//!
//! Addresses: the source is `10.77.0.1` whichever link a packet takes (an address on its
//! loopback, routed to from each target); target `b` is `10.77.1.2` at the end of the link
//! `10.77.1.0/24`, `c` is `10.77.2.2` and `d` is `10.77.3.2`. The namespaces share the file
//! system, so a test reads every target's files directly. Root only; nothing here touches the
//! host's own interfaces, and no packet can leave the namespaces.

use std::process::Command;

use crate::netem::{End, Impairment, Link, ip};

/// The target hosts, in order.
pub const TARGETS: [&str; 3] = ["b", "c", "d"];

/// A running topology; dropping it stops every process left in its namespaces and deletes
/// them.
pub struct Topology {
    name: String,
    links: Vec<(String, Link)>,
}

/// Why a topology cannot be made here (not root, no `ip`, no TUN): the caller decides whether
/// that skips a test or fails it.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl Topology {
    /// Makes the namespaces `NAME-src`, `NAME-b`, `NAME-c`, `NAME-d` and their links. A
    /// leftover topology of the same name (from a run that was killed) is removed first.
    ///
    /// # Errors
    /// [`Unavailable`] with the reason when this machine cannot make it.
    pub fn up(name: &str) -> Result<Topology, Unavailable> {
        let root = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        if !root {
            return Err(Unavailable("network namespaces need root".into()));
        }
        if Command::new("ip").arg("-V").output().is_err() {
            return Err(Unavailable("no `ip` (Debian's iproute2)".into()));
        }
        if !std::path::Path::new("/dev/net/tun").exists() {
            return Err(Unavailable("no /dev/net/tun".into()));
        }
        remove(name);
        let mut topo = Topology {
            name: name.to_string(),
            links: Vec::new(),
        };
        let fail = |e: String| Unavailable(e);
        for host in ["src", "b", "c", "d"] {
            let ns = topo.netns(host);
            ip(&["netns", "add", &ns]).map_err(fail)?;
            ip(&["-n", &ns, "link", "set", "lo", "up"]).map_err(fail)?;
        }
        let src = topo.netns("src");
        ip(&["-n", &src, "addr", "add", "10.77.0.1/32", "dev", "lo"]).map_err(fail)?;
        for (i, t) in TARGETS.iter().enumerate() {
            let net = i + 1;
            let link = Link::start(
                &End {
                    netns: src.clone(),
                    dev: format!("to-{t}"),
                    addr: format!("10.77.{net}.1/24"),
                },
                &End {
                    netns: topo.netns(t),
                    dev: "to-src".into(),
                    addr: format!("10.77.{net}.2/24"),
                },
            )
            .map_err(fail)?;
            ip(&[
                "-n",
                &topo.netns(t),
                "route",
                "add",
                "10.77.0.1/32",
                "via",
                &format!("10.77.{net}.1"),
            ])
            .map_err(fail)?;
            topo.links.push(((*t).to_string(), link));
        }
        Ok(topo)
    }

    /// The namespace of `host` (`src`, `b`, `c` or `d`).
    #[must_use]
    pub fn netns(&self, host: &str) -> String {
        format!("{}-{host}", self.name)
    }

    /// The address of `host`.
    #[must_use]
    pub fn addr(host: &str) -> String {
        match TARGETS.iter().position(|t| *t == host) {
            Some(i) => format!("10.77.{}.2", i + 1),
            None => "10.77.0.1".into(),
        }
    }

    /// A command that runs `program` on `host`.
    #[must_use]
    pub fn command(&self, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns(host)]).arg(program);
        cmd
    }

    /// Impairs the link between the source and `target` (both directions) from now on.
    ///
    /// # Panics
    /// On a target that is not `b`, `c` or `d`.
    pub fn impair(&self, target: &str, imp: Impairment) {
        self.link(target).set(imp);
    }

    /// What the link to `target` does now.
    #[must_use]
    pub fn impairment(&self, target: &str) -> Impairment {
        self.link(target).get()
    }

    /// Takes the link to `target` down (every packet lost, as with a cut cable) or back up
    /// with the impairment it had.
    pub fn set_link(&self, target: &str, up: bool) {
        let link = self.link(target);
        link.set(Impairment { up, ..link.get() });
    }

    fn link(&self, target: &str) -> &Link {
        &self
            .links
            .iter()
            .find(|(t, _)| t == target)
            .unwrap_or_else(|| panic!("no target host {target:?}"))
            .1
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        remove(&self.name);
        self.links.clear();
    }
}

/// Stops what runs in the namespaces of topology `name` (only they can have been started
/// there) and deletes them.
pub fn remove(name: &str) {
    for host in ["src", "b", "c", "d"] {
        let ns = format!("{name}-{host}");
        if !std::path::Path::new("/run/netns").join(&ns).exists() {
            continue;
        }
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Some(pid) = pid
                    .parse::<i32>()
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        let _ = ip(&["netns", "del", &ns]);
    }
}
