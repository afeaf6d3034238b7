//! The client side of rsync connections, over real sockets: how rsync spells remote paths
//! ([`Remote::parse`]), and daemon connections ([`daemon`]): connect with a timeout, exchange
//! greetings, list modules, open a module and answer its authentication challenge, then the
//! binary setup, or the rtsync stream between rtsync peers ([`stream`]). The transfer roles
//! themselves are the `session` crate's, shared with the daemon.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod daemon;
mod remote;
pub mod stream;

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
    /// The session failed once connected.
    #[error(transparent)]
    Session(#[from] session::SessionError),
    /// The daemon asked for a password we do not have, or the password file is unusable.
    #[error("{0}")]
    Password(String),
    /// The daemon refused the transfer once the module was open, with rsync's exit code.
    #[error("{message}")]
    Refused {
        /// rsync exit code.
        code: u8,
        /// The daemon's words.
        message: String,
    },
}

impl ClientError {
    /// rsync's exit code (`errcode.h`).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Connect { .. } => 10,
            ClientError::ConnectTimeout { .. } => 35,
            ClientError::Session(e) => e.exit_code(),
            ClientError::Password(_) => 5,
            ClientError::Refused { code, .. } => *code,
        }
    }
}

impl From<protocol::ProtoError> for ClientError {
    fn from(e: protocol::ProtoError) -> Self {
        ClientError::Session(e.into())
    }
}

impl From<std::io::Error> for ClientError {
    /// A socket error.
    fn from(e: std::io::Error) -> Self {
        ClientError::Session(session::SessionError::Socket(e))
    }
}
