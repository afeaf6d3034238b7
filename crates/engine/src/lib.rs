//! The core of `rtsync run`: what to send to a target, when, and what to do when it fails.
//!
//! - [`change`]: the watcher's events as changes to paths relative to the source root;
//! - [`coalesce`]: a sans-IO state machine (time is a parameter) that merges changes per path,
//!   waits for a short settle delay, keeps memory bounded by escalating to subtree resyncs, and
//!   hands out [`Batch`]es;
//! - [`flights`]: several batches in flight to one target at once, none touching another's
//!   paths, acknowledged in the order they were taken;
//! - [`journal`]: the on-disk record of changes not yet acknowledged by every target, so a crash
//!   or `kill -9` loses nothing;
//! - [`retry`]: which failures are transient (retried forever with jittered backoff) and which
//!   are permanent (parked and reported).
//!
//! Transfers themselves are not here: the binary applies each batch to its target.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod change;
pub mod coalesce;
pub mod flights;
pub mod journal;
pub mod retry;

pub use change::{Change, changes_of};
pub use coalesce::{Batch, Coalescer, Rename, Settings};
pub use flights::Flights;
pub use journal::{Journal, JournalError};
pub use retry::{Backoff, Failure};
