//! rsyncd.conf, read the way rsync's daemon reads it.
//!
//! This module owns the file format and every parameter's type and default; it decides nothing
//! about connections. [`parse`] / [`parse_with`] are pure (the caller supplies the environment
//! and the reader for `&include` / `&merge`); [`load`] reads from disk.
//!
//! The format, as rsync's `params.c` and `loadparm.c` define it:
//!
//! - Lines: blank, comment (first non-blank character `#` or `;`), section header `[name]`
//!   (the rest of that line is ignored), directive (`&include FILE`, `&merge FILE`), or
//!   `name = value`. A line whose last non-blank character is `\` continues on the next line.
//!   A line with no `=` is ignored with a warning, as rsync ignores it — so the tutorials'
//!   bare `ignore errors` turns nothing on, in rsync or here.
//! - Parameter names ignore case and whitespace (`read only` = `READONLY`); underscores are
//!   *not* ignored (`read_only` is unknown to rsync, so it is a warning here too).
//!   An unknown parameter, or a global-only one inside a module, is a warning.
//! - Parameters before the first module, or after a `[global]` header, are globals; module
//!   parameters there are defaults for the modules that *follow* (a module copies the
//!   defaults in force where it starts). A module header repeating an earlier name (compared
//!   like parameter names) reopens that module. Names may not contain `/`.
//! - `%VAR%` (a `%`, an upper-case letter, up to the next `%`) is replaced by the variable's
//!   value; an unset variable or any other `%` is left as written. rsync expands string values
//!   when first used so that per-connection variables (`RSYNC_USER_NAME`, …) work; here every
//!   value is expanded while parsing, and references that stay unresolved remain for the
//!   daemon to expand per connection with [`expand_vars`].
//! - `&include` reads a file (or, through [`ConfigSource`], every `*.conf` in a directory,
//!   sorted) starting from the global context, and restores all global values afterwards:
//!   included files define modules without side effects. `&merge` (directories: `*.inc`)
//!   reads the text as if it stood in place of the directive. A relative path is taken from
//!   the including file's directory (rsync uses its working directory).
//!
//! Stricter than rsync, where rsync silently keeps the old value: a bad boolean or number,
//! a malformed `hosts allow`/`hosts deny` entry, an unknown `auth users` option or
//! `auth digest` is a [`ConfigError::Syntax`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use protocol::daemon::AuthDigest;

use crate::auth::{AuthUser, parse_auth_users};
use crate::hosts::{self, HostPattern};

/// rsync's default `lock file`.
pub const DEFAULT_LOCK_FILE: &str = "/var/run/rsyncd.lock";
/// rsync's default `log format`.
pub const DEFAULT_LOG_FORMAT: &str = "%o %h [%a] %m (%u) %f %l";
/// The port when `port` is unset or 0.
pub const DEFAULT_PORT: u16 = 873;
/// rsync's default `dont compress` list (from rsync(1)'s `--skip-compress` section).
pub const DEFAULT_DONT_COMPRESS: &str = "*.3g2 *.3gp *.7z *.aac *.ace *.apk *.avi *.bz2 *.deb \
    *.dmg *.ear *.f4v *.flac *.flv *.gpg *.gz *.iso *.jar *.jpeg *.jpg *.lrz *.lz *.lz4 *.lzma \
    *.lzo *.m1a *.m1v *.m2a *.m2ts *.m2v *.m4a *.m4b *.m4p *.m4r *.m4v *.mka *.mkv *.mov *.mp1 \
    *.mp2 *.mp3 *.mp4 *.mpa *.mpeg *.mpg *.mpv *.mts *.odb *.odf *.odg *.odi *.odm *.odp *.ods \
    *.odt *.oga *.ogg *.ogm *.ogv *.ogx *.opus *.otg *.oth *.otp *.ots *.ott *.oxt *.png *.qt \
    *.rar *.rpm *.rz *.rzip *.spx *.squashfs *.sxc *.sxd *.sxg *.sxm *.sxw *.sz *.tbz *.tbz2 \
    *.tgz *.tlz *.ts *.txz *.tzo *.vob *.war *.webm *.webp *.xz *.z *.zip *.zst";

/// rsync has no limit and recurses until it runs out of stack on an include loop.
const MAX_INCLUDE_DEPTH: usize = 16;

/// The syslog facility names rsync knows (a positive number is accepted too).
const SYSLOG_FACILITIES: &[&str] = &[
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "security",
    "syslog", "user", "uucp", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
];

/// A parsed rsyncd.conf.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Daemon-wide settings, and the module defaults in force at the end of the file.
    pub global: Global,
    /// The modules, in the order they were first defined.
    pub modules: Vec<Module>,
    /// Lines rsync would log and skip (unknown parameters, lines without `=`, …).
    pub warnings: Vec<Warning>,
}

impl Config {
    /// The module a client asks for by this exact name (rsync compares case-sensitively here).
    #[must_use]
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.iter().find(|m| m.name == name)
    }
}

/// Daemon-wide parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// `motd file`: text sent to every client after the greeting.
    pub motd_file: Option<String>,
    /// `pid file`.
    pub pid_file: Option<String>,
    /// `port` (873 when unset or 0).
    pub port: u16,
    /// `address`: the address to listen on.
    pub address: Option<String>,
    /// `socket options`, as for `--sockopts`.
    pub socket_options: Option<String>,
    /// `daemon chroot`.
    pub daemon_chroot: Option<String>,
    /// `daemon uid`.
    pub daemon_uid: Option<String>,
    /// `daemon gid`.
    pub daemon_gid: Option<String>,
    /// `listen backlog` (5).
    pub listen_backlog: i32,
    /// `proxy protocol` (no).
    pub proxy_protocol: bool,
    /// `proxy protocol hosts`: peers trusted to send a proxy header.
    pub proxy_protocol_hosts: Vec<HostPattern>,
    /// Module parameters as set in the global context at the end of the file: what rsync uses
    /// before a module is chosen (`log file`, `reverse lookup`, `syslog facility`, …). Its
    /// `name` is empty.
    pub defaults: Module,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            motd_file: None,
            pid_file: None,
            port: DEFAULT_PORT,
            address: None,
            socket_options: None,
            daemon_chroot: None,
            daemon_uid: None,
            daemon_gid: None,
            listen_backlog: 5,
            proxy_protocol: false,
            proxy_protocol_hosts: Vec::new(),
            defaults: Module::default(),
        }
    }
}

/// One `[module]` and its parameters (rsync's defaults where not set).
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    /// The name clients ask for.
    pub name: String,
    /// `path`, with trailing slashes removed; a `/./` in it splits chroot dir and inner path.
    pub path: Option<String>,
    /// `comment`, shown in module listings.
    pub comment: Option<String>,
    /// `read only` (yes).
    pub read_only: bool,
    /// `write only` (no).
    pub write_only: bool,
    /// `list` (yes).
    pub list: bool,
    /// `uid`: user name or id for transfers (rsync's default when root: `nobody`).
    pub uid: Option<String>,
    /// `gid`: group list for transfers, see [`Module::gid_list`] (default when root: the
    /// system's `nobody`/`nogroup`).
    pub gid: Option<String>,
    /// `use chroot`: `None` (rsync 3.2.7+ default) tries a chroot and carries on without one.
    pub use_chroot: Option<bool>,
    /// `numeric ids`, `None` = unset; see [`Module::numeric_ids`].
    pub numeric_ids: Option<bool>,
    /// `munge symlinks`, `None` = unset; see [`Module::munge_symlinks`].
    pub munge_symlinks: Option<bool>,
    /// `open noatime`, `None` = unset (the client's `--open-noatime` decides).
    pub open_noatime: Option<bool>,
    /// `max connections`: 0 is unlimited, negative disables the module.
    pub max_connections: i32,
    /// `lock file`.
    pub lock_file: String,
    /// `auth users`; empty means anonymous access.
    pub auth_users: Vec<AuthUser>,
    /// `secrets file`.
    pub secrets_file: Option<String>,
    /// `strict modes` (yes).
    pub strict_modes: bool,
    /// `auth digest`: the weakest digest a login may use.
    pub auth_digest: Option<AuthDigest>,
    /// `hosts allow`; empty means unset.
    pub hosts_allow: Vec<HostPattern>,
    /// `hosts deny`; empty means unset.
    pub hosts_deny: Vec<HostPattern>,
    /// `reverse lookup` (yes).
    pub reverse_lookup: bool,
    /// `forward lookup` (yes).
    pub forward_lookup: bool,
    /// `ignore errors` (no).
    pub ignore_errors: bool,
    /// `ignore nonreadable` (no).
    pub ignore_nonreadable: bool,
    /// `timeout` in seconds (0 = none).
    pub timeout: u32,
    /// `log file`; unset means syslog.
    pub log_file: Option<String>,
    /// `log format`.
    pub log_format: String,
    /// `transfer logging` (no).
    pub transfer_logging: bool,
    /// `syslog facility` ("daemon").
    pub syslog_facility: String,
    /// `syslog tag` ("rsyncd").
    pub syslog_tag: String,
    /// `exclude`, raw (space-separated daemon exclude patterns).
    pub exclude: Option<String>,
    /// `include`, raw.
    pub include: Option<String>,
    /// `filter`, raw (daemon filter rules).
    pub filter: Option<String>,
    /// `exclude from`: a file of daemon exclude patterns.
    pub exclude_from: Option<String>,
    /// `include from`: a file of daemon include patterns.
    pub include_from: Option<String>,
    /// `refuse options`, split on spaces (`!` negations kept).
    pub refuse_options: Vec<String>,
    /// `incoming chmod`, raw `--chmod` rules.
    pub incoming_chmod: Option<String>,
    /// `outgoing chmod`, raw `--chmod` rules.
    pub outgoing_chmod: Option<String>,
    /// `dont compress`, split on spaces.
    pub dont_compress: Vec<String>,
    /// `max verbosity` (1).
    pub max_verbosity: i32,
    /// `fake super` (no).
    pub fake_super: bool,
    /// `insecure links` (no; rsync 3.5.0).
    pub insecure_links: bool,
    /// `charset`: the module's filename charset for `--iconv`.
    pub charset: Option<String>,
    /// `temp dir`.
    pub temp_dir: Option<String>,
    /// `early exec` command.
    pub early_exec: Option<String>,
    /// `pre-xfer exec` command.
    pub pre_xfer_exec: Option<String>,
    /// `post-xfer exec` command.
    pub post_xfer_exec: Option<String>,
    /// `name converter` command.
    pub name_converter: Option<String>,
}

impl Default for Module {
    fn default() -> Self {
        Module {
            name: String::new(),
            path: None,
            comment: None,
            read_only: true,
            write_only: false,
            list: true,
            uid: None,
            gid: None,
            use_chroot: None,
            numeric_ids: None,
            munge_symlinks: None,
            open_noatime: None,
            max_connections: 0,
            lock_file: DEFAULT_LOCK_FILE.to_owned(),
            auth_users: Vec::new(),
            secrets_file: None,
            strict_modes: true,
            auth_digest: None,
            hosts_allow: Vec::new(),
            hosts_deny: Vec::new(),
            reverse_lookup: true,
            forward_lookup: true,
            ignore_errors: false,
            ignore_nonreadable: false,
            timeout: 0,
            log_file: None,
            log_format: DEFAULT_LOG_FORMAT.to_owned(),
            transfer_logging: false,
            syslog_facility: "daemon".to_owned(),
            syslog_tag: "rsyncd".to_owned(),
            exclude: None,
            include: None,
            filter: None,
            exclude_from: None,
            include_from: None,
            refuse_options: Vec::new(),
            incoming_chmod: None,
            outgoing_chmod: None,
            dont_compress: space_list(DEFAULT_DONT_COMPRESS),
            max_verbosity: 1,
            fake_super: false,
            insecure_links: false,
            charset: None,
            temp_dir: None,
            early_exec: None,
            pre_xfer_exec: None,
            post_xfer_exec: None,
            name_converter: None,
        }
    }
}

impl Module {
    /// Whether `path` has a `/./` chroot split with a non-root inner part.
    fn inner_path(&self) -> bool {
        self.path
            .as_deref()
            .and_then(|p| p.split_once("/./"))
            .is_some_and(|(_, inner)| !inner.trim_matches('/').is_empty())
    }

    /// Whether a failed chroot must refuse the transfer: `use chroot = yes`, or unset with a
    /// `/./` in `path`. Otherwise an unset `use chroot` tries and carries on.
    #[must_use]
    pub fn chroot_required(&self) -> bool {
        match self.use_chroot {
            Some(required) => required,
            None => self.path.as_deref().is_some_and(|p| p.contains("/./")),
        }
    }

    /// `munge symlinks` in effect, given whether the transfer did chroot: when unset, on
    /// unless the module is chrooted straight into its path (no inner `/./` part).
    #[must_use]
    pub fn munge_symlinks(&self, chrooted: bool) -> bool {
        self.munge_symlinks
            .unwrap_or(!chrooted || self.inner_path())
    }

    /// `numeric ids` in effect, given whether the transfer did chroot: when unset, on for a
    /// chrooted module without a `name converter`, off otherwise.
    #[must_use]
    pub fn numeric_ids(&self, chrooted: bool) -> bool {
        if chrooted {
            self.numeric_ids != Some(false) && self.name_converter.is_none()
        } else {
            self.numeric_ids == Some(true)
        }
    }

    /// The `gid` value as a list: split on spaces and commas, or on commas only when it starts
    /// with one. A leading `*` stands for all of the transfer user's groups.
    #[must_use]
    pub fn gid_list(&self) -> Vec<&str> {
        self.gid.as_deref().map(conf_list).unwrap_or_default()
    }
}

/// A line rsync would log and skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file it is in.
    pub file: PathBuf,
    /// Its line number, from 1.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is malformed at this line.
    #[error("{}:{line}: {message}", file.display())]
    Syntax {
        /// The file (the included one when the error is in an included file).
        file: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The configuration file cannot be read.
    #[error("cannot read {}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Where `&include` and `&merge` read from.
pub trait ConfigSource {
    /// The text of a file.
    fn read(&mut self, path: &Path) -> io::Result<String>;
    /// The names of the entries of `path` if it is a directory, `None` if it is a file.
    fn dir_entries(&mut self, path: &Path) -> io::Result<Option<Vec<String>>>;
}

/// Files only, through a closure.
struct ClosureSource<'a>(&'a mut dyn FnMut(&Path) -> io::Result<String>);

impl ConfigSource for ClosureSource<'_> {
    fn read(&mut self, path: &Path) -> io::Result<String> {
        (self.0)(path)
    }

    fn dir_entries(&mut self, _path: &Path) -> io::Result<Option<Vec<String>>> {
        Ok(None)
    }
}

/// The filesystem.
struct FsSource;

impl ConfigSource for FsSource {
    fn read(&mut self, path: &Path) -> io::Result<String> {
        // Comments in old configs are often Latin-1; they must not make the file unreadable.
        Ok(String::from_utf8_lossy(&std::fs::read(path)?).into_owned())
    }

    fn dir_entries(&mut self, path: &Path) -> io::Result<Option<Vec<String>>> {
        if !std::fs::metadata(path)?.is_dir() {
            return Ok(None);
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(Some(names))
    }
}

/// Parses rsyncd.conf text. `file` names it in messages and anchors relative includes; `env`
/// resolves `%VAR%`; `include` reads `&include`/`&merge` files (directories are not
/// supported this way: use [`parse_with`]).
pub fn parse(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    include: &mut dyn FnMut(&Path) -> io::Result<String>,
) -> Result<Config, ConfigError> {
    parse_with(text, file, env, &mut ClosureSource(include))
}

/// [`parse`], reading includes (files and directories) through `source`.
pub fn parse_with(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    source: &mut dyn ConfigSource,
) -> Result<Config, ConfigError> {
    let mut parser = Parser {
        env,
        source,
        global: Global::default(),
        modules: Vec::new(),
        current: None,
        warnings: Vec::new(),
        depth: 0,
    };
    parser.process(text, file)?;
    Ok(Config {
        global: parser.global,
        modules: parser.modules,
        warnings: parser.warnings,
    })
}

/// Reads and parses a configuration file from disk, with the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = FsSource.read(path).map_err(|source| ConfigError::Io {
        file: path.to_owned(),
        source,
    })?;
    let env = |name: &str| std::env::var(name).ok();
    parse_with(&text, path, &env, &mut FsSource)
}

/// Replaces `%VAR%` references whose variable `env` knows; anything else stays as written
/// (rsync: an unset variable must not turn `path = /home/%X%` into `/home/`).
#[must_use]
pub fn expand_vars(value: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some((before, after)) = rest.split_once('%') {
        out.push_str(before);
        let starts_name = after.bytes().next().is_some_and(|b| b.is_ascii_uppercase());
        let expansion = starts_name
            .then(|| after.split_once('%'))
            .flatten()
            .and_then(|(name, tail)| env(name).map(|v| (v, tail)));
        match expansion {
            Some((v, tail)) => {
                out.push_str(&v);
                rest = tail;
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Splits a list value as rsync's `conf_strtok` does: on whitespace and commas, or, when the
/// value starts with a comma, on commas only with each item trimmed. Empty items are dropped.
#[must_use]
pub fn conf_list(value: &str) -> Vec<&str> {
    let value = value.trim_start();
    match value.strip_prefix(',') {
        Some(rest) => rest
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
        None => value
            .split([' ', ',', '\t', '\r', '\n'])
            .filter(|s| !s.is_empty())
            .collect(),
    }
}

fn space_list(value: &str) -> Vec<String> {
    value.split_ascii_whitespace().map(str::to_owned).collect()
}

/// Case- and whitespace-insensitive equality, rsync's rule for parameter and module names.
fn loose_eq(a: &str, b: &str) -> bool {
    let mut a = a.chars().filter(|c| !c.is_whitespace());
    let mut b = b.chars().filter(|c| !c.is_whitespace());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(&y) => {}
            _ => return false,
        }
    }
}

/// Every parameter rsync 3.5.0 knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    // Global only.
    MotdFile,
    PidFile,
    Port,
    Address,
    SocketOptions,
    DaemonChroot,
    DaemonUid,
    DaemonGid,
    ListenBacklog,
    ProxyProtocol,
    ProxyProtocolHosts,
    // Module (or module default in the global context).
    Name,
    Path,
    Comment,
    ReadOnly,
    WriteOnly,
    List,
    Uid,
    Gid,
    UseChroot,
    NumericIds,
    MungeSymlinks,
    OpenNoatime,
    MaxConnections,
    LockFile,
    AuthUsers,
    SecretsFile,
    StrictModes,
    AuthDigest,
    HostsAllow,
    HostsDeny,
    ReverseLookup,
    ForwardLookup,
    IgnoreErrors,
    IgnoreNonreadable,
    Timeout,
    LogFile,
    LogFormat,
    TransferLogging,
    SyslogFacility,
    SyslogTag,
    Exclude,
    Include,
    Filter,
    ExcludeFrom,
    IncludeFrom,
    RefuseOptions,
    IncomingChmod,
    OutgoingChmod,
    DontCompress,
    MaxVerbosity,
    FakeSuper,
    InsecureLinks,
    Charset,
    TempDir,
    EarlyExec,
    PreXferExec,
    PostXferExec,
    NameConverter,
}

/// Each parameter under the name rsync documents.
const PARAMS: &[(&str, Param)] = &[
    ("motd file", Param::MotdFile),
    ("pid file", Param::PidFile),
    ("port", Param::Port),
    ("address", Param::Address),
    ("socket options", Param::SocketOptions),
    ("daemon chroot", Param::DaemonChroot),
    ("daemon uid", Param::DaemonUid),
    ("daemon gid", Param::DaemonGid),
    ("listen backlog", Param::ListenBacklog),
    ("proxy protocol", Param::ProxyProtocol),
    ("proxy protocol hosts", Param::ProxyProtocolHosts),
    ("name", Param::Name),
    ("path", Param::Path),
    ("comment", Param::Comment),
    ("read only", Param::ReadOnly),
    ("write only", Param::WriteOnly),
    ("list", Param::List),
    ("uid", Param::Uid),
    ("gid", Param::Gid),
    ("use chroot", Param::UseChroot),
    ("numeric ids", Param::NumericIds),
    ("munge symlinks", Param::MungeSymlinks),
    ("open noatime", Param::OpenNoatime),
    ("max connections", Param::MaxConnections),
    ("lock file", Param::LockFile),
    ("auth users", Param::AuthUsers),
    ("secrets file", Param::SecretsFile),
    ("strict modes", Param::StrictModes),
    ("auth digest", Param::AuthDigest),
    ("hosts allow", Param::HostsAllow),
    ("hosts deny", Param::HostsDeny),
    ("reverse lookup", Param::ReverseLookup),
    ("forward lookup", Param::ForwardLookup),
    ("ignore errors", Param::IgnoreErrors),
    ("ignore nonreadable", Param::IgnoreNonreadable),
    ("timeout", Param::Timeout),
    ("log file", Param::LogFile),
    ("log format", Param::LogFormat),
    ("transfer logging", Param::TransferLogging),
    ("syslog facility", Param::SyslogFacility),
    ("syslog tag", Param::SyslogTag),
    ("exclude", Param::Exclude),
    ("include", Param::Include),
    ("filter", Param::Filter),
    ("exclude from", Param::ExcludeFrom),
    ("include from", Param::IncludeFrom),
    ("refuse options", Param::RefuseOptions),
    ("incoming chmod", Param::IncomingChmod),
    ("outgoing chmod", Param::OutgoingChmod),
    ("dont compress", Param::DontCompress),
    ("max verbosity", Param::MaxVerbosity),
    ("fake super", Param::FakeSuper),
    ("insecure links", Param::InsecureLinks),
    ("charset", Param::Charset),
    ("temp dir", Param::TempDir),
    ("early exec", Param::EarlyExec),
    ("pre-xfer exec", Param::PreXferExec),
    ("post-xfer exec", Param::PostXferExec),
    ("name converter", Param::NameConverter),
];

impl Param {
    fn lookup(name: &str) -> Option<(&'static str, Param)> {
        PARAMS
            .iter()
            .copied()
            .find(|(label, _)| loose_eq(label, name))
    }

    fn is_global(self) -> bool {
        matches!(
            self,
            Param::MotdFile
                | Param::PidFile
                | Param::Port
                | Param::Address
                | Param::SocketOptions
                | Param::DaemonChroot
                | Param::DaemonUid
                | Param::DaemonGid
                | Param::ListenBacklog
                | Param::ProxyProtocol
                | Param::ProxyProtocolHosts
        )
    }

    fn is_boolean(self) -> bool {
        matches!(
            self,
            Param::ReadOnly
                | Param::WriteOnly
                | Param::List
                | Param::UseChroot
                | Param::NumericIds
                | Param::MungeSymlinks
                | Param::OpenNoatime
                | Param::StrictModes
                | Param::ReverseLookup
                | Param::ForwardLookup
                | Param::IgnoreErrors
                | Param::IgnoreNonreadable
                | Param::TransferLogging
                | Param::FakeSuper
                | Param::InsecureLinks
                | Param::ProxyProtocol
        )
    }
}

fn boolean(label: &str, value: &str) -> Result<bool, String> {
    bool3(label, value, false)?.ok_or_else(|| bad_boolean(label, value))
}

/// A yes/no that may also be `unset` (or `-1`) when `unset_ok`.
fn bool3(label: &str, value: &str, unset_ok: bool) -> Result<Option<bool>, String> {
    let is = |word: &str| loose_eq(value, word);
    if is("yes") || is("true") || is("1") {
        Ok(Some(true))
    } else if is("no") || is("false") || is("0") {
        Ok(Some(false))
    } else if unset_ok && (is("unset") || is("-1")) {
        Ok(None)
    } else {
        Err(bad_boolean(label, value))
    }
}

fn bad_boolean(label: &str, value: &str) -> String {
    format!("bad boolean \"{value}\" for \"{label}\" (use yes or no)")
}

fn number<T: TryFrom<i64>>(label: &str, value: &str) -> Result<T, String> {
    let bad = || format!("bad number \"{value}\" for \"{label}\"");
    let n: i64 = value.parse().map_err(|_| bad())?;
    T::try_from(n).map_err(|_| bad())
}

fn string(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// rsync drops a path's trailing slashes, keeping a lone `/`.
fn path(value: &str) -> Option<String> {
    let trimmed = value.trim_end_matches('/');
    match (value.is_empty(), trimmed.is_empty()) {
        (true, _) => None,
        (false, true) => Some("/".to_owned()),
        (false, false) => Some(trimmed.to_owned()),
    }
}

fn module_name(value: &str) -> Result<String, String> {
    let name = value.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        return Err("empty module name".to_owned());
    }
    if name.contains('/') {
        return Err(format!("module name \"{name}\" must not contain \"/\""));
    }
    // A header can never give one (it ends at the first `]`); `name =` must not either, or
    // the module could not be named in a config written back.
    if name.contains(']') {
        return Err(format!("module name \"{name}\" must not contain \"]\""));
    }
    Ok(name)
}

fn set_global(g: &mut Global, param: Param, label: &str, v: &str) -> Result<(), String> {
    match param {
        Param::MotdFile => g.motd_file = string(v),
        Param::PidFile => g.pid_file = string(v),
        Param::Port => {
            g.port = match number::<u16>(label, v)? {
                0 => DEFAULT_PORT,
                port => port,
            }
        }
        Param::Address => g.address = string(v),
        Param::SocketOptions => g.socket_options = string(v),
        Param::DaemonChroot => g.daemon_chroot = string(v),
        Param::DaemonUid => g.daemon_uid = string(v),
        Param::DaemonGid => g.daemon_gid = string(v),
        Param::ListenBacklog => g.listen_backlog = number(label, v)?,
        Param::ProxyProtocol => g.proxy_protocol = boolean(label, v)?,
        Param::ProxyProtocolHosts => g.proxy_protocol_hosts = host_list(label, v)?,
        _ => set_module(&mut g.defaults, param, label, v)?,
    }
    Ok(())
}

fn host_list(label: &str, v: &str) -> Result<Vec<HostPattern>, String> {
    hosts::parse_list(v).map_err(|e| format!("{label}: {e}"))
}

fn set_module(m: &mut Module, param: Param, label: &str, v: &str) -> Result<(), String> {
    match param {
        Param::Name => m.name = module_name(v)?,
        Param::Path => m.path = path(v),
        Param::Comment => m.comment = string(v),
        Param::ReadOnly => m.read_only = boolean(label, v)?,
        Param::WriteOnly => m.write_only = boolean(label, v)?,
        Param::List => m.list = boolean(label, v)?,
        Param::Uid => m.uid = string(v),
        Param::Gid => m.gid = string(v),
        Param::UseChroot => m.use_chroot = bool3(label, v, true)?,
        Param::NumericIds => m.numeric_ids = bool3(label, v, true)?,
        Param::MungeSymlinks => m.munge_symlinks = bool3(label, v, true)?,
        Param::OpenNoatime => m.open_noatime = bool3(label, v, true)?,
        Param::MaxConnections => m.max_connections = number(label, v)?,
        Param::LockFile => m.lock_file = v.to_owned(),
        Param::AuthUsers => {
            m.auth_users = parse_auth_users(v).map_err(|e| format!("{label}: {e}"))?;
        }
        Param::SecretsFile => m.secrets_file = string(v),
        Param::StrictModes => m.strict_modes = boolean(label, v)?,
        Param::AuthDigest => m.auth_digest = auth_digest(label, v)?,
        Param::HostsAllow => m.hosts_allow = host_list(label, v)?,
        Param::HostsDeny => m.hosts_deny = host_list(label, v)?,
        Param::ReverseLookup => m.reverse_lookup = boolean(label, v)?,
        Param::ForwardLookup => m.forward_lookup = boolean(label, v)?,
        Param::IgnoreErrors => m.ignore_errors = boolean(label, v)?,
        Param::IgnoreNonreadable => m.ignore_nonreadable = boolean(label, v)?,
        Param::Timeout => m.timeout = number(label, v)?,
        Param::LogFile => m.log_file = string(v),
        Param::LogFormat => m.log_format = v.to_owned(),
        Param::TransferLogging => m.transfer_logging = boolean(label, v)?,
        Param::SyslogFacility => m.syslog_facility = syslog_facility(label, v)?,
        Param::SyslogTag => m.syslog_tag = v.to_owned(),
        Param::Exclude => m.exclude = string(v),
        Param::Include => m.include = string(v),
        Param::Filter => m.filter = string(v),
        Param::ExcludeFrom => m.exclude_from = string(v),
        Param::IncludeFrom => m.include_from = string(v),
        Param::RefuseOptions => m.refuse_options = space_list(v),
        Param::IncomingChmod => m.incoming_chmod = string(v),
        Param::OutgoingChmod => m.outgoing_chmod = string(v),
        Param::DontCompress => m.dont_compress = space_list(v),
        Param::MaxVerbosity => m.max_verbosity = number(label, v)?,
        Param::FakeSuper => m.fake_super = boolean(label, v)?,
        Param::InsecureLinks => m.insecure_links = boolean(label, v)?,
        Param::Charset => m.charset = string(v),
        Param::TempDir => m.temp_dir = path(v),
        Param::EarlyExec => m.early_exec = string(v),
        Param::PreXferExec => m.pre_xfer_exec = string(v),
        Param::PostXferExec => m.post_xfer_exec = string(v),
        Param::NameConverter => m.name_converter = string(v),
        _ => return Err(format!("\"{label}\" is a global parameter")),
    }
    Ok(())
}

fn auth_digest(label: &str, v: &str) -> Result<Option<AuthDigest>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    AuthDigest::from_name(&v.to_ascii_lowercase())
        .map(Some)
        .ok_or_else(|| {
            format!("unknown digest \"{v}\" for \"{label}\" (sha512, sha256, sha1, md5 or md4)")
        })
}

fn syslog_facility(label: &str, v: &str) -> Result<String, String> {
    let lower = v.to_ascii_lowercase();
    let numeric = lower.parse::<u32>().is_ok_and(|n| n > 0);
    if SYSLOG_FACILITIES.contains(&lower.as_str()) || numeric {
        Ok(lower)
    } else {
        Err(format!("unknown syslog facility \"{v}\" for \"{label}\""))
    }
}

/// One line after continuation lines are joined, classified.
enum Line<'a> {
    Section(&'a str),
    Directive { name: &'a str, value: &'a str },
    Parameter { name: &'a str, value: &'a str },
    NoEquals(&'a str),
}

/// Joins continuation lines: `(first line number, text)` for every line that is not blank or
/// a comment.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut physical = text.split('\n').enumerate();
    while let Some((index, raw)) = physical.next() {
        let body = skip_bogus_backslashes(raw.strip_suffix('\r').unwrap_or(raw));
        if body.is_empty() || body.starts_with(['#', ';']) {
            continue;
        }
        let mut joined = body.to_owned();
        while let Some(cut) = continuation(&joined) {
            joined.truncate(cut);
            match physical.next() {
                Some((_, next)) => joined.push_str(next.strip_suffix('\r').unwrap_or(next)),
                None => break,
            }
        }
        out.push((index + 1, joined));
    }
    out
}

/// rsync skips a backslash that starts a line.
fn skip_bogus_backslashes(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        match s.strip_prefix('\\') {
            Some(rest) => s = rest,
            None => return s,
        }
    }
}

/// The byte offset of a trailing `\` (ignoring trailing blanks), if the line continues.
fn continuation(line: &str) -> Option<usize> {
    line.trim_end().strip_suffix('\\').map(str::len)
}

fn classify(line: &str) -> Result<Line<'_>, String> {
    if let Some(rest) = line.strip_prefix('[') {
        let (name, _) = rest
            .split_once(']')
            .ok_or_else(|| format!("unterminated section header \"{line}\""))?;
        return Ok(Line::Section(name));
    }
    if line.starts_with('&') {
        let end = line
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(line.len());
        let (name, rest) = line.split_at(end);
        let rest = rest.trim_start();
        let value = rest.strip_prefix('=').unwrap_or(rest).trim();
        return Ok(Line::Directive { name, value });
    }
    match line.split_once('=') {
        Some((name, value)) => Ok(Line::Parameter {
            name: name.trim(),
            value: value.trim(),
        }),
        None => Ok(Line::NoEquals(line.trim())),
    }
}

struct Parser<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    source: &'a mut dyn ConfigSource,
    /// rsync's `Vars`: the globals and the module defaults, saved and restored by `&include`.
    global: Global,
    modules: Vec<Module>,
    /// The module being defined; `None` in the global context.
    current: Option<usize>,
    warnings: Vec<Warning>,
    depth: usize,
}

impl Parser<'_> {
    fn process(&mut self, text: &str, file: &Path) -> Result<(), ConfigError> {
        for (number, line) in logical_lines(text) {
            let syntax = |message: String| ConfigError::Syntax {
                file: file.to_owned(),
                line: number,
                message,
            };
            match classify(&line).map_err(syntax)? {
                Line::Section(name) => self.section(name).map_err(syntax)?,
                Line::Parameter { name, value } => {
                    self.parameter(name, value, file, number).map_err(syntax)?;
                }
                Line::Directive { name, value } => self.directive(name, value, file, number)?,
                Line::NoEquals(text) => self.warn(file, number, no_equals_message(text)),
            }
        }
        Ok(())
    }

    fn warn(&mut self, file: &Path, line: usize, message: String) {
        self.warnings.push(Warning {
            file: file.to_owned(),
            line,
            message,
        });
    }

    fn section(&mut self, raw: &str) -> Result<(), String> {
        if loose_eq(raw, "global") {
            self.current = None;
            return Ok(());
        }
        let name = module_name(raw)?;
        let existing = self.modules.iter().position(|m| loose_eq(&m.name, &name));
        self.current = Some(match existing {
            Some(index) => index,
            None => {
                self.modules.push(Module {
                    name,
                    ..self.global.defaults.clone()
                });
                self.modules.len() - 1
            }
        });
        Ok(())
    }

    fn parameter(&mut self, name: &str, raw: &str, file: &Path, line: usize) -> Result<(), String> {
        if name.is_empty() {
            return Err(format!("missing parameter name before \"= {raw}\""));
        }
        let Some((label, param)) = Param::lookup(name) else {
            self.warn(file, line, unknown_parameter_message(name));
            return Ok(());
        };
        let value = expand_vars(raw, self.env);
        match self.current.and_then(|i| self.modules.get_mut(i)) {
            None if param == Param::Name => Ok(()),
            None => set_global(&mut self.global, param, label, &value),
            Some(module) if param.is_global() => {
                let message = format!(
                    "global parameter \"{label}\" in module [{}] is ignored",
                    module.name
                );
                self.warn(file, line, message);
                Ok(())
            }
            Some(module) => set_module(module, param, label, &value),
        }
    }

    fn directive(
        &mut self,
        name: &str,
        value: &str,
        file: &Path,
        line: usize,
    ) -> Result<(), ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            file: file.to_owned(),
            line,
            message,
        };
        let merge = if name.eq_ignore_ascii_case("&merge") {
            true
        } else if name.eq_ignore_ascii_case("&include") {
            false
        } else {
            return Err(syntax(format!(
                "unknown directive \"{name}\" (&include or &merge)"
            )));
        };
        if value.is_empty() {
            return Err(syntax(format!("{name} needs a file or directory")));
        }
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(syntax(format!(
                "{name} \"{value}\": includes nested more than {MAX_INCLUDE_DEPTH} deep (a loop?)"
            )));
        }
        let target = match file.parent() {
            Some(dir) => dir.join(value),
            None => PathBuf::from(value),
        };
        let files = self
            .included_files(&target, merge)
            .map_err(|e| syntax(format!("{name} \"{value}\": {e}")))?;
        if files.is_empty() {
            return Ok(());
        }
        let saved = (!merge).then(|| self.global.clone());
        for included in &files {
            if let Some(saved) = &saved {
                self.global = saved.clone();
                self.current = None;
            }
            let text = self
                .source
                .read(included)
                .map_err(|e| syntax(format!("{name} \"{}\": {e}", included.display())))?;
            self.depth += 1;
            let result = self.process(&text, included);
            self.depth -= 1;
            result?;
        }
        if let Some(saved) = saved {
            self.global = saved;
            self.current = None;
        }
        Ok(())
    }

    /// The file itself, or a directory's `*.conf` (`&include`) / `*.inc` (`&merge`) files in
    /// byte order.
    fn included_files(&mut self, target: &Path, merge: bool) -> io::Result<Vec<PathBuf>> {
        let Some(mut names) = self.source.dir_entries(target)? else {
            return Ok(vec![target.to_owned()]);
        };
        let pattern: &[u8] = if merge { b"*.inc" } else { b"*.conf" };
        names.retain(|n| filter::wildmatch(pattern, n.as_bytes()));
        names.sort();
        Ok(names.iter().map(|n| target.join(n)).collect())
    }
}

fn no_equals_message(text: &str) -> String {
    let mut message =
        format!("ignoring \"{text}\": a parameter needs \"= value\" (rsync ignores it too)");
    if let Some((label, param)) = Param::lookup(text)
        && param.is_boolean()
    {
        message.push_str(&format!("; write \"{label} = yes\" to turn it on"));
    }
    message
}

fn unknown_parameter_message(name: &str) -> String {
    let mut message = format!("unknown parameter \"{name}\" ignored");
    let respelled: String = name.replace(['_', '-'], " ");
    if let Some((label, _)) = PARAMS
        .iter()
        .copied()
        .find(|(label, _)| loose_eq(&label.replace('-', " "), &respelled))
    {
        message.push_str(&format!(" (did you mean \"{label}\"?)"));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Access;
    use std::collections::HashMap;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn no_include(path: &Path) -> io::Result<String> {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no {}", path.display()),
        ))
    }

    fn conf(text: &str) -> Config {
        parse(text, Path::new("rsyncd.conf"), &no_env, &mut no_include).unwrap()
    }

    fn err(text: &str) -> (usize, String) {
        match parse(text, Path::new("rsyncd.conf"), &no_env, &mut no_include).unwrap_err() {
            ConfigError::Syntax { line, message, .. } => (line, message),
            other => panic!("{other}"),
        }
    }

    /// Includes served from a map of file name → text.
    struct MapSource {
        files: HashMap<PathBuf, String>,
        dirs: HashMap<PathBuf, Vec<String>>,
    }

    impl ConfigSource for MapSource {
        fn read(&mut self, path: &Path) -> io::Result<String> {
            self.files
                .get(path)
                .cloned()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not found"))
        }

        fn dir_entries(&mut self, path: &Path) -> io::Result<Option<Vec<String>>> {
            Ok(self.dirs.get(path).cloned())
        }
    }

    const TUTORIAL: &str = "\
uid = root
gid = root
use chroot = no
max connections = 200
timeout = 600
pid file = /var/run/rsyncd.pid
lock file = /var/run/rsync.lock
log file = /var/log/rsyncd.log
log format = %t %a %m %f %b
[backup_www]
path = /var/www/html/
ignore errors
read only = no
list = no
hosts allow = 127.0.0.1/8
hosts deny = *
auth users = rsync_backup
secrets file = /etc/rsync.password
";

    #[test]
    fn tutorial_config() {
        let c = conf(TUTORIAL);
        assert_eq!(c.global.pid_file.as_deref(), Some("/var/run/rsyncd.pid"));
        assert_eq!(c.global.port, 873);
        assert_eq!(c.modules.len(), 1);
        let m = c.module("backup_www").unwrap();
        let expected = Module {
            name: "backup_www".into(),
            path: Some("/var/www/html".into()),
            uid: Some("root".into()),
            gid: Some("root".into()),
            use_chroot: Some(false),
            max_connections: 200,
            timeout: 600,
            lock_file: "/var/run/rsync.lock".into(),
            log_file: Some("/var/log/rsyncd.log".into()),
            log_format: "%t %a %m %f %b".into(),
            read_only: false,
            list: false,
            hosts_allow: hosts::parse_list("127.0.0.1/8").unwrap(),
            hosts_deny: vec![HostPattern::Name("*".into())],
            auth_users: vec![AuthUser {
                pattern: "rsync_backup".into(),
                group: false,
                access: Access::Default,
            }],
            secrets_file: Some("/etc/rsync.password".into()),
            // The bare "ignore errors" line is ignored, as rsync ignores it.
            ignore_errors: false,
            ..Module::default()
        };
        assert_eq!(m, &expected);
        assert_eq!(c.warnings.len(), 1);
        let w = &c.warnings[0];
        assert_eq!(w.line, 12);
        assert!(w.message.contains("ignore errors = yes"), "{}", w.message);
        assert_eq!(w.to_string(), format!("rsyncd.conf:12: {}", w.message));
        // The module defaults seen before any module are kept too.
        assert_eq!(c.global.defaults.timeout, 600);
        assert!(c.module("backup").is_none());
        assert!(c.module("Backup_www").is_none());
    }

    #[test]
    fn rsync_defaults() {
        let c = conf("[m]\npath = /srv\n");
        let m = c.module("m").unwrap();
        assert!(m.read_only && m.list && !m.write_only && m.strict_modes);
        assert!(m.reverse_lookup && m.forward_lookup);
        assert_eq!(m.use_chroot, None);
        assert_eq!(m.max_verbosity, 1);
        assert_eq!(m.lock_file, "/var/run/rsyncd.lock");
        assert_eq!(m.log_format, "%o %h [%a] %m (%u) %f %l");
        assert_eq!(m.syslog_facility, "daemon");
        assert!(m.dont_compress.iter().any(|p| p == "*.gz"));
        assert_eq!(m.dont_compress.len(), 96);
        assert_eq!(c.global.listen_backlog, 5);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn comments_blank_lines_and_section_trailers() {
        let c = conf(
            "# comment\n  ; another\n\n\t\n[a] # rest of the header line is ignored\n  path = /a # not a comment\n",
        );
        assert_eq!(
            c.module("a").unwrap().path.as_deref(),
            Some("/a # not a comment")
        );
    }

    #[test]
    fn continuation_lines() {
        let c = conf(
            "[m]\ncomment = one \\\ntwo\nhosts allow = 10.0.0.1, \\\n   10.0.0.2\nread \\\n  only = no\n",
        );
        let m = c.module("m").unwrap();
        assert_eq!(m.comment.as_deref(), Some("one two"));
        assert_eq!(m.hosts_allow.len(), 2);
        assert!(!m.read_only);
        // A continued header.
        let c = conf("[long \\\n name]\npath=/x\n");
        assert!(c.module("long name").is_some());
        // A trailing backslash at the end of the file is dropped.
        let c = conf("[m]\ncomment = x \\");
        assert_eq!(c.module("m").unwrap().comment.as_deref(), Some("x"));
        // A comment line does not continue.
        let c = conf("[m]\n# comment \\\npath = /p\n");
        assert_eq!(c.module("m").unwrap().path.as_deref(), Some("/p"));
    }

    #[test]
    fn line_numbers_count_physical_lines() {
        let c = conf("[m]\ncomment = a \\\nb\nbogus = 1\n");
        assert_eq!(c.warnings[0].line, 4);
        let (line, _) = err("[m]\ncomment = a \\\nb\nread only = perhaps\n");
        assert_eq!(line, 4);
    }

    #[test]
    fn crlf_and_bogus_backslashes() {
        let c = conf("[m]\r\npath = /p\r\n\\ read only = no\r\n\\\r\n");
        let m = c.module("m").unwrap();
        assert_eq!(m.path.as_deref(), Some("/p"));
        assert!(!m.read_only);
    }

    #[test]
    fn parameter_names_ignore_case_and_spaces_but_not_underscores() {
        let c =
            conf("[m]\nREAD ONLY = no\n  readonly=no\nWrite   Only = yes\nMaxConnections = 3\n");
        let m = c.module("m").unwrap();
        assert!(!m.read_only && m.write_only);
        assert_eq!(m.max_connections, 3);
        assert!(c.warnings.is_empty());
        let c = conf("[m]\nread_only = no\n");
        assert!(c.module("m").unwrap().read_only);
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].message.contains("did you mean \"read only\""));
        let c = conf("pre_xfer_exec = /bin/true\n");
        assert!(c.warnings[0].message.contains("\"pre-xfer exec\""));
    }

    #[test]
    fn booleans() {
        for (word, value) in [
            ("yes", true),
            ("YES", true),
            ("True", true),
            ("1", true),
            ("no", false),
            ("False", false),
            ("0", false),
            ("n o", false),
        ] {
            let c = conf(&format!("[m]\nlist = {word}\n"));
            assert_eq!(c.module("m").unwrap().list, value, "{word}");
        }
        assert_eq!(
            err("[m]\nread only = maybe\n"),
            (
                2,
                "bad boolean \"maybe\" for \"read only\" (use yes or no)".into()
            )
        );
        assert!(err("[m]\nlist =\n").1.contains("bad boolean"));
        assert!(err("[m]\nlist = unset\n").1.contains("bad boolean"));
    }

    #[test]
    fn three_state_booleans() {
        let c = conf(
            "[a]\nuse chroot = unset\nmunge symlinks = -1\nnumeric ids = yes\n[b]\nuse chroot = false\n",
        );
        let a = c.module("a").unwrap();
        assert_eq!(a.use_chroot, None);
        assert_eq!(a.munge_symlinks, None);
        assert_eq!(a.numeric_ids, Some(true));
        assert_eq!(c.module("b").unwrap().use_chroot, Some(false));
    }

    #[test]
    fn numbers() {
        let c = conf(
            "port = 8730\nlisten backlog = 50\n[m]\nmax connections = -1\ntimeout = 0\nmax verbosity = 4\n",
        );
        assert_eq!(c.global.port, 8730);
        assert_eq!(c.global.listen_backlog, 50);
        let m = c.module("m").unwrap();
        assert_eq!((m.max_connections, m.timeout, m.max_verbosity), (-1, 0, 4));
        assert_eq!(conf("port = 0\n").global.port, 873);
        assert_eq!(
            err("[m]\ntimeout = 10s\n"),
            (2, "bad number \"10s\" for \"timeout\"".into())
        );
        assert!(err("[m]\ntimeout = -5\n").1.contains("bad number"));
        assert!(err("port = 70000\n").1.contains("bad number"));
    }

    #[test]
    fn display_of_errors() {
        let e = parse(
            "[m]\n\n\nlist = maybe\n",
            Path::new("/etc/rsyncd.conf"),
            &no_env,
            &mut no_include,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/rsyncd.conf:4: bad boolean \"maybe\" for \"list\" (use yes or no)"
        );
        let e = load(Path::new("/nonexistent/rtsync/rsyncd.conf")).unwrap_err();
        assert!(matches!(e, ConfigError::Io { .. }));
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/rtsync/rsyncd.conf: ")
        );
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(err("[m\npath = /\n").0, 1);
        assert!(err("[m\n").1.contains("unterminated section header"));
        assert!(err("[]\n").1.contains("empty module name"));
        assert!(err("[  ]\n").1.contains("empty module name"));
        assert_eq!(
            err("path = /\n[a/b]\n"),
            (2, "module name \"a/b\" must not contain \"/\"".into())
        );
        assert!(err("= value\n").1.contains("missing parameter name"));
        assert!(err("&frobnicate x\n").1.contains("unknown directive"));
        assert!(err("&include\n").1.contains("needs a file"));
        assert!(
            err("[m]\nhosts allow = 10.0.0.0/40\n")
                .1
                .starts_with("hosts allow: bad mask")
        );
        assert!(
            err("[m]\nauth users = joe:maybe\n")
                .1
                .starts_with("auth users: unknown auth users option")
        );
        assert!(
            err("[m]\nauth digest = sha3\n")
                .1
                .contains("unknown digest")
        );
        assert!(
            err("[m]\nsyslog facility = nowhere\n")
                .1
                .contains("unknown syslog facility")
        );
        assert!(err("[m]\nname = a/b\n").1.contains("must not contain"));
    }

    #[test]
    fn warnings_carry_line_numbers() {
        let c = conf("foo = 1\n[m]\n\nbar baz = 2\nmotd file = /etc/motd\njust words\n");
        let got: Vec<(usize, &str)> = c
            .warnings
            .iter()
            .map(|w| (w.line, w.message.as_str()))
            .collect();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], (1, "unknown parameter \"foo\" ignored"));
        assert_eq!(got[1], (4, "unknown parameter \"bar baz\" ignored"));
        assert_eq!(
            got[2],
            (5, "global parameter \"motd file\" in module [m] is ignored")
        );
        assert_eq!(got[3].0, 6);
        assert!(got[3].1.starts_with("ignoring \"just words\""));
        assert!(!got[3].1.contains("to turn it on"));
        assert!(c.global.motd_file.is_none());
        assert!(
            c.warnings
                .iter()
                .all(|w| w.file == Path::new("rsyncd.conf"))
        );
    }

    #[test]
    fn global_defaults_apply_to_later_modules_only() {
        let c = conf(
            "read only = no\n[a]\npath = /a\n[global]\ntimeout = 30\nread only = yes\n[b]\npath = /b\n[GLOBAL ]\nmotd file = /m\n",
        );
        let a = c.module("a").unwrap();
        let b = c.module("b").unwrap();
        assert!(!a.read_only);
        assert_eq!(a.timeout, 0);
        assert!(b.read_only);
        assert_eq!(b.timeout, 30);
        assert_eq!(c.global.motd_file.as_deref(), Some("/m"));
        assert_eq!(c.global.defaults.timeout, 30);
        assert_eq!(c.modules.len(), 2);
    }

    #[test]
    fn module_settings_override_defaults() {
        let c = conf("list = no\ncomment = shared\n[a]\nlist = yes\n[b]\n");
        assert!(c.module("a").unwrap().list);
        assert!(!c.module("b").unwrap().list);
        assert_eq!(c.module("b").unwrap().comment.as_deref(), Some("shared"));
    }

    #[test]
    fn repeated_module_reopens_the_first() {
        let c = conf(
            "[data]\npath = /d\nread only = no\n[other]\npath = /o\n[ DATA ]\ncomment = again\nread only = yes\n",
        );
        assert_eq!(c.modules.len(), 2);
        let d = c.module("data").unwrap();
        assert_eq!(d.path.as_deref(), Some("/d"));
        assert_eq!(d.comment.as_deref(), Some("again"));
        assert!(d.read_only);
        assert_eq!(c.modules[0].name, "data");
    }

    #[test]
    fn module_names_collapse_whitespace() {
        let c = conf("[  my   files ]\npath = /x\n");
        assert_eq!(c.modules[0].name, "my files");
        let c = conf("[m]\nname = renamed\n");
        assert_eq!(c.modules[0].name, "renamed");
        // Found by the rsyncd_conf fuzz target: `name =` could smuggle in a `]`.
        assert!(
            parse("[m]\nname = a]\n", Path::new("f"), &|_| None, &mut |_| Err(
                std::io::ErrorKind::NotFound.into()
            ))
            .is_err()
        );
        // "name" in the global context renames nothing.
        let c = conf("name = x\n[m]\n");
        assert_eq!(c.modules[0].name, "m");
    }

    #[test]
    fn var_expansion() {
        let env = |name: &str| match name {
            "HOME_ROOT" => Some("/home".to_owned()),
            "RO" => Some("no".to_owned()),
            "N" => Some("7".to_owned()),
            _ => None,
        };
        let c = parse(
            "[m]\npath = %HOME_ROOT%/%RSYNC_USER_NAME%/\nread only = %RO%\ntimeout = %N%0\ncomment = 100% %% %lower% %HOME_ROOT\n",
            Path::new("c"),
            &env,
            &mut no_include,
        )
        .unwrap();
        let m = c.module("m").unwrap();
        assert_eq!(m.path.as_deref(), Some("/home/%RSYNC_USER_NAME%"));
        assert!(!m.read_only);
        assert_eq!(m.timeout, 70);
        assert_eq!(m.comment.as_deref(), Some("100% %% %lower% %HOME_ROOT"));
        // The daemon finishes the job per connection.
        let user = |name: &str| (name == "RSYNC_USER_NAME").then(|| "joe".to_owned());
        assert_eq!(expand_vars(m.path.as_deref().unwrap(), &user), "/home/joe");
        assert_eq!(
            expand_vars("%A%%B%", &|n: &str| Some(n.to_lowercase())),
            "ab"
        );
        assert_eq!(expand_vars("%", &no_env), "%");
        assert_eq!(expand_vars("%Aé%x", &|_: &str| Some("v".into())), "vx");
    }

    #[test]
    fn paths_lose_trailing_slashes() {
        let c = conf("[a]\npath = /srv/a///\ntemp dir = /tmp/\n[b]\npath = /\n[c]\npath = //\n");
        assert_eq!(c.module("a").unwrap().path.as_deref(), Some("/srv/a"));
        assert_eq!(c.module("a").unwrap().temp_dir.as_deref(), Some("/tmp"));
        assert_eq!(c.module("b").unwrap().path.as_deref(), Some("/"));
        assert_eq!(c.module("c").unwrap().path.as_deref(), Some("/"));
    }

    #[test]
    fn lists() {
        let c = conf(
            "[m]\nauth users = joe:deny, @staff:rw  ann\nrefuse options = delete  !delete-during c\ndont compress = *.gz *.zip\nhosts deny = 10.0.0.1,10.0.0.2 bad.lan\ngid = , Domain Users , wheel\n",
        );
        let m = c.module("m").unwrap();
        assert_eq!(m.auth_users.len(), 3);
        assert_eq!(m.auth_users[0].access, Access::Deny);
        assert!(m.auth_users[1].group);
        assert_eq!(m.refuse_options, ["delete", "!delete-during", "c"]);
        assert_eq!(m.dont_compress, ["*.gz", "*.zip"]);
        assert_eq!(m.hosts_deny.len(), 3);
        assert_eq!(m.gid_list(), ["Domain Users", "wheel"]);
        assert_eq!(
            conf("[m]\ngid = a, b c\n").modules[0].gid_list(),
            ["a", "b", "c"]
        );
        assert_eq!(conf("[m]\nauth users =\n").modules[0].auth_users, []);
    }

    #[test]
    fn raw_strings_kept() {
        let c = conf(
            "[m]\nexclude = /secret/*** *.tmp\ninclude = /keep\nfilter = - /foo  - /bar\nexclude from = /etc/ex\ninclude from = /etc/in\nincoming chmod = Dg+s,ug+w\noutgoing chmod = o-w\nauth digest = SHA256\nsyslog facility = LOCAL3\nsyslog tag = rsyncd.%RSYNC_USER_NAME%\ncharset = utf-8\npre-xfer exec = /bin/pre\npost-xfer exec = /bin/post\nname converter = /bin/nc\nearly exec = /bin/early\nfake super = yes\ninsecure links = no\nopen noatime = yes\ntransfer logging = yes\nignore nonreadable = yes\nstrict modes = no\nreverse lookup = no\nforward lookup = no\n",
        );
        let m = c.module("m").unwrap();
        assert_eq!(m.exclude.as_deref(), Some("/secret/*** *.tmp"));
        assert_eq!(m.include.as_deref(), Some("/keep"));
        assert_eq!(m.filter.as_deref(), Some("- /foo  - /bar"));
        assert_eq!(m.exclude_from.as_deref(), Some("/etc/ex"));
        assert_eq!(m.include_from.as_deref(), Some("/etc/in"));
        assert_eq!(m.incoming_chmod.as_deref(), Some("Dg+s,ug+w"));
        assert_eq!(m.outgoing_chmod.as_deref(), Some("o-w"));
        assert_eq!(m.auth_digest, Some(AuthDigest::Sha256));
        assert_eq!(m.syslog_facility, "local3");
        assert_eq!(m.syslog_tag, "rsyncd.%RSYNC_USER_NAME%");
        assert_eq!(m.charset.as_deref(), Some("utf-8"));
        assert_eq!(m.pre_xfer_exec.as_deref(), Some("/bin/pre"));
        assert_eq!(m.post_xfer_exec.as_deref(), Some("/bin/post"));
        assert_eq!(m.name_converter.as_deref(), Some("/bin/nc"));
        assert_eq!(m.early_exec.as_deref(), Some("/bin/early"));
        assert!(m.fake_super && !m.insecure_links && m.transfer_logging && m.ignore_nonreadable);
        assert_eq!(m.open_noatime, Some(true));
        assert!(!m.strict_modes && !m.reverse_lookup && !m.forward_lookup);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn global_only_parameters() {
        let c = conf(
            "motd file = /etc/motd\npid file = /run/rsyncd.pid\naddress = 127.0.0.1\nsocket options = SO_KEEPALIVE\ndaemon chroot = /srv\ndaemon uid = rsync\ndaemon gid = rsync\nproxy protocol = yes\nproxy protocol hosts = 10.0.0.1\n",
        );
        let g = &c.global;
        assert_eq!(g.motd_file.as_deref(), Some("/etc/motd"));
        assert_eq!(g.pid_file.as_deref(), Some("/run/rsyncd.pid"));
        assert_eq!(g.address.as_deref(), Some("127.0.0.1"));
        assert_eq!(g.socket_options.as_deref(), Some("SO_KEEPALIVE"));
        assert_eq!(g.daemon_chroot.as_deref(), Some("/srv"));
        assert_eq!(g.daemon_uid.as_deref(), Some("rsync"));
        assert_eq!(g.daemon_gid.as_deref(), Some("rsync"));
        assert!(g.proxy_protocol);
        assert_eq!(g.proxy_protocol_hosts.len(), 1);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn empty_strings_are_unset() {
        let c = conf("[m]\ncomment =\nsecrets file =   \npath=\n");
        let m = c.module("m").unwrap();
        assert!(m.comment.is_none() && m.secrets_file.is_none() && m.path.is_none());
    }

    #[test]
    fn derived_chroot_settings() {
        let c = conf(
            "[plain]\npath = /srv/p\n[split]\npath = /srv/./inner\n[splitroot]\npath = /srv/./\nuse chroot = yes\n[off]\npath = /srv/o\nuse chroot = no\n[conv]\npath = /c\nname converter = /bin/nc\n[forced]\npath = /f\nmunge symlinks = no\nnumeric ids = no\n",
        );
        let m = |n: &str| c.module(n).unwrap();
        assert!(!m("plain").chroot_required());
        assert!(m("split").chroot_required());
        assert!(m("splitroot").chroot_required());
        assert!(!m("off").chroot_required());
        // munge symlinks: off only when chrooted straight into the module.
        assert!(!m("plain").munge_symlinks(true));
        assert!(m("plain").munge_symlinks(false));
        assert!(m("split").munge_symlinks(true));
        assert!(!m("splitroot").munge_symlinks(true));
        assert!(m("off").munge_symlinks(false));
        assert!(!m("forced").munge_symlinks(false));
        // numeric ids: on for chrooted modules without a name converter.
        assert!(m("plain").numeric_ids(true));
        assert!(!m("plain").numeric_ids(false));
        assert!(!m("conv").numeric_ids(true));
        assert!(!m("forced").numeric_ids(true));
    }

    fn sources(files: &[(&str, &str)], dirs: &[(&str, &[&str])]) -> MapSource {
        MapSource {
            files: files
                .iter()
                .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
                .collect(),
            dirs: dirs
                .iter()
                .map(|(p, names)| {
                    (
                        PathBuf::from(p),
                        names.iter().map(|n| (*n).to_owned()).collect(),
                    )
                })
                .collect(),
        }
    }

    fn parse_tree(main: &str, source: &mut MapSource) -> Result<Config, ConfigError> {
        parse_with(main, Path::new("/etc/rsyncd.conf"), &no_env, source)
    }

    #[test]
    fn include_isolates_globals() {
        let mut src = sources(
            &[(
                "/etc/mods.conf",
                "read only = no\nmotd file = /inner\n[inc]\npath = /inc\n",
            )],
            &[],
        );
        let c = parse_tree(
            "timeout = 9\n&include /etc/mods.conf\n[after]\npath = /after\n",
            &mut src,
        )
        .unwrap();
        let inc = c.module("inc").unwrap();
        assert!(!inc.read_only);
        assert_eq!(inc.timeout, 9);
        let after = c.module("after").unwrap();
        assert!(after.read_only, "the include's defaults must not leak");
        assert!(c.global.motd_file.is_none());
        assert_eq!(
            c.modules
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["inc", "after"]
        );
    }

    #[test]
    fn include_returns_to_the_global_context() {
        let mut src = sources(&[("/etc/x.conf", "[x]\npath=/x\n")], &[]);
        let c = parse_tree(
            "[a]\npath = /a\n&include x.conf\ncomment = global now\n[b]\n",
            &mut src,
        )
        .unwrap();
        assert!(c.module("a").unwrap().comment.is_none());
        assert_eq!(
            c.module("b").unwrap().comment.as_deref(),
            Some("global now")
        );
        assert!(c.module("x").is_some());
    }

    #[test]
    fn merge_acts_in_place() {
        let mut src = sources(
            &[("/etc/common.inc", "read only = no\nmotd file = /motd\n")],
            &[],
        );
        let c = parse_tree("&merge /etc/common.inc\n[a]\n", &mut src).unwrap();
        assert!(!c.module("a").unwrap().read_only);
        assert_eq!(c.global.motd_file.as_deref(), Some("/motd"));
        // Inside a module, merged parameters land in that module.
        let mut src = sources(&[("/etc/bits.inc", "comment = merged\n")], &[]);
        let c = parse_tree("[a]\n&merge = bits.inc\nlist = no\n", &mut src).unwrap();
        let a = c.module("a").unwrap();
        assert_eq!(a.comment.as_deref(), Some("merged"));
        assert!(!a.list);
    }

    #[test]
    fn directory_includes() {
        let mut src = sources(
            &[
                ("/etc/rsyncd.d/b.conf", "timeout = 5\n[b]\n"),
                ("/etc/rsyncd.d/a.conf", "[a]\n"),
                ("/etc/rsyncd.d/g.inc", "max verbosity = 3\n"),
            ],
            &[("/etc/rsyncd.d", &["b.conf", "g.inc", "a.conf", "notes.txt"])],
        );
        let c = parse_tree("&merge /etc/rsyncd.d\n&include /etc/rsyncd.d\n", &mut src).unwrap();
        let names: Vec<&str> = c.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(c.module("a").unwrap().max_verbosity, 3);
        assert_eq!(c.module("a").unwrap().timeout, 0);
        assert_eq!(c.module("b").unwrap().timeout, 5);
        assert_eq!(c.global.defaults.timeout, 0);
    }

    #[test]
    fn errors_in_included_files_name_that_file() {
        let mut src = sources(&[("/etc/bad.conf", "[m]\n\nlist = perhaps\n")], &[]);
        match parse_tree("&include /etc/bad.conf\n", &mut src).unwrap_err() {
            ConfigError::Syntax { file, line, .. } => {
                assert_eq!(file, Path::new("/etc/bad.conf"));
                assert_eq!(line, 3);
            }
            other => panic!("{other}"),
        }
        let mut src = sources(&[("/etc/w.conf", "bogus = 1\n")], &[]);
        let c = parse_tree("\n&include w.conf\n", &mut src).unwrap();
        assert_eq!(c.warnings[0].file, Path::new("/etc/w.conf"));
        // A missing include is an error at the directive.
        let (line, message) = err("\n&include /nope.conf\n");
        assert_eq!(line, 2);
        assert!(message.contains("/nope.conf"), "{message}");
    }

    #[test]
    fn include_loops_stop() {
        let mut src = sources(&[("/etc/loop.conf", "&include loop.conf\n")], &[]);
        let e = parse_tree("&include loop.conf\n", &mut src).unwrap_err();
        assert!(e.to_string().contains("nested more than"), "{e}");
    }

    #[test]
    fn include_through_the_closure() {
        let mut seen = Vec::new();
        let mut reader = |p: &Path| {
            seen.push(p.to_owned());
            Ok("[inc]\npath = /inc\n".to_owned())
        };
        let c = parse(
            "&include extra.conf\n",
            Path::new("/etc/rsyncd.conf"),
            &no_env,
            &mut reader,
        )
        .unwrap();
        assert!(c.module("inc").is_some());
        assert_eq!(seen, [PathBuf::from("/etc/extra.conf")]);
    }

    #[test]
    fn load_reads_from_disk() {
        let dir = std::env::temp_dir().join(format!("rtsync-config-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/one.conf"), "[one]\npath = /one\n").unwrap();
        std::fs::write(dir.join("conf.d/skip.txt"), "[skip]\n").unwrap();
        std::fs::write(dir.join("rsyncd.conf"), "port = 1873\n&include conf.d\n").unwrap();
        let c = load(&dir.join("rsyncd.conf"));
        std::fs::remove_dir_all(&dir).unwrap();
        let c = c.unwrap();
        assert_eq!(c.global.port, 1873);
        assert_eq!(c.modules.len(), 1);
        assert_eq!(c.modules[0].name, "one");
    }

    #[test]
    fn conf_list_semantics() {
        assert_eq!(conf_list(" a, b\tc ,,d "), ["a", "b", "c", "d"]);
        assert_eq!(conf_list("  , a b , c,, "), ["a b", "c"]);
        assert!(conf_list("").is_empty());
        assert!(conf_list(" , ").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in "(\\PC|\n|\r|\\[|\\]|=|&|%|\\\\|#|;| ){0,300}") {
            let mut include = |_: &Path| Ok(text.clone());
            let _ = parse(&text, Path::new("fuzz.conf"), &|_: &str| Some("%X%".to_owned()), &mut include);
        }

        #[test]
        fn parse_never_panics_on_structured_lines(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    "\\[[a-z /\\]]{0,6}\\]?",
                    "(read only|path|hosts allow|auth users|timeout|use chroot|port) ?= ?[a-z0-9.:/@*%, -]{0,12}",
                    "&(include|merge) [a-z.]{0,5}",
                    "[a-z ]{0,10}\\\\?",
                ],
                0..30,
            )
        ) {
            let text = lines.join("\n");
            let mut include = |_: &Path| Ok("[inc]\nread only = no\n&include again\n".to_owned());
            let _ = parse(&text, Path::new("fuzz.conf"), &no_env, &mut include);
        }
    }
}
