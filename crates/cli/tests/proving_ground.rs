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

use common::engine::Engine;
use common::ground::{Checker, CheckerReport, Churn, Ground, Rng, Versions, churn_until, program};
use common::have_rsync;
use testkit::netem::Impairment;
use testkit::topology::TARGETS;

/// One topology at a time: each test takes both cores' worth of transfers.
static SERIAL: Mutex<()> = Mutex::new(());

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

/// A ground with 30 files written, `rtsync run` started and every target caught up, and the
/// checker reading the targets from then on.
fn started(name: &str, seed: u64) -> Option<(Ground, Versions, Churn, Engine, Checker)> {
    let g = ground(name)?;
    let versions = Versions::default();
    let mut churn = Churn::new(seed, &versions);
    churn.run(&g, 30, 1000);
    let engine = g.engine(&[]);
    g.converged(Duration::from_secs(60), &engine);
    let checker = Checker::start(&g, &versions);
    Some((g, versions, churn, engine, checker))
}

#[test]
fn a_link_down_for_30_s_mid_stream_delays_only_its_target_which_catches_up_when_it_returns() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((g, versions, churn, engine, checker)) = started("link", 2) else {
        return;
    };
    let test = "link-down";
    let stop = std::sync::atomic::AtomicBool::new(false);
    let outage = Duration::from_secs(30);
    let (ops, others) = std::thread::scope(|s| {
        let writer = churn_until(s, &g, churn, 50, &stop);
        std::thread::sleep(Duration::from_secs(3));
        // A big file on its way when the link goes: the cut lands mid-transfer, where TCP
        // alone would resume only at its next retransmission, many seconds after the link
        // is back.
        versions.put(&g, "big/one", 200_000_000);
        std::thread::sleep(Duration::from_millis(400));
        g.topo.set_link("b", false);
        let down_at = Instant::now();
        // Mid-outage the other targets keep up: each converges whenever the writer pauses.
        std::thread::sleep(outage / 2);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (churn, ops_before) = writer.join().unwrap();
        let mut others = Vec::new();
        for host in ["c", "d"] {
            let t0 = Instant::now();
            while !g.differences(host).is_empty() {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "{host} fell behind while b was down:\n{}",
                    g.differences(host).join("\n")
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            others.push((host, t0.elapsed()));
        }
        stop.store(false, std::sync::atomic::Ordering::SeqCst);
        let writer = churn_until(s, &g, churn, 50, &stop);
        std::thread::sleep(outage.saturating_sub(down_at.elapsed()));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        g.topo.set_link("b", true);
        (ops_before + writer.join().unwrap().1, others)
    });
    let up_at = Instant::now();
    let after = g.converged(Duration::from_secs(60), &engine);
    let recovery = after.iter().find(|(h, _)| h == "b").unwrap().1;
    report(
        test,
        &format!(
            "{ops} operations at 50/s; link to b down for {} s; mid-outage c and d caught up within {} after a pause; after the link came back: {}",
            outage.as_secs(),
            others
                .iter()
                .map(|(h, t)| format!("{h} {} ms", t.as_millis()))
                .collect::<Vec<_>>()
                .join(", "),
            show(&after)
        ),
    );
    report(
        test,
        &format!(
            "b recovered {} ms after its link returned",
            recovery.as_millis()
        ),
    );
    let _ = up_at;
    checked(test, &checker.finish());
    assert!(
        recovery < Duration::from_secs(15),
        "b took {recovery:?} to recover\n{}",
        common::ground::tail(&engine.log(), 40)
    );
    assert_eq!(engine.stop(), Some(0));
}

/// Stock `rsync --list-only` clients, `n` at a time from the source host, connecting to
/// `host` over and over for `secs`: how many sessions the daemon served.
fn hammer(g: &Ground, host: &str, n: usize, secs: u64) -> usize {
    let url = Ground::url(host);
    let password = g.dir.path().join("password");
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    let end = Instant::now() + Duration::from_secs(secs);
                    let mut served = 0;
                    while Instant::now() < end {
                        let mut cmd = g.topo.command("src", "rsync");
                        cmd.arg("--list-only")
                            .arg("--contimeout=5")
                            .arg(format!("--password-file={}", password.display()))
                            .arg(&url);
                        let out = common::run_bounded(&mut cmd, Duration::from_secs(30));
                        if out.status.success() {
                            served += 1;
                        }
                    }
                    served
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

#[test]
fn a_daemon_killed_and_restarted_a_flapping_link_and_a_connection_storm_all_converge() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((g, _versions, churn, engine, checker)) = started("storm", 3) else {
        return;
    };
    let test = "daemon-and-storm";
    let stop = std::sync::atomic::AtomicBool::new(false);
    let g_ref = &g;
    let (ops, served) = std::thread::scope(|s| {
        let writer = churn_until(s, g_ref, churn, 50, &stop);
        std::thread::sleep(Duration::from_secs(2));
        // c's daemon dies with transfers in flight and comes back 3 s later.
        g_ref.kill_daemon("c");
        std::thread::sleep(Duration::from_secs(3));
        g_ref.start_daemon("c");
        // d's link flaps: ten drops of 300 ms.
        for _ in 0..10 {
            g_ref.topo.set_link("d", false);
            std::thread::sleep(Duration::from_millis(300));
            g_ref.topo.set_link("d", true);
            std::thread::sleep(Duration::from_millis(300));
        }
        // b's daemon is hammered by 16 clients at once while it serves the engine.
        let served = hammer(g_ref, "b", 16, 4);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (writer.join().unwrap().1, served)
    });
    let after = g.converged(Duration::from_secs(60), &engine);
    report(
        test,
        &format!(
            "{ops} operations at 50/s; c's daemon killed (-9) and restarted after 3 s; d's link dropped 10 times for 300 ms; b served {served} stock --list-only sessions from 16 clients in 4 s besides the engine; converged after the last write: {}",
            show(&after)
        ),
    );
    checked(test, &checker.finish());
    assert!(served > 0, "b served no client during the storm");
    assert_eq!(engine.stop(), Some(0));
}

/// A tmpfs mounted (by this test, on a directory of its own) over a target's module.
struct SmallDisk {
    at: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(at: &std::path::Path, size: &str) -> SmallDisk {
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount: {out:?}");
        SmallDisk { at: at.into() }
    }

    fn grow(&self, size: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.at)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount: {out:?}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.at).status();
    }
}

#[test]
fn a_full_target_disk_is_reported_retried_and_healed_once_space_is_freed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(g) = ground("disk") else { return };
    let test = "disk-full";
    // Mounted before b's daemon starts again: `ip netns exec` gives the daemon a copy of the
    // mount table, and this container's mounts do not propagate into copies made earlier.
    g.kill_daemon("b");
    let disk = SmallDisk::mount(&g.module("b"), "16m");
    g.start_daemon("b");
    let versions = Versions::default();
    let engine = g.engine(&[]);
    g.converged(Duration::from_secs(60), &engine);
    let checker = Checker::start(&g, &versions);
    // About 45 MB: nearly three times what b's disk holds.
    let mut churn = Churn::new(4, &versions);
    for i in 0..300 {
        versions.put(&g, &format!("big/{}/f{i}", i % 7), 150_000);
    }
    churn.run(&g, 50, 200);
    // c and d take it all; b fills up, says why, and keeps trying.
    for host in ["c", "d"] {
        let t0 = Instant::now();
        while !g.differences(host).is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "{host} did not converge"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let t0 = Instant::now();
    let said = loop {
        let log = engine.log();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("10.77.1.2") && l.contains("No space left on device"))
        {
            break line.to_string();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no clear error for the full disk:\n{}",
            common::ground::tail(&log, 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!g.differences("b").is_empty());
    std::thread::sleep(Duration::from_secs(3));
    let failures = engine
        .log()
        .lines()
        .filter(|l| l.contains("10.77.1.2") && l.contains("will"))
        .count();
    assert!(failures >= 2, "b's batch was not retried");
    disk.grow("256m");
    let grown = Instant::now();
    let after = g.converged(Duration::from_secs(60), &engine);
    report(
        test,
        &format!(
            "b's module on a 16 MB tmpfs, 45 MB written: the engine said {:?}, retried {failures} times in 3 s while c and d converged; after the disk grew to 256 MB: {} (b {} ms after it grew)",
            said.split(": ").skip(1).collect::<Vec<_>>().join(": "),
            show(&after),
            after
                .iter()
                .find(|(h, _)| h == "b")
                .map_or(0, |(_, t)| t.as_millis())
                .min(grown.elapsed().as_millis())
        ),
    );
    checked(test, &checker.finish());
    assert_eq!(engine.stop(), Some(0));
    drop(disk);
}

#[test]
fn twenty_rounds_of_kill_9_of_the_engine_or_a_daemon_lose_nothing_and_tear_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(g) = ground("kill") else { return };
    let test = "kill-9";
    let rounds: u64 = std::env::var("PG_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let versions = Versions::default();
    let mut churn = Churn::new(5, &versions);
    churn.run(&g, 50, 1000);
    let mut engine = Some(g.engine(&[]));
    g.converged(Duration::from_secs(60), engine.as_ref().unwrap());
    let checker = Checker::start(&g, &versions);
    let mut rng = Rng(0x5eed);
    let mut killed = Vec::new();
    let mut times = Vec::new();
    let mut churn = Some(churn);
    for round in 0..rounds {
        let stop = std::sync::atomic::AtomicBool::new(false);
        let victim = match rng.below(4) {
            0 | 1 => "engine",
            // Each target's daemon in turn, the stock one included.
            2 => TARGETS[round as usize % 3],
            _ => "both",
        };
        let kill_after = Duration::from_millis(50 + rng.below(600));
        let down_for = Duration::from_millis(100 + rng.below(900));
        let daemon = TARGETS[(round as usize + 1) % 3];
        let g_ref = &g;
        let engine_ref = &mut engine;
        churn = Some(std::thread::scope(|s| {
            let writer = churn_until(s, g_ref, churn.take().unwrap(), 200, &stop);
            std::thread::sleep(kill_after);
            let kill_engine = victim == "engine" || victim == "both";
            let kill_daemon = match victim {
                "engine" => None,
                "both" => Some(daemon),
                host => Some(host),
            };
            if kill_engine {
                engine_ref.take().unwrap().kill9();
            }
            if let Some(h) = kill_daemon {
                g_ref.kill_daemon(h);
            }
            std::thread::sleep(down_for);
            if let Some(h) = kill_daemon {
                g_ref.start_daemon(h);
            }
            if kill_engine {
                *engine_ref = Some(g_ref.engine(&[]));
            }
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            writer.join().unwrap().0
        }));
        let e = engine.as_ref().unwrap();
        let after = g.converged(Duration::from_secs(60), e);
        let worst = after.iter().map(|(_, t)| *t).max().unwrap_or_default();
        killed.push(victim);
        times.push(worst);
        println!(
            "PG kill-9 round {round}: killed {} after {} ms, back after {} ms; converged in {} ms",
            match victim {
                "both" => format!("the engine and {daemon}'s daemon"),
                "engine" => "the engine".to_string(),
                host => format!("{host}'s daemon"),
            },
            kill_after.as_millis(),
            down_for.as_millis(),
            worst.as_millis()
        );
    }
    let engines = killed
        .iter()
        .filter(|v| **v == "engine" || **v == "both")
        .count();
    let daemons = killed.iter().filter(|v| **v != "engine").count();
    report(
        test,
        &format!(
            "{rounds} rounds: the engine killed {engines} times, a daemon {daemons} times; every round converged; slowest {} ms, median {} ms",
            times.iter().max().unwrap().as_millis(),
            common::ground::percentile(&mut times, 0.5).as_millis()
        ),
    );
    checked(test, &checker.finish());
    assert_eq!(engine.take().unwrap().stop(), Some(0));
}
