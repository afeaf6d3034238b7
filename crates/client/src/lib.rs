//! The client side of rsync connections, over real sockets: how rsync spells remote paths
//! ([`Remote::parse`]), and daemon connections ([`daemon`]): connect with a timeout, exchange
//! greetings, list modules, open a module and answer its authentication challenge.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod daemon;
pub mod pull;
pub mod push;
mod remote;

pub use remote::Remote;

/// Errors of a client connection, each with rsync's exit code ([`ClientError::exit_code`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The TCP connection failed.
    #[error("failed to connect to {host}: {source}")]
    Connect {
        /// Host and port.
        host: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `--contimeout` expired.
    #[error("failed to connect to {host}: timed out after {secs} seconds")]
    ConnectTimeout {
        /// Host and port.
        host: String,
        /// The timeout.
        secs: u64,
    },
    /// Reading or writing the socket failed.
    #[error("error in socket IO: {0}")]
    Socket(#[source] std::io::Error),
    /// `--timeout` expired with nothing received.
    #[error("timeout waiting for the daemon after {0} seconds")]
    Timeout(u64),
    /// The daemon refused us or the protocol broke.
    #[error(transparent)]
    Protocol(#[from] protocol::ProtoError),
    /// Something rtsync does not do yet.
    #[error("{0}")]
    Unsupported(String),
    /// The daemon ended the session with an error exit (its message came before).
    #[error("the daemon ended the session (its exit code {0})")]
    RemoteExit(u8),
    /// The daemon asked for a password we do not have, or the password file is unusable.
    #[error("{0}")]
    Password(String),
}

impl ClientError {
    /// rsync's exit code (`errcode.h`).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Connect { .. } | ClientError::Socket(_) => 10,
            ClientError::ConnectTimeout { .. } => 35,
            ClientError::Timeout(_) => 30,
            ClientError::RemoteExit(code) => *code,
            ClientError::Unsupported(_) => 4,
            ClientError::Protocol(protocol::ProtoError::VersionMismatch { .. }) => 2,
            ClientError::Protocol(protocol::ProtoError::Protocol { .. }) => 12,
            ClientError::Protocol(_) | ClientError::Password(_) => 5,
        }
    }
}
