//! rtsync's rsync daemon: what `rsync --daemon` does, for stock rsync clients.
//!
//! - [`config`]: rsyncd.conf, parsed as rsync parses it;
//! - [`hosts`]: `hosts allow` / `hosts deny` matching;
//! - [`auth`]: `auth users` and the secrets file;
//! - [`args`]: the server argument vector a client sends (`--server -logDtpre.iLsfxCIvu …`);
//! - [`logfmt`]: `log format` (`%t %a %h %m %u %f %b %l %o %i` …).
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod args;
pub mod auth;
pub mod config;
pub mod hosts;
pub mod logfmt;
