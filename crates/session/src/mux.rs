//! The two halves of a connection: raw bytes first (greetings, arguments, setup), then
//! multiplexed frames (`io.c`), with the byte counts rsync reports. The reader hands messages
//! other than data to a [`MessageSink`]; an error exit from the peer ends the session.

use std::io::{IoSlice, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::SessionError;

/// The reading half of a connection: raw bytes first, multiplexed frames later.
pub struct MuxReader {
    stream: Box<dyn Read + Send>,
    pending: DataBuf,
    io_timeout: Option<Duration>,
    traffic: Arc<Traffic>,
}

/// The read half of a TCP connection that acknowledges what it reads at once (`TCP_QUICKACK`
/// after each read), instead of after Linux's delayed-ACK wait of up to 40 ms.
///
/// A peer that does not set `TCP_NODELAY` (stock `rsync --daemon`, stock rsync clients) holds
/// a small write back under Nagle's rule until its previous one is acknowledged; when we have
/// nothing to answer in between (the checksum seed after the checksum list, in every daemon
/// session), each such pair cost a whole delayed-ACK wait: 40 ms of an 85 ms empty push.
pub struct QuickAck(pub TcpStream);

impl Read for QuickAck {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        if n > 0 {
            // Not sticky: the kernel may leave quick-ack mode again, so it is asked each time;
            // with an ACK pending this sends it now. Failing only costs the wait.
            let _ = rustix::net::sockopt::set_tcp_quickack(&self.0, true);
        }
        Ok(n)
    }
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
    /// Counts from zero again: rsync's totals leave out the daemon's greeting, the login and
    /// the server's arguments, and start with the protocol's own setup.
    pub fn begin_session(&self) {
        self.sent.store(0, Ordering::Relaxed);
        self.received.store(0, Ordering::Relaxed);
    }
}

/// The writing half of a connection.
pub struct MuxWriter {
    stream: Option<Box<dyn Write + Send>>,
    /// The socket, to shut down its sending side (a pipe is closed by dropping it instead).
    tcp: Option<TcpStream>,
    traffic: Arc<Traffic>,
    throttle: Option<Throttle>,
    /// With [`MuxWriter::coalesce_writes`]: bytes written but not yet sent.
    pending: Vec<u8>,
    coalesce: bool,
}

/// How much [`MuxWriter::coalesce_writes`] gathers before it writes.
const COALESCE_BYTES: usize = 64 * 1024;
/// Writes under this size are gathered while coalescing; larger ones are not worth a copy.
const COALESCE_SMALL: usize = 8 * 1024;

/// `--bwlimit`: after each write, sleeps as long as sending its bytes at the rate would have
/// taken beyond the time that passed. Idle time earns no credit, so a burst after a pause is
/// held to the rate as well.
#[derive(Debug)]
struct Throttle {
    bytes_per_sec: u64,
    since: Instant,
    sent: u64,
}

impl Throttle {
    fn wrote(&mut self, n: usize) {
        let now = Instant::now();
        if self.due() < now {
            // Idle since the last write was paid for: start counting again from now.
            self.since = now;
            self.sent = 0;
        }
        self.sent += n as u64;
        let due = self.due();
        if due > now {
            std::thread::sleep(due - now);
        }
    }

    /// When what was sent since `since` has been paid for at the rate.
    fn due(&self) -> Instant {
        // f64 keeps big counts at low rates from overflowing; precision to the ns is plenty.
        #[allow(clippy::cast_precision_loss)]
        let secs = self.sent as f64 / self.bytes_per_sec.max(1) as f64;
        self.since + Duration::from_secs_f64(secs)
    }
}

impl MuxWriter {
    /// A writer over `stream`; with `tcp`, [`MuxWriter::shutdown`] shuts that socket's sending
    /// side instead of dropping the stream.
    #[must_use]
    pub fn new(
        stream: Box<dyn Write + Send>,
        tcp: Option<TcpStream>,
        traffic: Arc<Traffic>,
    ) -> Self {
        MuxWriter {
            stream: Some(stream),
            tcp,
            traffic,
            throttle: None,
            pending: Vec::new(),
            coalesce: false,
        }
    }

    /// From now on small writes gather until 64 KiB are waiting or [`MuxWriter::flush`] is
    /// called, as rsync's buffered output does: a sender of many small files otherwise makes
    /// a system call and a TCP segment per file. The caller must flush before it waits for
    /// the peer, who may be waiting for what is held here.
    ///
    /// Not under `--bwlimit`: the rate already cuts what is sent into paced pieces.
    pub fn coalesce_writes(&mut self) {
        self.coalesce = self.throttle.is_none();
    }

    /// Sends what [`MuxWriter::coalesce_writes`] holds back.
    ///
    /// # Errors
    /// Socket errors.
    pub fn flush(&mut self) -> Result<(), SessionError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.write_after_pending(&mut [])
    }

    /// Bounds how long one write may block on a socket (a peer that stopped reading); no
    /// effect on pipes.
    pub fn set_write_timeout(&self, timeout: Option<std::time::Duration>) {
        if let Some(tcp) = &self.tcp {
            let _ = tcp.set_write_timeout(timeout);
        }
    }

    /// Limits what this writer sends to `bytes_per_sec` on average (`None`: no limit), as
    /// rsync's `--bwlimit` does.
    pub fn set_bwlimit(&mut self, bytes_per_sec: Option<u64>) {
        self.throttle = bytes_per_sec
            .filter(|&b| b > 0)
            .map(|bytes_per_sec| Throttle {
                bytes_per_sec,
                since: Instant::now(),
                sent: 0,
            });
    }

    /// Another handle on the socket, to end the connection from another thread
    /// (`shutdown`) while this writer blocks in a write.
    #[must_use]
    pub fn socket(&self) -> Option<TcpStream> {
        self.tcp.as_ref().and_then(|t| t.try_clone().ok())
    }

    /// Whether this is a socket (else pipes: a remote shell's, or our own standard output).
    #[must_use]
    pub fn is_socket(&self) -> bool {
        self.tcp.is_some()
    }

    /// The byte counts this writer shares with its reader.
    #[must_use]
    pub fn traffic(&self) -> Arc<Traffic> {
        Arc::clone(&self.traffic)
    }

    /// Sends bytes as they are (the raw phase before multiplexing).
    ///
    /// # Errors
    /// Socket errors.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.send_slices(&mut [IoSlice::new(bytes)])
    }

    /// Writes all of `slices`, in order, after what is held back (or holds them back too).
    fn send_slices(&mut self, slices: &mut [IoSlice<'_>]) -> Result<(), SessionError> {
        let total: usize = slices.iter().map(|s| s.len()).sum();
        // Only small writes gather: a big one goes at once behind what is held, not copied.
        if self.coalesce && total < COALESCE_SMALL && self.pending.len() + total < COALESCE_BYTES {
            for s in slices.iter() {
                self.pending.extend_from_slice(s);
            }
            return Ok(());
        }
        self.write_after_pending(slices)
    }

    /// Writes what is held back, then `slices`, in one go.
    fn write_after_pending(&mut self, slices: &mut [IoSlice<'_>]) -> Result<(), SessionError> {
        if self.pending.is_empty() {
            return self.write_slices(slices);
        }
        let mut pending = std::mem::take(&mut self.pending);
        let mut all: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&pending))
            .chain(slices.iter().map(|s| IoSlice::new(s)))
            .collect();
        let sent = self.write_slices(&mut all);
        drop(all);
        pending.clear();
        self.pending = pending;
        sent
    }

    /// Writes all of `slices`, in order, paced under `--bwlimit`.
    fn write_slices(&mut self, slices: &mut [IoSlice<'_>]) -> Result<(), SessionError> {
        let Some(rate) = self.throttle.as_ref().map(|t| t.bytes_per_sec) else {
            return self.write_unthrottled(slices);
        };
        // Under --bwlimit, pieces of a tenth of a second each, a pause after each (as rsync
        // writes at most its bwlimit_writemax at a time): the connection is seen moving all
        // along, not in bursts a --timeout apart.
        let bytes: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
        let piece = usize::try_from(rate / 10).unwrap_or(usize::MAX).max(1024);
        for part in bytes.chunks(piece) {
            self.write_unthrottled(&mut [IoSlice::new(part)])?;
            if let Some(t) = &mut self.throttle {
                t.wrote(part.len());
            }
        }
        Ok(())
    }

    /// Writes all of `slices`, in order, then counts them.
    fn write_unthrottled(&mut self, mut slices: &mut [IoSlice<'_>]) -> Result<(), SessionError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(SessionError::Socket(std::io::ErrorKind::BrokenPipe.into()));
        };
        let total: usize = slices.iter().map(|s| s.len()).sum();
        while !slices.is_empty() {
            match stream.write_vectored(slices) {
                Ok(0) => {
                    return Err(SessionError::Socket(std::io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SessionError::Socket(e)),
            }
        }
        stream.flush().map_err(SessionError::Socket)?;
        self.traffic.sent.fetch_add(total as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Sends protocol data in multiplexed frames: each frame's header beside its piece of
    /// `data`, in one vectored write, so the data is not copied on its way to the socket.
    ///
    /// # Errors
    /// Socket errors.
    pub fn send_data(&mut self, data: &[u8]) -> Result<(), SessionError> {
        // At most 32 frames (1 MiB) per write keeps the slice list small.
        for group in data.chunks(protocol::mux::MAX_FRAME * 32) {
            self.send_data_parts(&[group])?;
        }
        Ok(())
    }

    /// Sends `parts` as one run of protocol data, framed across their boundaries, in one
    /// vectored write: a token's length and its literal piece go out without being gathered
    /// into one buffer first.
    ///
    /// # Errors
    /// Socket errors.
    pub fn send_data_parts(&mut self, parts: &[&[u8]]) -> Result<(), SessionError> {
        use protocol::mux::{MAX_FRAME, data_header};
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let headers: Vec<[u8; 4]> = (0..total.div_ceil(MAX_FRAME))
            .map(|i| data_header((total - i * MAX_FRAME).min(MAX_FRAME)))
            .collect();
        let mut slices = Vec::with_capacity(parts.len() + 2 * headers.len());
        let mut frames = headers.iter().enumerate();
        let mut left_in_frame = 0usize;
        for part in parts {
            let mut rest: &[u8] = part;
            while !rest.is_empty() {
                if left_in_frame == 0 {
                    let Some((i, header)) = frames.next() else {
                        break;
                    };
                    slices.push(IoSlice::new(header));
                    left_in_frame = (total - i * MAX_FRAME).min(MAX_FRAME);
                }
                let (now, later) = rest.split_at(left_in_frame.min(rest.len()));
                slices.push(IoSlice::new(now));
                left_in_frame -= now.len();
                rest = later;
            }
        }
        self.send_slices(&mut slices)
    }

    /// Sends bytes that are already framed (a message other than data).
    ///
    /// # Errors
    /// Socket errors.
    pub fn send_raw(&mut self, framed: &[u8]) -> Result<(), SessionError> {
        self.send(framed)
    }

    /// Ends the connection both ways after an error: a thread blocked reading it wakes up,
    /// and the peer sees the end at once (a pipe is closed by dropping it instead).
    pub fn abort(&mut self) {
        self.pending.clear();
        match &self.tcp {
            Some(tcp) => {
                let _ = tcp.shutdown(std::net::Shutdown::Both);
            }
            None => self.stream = None,
        }
    }

    /// Closes our sending side (after the goodbye, and after what is held back), so the
    /// server sees the end cleanly.
    pub fn shutdown(&mut self) {
        let _ = self.flush();
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
fn remote_exit(payload: &[u8]) -> SessionError {
    let code = payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_le_bytes);
    SessionError::RemoteExit(
        code.and_then(|c| u8::try_from(c).ok())
            .filter(|&c| c != 0)
            .unwrap_or(12),
    )
}

fn io(e: std::io::Error, timeout: Option<Duration>) -> SessionError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            SessionError::Timeout(timeout.map_or(0, |t| t.as_secs()))
        }
        _ => SessionError::Socket(e),
    }
}

impl MuxReader {
    /// A reader over `stream`; reads wait at most `io_timeout` (`--timeout`).
    #[must_use]
    pub fn new(
        stream: Box<dyn Read + Send>,
        io_timeout: Option<Duration>,
        traffic: Arc<Traffic>,
    ) -> Self {
        MuxReader {
            stream,
            pending: DataBuf::default(),
            io_timeout,
            traffic,
        }
    }

    /// Changes how long a read may wait (a daemon applies its module's `timeout` once the
    /// module is known).
    pub fn set_io_timeout(&mut self, timeout: Option<Duration>) {
        self.io_timeout = timeout;
    }

    /// Reads one text line of the daemon phase (at most 4 KiB, without its newline).
    ///
    /// # Errors
    /// Socket errors, a line too long, or a NUL in it.
    pub fn read_line(&mut self) -> Result<Vec<u8>, SessionError> {
        loop {
            if let Some(line) = protocol::daemon::take_line(self.pending.compacted(), 4096)? {
                return Ok(line);
            }
            self.fill()?;
        }
    }
}

/// Data received and not yet decoded, read from the front. Values are taken a few bytes at a
/// time (a file list is thousands of small entries), so the front is dropped in bulk, not
/// after each value.
#[derive(Debug, Default)]
pub struct DataBuf {
    buf: Vec<u8>,
    at: usize,
}

impl DataBuf {
    pub(crate) fn unread(&self) -> &[u8] {
        self.buf.get(self.at..).unwrap_or_default()
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.buf.len());
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        } else if self.at >= 64 * 1024 && self.at >= self.buf.len() / 2 {
            // Only once the dropped front outweighs what is kept, so the moves stay linear.
            self.buf.drain(..self.at);
            self.at = 0;
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The unread bytes as a vector of their own (for the line-based text phase).
    fn compacted(&mut self) -> &mut Vec<u8> {
        self.buf.drain(..self.at);
        self.at = 0;
        &mut self.buf
    }
}

/// Messages other than data that the server sent, for the user.
pub type MessageSink<'a> = dyn FnMut(protocol::mux::MsgCode, &[u8]) + 'a;

impl MuxReader {
    /// Reads more bytes from the socket into `pending`; `false` when the peer closed it.
    fn read_more(&mut self) -> Result<bool, SessionError> {
        let mut buf = [0u8; 64 * 1024];
        // --timeout is for a connection where nothing moves: while we are sending (a big
        // file under --bwlimit, with the peer silent until it has it all), it is not silent.
        let mut sent_before = self.traffic.sent();
        let n = loop {
            match self.stream.read(&mut buf) {
                Ok(n) => break n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) && self.traffic.sent() != sent_before =>
                {
                    sent_before = self.traffic.sent();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e, self.io_timeout)),
            }
        };
        self.traffic.received.fetch_add(n as u64, Ordering::Relaxed);
        self.pending.push(buf.get(..n).unwrap_or_default());
        Ok(n > 0)
    }

    /// Like [`MuxReader::read_more`], where the end of the connection is an error.
    fn fill(&mut self) -> Result<(), SessionError> {
        if self.read_more()? {
            return Ok(());
        }
        Err(SessionError::Socket(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed by the peer",
        )))
    }

    /// Reads one value from the raw (not yet multiplexed) stream with `decode`.
    ///
    /// # Errors
    /// Socket errors, or what `decode` refuses.
    pub fn read_raw<T>(
        &mut self,
        mut decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, protocol::ProtoError>,
    ) -> Result<T, SessionError> {
        loop {
            if let Some((v, used)) = decode(self.pending.unread())? {
                self.pending.consume(used);
                return Ok(v);
            }
            self.fill()?;
        }
    }

    /// The payload of the next data frame (messages met on the way go to `messages`); `None` when
    /// the peer closed the connection.
    ///
    /// # Errors
    /// Socket errors, malformed frames, or the server's error exit.
    pub fn next_data(
        &mut self,
        messages: &mut MessageSink<'_>,
    ) -> Result<Option<Vec<u8>>, SessionError> {
        use protocol::mux::MsgCode;
        loop {
            if let Some((code, len)) = protocol::mux::decode_header(self.pending.unread())?
                && self.pending.unread().len() >= 4 + len
            {
                let payload = self
                    .pending
                    .unread()
                    .get(4..4 + len)
                    .unwrap_or_default()
                    .to_vec();
                self.pending.consume(4 + len);
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
        data: &mut DataBuf,
        messages: &mut MessageSink<'_>,
        mut decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, protocol::ProtoError>,
    ) -> Result<T, SessionError> {
        use protocol::mux::MsgCode;
        loop {
            if let Some((v, used)) = decode(data.unread())? {
                data.consume(used);
                return Ok(v);
            }
            // Move one whole frame from the socket into `data` or to `messages`.
            let (code, len) = loop {
                if let Some(h) = protocol::mux::decode_header(self.pending.unread())?
                    && self.pending.unread().len() >= 4 + h.1
                {
                    break h;
                }
                self.fill()?;
            };
            let payload = self.pending.unread().get(4..4 + len).unwrap_or_default();
            match code {
                MsgCode::Data => data.push(payload),
                MsgCode::ErrorExit => return Err(remote_exit(payload)),
                other => messages(other, payload),
            }
            self.pending.consume(4 + len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader over bytes already received.
    fn reader_over(bytes: Vec<u8>) -> MuxReader {
        MuxReader::new(
            Box::new(std::io::Cursor::new(bytes)),
            None,
            Arc::new(Traffic::default()),
        )
    }

    #[test]
    fn a_bandwidth_limit_holds_the_average_rate_and_idle_time_earns_no_credit() {
        let mut w = MuxWriter::new(Box::new(std::io::sink()), None, Arc::default());
        w.set_bwlimit(Some(400_000));
        let t0 = Instant::now();
        for _ in 0..10 {
            w.send(&[0; 20_000]).unwrap();
        }
        // 200,000 bytes at 400,000 per second.
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(480), "{took:?}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        w.send(&[0; 40_000]).unwrap();
        w.send(&[0; 40_000]).unwrap();
        assert!(
            t0.elapsed() >= Duration::from_millis(190),
            "{:?}",
            t0.elapsed()
        );
        w.set_bwlimit(None);
        let t0 = Instant::now();
        w.send(&[0; 1_000_000]).unwrap();
        assert!(t0.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn values_split_across_frames_and_messages_between_them_arrive_whole() {
        use protocol::mux::{MsgCode, encode};
        // Ints whose bytes straddle frames, with a warning between two frames, then a
        // 300 KiB literal run over five frames: what a sender's stream looks like.
        let mut stream = Vec::new();
        encode(&mut stream, MsgCode::Data, &[1, 0, 0, 0, 2, 0]).unwrap();
        encode(&mut stream, MsgCode::Warning, b"careful\n").unwrap();
        encode(&mut stream, MsgCode::Data, &[0, 0]).unwrap();
        let big: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
        for piece in big.chunks(64 * 1024) {
            encode(&mut stream, MsgCode::Data, piece).unwrap();
        }
        let mut r = reader_over(stream);
        let mut data = DataBuf::default();
        let mut told = Vec::new();
        let mut sink = |code: MsgCode, text: &[u8]| told.push((code, text.to_vec()));
        let int = |b: &[u8]| Ok(protocol::wire::get_int(b));
        assert_eq!(r.recv_data(&mut data, &mut sink, int).unwrap(), 1);
        assert_eq!(r.recv_data(&mut data, &mut sink, int).unwrap(), 2);
        let mut got = Vec::new();
        while got.len() < big.len() {
            let take = 1000.min(big.len() - got.len());
            let piece = r
                .recv_data(&mut data, &mut sink, |b| {
                    Ok(b.get(..take).map(|s| (s.to_vec(), take)))
                })
                .unwrap();
            got.extend_from_slice(&piece);
        }
        assert_eq!(got, big);
        assert_eq!(told, vec![(MsgCode::Warning, b"careful\n".to_vec())]);
        // The front is dropped as it goes: what is held never grows with what went by.
        assert!(data.buf.len() <= 128 * 1024, "{}", data.buf.len());
    }

    #[test]
    fn text_lines_then_raw_values_share_one_buffer() {
        let mut r = reader_over(b"@RSYNCD: 31.0\nmod\n\x05\x00\x00\x00".to_vec());
        assert_eq!(r.read_line().unwrap(), b"@RSYNCD: 31.0");
        assert_eq!(r.read_line().unwrap(), b"mod");
        assert_eq!(r.read_raw(|b| Ok(protocol::wire::get_int(b))).unwrap(), 5);
    }
}
