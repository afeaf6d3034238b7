//! A connection to an rsync daemon, up to the point where the transfer starts: connect, swap
//! greetings, then either list the modules or open one, answering its challenge.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use protocol::daemon::{self, AuthDigest, Greeting, ServerLine};

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

/// The reading half of a connection: raw bytes first, multiplexed frames later.
pub struct MuxReader {
    stream: Box<dyn Read + Send>,
    pending: Vec<u8>,
    io_timeout: Option<Duration>,
    traffic: Arc<Traffic>,
}

/// Bytes that crossed the connection each way, for rsync's "sent N bytes  received M bytes".
#[derive(Debug, Default)]
pub struct Traffic {
    sent: AtomicU64,
    received: AtomicU64,
}

impl Traffic {
    /// Bytes written to the server so far.
    #[must_use]
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    /// Bytes read from the server so far.
    #[must_use]
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// The writing half of a connection.
pub struct MuxWriter {
    stream: Option<Box<dyn Write + Send>>,
    /// The socket, to shut down its sending side (a pipe is closed by dropping it instead).
    tcp: Option<TcpStream>,
    traffic: Arc<Traffic>,
}

impl MuxWriter {
    fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(ClientError::Socket(std::io::ErrorKind::BrokenPipe.into()));
        };
        stream
            .write_all(bytes)
            .and_then(|()| stream.flush())
            .map_err(ClientError::Socket)?;
        self.traffic
            .sent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Sends protocol data in multiplexed frames.
    ///
    /// # Errors
    /// Socket errors.
    pub fn send_data(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let mut out = Vec::with_capacity(data.len() + 8);
        protocol::mux::encode_data(&mut out, data);
        self.send(&out)
    }

    /// Sends bytes that are already framed (a message other than data).
    ///
    /// # Errors
    /// Socket errors.
    pub fn send_raw(&mut self, framed: &[u8]) -> Result<(), ClientError> {
        self.send(framed)
    }

    /// Closes our sending side (after the goodbye), so the server sees the end cleanly.
    pub fn shutdown(&mut self) {
        match &self.tcp {
            Some(tcp) => {
                let _ = tcp.shutdown(std::net::Shutdown::Write);
            }
            None => self.stream = None,
        }
    }
}

/// The exit code an `MSG_ERROR_EXIT` carries (protocol 31+), else rsync's "error in rsync
/// protocol data stream".
fn remote_exit(payload: &[u8]) -> ClientError {
    let code = payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_le_bytes);
    ClientError::RemoteExit(
        code.and_then(|c| u8::try_from(c).ok())
            .filter(|&c| c != 0)
            .unwrap_or(12),
    )
}

fn io(e: std::io::Error, timeout: Option<Duration>) -> ClientError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            ClientError::Timeout(timeout.map_or(0, |t| t.as_secs()))
        }
        _ => ClientError::Socket(e),
    }
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
        stream
            .set_read_timeout(opts.io_timeout)
            .map_err(ClientError::Socket)?;
        stream.set_nodelay(true).map_err(ClientError::Socket)?;
        let traffic = Arc::new(Traffic::default());
        let writer = MuxWriter {
            stream: Some(Box::new(stream.try_clone().map_err(ClientError::Socket)?)),
            tcp: Some(stream.try_clone().map_err(ClientError::Socket)?),
            traffic: Arc::clone(&traffic),
        };
        let mut conn = Connection {
            reader: MuxReader {
                stream: Box::new(stream),
                pending: Vec::new(),
                io_timeout: opts.io_timeout,
                traffic,
            },
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
        self.writer.send(bytes)
    }

    fn read_line(&mut self) -> Result<Vec<u8>, ClientError> {
        self.reader.read_line()
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
        Arc::clone(&self.writer.traffic)
    }

    /// Sends protocol data in multiplexed frames.
    ///
    /// # Errors
    /// Socket errors.
    pub fn send_data(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.writer.send_data(data)
    }

    /// Reads the next value of the multiplexed data stream (see [`MuxReader::recv_data`]).
    ///
    /// # Errors
    /// As [`MuxReader::recv_data`].
    pub fn recv_data<T>(
        &mut self,
        data: &mut Vec<u8>,
        messages: &mut MessageSink<'_>,
        decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, protocol::ProtoError>,
    ) -> Result<T, ClientError> {
        self.reader.recv_data(data, messages, decode)
    }
}

impl MuxReader {
    fn read_line(&mut self) -> Result<Vec<u8>, ClientError> {
        loop {
            if let Some(line) = daemon::take_line(&mut self.pending, 4096)? {
                return Ok(line);
            }
            self.fill()?;
        }
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

/// `CF_VARINT_FLIST_FLAGS`: varint entry flags and negotiated checksum names.
pub const CF_VARINT_FLIST_FLAGS: u32 = 0x80;
/// `CF_ID0_NAMES`: id lists carry a name for id 0.
pub const CF_ID0_NAMES: u32 = 0x100;
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

/// Messages other than data that the server sent, for the user.
pub type MessageSink<'a> = dyn FnMut(protocol::mux::MsgCode, &[u8]) + 'a;

impl MuxReader {
    /// Reads more bytes from the socket into `pending`; `false` when the daemon closed it.
    fn read_more(&mut self) -> Result<bool, ClientError> {
        let mut buf = [0u8; 64 * 1024];
        let n = self
            .stream
            .read(&mut buf)
            .map_err(|e| io(e, self.io_timeout))?;
        self.traffic.received.fetch_add(n as u64, Ordering::Relaxed);
        self.pending
            .extend_from_slice(buf.get(..n).unwrap_or_default());
        Ok(n > 0)
    }

    /// Like [`MuxReader::read_more`], where the end of the connection is an error.
    fn fill(&mut self) -> Result<(), ClientError> {
        if self.read_more()? {
            return Ok(());
        }
        Err(ClientError::Socket(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed by the daemon",
        )))
    }

    /// Reads one value from the raw (not yet multiplexed) stream with `decode`.
    fn read_raw<T>(
        &mut self,
        mut decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, protocol::ProtoError>,
    ) -> Result<T, ClientError> {
        loop {
            if let Some((v, used)) = decode(&self.pending)? {
                self.pending.drain(..used);
                return Ok(v);
            }
            self.fill()?;
        }
    }

    /// The payload of the next data frame (messages met on the way go to `messages`); `None` when
    /// the daemon closed the connection.
    ///
    /// # Errors
    /// Socket errors, malformed frames, or the server's error exit.
    pub fn next_data(
        &mut self,
        messages: &mut MessageSink<'_>,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        use protocol::mux::MsgCode;
        loop {
            if let Some((code, len)) = protocol::mux::decode_header(&self.pending)?
                && self.pending.len() >= 4 + len
            {
                let payload: Vec<u8> = self.pending.drain(..4 + len).skip(4).collect();
                match code {
                    MsgCode::Data => return Ok(Some(payload)),
                    MsgCode::ErrorExit => return Err(remote_exit(&payload)),
                    other => messages(other, &payload),
                }
                continue;
            }
            if !self.read_more()? {
                return Ok(None);
            }
        }
    }

    /// Reads the next value of the multiplexed data stream with `decode`; messages met on the
    /// way go to `messages`. An error exit from the server ends the session.
    ///
    /// # Errors
    /// Socket errors, malformed frames or data, or the server's error exit.
    pub fn recv_data<T>(
        &mut self,
        data: &mut Vec<u8>,
        messages: &mut MessageSink<'_>,
        mut decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, protocol::ProtoError>,
    ) -> Result<T, ClientError> {
        use protocol::mux::MsgCode;
        loop {
            if let Some((v, used)) = decode(data)? {
                data.drain(..used);
                return Ok(v);
            }
            // Move one whole frame from the socket into `data` or to `messages`.
            let (code, len) = loop {
                if let Some(h) = protocol::mux::decode_header(&self.pending)?
                    && self.pending.len() >= 4 + h.1
                {
                    break h;
                }
                self.fill()?;
            };
            let payload: Vec<u8> = self.pending.drain(..4 + len).skip(4).collect();
            match code {
                MsgCode::Data => data.extend_from_slice(&payload),
                MsgCode::ErrorExit => return Err(remote_exit(&payload)),
                other => messages(other, &payload),
            }
        }
    }
}

impl Connection {
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
                    return Err(ClientError::Unsupported(format!(
                        "no compression in common: the server offers {theirs:?}, rtsync compresses with zstd only"
                    )));
                }
            }
        } else if compress {
            return Err(ClientError::Unsupported(
                "the server cannot negotiate compression (it would use zlib): rtsync compresses with zstd only".into(),
            ));
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
            reader: MuxReader {
                stream: from,
                pending: Vec::new(),
                io_timeout: None,
                traffic: Arc::clone(&traffic),
            },
            writer: MuxWriter {
                stream: Some(to),
                tcp: None,
                traffic,
            },
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
