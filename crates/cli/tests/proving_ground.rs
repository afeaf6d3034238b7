//! The proving ground (issue 6): `rtsync run` on a source host pushing to three target hosts
//! over emulated links (two `rtsync daemon`, one stock `rsync --daemon`), through network,
//! disk and process faults. After every fault each target must converge to the source, and a
//! checker reading the targets' files all along must never see one that is not a whole
//! version the source had. Root only (network namespaces); skipped elsewhere unless `CI` is
//! set. The figures each test prints (`PG ...` lines) are what RELIABILITY.md reports; see
//! `scripts/proving-ground`.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::ground::{Checker, CheckerReport, Ground, Versions, program};
use common::have_rsync;
use testkit::netem::Impairment;
use testkit::topology::TARGETS;

/// One topology at a time: each test takes both cores' worth of transfers.
static SERIAL: Mutex<()> = Mutex::new(());

/// A small deterministic random source for workloads.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A workload on the source: new files and rewrites of 10–300 KB, renames of files and of
/// whole directories, deletes, spread over a few directories, `ops` operations at about
/// `rate` per second.
struct Churn {
    rng: Rng,
    versions: Versions,
    files: Vec<String>,
    dirs: Vec<String>,
    made_dirs: u64,
}

impl Churn {
    fn new(seed: u64, versions: &Versions) -> Churn {
        Churn {
            rng: Rng(seed | 1),
            versions: versions.clone(),
            files: Vec::new(),
            dirs: vec!["d0".into(), "d1".into(), "d2".into()],
            made_dirs: 3,
        }
    }

    fn size(&mut self) -> usize {
        10_000 + self.rng.below(290_000) as usize
    }

    fn one(&mut self, g: &Ground) {
        let src = g.src();
        let roll = self.rng.below(100);
        if roll < 60 || self.files.len() < 10 {
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
    fn run(&mut self, g: &Ground, ops: u64, rate: u64) {
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

fn report(test: &str, what: &str) {
    println!("PG {test}: {what}");
}

fn checked(test: &str, c: &CheckerReport) {
    report(
        test,
        &format!(
            "checker read {} files ({} MB) in {} sweeps of the three targets; {} not a whole source version",
            c.files_read,
            c.bytes_read / 1_000_000,
            c.sweeps,
            c.bad.len()
        ),
    );
    assert!(
        c.bad.is_empty(),
        "a target showed files that are not whole source versions:\n{}",
        c.bad
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn ground(name: &str) -> Option<Ground> {
    if !have_rsync() {
        return None;
    }
    Ground::up(name)
}

fn show(converged: &[(String, Duration)]) -> String {
    converged
        .iter()
        .map(|(h, t)| format!("{h} ({}) {} ms", program(h), t.as_millis()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn three_targets_converge_through_latency_jitter_and_loss() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(g) = ground("lat") else { return };
    let test = "latency";
    for t in TARGETS {
        g.topo
            .impair(t, Impairment::parse("delay 50ms 10ms loss 1%").unwrap());
    }
    let versions = Versions::default();
    let mut churn = Churn::new(1, &versions);
    churn.run(&g, 50, 1000);
    let engine = g.engine(&[]);
    let first = g.converged(Duration::from_secs(60), &engine);
    report(test, &format!("initial sync: {}", show(&first)));
    let checker = Checker::start(&g, &versions);
    let t0 = Instant::now();
    churn.run(&g, 400, 100);
    let wrote = t0.elapsed();
    let after = g.converged(Duration::from_secs(60), &engine);
    report(
        test,
        &format!(
            "400 operations in {:.1} s over links of 50 ms ±10 ms each way and 1 % loss; converged after the last write: {}",
            wrote.as_secs_f64(),
            show(&after)
        ),
    );
    checked(test, &checker.finish());
    assert_eq!(engine.stop(), Some(0));
}
