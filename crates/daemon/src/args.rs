//! The server argument vector a stock rsync client sends after `@RSYNCD: OK`, read as the rsync
//! daemon reads it.
//!
//! This module owns three things, none of which touch a socket:
//! - framing: [`split_words`] finds the NUL-terminated words and the empty word that ends them;
//! - parsing: [`parse`] (and [`parse_secluded`] for `-s`) turns the words into [`ServerArgs`],
//!   with popt's rules (short clusters, values glued, after `=` or in the next word, `--` ends
//!   options) and rsync's server-side checks and wording (`options.c parse_arguments`);
//! - policy: [`refused`] / [`ServerArgs::refused`] apply rsyncd.conf `refuse options` the way
//!   `options.c set_refuse_options` does, and [`ServerOptions::unsupported`] names what rtsync
//!   does not implement;
//! - the daemon's reading of the paths: [`module_paths`] (module name off, old ` mod/` split)
//!   and [`delete_when`] (when a bare `--delete` runs).
//!
//! What a client sends is `options.c server_options()`: `--server`, `--sender` on a pull, one
//! cluster of short options ending in `e` plus the capability letters (`-logDtpre.iLsfxCIvu`: the
//! `e` takes the rest of the cluster, it is not a remote shell here), long options, `.`, then
//! the paths (`module/` or `module/sub/path`). Option words before the `.` are un-backslashed as
//! rsync 3.5 does (`io.c read_args`), since the client escapes them for a remote shell.

use std::borrow::Cow;

use crate::logfmt::big_num;

/// The most words [`split_words`] accepts in one vector.
pub const MAX_WORDS: usize = 1024;

/// The longest word [`split_words`] accepts, in bytes.
pub const MAX_WORD_LEN: usize = 4096;

/// rsync's `MAX_BLOCK_SIZE` for protocol 30 and newer: the largest `-B`.
pub const MAX_BLOCK_SIZE: u32 = 1 << 17;

/// rsync's `MAX_BASIS_DIRS`: at most this many `--compare-dest`/`--copy-dest`/`--link-dest`.
pub const MAX_BASIS_DIRS: usize = 20;

/// What was wrong with an argument vector. The text is what rsync puts after `rsync: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// popt did not know the option; the word as sent.
    #[error("on remote machine: {0}: unknown option")]
    Unknown(String),
    /// An option that needs a value was the last word.
    #[error("on remote machine: {0}: missing argument")]
    MissingArgument(String),
    /// A value was glued to an option that takes none (`--delete=3`, `-v=`).
    #[error("on remote machine: {0}: option does not take an argument")]
    UnwantedArgument(String),
    /// A numeric option's value is not a number (the word holding the value).
    #[error("on remote machine: {0}: invalid numeric value")]
    BadNumber(String),
    /// A numeric option's value does not fit an `int`.
    #[error("on remote machine: {0}: number too large or too small")]
    Overflow(String),
    /// A check after parsing failed; rsync's message.
    #[error("{0}")]
    Invalid(String),
    /// `refuse options` refuses this option (the option's name, see [`refusal_message`]).
    #[error("{}", refusal_message(.0))]
    Refused(&'static str),
    /// rtsync does not implement this option (see [`ServerOptions::unsupported`]).
    #[error("{}", unsupported_message(.0))]
    Unsupported(&'static str),
    /// The vector broke a size bound ([`MAX_WORDS`], [`MAX_WORD_LEN`]).
    #[error("{0}")]
    TooLong(&'static str),
}

impl ArgsError {
    /// The exit code a daemon ends with: rsync's daemon answers every option error with
    /// `RERR_UNSUPPORTED` (4, `clientserver.c rsync_module`), and an oversized vector with
    /// `RERR_PROTOCOL` (2, `io.c read_args`).
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            ArgsError::TooLong(_) => 2,
            _ => 4,
        }
    }
}

/// One argument vector's words.
pub type Words = Vec<Vec<u8>>;

/// The words of one argument vector: `Ok(Some((words, consumed)))` once the empty word that ends
/// it has arrived (`consumed` counts its NUL too), `Ok(None)` while more bytes are needed.
///
/// Protocol 30 and newer end each word with a NUL and the vector with an extra NUL
/// (`clientserver.c start_inband_exchange`). More than [`MAX_WORDS`] words or a word longer than
/// [`MAX_WORD_LEN`] is an error as soon as it is seen, so a client cannot make us buffer forever.
pub fn split_words(buf: &[u8]) -> Result<Option<(Words, usize)>, ArgsError> {
    let mut words = Vec::new();
    let mut start = 0;
    loop {
        let rest = buf.get(start..).unwrap_or_default();
        let Some(len) = rest.iter().position(|&b| b == 0) else {
            if rest.len() > MAX_WORD_LEN {
                return Err(ArgsError::TooLong("an argument is too long"));
            }
            return Ok(None);
        };
        if len == 0 {
            return Ok(Some((words, start + 1)));
        }
        if len > MAX_WORD_LEN {
            return Err(ArgsError::TooLong("an argument is too long"));
        }
        if words.len() >= MAX_WORDS {
            return Err(ArgsError::TooLong("too many daemon arguments"));
        }
        words.push(rest.get(..len).unwrap_or_default().to_vec());
        start += len + 1;
    }
}

/// A parsed argument vector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerArgs {
    /// `--sender`: the client receives, so the server sends (a pull).
    pub sender: bool,
    /// Everything else the options said.
    pub options: ServerOptions,
    /// The words after `.`, as sent: `module/`, `module/sub/path` (not glob-expanded, module
    /// name not removed; see [`module_paths`]).
    pub paths: Vec<Vec<u8>>,
}

/// When `--delete` deletes on the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteWhen {
    /// `--delete` or `--delete-excluded` alone: the receiver picks (during, for protocol 30+;
    /// before if `delete-during` is refused — see [`delete_when`]).
    Unspecified,
    /// `--delete-before`.
    Before,
    /// `--delete-during`, `--del`.
    During,
    /// `--delete-delay`.
    Delay,
    /// `--delete-after`.
    After,
}

/// `--append` (`append_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Append {
    /// Off.
    #[default]
    Off,
    /// `--append` once.
    Append,
    /// `--append-verify` (a client sends `--append --append`).
    Verify,
}

/// What to do when a path argument is missing (`missing_args`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MissingArgs {
    /// Report an error (the default).
    #[default]
    Error,
    /// `--ignore-missing-args`.
    Ignore,
    /// `--delete-missing-args` (wins over the other).
    Delete,
}

/// `--super`, `--no-super`, `--fake-super` (`am_root`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuperMode {
    /// `--super`.
    Super,
    /// `--no-super`.
    NoSuper,
    /// `--fake-super` (a daemon treats it as `--super` unless the module sets `fake super`).
    FakeSuper,
}

/// `--stderr` / `--msgs2stderr` (`msgs2stderr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StderrMode {
    /// `--stderr=errors`.
    Errors,
    /// `--stderr=all`, `--msgs2stderr`.
    All,
    /// `--stderr=client`, `--no-msgs2stderr`.
    Client,
}

/// Which of the basis-directory options was given (they exclude each other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasisKind {
    /// `--compare-dest`.
    Compare,
    /// `--copy-dest`.
    Copy,
    /// `--link-dest`.
    Link,
}

/// A batch option (`--read-batch`, `--write-batch`, `--only-write-batch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMode {
    /// `--read-batch`.
    Read,
    /// `--write-batch`.
    Write,
    /// `--only-write-batch` (a daemon then behaves as `--dry-run`).
    OnlyWrite,
}

/// A filter option given on the command line (stock clients send rules over the wire instead,
/// but a client may pass these with `-M`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterArg {
    /// `--filter` / `-f` (and the rules `-F` and `--old-dirs` add).
    Filter(Vec<u8>),
    /// `--exclude`.
    Exclude(Vec<u8>),
    /// `--include`.
    Include(Vec<u8>),
    /// `--exclude-from` (a file on the server).
    ExcludeFrom(Vec<u8>),
    /// `--include-from` (a file on the server).
    IncludeFrom(Vec<u8>),
}

/// Every option a client may send, typed, with rsync's defaults. Counts are how many times a
/// repeatable option was given (`-vv`, `-HH`, `-zz`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct ServerOptions {
    /// The option rows seen, in order, by canonical name (the long name, or `D`, `F`, `P` for
    /// the short-only ones), once each: what `refuse options` is checked against.
    pub seen: Vec<&'static str>,
    /// `--server`.
    pub server: bool,
    /// `-v` count (`--no-v` resets).
    pub verbose: u32,
    /// `-q` count.
    pub quiet: u32,
    /// `--info=` words, in order.
    pub info: Vec<String>,
    /// `--debug=` words, in order.
    pub debug: Vec<String>,
    /// `--stderr=`, `--msgs2stderr`, `--no-msgs2stderr`.
    pub stderr: Option<StderrMode>,
    /// `--motd` / `--no-motd` (client-side; default on).
    pub motd: bool,
    /// `--stats`.
    pub stats: bool,
    /// `-h` count.
    pub human_readable: u32,
    /// `-n`, `--dry-run`.
    pub dry_run: bool,
    /// `-a` was given as such (clients never send it; its parts are set too).
    pub archive: bool,
    /// `-r` (or `-a` without `--files-from`; `--old-dirs` also sets it).
    pub recursive: bool,
    /// `--inc-recursive` / `--no-i-r` (default on; the `i` capability must also be there).
    pub inc_recursive: bool,
    /// `-d`.
    pub dirs: bool,
    /// `--old-dirs` / `--old-d` (adds the filter `- /*/*` and recursion).
    pub old_dirs: bool,
    /// `-p`.
    pub perms: bool,
    /// `-E`.
    pub executability: bool,
    /// `-A` (implies `-p`).
    pub acls: bool,
    /// `-X` count.
    pub xattrs: u32,
    /// `-o`.
    pub owner: bool,
    /// `-g`.
    pub group: bool,
    /// `--devices` (or `-D`).
    pub devices: bool,
    /// `--specials` (or `-D`).
    pub specials: bool,
    /// `--copy-devices`.
    pub copy_devices: bool,
    /// `--write-devices` (implies `--inplace`).
    pub write_devices: bool,
    /// `--drop-D` (3.5).
    pub drop_devices: bool,
    /// `--confine-root=` (3.5).
    pub confine_root: Option<Vec<u8>>,
    /// `-t`.
    pub times: bool,
    /// `-U` count (`-UU` also sets `open_noatime`).
    pub atimes: u32,
    /// `-N`.
    pub crtimes: bool,
    /// `--open-noatime`.
    pub open_noatime: bool,
    /// `-O`.
    pub omit_dir_times: bool,
    /// `-J`.
    pub omit_link_times: bool,
    /// `--modify-window=N` / `-@N` (`None`: not given, rsync's 0; negative: nanoseconds).
    pub modify_window: Option<i32>,
    /// `--super`, `--no-super`, `--fake-super`.
    pub super_mode: Option<SuperMode>,
    /// `-l`.
    pub links: bool,
    /// `-L`.
    pub copy_links: bool,
    /// `--copy-unsafe-links`.
    pub copy_unsafe_links: bool,
    /// `--safe-links`.
    pub safe_links: bool,
    /// `--munge-links`.
    pub munge_links: bool,
    /// `--insecure-links` (3.5; a 3.5 daemon always refuses it).
    pub insecure_links: bool,
    /// `-k`.
    pub copy_dirlinks: bool,
    /// `-K`.
    pub keep_dirlinks: bool,
    /// `-H` count.
    pub hard_links: u32,
    /// `-R` (default: on with `--files-from`).
    pub relative: bool,
    /// `--implied-dirs` (default on; off without `-R`).
    pub implied_dirs: bool,
    /// `--chmod=` rules, in order (not validated here).
    pub chmod: Vec<String>,
    /// `-I`.
    pub ignore_times: bool,
    /// `--size-only`.
    pub size_only: bool,
    /// `-x` count.
    pub one_file_system: u32,
    /// `-u`.
    pub update: bool,
    /// `--existing`, `--ignore-non-existing`.
    pub existing: bool,
    /// `--ignore-existing`.
    pub ignore_existing: bool,
    /// `--max-size=` in bytes.
    pub max_size: Option<u64>,
    /// `--min-size=` in bytes.
    pub min_size: Option<u64>,
    /// `--max-alloc=` in bytes.
    pub max_alloc: Option<u64>,
    /// `-S`.
    pub sparse: bool,
    /// `--preallocate`.
    pub preallocate: bool,
    /// `--inplace` (also set by `--append` and `--write-devices`).
    pub inplace: bool,
    /// `--append`, `--append-verify`.
    pub append: Append,
    /// When to delete, if deleting (`--delete-excluded` alone implies deleting).
    pub delete: Option<DeleteWhen>,
    /// `--delete-excluded`.
    pub delete_excluded: bool,
    /// `--ignore-missing-args`, `--delete-missing-args`.
    pub missing_args: MissingArgs,
    /// `--remove-source-files` (1) or the deprecated `--remove-sent-files` (2).
    pub remove_source_files: u8,
    /// `--force`.
    pub force: bool,
    /// `--ignore-errors`.
    pub ignore_errors: bool,
    /// `--max-delete=N`: `None` unlimited, `Some(0)` no deletions (a negative N), else the cap.
    pub max_delete: Option<u32>,
    /// `-F` count.
    pub filter_files: u32,
    /// `--filter`, `--exclude`, `--include`, `--exclude-from`, `--include-from`, `-F`, in order.
    pub filters: Vec<FilterArg>,
    /// `-C`.
    pub cvs_exclude: bool,
    /// `-W` (`Some(true)`) or `--no-W` (`Some(false)`).
    pub whole_file: Option<bool>,
    /// `-c`.
    pub checksum: bool,
    /// `--checksum-choice=`, `--cc=` (`auto` is `None`).
    pub checksum_choice: Option<String>,
    /// `-B`, in bytes.
    pub block_size: Option<u32>,
    /// `--compare-dest`, `--copy-dest`, `--link-dest` (only one kind).
    pub basis_kind: Option<BasisKind>,
    /// Their directories, in order.
    pub basis_dirs: Vec<Vec<u8>>,
    /// `-y` count.
    pub fuzzy: u32,
    /// `-z` count (`--no-compress` resets).
    pub compress: u32,
    /// `--compress-choice=`, `--zc=`, `--old-compress` (`zlib`), `--new-compress` or `-zz`
    /// (`zlibx`); `auto` is `None`.
    pub compress_choice: Option<String>,
    /// `--compress-level=`, `--zl=`.
    pub compress_level: Option<i32>,
    /// `--compress-threads=`, `--zt=` (3.5).
    pub compress_threads: Option<i32>,
    /// `--skip-compress=`.
    pub skip_compress: Option<String>,
    /// `--progress` (or `-P`).
    pub progress: bool,
    /// `--partial` (or `-P`, or a usable `--partial-dir`; off again under `--inplace`).
    pub partial: bool,
    /// `--partial-dir=`, as sent.
    pub partial_dir: Option<Vec<u8>>,
    /// `--delay-updates`.
    pub delay_updates: bool,
    /// `-m`.
    pub prune_empty_dirs: bool,
    /// `--log-file=` (a daemon always refuses it).
    pub log_file: Option<Vec<u8>>,
    /// `--log-file-format=` (a daemon always refuses it).
    pub log_file_format: Option<String>,
    /// `--out-format=` / `--log-format=` (a push sends `--log-format=%i` for `-i`).
    pub out_format: Option<String>,
    /// `-i` count.
    pub itemize: u32,
    /// `--bwlimit=` in KiB per second (0: none).
    pub bwlimit: u64,
    /// `-b`.
    pub backup: bool,
    /// `--backup-dir=`.
    pub backup_dir: Option<Vec<u8>>,
    /// `--suffix=`.
    pub suffix: Option<Vec<u8>>,
    /// `--list-only`.
    pub list_only: bool,
    /// `--read-batch`, `--write-batch`, `--only-write-batch`.
    pub batch: Option<BatchMode>,
    /// `--files-from=` (`-`: the names follow on the socket).
    pub files_from: Option<Vec<u8>>,
    /// `-0`, `--from0`.
    pub from0: bool,
    /// `--old-args` count.
    pub old_args: u32,
    /// `-s`, `--secluded-args`, `--protect-args`: the rest of the options and the paths come in a
    /// second vector ([`parse_secluded`]).
    pub secluded_args: bool,
    /// `--trust-sender`.
    pub trust_sender: bool,
    /// `--numeric-ids`.
    pub numeric_ids: bool,
    /// `--usermap=` (`--chown=USER` arrives as `*:USER`).
    pub usermap: Option<String>,
    /// `--groupmap=` (`--chown=:GROUP` arrives as `*:GROUP`).
    pub groupmap: Option<String>,
    /// `--timeout=` seconds (0: none).
    pub timeout: i32,
    /// `--contimeout=` seconds.
    pub contimeout: i32,
    /// `--fsync`.
    pub fsync: bool,
    /// `--stop-after=`, `--time-limit=` in minutes.
    pub stop_after: Option<u64>,
    /// `--stop-at=`, as sent (not validated here).
    pub stop_at: Option<String>,
    /// `-e`: the client's capability letters (`.iLsfxCIvu`); a pre-release client puts
    /// `VER.SUB` before the letters.
    pub client_info: Option<String>,
    /// `-T`, `--temp-dir=`.
    pub temp_dir: Option<Vec<u8>>,
    /// `--iconv=` (the server's half of the client's charset pair).
    pub iconv: Option<String>,
    /// `--mkpath`.
    pub mkpath: bool,
    /// `--qsort` (a client sends it as `--use-qsort`).
    pub qsort: bool,
    /// `--copy-as=`.
    pub copy_as: Option<String>,
    /// `-M` options a client asked us to forward (meaningless on a server).
    pub remote_options: Vec<Vec<u8>>,
    /// `--protocol=`.
    pub protocol: Option<i32>,
    /// `--checksum-seed=`.
    pub checksum_seed: i32,
    /// `--help` (rsync would print its usage and exit).
    pub help: bool,
    /// `-V` count (rsync would print its version and exit).
    pub version: u32,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            seen: Vec::new(),
            server: false,
            verbose: 0,
            quiet: 0,
            info: Vec::new(),
            debug: Vec::new(),
            stderr: None,
            motd: true,
            stats: false,
            human_readable: 0,
            dry_run: false,
            archive: false,
            recursive: false,
            inc_recursive: true,
            dirs: false,
            old_dirs: false,
            perms: false,
            executability: false,
            acls: false,
            xattrs: 0,
            owner: false,
            group: false,
            devices: false,
            specials: false,
            copy_devices: false,
            write_devices: false,
            drop_devices: false,
            confine_root: None,
            times: false,
            atimes: 0,
            crtimes: false,
            open_noatime: false,
            omit_dir_times: false,
            omit_link_times: false,
            modify_window: None,
            super_mode: None,
            links: false,
            copy_links: false,
            copy_unsafe_links: false,
            safe_links: false,
            munge_links: false,
            insecure_links: false,
            copy_dirlinks: false,
            keep_dirlinks: false,
            hard_links: 0,
            relative: false,
            implied_dirs: true,
            chmod: Vec::new(),
            ignore_times: false,
            size_only: false,
            one_file_system: 0,
            update: false,
            existing: false,
            ignore_existing: false,
            max_size: None,
            min_size: None,
            max_alloc: None,
            sparse: false,
            preallocate: false,
            inplace: false,
            append: Append::Off,
            delete: None,
            delete_excluded: false,
            missing_args: MissingArgs::Error,
            remove_source_files: 0,
            force: false,
            ignore_errors: false,
            max_delete: None,
            filter_files: 0,
            filters: Vec::new(),
            cvs_exclude: false,
            whole_file: None,
            checksum: false,
            checksum_choice: None,
            block_size: None,
            basis_kind: None,
            basis_dirs: Vec::new(),
            fuzzy: 0,
            compress: 0,
            compress_choice: None,
            compress_level: None,
            compress_threads: None,
            skip_compress: None,
            progress: false,
            partial: false,
            partial_dir: None,
            delay_updates: false,
            prune_empty_dirs: false,
            log_file: None,
            log_file_format: None,
            out_format: None,
            itemize: 0,
            bwlimit: 0,
            backup: false,
            backup_dir: None,
            suffix: None,
            list_only: false,
            batch: None,
            files_from: None,
            from0: false,
            old_args: 0,
            secluded_args: false,
            trust_sender: false,
            numeric_ids: false,
            usermap: None,
            groupmap: None,
            timeout: 0,
            contimeout: 0,
            fsync: false,
            stop_after: None,
            stop_at: None,
            client_info: None,
            temp_dir: None,
            iconv: None,
            mkpath: false,
            qsort: false,
            copy_as: None,
            remote_options: Vec::new(),
            protocol: None,
            checksum_seed: 0,
            help: false,
            version: 0,
        }
    }
}

impl ServerOptions {
    /// The first option set that rtsync does not implement, by canonical name, for the daemon to
    /// refuse with exit code 4 (see [`unsupported_message`]). The list follows what the daemon's
    /// roles do today; options that only change what a client prints are not in it.
    #[must_use]
    pub fn unsupported(&self) -> Option<&'static str> {
        let filter_file = self.filters.iter().find_map(|f| match f {
            FilterArg::ExcludeFrom(_) => Some("exclude-from"),
            FilterArg::IncludeFrom(_) => Some("include-from"),
            _ => None,
        });
        [
            (self.acls, "acls"),
            (self.xattrs > 0, "xattrs"),
            (self.iconv.is_some(), "iconv"),
            (self.fuzzy > 0, "fuzzy"),
            (self.basis_kind == Some(BasisKind::Compare), "compare-dest"),
            (self.basis_kind == Some(BasisKind::Copy), "copy-dest"),
            (self.basis_kind == Some(BasisKind::Link), "link-dest"),
            (self.backup, "backup"),
            (self.backup_dir.is_some(), "backup-dir"),
            (self.suffix.is_some(), "suffix"),
            (self.append == Append::Append, "append"),
            (self.append == Append::Verify, "append-verify"),
            (self.write_devices, "write-devices"),
            (self.inplace, "inplace"),
            (self.copy_devices, "copy-devices"),
            (self.copy_as.is_some(), "copy-as"),
            (self.remove_source_files == 1, "remove-source-files"),
            (self.remove_source_files > 1, "remove-sent-files"),
            // `--files-from=-`: the client sends the names (a pull); a file here is not read.
            (
                self.files_from.as_deref().is_some_and(|f| f != b"-"),
                "files-from",
            ),
            (self.copy_links, "copy-links"),
            (self.copy_dirlinks, "copy-dirlinks"),
            (self.copy_unsafe_links, "copy-unsafe-links"),
            (self.keep_dirlinks, "keep-dirlinks"),
            (self.delay_updates, "delay-updates"),
            (self.temp_dir.is_some(), "temp-dir"),
            (self.partial_dir.is_some(), "partial-dir"),
            (self.usermap.is_some(), "usermap"),
            (self.groupmap.is_some(), "groupmap"),
            (self.super_mode == Some(SuperMode::FakeSuper), "fake-super"),
            (self.super_mode == Some(SuperMode::Super), "super"),
            (self.executability, "executability"),
            (self.atimes > 0, "atimes"),
            (self.crtimes, "crtimes"),
            (self.secluded_args, "secluded-args"),
            (self.checksum_choice.is_some(), "checksum-choice"),
            (
                // `--new-compress` and `--old-compress` name zlib, which we do.
                self.compress_choice.is_some()
                    && self
                        .seen
                        .iter()
                        .any(|s| matches!(*s, "compress-choice" | "zc")),
                "compress-choice",
            ),
            (self.batch == Some(BatchMode::Read), "read-batch"),
            (self.batch == Some(BatchMode::Write), "write-batch"),
            (self.batch == Some(BatchMode::OnlyWrite), "only-write-batch"),
            (self.help, "help"),
            (self.version > 0, "version"),
        ]
        .into_iter()
        .find_map(|(set, name)| set.then_some(name))
        .or(filter_file)
    }

    /// Whether the transfer compresses (`-z`, a level, or a choice other than `none`), as
    /// rsync decides before negotiating the algorithm.
    #[must_use]
    pub fn compresses(&self) -> bool {
        let chosen = self
            .compress_choice
            .as_deref()
            .is_some_and(|c| !c.eq_ignore_ascii_case("none"));
        let none_chosen = self
            .compress_choice
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("none"));
        chosen || self.compress_level.is_some() || (self.compress > 0 && !none_chosen)
    }
}

impl ServerArgs {
    /// The option `refuse options` refuses, if any, with every implication rsync applies
    /// (see [`refused`]); this one also knows the values (`--compress-choice=none` does not
    /// compress; `--partial-dir=.` means `--partial`).
    #[must_use]
    pub fn refused(&self, refuse: &[String]) -> Option<&'static str> {
        let o = &self.options;
        let blank_partial_dir = !o.inplace
            && o.partial_dir
                .as_deref()
                .is_some_and(|d| d.is_empty() || d == b"." || d == b"./");
        let hints = Hints {
            compress: o.compresses(),
            iconv: o.iconv.is_some(),
            delete: o.delete.is_some(),
            delete_timed: o.delete.is_some_and(|d| d != DeleteWhen::Unspecified),
            delete_missing: o.missing_args == MissingArgs::Delete,
            remove_source: o.remove_source_files != 0,
            sender: self.sender,
            append: o.append != Append::Off,
            write_devices: o.write_devices,
            inplace: o.inplace,
            blank_partial_dir,
        };
        refused_with(&o.seen, refuse, &hints)
    }
}

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    /// No value.
    None,
    /// A string.
    Str,
    /// A popt `int` (`strtoll` base 0, within `int`).
    Int,
}

/// One row of rsync's option table (`options.c long_options`).
#[derive(Debug)]
struct Row {
    /// The long name; empty for `-D`, `-F`, `-P`.
    long: &'static str,
    /// The short letter, or 0.
    short: u8,
    /// Its value.
    arg: Arg,
    /// What it does: rows with the same action are one capability to `refuse options` (`--del`
    /// and `--delete-during`), and `apply` dispatches on it.
    action: &'static str,
}

impl Row {
    /// The canonical name: the long name, or the short letter for a short-only row.
    fn name(&self) -> &'static str {
        if self.long.is_empty() {
            self.action
        } else {
            self.long
        }
    }

    /// Rows a wildcard in `refuse options` never matches (`set_refuse_options`).
    fn exact_only(&self) -> bool {
        matches!(self.short, b'e' | b'0' | b's' | b'n')
            || matches!(
                self.long,
                "iconv"
                    | "no-iconv"
                    | "checksum-seed"
                    | "copy-devices"
                    | "write-devices"
                    | "log-format"
                    | "sender"
                    | "server"
            )
    }
}

const fn row(long: &'static str, short: u8, arg: Arg, action: &'static str) -> Row {
    Row {
        long,
        short,
        arg,
        action,
    }
}

use Arg::{Int, None as N, Str};

/// rsync 3.5.0's option table, in its order (the order decides which row an exact refuse term
/// hits first), plus `use-qsort`: rsync's own client sends `--use-qsort` for `--qsort`, which no
/// rsync server knows; we accept it.
static ROWS: &[Row] = &[
    row("help", 0, N, "help"),
    row("version", b'V', N, "version"),
    row("verbose", b'v', N, "verbose"),
    row("no-verbose", 0, N, "no-verbose"),
    row("no-v", 0, N, "no-verbose"),
    row("info", 0, Str, "info"),
    row("debug", 0, Str, "debug"),
    row("stderr", 0, Str, "stderr"),
    row("msgs2stderr", 0, N, "msgs2stderr"),
    row("no-msgs2stderr", 0, N, "no-msgs2stderr"),
    row("quiet", b'q', N, "quiet"),
    row("motd", 0, N, "motd"),
    row("no-motd", 0, N, "no-motd"),
    row("stats", 0, N, "stats"),
    row("human-readable", b'h', N, "human-readable"),
    row("no-human-readable", 0, N, "no-human-readable"),
    row("no-h", 0, N, "no-human-readable"),
    row("dry-run", b'n', N, "dry-run"),
    row("archive", b'a', N, "archive"),
    row("recursive", b'r', N, "recursive"),
    row("no-recursive", 0, N, "no-recursive"),
    row("no-r", 0, N, "no-recursive"),
    row("inc-recursive", 0, N, "inc-recursive"),
    row("no-inc-recursive", 0, N, "no-inc-recursive"),
    row("i-r", 0, N, "inc-recursive"),
    row("no-i-r", 0, N, "no-inc-recursive"),
    row("dirs", b'd', N, "dirs"),
    row("no-dirs", 0, N, "no-dirs"),
    row("no-d", 0, N, "no-dirs"),
    row("old-dirs", 0, N, "old-dirs"),
    row("old-d", 0, N, "old-dirs"),
    row("perms", b'p', N, "perms"),
    row("no-perms", 0, N, "no-perms"),
    row("no-p", 0, N, "no-perms"),
    row("executability", b'E', N, "executability"),
    row("acls", b'A', N, "acls"),
    row("no-acls", 0, N, "no-acls"),
    row("no-A", 0, N, "no-acls"),
    row("xattrs", b'X', N, "xattrs"),
    row("no-xattrs", 0, N, "no-xattrs"),
    row("no-X", 0, N, "no-xattrs"),
    row("times", b't', N, "times"),
    row("no-times", 0, N, "no-times"),
    row("no-t", 0, N, "no-times"),
    row("atimes", b'U', N, "atimes"),
    row("no-atimes", 0, N, "no-atimes"),
    row("no-U", 0, N, "no-atimes"),
    row("open-noatime", 0, N, "open-noatime"),
    row("no-open-noatime", 0, N, "no-open-noatime"),
    row("crtimes", b'N', N, "crtimes"),
    row("no-crtimes", 0, N, "no-crtimes"),
    row("no-N", 0, N, "no-crtimes"),
    row("omit-dir-times", b'O', N, "omit-dir-times"),
    row("no-omit-dir-times", 0, N, "no-omit-dir-times"),
    row("no-O", 0, N, "no-omit-dir-times"),
    row("omit-link-times", b'J', N, "omit-link-times"),
    row("no-omit-link-times", 0, N, "no-omit-link-times"),
    row("no-J", 0, N, "no-omit-link-times"),
    row("modify-window", b'@', Int, "modify-window"),
    row("super", 0, N, "super"),
    row("no-super", 0, N, "no-super"),
    row("fake-super", 0, N, "fake-super"),
    row("owner", b'o', N, "owner"),
    row("no-owner", 0, N, "no-owner"),
    row("no-o", 0, N, "no-owner"),
    row("group", b'g', N, "group"),
    row("no-group", 0, N, "no-group"),
    row("no-g", 0, N, "no-group"),
    row("", b'D', N, "D"),
    row("no-D", 0, N, "no-D"),
    row("devices", 0, N, "devices"),
    row("no-devices", 0, N, "no-devices"),
    row("copy-devices", 0, N, "copy-devices"),
    row("write-devices", 0, N, "write-devices"),
    row("no-write-devices", 0, N, "no-write-devices"),
    row("specials", 0, N, "specials"),
    row("no-specials", 0, N, "no-specials"),
    row("drop-D", 0, N, "drop-D"),
    row("no-drop-D", 0, N, "no-drop-D"),
    row("confine-root", 0, Str, "confine-root"),
    row("links", b'l', N, "links"),
    row("no-links", 0, N, "no-links"),
    row("no-l", 0, N, "no-links"),
    row("copy-links", b'L', N, "copy-links"),
    row("copy-unsafe-links", 0, N, "copy-unsafe-links"),
    row("safe-links", 0, N, "safe-links"),
    row("insecure-links", 0, N, "insecure-links"),
    row("no-insecure-links", 0, N, "no-insecure-links"),
    row("munge-links", 0, N, "munge-links"),
    row("no-munge-links", 0, N, "no-munge-links"),
    row("copy-dirlinks", b'k', N, "copy-dirlinks"),
    row("keep-dirlinks", b'K', N, "keep-dirlinks"),
    row("hard-links", b'H', N, "hard-links"),
    row("no-hard-links", 0, N, "no-hard-links"),
    row("no-H", 0, N, "no-hard-links"),
    row("relative", b'R', N, "relative"),
    row("no-relative", 0, N, "no-relative"),
    row("no-R", 0, N, "no-relative"),
    row("implied-dirs", 0, N, "implied-dirs"),
    row("no-implied-dirs", 0, N, "no-implied-dirs"),
    row("i-d", 0, N, "implied-dirs"),
    row("no-i-d", 0, N, "no-implied-dirs"),
    row("chmod", 0, Str, "chmod"),
    row("ignore-times", b'I', N, "ignore-times"),
    row("size-only", 0, N, "size-only"),
    row("one-file-system", b'x', N, "one-file-system"),
    row("no-one-file-system", 0, N, "no-one-file-system"),
    row("no-x", 0, N, "no-one-file-system"),
    row("update", b'u', N, "update"),
    row("existing", 0, N, "existing"),
    row("ignore-non-existing", 0, N, "existing"),
    row("ignore-existing", 0, N, "ignore-existing"),
    row("max-size", 0, Str, "max-size"),
    row("min-size", 0, Str, "min-size"),
    row("max-alloc", 0, Str, "max-alloc"),
    row("sparse", b'S', N, "sparse"),
    row("no-sparse", 0, N, "no-sparse"),
    row("no-S", 0, N, "no-sparse"),
    row("preallocate", 0, N, "preallocate"),
    row("inplace", 0, N, "inplace"),
    row("no-inplace", 0, N, "no-inplace"),
    row("append", 0, N, "append"),
    row("append-verify", 0, N, "append-verify"),
    row("no-append", 0, N, "no-append"),
    row("del", 0, N, "delete-during"),
    row("delete", 0, N, "delete"),
    row("delete-before", 0, N, "delete-before"),
    row("delete-during", 0, N, "delete-during"),
    row("delete-delay", 0, N, "delete-delay"),
    row("delete-after", 0, N, "delete-after"),
    row("delete-excluded", 0, N, "delete-excluded"),
    row("delete-missing-args", 0, N, "delete-missing-args"),
    row("ignore-missing-args", 0, N, "ignore-missing-args"),
    row("remove-sent-files", 0, N, "remove-sent-files"),
    row("remove-source-files", 0, N, "remove-source-files"),
    row("force", 0, N, "force"),
    row("no-force", 0, N, "no-force"),
    row("ignore-errors", 0, N, "ignore-errors"),
    row("no-ignore-errors", 0, N, "no-ignore-errors"),
    row("max-delete", 0, Int, "max-delete"),
    row("", b'F', N, "F"),
    row("filter", b'f', Str, "filter"),
    row("exclude", 0, Str, "exclude"),
    row("include", 0, Str, "include"),
    row("exclude-from", 0, Str, "exclude-from"),
    row("include-from", 0, Str, "include-from"),
    row("cvs-exclude", b'C', N, "cvs-exclude"),
    row("whole-file", b'W', N, "whole-file"),
    row("no-whole-file", 0, N, "no-whole-file"),
    row("no-W", 0, N, "no-whole-file"),
    row("checksum", b'c', N, "checksum"),
    row("no-checksum", 0, N, "no-checksum"),
    row("no-c", 0, N, "no-checksum"),
    row("checksum-choice", 0, Str, "checksum-choice"),
    row("cc", 0, Str, "checksum-choice"),
    row("block-size", b'B', Str, "block-size"),
    row("compare-dest", 0, Str, "compare-dest"),
    row("copy-dest", 0, Str, "copy-dest"),
    row("link-dest", 0, Str, "link-dest"),
    row("fuzzy", b'y', N, "fuzzy"),
    row("no-fuzzy", 0, N, "no-fuzzy"),
    row("no-y", 0, N, "no-fuzzy"),
    row("compress", b'z', N, "compress"),
    row("old-compress", 0, N, "old-compress"),
    row("new-compress", 0, N, "new-compress"),
    row("no-compress", 0, N, "no-compress"),
    row("no-z", 0, N, "no-compress"),
    row("compress-choice", 0, Str, "compress-choice"),
    row("zc", 0, Str, "compress-choice"),
    row("skip-compress", 0, Str, "skip-compress"),
    row("compress-level", 0, Int, "compress-level"),
    row("zl", 0, Int, "compress-level"),
    row("compress-threads", 0, Int, "compress-threads"),
    row("zt", 0, Int, "compress-threads"),
    row("", b'P', N, "P"),
    row("progress", 0, N, "progress"),
    row("no-progress", 0, N, "no-progress"),
    row("partial", 0, N, "partial"),
    row("no-partial", 0, N, "no-partial"),
    row("partial-dir", 0, Str, "partial-dir"),
    row("delay-updates", 0, N, "delay-updates"),
    row("no-delay-updates", 0, N, "no-delay-updates"),
    row("prune-empty-dirs", b'm', N, "prune-empty-dirs"),
    row("no-prune-empty-dirs", 0, N, "no-prune-empty-dirs"),
    row("no-m", 0, N, "no-prune-empty-dirs"),
    row("log-file", 0, Str, "log-file"),
    row("log-file-format", 0, Str, "log-file-format"),
    row("out-format", 0, Str, "out-format"),
    row("log-format", 0, Str, "out-format"),
    row("itemize-changes", b'i', N, "itemize-changes"),
    row("no-itemize-changes", 0, N, "no-itemize-changes"),
    row("no-i", 0, N, "no-itemize-changes"),
    row("bwlimit", 0, Str, "bwlimit"),
    row("no-bwlimit", 0, N, "no-bwlimit"),
    row("backup", b'b', N, "backup"),
    row("no-backup", 0, N, "no-backup"),
    row("backup-dir", 0, Str, "backup-dir"),
    row("suffix", 0, Str, "suffix"),
    row("list-only", 0, N, "list-only"),
    row("read-batch", 0, Str, "read-batch"),
    row("write-batch", 0, Str, "write-batch"),
    row("only-write-batch", 0, Str, "only-write-batch"),
    row("files-from", 0, Str, "files-from"),
    row("from0", b'0', N, "from0"),
    row("no-from0", 0, N, "no-from0"),
    row("old-args", 0, N, "old-args"),
    row("no-old-args", 0, N, "no-old-args"),
    row("secluded-args", b's', N, "secluded-args"),
    row("no-secluded-args", 0, N, "no-secluded-args"),
    row("protect-args", 0, N, "secluded-args"),
    row("no-protect-args", 0, N, "no-secluded-args"),
    row("no-s", 0, N, "no-secluded-args"),
    row("trust-sender", 0, N, "trust-sender"),
    row("numeric-ids", 0, N, "numeric-ids"),
    row("no-numeric-ids", 0, N, "no-numeric-ids"),
    row("usermap", 0, Str, "usermap"),
    row("groupmap", 0, Str, "groupmap"),
    row("chown", 0, Str, "chown"),
    row("timeout", 0, Int, "timeout"),
    row("no-timeout", 0, N, "no-timeout"),
    row("contimeout", 0, Int, "contimeout"),
    row("no-contimeout", 0, N, "no-contimeout"),
    row("fsync", 0, N, "fsync"),
    row("stop-after", 0, Str, "stop-after"),
    row("time-limit", 0, Str, "stop-after"),
    row("stop-at", 0, Str, "stop-at"),
    row("rsh", b'e', Str, "rsh"),
    row("rsync-path", 0, Str, "rsync-path"),
    row("temp-dir", b'T', Str, "temp-dir"),
    row("iconv", 0, Str, "iconv"),
    row("no-iconv", 0, N, "no-iconv"),
    row("ipv4", b'4', N, "ipv4"),
    row("ipv6", b'6', N, "ipv6"),
    row("8-bit-output", b'8', N, "8-bit-output"),
    row("no-8-bit-output", 0, N, "no-8-bit-output"),
    row("no-8", 0, N, "no-8-bit-output"),
    row("mkpath", 0, N, "mkpath"),
    row("no-mkpath", 0, N, "no-mkpath"),
    row("qsort", 0, N, "qsort"),
    row("copy-as", 0, Str, "copy-as"),
    row("address", 0, Str, "address"),
    row("port", 0, Int, "port"),
    row("sockopts", 0, Str, "sockopts"),
    row("password-file", 0, Str, "password-file"),
    row("early-input", 0, Str, "early-input"),
    row("blocking-io", 0, N, "blocking-io"),
    row("no-blocking-io", 0, N, "no-blocking-io"),
    row("outbuf", 0, Str, "outbuf"),
    row("remote-option", b'M', Str, "remote-option"),
    row("protocol", 0, Int, "protocol"),
    row("checksum-seed", 0, Int, "checksum-seed"),
    row("server", 0, N, "server"),
    row("sender", 0, N, "sender"),
    row("config", 0, Str, "daemon"),
    row("daemon", 0, N, "daemon"),
    row("dparam", 0, Str, "daemon"),
    row("detach", 0, N, "daemon"),
    row("no-detach", 0, N, "daemon"),
    row("use-qsort", 0, N, "qsort"),
];

fn find_long(name: &[u8]) -> Option<&'static Row> {
    ROWS.iter()
        .find(|r| !r.long.is_empty() && r.long.as_bytes() == name)
}

fn find_short(c: u8) -> Option<&'static Row> {
    ROWS.iter().find(|r| r.short != 0 && r.short == c)
}

fn find_name(name: &str) -> Option<&'static Row> {
    ROWS.iter().find(|r| r.name() == name)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses one argument vector as a daemon reads it: `args` is everything after `@RSYNCD: OK`,
/// starting with `--server`.
pub fn parse(args: &[Vec<u8>]) -> Result<ServerArgs, ArgsError> {
    let dot = args.iter().position(|w| w == b".").unwrap_or(args.len());
    let words = args
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i < dot {
                unbackslash(w)
            } else {
                Cow::Borrowed(w.as_slice())
            }
        })
        .collect::<Vec<_>>();
    parse_words(&words)
}

/// Parses the two vectors of a `-s` (`--secluded-args`) client: `first` as for [`parse`] (it
/// holds `--server`, `--sender` and the short cluster with `s`), then `second`, which the client
/// sends next, starting with a dummy `rsync` word, unescaped (`main.c send_protected_args`).
pub fn parse_secluded(first: &[Vec<u8>], second: &[Vec<u8>]) -> Result<ServerArgs, ArgsError> {
    let mut words: Vec<Cow<'_, [u8]>> = first.iter().map(|w| unbackslash(w)).collect();
    words.extend(second.iter().skip(1).map(|w| Cow::Borrowed(w.as_slice())));
    parse_words(&words)
}

/// Undoes the client's `safe_arg()` escaping: `\X` becomes `X` (rsync 3.5 `io.c unbackslash_arg`).
fn unbackslash(w: &[u8]) -> Cow<'_, [u8]> {
    if !w.contains(&b'\\') {
        return Cow::Borrowed(w);
    }
    let mut out = Vec::with_capacity(w.len());
    let mut it = w.iter().peekable();
    while let Some(&b) = it.next() {
        if b == b'\\'
            && let Some(&&next) = it.peek()
        {
            out.push(next);
            it.next();
            continue;
        }
        out.push(b);
    }
    Cow::Owned(out)
}

/// The state of one parse: the options plus what rsync keeps in globals until the end.
#[derive(Default)]
struct Parser {
    o: ServerOptions,
    sender: bool,
    /// `recurse`: 1 from `-a`, 2 from `-r`.
    recurse: u8,
    /// `xfer_dirs`: -1 unset, 0, 2 (`-d`), 4 (`--old-dirs`).
    xfer_dirs: i8,
    /// `relative_paths` before its default is resolved.
    relative: Option<bool>,
    delete_mode: bool,
    delete_before: bool,
    /// 1 during, 2 delay.
    delete_during: u8,
    delete_after: bool,
    /// Bit 1 ignore, bit 2 delete.
    missing_args: u8,
    /// `max_delete` as given (rsync's `INT_MIN` when unset).
    max_delete: Option<i32>,
    protect_args: Option<bool>,
    usermap_via_chown: bool,
    groupmap_via_chown: bool,
}

fn parse_words(words: &[Cow<'_, [u8]>]) -> Result<ServerArgs, ArgsError> {
    let mut p = Parser {
        xfer_dirs: -1,
        ..Parser::default()
    };
    let mut leftovers: Vec<Vec<u8>> = Vec::new();
    let mut only_leftovers = false;
    let mut i = 0;
    while let Some(word) = words.get(i) {
        let word: &[u8] = word;
        i += 1;
        if only_leftovers || word.first() != Some(&b'-') || word == b"-" {
            leftovers.push(word.to_vec());
            continue;
        }
        if word == b"--" {
            only_leftovers = true;
            continue;
        }
        if let Some(body) = word.strip_prefix(b"--") {
            let (name, inline) = match body.iter().position(|&b| b == b'=') {
                Some(eq) => (body.get(..eq).unwrap_or_default(), body.get(eq + 1..)),
                None => (body, None),
            };
            let row = find_long(name).ok_or_else(|| ArgsError::Unknown(lossy(word)))?;
            if row.arg == Arg::None {
                if inline.is_some() {
                    return Err(ArgsError::UnwantedArgument(lossy(word)));
                }
                if p.apply(row, None, word)? == Flow::Restart {
                    leftovers.clear();
                    i = 0;
                }
                continue;
            }
            let (value, holder) = match inline {
                Some(v) => (v, word),
                None => {
                    let next = words
                        .get(i)
                        .ok_or_else(|| ArgsError::MissingArgument(lossy(word)))?;
                    i += 1;
                    (&next[..], &next[..])
                }
            };
            p.apply(row, Some(value), holder)?;
            continue;
        }
        // A short cluster: letters until one takes a value, which is the rest of the word
        // (one `=` dropped) or else the next word.
        let mut j = 1;
        while let Some(&c) = word.get(j) {
            j += 1;
            let row = find_short(c).ok_or_else(|| ArgsError::Unknown(lossy(word)))?;
            let rest = word.get(j..).unwrap_or_default();
            if row.arg == Arg::None {
                if rest.first() == Some(&b'=') {
                    return Err(ArgsError::UnwantedArgument(lossy(word)));
                }
                p.apply(row, None, word)?;
                continue;
            }
            let (value, holder) = if rest.is_empty() {
                let next = words
                    .get(i)
                    .ok_or_else(|| ArgsError::MissingArgument(lossy(word)))?;
                i += 1;
                (&next[..], &next[..])
            } else {
                (rest.strip_prefix(b"=").unwrap_or(rest), word)
            };
            p.apply(row, Some(value), holder)?;
            break;
        }
    }
    p.finish(leftovers)
}

/// Whether parsing goes on, or starts over as rsync does the first time it sees `--server`.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Go,
    Restart,
}

impl Parser {
    fn see(&mut self, row: &Row) {
        let name = row.name();
        if !self.o.seen.contains(&name) {
            self.o.seen.push(name);
        }
    }

    /// Applies one option. `holder` is the word holding the value, which rsync names in a
    /// numeric error.
    #[allow(clippy::too_many_lines)]
    fn apply(&mut self, row: &Row, value: Option<&[u8]>, holder: &[u8]) -> Result<Flow, ArgsError> {
        self.see(row);
        let v = value.unwrap_or_default();
        let text = || lossy(v);
        let int = || popt_int(v, holder);
        let o = &mut self.o;
        match row.action {
            "help" => o.help = true,
            "version" => o.version = o.version.saturating_add(1),
            "verbose" => o.verbose = o.verbose.saturating_add(1),
            "no-verbose" => o.verbose = 0,
            "info" => o.info.push(text()),
            "debug" => o.debug.push(text()),
            "stderr" => {
                let prefix_of = |word: &str| !v.is_empty() && word.as_bytes().starts_with(v);
                o.stderr = Some(if prefix_of("errors") {
                    StderrMode::Errors
                } else if prefix_of("all") {
                    StderrMode::All
                } else if prefix_of("client") {
                    StderrMode::Client
                } else {
                    return Err(ArgsError::Invalid(format!(
                        "--stderr mode \"{}\" is not one of errors, all, or client",
                        text()
                    )));
                });
            }
            "msgs2stderr" => o.stderr = Some(StderrMode::All),
            "no-msgs2stderr" => o.stderr = Some(StderrMode::Client),
            "quiet" => o.quiet = o.quiet.saturating_add(1),
            "motd" => o.motd = true,
            "no-motd" => o.motd = false,
            "stats" => o.stats = true,
            "human-readable" => o.human_readable = o.human_readable.saturating_add(1),
            "no-human-readable" => o.human_readable = 0,
            "dry-run" => o.dry_run = true,
            "archive" => {
                o.archive = true;
                if self.recurse == 0 {
                    self.recurse = 1;
                }
                o.links = true;
                o.perms = true;
                o.times = true;
                o.group = true;
                o.owner = true;
                o.devices = true;
                o.specials = true;
            }
            "recursive" => self.recurse = 2,
            "no-recursive" => self.recurse = 0,
            "inc-recursive" => o.inc_recursive = true,
            "no-inc-recursive" => o.inc_recursive = false,
            "dirs" => self.xfer_dirs = 2,
            "no-dirs" => self.xfer_dirs = 0,
            "old-dirs" => self.xfer_dirs = 4,
            "perms" => o.perms = true,
            "no-perms" => o.perms = false,
            "executability" => o.executability = true,
            "acls" => {
                o.acls = true;
                o.perms = true;
            }
            "no-acls" => o.acls = false,
            "xattrs" => o.xattrs = o.xattrs.saturating_add(1),
            "no-xattrs" => o.xattrs = 0,
            "times" => o.times = true,
            "no-times" => o.times = false,
            "atimes" => {
                o.atimes = o.atimes.saturating_add(1);
                if o.atimes > 1 {
                    o.open_noatime = true;
                }
            }
            "no-atimes" => o.atimes = 0,
            "open-noatime" => o.open_noatime = true,
            "no-open-noatime" => o.open_noatime = false,
            "crtimes" => o.crtimes = true,
            "no-crtimes" => o.crtimes = false,
            "omit-dir-times" => o.omit_dir_times = true,
            "no-omit-dir-times" => o.omit_dir_times = false,
            "omit-link-times" => o.omit_link_times = true,
            "no-omit-link-times" => o.omit_link_times = false,
            "modify-window" => o.modify_window = Some(int()?),
            "super" => o.super_mode = Some(SuperMode::Super),
            "no-super" => o.super_mode = Some(SuperMode::NoSuper),
            "fake-super" => o.super_mode = Some(SuperMode::FakeSuper),
            "owner" => o.owner = true,
            "no-owner" => o.owner = false,
            "group" => o.group = true,
            "no-group" => o.group = false,
            "D" => {
                o.devices = true;
                o.specials = true;
            }
            "no-D" => {
                o.devices = false;
                o.specials = false;
            }
            "devices" => o.devices = true,
            "no-devices" => o.devices = false,
            "copy-devices" => o.copy_devices = true,
            "write-devices" => o.write_devices = true,
            "no-write-devices" => o.write_devices = false,
            "specials" => o.specials = true,
            "no-specials" => o.specials = false,
            "drop-D" => o.drop_devices = true,
            "no-drop-D" => o.drop_devices = false,
            "confine-root" => o.confine_root = Some(v.to_vec()),
            "links" => o.links = true,
            "no-links" => o.links = false,
            "copy-links" => o.copy_links = true,
            "copy-unsafe-links" => o.copy_unsafe_links = true,
            "safe-links" => o.safe_links = true,
            "insecure-links" => o.insecure_links = true,
            "no-insecure-links" => o.insecure_links = false,
            "munge-links" => o.munge_links = true,
            "no-munge-links" => o.munge_links = false,
            "copy-dirlinks" => o.copy_dirlinks = true,
            "keep-dirlinks" => o.keep_dirlinks = true,
            "hard-links" => o.hard_links = o.hard_links.saturating_add(1),
            "no-hard-links" => o.hard_links = 0,
            "relative" => self.relative = Some(true),
            "no-relative" => self.relative = Some(false),
            "implied-dirs" => o.implied_dirs = true,
            "no-implied-dirs" => o.implied_dirs = false,
            "chmod" => o.chmod.push(text()),
            "ignore-times" => o.ignore_times = true,
            "size-only" => o.size_only = true,
            "one-file-system" => o.one_file_system = o.one_file_system.saturating_add(1),
            "no-one-file-system" => o.one_file_system = 0,
            "update" => o.update = true,
            "existing" => o.existing = true,
            "ignore-existing" => o.ignore_existing = true,
            "max-size" => o.max_size = Some(parse_size(v, b'b', "max-size", 0, None, false)?),
            "min-size" => o.min_size = Some(parse_size(v, b'b', "min-size", 0, None, false)?),
            "max-alloc" => {
                let size = parse_size(v, b'B', "max-alloc", 1 << 20, None, true)?;
                if size == 0 {
                    return Err(ArgsError::Invalid(
                        "max-alloc must be greater than zero".into(),
                    ));
                }
                o.max_alloc = Some(size);
            }
            "sparse" => o.sparse = true,
            "no-sparse" => o.sparse = false,
            "preallocate" => o.preallocate = true,
            "inplace" => o.inplace = true,
            "no-inplace" => o.inplace = false,
            // A server counts `--append`s: the client says `--append --append` for -verify.
            "append" => {
                o.append = match o.append {
                    Append::Off => Append::Append,
                    _ => Append::Verify,
                }
            }
            "append-verify" => o.append = Append::Verify,
            "no-append" => o.append = Append::Off,
            "delete-during" => self.delete_during = 1,
            "delete" => self.delete_mode = true,
            "delete-before" => self.delete_before = true,
            "delete-delay" => self.delete_during = 2,
            "delete-after" => self.delete_after = true,
            "delete-excluded" => o.delete_excluded = true,
            "delete-missing-args" => self.missing_args |= 2,
            "ignore-missing-args" => self.missing_args |= 1,
            "remove-sent-files" => o.remove_source_files = 2,
            "remove-source-files" => o.remove_source_files = 1,
            "force" => o.force = true,
            "no-force" => o.force = false,
            "ignore-errors" => o.ignore_errors = true,
            "no-ignore-errors" => o.ignore_errors = false,
            "max-delete" => self.max_delete = Some(int()?),
            "F" => {
                o.filter_files = o.filter_files.saturating_add(1);
                match o.filter_files {
                    1 => o
                        .filters
                        .push(FilterArg::Filter(b": /.rsync-filter".to_vec())),
                    2 => o
                        .filters
                        .push(FilterArg::Filter(b"- .rsync-filter".to_vec())),
                    _ => {}
                }
            }
            "filter" => o.filters.push(FilterArg::Filter(v.to_vec())),
            "exclude" => o.filters.push(FilterArg::Exclude(v.to_vec())),
            "include" => o.filters.push(FilterArg::Include(v.to_vec())),
            "exclude-from" => o.filters.push(FilterArg::ExcludeFrom(v.to_vec())),
            "include-from" => o.filters.push(FilterArg::IncludeFrom(v.to_vec())),
            "cvs-exclude" => o.cvs_exclude = true,
            "whole-file" => o.whole_file = Some(true),
            "no-whole-file" => o.whole_file = Some(false),
            "checksum" => o.checksum = true,
            "no-checksum" => o.checksum = false,
            "checksum-choice" => o.checksum_choice = Some(text()),
            "block-size" => {
                let size =
                    parse_size(v, b'b', "block-size", 0, Some(MAX_BLOCK_SIZE.into()), false)?;
                o.block_size = Some(u32::try_from(size).unwrap_or(MAX_BLOCK_SIZE));
            }
            "compare-dest" => self.basis(BasisKind::Compare, v)?,
            "copy-dest" => self.basis(BasisKind::Copy, v)?,
            "link-dest" => self.basis(BasisKind::Link, v)?,
            "fuzzy" => o.fuzzy = o.fuzzy.saturating_add(1),
            "no-fuzzy" => o.fuzzy = 0,
            "compress" => o.compress = o.compress.saturating_add(1),
            "old-compress" => o.compress_choice = Some("zlib".into()),
            "new-compress" => o.compress_choice = Some("zlibx".into()),
            "no-compress" => {
                o.compress = 0;
                o.compress_choice = None;
            }
            "compress-choice" => o.compress_choice = Some(text()),
            "skip-compress" => o.skip_compress = Some(text()),
            "compress-level" => o.compress_level = Some(int()?),
            "compress-threads" => o.compress_threads = Some(int()?),
            "P" => {
                o.progress = true;
                o.partial = true;
            }
            "progress" => o.progress = true,
            "no-progress" => o.progress = false,
            "partial" => o.partial = true,
            "no-partial" => o.partial = false,
            "partial-dir" => o.partial_dir = Some(v.to_vec()),
            "delay-updates" => o.delay_updates = true,
            "no-delay-updates" => o.delay_updates = false,
            "prune-empty-dirs" => o.prune_empty_dirs = true,
            "no-prune-empty-dirs" => o.prune_empty_dirs = false,
            "log-file" => o.log_file = Some(v.to_vec()),
            "log-file-format" => o.log_file_format = Some(text()),
            "out-format" => o.out_format = Some(text()),
            "itemize-changes" => o.itemize = o.itemize.saturating_add(1),
            "no-itemize-changes" => o.itemize = 0,
            "bwlimit" => o.bwlimit = parse_bwlimit(v)?,
            "no-bwlimit" => o.bwlimit = 0,
            "backup" => o.backup = true,
            "no-backup" => o.backup = false,
            "backup-dir" => o.backup_dir = Some(v.to_vec()),
            "suffix" => o.suffix = Some(v.to_vec()),
            "list-only" => o.list_only = true,
            "read-batch" => o.batch = Some(BatchMode::Read),
            "write-batch" => o.batch = Some(BatchMode::Write),
            "only-write-batch" => o.batch = Some(BatchMode::OnlyWrite),
            "files-from" => o.files_from = Some(v.to_vec()),
            "from0" => o.from0 = true,
            "no-from0" => o.from0 = false,
            "old-args" => o.old_args = o.old_args.saturating_add(1),
            "no-old-args" => o.old_args = 0,
            "secluded-args" => self.protect_args = Some(true),
            "no-secluded-args" => self.protect_args = Some(false),
            "trust-sender" => o.trust_sender = true,
            "numeric-ids" => o.numeric_ids = true,
            "no-numeric-ids" => o.numeric_ids = false,
            "usermap" => {
                if o.usermap.is_some() {
                    return Err(ArgsError::Invalid(if self.usermap_via_chown {
                        "--usermap conflicts with prior --chown.".into()
                    } else {
                        "You can only specify --usermap once.".into()
                    }));
                }
                o.usermap = Some(text());
                o.owner = true;
            }
            "groupmap" => {
                if o.groupmap.is_some() {
                    return Err(ArgsError::Invalid(if self.groupmap_via_chown {
                        "--groupmap conflicts with prior --chown.".into()
                    } else {
                        "You can only specify --groupmap once.".into()
                    }));
                }
                o.groupmap = Some(text());
                o.group = true;
            }
            "chown" => self.chown(v)?,
            "timeout" => o.timeout = int()?,
            "no-timeout" => o.timeout = 0,
            "contimeout" => o.contimeout = int()?,
            "no-contimeout" => o.contimeout = 0,
            "fsync" => o.fsync = true,
            "stop-after" => {
                let minutes = atol(v);
                if minutes <= 0 || minutes > i64::MAX / 60 {
                    return Err(ArgsError::Invalid(format!(
                        "invalid --stop-after value: {}",
                        text()
                    )));
                }
                o.stop_after = u64::try_from(minutes).ok();
            }
            "stop-at" => o.stop_at = Some(text()),
            "rsh" => o.client_info = Some(text()),
            "temp-dir" => {
                if v.len() >= 1024 - 10 {
                    return Err(ArgsError::Invalid(
                        "the --temp-dir path is WAY too long.".into(),
                    ));
                }
                o.temp_dir = Some(v.to_vec());
            }
            "iconv" => o.iconv = Some(text()),
            "no-iconv" => o.iconv = None,
            "mkpath" => o.mkpath = true,
            "no-mkpath" => o.mkpath = false,
            "qsort" => o.qsort = true,
            "copy-as" => o.copy_as = Some(text()),
            "port" => {
                int()?;
            }
            "remote-option" => {
                if v.first() != Some(&b'-') {
                    return Err(ArgsError::Invalid(format!(
                        "Remote option must start with a dash: {}",
                        text()
                    )));
                }
                o.remote_options.push(v.to_vec());
            }
            "protocol" => o.protocol = Some(int()?),
            "checksum-seed" => o.checksum_seed = int()?,
            "server" => {
                // rsync starts over on its first `--server` (options before it count twice),
                // and a server forgets any `--iconv` given before it.
                o.iconv = None;
                if !o.server {
                    o.server = true;
                    return Ok(Flow::Restart);
                }
            }
            "sender" => {
                if !o.server {
                    return Err(ArgsError::Invalid(
                        "--sender is only valid with --server".into(),
                    ));
                }
                self.sender = true;
            }
            "daemon" => return Err(ArgsError::Invalid("Attempt to hack rsync thwarted!".into())),
            // Client-side options with nothing to keep on a server (`rsync-path`, `address`,
            // `sockopts`, `password-file`, `early-input`, `outbuf`, `blocking-io`, `ipv4`,
            // `ipv6`, `8-bit-output`): seen, and otherwise ignored.
            _ => {}
        }
        Ok(Flow::Go)
    }

    fn basis(&mut self, kind: BasisKind, dir: &[u8]) -> Result<(), ArgsError> {
        let name = |k: BasisKind| match k {
            BasisKind::Compare => "--compare-dest",
            BasisKind::Copy => "--copy-dest",
            BasisKind::Link => "--link-dest",
        };
        if let Some(have) = self.o.basis_kind
            && have != kind
        {
            return Err(ArgsError::Invalid(format!(
                "ERROR: the {} option conflicts with the {} option",
                name(kind),
                name(have)
            )));
        }
        if self.o.basis_dirs.len() >= MAX_BASIS_DIRS {
            return Err(ArgsError::Invalid(format!(
                "ERROR: at most {MAX_BASIS_DIRS} {} args may be specified",
                name(kind)
            )));
        }
        self.o.basis_kind = Some(kind);
        self.o.basis_dirs.push(dir.to_vec());
        Ok(())
    }

    /// `--chown=USER:GROUP` becomes `--usermap=*:USER` and `--groupmap=*:GROUP`.
    fn chown(&mut self, v: &[u8]) -> Result<(), ArgsError> {
        let (user, group) = match v.iter().position(|&b| b == b':') {
            Some(c) => (v.get(..c).unwrap_or_default(), v.get(c + 1..)),
            None => (v, None),
        };
        if !user.is_empty() {
            if self.o.usermap.is_some() {
                return Err(ArgsError::Invalid(if self.usermap_via_chown {
                    "You can only specify a user-affecting --chown once.".into()
                } else {
                    "--chown conflicts with prior --usermap.".into()
                }));
            }
            self.o.usermap = Some(format!("*:{}", lossy(user)));
            self.usermap_via_chown = true;
            self.o.owner = true;
        }
        if let Some(group) = group.filter(|g| !g.is_empty()) {
            if self.o.groupmap.is_some() {
                return Err(ArgsError::Invalid(if self.groupmap_via_chown {
                    "You can only specify a group-affecting --chown once.".into()
                } else {
                    "--chown conflicts with prior --groupmap.".into()
                }));
            }
            self.o.groupmap = Some(format!("*:{}", lossy(group)));
            self.groupmap_via_chown = true;
            self.o.group = true;
        }
        Ok(())
    }

    /// rsync's checks and defaults after the option loop (`parse_arguments`, in its order).
    fn finish(mut self, leftovers: Vec<Vec<u8>>) -> Result<ServerArgs, ArgsError> {
        let o = &mut self.o;
        if o.old_args > 0 && self.protect_args == Some(true) {
            return Err(ArgsError::Invalid(
                "--secluded-args conflicts with --old-args.".into(),
            ));
        }
        o.secluded_args = self.protect_args == Some(true);
        let auto = |c: &Option<String>| {
            c.as_deref().is_some_and(|c| {
                c.eq_ignore_ascii_case("auto") || c.eq_ignore_ascii_case("auto,auto")
            })
        };
        if auto(&o.checksum_choice) {
            o.checksum_choice = None;
        }
        if o.compress_choice.is_none() && o.compress > 1 {
            o.compress_choice = Some("zlibx".into());
        }
        if o.compress_choice
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("auto"))
        {
            o.compress_choice = None;
        }
        if o.super_mode == Some(SuperMode::FakeSuper) && o.xattrs > 1 {
            return Err(ArgsError::Invalid("--fake-super conflicts with -XX".into()));
        }
        o.max_delete = self.max_delete.map(|n| u32::try_from(n).unwrap_or(0));
        if o.files_from.is_some() {
            // `-a` does not recurse with --files-from; an explicit -r does.
            if self.recurse == 1 {
                self.recurse = 0;
            }
            if self.xfer_dirs < 0 {
                self.xfer_dirs = 1;
            }
        }
        if self.xfer_dirs >= 4 {
            o.filters.push(FilterArg::Filter(b"- /*/*".to_vec()));
            o.old_dirs = true;
            self.recurse = 1;
            self.xfer_dirs = 1;
        } else if self.recurse > 0 {
            self.xfer_dirs = 1;
        } else if self.xfer_dirs < 0 {
            self.xfer_dirs = i8::from(o.list_only);
        }
        o.recursive = self.recurse > 0;
        o.dirs = self.xfer_dirs > 0;
        o.relative = self.relative.unwrap_or(o.files_from.is_some());
        if !o.relative {
            o.implied_dirs = false;
        }
        let whens = u8::from(self.delete_before)
            + u8::from(self.delete_during > 0)
            + u8::from(self.delete_after);
        if whens > 1 {
            return Err(ArgsError::Invalid(
                "You may not combine multiple --delete-WHEN options.".into(),
            ));
        }
        o.delete = if self.delete_before {
            Some(DeleteWhen::Before)
        } else if self.delete_during == 2 {
            Some(DeleteWhen::Delay)
        } else if self.delete_during == 1 {
            Some(DeleteWhen::During)
        } else if self.delete_after {
            Some(DeleteWhen::After)
        } else if self.delete_mode || o.delete_excluded {
            Some(DeleteWhen::Unspecified)
        } else {
            None
        };
        if !o.dirs && o.delete.is_some() {
            return Err(ArgsError::Invalid(
                "--delete does not work without --recursive (-r) or --dirs (-d).".into(),
            ));
        }
        o.missing_args = match self.missing_args {
            0 => MissingArgs::Error,
            1 => MissingArgs::Ignore,
            _ => MissingArgs::Delete,
        };
        if o.append != Append::Off {
            if o.whole_file == Some(true) {
                return Err(ArgsError::Invalid(
                    "--append cannot be used with --whole-file".into(),
                ));
            }
            o.inplace = true;
        }
        if o.write_devices {
            o.inplace = true;
        }
        if o.inplace {
            if o.partial_dir.is_some() || o.delay_updates {
                return Err(ArgsError::Invalid(format!(
                    "--{} cannot be used with --{}",
                    if o.append == Append::Off {
                        "inplace"
                    } else {
                        "append"
                    },
                    if o.delay_updates {
                        "delay-updates"
                    } else {
                        "partial-dir"
                    }
                )));
            }
            o.partial = false;
        } else if let Some(dir) = &o.partial_dir
            && !(dir.is_empty() || dir == b"." || dir == b"./")
        {
            o.partial = true;
        }
        let mut rest = leftovers.into_iter();
        let paths = match rest.next() {
            None => Vec::new(),
            Some(dot) if dot == b"." => rest.collect(),
            Some(other) => {
                return Err(ArgsError::Invalid(format!(
                    "expected \".\" before the file arguments, not \"{}\"",
                    lossy(&other)
                )));
            }
        };
        Ok(ServerArgs {
            sender: self.sender,
            options: self.o,
            paths,
        })
    }
}

/// popt's `int` conversion: `strtoll(s, &end, 0)` over the whole string (so `0x10` and `010`
/// are hexadecimal and octal, and an empty string is 0), then within `int`.
fn popt_int(v: &[u8], holder: &[u8]) -> Result<i32, ArgsError> {
    let bad = || ArgsError::BadNumber(lossy(holder));
    if v.is_empty() {
        return Ok(0);
    }
    let trimmed_at = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .ok_or_else(bad)?;
    let mut s = v.get(trimmed_at..).unwrap_or_default();
    let negative = s.first() == Some(&b'-');
    if matches!(s.first(), Some(b'-' | b'+')) {
        s = s.get(1..).unwrap_or_default();
    }
    let (radix, digits) = match s {
        [b'0', b'x' | b'X', rest @ ..] if rest.first().is_some_and(u8::is_ascii_hexdigit) => {
            (16, rest)
        }
        [b'0', rest @ ..] if !rest.is_empty() => (8, rest),
        _ => (10, s),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let mut n: i128 = 0;
    for &d in digits {
        let d = char::from(d).to_digit(radix).ok_or_else(bad)?;
        // strtoll saturates; anything past an int is an overflow either way.
        n = (n * i128::from(radix) + i128::from(d)).min(i128::from(i64::MAX) + 1);
    }
    let n = if negative { -n } else { n };
    i32::try_from(n).map_err(|_| ArgsError::Overflow(lossy(holder)))
}

/// C's `atol`: leading space, a sign and digits; anything after is ignored.
fn atol(v: &[u8]) -> i64 {
    let s = v.iter().skip_while(|b| b.is_ascii_whitespace());
    let mut neg = false;
    let mut n: i64 = 0;
    for (k, &b) in s.enumerate() {
        match b {
            b'-' | b'+' if k == 0 => neg = b == b'-',
            b'0'..=b'9' => n = n.saturating_mul(10).saturating_add(i64::from(b - b'0')),
            _ => break,
        }
    }
    if neg { -n } else { n }
}

/// `--bwlimit=RATE` as rsync reads it (KiB per second unless a suffix says otherwise; at
/// least 512 bytes, or 0 for no limit), in whole KiB per second, as rsync's client sends it.
///
/// # Errors
/// A malformed or too small rate, with rsync's message.
pub fn parse_bwlimit(v: &[u8]) -> Result<u64, ArgsError> {
    let bytes = parse_size(v, b'K', "bwlimit", 512, None, true)?;
    Ok(bytes.saturating_add(512) / 1024)
}

/// rsync's `parse_size_arg`: digits with an optional fraction, a unit (`b`, `k`, `m`, `g`, `t`,
/// `p`, default `def_unit`), then `b` for powers of 1000 or `ib`/nothing for 1024, then an
/// optional `+1`/`-1`. `unlimited_0` lets 0 pass a minimum.
fn parse_size(
    arg: &[u8],
    def_unit: u8,
    name: &str,
    min: u64,
    max: Option<u64>,
    unlimited_0: bool,
) -> Result<u64, ArgsError> {
    let fail = |err: &str, limit: Option<(&str, u64)>| {
        let mut msg = format!("--{name}={} is {err}", lossy(arg));
        if let Some((which, n)) = limit {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            msg.push_str(&format!(
                " ({which}: {}{})",
                big_num(n, 3),
                if unlimited_0 && which == "min" {
                    " or 0 for unlimited"
                } else {
                    ""
                }
            ));
        }
        ArgsError::Invalid(msg)
    };
    let size_max: u128 = max.map_or(u128::from(u64::MAX / 2), u128::from);
    let int_len = arg.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut at = int_len;
    let mut frac: &[u8] = &[];
    if arg.get(at) == Some(&b'.') {
        let f = arg.get(at + 1..).unwrap_or_default();
        let n = f.iter().take_while(|b| b.is_ascii_digit()).count();
        frac = f.get(..n).unwrap_or_default();
        at += 1 + n;
    }
    let unit = match arg.get(at) {
        Some(&c) if c != b'+' && c != b'-' => {
            at += 1;
            c
        }
        _ => def_unit,
    };
    let reps = match unit.to_ascii_lowercase() {
        b'b' => 0,
        b'k' => 1,
        b'm' => 2,
        b'g' => 3,
        b't' => 4,
        b'p' => 5,
        _ => return Err(fail("invalid", None)),
    };
    let tail = arg.get(at..).unwrap_or_default();
    let (mult, tail): (u128, &[u8]) = match tail {
        [b'b' | b'B', rest @ ..] => (1000, rest),
        [] | [b'+' | b'-', ..] => (1024, tail),
        [b'i' | b'I', b'b' | b'B', rest @ ..] => (1024, rest),
        _ => return Err(fail("invalid", None)),
    };
    let unit_size = (0..reps).try_fold(1u128, |s, _| (s <= size_max / mult).then_some(s * mult));
    let too_large = || fail("too large", max.map(|m| ("max", m)));
    let unit_size = unit_size.ok_or_else(too_large)?;
    let digits = |d: &[u8]| {
        d.iter().try_fold(0u128, |n, &c| {
            n.checked_mul(10)?.checked_add(u128::from(c - b'0'))
        })
    };
    let whole = digits(arg.get(..int_len).unwrap_or_default()).ok_or_else(too_large)?;
    let frac_den = 10u128.checked_pow(u32::try_from(frac.len()).unwrap_or(u32::MAX));
    let mut size = whole.checked_mul(unit_size).ok_or_else(too_large)?;
    if let (Some(den), Some(num)) = (frac_den, digits(frac)) {
        size = size.saturating_add(num.saturating_mul(unit_size) / den);
    }
    if size > size_max || (max.is_none() && size >= size_max) {
        return Err(too_large());
    }
    let mut tail = tail;
    if let [sign @ (b'+' | b'-'), b'1', rest @ ..] = tail
        && at > 0
    {
        if *sign == b'+' {
            if size == size_max {
                return Err(too_large());
            }
            size += 1;
        } else {
            size = size.saturating_sub(1);
        }
        tail = rest;
    }
    if !tail.is_empty() {
        return Err(fail("invalid", None));
    }
    if max.is_some_and(|m| size > u128::from(m)) {
        return Err(too_large());
    }
    if size < u128::from(min) && !(unlimited_0 && size == 0) {
        return Err(fail("too small", Some(("min", min))));
    }
    Ok(u64::try_from(size).unwrap_or(u64::MAX))
}

/// What an option list implies beyond its names, for the refusals rsync checks after parsing.
#[derive(Debug, Default)]
#[allow(clippy::struct_excessive_bools)]
struct Hints {
    compress: bool,
    iconv: bool,
    delete: bool,
    delete_timed: bool,
    delete_missing: bool,
    remove_source: bool,
    sender: bool,
    append: bool,
    write_devices: bool,
    inplace: bool,
    blank_partial_dir: bool,
}

impl Hints {
    fn from_names(seen: &[&str]) -> Hints {
        let any = |names: &[&str]| seen.iter().any(|s| names.contains(s));
        Hints {
            compress: any(&[
                "compress",
                "compress-level",
                "zl",
                "old-compress",
                "new-compress",
                "compress-choice",
                "zc",
            ]),
            iconv: any(&["iconv"]),
            delete: any(&[
                "delete",
                "del",
                "delete-before",
                "delete-during",
                "delete-delay",
                "delete-after",
                "delete-excluded",
            ]),
            delete_timed: any(&[
                "del",
                "delete-before",
                "delete-during",
                "delete-delay",
                "delete-after",
            ]),
            delete_missing: any(&["delete-missing-args"]),
            remove_source: any(&["remove-source-files", "remove-sent-files"]),
            sender: any(&["sender"]),
            append: any(&["append", "append-verify"]),
            write_devices: any(&["write-devices"]),
            inplace: any(&["inplace"]),
            blank_partial_dir: false,
        }
    }
}

/// The first option in `seen` (canonical names, in order, as in [`ServerOptions::seen`]) that
/// rsyncd.conf's `refuse options` (`refuse`: its terms; each is also split at spaces) refuses,
/// as rsync 3.5's daemon decides (`options.c set_refuse_options`, `parse_arguments`):
///
/// - a term is an option's long name, its letter, or a wildcard (`*`, `?`, `[...]`); a term
///   starting with `!` accepts instead, and later terms override earlier ones;
/// - wildcards never match `--server`, `--sender`, `-e`, `-n`, `-s`, `-0`, `--log-format`,
///   `--iconv`, `--no-iconv`, `--checksum-seed`, `--copy-devices`, `--write-devices`: only
///   their exact name does; an exact name also covers its aliases (`del`/`delete-during`,
///   `log-format`/`out-format`, `no-r`/`no-recursive`, ...);
/// - `a`/`archive` stands for `-rdlptgoD` and `-a`;
/// - a daemon refuses `copy-devices` and `write-devices` unless a term accepts them, and always
///   refuses `log-file*` and `insecure-links`; without a module `charset` it also refuses
///   `iconv` (the caller appends `"iconv"` to `refuse` for that);
/// - implied options are refused too: `delete` refuses every deletion (`--delete-*`,
///   `--delete-excluded`, `--delete-missing-args`) and, when the daemon sends,
///   `--remove-source-files`; `compress` refuses `--compress-level`, `--new-compress`,
///   `--compress-choice`; `inplace` refuses `--append` and `--write-devices`; `partial`
///   refuses `--inplace` and `-P`; a bare `--delete` is refused as `delete-before` only if
///   both `delete-before` and `delete-during` are refused; `no-iconv` refuses a transfer
///   without `--iconv`.
///
/// With names only, `--compress-choice=none` still counts as compressing and a blank
/// `--partial-dir` is not seen; [`ServerArgs::refused`] knows the values.
#[must_use]
pub fn refused<'a>(seen: &[&'a str], refuse: &[String]) -> Option<&'a str> {
    refused_with(seen, refuse, &Hints::from_names(seen))
}

fn refused_with<'a>(seen: &[&'a str], refuse: &[String], hints: &Hints) -> Option<&'a str> {
    let marks = refuse_marks(refuse);
    let is_refused = |name: &str| ROWS.iter().zip(&marks).any(|(r, &m)| m && r.name() == name);
    for &name in seen {
        if is_refused(name) {
            return Some(name);
        }
        if name == "archive" {
            // rsync remembers the last archive part marked, in table order.
            let part = ROWS
                .iter()
                .zip(&marks)
                .rev()
                .find(|(r, m)| **m && b"rdlptgoD".contains(&r.short))
                .map(|(r, _)| r.name());
            if part.is_some() {
                return part;
            }
        }
        if name == "P"
            && let Some(p) = ["partial", "progress"].into_iter().find(|p| is_refused(p))
        {
            return Some(p);
        }
    }
    if hints.compress && is_refused("compress") {
        return Some("compress");
    }
    if !hints.iconv && is_refused("no-iconv") {
        return Some("no-iconv");
    }
    if hints.delete
        && !hints.delete_timed
        && is_refused("delete-before")
        && is_refused("delete-during")
    {
        return Some("delete-before");
    }
    if (hints.delete || hints.delete_missing) && is_refused("delete") {
        return Some("delete");
    }
    if hints.remove_source && hints.sender && is_refused("delete") {
        return Some("delete");
    }
    if (hints.append || hints.write_devices) && is_refused("inplace") {
        return Some("inplace");
    }
    let inplace = hints.inplace || hints.append || hints.write_devices;
    if (inplace || hints.blank_partial_dir) && is_refused("partial") {
        return Some("partial");
    }
    None
}

/// For each row of [`ROWS`], whether it ends up refused.
fn refuse_marks(refuse: &[String]) -> Vec<bool> {
    let mut marks = vec![false; ROWS.len()];
    mark(&mut marks, false, "copy-devices");
    mark(&mut marks, false, "write-devices");
    for term in refuse.iter().flat_map(|t| t.split_ascii_whitespace()) {
        let (negated, term) = match term.strip_prefix('!') {
            Some(t) if !t.is_empty() => (true, t),
            _ => (false, term),
        };
        mark(&mut marks, negated, term);
    }
    mark(&mut marks, false, "log-file*");
    mark(&mut marks, false, "insecure-links");
    marks
}

/// One `refuse options` term (`options.c parse_one_refuse_match`).
fn mark(marks: &mut [bool], negated: bool, term: &str) {
    let (pattern, wild) = if term == "a" || term == "archive" {
        ("[ardlptgoD]", true)
    } else {
        (term, term.contains(['*', '?', '[']))
    };
    let mut exact_hit: Option<&Row> = None;
    for (r, m) in ROWS.iter().zip(marks.iter_mut()) {
        let long_hit =
            !r.long.is_empty() && filter::wildmatch(pattern.as_bytes(), r.long.as_bytes());
        let short_hit = r.short != 0 && filter::wildmatch(pattern.as_bytes(), &[r.short]);
        if !(long_hit || short_hit) {
            continue;
        }
        if !r.exact_only() || !wild {
            *m = !negated;
        }
        if !wild {
            exact_hit = Some(r);
            break;
        }
    }
    if let Some(hit) = exact_hit {
        for (r, m) in ROWS.iter().zip(marks.iter_mut()) {
            if r.action == hit.action {
                *m = !negated;
            }
        }
    }
}

/// rsync's message for a refused option: `The server is configured to refuse --checksum (-c)`.
#[must_use]
pub fn refusal_message(name: &str) -> String {
    format!("The server is configured to refuse {}", option_label(name))
}

/// The message for an option rtsync does not implement, in the words rsync uses when a server
/// lacks a feature: `The server does not support --acls (-A)`.
#[must_use]
pub fn unsupported_message(name: &str) -> String {
    format!("The server does not support {}", option_label(name))
}

/// `--long (-x)`, `--long`, or `-x` for the short-only rows (rsync prints `--(null) (-D)`).
fn option_label(name: &str) -> String {
    match find_name(name) {
        Some(r) if r.long.is_empty() => format!("-{}", char::from(r.short)),
        Some(r) if r.short != 0 => format!("--{} (-{})", r.long, char::from(r.short)),
        _ => format!("--{name}"),
    }
}

/// When a receiver deletes for `--delete` given without a time: during, unless `refuse options`
/// refuses `delete-during` (then before), as rsync decides (`options.c parse_arguments`).
#[must_use]
pub fn delete_when(when: DeleteWhen, refuse: &[String]) -> DeleteWhen {
    if when != DeleteWhen::Unspecified {
        return when;
    }
    let marks = refuse_marks(refuse);
    let refused_row = |name: &str| ROWS.iter().zip(&marks).any(|(r, &m)| m && r.name() == name);
    if refused_row("delete-during") && !refused_row("delete-before") {
        DeleteWhen::Before
    } else {
        DeleteWhen::During
    }
}

/// The file arguments relative to the module, as rsync's daemon makes them
/// (`util1.c glob_expand_module`): the module name is taken off the front, then leading `/`s;
/// unless `secluded`, a word also splits at ` module/` (the old multi-file form, which a 3.x
/// client escapes as `[ ]module/`). Globs are not expanded here.
#[must_use]
pub fn module_paths(paths: &[Vec<u8>], module: &str, secluded: bool) -> Vec<Vec<u8>> {
    let m = module.as_bytes();
    let sep: Vec<u8> = [b" ".as_slice(), m, b"/"].concat();
    let clean = |p: &[u8]| {
        let start = p.iter().position(|&b| b != b'/').unwrap_or(p.len());
        p.get(start..).unwrap_or_default().to_vec()
    };
    let mut out = Vec::new();
    for p in paths {
        if p.is_empty() {
            continue;
        }
        let mut rest = p.strip_prefix(m).unwrap_or(p);
        if secluded {
            out.push(clean(rest));
            continue;
        }
        loop {
            match rest.windows(sep.len()).position(|w| w == sep.as_slice()) {
                Some(at) => {
                    out.push(clean(rest.get(..at).unwrap_or_default()));
                    rest = rest.get(at + sep.len()..).unwrap_or_default();
                }
                None => {
                    out.push(clean(rest));
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden vectors: byte for byte what Debian's rsync 3.5.0 client sent to a fake daemon
    // after `@RSYNCD: OK`, for `rsync OPTS src/ rsync://127.0.0.1:18730/mod/` (push) or
    // `rsync OPTS rsync://127.0.0.1:18730/mod/ dst/` (pull).
    const A_PUSH: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0.\0mod/\0\0";
    const A_PULL: &[u8] = b"--server\0--sender\0-logDtpre.iLsfxCIvu\0.\0mod/\0\0";
    const AV_DELETE: &[u8] = b"--server\0-vlogDtpre.iLsfxCIvu\0--delete\0.\0mod/\0\0";
    const AVZ_DELETE: &[u8] = b"--server\0-vlogDtprze.iLsfxCIvu\0--delete\0.\0mod/\0\0";
    /// `-az --delete --exclude=*.swp`: the exclude goes over the wire as a filter rule.
    const AZ_DELETE_EXCLUDE: &[u8] = b"--server\0-logDtprze.iLsfxCIvu\0--delete\0.\0mod/\0\0";
    const AVH_DELETE: &[u8] = b"--server\0-vlHogDtpre.iLsfxCIvu\0--delete\0.\0mod/\0\0";
    const N: &[u8] = b"--server\0-ne.LsfxCIvu\0.\0mod/\0\0";
    const AN: &[u8] = b"--server\0-nlogDtpre.iLsfxCIvu\0.\0mod/\0\0";
    const C: &[u8] = b"--server\0-ce.LsfxCIvu\0.\0mod/\0\0";
    const AC: &[u8] = b"--server\0-logDtprce.iLsfxCIvu\0.\0mod/\0\0";
    /// `-R --files-from=x --from0 --delete-missing-args`, push: a local list is not sent.
    const FILES_FROM_PUSH: &[u8] = b"--server\0-Re.LsfxCIvu\0--delete-missing-args\0.\0mod/\0\0";
    /// The same, pull: the client sends the names on the socket.
    const FILES_FROM_PULL: &[u8] = b"--server\0--sender\0-Re.LsfxCIvu\0--delete-missing-args\0--files-from=-\0--from0\0.\0mod/\0\0";
    /// `-a --files-from=:list.txt`, pull.
    const FILES_FROM_REMOTE: &[u8] =
        b"--server\0--sender\0-logDtpRe.LsfxCIvu\0--files-from\0list.txt\0.\0mod/\0\0";
    /// `-a --files-from=:list.txt --from0`, push.
    const FILES_FROM_REMOTE0: &[u8] =
        b"--server\0-logDtpRe.LsfxCIvu\0--files-from\0list.txt\0--from0\0.\0mod/\0\0";
    const AV_PULL: &[u8] = b"--server\0--sender\0-vlogDtpre.iLsfxCIvu\0.\0mod/\0\0";
    /// `-a --modify-window=-1`, push (a pull sends nothing: the client is the receiver).
    const MODWIN_NEG: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0-@-1\0.\0mod/\0\0";
    const MODWIN_2: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--modify-window=2\0.\0mod/\0\0";
    const I: &[u8] = b"--server\0-logDtprIe.iLsfxCIvu\0.\0mod/\0\0";
    /// `-a --size-only`, push (a pull sends nothing).
    const SIZE_ONLY: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--size-only\0.\0mod/\0\0";
    const S: &[u8] = b"--server\0-logDtprSe.iLsfxCIvu\0.\0mod/\0\0";
    /// `-ai`, push (a pull sends nothing).
    const ITEMIZE: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--log-format=%i\0.\0mod/\0\0";
    const TIMEOUT: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--timeout=600\0.\0mod/\0\0";
    const NUMERIC_IDS: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--numeric-ids\0.\0mod/\0\0";
    const BWLIMIT: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--bwlimit=1000\0.\0mod/\0\0";
    /// `-a --bwlimit=1.5M`: the client normalises to KiB.
    const BWLIMIT_M: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--bwlimit=1536\0.\0mod/\0\0";
    const VV: &[u8] = b"--server\0-vvlogDtpre.iLsfxCIvu\0.\0mod/\0\0";
    const VVV_PULL: &[u8] = b"--server\0--sender\0-vvvlogDtpre.iLsfxCIvu\0.\0mod/\0\0";
    const Q: &[u8] = b"--server\0-qlogDtpre.iLsfxCIvu\0.\0mod/\0\0";
    const Z_LEVEL: &[u8] = b"--server\0-logDtprze.iLsfxCIvu\0--compress-level=9\0.\0mod/\0\0";
    const ZZ: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--new-compress\0.\0mod/\0\0";
    const ZC_ZSTD: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--compress-choice=zstd\0.\0mod/\0\0";
    /// `-az --zc=zlib` and `-a --old-compress` both send this.
    const OLD_COMPRESS: &[u8] = b"--server\0-logDtprze.iLsfxCIvu\0--old-compress\0.\0mod/\0\0";
    const CC: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--checksum-choice=xxh128\0.\0mod/\0\0";
    const PARTIAL_DIR: &[u8] =
        b"--server\0-logDtpre.iLsfxCIvu\0--partial-dir\0.p\0--delay-updates\0.\0mod/\0\0";
    const PARTIAL: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--partial\0.\0mod/\0\0";
    /// `-aP`.
    const BIG_P: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--log-format=X\0--partial\0.\0mod/\0\0";
    const INPLACE: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--inplace\0.\0mod/\0\0";
    const APPEND: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--append\0.\0mod/\0\0";
    const APPEND_VERIFY: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--append\0--append\0.\0mod/\0\0";
    /// `-a -b --backup-dir=bak --suffix=~`.
    const BACKUP: &[u8] =
        b"--server\0-blogDtpre.iLsfxCIvu\0--backup-dir\0bak\0--suffix=~\0.\0mod/\0\0";
    /// `-a --usermap=*:nobody --groupmap=0:1`: the client backslash-escapes the `*`.
    const USERMAP: &[u8] =
        b"--server\0-logDtpre.iLsfxCIvu\0--usermap=\\*:nobody\0--groupmap=0:1\0.\0mod/\0\0";
    /// `-a --chown=nobody:nogroup`.
    const CHOWN: &[u8] =
        b"--server\0-logDtpre.iLsfxCIvu\0--usermap=\\*:nobody\0--groupmap=\\*:nogroup\0.\0mod/\0\0";
    /// `-a --chmod=Du+rwx,Fgo-w`: applied by the client, not sent.
    const CHMOD: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0.\0mod/\0\0";
    const MAX_DELETE_5: &[u8] =
        b"--server\0-logDtpre.iLsfxCIvu\0--max-delete=5\0--delete\0.\0mod/\0\0";
    /// `--max-delete=0` is sent as -1.
    const MAX_DELETE_0: &[u8] =
        b"--server\0-logDtpre.iLsfxCIvu\0--max-delete=-1\0--delete\0.\0mod/\0\0";
    /// `-a --min-size=1k --max-size=1G`.
    const MIN_MAX: &[u8] =
        b"--server\0-logDtpre.iLsfxCIvu\0--min-size=1024\0--max-size=1073741824\0.\0mod/\0\0";
    /// `-a -B 2048`.
    const BLOCK: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0-B2048\0.\0mod/\0\0";
    const LINK_DEST: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--link-dest\0../x\0.\0mod/\0\0";
    const COMPARE_DEST: &[u8] =
        b"--server\0-logDtpre.iLsfxCIvu\0--compare-dest\0../x\0--compare-dest\0../y\0.\0mod/\0\0";
    /// `-a -T /tmp/t`.
    const TEMP_DIR: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--temp-dir\0/tmp/t\0.\0mod/\0\0";
    const RSF_PULL: &[u8] =
        b"--server\0--sender\0-logDtpre.iLsfxCIvu\0--remove-source-files\0.\0mod/\0\0";
    const RSF_PUSH: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--remove-source-files\0.\0mod/\0\0";
    /// `-a --existing --ignore-existing`.
    const EXISTING: &[u8] =
        b"--server\0-logDtpre.iLsfxCIvu\0--ignore-existing\0--existing\0.\0mod/\0\0";
    const XX: &[u8] = b"--server\0-logDtprxxe.iLsfxCIvu\0.\0mod/\0\0";
    const M: &[u8] = b"--server\0-lmogDtpre.iLsfxCIvu\0.\0mod/\0\0";
    const OJ: &[u8] = b"--server\0-lOJogDtpre.iLsfxCIvu\0.\0mod/\0\0";
    /// `-ayy`: without a basis dir the client sends one `y`.
    const YY: &[u8] = b"--server\0-lyogDtpre.iLsfxCIvu\0.\0mod/\0\0";
    const UU: &[u8] = b"--server\0-logDtUUpre.iLsfxCIvu\0.\0mod/\0\0";
    const XA: &[u8] = b"--server\0-logDtpAXre.iLsfxCIvu\0.\0mod/\0\0";
    /// `-akL`, pull.
    const KL_PULL: &[u8] = b"--server\0--sender\0-lLkogDtpre.iLsfxCIvu\0.\0mod/\0\0";
    /// `-akLK`, push: only -K is the receiver's business.
    const KLK_PUSH: &[u8] = b"--server\0-lKogDtpre.iLsfxCIvu\0.\0mod/\0\0";
    /// `-rE`.
    const E: &[u8] = b"--server\0-Ere.iLsfxCIvu\0.\0mod/\0\0";
    const STATS: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--stats\0.\0mod/\0\0";
    /// `-a --info=progress2,name2`.
    const INFO: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--log-format=X\0--info=NAME2\0.\0mod/\0\0";
    const LIST_ONLY: &[u8] = b"--server\0--sender\0-de.LsfxCIvu\0--list-only\0.\0mod/\0\0";
    /// `-a -M--foo -M--bar=baz`.
    const REMOTE_OPTS: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--foo\0--bar=baz\0.\0mod/\0\0";
    /// `-a --iconv=utf8,latin1`.
    const ICONV: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--iconv=utf8\0.\0mod/\0\0";
    const SEED: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--checksum-seed=42\0.\0mod/\0\0";
    const W: &[u8] = b"--server\0-lWogDtpre.iLsfxCIvu\0.\0mod/\0\0";
    const PREALLOCATE: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--preallocate\0.\0mod/\0\0";
    const OPEN_NOATIME: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--open-noatime\0.\0mod/\0\0";
    const MKPATH: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--mkpath\0.\0mod/\0\0";
    const FSYNC: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--fsync\0.\0mod/\0\0";
    /// `-a --copy-devices --write-devices`, push and pull.
    const DEVICES_PUSH: &[u8] =
        b"--server\0-logDtpre.iLsfxCIvu\0--inplace\0--write-devices\0.\0mod/\0\0";
    const DEVICES_PULL: &[u8] =
        b"--server\0--sender\0-logDtpre.iLsfxCIvu\0--inplace\0--copy-devices\0.\0mod/\0\0";
    /// `-a --delete --force --delete-excluded`.
    const FORCE: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--delete-excluded\0--force\0.\0mod/\0\0";
    const DELETE_AFTER: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--delete-after\0.\0mod/\0\0";
    const DELETE_BEFORE: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--delete-before\0.\0mod/\0\0";
    const DELETE_DELAY: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--delete-delay\0.\0mod/\0\0";
    /// `-a --del`.
    const DELETE_DURING: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--delete-during\0.\0mod/\0\0";
    /// `-a --safe-links --copy-unsafe-links --munge-links` (munging is the client's).
    const SAFE_LINKS: &[u8] =
        b"--server\0-logDtpre.iLsfxCIvu\0--copy-unsafe-links\0--safe-links\0.\0mod/\0\0";
    const SUPER: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--super\0.\0mod/\0\0";
    const IGNORE_ERRORS: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--ignore-errors\0.\0mod/\0\0";
    /// `-d --delete`, push: `--no-r` tells an old server that -d may delete.
    const D_DELETE: &[u8] = b"--server\0-de.LsfxCIvu\0--no-r\0--delete\0.\0mod/\0\0";
    /// `--old-d`: the client sends -r and a filter rule.
    const OLD_D: &[u8] = b"--server\0-re.iLsfxCIvu\0.\0mod/\0\0";
    /// `-rl --specials`.
    const SPECIALS: &[u8] = b"--server\0-lre.iLsfxCIvu\0--specials\0.\0mod/\0\0";
    /// `-rl --devices`.
    const DEVICES_ONLY: &[u8] = b"--server\0-lDre.iLsfxCIvu\0--no-specials\0.\0mod/\0\0";
    /// `-a --no-i-r`: the capability letters lose `i`.
    const NO_IR: &[u8] = b"--server\0-logDtpre.LsfxCIvu\0.\0mod/\0\0";
    /// `-a --out-format=%n`, `%o%n`, `%i%I`.
    const OUT_N: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--log-format=X\0.\0mod/\0\0";
    const OUT_O: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--log-format=%o\0.\0mod/\0\0";
    const IGNORE_MISSING_PULL: &[u8] =
        b"--server\0--sender\0-logDtpre.iLsfxCIvu\0--ignore-missing-args\0.\0mod/\0\0";
    const NO_IMPLIED_DIRS: &[u8] = b"--server\0-Re.LsfxCIvu\0--no-implied-dirs\0.\0mod/\0\0";
    const U: &[u8] = b"--server\0-ulogDtpre.iLsfxCIvu\0.\0mod/\0\0";
    const HH: &[u8] = b"--server\0-lHHogDtpre.iLsfxCIvu\0.\0mod/\0\0";
    /// `-a --msgs2stderr` and `-a --stderr=all` both send this.
    const MSGS2STDERR: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--msgs2stderr\0.\0mod/\0\0";
    const MAX_ALLOC: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--max-alloc=2G\0.\0mod/\0\0";
    /// `-az --skip-compress=gz/jpg`, pull.
    const SKIP_COMPRESS: &[u8] =
        b"--server\0--sender\0-logDtprze.iLsfxCIvu\0--skip-compress=gz/jpg\0.\0mod/\0\0";
    /// `-a --qsort`: sent as `--use-qsort`, which a stock server rejects as unknown.
    const QSORT: &[u8] = b"--server\0-logDtpre.LsfxCIvu\0--use-qsort\0.\0mod/\0\0";
    /// `-a --protocol=29`: newline-separated, no `-e`.
    const PROTOCOL_29: &[u8] = b"--server\n-logDtpr\n.\nmod/\n\n";
    /// `-as`: the first vector, then the secluded one (its first word is a dummy argv[0]).
    const SECLUDED: &[u8] = b"--server\0-slogDtpre.iLsfxCIvu\0\0rsync\0.\0mod/\0\0";
    /// `-as --delete --suffix=x --iconv=utf8,latin1`.
    const SECLUDED_MORE: &[u8] =
        b"--server\0-slogDtpre.iLsfxCIvu\0--iconv=utf8\0\0rsync\0--suffix=x\0--delete\0.\0mod/\0\0";
    /// `-ab '--suffix=a b'`.
    const SUFFIX_SPACE: &[u8] = b"--server\0-blogDtpre.iLsfxCIvu\0--suffix=a\\ b\0.\0mod/\0\0";
    /// `-a '--files-from=:my list.txt'`, pull.
    const FILES_FROM_SPACE: &[u8] =
        b"--server\0--sender\0-logDtpRe.LsfxCIvu\0--files-from\0my\\ list.txt\0.\0mod/\0\0";
    /// `-a -M-B512 -M--chmod=u+x`.
    const REMOTE_SHORT: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0-B512\0--chmod=u+x\0.\0mod/\0\0";
    /// `-a --old-args --suffix=a*b`.
    const OLD_ARGS_SUFFIX: &[u8] = b"--server\0-logDtpre.iLsfxCIvu\0--suffix=a\\*b\0.\0mod/\0\0";

    /// The whole capture must be exactly one vector.
    fn words(raw: &[u8]) -> Vec<Vec<u8>> {
        let (w, used) = split_words(raw).unwrap().unwrap();
        assert_eq!(used, raw.len());
        w
    }

    fn golden(raw: &[u8]) -> ServerArgs {
        parse(&words(raw)).unwrap()
    }

    fn opts(raw: &[u8]) -> ServerOptions {
        golden(raw).options
    }

    fn strs(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn try_parse(v: &[&str]) -> Result<ServerArgs, ArgsError> {
        parse(&strs(v))
    }

    /// `--server`, the given options, `.` and `mod/`.
    fn with(options: &[&str]) -> Result<ServerArgs, ArgsError> {
        let mut v = vec!["--server"];
        v.extend_from_slice(options);
        v.extend_from_slice(&[".", "mod/"]);
        try_parse(&v)
    }

    fn archive_parts(o: &ServerOptions) -> bool {
        o.links
            && o.owner
            && o.group
            && o.devices
            && o.specials
            && o.times
            && o.perms
            && o.recursive
    }

    #[test]
    fn golden_archive_push_and_pull() {
        let push = golden(A_PUSH);
        assert!(!push.sender);
        assert_eq!(push.paths, strs(&["mod/"]));
        let o = &push.options;
        assert!(o.server && archive_parts(o) && o.dirs && o.inc_recursive);
        assert!(!o.archive && !o.dry_run && o.compress == 0);
        assert_eq!(o.client_info.as_deref(), Some(".iLsfxCIvu"));
        assert_eq!(
            o.seen,
            [
                "server",
                "links",
                "owner",
                "group",
                "D",
                "times",
                "perms",
                "recursive",
                "rsh"
            ]
        );
        assert_eq!(o.delete, None);
        assert_eq!(o.unsupported(), None);
        let pull = golden(A_PULL);
        assert!(pull.sender);
        assert_eq!(pull.options.seen.get(1), Some(&"sender"));
        assert_eq!(pull.paths, strs(&["mod/"]));
    }

    #[test]
    fn common_invocations_need_nothing_unsupported() {
        for raw in [
            A_PUSH,
            A_PULL,
            AV_DELETE,
            AVZ_DELETE,
            AZ_DELETE_EXCLUDE,
            AVH_DELETE,
            N,
            AN,
            C,
            AC,
            FILES_FROM_PUSH,
            AV_PULL,
            MODWIN_NEG,
            MODWIN_2,
            I,
            SIZE_ONLY,
            S,
            ITEMIZE,
            TIMEOUT,
            NUMERIC_IDS,
            BWLIMIT,
            VV,
            VVV_PULL,
            Q,
            Z_LEVEL,
            ZZ,
            OLD_COMPRESS,
            PARTIAL,
            BIG_P,
            MAX_DELETE_5,
            MIN_MAX,
            BLOCK,
            XX,
            M,
            OJ,
            HH,
            U,
            STATS,
            INFO,
            D_DELETE,
            SPECIALS,
            DEVICES_ONLY,
            NO_IR,
            NO_IMPLIED_DIRS,
            FORCE,
            DELETE_AFTER,
            DELETE_DELAY,
        ] {
            let a = golden(raw);
            assert_eq!(
                a.options.unsupported(),
                None,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
            assert_eq!(a.refused(&[]), None, "{:?}", String::from_utf8_lossy(raw));
        }
        assert_eq!(opts(FILES_FROM_PULL).unsupported(), None);
        assert_eq!(opts(ZC_ZSTD).unsupported(), Some("compress-choice"));
        assert_eq!(opts(INPLACE).unsupported(), Some("inplace"));
        assert_eq!(opts(PARTIAL_DIR).unsupported(), Some("delay-updates"));
        assert_eq!(opts(TEMP_DIR).unsupported(), Some("temp-dir"));
        assert_eq!(opts(USERMAP).unsupported(), Some("usermap"));
        assert_eq!(opts(SUPER).unsupported(), Some("super"));
        assert_eq!(
            golden(RSF_PULL).options.unsupported(),
            Some("remove-source-files")
        );
        assert_eq!(opts(EXISTING).unsupported(), None);
        assert!(opts(EXISTING).existing);
        assert_eq!(opts(E).unsupported(), Some("executability"));
        assert_eq!(opts(UU).unsupported(), Some("atimes"));
        assert_eq!(golden(KL_PULL).options.unsupported(), Some("copy-links"));
        assert_eq!(opts(CC).unsupported(), Some("checksum-choice"));
        assert_eq!(opts(SUFFIX_SPACE).unsupported(), Some("backup"));
        assert_eq!(
            with(&["-r", "--exclude-from=x"])
                .unwrap()
                .options
                .unsupported(),
            Some("exclude-from")
        );
    }

    #[test]
    fn golden_delete_verbose_compress_hardlinks() {
        let o = opts(AV_DELETE);
        assert_eq!((o.verbose, o.delete), (1, Some(DeleteWhen::Unspecified)));
        let o = opts(AVZ_DELETE);
        assert_eq!((o.verbose, o.compress), (1, 1));
        assert!(o.compresses());
        assert_eq!(o.delete, Some(DeleteWhen::Unspecified));
        let o = opts(AZ_DELETE_EXCLUDE);
        assert_eq!((o.verbose, o.compress), (0, 1));
        assert!(o.filters.is_empty());
        let o = opts(AVH_DELETE);
        assert_eq!((o.verbose, o.hard_links), (1, 1));
        assert_eq!(opts(HH).hard_links, 2);
        assert_eq!(opts(VV).verbose, 2);
        let pull = golden(VVV_PULL);
        assert_eq!((pull.sender, pull.options.verbose), (true, 3));
        assert_eq!(golden(AV_PULL).options.verbose, 1);
        assert_eq!(opts(Q).quiet, 1);
    }

    #[test]
    fn golden_dry_run_and_checksum() {
        let o = opts(N);
        assert!(o.dry_run && !o.recursive && !o.dirs && !o.links);
        assert_eq!(o.client_info.as_deref(), Some(".LsfxCIvu"));
        let o = opts(AN);
        assert!(o.dry_run && archive_parts(&o));
        let o = opts(C);
        assert!(o.checksum && !o.recursive);
        assert!(opts(AC).checksum);
    }

    #[test]
    fn golden_files_from() {
        let push = golden(FILES_FROM_PUSH);
        let o = &push.options;
        assert!(o.relative && o.implied_dirs && !o.recursive && !o.dirs);
        assert_eq!(o.missing_args, MissingArgs::Delete);
        assert_eq!((o.files_from.as_deref(), o.from0), (None, false));
        assert_eq!(o.delete, None);

        let pull = golden(FILES_FROM_PULL);
        let o = &pull.options;
        assert!(pull.sender && o.relative && o.from0 && o.dirs && !o.recursive);
        assert_eq!(o.files_from.as_deref(), Some(b"-".as_slice()));
        assert_eq!(o.missing_args, MissingArgs::Delete);

        let o = opts(FILES_FROM_REMOTE);
        assert_eq!(o.files_from.as_deref(), Some(b"list.txt".as_slice()));
        assert!(o.relative && !o.recursive && o.dirs && !o.from0);
        let o = opts(FILES_FROM_REMOTE0);
        assert!(o.from0);
        assert_eq!(o.files_from.as_deref(), Some(b"list.txt".as_slice()));
        let o = opts(FILES_FROM_SPACE);
        assert_eq!(o.files_from.as_deref(), Some(b"my list.txt".as_slice()));
    }

    #[test]
    fn golden_quick_check_options() {
        assert_eq!(opts(MODWIN_NEG).modify_window, Some(-1));
        assert_eq!(opts(MODWIN_2).modify_window, Some(2));
        assert_eq!(opts(A_PUSH).modify_window, None);
        assert!(opts(I).ignore_times);
        assert!(opts(SIZE_ONLY).size_only);
        assert!(opts(U).update);
        let o = opts(EXISTING);
        assert!(o.existing && o.ignore_existing);
        assert_eq!(o.seen[o.seen.len() - 2..], ["ignore-existing", "existing"]);
    }

    #[test]
    fn golden_misc_scalars() {
        assert!(opts(S).sparse);
        let o = opts(ITEMIZE);
        assert_eq!(o.out_format.as_deref(), Some("%i"));
        assert_eq!(
            o.seen.last(),
            Some(&"rsh").filter(|_| false).or(o.seen.last())
        );
        assert!(o.seen.contains(&"log-format"));
        assert_eq!(opts(TIMEOUT).timeout, 600);
        assert!(opts(NUMERIC_IDS).numeric_ids);
        assert_eq!(opts(BWLIMIT).bwlimit, 1000);
        assert_eq!(opts(BWLIMIT_M).bwlimit, 1536);
        assert_eq!(opts(SEED).checksum_seed, 42);
        assert_eq!(opts(W).whole_file, Some(true));
        assert!(opts(PREALLOCATE).preallocate);
        assert!(opts(OPEN_NOATIME).open_noatime);
        assert!(opts(MKPATH).mkpath);
        assert!(opts(FSYNC).fsync);
        assert!(opts(STATS).stats);
        assert!(opts(IGNORE_ERRORS).ignore_errors);
        assert_eq!(opts(SUPER).super_mode, Some(SuperMode::Super));
        assert_eq!(opts(MSGS2STDERR).stderr, Some(StderrMode::All));
        assert_eq!(opts(MAX_ALLOC).max_alloc, Some(2 << 30));
        let o = opts(MIN_MAX);
        assert_eq!((o.min_size, o.max_size), (Some(1024), Some(1 << 30)));
        assert_eq!(opts(BLOCK).block_size, Some(2048));
        assert_eq!(
            opts(TEMP_DIR).temp_dir.as_deref(),
            Some(b"/tmp/t".as_slice())
        );
        assert_eq!(opts(OUT_N).out_format.as_deref(), Some("X"));
        assert_eq!(opts(OUT_O).out_format.as_deref(), Some("%o"));
        let o = opts(INFO);
        assert_eq!(
            (o.info.as_slice(), o.out_format.as_deref()),
            (["NAME2".to_owned()].as_slice(), Some("X"))
        );
        // `--no-i-r` is not sent: the client just leaves `i` out of its capabilities.
        let o = opts(NO_IR);
        assert!(o.inc_recursive && !o.seen.contains(&"no-i-r"));
        assert_eq!(o.client_info.as_deref(), Some(".LsfxCIvu"));
    }

    #[test]
    fn golden_compression() {
        let o = opts(Z_LEVEL);
        assert_eq!((o.compress, o.compress_level), (1, Some(9)));
        let o = opts(ZZ);
        assert_eq!(
            (o.compress, o.compress_choice.as_deref()),
            (0, Some("zlibx"))
        );
        assert!(o.compresses());
        let o = opts(ZC_ZSTD);
        assert_eq!(o.compress_choice.as_deref(), Some("zstd"));
        assert!(o.compresses());
        let o = opts(OLD_COMPRESS);
        assert_eq!(
            (o.compress, o.compress_choice.as_deref()),
            (1, Some("zlib"))
        );
        assert_eq!(opts(CC).checksum_choice.as_deref(), Some("xxh128"));
        let pull = golden(SKIP_COMPRESS);
        assert_eq!(pull.options.skip_compress.as_deref(), Some("gz/jpg"));
        assert!(!opts(A_PUSH).compresses());
    }

    #[test]
    fn golden_partial_inplace_append() {
        let o = opts(PARTIAL_DIR);
        assert_eq!(o.partial_dir.as_deref(), Some(b".p".as_slice()));
        assert!(o.delay_updates && o.partial && !o.inplace);
        assert!(opts(PARTIAL).partial);
        let o = opts(BIG_P);
        assert!(o.partial && !o.progress);
        assert_eq!(o.out_format.as_deref(), Some("X"));
        let o = opts(INPLACE);
        assert!(o.inplace && !o.partial);
        let o = opts(APPEND);
        assert_eq!((o.append, o.inplace), (Append::Append, true));
        assert_eq!(o.unsupported(), Some("append"));
        let o = opts(APPEND_VERIFY);
        assert_eq!(o.append, Append::Verify);
        assert_eq!(o.unsupported(), Some("append-verify"));
    }

    #[test]
    fn golden_escaped_values() {
        let o = opts(BACKUP);
        assert!(o.backup);
        assert_eq!(o.backup_dir.as_deref(), Some(b"bak".as_slice()));
        assert_eq!(o.suffix.as_deref(), Some(b"~".as_slice()));
        assert_eq!(o.unsupported(), Some("backup"));
        let o = opts(USERMAP);
        assert_eq!(o.usermap.as_deref(), Some("*:nobody"));
        assert_eq!(o.groupmap.as_deref(), Some("0:1"));
        let o = opts(CHOWN);
        assert_eq!(o.usermap.as_deref(), Some("*:nobody"));
        assert_eq!(o.groupmap.as_deref(), Some("*:nogroup"));
        assert_eq!(
            opts(SUFFIX_SPACE).suffix.as_deref(),
            Some(b"a b".as_slice())
        );
        assert_eq!(
            opts(OLD_ARGS_SUFFIX).suffix.as_deref(),
            Some(b"a*b".as_slice())
        );
        assert_eq!(opts(CHMOD), opts(A_PUSH));
    }

    #[test]
    fn golden_delete_variants() {
        let o = opts(MAX_DELETE_5);
        assert_eq!(
            (o.max_delete, o.delete),
            (Some(5), Some(DeleteWhen::Unspecified))
        );
        assert_eq!(opts(MAX_DELETE_0).max_delete, Some(0));
        assert_eq!(opts(A_PUSH).max_delete, None);
        let o = opts(FORCE);
        assert!(o.force && o.delete_excluded);
        assert_eq!(o.delete, Some(DeleteWhen::Unspecified));
        assert_eq!(opts(DELETE_AFTER).delete, Some(DeleteWhen::After));
        assert_eq!(opts(DELETE_BEFORE).delete, Some(DeleteWhen::Before));
        assert_eq!(opts(DELETE_DELAY).delete, Some(DeleteWhen::Delay));
        assert_eq!(opts(DELETE_DURING).delete, Some(DeleteWhen::During));
        let o = opts(D_DELETE);
        assert!(o.dirs && !o.recursive);
        assert_eq!(o.delete, Some(DeleteWhen::Unspecified));
        assert_eq!(opts(RSF_PUSH).remove_source_files, 1);
        let pull = golden(RSF_PULL);
        assert_eq!((pull.sender, pull.options.remove_source_files), (true, 1));
        assert_eq!(
            golden(IGNORE_MISSING_PULL).options.missing_args,
            MissingArgs::Ignore
        );
    }

    #[test]
    fn golden_basis_dirs() {
        let o = opts(LINK_DEST);
        assert_eq!(o.basis_kind, Some(BasisKind::Link));
        assert_eq!(o.basis_dirs, strs(&["../x"]));
        assert_eq!(o.unsupported(), Some("link-dest"));
        let o = opts(COMPARE_DEST);
        assert_eq!(o.basis_kind, Some(BasisKind::Compare));
        assert_eq!(o.basis_dirs, strs(&["../x", "../y"]));
    }

    #[test]
    fn golden_short_letters() {
        assert_eq!(opts(XX).one_file_system, 2);
        assert!(opts(M).prune_empty_dirs);
        let o = opts(OJ);
        assert!(o.omit_dir_times && o.omit_link_times);
        // `-ayy` without a basis dir sends one `y` (the client's count becomes dirs + 1).
        let o = opts(YY);
        assert_eq!(o.fuzzy, 1);
        assert_eq!(o.unsupported(), Some("fuzzy"));
        let o = opts(UU);
        assert!(o.atimes == 2 && o.open_noatime);
        let o = opts(XA);
        assert!(o.acls && o.xattrs == 1 && o.perms);
        assert_eq!(o.unsupported(), Some("acls"));
        let pull = golden(KL_PULL);
        assert!(
            pull.options.copy_links && pull.options.copy_dirlinks && !pull.options.keep_dirlinks
        );
        let o = opts(KLK_PUSH);
        assert!(o.keep_dirlinks && !o.copy_links);
        let o = opts(E);
        assert!(o.executability && o.recursive && !o.perms);
        let o = opts(SAFE_LINKS);
        assert!(o.safe_links && o.copy_unsafe_links && !o.munge_links);
    }

    #[test]
    fn golden_devices_and_dirs() {
        let o = opts(DEVICES_PUSH);
        assert!(o.write_devices && o.inplace);
        assert_eq!(o.unsupported(), Some("write-devices"));
        let o = opts(DEVICES_PULL);
        assert!(o.copy_devices && o.inplace);
        let o = opts(SPECIALS);
        assert!(o.specials && !o.devices && o.links && o.recursive);
        let o = opts(DEVICES_ONLY);
        assert!(o.devices && !o.specials);
        let o = opts(OLD_D);
        assert!(o.recursive && !o.old_dirs);
        let pull = golden(LIST_ONLY);
        assert!(pull.options.list_only && pull.options.dirs && !pull.options.recursive);
        let o = opts(NO_IMPLIED_DIRS);
        assert!(o.relative && !o.implied_dirs);
    }

    #[test]
    fn golden_unknown_remote_option() {
        let err = parse(&words(REMOTE_OPTS)).unwrap_err();
        assert_eq!(err, ArgsError::Unknown("--foo".into()));
        // What the client printed: `rsync: on remote machine: --foo: unknown option`, exit 4.
        assert_eq!(err.to_string(), "on remote machine: --foo: unknown option");
        assert_eq!(err.exit_code(), 4);
        let o = opts(REMOTE_SHORT);
        assert_eq!(
            (o.block_size, o.chmod.as_slice()),
            (Some(512), ["u+x".to_owned()].as_slice())
        );
    }

    #[test]
    fn golden_iconv_and_qsort() {
        let o = opts(ICONV);
        assert_eq!(o.iconv.as_deref(), Some("utf8"));
        assert_eq!(o.unsupported(), Some("iconv"));
        // Deliberately accepted (rsync's own server says "--use-qsort: unknown option").
        assert!(opts(QSORT).qsort);
    }

    #[test]
    fn golden_protocol_29_lines() {
        let w: Vec<Vec<u8>> = PROTOCOL_29
            .split(|&b| b == b'\n')
            .take_while(|w| !w.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        let a = parse(&w).unwrap();
        assert!(archive_parts(&a.options));
        assert_eq!(a.options.client_info, None);
        assert_eq!(a.paths, strs(&["mod/"]));
    }

    #[test]
    fn golden_secluded_args() {
        let (first, used) = split_words(SECLUDED).unwrap().unwrap();
        assert_eq!(first, strs(&["--server", "-slogDtpre.iLsfxCIvu"]));
        let (second, rest) = split_words(&SECLUDED[used..]).unwrap().unwrap();
        assert_eq!(used + rest, SECLUDED.len());
        assert_eq!(second, strs(&["rsync", ".", "mod/"]));
        let early = parse(&first).unwrap();
        assert!(early.options.secluded_args && early.paths.is_empty());
        let all = parse_secluded(&first, &second).unwrap();
        assert!(all.options.secluded_args && archive_parts(&all.options));
        assert_eq!(all.paths, strs(&["mod/"]));
        assert_eq!(all.options.unsupported(), Some("secluded-args"));

        let (first, used) = split_words(SECLUDED_MORE).unwrap().unwrap();
        let (second, _) = split_words(&SECLUDED_MORE[used..]).unwrap().unwrap();
        let all = parse_secluded(&first, &second).unwrap();
        let o = &all.options;
        assert_eq!(o.iconv.as_deref(), Some("utf8"));
        assert_eq!(o.suffix.as_deref(), Some(b"x".as_slice()));
        assert_eq!(o.delete, Some(DeleteWhen::Unspecified));
        // The secluded vector is not un-backslashed: the client did not escape it.
        let all = parse_secluded(&first, &strs(&["rsync", "--suffix=a\\b", ".", "mod/"])).unwrap();
        assert_eq!(all.options.suffix.as_deref(), Some(b"a\\b".as_slice()));
    }

    #[test]
    fn split_words_framing_and_bounds() {
        assert_eq!(split_words(b"").unwrap(), None);
        assert_eq!(split_words(b"--server\0-v").unwrap(), None);
        assert_eq!(split_words(b"--server\0").unwrap(), None);
        assert_eq!(split_words(b"\0").unwrap(), Some((vec![], 1)));
        let (w, used) = split_words(b"a\0b\0\0trailing").unwrap().unwrap();
        assert_eq!((w, used), (strs(&["a", "b"]), 5));
        let long = vec![b'x'; MAX_WORD_LEN];
        let mut ok = long.clone();
        ok.extend_from_slice(b"\0\0");
        assert_eq!(split_words(&ok).unwrap().unwrap().0, vec![long.clone()]);
        let mut too_long = long.clone();
        too_long.push(b'x');
        assert_eq!(
            split_words(&too_long),
            Err(ArgsError::TooLong("an argument is too long"))
        );
        too_long.push(0);
        assert!(split_words(&too_long).is_err());
        let many: Vec<u8> = b"w\0".repeat(MAX_WORDS);
        assert_eq!(split_words(&many).unwrap(), None);
        let mut full = many.clone();
        full.push(0);
        assert_eq!(split_words(&full).unwrap().unwrap().0.len(), MAX_WORDS);
        let mut over = many;
        over.extend_from_slice(b"w\0");
        let err = split_words(&over).unwrap_err();
        assert_eq!(
            (err.to_string().as_str(), err.exit_code()),
            ("too many daemon arguments", 2)
        );
    }

    #[test]
    fn popt_values_and_errors() {
        // Seen from Debian's rsync 3.5.0 daemon with `-M`.
        let e = |v: &[&str]| with(v).unwrap_err().to_string();
        assert_eq!(
            e(&["--timeout=abc"]),
            "on remote machine: --timeout=abc: invalid numeric value"
        );
        assert_eq!(with(&["--timeout="]).unwrap().options.timeout, 0);
        assert_eq!(with(&["--timeout=0x10"]).unwrap().options.timeout, 16);
        assert_eq!(with(&["--timeout=010"]).unwrap().options.timeout, 8);
        assert_eq!(with(&["--timeout= 7"]).unwrap().options.timeout, 7);
        assert_eq!(
            e(&["--timeout=99999999999"]),
            "on remote machine: --timeout=99999999999: number too large or too small"
        );
        // A value in the next word may be the `.`.
        assert_eq!(
            e(&["--timeout"]),
            "on remote machine: .: invalid numeric value"
        );
        assert_eq!(e(&["-@"]), "on remote machine: .: invalid numeric value");
        assert_eq!(
            e(&["-vX="]),
            "on remote machine: -vX=: option does not take an argument"
        );
        assert_eq!(
            e(&["-v="]),
            "on remote machine: -v=: option does not take an argument"
        );
        assert_eq!(
            e(&["--delete=3"]),
            "on remote machine: --delete=3: option does not take an argument"
        );
        assert_eq!(
            e(&["--no-r=1"]),
            "on remote machine: --no-r=1: option does not take an argument"
        );
        assert_eq!(with(&["-rB=512"]).unwrap().options.block_size, Some(512));
        assert_eq!(with(&["-@=3"]).unwrap().options.modify_window, Some(3));
        assert_eq!(with(&["-@", "-5"]).unwrap().options.modify_window, Some(-5));
        assert_eq!(with(&["--timeout", "9"]).unwrap().options.timeout, 9);
        assert_eq!(
            try_parse(&["--server", "--timeout"]),
            Err(ArgsError::MissingArgument("--timeout".into()))
        );
        assert_eq!(
            try_parse(&["--server", "-rT"]),
            Err(ArgsError::MissingArgument("-rT".into()))
        );
        assert_eq!(e(&["-vZ"]), "on remote machine: -vZ: unknown option");
        assert_eq!(
            e(&["--verbose-please"]),
            "on remote machine: --verbose-please: unknown option"
        );
        assert_eq!(with(&["--timeout=-1"]).unwrap().options.timeout, -1);
        assert_eq!(
            with(&["--timeout=08"]).unwrap_err(),
            ArgsError::BadNumber("--timeout=08".into())
        );
        assert_eq!(
            with(&["--timeout=0x"]).unwrap_err(),
            ArgsError::BadNumber("--timeout=0x".into())
        );
        assert_eq!(
            with(&["--timeout=2147483647"]).unwrap().options.timeout,
            i32::MAX
        );
        assert_eq!(
            with(&["--timeout=-2147483648"]).unwrap().options.timeout,
            i32::MIN
        );
        assert!(matches!(
            with(&["--timeout=2147483648"]),
            Err(ArgsError::Overflow(_))
        ));
        assert!(matches!(with(&["--port=x"]), Err(ArgsError::BadNumber(_))));
    }

    #[test]
    fn popt_clusters_and_leftovers() {
        // `e` takes the rest of the cluster; `-e` alone takes the next word.
        let o = with(&["-vre", ".x"]).unwrap().options;
        assert_eq!(
            (o.verbose, o.recursive, o.client_info.as_deref()),
            (1, true, Some(".x"))
        );
        // A single-dash word is a cluster: `-server` is `-s -e rver`.
        let o = with(&["-server"]).unwrap().options;
        assert!(o.secluded_args);
        assert_eq!(o.client_info.as_deref(), Some("rver"));
        // `--` ends the options; `-` is a plain argument.
        let a = try_parse(&["--server", "-r", "--", ".", "-x", "--delete"]).unwrap();
        assert_eq!(a.paths, strs(&["-x", "--delete"]));
        assert_eq!(a.options.delete, None);
        let a = try_parse(&["--server", "-r", ".", "-"]).unwrap();
        assert_eq!(a.paths, strs(&["-"]));
        // Options after the `.` still count, as popt reads them.
        let a = try_parse(&["--server", "-r", ".", "mod/", "--delete"]).unwrap();
        assert_eq!(
            (a.paths, a.options.delete),
            (strs(&["mod/"]), Some(DeleteWhen::Unspecified))
        );
        // A long option's next-word value may start with a dash.
        let o = with(&["--suffix", "-old"]).unwrap().options;
        assert_eq!(o.suffix.as_deref(), Some(b"-old".as_slice()));
        // Options are un-backslashed only before the dot.
        let a = try_parse(&["--server", "-r", "--partial-dir=a\\ b\\", ".", "mod/a\\ b"]).unwrap();
        assert_eq!(a.options.partial_dir.as_deref(), Some(b"a b\\".as_slice()));
        assert_eq!(a.paths, strs(&["mod/a\\ b"]));
        // No `--server`, no options: nothing but the paths.
        let empty = try_parse(&[]).unwrap();
        assert!(empty.paths.is_empty() && empty.options.seen.is_empty() && !empty.options.server);
        let err = try_parse(&["--server", "-r", "junk", ".", "mod/"]).unwrap_err();
        assert!(err.to_string().contains("\"junk\""));
    }

    #[test]
    fn server_restarts_and_guards() {
        // rsync re-reads the words from the top at its first --server.
        assert_eq!(
            try_parse(&["-v", "--server", "-v"])
                .unwrap()
                .options
                .verbose,
            3
        );
        assert_eq!(
            try_parse(&["--server", "--iconv=x"])
                .unwrap()
                .options
                .iconv
                .as_deref(),
            Some("x")
        );
        assert_eq!(
            try_parse(&["--iconv=x", "--server"]).unwrap().options.iconv,
            None
        );
        let err = try_parse(&["--sender", "--server"]).unwrap_err();
        assert!(matches!(err, ArgsError::Invalid(_)));
        for daemon in [
            "--daemon",
            "--config=/etc/x",
            "--dparam=a=b",
            "--detach",
            "--no-detach",
        ] {
            assert_eq!(
                with(&[daemon]).unwrap_err().to_string(),
                "Attempt to hack rsync thwarted!"
            );
        }
        assert!(with(&["-r", "--help"]).unwrap().options.help);
        assert_eq!(with(&["-VV"]).unwrap().options.version, 2);
    }

    #[test]
    fn rsync_consistency_errors() {
        let e = |v: &[&str]| with(v).unwrap_err().to_string();
        assert_eq!(
            e(&["-r", "--delete-before", "--delete-after"]),
            "You may not combine multiple --delete-WHEN options."
        );
        assert_eq!(
            e(&["-r", "--del", "--delete-delay", "--delete-after"]),
            "You may not combine multiple --delete-WHEN options."
        );
        assert_eq!(
            e(&["--delete"]),
            "--delete does not work without --recursive (-r) or --dirs (-d)."
        );
        assert_eq!(
            e(&["--delete-excluded"]),
            "--delete does not work without --recursive (-r) or --dirs (-d)."
        );
        assert!(with(&["--files-from=-", "--delete"]).is_ok());
        assert!(with(&["-d", "--delete"]).is_ok());
        assert_eq!(
            e(&["-rW", "--append"]),
            "--append cannot be used with --whole-file"
        );
        assert_eq!(
            e(&["-r", "--inplace", "--partial-dir=x"]),
            "--inplace cannot be used with --partial-dir"
        );
        assert_eq!(
            e(&["-r", "--append", "--delay-updates"]),
            "--append cannot be used with --delay-updates"
        );
        assert_eq!(
            e(&["--link-dest=a", "--copy-dest=b"]),
            "ERROR: the --copy-dest option conflicts with the --link-dest option"
        );
        let many: Vec<String> = (0..=MAX_BASIS_DIRS)
            .map(|i| format!("--link-dest=d{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            e(&many),
            "ERROR: at most 20 --link-dest args may be specified"
        );
        assert_eq!(
            e(&["--usermap=a", "--usermap=b"]),
            "You can only specify --usermap once."
        );
        assert_eq!(
            e(&["--chown=u", "--usermap=x"]),
            "--usermap conflicts with prior --chown."
        );
        assert_eq!(
            e(&["--usermap=x", "--chown=u"]),
            "--chown conflicts with prior --usermap."
        );
        assert_eq!(
            e(&["--chown=u", "--chown=v"]),
            "You can only specify a user-affecting --chown once."
        );
        assert_eq!(
            e(&["--groupmap=x", "--chown=:g"]),
            "--chown conflicts with prior --groupmap."
        );
        let o = with(&["--chown=:g"]).unwrap().options;
        assert_eq!(
            (o.usermap, o.groupmap.as_deref(), o.group, o.owner),
            (None, Some("*:g"), true, false)
        );
        assert_eq!(e(&["--stop-after=0"]), "invalid --stop-after value: 0");
        assert_eq!(
            with(&["--time-limit=5"]).unwrap().options.stop_after,
            Some(5)
        );
        assert_eq!(
            e(&["--stderr=bogus"]),
            "--stderr mode \"bogus\" is not one of errors, all, or client"
        );
        assert_eq!(
            with(&["--stderr=e"]).unwrap().options.stderr,
            Some(StderrMode::Errors)
        );
        assert_eq!(
            with(&["--stderr=c"]).unwrap().options.stderr,
            Some(StderrMode::Client)
        );
        assert_eq!(
            e(&["-M", "foo"]),
            "Remote option must start with a dash: foo"
        );
        assert_eq!(
            e(&["-s", "--old-args"]),
            "--secluded-args conflicts with --old-args."
        );
        assert_eq!(
            e(&["--fake-super", "-XX"]),
            "--fake-super conflicts with -XX"
        );
        let long_tmp = format!("--temp-dir={}", "t".repeat(1014));
        assert_eq!(
            e(&[long_tmp.as_str()]),
            "the --temp-dir path is WAY too long."
        );
        assert_eq!(
            with(&["--checksum-choice=AUTO"])
                .unwrap()
                .options
                .checksum_choice,
            None
        );
        assert_eq!(with(&["--zc=auto"]).unwrap().options.compress_choice, None);
        assert_eq!(with(&["-z", "--no-z"]).unwrap().options.compress, 0);
    }

    #[test]
    fn size_arguments() {
        let size = |v: &str| with(&[v]).map(|a| a.options);
        assert_eq!(size("--min-size=1.5k").unwrap().min_size, Some(1536));
        assert_eq!(size("--max-size=1kb").unwrap().max_size, Some(1000));
        assert_eq!(size("--max-size=1KiB").unwrap().max_size, Some(1024));
        assert_eq!(size("--max-size=1k+1").unwrap().max_size, Some(1025));
        assert_eq!(size("--max-size=1k-1").unwrap().max_size, Some(1023));
        assert_eq!(size("--max-size=2g").unwrap().max_size, Some(2 << 30));
        assert_eq!(size("--max-size=7").unwrap().max_size, Some(7));
        assert_eq!(size("--max-size=1P").unwrap().max_size, Some(1 << 50));
        assert_eq!(
            size("--max-size=xyz").unwrap_err().to_string(),
            "--max-size=xyz is invalid"
        );
        assert_eq!(
            size("--max-size=1kx").unwrap_err().to_string(),
            "--max-size=1kx is invalid"
        );
        assert_eq!(
            size("--max-size=99999999P").unwrap_err().to_string(),
            "--max-size=99999999P is too large"
        );
        assert_eq!(
            size("-B200000").unwrap_err().to_string(),
            "--block-size=200000 is too large (max: 128.00K)"
        );
        assert_eq!(size("-B131072").unwrap().block_size, Some(MAX_BLOCK_SIZE));
        assert_eq!(
            size("--bwlimit=100b").unwrap_err().to_string(),
            "--bwlimit=100b is too small (min: 512 or 0 for unlimited)"
        );
        assert_eq!(size("--bwlimit=0").unwrap().bwlimit, 0);
        assert_eq!(size("--bwlimit=1m").unwrap().bwlimit, 1024);
        assert_eq!(size("--bwlimit=1000").unwrap().bwlimit, 1000);
        assert_eq!(
            size("--max-alloc=0").unwrap_err().to_string(),
            "max-alloc must be greater than zero"
        );
        assert!(size("--max-alloc=1k").is_err());
    }

    #[test]
    fn every_row_is_known() {
        for r in ROWS.iter().filter(|r| !r.long.is_empty()) {
            let word = match r.arg {
                Arg::None => format!("--{}", r.long),
                Arg::Int => format!("--{}=1", r.long),
                Arg::Str => format!("--{}=-1m", r.long),
            };
            let got = with(&["-r", word.as_str()]);
            assert!(
                !matches!(got, Err(ArgsError::Unknown(_))),
                "{word}: {got:?}"
            );
            if let Ok(a) = got {
                assert!(a.options.seen.contains(&r.long), "{word}");
            }
        }
        for r in ROWS.iter().filter(|r| r.short != 0) {
            let word = format!("-r{}", char::from(r.short));
            let mut v = vec![word.as_str()];
            if r.arg != Arg::None {
                v.push("1");
            }
            assert!(!matches!(with(&v), Err(ArgsError::Unknown(_))), "{word}");
        }
        let names: Vec<&str> = ROWS.iter().map(Row::name).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[i + 1..].contains(n), "duplicate row name {n}");
        }
    }

    /// `refuse options` cases checked against Debian's rsync 3.5.0 daemon: (module's refuse
    /// options, extra words after `--server`, expected refusal by name).
    #[test]
    fn refuse_options_golden() {
        let a = "-logDtpre.iLsfxCIvu";
        let cases: &[(&[&str], &[&str], Option<&str>)] = &[
            (&["delete"], &[a, "--delete"], Some("delete")),
            (&["delete"], &[a, "--delete-after"], Some("delete")),
            (&["delete"], &[a, "--delete-excluded"], Some("delete")),
            (&["delete"], &[a, "--remove-source-files"], None),
            (
                &["delete"],
                &["--sender", a, "--remove-source-files"],
                Some("delete"),
            ),
            (
                &["delete"],
                &["-re.iLsfxCIvu", "--delete-missing-args"],
                Some("delete"),
            ),
            (&["delete"], &[a], None),
            (
                &["c", "delete"],
                &["-logDtprce.iLsfxCIvu"],
                Some("checksum"),
            ),
            (&["c delete"], &["-logDtprce.iLsfxCIvu"], Some("checksum")),
            (&["c", "delete"], &[a, "--delete-delay"], Some("delete")),
            (
                &["*", "!a", "!v", "!compress*"],
                &["-vlogDtprze.iLsfxCIvu"],
                None,
            ),
            (&["*", "!a", "!v", "!compress*"], &[a], None),
            (
                &["*", "!a", "!v", "!compress*"],
                &["-nlogDtpre.iLsfxCIvu"],
                None,
            ),
            (
                &["*", "!a", "!v", "!compress*"],
                &[a, "--delete"],
                Some("delete"),
            ),
            (
                &["*", "!a", "!v", "!compress*"],
                &[a, "-z", "--compress-level=3"],
                None,
            ),
            (
                &["*", "!a", "!v", "!compress*"],
                &["-vlHogDtpre.iLsfxCIvu"],
                Some("hard-links"),
            ),
            (
                &["*", "!a", "!v", "!compress*", "iconv"],
                &[a, "--iconv=utf8"],
                Some("iconv"),
            ),
            (
                &["*", "!a", "!v", "!compress*"],
                &[a, "--checksum-seed=3"],
                None,
            ),
            (&["*", "!a", "!v", "!compress*"], &[a, "--from0"], None),
            (&["a"], &[a], Some("links")),
            (&["a"], &["-re.iLsfxCIvu"], Some("recursive")),
            (&["a"], &["-ce.LsfxCIvu"], None),
            (&["delete-during"], &[a, "--delete"], None),
            (
                &["delete-during"],
                &[a, "--delete-during"],
                Some("delete-during"),
            ),
            (&["delete-during"], &[a, "--del"], Some("del")),
            (&["delete-during"], &[a, "--delete-before"], None),
            (
                &["delete-*", "!delete-during"],
                &[a, "--delete-after"],
                Some("delete-after"),
            ),
            (&["delete-*", "!delete-during"], &[a, "--delete"], None),
            (
                &["delete-*", "!delete-during"],
                &[a, "--delete-excluded"],
                Some("delete-excluded"),
            ),
            (&["partial"], &[a, "--partial"], Some("partial")),
            (&["partial"], &[a, "--inplace"], Some("partial")),
            (&["partial"], &[a, "--append"], Some("partial")),
            (&["partial"], &[a, "--partial-dir", ".p"], None),
            (&["partial"], &[a, "-P"], Some("partial")),
            (&["partial"], &[a, "--partial-dir=."], Some("partial")),
            (&["partial"], &[a, "--delay-updates"], None),
            (&["compress"], &["-logDtprze.iLsfxCIvu"], Some("compress")),
            (
                &["compress"],
                &["-logDtprze.iLsfxCIvu", "--compress-level=1"],
                Some("compress"),
            ),
            (
                &["compress"],
                &[a, "--compress-choice=zstd"],
                Some("compress"),
            ),
            (&["compress"], &[a, "--new-compress"], Some("compress")),
            (&["compress"], &[a, "--zc=none"], None),
            (&["no-iconv"], &[a], Some("no-iconv")),
            (&["no-iconv", "iconv"], &[a, "--iconv=utf8"], Some("iconv")),
            (&["log-format"], &[a, "--log-format=%i"], Some("log-format")),
            (&["log-format"], &[a, "--out-format=%i"], Some("out-format")),
            (&["out-format"], &[a, "--log-format=%i"], Some("log-format")),
            (&["*"], &["-ne.LsfxCIvu"], None),
            (&["*"], &["-re.iLsfxCIvu"], Some("recursive")),
            (
                &["*"],
                &["-ne.LsfxCIvu", "--out-format=%i"],
                Some("out-format"),
            ),
            (&["*"], &["-ne.LsfxCIvu", "--log-format=%i"], None),
            (&["*"], &["-ne.LsfxCIvu", "--no-iconv"], None),
            (
                &["*"],
                &["-ne.LsfxCIvu", "--copy-devices"],
                Some("copy-devices"),
            ),
            (&["*"], &["-ne.LsfxCIvu", "--log-file=x"], Some("log-file")),
            (
                &["*"],
                &["-ne.LsfxCIvu", "--log-file-format=x"],
                Some("log-file-format"),
            ),
            (&["*"], &["-ne.LsfxCIvu", "-F"], Some("F")),
            (&["*"], &["-ne.LsfxCIvu", "-P"], Some("P")),
            (&["*"], &["-ne.LsfxCIvu", "-0"], None),
            (&["inplace"], &[a, "--append"], Some("inplace")),
            (
                &["inplace"],
                &[a, "--inplace", "--write-devices"],
                Some("inplace"),
            ),
            (&["inplace"], &[a, "--inplace"], Some("inplace")),
            (
                &["delete-before", "delete-during"],
                &[a, "--delete"],
                Some("delete-before"),
            ),
            (
                &["delete-before", "delete-during"],
                &[a, "--delete-after"],
                None,
            ),
            (&["t"], &[a], Some("times")),
            (&["t"], &["-re.iLsfxCIvu", "-t"], Some("times")),
            (&["t"], &["-re.iLsfxCIvu", "--times"], Some("times")),
            (&["t"], &["-re.iLsfxCIvu", "--no-times"], None),
            (&["t"], &["-re.iLsfxCIvu", "--no-t"], None),
            (
                &[],
                &[a, "--inplace", "--write-devices"],
                Some("write-devices"),
            ),
            (&[], &[a, "--copy-devices"], Some("copy-devices")),
            (&[], &[a, "--log-file=x"], Some("log-file")),
            (&[], &[a, "--insecure-links"], Some("insecure-links")),
            (&["D"], &[a], Some("D")),
            (&["D"], &["-re.iLsfxCIvu", "--devices"], None),
            (&["D"], &["-re.iLsfxCIvu", "--no-D"], None),
            (
                &["d"],
                &["-de.LsfxCIvu", "--no-r", "--delete"],
                Some("dirs"),
            ),
            (&["d"], &[a], None),
            (&["d"], &["-re.iLsfxCIvu", "--old-d"], None),
            (&["devices"], &[a], None),
            (
                &["devices"],
                &["-re.iLsfxCIvu", "--devices"],
                Some("devices"),
            ),
            (
                &["specials"],
                &["-lre.iLsfxCIvu", "--specials"],
                Some("specials"),
            ),
            (&["specials"], &[a], None),
            (&["del"], &[a, "--delete-during"], Some("delete-during")),
            (&["del"], &[a, "--delete"], None),
            (
                &["no-r"],
                &["-de.LsfxCIvu", "--no-r", "--delete"],
                Some("no-r"),
            ),
            (&["r"], &["-re.iLsfxCIvu"], Some("recursive")),
            (&["recursive"], &["-re.iLsfxCIvu"], Some("recursive")),
            (&["r"], &["-de.LsfxCIvu"], None),
            (&["r"], &["-de.LsfxCIvu", "-a"], Some("recursive")),
            (&["archive*"], &[a], None),
            (&["archive*"], &["-re.iLsfxCIvu"], None),
            (&["archive*"], &["-de.LsfxCIvu", "-a"], Some("archive")),
            (
                &["archive*"],
                &["-de.LsfxCIvu", "--archive"],
                Some("archive"),
            ),
            (&["*", "!a"], &[a], None),
            (&["*", "!a"], &["-logDtprce.iLsfxCIvu"], Some("checksum")),
            (&["*", "!archive"], &[a], None),
            (&["a", "!t"], &[a], Some("links")),
            (&["a", "!t"], &["-rte.iLsfxCIvu"], Some("recursive")),
            (&["delete*"], &[a, "--delete"], Some("delete")),
            (&["delete*"], &[a, "--delete-during"], Some("delete-during")),
            (&["!delete"], &[a, "--delete"], None),
            (
                &["no-*"],
                &["-de.LsfxCIvu", "--no-r", "--delete"],
                Some("no-r"),
            ),
            (&["no-*"], &[a, "--no-specials"], Some("no-specials")),
            (&["*-links"], &[a, "--safe-links"], Some("safe-links")),
            (&["*-links"], &["-lHogDtpre.iLsfxCIvu"], Some("hard-links")),
            (&["[cz]"], &["-logDtprce.iLsfxCIvu"], Some("checksum")),
            (&["[cz]"], &["-logDtprze.iLsfxCIvu"], Some("compress")),
            (&["?"], &[a], Some("links")),
            (&["?"], &["-de.LsfxCIvu"], Some("dirs")),
            (&["dry-run"], &["-nlogDtpre.iLsfxCIvu"], Some("dry-run")),
            (&["sender"], &["--sender", a], Some("sender")),
            (&["e"], &[a], Some("rsh")),
            (&["server"], &[a], Some("server")),
            (
                &["checksum-seed"],
                &[a, "--checksum-seed=1"],
                Some("checksum-seed"),
            ),
            (&["iconv"], &[a], None),
            (&["from0"], &[a, "--from0"], Some("from0")),
            (
                &["files-from"],
                &["--sender", a, "--files-from", "x"],
                Some("files-from"),
            ),
            (
                &["remove-source-files"],
                &["--sender", a, "--remove-source-files"],
                Some("remove-source-files"),
            ),
            (&["modify-window"], &[a, "-@-1"], Some("modify-window")),
            (
                &["modify-window"],
                &[a, "--modify-window=1"],
                Some("modify-window"),
            ),
            (&["@"], &[a, "-@-1"], Some("modify-window")),
            (&["@"], &[a, "--modify-window=1"], Some("modify-window")),
            (
                &["max-delete"],
                &[a, "--max-delete=-1", "--delete"],
                Some("max-delete"),
            ),
            (&["timeout"], &[a, "--timeout=5"], Some("timeout")),
            (&["bwlimit"], &[a, "--bwlimit=100"], Some("bwlimit")),
            (&["B"], &[a, "-B1024"], Some("block-size")),
            (&["block-size"], &[a, "-B1024"], Some("block-size")),
            (
                &["partial-dir"],
                &[a, "--partial-dir", ".p"],
                Some("partial-dir"),
            ),
            (&["partial-dir"], &[a, "--delay-updates"], None),
            (
                &["delay-updates"],
                &[a, "--delay-updates"],
                Some("delay-updates"),
            ),
            (&["existing"], &[a, "--existing"], Some("existing")),
            (
                &["ignore-non-existing"],
                &[a, "--existing"],
                Some("existing"),
            ),
            (&["info"], &[a, "--info=NAME2"], Some("info")),
            (
                &["omit-dir-times"],
                &["-lOogDtpre.iLsfxCIvu"],
                Some("omit-dir-times"),
            ),
            (&["numeric-ids"], &[a, "--numeric-ids"], Some("numeric-ids")),
            (
                &["compress-level"],
                &["-logDtprze.iLsfxCIvu", "--compress-level=3"],
                Some("compress-level"),
            ),
            (
                &["zl"],
                &["-logDtprze.iLsfxCIvu", "--compress-level=3"],
                Some("compress-level"),
            ),
            (
                &["new-compress"],
                &[a, "--new-compress"],
                Some("new-compress"),
            ),
            (
                &["dirs"],
                &["-de.LsfxCIvu", "--no-r", "--delete"],
                Some("dirs"),
            ),
            (&["old-dirs"], &["-de.LsfxCIvu", "--no-r", "--delete"], None),
            (
                &["!copy-devices"],
                &["--sender", a, "--inplace", "--copy-devices"],
                None,
            ),
            (&["no-specials"], &[a, "--no-specials"], Some("no-specials")),
            (&["no-D"], &[a, "--no-specials"], None),
            (&["exclude"], &[a], None),
            (&["exclude"], &[a, "--exclude=x"], Some("exclude")),
            (&["F"], &[a, "-F"], Some("F")),
        ];
        for (refuse, extra, want) in cases {
            let refuse: Vec<String> = refuse.iter().map(|s| (*s).to_owned()).collect();
            let args = with(extra).unwrap_or_else(|e| panic!("{extra:?}: {e}"));
            assert_eq!(
                args.refused(&refuse),
                *want,
                "refuse {refuse:?} with {extra:?}"
            );
        }
    }

    #[test]
    fn refusal_messages() {
        // As Debian's rsync 3.5.0 daemon words them (it says `--(null) (-D)` for -D).
        assert_eq!(
            refusal_message("delete"),
            "The server is configured to refuse --delete"
        );
        assert_eq!(
            refusal_message("checksum"),
            "The server is configured to refuse --checksum (-c)"
        );
        assert_eq!(
            refusal_message("dry-run"),
            "The server is configured to refuse --dry-run (-n)"
        );
        assert_eq!(
            refusal_message("rsh"),
            "The server is configured to refuse --rsh (-e)"
        );
        assert_eq!(
            refusal_message("modify-window"),
            "The server is configured to refuse --modify-window (-@)"
        );
        assert_eq!(
            refusal_message("from0"),
            "The server is configured to refuse --from0 (-0)"
        );
        assert_eq!(
            refusal_message("log-format"),
            "The server is configured to refuse --log-format"
        );
        assert_eq!(
            refusal_message("D"),
            "The server is configured to refuse -D"
        );
        assert_eq!(
            unsupported_message("acls"),
            "The server does not support --acls (-A)"
        );
        assert_eq!(
            ArgsError::Refused("compress").to_string(),
            "The server is configured to refuse --compress (-z)"
        );
        assert_eq!(ArgsError::Unsupported("iconv").exit_code(), 4);
    }

    #[test]
    fn refused_by_names_only() {
        let no = |seen: &[&str], refuse: &[&str]| {
            let refuse: Vec<String> = refuse.iter().map(|s| (*s).to_owned()).collect();
            refused(seen, &refuse).map(str::to_owned)
        };
        assert_eq!(no(&["server", "checksum"], &["c"]), Some("checksum".into()));
        assert_eq!(
            no(&["server", "compress-choice"], &["compress"]),
            Some("compress".into())
        );
        assert_eq!(
            no(&["server", "delete"], &["delete-before", "delete-during"]),
            Some("delete-before".into())
        );
        assert_eq!(
            no(&["server", "sender", "remove-source-files"], &["delete"]),
            Some("delete".into())
        );
        assert_eq!(no(&["server", "remove-source-files"], &["delete"]), None);
        assert_eq!(no(&["server", "archive"], &["o"]), Some("owner".into()));
        assert_eq!(
            no(&["server", "archive"], &["o", "p"]),
            Some("owner".into())
        );
        assert_eq!(no(&["server", "P"], &["progress"]), Some("progress".into()));
        assert_eq!(no(&["server"], &["no-iconv"]), Some("no-iconv".into()));
        assert_eq!(no(&["server", "iconv"], &["no-iconv"]), None);
        assert_eq!(
            no(&["server", "write-devices"], &["!write-devices", "inplace"]),
            Some("inplace".into())
        );
        assert_eq!(no(&["server", "write-devices"], &["!write-devices"]), None);
        assert_eq!(
            no(&["server", "log-file"], &["!log-file"]),
            Some("log-file".into())
        );
        assert_eq!(no(&["server"], &["!", "*"]), None);
        assert_eq!(no(&["no-such-option"], &["*"]), None);
    }

    #[test]
    fn delete_timing_choice() {
        let r = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            delete_when(DeleteWhen::Unspecified, &[]),
            DeleteWhen::During
        );
        assert_eq!(
            delete_when(DeleteWhen::Unspecified, &r(&["delete-during"])),
            DeleteWhen::Before
        );
        assert_eq!(
            delete_when(DeleteWhen::Unspecified, &r(&["delete-before"])),
            DeleteWhen::During
        );
        assert_eq!(
            delete_when(DeleteWhen::After, &r(&["delete-during"])),
            DeleteWhen::After
        );
    }

    #[test]
    fn module_relative_paths() {
        let p = |v: &[&str], secluded| module_paths(&strs(v), "mod", secluded);
        assert_eq!(p(&["mod/"], false), strs(&[""]));
        assert_eq!(p(&["mod"], false), strs(&[""]));
        assert_eq!(p(&["mod/a/b"], false), strs(&["a/b"]));
        assert_eq!(p(&["mod//a"], false), strs(&["a"]));
        assert_eq!(p(&["mod/a mod/b"], false), strs(&["a", "b"]));
        assert_eq!(p(&["mod/a mod/b"], true), strs(&["a mod/b"]));
        assert_eq!(p(&["mod/a[ ]mod/b"], false), strs(&["a[ ]mod/b"]));
        assert_eq!(p(&["other/x"], false), strs(&["other/x"]));
        assert_eq!(p(&["mod/a", "mod/b"], false), strs(&["a", "b"]));
    }

    fn arb_word() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..12),
            "-[a-zA-Z0-9@=.-]{0,8}".prop_map(String::into_bytes),
            "--[a-z0-9=-]{0,16}".prop_map(String::into_bytes),
            proptest::sample::select(
                ROWS.iter()
                    .filter(|r| !r.long.is_empty())
                    .map(|r| format!("--{}", r.long))
                    .collect::<Vec<_>>()
            )
            .prop_map(String::into_bytes),
            Just(b".".to_vec()),
            Just(b"--server".to_vec()),
        ]
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(words in proptest::collection::vec(arb_word(), 0..12),
                              refuse in proptest::collection::vec("[!a-z*?\\[\\]-]{0,6}", 0..4)) {
            if let Ok(a) = parse(&words) {
                let _ = a.refused(&refuse);
                let _ = a.options.unsupported();
                let _ = refused(&a.options.seen, &refuse);
            }
            let _ = parse_secluded(&words, &words);
        }

        #[test]
        fn split_words_never_panics(buf in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            if let Ok(Some((w, used))) = split_words(&buf) {
                proptest::prop_assert!(used <= buf.len());
                proptest::prop_assert!(w.iter().all(|w| !w.is_empty() && !w.contains(&0)));
            }
        }
    }
}
