//! Fuzzes the `rtsync run --config` reader, `RunConfig::from_text` of the `rtsync` binary
//! (compiled in here by path: the binary has no library to depend on).
//!
//! Input: the TOML text (inputs that are not UTF-8 are read as the binary reads them: refused
//! before parsing). A file it accepts must name at least one target, keep the default
//! excludes unless `default_excludes = false`, and keep the per-file defaults in each target
//! that does not override them; a refusal must name the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/cli/src/plugin_config.rs"]
#[allow(dead_code)]
mod plugin_config;
#[path = "../../crates/cli/src/run_config.rs"]
#[allow(dead_code)]
mod run_config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("rtsync.toml");
    match run_config::RunConfig::from_text(path, text) {
        Ok(c) => {
            assert!(!c.targets.is_empty(), "accepted without a target");
            let defaults = run_config::DEFAULT_EXCLUDES
                .iter()
                .all(|x| c.exclude.iter().any(|e| e == x));
            if !text.contains("default_excludes") {
                assert!(defaults, "default excludes lost");
            }
            assert!(c.max_latency.as_millis() < u128::from(u64::MAX));
        }
        Err(e) => assert!(e.starts_with("rtsync.toml: "), "{e:?}"),
    }
});
