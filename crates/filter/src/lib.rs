//! rsync's filter rules: `--exclude`, `--include`, `--filter` and the files they come from.
//!
//! A [`FilterList`] is an ordered list of [`Rule`]s; the first rule whose pattern matches a path
//! decides. Rules apply to the sending side (what is transferred), the receiving side (what
//! `--delete` may remove), or both, as rsync's `-`/`+`, `H`/`S`, `P`/`R` and the `s`/`r`
//! modifiers say. Patterns follow rsync's rules ([`pattern`]): `*`, `**`, `?`, `[...]`, a leading
//! `/` anchors to the transfer root, a trailing `/` matches only directories, `dir/***` matches a
//! directory and everything in it, and a pattern without `/` or `**` matches the last component.
//!
//! Paths given to [`FilterList::check`] are relative to the transfer root, `/`-separated, as
//! bytes (file names need not be UTF-8).
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod pattern;
mod rules;

pub use pattern::{Pattern, is_wildcard, literal, wildmatch};
pub use rules::{Action, FilterError, FilterList, MergeReader, Rule, Side};
