//! What `rtsync run` is asked to do, from its command line or from a TOML file
//! (`rtsync run --config rtsync.toml`): one source, its targets and how to treat them.
//!
//! The file's keys mirror the options; unknown keys are an error naming the key and line, so a
//! typo never silently turns a setting off. README shows a complete example.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ArgMatches;
use serde::Deserialize;

use crate::plugin_config::{self, Kind, PluginConfig};

/// Temporary files editors and rsync leave behind: never worth replicating.
pub const DEFAULT_EXCLUDES: &[&str] = &["*.swp", "*.swx", "*~", ".#*", "4913", ".~tmp~"];

/// One replication run, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub source: PathBuf,
    pub targets: Vec<TargetConfig>,
    /// rsync patterns, the default temp-file ones included unless turned off.
    pub exclude: Vec<String>,
    pub initial_sync: bool,
    pub state_dir: Option<PathBuf>,
    pub settle: Duration,
    pub max_latency: Duration,
    /// Under a steady stream, batches through rsync follow each other at least this far apart.
    pub batch_gap: Duration,
    pub resync_interval: Option<Duration>,
    /// A cron expression (five fields, local time) for the periodic compare.
    pub resync_cron: Option<String>,
    /// rsync patterns the periodic compare also skips (sersync's crontabfilter).
    pub resync_exclude: Vec<String>,
    /// Told what lands on targets.
    pub plugins: Vec<PluginConfig>,
    /// Where to serve `/metrics` and `/status` over HTTP.
    pub status_listen: Option<String>,
    /// How many transfers a big batch to a target may go as at once.
    pub workers: usize,
    pub verbose: bool,
}

/// One destination and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    /// Anything `rtsync sync` takes as a destination.
    pub dest: OsString,
    pub password_file: Option<PathBuf>,
    pub compress: bool,
    /// I/O timeout of each transfer, in seconds.
    pub timeout: u64,
    /// Bandwidth limit in KiB per second, as rsync's `--bwlimit` (`None`: none).
    pub bwlimit: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    source: PathBuf,
    #[serde(default, rename = "target")]
    targets: Vec<FileTarget>,
    #[serde(default, rename = "plugin")]
    plugins: Vec<FilePlugin>,
    status_listen: Option<String>,
    #[serde(default = "default_workers")]
    workers: usize,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default = "yes")]
    default_excludes: bool,
    #[serde(default = "yes")]
    initial_sync: bool,
    state_dir: Option<PathBuf>,
    #[serde(default = "default_settle_ms")]
    settle_ms: u64,
    #[serde(default = "default_max_latency_ms")]
    max_latency_ms: u64,
    #[serde(default = "default_batch_gap_ms")]
    batch_gap_ms: u64,
    resync_interval: Option<u64>,
    resync_cron: Option<String>,
    #[serde(default)]
    resync_exclude: Vec<String>,
    #[serde(default)]
    verbose: bool,
    /// Defaults for every target.
    password_file: Option<PathBuf>,
    #[serde(default)]
    compress: bool,
    #[serde(default = "default_timeout")]
    timeout: u64,
    bwlimit: Option<Rate>,
}

/// A `bwlimit` in the file: KiB per second as a number, or rsync's text ("1.5M", "500K").
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Rate {
    Kib(u64),
    Text(String),
}

impl Rate {
    fn kib(&self) -> Result<Option<u64>, String> {
        let kib = match self {
            Rate::Kib(k) => *k,
            Rate::Text(t) => {
                daemon::args::parse_bwlimit(t.as_bytes()).map_err(|e| e.to_string())?
            }
        };
        Ok((kib > 0).then_some(kib))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTarget {
    dest: String,
    password_file: Option<PathBuf>,
    compress: Option<bool>,
    timeout: Option<u64>,
    bwlimit: Option<Rate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePlugin {
    name: Option<String>,
    kind: String,
    command: Option<Vec<String>>,
    after: Option<Vec<String>>,
    paths_per_run: Option<usize>,
    stdin: Option<bool>,
    url: Option<String>,
    address: Option<String>,
    #[serde(default)]
    include: Vec<String>,
    deletes: Option<bool>,
    #[serde(default)]
    targets: Vec<String>,
    timeout_ms: Option<u64>,
}

/// How long a plugin call may take unless its `timeout_ms` says otherwise.
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(10);

impl FilePlugin {
    fn check(self, n: usize) -> Result<PluginConfig, String> {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("{}#{}", self.kind, n + 1));
        let only = |what: &str, set: bool| {
            if set {
                Err(format!(
                    "plugin {name}: {what} is not a key of a {} plugin",
                    self.kind
                ))
            } else {
                Ok(())
            }
        };
        let kind = match self.kind.as_str() {
            "command" => {
                only("url", self.url.is_some())?;
                only("address", self.address.is_some())?;
                let argv = self
                    .command
                    .clone()
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "plugin {name}: a command plugin needs command = [\"program\", ...]"
                        )
                    })?;
                Kind::Command {
                    argv: argv.into_iter().map(OsString::from).collect(),
                    after: self
                        .after
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .map(OsString::from)
                        .collect(),
                    per_run: self.paths_per_run.unwrap_or(1000).max(1),
                    stdin: self.stdin.unwrap_or(false),
                }
            }
            "http" => {
                only("command", self.command.is_some())?;
                only("address", self.address.is_some())?;
                let url = self
                    .url
                    .as_deref()
                    .ok_or_else(|| format!("plugin {name}: an http plugin needs url"))?;
                plugin_config::parse_url(url).map_err(|e| format!("plugin {name}: {e}"))?
            }
            "socket" => {
                only("command", self.command.is_some())?;
                only("url", self.url.is_some())?;
                let address = self.address.clone().ok_or_else(|| {
                    format!("plugin {name}: a socket plugin needs address = \"host:port\"")
                })?;
                Kind::Socket { address }
            }
            other => {
                return Err(format!(
                    "plugin {name}: kind {other:?} is not one of command, http, socket"
                ));
            }
        };
        // sersync's command plugin hears of what was made or changed; a CDN wants deletions.
        let deletes = self
            .deletes
            .unwrap_or(!matches!(kind, Kind::Command { .. }));
        Ok(PluginConfig {
            name,
            kind,
            include: self.include,
            deletes,
            targets: self.targets.into_iter().map(OsString::from).collect(),
            timeout: self
                .timeout_ms
                .map_or(PLUGIN_TIMEOUT, Duration::from_millis),
        })
    }
}

/// sersync's `-n` is 10 threads for all targets; 4 transfers per target go further on
/// small machines, and only batches of a thousand paths or more are split at all.
pub const DEFAULT_WORKERS: usize = 4;

fn default_workers() -> usize {
    DEFAULT_WORKERS
}

fn yes() -> bool {
    true
}
fn default_settle_ms() -> u64 {
    20
}
fn default_max_latency_ms() -> u64 {
    200
}
fn default_batch_gap_ms() -> u64 {
    500
}
fn default_timeout() -> u64 {
    15
}

/// A cron expression that parses, or an error naming where it came from.
fn checked_cron(from: &Path, cron: Option<String>) -> Result<Option<String>, String> {
    if let Some(c) = &cron {
        <croner::Cron as std::str::FromStr>::from_str(c)
            .map_err(|e| format!("resync cron {c:?}: {e}"))
            .map_err(|e| format!("{}: {e}", from.display()))?;
    }
    Ok(cron)
}

fn with_defaults(mut exclude: Vec<String>, defaults: bool) -> Vec<String> {
    if defaults {
        exclude.extend(DEFAULT_EXCLUDES.iter().map(|s| (*s).to_string()));
    }
    exclude
}

impl RunConfig {
    /// Reads a TOML config file.
    ///
    /// # Errors
    /// A message naming the file, and the line and key for a bad value or unknown key.
    pub fn from_file(path: &Path) -> Result<RunConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_text(path, &text)
    }

    /// The same from the text of such a file; `path` names it in messages (the fuzz target
    /// `run_config` calls this with text of its own).
    ///
    /// # Errors
    /// As [`RunConfig::from_file`], but for reading the file.
    pub fn from_text(path: &Path, text: &str) -> Result<RunConfig, String> {
        let f: File = toml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
        if f.targets.is_empty() {
            return Err(format!(
                "{}: no [[target]] given: where should {} go?",
                path.display(),
                f.source.display()
            ));
        }
        let targets = f
            .targets
            .into_iter()
            .map(|t| {
                let bwlimit = match t.bwlimit.as_ref().or(f.bwlimit.as_ref()) {
                    Some(rate) => rate
                        .kib()
                        .map_err(|e| format!("{}: target {:?}: {e}", path.display(), t.dest))?,
                    None => None,
                };
                Ok(TargetConfig {
                    dest: t.dest.into(),
                    password_file: t.password_file.or_else(|| f.password_file.clone()),
                    compress: t.compress.unwrap_or(f.compress),
                    timeout: t.timeout.unwrap_or(f.timeout),
                    bwlimit,
                })
            })
            .collect::<Result<_, String>>()?;
        let plugins = f
            .plugins
            .into_iter()
            .enumerate()
            .map(|(n, p)| p.check(n))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(RunConfig {
            plugins,
            status_listen: f.status_listen,
            workers: f.workers.clamp(1, 64),
            source: f.source,
            targets,
            exclude: with_defaults(f.exclude, f.default_excludes),
            initial_sync: f.initial_sync,
            state_dir: f.state_dir,
            settle: Duration::from_millis(f.settle_ms),
            max_latency: Duration::from_millis(f.max_latency_ms),
            batch_gap: Duration::from_millis(f.batch_gap_ms),
            resync_interval: f.resync_interval.map(Duration::from_secs),
            resync_cron: checked_cron(path, f.resync_cron)?,
            resync_exclude: f.resync_exclude,
            verbose: f.verbose,
        })
    }

    /// The same from `rtsync run`'s command line.
    ///
    /// # Errors
    /// When SRC or DEST is missing.
    pub fn from_args(m: &ArgMatches) -> Result<RunConfig, String> {
        let source: PathBuf = m
            .get_one::<PathBuf>("src")
            .cloned()
            .ok_or("SRC and at least one DEST are required (or --config FILE)")?;
        let timeout = m.get_one::<u64>("timeout").copied().unwrap_or(15);
        let targets: Vec<TargetConfig> = m
            .get_many::<OsString>("dest")
            .into_iter()
            .flatten()
            .map(|d| TargetConfig {
                dest: d.clone(),
                password_file: m.get_one::<PathBuf>("password-file").cloned(),
                compress: m.get_flag("compress"),
                timeout,
                bwlimit: m.get_one::<u64>("bwlimit").copied().filter(|&k| k > 0),
            })
            .collect();
        if targets.is_empty() {
            return Err("at least one DEST is required".to_string());
        }
        let exclude: Vec<String> = m
            .get_many::<String>("exclude")
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        Ok(RunConfig {
            source,
            targets,
            exclude: with_defaults(exclude, !m.get_flag("no-default-excludes")),
            initial_sync: !m.get_flag("no-initial-sync"),
            state_dir: m.get_one::<PathBuf>("state-dir").cloned(),
            settle: Duration::from_millis(m.get_one::<u64>("settle").copied().unwrap_or(20)),
            max_latency: Duration::from_millis(
                m.get_one::<u64>("max-latency").copied().unwrap_or(200),
            ),
            batch_gap: Duration::from_millis(m.get_one::<u64>("batch-gap").copied().unwrap_or(500)),
            resync_interval: m
                .get_one::<u64>("resync-interval")
                .map(|s| Duration::from_secs(*s)),
            resync_cron: checked_cron(
                Path::new("--resync-cron"),
                m.get_one::<String>("resync-cron").cloned(),
            )?,
            resync_exclude: Vec::new(),
            plugins: Vec::new(),
            status_listen: m.get_one::<String>("status-listen").cloned(),
            workers: m
                .get_one::<usize>("workers")
                .copied()
                .unwrap_or(DEFAULT_WORKERS),
            verbose: m.get_flag("verbose"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RunConfig, String> {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("rtsync.toml");
        std::fs::write(&p, text).unwrap();
        RunConfig::from_file(&p)
    }

    #[test]
    fn a_full_file_with_per_target_overrides() {
        let c = parse(
            r#"
source = "/var/www/html"
exclude = ["*.tmp", "/cache/"]
resync_interval = 3600
password_file = "/etc/rtsync.pass"
timeout = 30

[[target]]
dest = "backup@10.0.0.2::www"
compress = true

[[target]]
dest = "/mnt/mirror/www/"
timeout = 5
"#,
        )
        .unwrap();
        assert_eq!(c.targets.len(), 2);
        assert!(c.targets[0].compress && !c.targets[1].compress);
        assert_eq!(c.targets[0].timeout, 30);
        assert_eq!(c.targets[1].timeout, 5);
        assert_eq!(
            c.targets[1].password_file.as_deref(),
            Some(Path::new("/etc/rtsync.pass"))
        );
        assert_eq!(c.resync_interval, Some(Duration::from_secs(3600)));
        assert!(c.exclude.contains(&"/cache/".to_string()));
        assert!(c.exclude.contains(&"*.swp".to_string()));
        assert!(c.initial_sync);
    }

    #[test]
    fn bandwidth_limits_as_numbers_or_rsync_text_per_target() {
        let c = parse(
            "source = \"/a\"\nbwlimit = \"1.5M\"\n[[target]]\ndest = \"h::m\"\n\
             [[target]]\ndest = \"h::n\"\nbwlimit = 300\n[[target]]\ndest = \"h::o\"\nbwlimit = 0\n",
        )
        .unwrap();
        let limits: Vec<_> = c.targets.iter().map(|t| t.bwlimit).collect();
        assert_eq!(limits, [Some(1536), Some(300), None]);
        let e = parse("source = \"/a\"\n[[target]]\ndest = \"h::m\"\nbwlimit = \"fast\"\n")
            .unwrap_err();
        assert!(e.contains("h::m") && e.contains("bwlimit"), "{e}");
    }

    #[test]
    fn a_cron_schedule_and_its_own_excludes() {
        let c = parse(
            "source = \"/a\"\nresync_cron = \"0 3 * * *\"\nresync_exclude = [\"/big/\"]\n[[target]]\ndest = \"/b\"\n",
        )
        .unwrap();
        assert_eq!(c.resync_cron.as_deref(), Some("0 3 * * *"));
        assert_eq!(c.resync_exclude, ["/big/"]);
        let e = parse("source = \"/a\"\nresync_cron = \"every day\"\n[[target]]\ndest = \"/b\"\n")
            .unwrap_err();
        assert!(e.contains("every day"), "{e}");
    }

    #[test]
    fn the_batch_gap_defaults_to_half_a_second() {
        let c = parse("source = \"/a\"\n[[target]]\ndest = \"/b\"\n").unwrap();
        assert_eq!(c.batch_gap, Duration::from_millis(500));
        let c = parse("source = \"/a\"\nbatch_gap_ms = 0\n[[target]]\ndest = \"/b\"\n").unwrap();
        assert_eq!(c.batch_gap, Duration::ZERO);
    }

    #[test]
    fn typos_and_missing_targets_are_errors_that_say_where() {
        let e = parse("source = \"/a\"\nsettle = 5\n[[target]]\ndest = \"/b\"\n").unwrap_err();
        assert!(e.contains("settle") && e.contains("line 2"), "{e}");
        let e = parse("source = \"/a\"\n").unwrap_err();
        assert!(e.contains("no [[target]]"), "{e}");
    }
}
