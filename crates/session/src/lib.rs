//! The rsync roles over one multiplexed connection, shared by both ends: rtsync's client runs
//! them against a stock daemon, rtsync's daemon runs them for a stock client.
//!
//! - [`flist`]: file lists between disk and wire (what a sender sends, how a receiver orders it);
//! - [`mux`]: the two halves of a connection — raw bytes first (greetings, setup), then
//!   multiplexed frames — with the byte counts rsync reports;
//! - [`sender`]: the sending role (`sender.c`): the file list out, then a delta for each file
//!   the peer's generator requests;
//! - [`receiver`]: the receiving roles (`generator.c` + `receiver.c`): compare the peer's list
//!   with a destination tree, request what changed, rebuild it through `fsx`.
//!
//! A role never blocks writing the socket without something else reading it: the sender drains
//! its input in a thread, the generator writes from its own thread while the receiver reads.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod flist;
pub mod mux;
pub mod receiver;
pub mod sender;
pub mod told;

/// Errors of a session once connected, each with rsync's exit code
/// ([`SessionError::exit_code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Reading or writing the connection failed.
    #[error("error in socket IO: {0}")]
    Socket(#[source] std::io::Error),
    /// `--timeout` expired with nothing received.
    #[error("timeout waiting for the peer after {0} seconds")]
    Timeout(u64),
    /// The peer refused us or the protocol broke.
    #[error(transparent)]
    Protocol(#[from] protocol::ProtoError),
    /// The destination tree could not be opened or written.
    #[error(transparent)]
    Fs(#[from] fsx::FsError),
    /// Something rtsync does not do.
    #[error("{0}")]
    Unsupported(String),
    /// The peer ended the session with an error exit (its message came before).
    #[error("the peer ended the session (its exit code {0})")]
    RemoteExit(u8),
}

impl SessionError {
    /// rsync's exit code (`errcode.h`).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            SessionError::Socket(_) => 10,
            SessionError::Fs(_) => 11,
            SessionError::Timeout(_) => 30,
            SessionError::RemoteExit(code) => *code,
            SessionError::Unsupported(_) => 4,
            SessionError::Protocol(protocol::ProtoError::VersionMismatch { .. }) => 2,
            SessionError::Protocol(protocol::ProtoError::Protocol { .. }) => 12,
            SessionError::Protocol(_) => 5,
        }
    }

    /// A connection that ended while more was expected.
    #[must_use]
    pub fn closed(by: &str) -> SessionError {
        SessionError::Socket(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("connection closed by the {by}"),
        ))
    }
}
