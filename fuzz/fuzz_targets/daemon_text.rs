//! Fuzzes the text phase of a daemon connection in `protocol::daemon`: `take_line`,
//! `parse_greeting` (with `negotiate_version` and `choose_digest` on what it returns) and
//! `parse_server_line`.
//!
//! Input: byte 0 sets the line limit (`max`), byte 1 the size of the pieces the rest arrives in;
//! the rest is what the server sends. Lines are taken as the client takes them, as more bytes
//! arrive, and every line is parsed both as a greeting and as a server line. A line must hold
//! no `\n`, `\r` or NUL, must come out of the buffer with its newline, and an error must be a
//! NUL or an over-long partial line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::daemon::{self, AuthDigest, ServerLine};

fuzz_target!(|data: &[u8]| {
    let [limit, piece, text @ ..] = data else {
        return;
    };
    let max = usize::from(*limit) * 16;
    let mut pending = Vec::new();
    for chunk in text.chunks(usize::from(*piece) + 1) {
        pending.extend_from_slice(chunk);
        loop {
            let before = pending.clone();
            match daemon::take_line(&mut pending, max) {
                Ok(Some(line)) => {
                    let newline = before
                        .iter()
                        .position(|&b| b == b'\n')
                        .expect("a line ends with a newline");
                    assert_eq!(pending, before[newline + 1..]);
                    let raw: Vec<u8> = before[..newline]
                        .iter()
                        .copied()
                        .filter(|&b| b != b'\r')
                        .collect();
                    assert_eq!(line, raw);
                    assert!(!line.contains(&0));
                    parse(&line);
                }
                Ok(None) => {
                    assert_eq!(pending, before);
                    assert!(!pending.contains(&b'\n') && pending.len() <= max);
                    break;
                }
                Err(_) => {
                    match before.iter().position(|&b| b == b'\n') {
                        Some(newline) => assert!(before[..newline].contains(&0)),
                        None => assert!(before.len() > max),
                    }
                    return;
                }
            }
        }
    }
});

fn parse(line: &[u8]) {
    match daemon::parse_greeting(line) {
        Ok(g) => {
            assert!(line.starts_with(b"@RSYNCD: "));
            assert!(g.sub.is_some() || g.version < 30);
            if let Ok(v) = daemon::negotiate_version(&g) {
                assert!((protocol::MIN_PROTOCOL_VERSION..=protocol::PROTOCOL_VERSION).contains(&v));
            }
            if let Some(d) = daemon::choose_digest(g.digests.as_deref()) {
                assert!(AuthDigest::PREFERENCE.contains(&d));
            }
        }
        Err(protocol::ProtoError::Remote(_)) => assert!(line.starts_with(b"@ERROR")),
        Err(_) => {}
    }
    match daemon::parse_server_line(line) {
        ServerLine::Ok => assert_eq!(line, b"@RSYNCD: OK"),
        ServerLine::Exit => assert_eq!(line, b"@RSYNCD: EXIT"),
        ServerLine::AuthRequired(challenge) => {
            assert!(line.starts_with(b"@RSYNCD: AUTHREQD "));
            // What the client does next: answer the challenge.
            let answer = AuthDigest::Md5.respond(b"password", challenge.as_bytes());
            assert_eq!(answer.len(), 22);
        }
        ServerLine::Error(_) => assert!(line.starts_with(b"@ERROR")),
        ServerLine::Text(t) => assert_eq!(t, line),
    }
}
