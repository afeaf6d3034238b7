//! Compressed token streams (`-z`, negotiated `zstd`): the flag-byte framing of rsync's
//! compressed tokens around one zstd stream that lives for the whole session.
//!
//! Flag bytes: `0x00` ends a file; `0x40 | len >> 8`, `len & 0xff` introduces up to 16383 bytes
//! of compressed data (`DEFLATED_DATA`); block copies come as runs of consecutive block numbers,
//! `0x80 | r` (`TOKEN_REL`) or `0xc0 | r` plus a 16-bit count (`TOKENRUN_REL`) when the run starts
//! `r` (0–63) blocks after the end of the previous run, else `0x20` (`TOKEN_LONG`) or `0x21`
//! (`TOKENRUN_LONG`) with the 4-byte block number (and the count). The previous run's end starts
//! at 0 for every file. Compressed data is flushed before any block copy and at the end of a file,
//! so the receiver always has the literal bytes that come before a copy.

use zstd::stream::raw::{Decoder, Encoder, InBuffer, Operation, OutBuffer};

use crate::ProtoError;

const END_FLAG: u8 = 0x00;
const TOKEN_LONG: u8 = 0x20;
const TOKENRUN_LONG: u8 = 0x21;
const DEFLATED_DATA: u8 = 0x40;
const TOKEN_REL: u8 = 0x80;
const TOKENRUN_REL: u8 = 0xc0;
/// Largest compressed record.
pub const MAX_DATA_COUNT: usize = 16383;
/// Largest literal one [`TokenDecoder::decode`] call hands out. A record can expand about
/// 32768-fold (zstd RLE blocks: 4 bytes for 128 KiB; 512 MiB from one 16 KiB record), so its
/// bytes come out in pieces of at most this size.
pub const MAX_LITERAL_PIECE: usize = 128 * 1024;

fn err(detail: impl Into<String>) -> ProtoError {
    ProtoError::protocol("compressed token stream", detail)
}

/// One decoded item of a file's token stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Literal bytes (already decompressed).
    Literal(Vec<u8>),
    /// Copy this basis block.
    Copy(u32),
    /// End of the file.
    End,
}

/// The receiving side: one per session (the zstd stream spans all files).
pub struct TokenDecoder {
    zstd: Decoder<'static>,
    last_run_end: u32,
    /// Blocks of the current run still to hand out: (next, remaining).
    run: Option<(u32, u32)>,
    /// The compressed record being decompressed, and how much of it zstd has taken.
    record: Vec<u8>,
    record_pos: usize,
    /// The last piece filled the output: zstd may hold more of the record's bytes.
    draining: bool,
    /// Output space for one piece.
    scratch: Vec<u8>,
}

impl TokenDecoder {
    /// A decoder at the start of a session.
    ///
    /// # Errors
    /// zstd could not start.
    pub fn new() -> Result<Self, ProtoError> {
        Ok(TokenDecoder {
            zstd: Decoder::new().map_err(|e| err(e.to_string()))?,
            last_run_end: 0,
            run: None,
            record: Vec::new(),
            record_pos: 0,
            draining: false,
            scratch: vec![0; MAX_LITERAL_PIECE],
        })
    }

    /// Resets the per-file state (call before each file's tokens).
    pub fn start_file(&mut self) {
        self.last_run_end = 0;
        self.run = None;
    }

    /// Decompresses the rest of the current record into at most [`MAX_LITERAL_PIECE`] bytes.
    fn inflate(&mut self) -> Result<Vec<u8>, ProtoError> {
        let mut input = InBuffer {
            src: &self.record,
            pos: self.record_pos,
        };
        let mut produced = 0;
        loop {
            let mut output = OutBuffer::around_pos(&mut self.scratch[..], produced);
            let before = (input.pos(), produced);
            self.zstd
                .run(&mut input, &mut output)
                .map_err(|e| err(e.to_string()))?;
            produced = output.pos();
            let done = input.pos() >= self.record.len() || (input.pos(), produced) == before;
            if produced == self.scratch.len() || done {
                break;
            }
        }
        self.record_pos = input.pos();
        self.draining = produced == self.scratch.len();
        Ok(self.scratch.get(..produced).unwrap_or_default().to_vec())
    }

    fn run_of(&mut self, start: u32, count: u32) -> Token {
        self.last_run_end = start.saturating_add(count);
        if count > 0 {
            self.run = Some((start.saturating_add(1), count));
        }
        Token::Copy(start)
    }

    /// Decodes the next item from `buf`: `Ok(None)` until a whole record is there.
    ///
    /// A record's literal bytes may come as several [`Token::Literal`]s of at most
    /// [`MAX_LITERAL_PIECE`] bytes, and a run record as several [`Token::Copy`]s: the first
    /// consumes the record, the others consume nothing.
    ///
    /// # Errors
    /// Malformed records or compressed data.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Token, usize)>, ProtoError> {
        if let Some((next, left)) = self.run {
            self.run = (left > 1).then(|| (next.saturating_add(1), left - 1));
            return Ok(Some((Token::Copy(next), 0)));
        }
        if self.draining {
            let piece = self.inflate()?;
            if !piece.is_empty() {
                return Ok(Some((Token::Literal(piece), 0)));
            }
        }
        let Some(&flag) = buf.first() else {
            return Ok(None);
        };
        match flag {
            END_FLAG => Ok(Some((Token::End, 1))),
            f if f & 0xc0 == DEFLATED_DATA => {
                let Some(&low) = buf.get(1) else {
                    return Ok(None);
                };
                let len = (usize::from(f & 0x3f) << 8) | usize::from(low);
                let Some(data) = buf.get(2..2 + len) else {
                    return Ok(None);
                };
                self.record.clear();
                self.record.extend_from_slice(data);
                self.record_pos = 0;
                Ok(Some((Token::Literal(self.inflate()?), 2 + len)))
            }
            f if f & 0xc0 == TOKEN_REL => Ok(Some((
                self.run_of(self.last_run_end.saturating_add(u32::from(f & 0x3f)), 0),
                1,
            ))),
            f if f & 0xc0 == TOKENRUN_REL => {
                let Some(n) = buf.get(1..3).and_then(|b| <[u8; 2]>::try_from(b).ok()) else {
                    return Ok(None);
                };
                let start = self.last_run_end.saturating_add(u32::from(f & 0x3f));
                Ok(Some((
                    self.run_of(start, u32::from(u16::from_le_bytes(n))),
                    3,
                )))
            }
            TOKEN_LONG => {
                let Some(t) = buf.get(1..5).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
                    return Ok(None);
                };
                let start = u32::try_from(i32::from_le_bytes(t))
                    .map_err(|_| err("negative block number"))?;
                Ok(Some((self.run_of(start, 0), 5)))
            }
            TOKENRUN_LONG => {
                let Some(b) = buf.get(1..7) else {
                    return Ok(None);
                };
                let t = <[u8; 4]>::try_from(b.get(..4).unwrap_or_default())
                    .map_err(|_| err("short record"))?;
                let n = <[u8; 2]>::try_from(b.get(4..).unwrap_or_default())
                    .map_err(|_| err("short record"))?;
                let start = u32::try_from(i32::from_le_bytes(t))
                    .map_err(|_| err("negative block number"))?;
                Ok(Some((
                    self.run_of(start, u32::from(u16::from_le_bytes(n))),
                    7,
                )))
            }
            other => Err(err(format!("unknown flag byte {other:#04x}"))),
        }
    }
}

/// The sending side: one per session.
pub struct TokenEncoder {
    zstd: Encoder<'static>,
    last_run_end: u32,
    /// The run not yet written: (start, extra blocks after start).
    run: Option<(u32, u32)>,
    /// Literal data went in since the last flush.
    dirty: bool,
}

impl TokenEncoder {
    /// An encoder at the start of a session, with zstd's `level`.
    ///
    /// # Errors
    /// zstd could not start.
    pub fn new(level: i32) -> Result<Self, ProtoError> {
        Ok(TokenEncoder {
            zstd: Encoder::new(level).map_err(|e| err(e.to_string()))?,
            last_run_end: 0,
            run: None,
            dirty: false,
        })
    }

    /// Resets the per-file state.
    pub fn start_file(&mut self) {
        self.last_run_end = 0;
        self.run = None;
        self.dirty = false;
    }

    fn put_records(out: &mut Vec<u8>, compressed: &[u8]) {
        for piece in compressed.chunks(MAX_DATA_COUNT) {
            out.push(DEFLATED_DATA | (piece.len() >> 8) as u8);
            out.push((piece.len() & 0xff) as u8);
            out.extend_from_slice(piece);
        }
    }

    fn put_run(&mut self, out: &mut Vec<u8>) {
        let Some((start, n)) = self.run.take() else {
            return;
        };
        let r = i64::from(start) - i64::from(self.last_run_end);
        if (0..=63).contains(&r) {
            out.push(if n == 0 { TOKEN_REL } else { TOKENRUN_REL } | r as u8);
        } else {
            out.push(if n == 0 { TOKEN_LONG } else { TOKENRUN_LONG });
            out.extend_from_slice(&start.to_le_bytes());
        }
        if n > 0 {
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        self.last_run_end = start + n;
    }

    fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        if !self.dirty {
            return Ok(());
        }
        let mut compressed = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let mut output = OutBuffer::around(&mut chunk[..]);
            let left = self
                .zstd
                .flush(&mut output)
                .map_err(|e| err(e.to_string()))?;
            let produced = output.pos();
            compressed.extend_from_slice(chunk.get(..produced).unwrap_or_default());
            if left == 0 {
                break;
            }
        }
        Self::put_records(out, &compressed);
        self.dirty = false;
        Ok(())
    }

    /// Literal bytes of the file.
    ///
    /// # Errors
    /// zstd failed.
    pub fn literal(&mut self, out: &mut Vec<u8>, data: &[u8]) -> Result<(), ProtoError> {
        self.put_run(out);
        let mut input = InBuffer::around(data);
        let mut compressed = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        while input.pos() < data.len() {
            let mut output = OutBuffer::around(&mut chunk[..]);
            self.zstd
                .run(&mut input, &mut output)
                .map_err(|e| err(e.to_string()))?;
            let produced = output.pos();
            compressed.extend_from_slice(chunk.get(..produced).unwrap_or_default());
        }
        Self::put_records(out, &compressed);
        self.dirty = true;
        Ok(())
    }

    /// A copy of basis block `block`.
    ///
    /// # Errors
    /// zstd failed.
    pub fn copy(&mut self, out: &mut Vec<u8>, block: u32) -> Result<(), ProtoError> {
        self.flush(out)?;
        match &mut self.run {
            Some((start, n)) if *start + *n + 1 == block && *n < 0xffff => *n += 1,
            _ => {
                self.put_run(out);
                self.run = Some((block, 0));
            }
        }
        Ok(())
    }

    /// The end of the file.
    ///
    /// # Errors
    /// zstd failed.
    pub fn end_file(&mut self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        self.flush(out)?;
        self.put_run(out);
        out.push(END_FLAG);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_files_decode_back() {
        let mut enc = TokenEncoder::new(3).unwrap();
        let mut dec = TokenDecoder::new().unwrap();
        let files: Vec<Vec<Token>> = vec![
            vec![
                Token::Literal(b"hello ".repeat(1000)),
                Token::Copy(0),
                Token::Copy(1),
                Token::Copy(2),
                Token::Literal(b"x".to_vec()),
                Token::Copy(100),
                Token::Copy(5),
                Token::Copy(70),
            ],
            vec![
                Token::Copy(3),
                Token::Literal((0..50_000u32).map(|i| (i * 7) as u8).collect()),
            ],
            vec![],
        ];
        let mut stream = Vec::new();
        for f in &files {
            enc.start_file();
            for t in f {
                match t {
                    Token::Literal(d) => enc.literal(&mut stream, d).unwrap(),
                    Token::Copy(b) => enc.copy(&mut stream, *b).unwrap(),
                    Token::End => {}
                }
            }
            enc.end_file(&mut stream).unwrap();
        }
        let mut at = 0;
        for f in &files {
            dec.start_file();
            let mut literal = Vec::new();
            let mut got = Vec::new();
            loop {
                let (t, used) = dec.decode(&stream[at..]).unwrap().unwrap();
                at += used;
                match t {
                    Token::Literal(d) => literal.extend(d),
                    Token::Copy(b) => {
                        if !literal.is_empty() {
                            got.push(Token::Literal(std::mem::take(&mut literal)));
                        }
                        got.push(Token::Copy(b));
                    }
                    Token::End => break,
                }
            }
            if !literal.is_empty() {
                got.push(Token::Literal(literal));
            }
            assert_eq!(&got, f);
        }
        assert_eq!(at, stream.len());
    }

    /// Decodes one file's tokens, checking that no literal piece is over the bound.
    fn decode_file(dec: &mut TokenDecoder, stream: &[u8]) -> (Vec<(Token, usize)>, usize) {
        let mut at = 0;
        let mut got = Vec::new();
        loop {
            let (t, used) = dec.decode(&stream[at..]).unwrap().unwrap();
            at += used;
            if let Token::Literal(d) = &t {
                assert!(
                    d.len() <= MAX_LITERAL_PIECE,
                    "a literal of {} bytes",
                    d.len()
                );
            }
            let end = t == Token::End;
            got.push((t, used));
            if end {
                return (got, at);
            }
        }
    }

    #[test]
    fn a_record_that_expands_32768_fold_comes_out_in_bounded_pieces() {
        // Found while writing fuzz/fuzz_targets/tokens.rs: one 16 KiB record of zstd RLE blocks
        // (4 bytes per 128 KiB) used to come out as a single 512 MiB literal.
        let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]; // magic, no size, 128 KiB window
        let mut blocks = 0;
        while frame.len() + 4 <= MAX_DATA_COUNT {
            let header = (128u32 * 1024) << 3 | 1 << 1; // an RLE block of 128 KiB
            frame.extend_from_slice(&header.to_le_bytes()[..3]);
            frame.push(b'x');
            blocks += 1;
        }
        let mut stream = vec![DEFLATED_DATA | (frame.len() >> 8) as u8, frame.len() as u8];
        stream.extend_from_slice(&frame);
        stream.extend_from_slice(&[TOKEN_REL | 3, END_FLAG]);

        let mut dec = TokenDecoder::new().unwrap();
        let (got, at) = decode_file(&mut dec, &stream);
        assert_eq!(at, stream.len());
        let (first, rest) = got.split_first().unwrap();
        assert_eq!(first.1, 2 + frame.len());
        let mut total = 0;
        for (t, used) in std::iter::once(first).chain(rest) {
            match t {
                Token::Literal(d) => {
                    assert!(d.first() == Some(&b'x') && d.last() == Some(&b'x'));
                    total += d.len();
                }
                Token::Copy(b) => assert_eq!((*b, *used), (3, 1)),
                Token::End => assert_eq!(*used, 1),
            }
        }
        assert_eq!(total, blocks * 128 * 1024);
        assert!(
            rest.iter()
                .filter(|(t, _)| matches!(t, Token::Literal(_)))
                .all(|(_, used)| *used == 0)
        );
    }

    #[test]
    fn long_literals_from_the_encoder_come_back_whole() {
        let data: Vec<u8> = (0..3 * MAX_LITERAL_PIECE as u32 + 17)
            .map(|i| (i / 1000) as u8)
            .collect();
        let mut enc = TokenEncoder::new(3).unwrap();
        let mut stream = Vec::new();
        enc.start_file();
        enc.literal(&mut stream, &data).unwrap();
        enc.copy(&mut stream, 9).unwrap();
        enc.end_file(&mut stream).unwrap();
        let mut dec = TokenDecoder::new().unwrap();
        let (got, at) = decode_file(&mut dec, &stream);
        assert_eq!(at, stream.len());
        assert!(
            got.iter()
                .any(|(t, used)| matches!(t, Token::Literal(_)) && *used == 0),
            "no record came out in several pieces"
        );
        let mut literal = Vec::new();
        let mut rest = Vec::new();
        for (t, _) in got {
            match t {
                Token::Literal(d) => literal.extend(d),
                other => rest.push(other),
            }
        }
        assert_eq!(literal, data);
        assert_eq!(rest, [Token::Copy(9), Token::End]);
    }
}
