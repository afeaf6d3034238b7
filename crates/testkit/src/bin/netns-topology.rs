//! Holds a proving-ground topology ([`testkit::topology`]) up for scripts: `scripts/netns`
//! starts it in the background and talks to it through files in a control directory.
//!
//!   netns-topology NAME CONTROL_DIR
//!
//! Once the namespaces and links are up it writes `CONTROL_DIR/ready`. Writing netem-like
//! words ("delay 50ms 10ms loss 1%", "down", "off") to `CONTROL_DIR/b` (or `c`, `d`) changes
//! that link; creating `CONTROL_DIR/stop` tears everything down and exits.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use testkit::netem::Impairment;
use testkit::topology::{TARGETS, Topology};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, name, control] = args.as_slice() else {
        eprintln!("usage: netns-topology NAME CONTROL_DIR");
        return ExitCode::from(2);
    };
    let control = PathBuf::from(control);
    let topo = match Topology::up(name) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("netns-topology: cannot make topology {name}: {}", e.0);
            return ExitCode::from(1);
        }
    };
    if let Err(e) = std::fs::write(control.join("ready"), std::process::id().to_string()) {
        eprintln!("netns-topology: {}: {e}", control.display());
        return ExitCode::from(1);
    }
    let mut seen: Vec<Option<SystemTime>> = vec![None; TARGETS.len()];
    while !control.join("stop").exists() {
        for (i, t) in TARGETS.iter().enumerate() {
            let file = control.join(t);
            let changed = modified(&file);
            if changed.is_none() || changed == seen[i] {
                continue;
            }
            seen[i] = changed;
            let words = std::fs::read_to_string(&file).unwrap_or_default();
            match Impairment::parse(&words) {
                Ok(imp) => {
                    topo.impair(t, imp);
                    eprintln!("netns-topology: link to {t}: {}", words.trim());
                }
                Err(e) => eprintln!("netns-topology: {}: {e}", file.display()),
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(topo);
    ExitCode::SUCCESS
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
