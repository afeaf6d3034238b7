//! Fuzzes the rsyncd.conf reader, `daemon::config::parse`, and through it every parameter's
//! own parser (`hosts allow`/`hosts deny`, `auth users`, booleans, numbers, `%VAR%` expansion,
//! `&include`/`&merge`, continuation lines).
//!
//! Input: the file's text (bytes made UTF-8 as the daemon makes a file it reads). `%VAR%`
//! resolves `HOME`, `MODULE`, `SLASH` (`a/b`), `BRACKET` (`x]y`) and `EMPTY`. `&include` and
//! `&merge` read a fixed module text (which sets globals and merges a fixed `*.inc` text of
//! module defaults), or fail with "not found" for a name holding `missing`. No input may
//! panic. An accepted file must give modules with a name that is not empty, holds no `/` or
//! `]` and no whitespace but single inner spaces; module paths without trailing `/` (but `/`);
//! a port that is not 0; warnings on real lines. `&include` must leave the globals as they
//! were: the text after a leading `&include` gives the same globals as the text alone.
#![no_main]

use std::io;
use std::path::Path;

use daemon::config::{self, Config, ConfigError};
use libfuzzer_sys::fuzz_target;

/// What `&include` reads: a module and globals that the include must not leak.
const INCLUDED: &str = "port = 8873\nread only = no\nhosts allow = 10.0.0.0/8\n\
    [included]\n  path = /srv/%MODULE%/\n  &merge defaults.inc\n";
/// What an `*.inc` file holds: module parameters only.
const MERGED: &str = "comment = merged\nauth users = alice, @staff:ro\nrefuse options = delete\n";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = parse(&text) else {
        return;
    };
    check(&config);

    let prefixed = format!("&include fuzz.conf\n{text}");
    let with_include = parse(&prefixed).expect("the included text is valid");
    assert_eq!(
        with_include.global, config.global,
        "the include leaked a global"
    );
});

fn parse(text: &str) -> Result<Config, ConfigError> {
    let env = |name: &str| -> Option<String> {
        match name {
            "HOME" => Some("/home/fuzz".into()),
            "MODULE" => Some("mod".into()),
            "SLASH" => Some("a/b".into()),
            "BRACKET" => Some("x]y".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    };
    let mut include = |path: &Path| -> io::Result<String> {
        let name = path.to_string_lossy();
        if name.contains("missing") {
            Err(io::ErrorKind::NotFound.into())
        } else if name.ends_with(".inc") {
            Ok(MERGED.to_owned())
        } else {
            Ok(INCLUDED.to_owned())
        }
    };
    config::parse(text, Path::new("rsyncd.conf"), &env, &mut include)
}

fn check(config: &Config) {
    assert_ne!(config.global.port, 0);
    for m in &config.modules {
        let name = &m.name;
        assert!(!name.is_empty(), "a module without a name");
        assert!(
            !name.contains(['/', ']']),
            "module name {name:?} holds a `/` or `]`"
        );
        assert_eq!(
            name.split_whitespace().collect::<Vec<_>>().join(" "),
            *name,
            "module name {name:?} is not trimmed"
        );
        if let Some(path) = &m.path {
            assert!(path == "/" || !path.ends_with('/'), "path {path:?}");
            assert!(!path.is_empty());
        }
    }
    for w in &config.warnings {
        assert!(w.line >= 1, "{w}");
    }
}
