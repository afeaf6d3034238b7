//! Fuzzes sersync's `confxml.xml` reader, `sersync::parse` of the `rtsync` binary (compiled in
//! here by path with `run_config.rs`, whose types it fills: the binary has no library to
//! depend on, and the crate graph stays one-way).
//!
//! Input: the file's bytes (any encoding: the reader takes them as lossy UTF-8). A file it
//! accepts must give a source, at least one target, each target a destination `rtsync sync`
//! can be given (`ip::name`, `rsync://ip:port/name/` or `ip:name`), a timeout, sersync's
//! default excludes, and a periodic compare of at least a minute; a refusal must name the
//! file,
//! and malformed XML its line.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/cli/src/plugin_config.rs"]
#[allow(dead_code)]
mod plugin_config;
#[path = "../../crates/cli/src/run_config.rs"]
#[allow(dead_code)]
mod run_config;
#[path = "../../crates/cli/src/sersync.rs"]
#[allow(dead_code)]
mod sersync;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("confxml.xml");
    match sersync::parse(path, data) {
        Ok(m) => {
            let c = &m.config;
            assert!(!c.targets.is_empty(), "accepted without a target");
            for t in &c.targets {
                let dest = t.dest.to_string_lossy();
                assert!(
                    dest.contains("::") || dest.starts_with("rsync://") || dest.contains(':'),
                    "{dest:?}"
                );
            }
            for x in run_config::DEFAULT_EXCLUDES {
                assert!(c.exclude.iter().any(|e| e == x), "default exclude {x} lost");
            }
            assert!(c.exclude.iter().all(|e| !e.is_empty()));
            if let Some(every) = c.resync_interval {
                assert!(every.as_secs() >= 60, "{every:?}");
            }
            for w in &m.warnings {
                assert!(!w.is_empty());
            }
        }
        Err(e) => {
            // `confxml.xml: what`, or `confxml.xml:LINE: what` for malformed XML.
            let rest = e.strip_prefix("confxml.xml:").expect("the file is named");
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            assert!(
                rest.starts_with(' ') || (digits > 0 && rest[digits..].starts_with(": ")),
                "{e:?}"
            );
            if e.contains("malformed XML") {
                assert!(digits > 0, "no line in {e:?}");
            }
        }
    }
});
