//! Multiplexed frames (`io.c send_msg / read_a_msg`): a 4-byte little-endian header
//! `((7 + code) << 24) | length`, then `length` bytes. After the setup phase every byte of a
//! protocol-31 connection travels in these frames, both ways.

use crate::ProtoError;

/// The message codes that may appear on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MsgCode {
    /// Protocol data.
    Data,
    /// An error about one file's transfer.
    ErrorXfer,
    /// Information for the user.
    Info,
    /// An error.
    Error,
    /// A warning.
    Warning,
    /// The peer had an I/O error (a varint-like int follows).
    IoError,
    /// The peer's `--timeout`.
    IoTimeout,
    /// Keep-alive (protocol 30).
    Noop,
    /// The peer is exiting with an error (a code may follow).
    ErrorExit,
    /// A file was sent successfully (`--remove-source-files`).
    Success,
    /// The receiver deleted a name.
    Deleted,
    /// The sender could not open a file.
    NoSend,
}

impl MsgCode {
    /// The numeric code.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            MsgCode::Data => 0,
            MsgCode::ErrorXfer => 1,
            MsgCode::Info => 2,
            MsgCode::Error => 3,
            MsgCode::Warning => 4,
            MsgCode::IoError => 22,
            MsgCode::IoTimeout => 33,
            MsgCode::Noop => 42,
            MsgCode::ErrorExit => 86,
            MsgCode::Success => 100,
            MsgCode::Deleted => 101,
            MsgCode::NoSend => 102,
        }
    }

    /// The code for a number seen on the wire; internal codes (5–10) and unknown ones are refused.
    #[must_use]
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => MsgCode::Data,
            1 => MsgCode::ErrorXfer,
            2 => MsgCode::Info,
            3 => MsgCode::Error,
            4 => MsgCode::Warning,
            22 => MsgCode::IoError,
            33 => MsgCode::IoTimeout,
            42 => MsgCode::Noop,
            86 => MsgCode::ErrorExit,
            100 => MsgCode::Success,
            101 => MsgCode::Deleted,
            102 => MsgCode::NoSend,
            _ => return None,
        })
    }
}

/// rsync's `MPLEX_BASE`.
pub const MPLEX_BASE: u32 = 7;
/// The largest frame rtsync writes (stock receivers accept up to 0xffffff; rsync's own writers
/// stay far below).
pub const MAX_FRAME: usize = 32 * 1024;

/// Appends one frame.
///
/// # Errors
/// A payload longer than 0xffffff bytes.
pub fn encode(out: &mut Vec<u8>, code: MsgCode, payload: &[u8]) -> Result<(), ProtoError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l <= 0x00ff_ffff)
        .ok_or_else(|| {
            ProtoError::protocol(
                "multiplexing",
                format!("frame of {} bytes is too long", payload.len()),
            )
        })?;
    let header = ((MPLEX_BASE + u32::from(code.code())) << 24) | len;
    out.extend_from_slice(&header.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// The header of a `MSG_DATA` frame of `len` bytes (at most [`MAX_FRAME`]), for a writer that
/// sends the payload from where it lies.
#[must_use]
pub fn data_header(len: usize) -> [u8; 4] {
    let len = u32::try_from(len.min(MAX_FRAME)).unwrap_or(0);
    (((MPLEX_BASE + u32::from(MsgCode::Data.code())) << 24) | len).to_le_bytes()
}

/// Appends `data` as `MSG_DATA` frames of at most [`MAX_FRAME`] bytes.
pub fn encode_data(out: &mut Vec<u8>, data: &[u8]) {
    for piece in data.chunks(MAX_FRAME) {
        // A piece is at most MAX_FRAME bytes: always encodable.
        let _ = encode(out, MsgCode::Data, piece);
    }
}

/// Reads one frame header: the code and the payload length. `Ok(None)` until 4 bytes are there.
///
/// # Errors
/// A header whose tag is below `MPLEX_BASE` or names an unknown or internal code.
pub fn decode_header(buf: &[u8]) -> Result<Option<(MsgCode, usize)>, ProtoError> {
    let Some(bytes) = buf.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) else {
        return Ok(None);
    };
    let header = u32::from_le_bytes(bytes);
    let tag = header >> 24;
    let len = (header & 0x00ff_ffff) as usize;
    let code = tag
        .checked_sub(MPLEX_BASE)
        .and_then(|c| u8::try_from(c).ok())
        .and_then(MsgCode::from_code)
        .ok_or_else(|| {
            ProtoError::protocol(
                "multiplexing",
                format!("unexpected tag {tag} (header {header:#010x})"),
            )
        })?;
    Ok(Some((code, len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_header_matches_rsync() {
        let mut out = Vec::new();
        encode(&mut out, MsgCode::Data, &[0u8; 21]).unwrap();
        assert_eq!(&out[..4], &[0x15, 0x00, 0x00, 0x07]);
        assert_eq!(decode_header(&out).unwrap(), Some((MsgCode::Data, 21)));
        assert_eq!(decode_header(&out[..3]).unwrap(), None);
    }

    #[test]
    fn bad_tags_are_refused() {
        assert!(decode_header(&[0, 0, 0, 0x05]).is_err()); // below MPLEX_BASE
        assert!(decode_header(&[0, 0, 0, 7 + 9]).is_err()); // internal MSG_REDO
        assert!(decode_header(&[0, 0, 0, 7 + 101]).is_ok()); // MSG_DELETED
    }

    #[test]
    fn data_is_split_into_small_frames() {
        let mut out = Vec::new();
        let mut header = Vec::new();
        encode(&mut header, MsgCode::Data, &[7u8; 5]).unwrap();
        assert_eq!(header.get(..4), Some(&data_header(5)[..]));
        encode_data(&mut out, &vec![1u8; MAX_FRAME * 2 + 5]);
        assert_eq!(out.len(), MAX_FRAME * 2 + 5 + 12);
    }
}
