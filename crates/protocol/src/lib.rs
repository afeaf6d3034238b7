//! The rsync wire protocol, versions 30 to 32, as sans-IO codecs: nothing here opens a socket.
//!
//! - [`wire`]: the primitive encodings — little-endian ints, rsync's varint and varlong (not
//!   LEB128), vstrings, and the delta-coded file indexes (`ndx`);
//! - [`compat`]: the compat flags a server grants after the version;
//! - [`errcode`]: rsync's exit codes and their words;
//! - [`mux`]: multiplexed frames (`MSG_DATA`, errors, warnings, deletions, …);
//! - [`daemon`]: the text phase of a daemon connection — greetings, module listing, `@ERROR`,
//!   and the `AUTHREQD` challenge answered with md4/md5/sha1/sha256/sha512;
//! - [`stream`]: rtsync's own stream between rtsync peers, found through a word in the daemon's
//!   greeting that stock rsync skips.
//!
//! Decoders never panic on hostile bytes: every length and count is checked, and "not enough
//! bytes yet" is `Ok(None)`, not an error.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod compat;
pub mod daemon;
pub mod errcode;
pub mod flist;
pub mod mux;
pub mod stream;
pub mod token;
pub mod wire;

/// The protocol version rtsync speaks.
pub const PROTOCOL_VERSION: u32 = 31;
/// The oldest protocol version rtsync accepts from a peer.
pub const MIN_PROTOCOL_VERSION: u32 = 30;
/// The newest version a peer may announce (rsync's own ceiling).
pub const MAX_PROTOCOL_VERSION: u32 = 40;
/// The rsync daemon port.
pub const RSYNC_PORT: u16 = 873;

/// Errors of the protocol codecs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// The peer sent bytes that break the protocol.
    #[error("protocol error in {phase}: {detail}")]
    Protocol {
        /// Where in the conversation.
        phase: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The peer's protocol version is not one we speak.
    #[error(
        "protocol version mismatch: the peer speaks {peer}, rtsync needs {MIN_PROTOCOL_VERSION} or newer"
    )]
    VersionMismatch {
        /// What the peer announced.
        peer: u32,
    },
    /// The daemon refused us (`@ERROR: …`).
    #[error("@ERROR: {0}")]
    Remote(String),
}

impl ProtoError {
    /// A protocol error in `phase`.
    #[must_use]
    pub fn protocol_text(phase: &'static str, detail: &str) -> Self {
        ProtoError::Protocol {
            phase,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn protocol(phase: &'static str, detail: impl Into<String>) -> Self {
        ProtoError::Protocol {
            phase,
            detail: detail.into(),
        }
    }
}
