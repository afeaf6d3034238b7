//! The proving ground's lag benchmark (issue 6): `rtsync run` on the source host pushing a
//! steady stream of new 10–300 KB files to the three targets (two `rtsync daemon`, one stock
//! `rsync --daemon`) over links with added latency, and how long each file takes to show up,
//! whole, on each target. Not part of the default test run (it is a measurement, and it wants
//! the machine to itself): `bench/proving_ground.sh` runs it and prints the figures.
//!
//! Lag of a file on a target = when it appeared there (an inotify event on the target's
//! module, then its header read back names the version) − when the writer renamed it into
//! the source. Settings from the environment: `PG_RATE` files/s (500), `PG_SECS` seconds
//! (20), `PG_LINK` the impairment of every link ("delay 25ms 5ms": 50 ms round trips), and
//! `PG_OUTAGE` seconds of link-down for target b in the middle of the stream (0: none);
//! `PG_ENGINE_LOG` a file to keep the engine's log in.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::ground::{Ground, Versions, percentile, program};
use testkit::netem::Impairment;
use testkit::topology::TARGETS;
use watch::{InotifyWatcher, WatchOptions, Watcher, mask};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// When each version was renamed into the source, by id.
type Written = Arc<Mutex<HashMap<u64, Instant>>>;

/// Per target, each version's lag, by id.
type Seen = Arc<Mutex<Vec<HashMap<u64, Duration>>>>;

/// Watches the three modules and records, per target, when each version first appeared.
fn arrivals(
    g: &Ground,
    written: &Written,
    stop: &Arc<AtomicBool>,
) -> (Seen, std::thread::JoinHandle<()>) {
    let roots: Vec<PathBuf> = TARGETS.iter().map(|h| g.module(h)).collect();
    let (written, stop) = (written.clone(), stop.clone());
    let opts = WatchOptions {
        recursive: true,
        events: mask::CREATE | mask::CLOSE_WRITE | mask::MOVED_TO,
        no_dereference: true,
        selector: watch::Selector::new(),
    };
    let mut watcher = Watcher::Inotify(InotifyWatcher::new(opts).expect("inotify"));
    for r in &roots {
        watcher.add(r).expect("watch a module");
    }
    let seen: Seen = Arc::new(Mutex::new(vec![HashMap::new(); roots.len()]));
    let record = seen.clone();
    let thread = std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let Ok(Some(ev)) = watcher.next_event(Some(Duration::from_millis(50))) else {
                continue;
            };
            if ev.is_dir() {
                continue;
            }
            let path = ev.path();
            let Some(t) = roots.iter().position(|r| path.starts_with(r)) else {
                continue;
            };
            let mut head = [0u8; 40];
            let Ok(n) = std::fs::File::open(&path).and_then(|mut f| f.read(&mut head)) else {
                continue;
            };
            let text = String::from_utf8_lossy(&head[..n]);
            let Some(id) = text
                .strip_prefix("pg ")
                .and_then(|r| r.split(' ').next())
                .and_then(|v| v.parse::<u64>().ok())
            else {
                continue;
            };
            let Some(lag) = written.lock().unwrap().get(&id).map(Instant::elapsed) else {
                continue;
            };
            record.lock().unwrap()[t].entry(id).or_insert(lag);
        }
    });
    (seen, thread)
}

#[test]
#[ignore = "a benchmark: bench/proving_ground.sh"]
fn lag_of_a_steady_stream_to_three_targets() {
    let rate: u64 = env("PG_RATE", 500);
    let secs: u64 = env("PG_SECS", 20);
    let link: String = env("PG_LINK", "delay 25ms 5ms".to_string());
    let outage: u64 = env("PG_OUTAGE", 0);
    let Some(g) = Ground::up("lag") else { return };
    let imp = Impairment::parse(&link).expect("PG_LINK");
    for t in TARGETS {
        g.topo.impair(t, imp);
    }
    let versions = Versions::default();
    let engine = g.engine(&[]);
    g.converged(Duration::from_secs(60), &engine);
    let written: Written = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, watcher) = arrivals(&g, &written, &stop);
    let mut rng = 0x9e37_79b9_u64;
    let total = rate * secs;
    let start = Instant::now();
    let mut outage_at = None;
    let mut bytes = 0u64;
    for i in 0..total {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let len = 10_000 + (rng % 290_000) as usize;
        let id = versions.put(&g, &format!("s{}/f{i}", i % 50), len);
        bytes += len as u64;
        written.lock().unwrap().insert(id, Instant::now());
        if outage > 0 && outage_at.is_none() && i >= total / 3 {
            g.topo.set_link("b", false);
            outage_at = Some(Instant::now());
        }
        if let Some(at) = outage_at
            && at.elapsed() >= Duration::from_secs(outage)
            && !g.topo.impairment("b").up
        {
            g.topo.set_link("b", true);
        }
        let due = start + Duration::from_secs_f64((i + 1) as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let wrote = start.elapsed();
    if outage_at.is_some() {
        g.topo.set_link("b", true);
    }
    // Measured from here: for b with an outage, how long after its link came back.
    let after = g.converged(Duration::from_secs(120), &engine);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    let seen = seen.lock().unwrap();
    println!(
        "PG lag: {total} files of 10-300 KB at {rate}/s ({:.1} s of writing, {:.0} MB per target), links \"{link}\"{}",
        wrote.as_secs_f64(),
        bytes as f64 / 1e6,
        if outage > 0 {
            format!(", b's link down for {outage} s from a third of the way in")
        } else {
            String::new()
        }
    );
    for (i, host) in TARGETS.iter().enumerate() {
        let mut lags: Vec<Duration> = seen[i].values().copied().collect();
        let missing = total as usize - lags.len();
        let ms = |d: Duration| d.as_millis();
        let (p50, p90, p99, max) = (
            percentile(&mut lags, 0.5),
            percentile(&mut lags, 0.9),
            percentile(&mut lags, 0.99),
            lags.iter().max().copied().unwrap_or_default(),
        );
        println!(
            "PG lag {host} ({}): p50 {} ms, p90 {} ms, p99 {} ms, max {} ms; {} files seen arriving, {missing} not seen (replaced before a read or read mid-rename)",
            program(host),
            ms(p50),
            ms(p90),
            ms(p99),
            ms(max),
            lags.len(),
        );
    }
    println!(
        "PG lag: converged after the last write: {}",
        after
            .iter()
            .map(|(h, t)| format!("{h} {} ms", t.as_millis()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if outage > 0 {
        let b = after.iter().find(|(h, _)| h == "b").unwrap().1;
        println!(
            "PG lag: b caught up {} ms after its link returned",
            b.as_millis()
        );
    }
    if let Some(path) = std::env::var_os("PG_ENGINE_LOG") {
        std::fs::write(path, engine.log()).unwrap();
    }
    assert_eq!(engine.stop(), Some(0));
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The soak run (issue 6): `PG_SOAK_SECS` (3600) of mixed load — new files, rewrites,
/// renames of files and directories, deletes — at a rate that swings between 20 and
/// `PG_RATE` (200) operations per second on a tree held near `PG_SOAK_FILES` (3,000) files, with a fault every few minutes in turn (b's link
/// down for 20 s, c's daemon killed and restarted, d's link flapping), over `PG_LINK` links.
/// Every `PG_WINDOW` seconds (60): the lag percentiles of the files that arrived in that
/// window per target, the engine's and each daemon's resident memory, and, after a pause
/// of the writer, whether every target equals the source. `scripts/soak` runs it.
#[test]
#[ignore = "an hour-long soak: scripts/soak"]
fn soak() {
    let total = Duration::from_secs(env("PG_SOAK_SECS", 3600));
    let window = Duration::from_secs(env("PG_WINDOW", 60));
    let peak: u64 = env("PG_RATE", 200);
    let link: String = env("PG_LINK", "delay 25ms 5ms".to_string());
    let Some(g) = Ground::up("soak") else { return };
    let imp = Impairment::parse(&link).expect("PG_LINK");
    for t in TARGETS {
        g.topo.impair(t, imp);
    }
    let versions = Versions::default();
    let mut churn = common::ground::Churn::new(7, &versions);
    // About 3,000 files of 155 KB on average: under 500 MB per copy, four copies.
    churn.cap = env("PG_SOAK_FILES", 3000);
    churn.run(&g, 200, 2000);
    let engine = g.engine(&[]);
    g.converged(Duration::from_secs(120), &engine);
    let written: Written = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, watcher) = arrivals(&g, &written, &stop);
    println!(
        "PG soak: {} s of mixed load, up to {peak} ops/s, links \"{link}\"; a line per {} s window",
        total.as_secs(),
        window.as_secs()
    );
    let start = Instant::now();
    let mut windows = 0u32;
    let mut diverged = 0u32;
    let mut counted: Vec<usize> = vec![0; TARGETS.len()];
    let mut ops_total = 0u64;
    while start.elapsed() < total {
        let w0 = Instant::now();
        // The rate swings with the window number: quiet, busy, peak, busy.
        let rate = match windows % 4 {
            0 => 20,
            2 => peak,
            _ => peak / 2,
        }
        .max(1);
        let fault = match windows % 5 {
            1 => "b's link down 20 s",
            2 => "c's daemon killed, back after 5 s",
            3 => "d's link flapping",
            _ => "none",
        };
        let mut ops = 0u64;
        while w0.elapsed() < window.saturating_sub(Duration::from_secs(10)) {
            let at = w0.elapsed();
            match (windows % 5, at.as_secs()) {
                (1, 10) if g.topo.impairment("b").up => g.topo.set_link("b", false),
                (1, 30) if !g.topo.impairment("b").up => g.topo.set_link("b", true),
                (2, 10) if g.daemon_pid("c").is_some() => g.kill_daemon("c"),
                (2, 15) if g.daemon_pid("c").is_none() => g.start_daemon("c"),
                (3, 10..=20) => g.topo.set_link("d", at.as_millis() % 1000 >= 300),
                _ => {}
            }
            let before = versions.last();
            churn.one(&g);
            let id = versions.last();
            if id != before {
                written.lock().unwrap().insert(id, Instant::now());
            }
            ops += 1;
            let due = w0 + Duration::from_secs_f64(ops as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        g.topo.set_link("b", true);
        g.topo.set_link("d", true);
        if g.daemon_pid("c").is_none() {
            g.start_daemon("c");
        }
        ops_total += ops;
        // The writer rests; every target must reach the source's state.
        let t0 = Instant::now();
        let mut behind: Vec<&str> = TARGETS.to_vec();
        while !behind.is_empty() && t0.elapsed() < Duration::from_secs(60) {
            behind.retain(|h| !g.differences(h).is_empty());
            std::thread::sleep(Duration::from_millis(100));
        }
        if !behind.is_empty() {
            diverged += 1;
        }
        let settle = t0.elapsed();
        let seen_now = seen.lock().unwrap().clone();
        let mut cols = Vec::new();
        for (i, host) in TARGETS.iter().enumerate() {
            // The lags recorded since the last window (ids only grow).
            let mut ids: Vec<u64> = seen_now[i].keys().copied().collect();
            ids.sort_unstable();
            let mut lags: Vec<Duration> =
                ids[counted[i]..].iter().map(|id| seen_now[i][id]).collect();
            counted[i] = ids.len();
            cols.push(format!(
                "{host} p50 {} p99 {} max {} ms",
                percentile(&mut lags, 0.5).as_millis(),
                percentile(&mut lags, 0.99).as_millis(),
                lags.iter().max().copied().unwrap_or_default().as_millis()
            ));
        }
        let mem: Vec<String> = std::iter::once(("engine", Some(engine.pid())))
            .chain(TARGETS.iter().map(|h| (*h, g.daemon_pid(h))))
            .map(|(who, pid)| format!("{who} {} MiB", pid.map_or(0, rss_kib) / 1024))
            .collect();
        println!(
            "PG soak window {windows} at {} s: {ops} ops at {rate}/s, fault: {fault}; lag {}; rss {}; {}",
            start.elapsed().as_secs(),
            cols.join(", "),
            mem.join(", "),
            if behind.is_empty() {
                format!(
                    "all targets equal the source {} ms after the writer paused",
                    settle.as_millis()
                )
            } else {
                format!("DIVERGED: {} not equal after 60 s", behind.join(", "))
            }
        );
        windows += 1;
    }
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    println!("PG soak: {windows} windows, {ops_total} operations, {diverged} window(s) diverged");
    assert_eq!(diverged, 0, "targets diverged");
    assert_eq!(engine.stop(), Some(0));
}
