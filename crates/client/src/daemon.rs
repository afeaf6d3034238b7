//! A connection to an rsync daemon, up to the point where the transfer starts: connect, swap
//! greetings, then either list the modules or open one, answering its challenge.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use protocol::compat::CF_VARINT_FLIST_FLAGS;
use protocol::daemon::{self, AuthDigest, Greeting, ServerLine};
use session::mux::QuickAck;
pub use session::mux::{MessageSink, MuxReader, MuxWriter, Traffic};

use crate::ClientError;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Host name or address.
    pub host: String,
    /// Port (873 by default).
    pub port: u16,
    /// `--contimeout`: how long connecting may take.
    pub connect_timeout: Option<Duration>,
    /// `--timeout`: how long a read may wait.
    pub io_timeout: Option<Duration>,
}

/// An open connection to an rsync server: a daemon after the greetings, or `rsync --server`
/// started through a remote shell after the protocol exchange.
pub struct Connection {
    reader: MuxReader,
    writer: MuxWriter,
    /// The daemon's greeting (empty over a remote shell).
    pub greeting: Greeting,
    /// The protocol version in use.
    pub protocol: u32,
    /// Over a remote shell the server's arguments went on its command line, not in-band.
    args_in_band: bool,
}

impl Connection {
    /// Connects and swaps greetings. Our greeting goes out first, without waiting, as rsync's.
    ///
    /// # Errors
    /// Connection failures (exit 10, or 35 on `--contimeout`), an `@ERROR` greeting (exit 5),
    /// or a peer older than protocol 30 (exit 2).
    pub fn connect(opts: &ConnectOptions) -> Result<Self, ClientError> {
        let target = format!("{}:{}", opts.host, opts.port);
        let addrs: Vec<_> = (opts.host.as_str(), opts.port)
            .to_socket_addrs()
            .map_err(|source| ClientError::Connect {
                host: target.clone(),
                source,
            })?
            .collect();
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            let attempt = match opts.connect_timeout {
                Some(t) => TcpStream::connect_timeout(&addr, t),
                None => TcpStream::connect(addr),
            };
            match attempt {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = match (stream, last) {
            (Some(s), _) => s,
            (None, Some(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(ClientError::ConnectTimeout {
                    host: target,
                    secs: opts.connect_timeout.map_or(0, |t| t.as_secs()),
                });
            }
            (None, e) => {
                return Err(ClientError::Connect {
                    host: target,
                    source: e.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()),
                });
            }
        };
        stream.set_read_timeout(opts.io_timeout)?;
        stream.set_nodelay(true)?;
        if let Some(t) = opts.io_timeout {
            // A peer that stops acknowledging what we sent for as long as --timeout allows
            // silence is gone (a cut link, a dead host): end the connection then, rather than
            // leave TCP to retry with ever longer gaps and resume seconds or minutes after the
            // path comes back. A slow but alive peer still acknowledges, so it is not cut.
            let ms = u32::try_from(t.as_millis()).unwrap_or(u32::MAX);
            rustix::net::sockopt::set_tcp_user_timeout(&stream, ms)
                .map_err(std::io::Error::from)?;
        }
        let traffic = Arc::new(Traffic::default());
        let writer = MuxWriter::new(
            Box::new(stream.try_clone()?),
            Some(stream.try_clone()?),
            Arc::clone(&traffic),
        );
        let mut conn = Connection {
            reader: MuxReader::new(Box::new(QuickAck(stream)), opts.io_timeout, traffic),
            writer,
            greeting: Greeting {
                version: 0,
                sub: None,
                digests: None,
            },
            protocol: 0,
            args_in_band: true,
        };
        conn.send(&daemon::greeting())?;
        let line = conn.read_line()?;
        conn.greeting = daemon::parse_greeting(&line)?;
        conn.protocol = daemon::negotiate_version(&conn.greeting)?;
        Ok(conn)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        Ok(self.writer.send(bytes)?)
    }

    fn read_line(&mut self) -> Result<Vec<u8>, ClientError> {
        Ok(self.reader.read_line()?)
    }

    /// The two halves, for a reader and a writer working at the same time (a transfer must never
    /// block writing without reading).
    #[must_use]
    pub fn into_halves(self) -> (MuxReader, MuxWriter) {
        (self.reader, self.writer)
    }

    /// The byte counts of this connection, which go on counting after [`Self::into_halves`].
    #[must_use]
    pub fn traffic(&self) -> Arc<Traffic> {
        self.writer.traffic()
    }

    /// Sends protocol data in multiplexed frames.
    ///
    /// # Errors
    /// Socket errors.
    pub fn send_data(&mut self, data: &[u8]) -> Result<(), ClientError> {
        Ok(self.writer.send_data(data)?)
    }

    /// Reads the next value of the multiplexed data stream (see [`MuxReader::recv_data`]).
    ///
    /// # Errors
    /// As [`MuxReader::recv_data`].
    pub fn recv_data<T>(
        &mut self,
        data: &mut session::mux::DataBuf,
        messages: &mut MessageSink<'_>,
        decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, protocol::ProtoError>,
    ) -> Result<T, ClientError> {
        Ok(self.reader.recv_data(data, messages, decode)?)
    }
}

impl Connection {
    /// Asks for the module list. `text` receives every line as the daemon sent it (the MOTD,
    /// then `name<TAB>comment` lines), which is what rsync prints.
    ///
    /// # Errors
    /// Socket errors or an `@ERROR` from the daemon.
    pub fn list_modules(mut self, text: &mut dyn FnMut(&[u8])) -> Result<(), ClientError> {
        self.send(b"#list\n")?;
        loop {
            let line = self.read_line()?;
            match daemon::parse_server_line(&line) {
                ServerLine::Exit => return Ok(()),
                ServerLine::Error(msg) => return Err(protocol::ProtoError::Remote(msg).into()),
                _ => text(&line),
            }
        }
    }

    /// Opens `module`, answering an authentication challenge as `user` with `password`
    /// (asked for only when the daemon wants one). MOTD lines go to `text`.
    ///
    /// # Errors
    /// `@ERROR` answers (unknown module, auth failed, access denied: exit 5), a missing password,
    /// or socket errors.
    pub fn open_module(
        &mut self,
        module: &str,
        user: &str,
        password: &mut dyn FnMut() -> Result<Vec<u8>, ClientError>,
        text: &mut dyn FnMut(&[u8]),
    ) -> Result<(), ClientError> {
        self.send(format!("{module}\n").as_bytes())?;
        loop {
            let line = self.read_line()?;
            match daemon::parse_server_line(&line) {
                ServerLine::Ok => return Ok(()),
                ServerLine::Error(msg) => return Err(protocol::ProtoError::Remote(msg).into()),
                ServerLine::AuthRequired(challenge) => {
                    let digest = daemon::choose_digest(self.greeting.digests.as_deref())
                        .ok_or_else(|| {
                            ClientError::Password(
                                "the daemon offers no authentication digest rtsync knows".into(),
                            )
                        })?;
                    let pw = password()?;
                    let answer = digest.respond(&pw, challenge.as_bytes());
                    self.send(format!("{user} {answer}\n").as_bytes())?;
                }
                ServerLine::Exit => {
                    return Err(protocol::ProtoError::protocol_text(
                        "module",
                        "the daemon ended the session",
                    )
                    .into());
                }
                ServerLine::Text(t) => text(&t),
            }
        }
    }

    /// The digest authentication would use with this daemon.
    #[must_use]
    pub fn auth_digest(&self) -> Option<AuthDigest> {
        daemon::choose_digest(self.greeting.digests.as_deref())
    }
}

/// Reads a `--password-file` as rsync does: the first line, and the file must not be readable
/// by others (nor, when running as root, owned by anyone else).
///
/// # Errors
/// [`ClientError::Password`] with rsync's wording.
pub fn read_password_file(path: &Path) -> Result<Vec<u8>, ClientError> {
    let md = std::fs::metadata(path).map_err(|e| {
        ClientError::Password(format!(
            "could not open password file {}: {e}",
            path.display()
        ))
    })?;
    if md.mode() & 0o006 != 0 {
        return Err(ClientError::Password(
            "ERROR: password file must not be other-accessible".into(),
        ));
    }
    if md.uid() != 0 && rustix::process::getuid().is_root() {
        return Err(ClientError::Password(
            "ERROR: password file must be owned by root when running as root".into(),
        ));
    }
    let content = std::fs::read(path).map_err(|e| {
        ClientError::Password(format!(
            "could not read password file {}: {e}",
            path.display()
        ))
    })?;
    let line = content.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

/// The capability letters rtsync sends after `e`: no incremental recursion (`i`), no symlink
/// iconv (`s`).
pub const CAPABILITIES: &str = ".LfxCIvu";

/// What the server decided in the binary setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSetup {
    /// Compat flags (`CF_*`).
    pub compat: u32,
    /// Negotiated transfer checksum.
    pub checksum: delta::ChecksumKind,
    /// Session checksum seed.
    pub seed: i32,
    /// Tokens are compressed with zstd.
    pub compress: bool,
}

impl Connection {
    /// Holds what we send to `bytes_per_sec` on average (`--bwlimit`; `None`: no limit).
    pub fn set_bwlimit(&mut self, bytes_per_sec: Option<u64>) {
        self.writer.set_bwlimit(bytes_per_sec);
    }

    /// Sends the server's argument vector (NUL-terminated words, then an empty one) and reads
    /// the binary setup: compat flags, checksum negotiation, seed.
    ///
    /// # Errors
    /// Socket errors, or a checksum list with nothing in common.
    pub fn start(&mut self, args: &[Vec<u8>], compress: bool) -> Result<ServerSetup, ClientError> {
        if self.args_in_band {
            let mut out = Vec::new();
            for a in args {
                out.extend_from_slice(a);
                out.push(0);
            }
            out.push(0);
            self.send(&out)?;
        }
        self.writer.traffic().begin_session();
        let compat = self
            .reader
            .read_raw(protocol::wire::get_varint)?
            .cast_unsigned();
        let mut checksum = delta::ChecksumKind::Md5;
        if compat & CF_VARINT_FLIST_FLAGS != 0 {
            // Both lists go out before either comes in, as rsync does.
            let ours = ["xxh128", "xxh3", "xxh64", "md5"];
            let mut lists = Vec::new();
            protocol::wire::put_vstring(&mut lists, ours.join(" ").as_bytes())?;
            if compress {
                protocol::wire::put_vstring(&mut lists, b"zstd")?;
            }
            self.send(&lists)?;
            let theirs = self.read_list()?;
            let chosen = ours
                .iter()
                .find(|o| theirs.split_whitespace().any(|t| t == **o))
                .ok_or_else(|| {
                    protocol::ProtoError::protocol_text(
                        "checksum negotiation",
                        &format!("no checksum in common with the server's list {theirs:?}"),
                    )
                })?;
            checksum = delta::ChecksumKind::from_name(chosen).unwrap_or(delta::ChecksumKind::Md5);
            if compress {
                let theirs = self.read_list()?;
                if !theirs.split_whitespace().any(|t| t == "zstd") {
                    return Err(session::SessionError::Unsupported(format!(
                        "no compression in common: the server offers {theirs:?}, rtsync compresses with zstd only"
                    ))
                    .into());
                }
            }
        } else if compress {
            return Err(session::SessionError::Unsupported(
                "the server cannot negotiate compression (it would use zlib): rtsync compresses with zstd only".into(),
            )
            .into());
        }
        let seed = self.reader.read_raw(|b| Ok(protocol::wire::get_int(b)))?;
        Ok(ServerSetup {
            compat,
            checksum,
            seed,
            compress,
        })
    }

    fn read_list(&mut self) -> Result<String, ClientError> {
        let list = self
            .reader
            .read_raw(|b| Ok(protocol::wire::get_vstring(b).map(|(s, n)| (s.to_vec(), n))))?;
        Ok(String::from_utf8_lossy(&list).into_owned())
    }
}

impl Connection {
    /// Talks to an `rsync --server` whose standard input and output are `to` and `from`
    /// (a remote shell, or any program that runs it): both sides send their protocol version as
    /// a 4-byte int, and the server's arguments were on its command line.
    ///
    /// # Errors
    /// Pipe errors, or a server older than protocol 30.
    pub fn over_pipes(
        to: Box<dyn Write + Send>,
        from: Box<dyn Read + Send>,
    ) -> Result<Self, ClientError> {
        let traffic = Arc::new(Traffic::default());
        let mut conn = Connection {
            reader: MuxReader::new(from, None, Arc::clone(&traffic)),
            writer: MuxWriter::new(to, None, traffic),
            greeting: Greeting {
                version: 0,
                sub: None,
                digests: None,
            },
            protocol: 0,
            args_in_band: false,
        };
        let mut v = Vec::new();
        protocol::wire::put_int(&mut v, protocol::PROTOCOL_VERSION.cast_signed());
        conn.send(&v)?;
        let theirs = conn.reader.read_raw(|b| Ok(protocol::wire::get_int(b)))?;
        let peer = u32::try_from(theirs).unwrap_or(0);
        conn.protocol = daemon::negotiate_version(&Greeting {
            version: peer,
            sub: Some(0),
            digests: None,
        })?;
        Ok(conn)
    }
}
