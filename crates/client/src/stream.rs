//! The client side of the rtsync stream ([`protocol::stream`]): connect to a daemon as any
//! rsync client does, and if its greeting offers the stream, open the module (answering its
//! challenge as usual) and ask for the stream instead of an rsync transfer. A daemon that does
//! not offer it is left before anything is asked of it, so stock rsync never sees the stream.

use std::time::Duration;

use protocol::stream::{self, Frame};

use crate::ClientError;
use crate::daemon::{ConnectOptions, Connection, MuxReader, MuxWriter};

/// What a daemon said to the offer.
pub enum Opened {
    /// The stream is open: write frames to the writer, read acknowledgements from the reader;
    /// the server speaks this version of it.
    Stream(MuxReader, MuxWriter, u32),
    /// The daemon does not speak the stream (stock rsync): use rsync.
    NotOffered,
}

/// Connects to the daemon at `opts` and opens the stream into `module`/`path`, logging in as
/// `user` with `password` when the module asks.
///
/// # Errors
/// As [`Connection::connect`] and [`Connection::open_module`], and the daemon's refusal of the
/// stream (`read only`, refused options) as an `@ERROR`-style remote error with its exit code.
pub fn open(
    opts: &ConnectOptions,
    module: &str,
    path: &[u8],
    user: &str,
    password: &mut dyn FnMut() -> Result<Vec<u8>, ClientError>,
) -> Result<Opened, ClientError> {
    let mut conn = Connection::connect(opts)?;
    if !stream::advertised(conn.greeting.digests.as_deref()) {
        return Ok(Opened::NotOffered);
    }
    conn.open_module(module, user, password, &mut |_| {})?;
    let mut target = module.as_bytes().to_vec();
    target.push(b'/');
    target.extend_from_slice(path);
    let mut args = Vec::new();
    for word in [
        b"--server".as_slice(),
        stream::STREAM_ARG.as_bytes(),
        b".",
        &target,
    ] {
        args.extend_from_slice(word);
        args.push(0);
    }
    args.push(0);
    let (mut reader, mut writer) = conn.into_halves();
    writer.send(&args)?;
    writer.set_write_timeout(opts.io_timeout.map(|t| t.max(Duration::from_secs(1))));
    match reader.read_raw(Frame::decode)? {
        Frame::Ready { version } => Ok(Opened::Stream(reader, writer, version)),
        Frame::Fatal { code, message } => Err(ClientError::Refused { code, message }),
        other => Err(protocol::ProtoError::protocol_text(
            "rtsync stream",
            &format!("the daemon answered with {other:?}"),
        )
        .into()),
    }
}
