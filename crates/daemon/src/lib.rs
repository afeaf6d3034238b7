//! rtsync's rsync daemon: what `rsync --daemon` does, for stock rsync clients.
//!
//! - [`config`]: rsyncd.conf, parsed as rsync parses it;
//! - [`hosts`]: `hosts allow` / `hosts deny` matching;
//! - [`auth`]: `auth users` and the secrets file;
//! - [`chmod`]: `incoming chmod` / `outgoing chmod` (rsync's `--chmod` strings);
//! - [`args`]: the server argument vector a client sends (`--server -logDtpre.iLsfxCIvu …`);
//! - [`logfmt`]: `log format` (`%t %a %h %m %u %f %b %l %o %i` …);
//! - [`request`]: what a client's argument words ask, refused options refused;
//! - [`conn`]: one connection, from the greeting to the end of its transfer;
//! - [`serve`]: one transfer after the arguments — setup, then the sender or the receiver;
//! - [`shell`]: `rtsync --server`, the far end of a remote-shell transfer;
//! - [`listener`]: the accept loop, `max connections`, stop and reload.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod args;
pub mod auth;
pub mod chmod;
pub mod config;
pub mod conn;
pub mod hosts;
pub mod listener;
pub mod logfmt;
pub mod request;
pub mod serve;
pub mod shell;
pub mod stream;

pub use listener::Slots;

/// Where the daemon's log lines go (the log file, syslog or stderr: the binary decides, and
/// stamps each line with the time and pid as rsync does).
pub trait Log: Send + Sync {
    /// One line, without its newline.
    fn line(&self, text: &str);
    /// One transfer-log line: `format` expanded for an entry sent (`send`), received
    /// (`recv`) or deleted (`del.`).
    fn transfer(&self, entry: &TransferEntry<'_>);
}

/// What a transfer-log line may name.
#[derive(Debug, Clone, Copy)]
pub struct TransferEntry<'a> {
    /// The module's `log format`.
    pub format: &'a str,
    /// `send`, `recv` or `del.`.
    pub op: &'a str,
    /// The module.
    pub module: &'a str,
    /// The module's path.
    pub module_path: &'a str,
    /// The client's host name.
    pub host: &'a str,
    /// The client's address.
    pub addr: &'a str,
    /// The login name (empty without auth).
    pub user: &'a str,
    /// The entry's path in the module.
    pub file: &'a [u8],
    /// Its length.
    pub len: u64,
}

/// The module's own filter rules, in rsync's order: `filter`, `include from`, `include`,
/// `exclude from`, `exclude` (`clientserver.c rsync_module`). A rule that cannot be read or
/// parsed is left out and logged by the caller.
#[must_use]
pub fn module_filters(m: &config::Module) -> filter::FilterList {
    let mut list = filter::FilterList::new();
    let words = |v: &Option<String>| -> Vec<String> {
        v.as_deref()
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    if let Some(f) = &m.filter {
        // Rules are separated by spaces too; a rule and its pattern go together.
        let mut it = f.split_whitespace().peekable();
        while let Some(rule) = it.next() {
            let text = match it.peek() {
                Some(p) if rule.len() <= 2 || rule.contains(',') => {
                    let t = format!("{rule} {p}");
                    it.next();
                    t
                }
                _ => rule.to_owned(),
            };
            let _ = list.add_filter(text.as_bytes(), &mut |_| Err("not read".to_owned()));
        }
    }
    let from_file = |path: &Option<String>| -> Vec<String> {
        path.as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| {
                t.lines()
                    .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    for p in from_file(&m.include_from).iter().chain(&words(&m.include)) {
        let _ = list.add_pattern(p.as_bytes(), true);
    }
    for p in from_file(&m.exclude_from).iter().chain(&words(&m.exclude)) {
        let _ = list.add_pattern(p.as_bytes(), false);
    }
    list
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_example_configuration_parses_without_warnings() {
        let text = include_str!("../../../contrib/rsyncd.conf");
        let config = crate::config::parse(
            text,
            std::path::Path::new("contrib/rsyncd.conf"),
            &|_| None,
            &mut |_| Err(std::io::ErrorKind::NotFound.into()),
        )
        .unwrap();
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let m = config.module("backup_www").unwrap();
        assert!(!m.read_only && !m.list);
        let rules = crate::module_filters(m);
        assert!(rules.is_excluded(b"a.swp", false, filter::Side::Sender));
    }
}
