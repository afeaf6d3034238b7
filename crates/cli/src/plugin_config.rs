//! What a plugin of `rtsync run` is configured to do (see `plugins.rs` for how it runs): plain
//! data, read by `run_config.rs` and `sersync.rs`, which the fuzz targets compile by path, so
//! this module needs nothing but std.

use std::ffi::OsString;
use std::time::Duration;

/// What a plugin does with the paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Runs `argv`, the paths (absolute) appended, then `after`; `per_run` paths at most per
    /// run, or all of them NUL-terminated on its standard input with `stdin`.
    Command {
        argv: Vec<OsString>,
        after: Vec<OsString>,
        per_run: usize,
        stdin: bool,
    },
    /// POSTs `{"target": ..., "paths": [...], "deleted": [...]}` (paths relative to the
    /// source) to `http://host:port/path`.
    Http {
        host: String,
        port: u16,
        path: String,
    },
    /// Connects to `address` and writes the paths (relative), one per line.
    Socket { address: String },
}

/// One plugin as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    pub name: String,
    pub kind: Kind,
    /// rsync patterns: when given, only paths matching one are told.
    pub include: Vec<String>,
    /// Whether deleted paths (and a rename's old name) are told too.
    pub deletes: bool,
    /// The targets whose landings it follows (by `dest`); empty: all.
    pub targets: Vec<OsString>,
    pub timeout: Duration,
}

/// Parses `http://host[:port]/path`.
///
/// # Errors
/// Another scheme (https included: see the module doc), or no host.
pub fn parse_url(url: &str) -> Result<Kind, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// URLs are supported (no TLS)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("{url:?}: bad port {p:?}"))?,
        ),
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    Ok(Kind::Http {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_parse_and_https_is_refused() {
        assert_eq!(
            parse_url("http://cdn.example:8080/purge?x=1").unwrap(),
            Kind::Http {
                host: "cdn.example".into(),
                port: 8080,
                path: "/purge?x=1".into()
            }
        );
        assert_eq!(
            parse_url("http://127.0.0.1").unwrap(),
            Kind::Http {
                host: "127.0.0.1".into(),
                port: 80,
                path: "/".into()
            }
        );
        assert!(
            parse_url("https://cdn.example/")
                .unwrap_err()
                .contains("http://")
        );
        assert!(parse_url("http://:80/").is_err());
        assert!(parse_url("http://h:99999/").is_err());
    }
}
