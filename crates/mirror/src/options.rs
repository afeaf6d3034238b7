//! What a transfer should do: the rsync options the local engine understands.

use delta::ChecksumKind;
use fsx::Persist;

/// When `--delete` removes extraneous destination entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteTiming {
    /// `--delete-before`: all deletions before any transfer.
    Before,
    /// `--delete-during` (and plain `--delete`): each directory just before its contents.
    During,
    /// `--delete-after` / `--delete-delay`: all deletions after the transfer.
    After,
}

/// Transfer options, named after rsync's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct Options {
    /// `-r`: descend into directories.
    pub recursive: bool,
    /// `-d`: transfer directories named on the command line without their contents.
    pub dirs: bool,
    /// `-l`: copy symlinks as symlinks.
    pub links: bool,
    /// `-p`: preserve permissions.
    pub perms: bool,
    /// `-t`: preserve modification times.
    pub times: bool,
    /// `-O`: do not preserve directory modification times.
    pub omit_dir_times: bool,
    /// `-g`: preserve group.
    pub group: bool,
    /// `-o`: preserve owner (only effective as root).
    pub owner: bool,
    /// `--devices`.
    pub devices: bool,
    /// `--specials`.
    pub specials: bool,
    /// `-H`: preserve hard links.
    pub hard_links: bool,
    /// `-n`: report what would change, change nothing.
    pub dry_run: bool,
    /// `-c`: compare whole-file checksums instead of size and time.
    pub checksum: bool,
    /// `--size-only`: compare sizes only.
    pub size_only: bool,
    /// `-I`: transfer even when size and time match.
    pub ignore_times: bool,
    /// `-u`: skip files that are newer on the destination.
    pub update: bool,
    /// `--ignore-existing`: never update existing destination files.
    pub ignore_existing: bool,
    /// `--existing`: never create new destination files.
    pub existing: bool,
    /// `-W`: copy whole files instead of using the delta engine.
    pub whole_file: bool,
    /// `--modify-window`: how far apart times may be and still match (see
    /// [`fsx::Timespec::same_within`]); `None` compares nanoseconds.
    pub modify_window: Option<i64>,
    /// `-S`: leave holes where new files hold runs of zeros. Locally this copies whole files,
    /// since a range copy from the old version would fill the holes back in.
    pub sparse: bool,
    /// `--delete` and its timing; `None` keeps extraneous entries.
    pub delete: Option<DeleteTiming>,
    /// `--delete-missing-args`: a missing source argument deletes its destination.
    pub delete_missing_args: bool,
    /// `--ignore-missing-args`: a missing source argument is silently skipped.
    pub ignore_missing_args: bool,
    /// `--force`: replace a non-empty directory by a non-directory even without `--delete`.
    pub force: bool,
    /// `--max-delete=N`.
    pub max_delete: Option<u64>,
    /// `-R`: use full source paths, creating implied directories.
    pub relative: bool,
    /// `--partial`: keep a partially transferred file.
    pub partial: bool,
    /// `--numeric-ids`. On one host names and ids map one to one, so this changes nothing
    /// locally; it is kept for the wire.
    pub numeric_ids: bool,
    /// `-B`: force a block size for the delta engine.
    pub block_size: Option<u32>,
    /// Strong checksum of the delta engine and of `-c`.
    pub checksum_kind: ChecksumKind,
    /// `--fsync`: flush each file before it replaces the old one.
    pub persist: Persist,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            recursive: false,
            dirs: false,
            links: false,
            perms: false,
            times: false,
            omit_dir_times: false,
            group: false,
            owner: false,
            devices: false,
            specials: false,
            hard_links: false,
            dry_run: false,
            checksum: false,
            size_only: false,
            ignore_times: false,
            update: false,
            ignore_existing: false,
            existing: false,
            whole_file: false,
            modify_window: None,
            sparse: false,
            delete: None,
            delete_missing_args: false,
            ignore_missing_args: false,
            force: false,
            max_delete: None,
            relative: false,
            partial: false,
            numeric_ids: false,
            block_size: None,
            checksum_kind: ChecksumKind::Xxh128,
            persist: Persist::Buffered,
        }
    }
}

impl Options {
    /// `-a`: `-rlptgoD`.
    #[must_use]
    pub fn archive() -> Self {
        Options {
            recursive: true,
            links: true,
            perms: true,
            times: true,
            group: true,
            owner: true,
            devices: true,
            specials: true,
            ..Options::default()
        }
    }
}
