//! The proving ground: a source host and three target hosts in network namespaces
//! ([`testkit::topology`]), targets `b` and `c` running `rtsync daemon` and `d` stock
//! `rsync --daemon`, all from the classic tutorial's rsyncd.conf (`auth users`,
//! `secrets file`, `hosts allow`, `read only = no`) on port 873 of their own host; `rtsync run`
//! on the source pushes to all three. Also the writer of versioned files and the checker that
//! reads target files while transfers run.
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use testkit::topology::{TARGETS, Topology};

use super::daemon::root_ids;
use super::engine::Engine;

/// The user and password of every target's module.
const USER: &str = "alice";
const PASSWORD: &str = "proving ground";

/// A topology with its daemons, the source tree and each target's module.
pub struct Ground {
    pub topo: Topology,
    pub dir: tempfile::TempDir,
    daemons: Mutex<Vec<(String, Option<Child>)>>,
}

/// Which daemon serves `host`.
pub fn program(host: &str) -> &'static str {
    if host == "d" { "rsync" } else { "rtsync" }
}

impl Ground {
    /// Makes the topology `name`, starts the three daemons. `None` (the test skips, saying
    /// why) where namespaces cannot be made and `CI` is unset; under `CI` as root, a failure.
    pub fn up(name: &str) -> Option<Ground> {
        let name = format!("pg{}{name}", std::process::id() % 100_000);
        let topo = match Topology::up(&name) {
            Ok(t) => t,
            Err(why) => {
                let root = super::daemon::rustix_is_root();
                assert!(
                    std::env::var_os("CI").is_none() || !root,
                    "CI is set and we are root, yet the topology cannot be made: {}",
                    why.0
                );
                eprintln!("skipping: {}", why.0);
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        std::fs::create_dir(d.join("src")).unwrap();
        std::fs::create_dir(d.join("stage")).unwrap();
        std::fs::write(d.join("secrets"), format!("{USER}:{PASSWORD}\n")).unwrap();
        std::fs::write(d.join("password"), format!("{PASSWORD}\n")).unwrap();
        for f in ["secrets", "password"] {
            std::fs::set_permissions(
                d.join(f),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .unwrap();
        }
        let ground = Ground {
            topo,
            dir,
            daemons: Mutex::new(Vec::new()),
        };
        for host in TARGETS {
            let module = ground.module(host);
            std::fs::create_dir(&module).unwrap();
            let conf = format!(
                "pid file = {d}/{host}.pid\nlog file = {d}/{host}.log\nuse chroot = no\n{ids}\
                 munge symlinks = no\n\
                 [data]\n  path = {m}\n  read only = no\n  auth users = {USER}\n  \
                 secrets file = {d}/secrets\n  hosts allow = 10.77.0.0/16\n  hosts deny = *\n",
                d = d.display(),
                m = module.display(),
                ids = root_ids(),
            );
            std::fs::write(d.join(format!("{host}.conf")), conf).unwrap();
            ground
                .daemons
                .lock()
                .unwrap()
                .push((host.to_string(), None));
            ground.start_daemon(host);
        }
        Some(ground)
    }

    pub fn src(&self) -> PathBuf {
        self.dir.path().join("src")
    }

    /// Where `host`'s module keeps its files.
    pub fn module(&self, host: &str) -> PathBuf {
        self.dir.path().join(format!("module-{host}"))
    }

    /// Where files are written before they are renamed into the source (the same file
    /// system, outside the watched tree).
    pub fn stage(&self) -> PathBuf {
        self.dir.path().join("stage")
    }

    /// The URL `rtsync run` pushes to for `host`.
    pub fn url(host: &str) -> String {
        format!("rsync://{USER}@{}/data/", Topology::addr(host))
    }

    /// Starts `host`'s daemon and waits until it listens on its port 873.
    pub fn start_daemon(&self, host: &str) {
        let d = self.dir.path().to_path_buf();
        let _ = std::fs::remove_file(d.join(format!("{host}.pid")));
        let mut cmd = match program(host) {
            "rsync" => self.topo.command(host, "rsync"),
            _ => {
                let mut c = self.topo.command(host, env!("CARGO_BIN_EXE_rtsync"));
                c.arg("daemon");
                c
            }
        };
        let child = cmd
            .args(["--daemon", "--no-detach"])
            .arg(format!(
                "--config={}",
                d.join(format!("{host}.conf")).display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a daemon");
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(pid, 873) {
            assert!(
                Instant::now() < deadline,
                "the daemon on {host} did not listen on 873"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.with_slot(host, |slot| *slot = Some(child));
    }

    /// `kill -9` of `host`'s daemon, by its pid (what is left of its connections dies with
    /// it or soon after).
    pub fn kill_daemon(&self, host: &str) {
        if let Some(mut c) = self.with_slot(host, Option::take) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The pid of `host`'s daemon, if it runs.
    pub fn daemon_pid(&self, host: &str) -> Option<u32> {
        self.with_slot(host, |c| c.as_ref().map(Child::id))
    }

    fn with_slot<T>(&self, host: &str, f: impl FnOnce(&mut Option<Child>) -> T) -> T {
        let mut daemons = self.daemons.lock().unwrap_or_else(|e| e.into_inner());
        let slot = daemons
            .iter_mut()
            .find(|(h, _)| h == host)
            .expect("a target host");
        f(&mut slot.1)
    }

    /// `rtsync run` on the source host, pushing to every target (`extra` first), its journal in
    /// `state` under the ground's directory.
    pub fn engine(&self, extra: &[&str]) -> Engine {
        let d = self.dir.path();
        let mut cmd = self.topo.command("src", env!("CARGO_BIN_EXE_rtsync"));
        cmd.arg("run")
            .arg("-v")
            .arg(format!("--state-dir={}", d.join("state").display()))
            .arg(format!("--password-file={}", d.join("password").display()))
            .args(extra)
            .arg(format!("{}/", self.src().display()));
        for host in TARGETS {
            cmd.arg(Self::url(host));
        }
        Engine::spawn(cmd, d.join("engine.log"))
    }

    /// What differs between the source and `host`'s module now.
    pub fn differences(&self, host: &str) -> Vec<String> {
        testkit::diff_trees_below(&self.src(), &self.module(host), true)
    }

    /// Waits until every target equals the source; returns how long each took (from now),
    /// or fails with the differences and the engine's log.
    pub fn converged(&self, within: Duration, engine: &Engine) -> Vec<(String, Duration)> {
        let start = Instant::now();
        let mut done: Vec<(String, Duration)> = Vec::new();
        loop {
            for host in TARGETS {
                if !done.iter().any(|(h, _)| h == host) && self.differences(host).is_empty() {
                    done.push((host.to_string(), start.elapsed()));
                }
            }
            if done.len() == TARGETS.len() {
                return done;
            }
            if start.elapsed() > within {
                let mut report = String::new();
                for host in TARGETS {
                    let diffs = self.differences(host);
                    if !diffs.is_empty() {
                        report += &format!(
                            "{host} ({}): {} difference(s):\n  {}\n",
                            program(host),
                            diffs.len(),
                            diffs
                                .iter()
                                .take(10)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join("\n  ")
                        );
                    }
                }
                panic!(
                    "not converged within {within:?}:\n{report}engine log (tail):\n{}",
                    tail(&engine.log(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log of `host`'s daemon.
    pub fn daemon_log(&self, host: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{host}.log"))).unwrap_or_default()
    }
}

impl Drop for Ground {
    fn drop(&mut self) {
        // PG_LOGS=DIR keeps the engine's and the daemons' logs of each run there.
        if let Some(keep) = std::env::var_os("PG_LOGS") {
            let to = Path::new(&keep).join(self.topo.netns("logs"));
            let _ = std::fs::create_dir_all(&to);
            for f in ["engine.log", "b.log", "c.log", "d.log"] {
                let _ = std::fs::copy(self.dir.path().join(f), to.join(f));
            }
            for e in std::fs::read_dir(self.dir.path().join("state"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = std::fs::copy(e.path(), to.join(e.file_name()));
            }
        }
        let daemons = self.daemons.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, child) in daemons.iter_mut() {
            if let Some(c) = child {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether process `pid` has a TCP socket listening on `port` (its namespace's table).
fn listening(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")) else {
        return false;
    };
    let want = format!(":{port:04X}");
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
    })
}

/// Every version of every file the writer made: a target file must be one of them, whole.
///
/// A version's content is a header line `pg <id> <len>\n` followed by `len` bytes of
/// [`testkit::noise`] seeded with `id`, so a reader can tell a whole version from a torn,
/// truncated or mixed one without keeping the bytes.
#[derive(Default, Clone)]
pub struct Versions {
    made: Arc<Mutex<HashSet<u64>>>,
    next: Arc<AtomicU64>,
}

impl Versions {
    /// Writes a new version of `rel` (`len` bytes of body) into the source: made in the stage
    /// directory, then renamed into place, so the source never holds a partial version.
    pub fn put(&self, ground: &Ground, rel: &str, len: usize) -> u64 {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        let mut body = format!("pg {id} {len}\n").into_bytes();
        body.extend_from_slice(&testkit::noise(len, id));
        let staged = ground.stage().join(format!("v{id}"));
        std::fs::write(&staged, &body).unwrap();
        self.made.lock().unwrap().insert(id);
        let dest = ground.src().join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::rename(&staged, &dest).unwrap();
        id
    }

    /// The id of the newest version made (0: none yet).
    pub fn last(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// `None` when `data` is a whole version the writer made; what is wrong otherwise.
    pub fn judge(&self, data: &[u8]) -> Option<String> {
        let Some(nl) = data.iter().position(|b| *b == b'\n') else {
            return Some(format!("no header ({} bytes)", data.len()));
        };
        let header = String::from_utf8_lossy(&data[..nl]);
        let mut f = header.split(' ');
        let (Some("pg"), Some(id), Some(len)) = (f.next(), f.next(), f.next()) else {
            return Some(format!("bad header {header:?}"));
        };
        let (Ok(id), Ok(len)) = (id.parse::<u64>(), len.parse::<usize>()) else {
            return Some(format!("bad header {header:?}"));
        };
        if !self.made.lock().unwrap().contains(&id) {
            return Some(format!("version {id} was never written"));
        }
        let body = &data[nl + 1..];
        if body.len() != len {
            return Some(format!(
                "version {id}: {} bytes of {len} (torn or truncated)",
                body.len()
            ));
        }
        if body != testkit::noise(len, id).as_slice() {
            return Some(format!("version {id}: content differs (mixed)"));
        }
        None
    }
}

/// Reads every file in every target module, over and over while transfers run, and records
/// any that is not a whole version the writer made. rsync's temporary names (a dot, the
/// name, a dot and six characters) are not what a reader of the target sees as a file, and
/// are skipped.
pub struct Checker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<CheckerReport>>,
}

/// What the checker saw.
#[derive(Debug, Default)]
pub struct CheckerReport {
    pub files_read: u64,
    pub bytes_read: u64,
    pub sweeps: u64,
    pub bad: Vec<String>,
}

impl Checker {
    pub fn start(ground: &Ground, versions: &Versions) -> Checker {
        let roots: Vec<PathBuf> = TARGETS.iter().map(|h| ground.module(h)).collect();
        let versions = versions.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut report = CheckerReport::default();
            let mut judged = HashSet::new();
            while !flag.load(Ordering::SeqCst) {
                for root in &roots {
                    check_tree(root, root, &versions, &mut judged, &mut report);
                }
                report.sweeps += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            report
        });
        Checker {
            stop,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> CheckerReport {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .map(|t| t.join().expect("checker"))
            .unwrap_or_default()
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.len() > 8 && name.as_bytes()[name.len() - 7] == b'.'
}

/// A file as the checker last judged it: a file renamed into place is a new inode, a file
/// written in place changes its size or time; either is read again.
type Identity = (u64, u64, u64, i64, i64);

fn check_tree(
    root: &Path,
    dir: &Path,
    versions: &Versions,
    judged: &mut HashSet<Identity>,
    report: &mut CheckerReport,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(ft) = e.file_type() else { continue };
        let path = e.path();
        if ft.is_dir() {
            check_tree(root, &path, versions, judged, report);
        } else if ft.is_file() && !is_temp_name(&name) {
            use std::os::unix::fs::MetadataExt;
            // Gone since the listing (deleted, renamed): nothing to judge.
            let Ok(mut file) = std::fs::File::open(&path) else {
                continue;
            };
            let Ok(m) = file.metadata() else { continue };
            let id = (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec());
            if judged.contains(&id) {
                continue;
            }
            let mut data = Vec::new();
            if std::io::Read::read_to_end(&mut file, &mut data).is_err() {
                continue;
            }
            judged.insert(id);
            report.files_read += 1;
            report.bytes_read += data.len() as u64;
            if let Some(why) = versions.judge(&data) {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                report
                    .bad
                    .push(format!("{}: {}: {why}", root.display(), rel.display()));
            }
        }
    }
}

/// Percentile `q` (0..=1) of `values`, which it sorts.
pub fn percentile(values: &mut [Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort();
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    values[i]
}

/// A command's output on a host, as text (for `ss` and the like in failure reports).
pub fn on_host(ground: &Ground, host: &str, program: &str, args: &[&str]) -> String {
    let mut cmd: Command = ground.topo.command(host, program);
    cmd.args(args);
    cmd.output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A small deterministic random source for workloads.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A workload on the source: new files and rewrites of 10–300 KB, renames of files and of
/// whole directories, deletes, spread over a few directories, `ops` operations at about
/// `rate` per second.
pub struct Churn {
    rng: Rng,
    versions: Versions,
    files: Vec<String>,
    dirs: Vec<String>,
    made_dirs: u64,
    /// Past this many files, new files give way to rewrites and deletes: a long run keeps a
    /// steady tree instead of filling the disk.
    pub cap: usize,
}

impl Churn {
    pub fn new(seed: u64, versions: &Versions) -> Churn {
        Churn {
            rng: Rng(seed | 1),
            versions: versions.clone(),
            files: Vec::new(),
            dirs: vec!["d0".into(), "d1".into(), "d2".into()],
            made_dirs: 3,
            cap: usize::MAX,
        }
    }

    pub fn size(&mut self) -> usize {
        10_000 + self.rng.below(290_000) as usize
    }

    pub fn one(&mut self, g: &Ground) {
        let src = g.src();
        let roll = self.rng.below(100);
        let full = self.files.len() >= self.cap;
        if full && roll < 60 {
            // A rewrite half the time, a delete otherwise.
            let i = self.rng.below(self.files.len() as u64) as usize;
            if roll.is_multiple_of(2) {
                let name = self.files[i].clone();
                let len = self.size();
                self.versions.put(g, &name, len);
            } else {
                let old = self.files.swap_remove(i);
                let _ = std::fs::remove_file(src.join(old));
            }
        } else if roll < 60 || self.files.len() < 10 {
            let dir = self.dirs[self.rng.below(self.dirs.len() as u64) as usize].clone();
            let name = format!("{dir}/f{}", self.rng.below(1_000_000));
            let len = self.size();
            self.versions.put(g, &name, len);
            if !self.files.contains(&name) {
                self.files.push(name);
            }
        } else if roll < 75 {
            // A rewrite of a file that exists.
            let i = self.rng.below(self.files.len() as u64) as usize;
            let name = self.files[i].clone();
            let len = self.size();
            self.versions.put(g, &name, len);
        } else if roll < 85 {
            let i = self.rng.below(self.files.len() as u64) as usize;
            let old = self.files.swap_remove(i);
            let dir = self.dirs[self.rng.below(self.dirs.len() as u64) as usize].clone();
            let new = format!("{dir}/r{}", self.rng.below(1_000_000));
            if std::fs::rename(src.join(&old), src.join(&new)).is_ok() {
                self.files.retain(|f| *f != new);
                self.files.push(new);
            }
        } else if roll < 95 {
            let i = self.rng.below(self.files.len() as u64) as usize;
            let old = self.files.swap_remove(i);
            let _ = std::fs::remove_file(src.join(old));
        } else if self.dirs.len() > 1 {
            // A whole directory renamed (or, now and then, deleted).
            let i = self.rng.below(self.dirs.len() as u64) as usize;
            let old = self.dirs.swap_remove(i);
            let prefix = format!("{old}/");
            if self.rng.below(4) == 0 {
                let _ = std::fs::remove_dir_all(src.join(&old));
                self.files.retain(|f| !f.starts_with(&prefix));
            } else {
                self.made_dirs += 1;
                let new = format!("d{}", self.made_dirs);
                if std::fs::rename(src.join(&old), src.join(&new)).is_ok() {
                    for f in &mut self.files {
                        if let Some(rest) = f.strip_prefix(&prefix) {
                            *f = format!("{new}/{rest}");
                        }
                    }
                    self.dirs.push(new);
                }
            }
            self.made_dirs += 1;
            self.dirs.push(format!("d{}", self.made_dirs));
        }
    }

    /// `ops` operations at `rate` per second.
    pub fn run(&mut self, g: &Ground, ops: u64, rate: u64) {
        let start = Instant::now();
        for i in 0..ops {
            self.one(g);
            let due = start + Duration::from_secs_f64((i + 1) as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
}

/// Runs `churn` on its own thread at `rate` operations per second until `stop` is set.
/// Hands `churn` back with the number of operations done.
pub fn churn_until<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    g: &'env Ground,
    mut churn: Churn,
    rate: u64,
    stop: &'env std::sync::atomic::AtomicBool,
) -> std::thread::ScopedJoinHandle<'scope, (Churn, u64)> {
    scope.spawn(move || {
        let mut ops = 0;
        let start = Instant::now();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            churn.one(g);
            ops += 1;
            let due = start + Duration::from_secs_f64(ops as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        (churn, ops)
    })
}
