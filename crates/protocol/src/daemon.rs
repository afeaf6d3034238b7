//! The text phase of a daemon connection (`clientserver.c`, `authenticate.c`, `compat.c`).
//!
//! Both sides first send `@RSYNCD: <version>.<sub> <digest list>\n`. The client then names a
//! module (or `#list`); the server answers with free-text MOTD lines, then `@RSYNCD: OK`,
//! `@RSYNCD: AUTHREQD <challenge>` (answered with `<user> <base64(H(password ‖ challenge))>`,
//! unpadded), `@ERROR: …`, or, for a listing, module lines and `@RSYNCD: EXIT`.

use base64::Engine as _;

use crate::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, ProtoError};

/// A digest for daemon authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDigest {
    /// SHA-512.
    Sha512,
    /// SHA-256.
    Sha256,
    /// SHA-1.
    Sha1,
    /// MD5, implied at protocol 30+ when the peer lists nothing.
    Md5,
    /// MD4 (protocol 30+ form: unseeded).
    Md4,
}

impl AuthDigest {
    /// Ours, in order of preference: what our greeting lists.
    pub const PREFERENCE: [AuthDigest; 5] = [
        AuthDigest::Sha512,
        AuthDigest::Sha256,
        AuthDigest::Sha1,
        AuthDigest::Md5,
        AuthDigest::Md4,
    ];

    /// The name in a greeting.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            AuthDigest::Sha512 => "sha512",
            AuthDigest::Sha256 => "sha256",
            AuthDigest::Sha1 => "sha1",
            AuthDigest::Md5 => "md5",
            AuthDigest::Md4 => "md4",
        }
    }

    /// Parses a name from a greeting.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::PREFERENCE.into_iter().find(|d| d.name() == name)
    }

    /// `base64_nopad(H(password ‖ challenge))`.
    #[must_use]
    pub fn respond(self, password: &[u8], challenge: &[u8]) -> String {
        fn hash<D: md5::Digest>(password: &[u8], challenge: &[u8]) -> Vec<u8> {
            let mut h = D::new();
            h.update(password);
            h.update(challenge);
            h.finalize().to_vec()
        }
        let digest = match self {
            AuthDigest::Sha512 => hash::<sha2::Sha512>(password, challenge),
            AuthDigest::Sha256 => hash::<sha2::Sha256>(password, challenge),
            AuthDigest::Sha1 => hash::<sha1::Sha1>(password, challenge),
            AuthDigest::Md5 => hash::<md5::Md5>(password, challenge),
            AuthDigest::Md4 => hash::<md4::Md4>(password, challenge),
        };
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    }
}

/// Our greeting: `@RSYNCD: 31.0 sha512 sha256 sha1 md5 md4\n`.
#[must_use]
pub fn greeting() -> Vec<u8> {
    let names: Vec<&str> = AuthDigest::PREFERENCE.iter().map(|d| d.name()).collect();
    format!("@RSYNCD: {PROTOCOL_VERSION}.0 {}\n", names.join(" ")).into_bytes()
}

/// A daemon's greeting: [`greeting`] with [`crate::stream::CAPABILITY`] after the digests,
/// which tells an rtsync client it may ask for the stream (stock rsync skips the word).
#[must_use]
pub fn server_greeting() -> Vec<u8> {
    let mut g = greeting();
    g.pop();
    g.push(b' ');
    g.extend_from_slice(crate::stream::CAPABILITY.as_bytes());
    g.push(b'\n');
    g
}

/// What a peer's greeting says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// Protocol version.
    pub version: u32,
    /// Sub-protocol version, if given.
    pub sub: Option<u32>,
    /// Authentication digests the peer offers, in its order (absent before rsync 3.2).
    pub digests: Option<Vec<String>>,
}

/// Parses a greeting line (without its newline).
///
/// # Errors
/// `@ERROR` lines as [`ProtoError::Remote`]; anything else that is not a greeting, or a version
/// without the sub-protocol that versions 30+ require.
pub fn parse_greeting(line: &[u8]) -> Result<Greeting, ProtoError> {
    let text = String::from_utf8_lossy(line);
    if let Some(msg) = text.strip_prefix("@ERROR") {
        return Err(ProtoError::Remote(
            msg.trim_start_matches(':').trim().to_string(),
        ));
    }
    let rest = text.strip_prefix("@RSYNCD: ").ok_or_else(|| {
        ProtoError::protocol(
            "greeting",
            format!("not an rsync daemon greeting: {text:?}"),
        )
    })?;
    let mut words = rest.split_whitespace();
    let ver = words.next().unwrap_or_default();
    let (major, sub) = match ver.split_once('.') {
        Some((m, s)) => (m, Some(s)),
        None => (ver, None),
    };
    let version: u32 = major
        .parse()
        .map_err(|_| ProtoError::protocol("greeting", format!("bad version in {text:?}")))?;
    let sub = match sub {
        Some(s) => Some(s.parse().map_err(|_| {
            ProtoError::protocol("greeting", format!("bad sub-version in {text:?}"))
        })?),
        None if version >= 30 => {
            return Err(ProtoError::protocol(
                "greeting",
                "the peer omitted the subprotocol value",
            ));
        }
        None => None,
    };
    let digests: Vec<String> = words.map(str::to_string).collect();
    Ok(Greeting {
        version,
        sub,
        digests: (!digests.is_empty()).then_some(digests),
    })
}

/// The version both sides use: the lower one, refused below 30.
///
/// # Errors
/// [`ProtoError::VersionMismatch`].
pub fn negotiate_version(peer: &Greeting) -> Result<u32, ProtoError> {
    let v = peer.version.min(PROTOCOL_VERSION);
    if v < MIN_PROTOCOL_VERSION {
        return Err(ProtoError::VersionMismatch { peer: peer.version });
    }
    Ok(v)
}

/// The digest both sides use: the first of the client's list that the server also offers;
/// md5 when the server lists nothing (protocol 30+).
#[must_use]
pub fn choose_digest(server: Option<&[String]>) -> Option<AuthDigest> {
    match server {
        None => Some(AuthDigest::Md5),
        Some(list) => AuthDigest::PREFERENCE
            .into_iter()
            .find(|d| list.iter().any(|n| n == d.name())),
    }
}

/// A line from the server after the client named a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine {
    /// `@RSYNCD: OK`: the module is open.
    Ok,
    /// `@RSYNCD: AUTHREQD <challenge>`.
    AuthRequired(String),
    /// `@RSYNCD: EXIT`: end of a listing.
    Exit,
    /// `@ERROR: …`.
    Error(String),
    /// Anything else: MOTD or a module listing line, shown as it is.
    Text(Vec<u8>),
}

/// Classifies one server line (without its newline).
#[must_use]
pub fn parse_server_line(line: &[u8]) -> ServerLine {
    if line == b"@RSYNCD: OK" {
        return ServerLine::Ok;
    }
    if line == b"@RSYNCD: EXIT" {
        return ServerLine::Exit;
    }
    if let Some(challenge) = line.strip_prefix(b"@RSYNCD: AUTHREQD ") {
        return ServerLine::AuthRequired(String::from_utf8_lossy(challenge).trim().to_string());
    }
    if let Some(msg) = line.strip_prefix(b"@ERROR") {
        let msg = String::from_utf8_lossy(msg);
        return ServerLine::Error(msg.trim_start_matches(':').trim().to_string());
    }
    ServerLine::Text(line.to_vec())
}

/// Takes one line out of `buf` as rsync reads them: up to `\n`, `\r` dropped; a NUL is an error.
/// `Ok(None)` until a whole line is there.
///
/// # Errors
/// A NUL byte, or a line longer than `max`.
pub fn take_line(buf: &mut Vec<u8>, max: usize) -> Result<Option<Vec<u8>>, ProtoError> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > max {
            return Err(ProtoError::protocol(
                "daemon text",
                format!("line longer than {max} bytes"),
            ));
        }
        return Ok(None);
    };
    let mut line: Vec<u8> = buf.drain(..=end).collect();
    line.pop();
    if line.contains(&0) {
        return Err(ProtoError::protocol(
            "daemon text",
            "NUL byte in a text line",
        ));
    }
    line.retain(|&b| b != b'\r');
    Ok(Some(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest as _;

    #[test]
    fn greetings() {
        assert_eq!(greeting(), b"@RSYNCD: 31.0 sha512 sha256 sha1 md5 md4\n");
        let g = parse_greeting(b"@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4").unwrap();
        assert_eq!((g.version, g.sub), (32, Some(0)));
        assert_eq!(negotiate_version(&g).unwrap(), 31);
        assert_eq!(
            choose_digest(g.digests.as_deref()),
            Some(AuthDigest::Sha512)
        );
        let old = parse_greeting(b"@RSYNCD: 31.0 md5 md4").unwrap();
        assert_eq!(choose_digest(old.digests.as_deref()), Some(AuthDigest::Md5));
        assert!(parse_greeting(b"@RSYNCD: 32").is_err());
        let ancient = parse_greeting(b"@RSYNCD: 29").unwrap();
        assert_eq!(
            negotiate_version(&ancient),
            Err(ProtoError::VersionMismatch { peer: 29 })
        );
        assert_eq!(
            parse_greeting(b"@ERROR: max connections reached"),
            Err(ProtoError::Remote("max connections reached".into()))
        );
    }

    #[test]
    fn auth_response_is_unpadded_base64_of_password_then_challenge() {
        // md5("secret" ‖ "challenge") = base64 without '=' padding: 22 characters.
        let r = AuthDigest::Md5.respond(b"secret", b"challenge");
        assert_eq!(r.len(), 22);
        assert!(!r.contains('='));
        let mut h = md5::Md5::new();
        h.update(b"secretchallenge");
        assert_eq!(
            r,
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(h.finalize())
        );
        assert_eq!(AuthDigest::Sha256.respond(b"a", b"b").len(), 43);
        assert_eq!(AuthDigest::Sha512.respond(b"a", b"b").len(), 86);
    }

    #[test]
    fn lines() {
        let mut buf = b"motd\r\n@RSYNCD: AUTHREQD abc\n@RSYNCD: OK\npartial".to_vec();
        assert_eq!(take_line(&mut buf, 100).unwrap(), Some(b"motd".to_vec()));
        let l = take_line(&mut buf, 100).unwrap().unwrap();
        assert_eq!(
            parse_server_line(&l),
            ServerLine::AuthRequired("abc".into())
        );
        let l = take_line(&mut buf, 100).unwrap().unwrap();
        assert_eq!(parse_server_line(&l), ServerLine::Ok);
        assert_eq!(take_line(&mut buf, 100).unwrap(), None);
        assert!(take_line(&mut b"a\0b\n".to_vec(), 100).is_err());
        assert!(take_line(&mut vec![b'x'; 200], 100).is_err());
        assert_eq!(
            parse_server_line(b"@ERROR: auth failed on module m"),
            ServerLine::Error("auth failed on module m".into())
        );
    }
}
