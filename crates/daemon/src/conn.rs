//! One client connection, from the greeting to the end of its transfer (`clientserver.c
//! start_daemon` and `rsync_module`): swap greetings, list the modules or open one — hosts
//! allow/deny, `max connections`, the authentication challenge — read the client's arguments,
//! refuse what the module refuses, then hand over to [`crate::serve`].
//!
//! A denied host, an unknown module, a failed login or a refused option ends the connection
//! with rsync's `@ERROR` text before any file of the module is touched.

use std::io::Read;
use std::net::{IpAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use protocol::daemon::{self, AuthDigest};
use session::SessionError;
use session::mux::{MuxReader, MuxWriter, QuickAck, Traffic};

use crate::auth::{self, Access};
use crate::config::{Config, Module};
use crate::serve::{self, ModuleView, Outcome};
use crate::{Log, Slots};

/// The most argument words a client may send, and the longest one (rsync's own bounds are
/// similar: `MAX_ARGS`, `BIGPATHBUFLEN`).
const MAX_ARG_WORDS: usize = 4096;
const MAX_ARG_LEN: usize = 8192;

/// Who is on the other end.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The address.
    pub addr: IpAddr,
    /// Its name by reverse lookup, or the address again (rsync logs `host (addr)`).
    pub host: String,
}

/// The result of one connection, for the log.
#[derive(Debug)]
pub enum Ending {
    /// A module list was sent.
    Listed,
    /// Refused before any transfer, with the reason sent to the client.
    Refused(String),
    /// A transfer ran.
    Transferred {
        /// The module.
        module: String,
        /// The login name (empty without auth).
        user: String,
        /// What it did, or how it failed.
        result: Result<Outcome, SessionError>,
    },
}

fn send_line(writer: &mut MuxWriter, line: &str) -> Result<(), SessionError> {
    writer.send(line.as_bytes())
}

/// Refuses with `@ERROR: text` (rsync's wording is the caller's).
fn refuse(writer: &mut MuxWriter, text: String) -> Ending {
    let _ = send_line(writer, &format!("@ERROR: {text}\n"));
    Ending::Refused(text)
}

/// The digest for the challenge: the first in the client's list that we know; `md5` when the
/// client sent none (protocol 30 and newer, `compat.c negotiate_daemon_auth`).
fn auth_digest(client: Option<&[String]>) -> AuthDigest {
    client
        .and_then(|names| names.iter().find_map(|n| AuthDigest::from_name(n)))
        .unwrap_or(AuthDigest::Md5)
}

/// The groups of the local account `user`, from `/etc/group` (for `@group` rules).
fn groups_of(user: &str) -> Vec<String> {
    let content = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let mut primary = None;
    if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.first() == Some(&user) {
                primary = f.get(3).map(|g| (*g).to_owned());
            }
        }
    }
    let mut out = Vec::new();
    for line in content.lines() {
        let f: Vec<&str> = line.split(':').collect();
        let (Some(name), Some(gid), Some(members)) = (f.first(), f.get(2), f.get(3)) else {
            continue;
        };
        if primary.as_deref() == Some(*gid) || members.split(',').any(|m| m == user) {
            out.push((*name).to_owned());
        }
    }
    out
}

/// Reads and checks the secrets file as `strict modes` asks.
fn load_secrets(m: &Module) -> auth::Secrets {
    use std::os::unix::fs::MetadataExt;
    let Some(path) = m.secrets_file.as_deref() else {
        return auth::Secrets::unavailable(auth::SecretsProblem::Missing);
    };
    let Ok(md) = std::fs::metadata(path) else {
        return auth::Secrets::unavailable(auth::SecretsProblem::Missing);
    };
    if auth::check_secrets_permissions(
        md.mode(),
        md.uid(),
        rustix::process::geteuid().is_root(),
        m.strict_modes,
    )
    .is_err()
    {
        return auth::Secrets::unavailable(auth::SecretsProblem::Rejected);
    }
    match std::fs::read_to_string(path) {
        Ok(text) => auth::parse_secrets(&text),
        Err(_) => auth::Secrets::unavailable(auth::SecretsProblem::Missing),
    }
}

/// Runs the challenge for `m`; the user and the access granted, or the `@ERROR` already sent.
fn login(
    reader: &mut MuxReader,
    writer: &mut MuxWriter,
    m: &Module,
    digest: AuthDigest,
    peer: &Peer,
    log: &dyn Log,
) -> Result<(String, Access), Ending> {
    if m.auth_users.is_empty() {
        return Ok((String::new(), Access::Default));
    }
    let mut seed = Vec::with_capacity(48);
    seed.extend_from_slice(&rand_bytes());
    seed.extend_from_slice(peer.addr.to_string().as_bytes());
    let challenge = auth::challenge(&seed, digest);
    if send_line(writer, &format!("@RSYNCD: AUTHREQD {challenge}\n")).is_err() {
        return Err(Ending::Refused("connection closed".into()));
    }
    let Ok(line) = reader.read_line() else {
        return Err(Ending::Refused("connection closed during auth".into()));
    };
    let line = String::from_utf8_lossy(&line).into_owned();
    let result = match auth::split_response(&line) {
        None => Err(auth::AuthFailure::InvalidResponse),
        Some((user, response)) => auth::check_digest_floor(m.auth_digest, digest).and_then(|()| {
            let secrets = load_secrets(m);
            auth::authorize(
                &m.auth_users,
                &secrets,
                user,
                &groups_of(user),
                digest,
                &challenge,
                response,
            )
            .map(|a| (user.to_owned(), a))
        }),
    };
    match result {
        Ok(ok) => Ok(ok),
        Err(failure) => {
            log.line(&failure.log_line(&m.name, &peer.host, &peer.addr.to_string()));
            Err(refuse(writer, format!("auth failed on module {}", m.name)))
        }
    }
}

/// An id by name or number from `/etc/passwd` or `/etc/group`.
fn lookup_id(file: &str, name: &str) -> Option<u32> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    session::flist::account_ids(file)
        .into_iter()
        .find_map(|(n, id)| (n == name.as_bytes()).then_some(id))
}

/// As root, runs this connection's thread (and the threads it starts) as the module's `uid`
/// and `gid` — `nobody` and `nogroup` unless set, as rsync. Linux keeps credentials per
/// thread, so other connections are not affected.
fn become_module_user(m: &Module) -> Result<(), String> {
    let user = m.uid.as_deref().unwrap_or("nobody");
    let group = m.gid.as_deref().unwrap_or("nogroup");
    let uid = lookup_id("/etc/passwd", user).ok_or_else(|| format!("Invalid uid {user}"))?;
    let gid = lookup_id("/etc/group", group)
        .or_else(|| {
            (group == "nogroup")
                .then(|| lookup_id("/etc/group", "nobody"))
                .flatten()
        })
        .ok_or_else(|| format!("Invalid gid {group}"))?;
    let gid = rustix::fs::Gid::from_raw(gid);
    rustix::thread::set_thread_groups(&[gid])
        .and_then(|()| rustix::thread::set_thread_gid(gid))
        .map_err(|e| format!("setgid {group} failed: {e}"))?;
    rustix::thread::set_thread_uid(rustix::fs::Uid::from_raw(uid))
        .map_err(|e| format!("setuid {user} failed: {e}"))
}

/// A checksum seed for a session (rsync's is the time and pid mixed; any unpredictable
/// number does).
pub(crate) fn random_seed() -> i32 {
    i32::from_le_bytes(rand_bytes()[..4].try_into().unwrap_or([0; 4]))
}

/// Unpredictable bytes for the challenge.
fn rand_bytes() -> [u8; 32] {
    let mut buf = [0u8; 32];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if read.is_err() {
        // No entropy source: the time, which is what rsync hashes anyway.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        for (b, t) in buf.iter_mut().zip(t.as_nanos().to_le_bytes()) {
            *b = t;
        }
    }
    buf
}

/// Reads the client's argument words (protocol 30+: each ends with a NUL, an empty word ends
/// the list).
fn read_args(reader: &mut MuxReader) -> Result<Vec<Vec<u8>>, SessionError> {
    let mut words = Vec::new();
    loop {
        let word = reader.read_raw(|b| match b.iter().position(|&c| c == 0) {
            Some(i) if i <= MAX_ARG_LEN => {
                Ok(Some((b.get(..i).unwrap_or_default().to_vec(), i + 1)))
            }
            Some(_) => Err(protocol::ProtoError::protocol_text(
                "arguments",
                "an argument is too long",
            )),
            None if b.len() > MAX_ARG_LEN => Err(protocol::ProtoError::protocol_text(
                "arguments",
                "an argument is too long",
            )),
            None => Ok(None),
        })?;
        if word.is_empty() {
            return Ok(words);
        }
        if words.len() >= MAX_ARG_WORDS {
            return Err(
                protocol::ProtoError::protocol_text("arguments", "too many arguments").into(),
            );
        }
        words.push(word);
    }
}

/// `name<TAB>comment` for every listable module the peer may reach, then `@RSYNCD: EXIT`.
fn send_listing(writer: &mut MuxWriter, config: &Config, peer: &Peer) {
    let mut out = String::new();
    for m in config.modules.iter().filter(|m| m.list) {
        if !crate::hosts::allowed(&m.hosts_allow, &m.hosts_deny, peer.addr, Some(&peer.host)) {
            continue;
        }
        out.push_str(&format!(
            "{:<15}\t{}\n",
            m.name,
            m.comment.as_deref().unwrap_or_default()
        ));
    }
    out.push_str("@RSYNCD: EXIT\n");
    let _ = send_line(writer, &out);
}

/// Serves one accepted connection to its end.
pub fn handle(
    stream: TcpStream,
    peer: &Peer,
    config: &Config,
    slots: &Slots,
    log: &Arc<dyn Log>,
) -> Ending {
    let traffic = Arc::new(Traffic::default());
    let (Ok(w), Ok(tcp)) = (stream.try_clone(), stream.try_clone()) else {
        return Ending::Refused("socket error".into());
    };
    let mut writer = MuxWriter::new(Box::new(w), Some(tcp), Arc::clone(&traffic));
    // The text phase waits at most the global `timeout` (60 s when unset), so that a client
    // that connects and says nothing does not hold a thread.
    let greeting_wait = Duration::from_secs(match config.global.defaults.timeout {
        0 => 60,
        t => u64::from(t),
    });
    let _ = stream.set_read_timeout(Some(greeting_wait));
    let read_half: Box<dyn Read + Send> = match stream.try_clone() {
        Ok(s) => Box::new(QuickAck(s)),
        Err(_) => return Ending::Refused("socket error".into()),
    };
    let mut reader = MuxReader::new(read_half, Some(greeting_wait), traffic);

    if send_line(
        &mut writer,
        &String::from_utf8_lossy(&daemon::server_greeting()),
    )
    .is_err()
    {
        return Ending::Refused("connection closed".into());
    }
    let greeting = match reader
        .read_line()
        .map_err(|e| e.to_string())
        .and_then(|l| daemon::parse_greeting(&l).map_err(|e| e.to_string()))
    {
        Ok(g) => g,
        Err(e) => return refuse(&mut writer, format!("protocol startup error: {e}")),
    };
    let protocol_version = match daemon::negotiate_version(&greeting) {
        Ok(v) => v,
        Err(_) => {
            return refuse(
                &mut writer,
                format!(
                    "protocol version mismatch -- is your shell clean? (client {}, rtsync needs 30 or newer)",
                    greeting.version
                ),
            );
        }
    };
    if let Some(motd) = config.global.motd_file.as_deref()
        && let Ok(text) = std::fs::read_to_string(motd)
    {
        let mut text = text;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let _ = send_line(&mut writer, &text);
    }
    let Ok(line) = reader.read_line() else {
        return Ending::Refused("connection closed before a module was named".into());
    };
    let name = String::from_utf8_lossy(&line).into_owned();
    if name.is_empty() || name == "#list" {
        log.line(&format!(
            "module-list request from {} ({})",
            peer.host, peer.addr
        ));
        send_listing(&mut writer, config, peer);
        return Ending::Listed;
    }
    if name.starts_with('#') {
        return refuse(&mut writer, format!("Unknown command '{name}'"));
    }
    let Some(m) = config.module(&name) else {
        log.line(&format!(
            "unknown module '{name}' tried from {} ({})",
            peer.host, peer.addr
        ));
        return refuse(&mut writer, format!("Unknown module '{name}'"));
    };
    if !crate::hosts::allowed(&m.hosts_allow, &m.hosts_deny, peer.addr, Some(&peer.host)) {
        log.line(&format!(
            "rsync denied on module {} from {} ({})",
            m.name, peer.host, peer.addr
        ));
        return refuse(
            &mut writer,
            format!(
                "access denied to {} from {} ({})",
                m.name, peer.host, peer.addr
            ),
        );
    }
    let Some(_slot) = slots.claim(&m.name, m.max_connections) else {
        return refuse(
            &mut writer,
            format!(
                "max connections ({}) reached -- try again later",
                m.max_connections
            ),
        );
    };
    let digest = auth_digest(greeting.digests.as_deref());
    let (user, access) = match login(&mut reader, &mut writer, m, digest, peer, log.as_ref()) {
        Ok(ok) => ok,
        Err(ending) => return ending,
    };
    if access == Access::Deny {
        return refuse(&mut writer, format!("auth failed on module {}", m.name));
    }
    let Some(path) = m.path.as_deref() else {
        return refuse(&mut writer, format!("module {} has no path", m.name));
    };
    // rsync chroots into the module when it may (as root, unless `use chroot = no`); rtsync
    // confines every access through fsx instead, and takes the defaults that go with it.
    let is_root = rustix::process::geteuid().is_root();
    let chrooted = m.use_chroot.unwrap_or(is_root);
    if is_root && let Err(text) = become_module_user(m) {
        log.line(&format!("{text} [{}]", m.name));
        return refuse(&mut writer, text);
    }
    let chmod = |v: &Option<String>, which: &str| {
        crate::chmod::Chmod::parse(v.as_deref().unwrap_or_default())
            .map_err(|e| format!("{which} of module {}: {e}", m.name))
    };
    let (incoming_chmod, outgoing_chmod) = match (
        chmod(&m.incoming_chmod, "incoming chmod"),
        chmod(&m.outgoing_chmod, "outgoing chmod"),
    ) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => {
            log.line(&e);
            return refuse(&mut writer, e);
        }
    };
    if send_line(&mut writer, "@RSYNCD: OK\n").is_err() {
        return Ending::Refused("connection closed".into());
    }
    let words = match read_args(&mut reader) {
        Ok(w) => w,
        Err(e) => return Ending::Refused(format!("reading the arguments: {e}")),
    };
    let read_only = match access {
        Access::ReadOnly => true,
        Access::ReadWrite => false,
        _ => m.read_only,
    };
    let stream_asked = words
        .get(1)
        .is_some_and(|w| w == protocol::stream::STREAM_ARG.as_bytes());
    let transfer = if stream_asked {
        // The stream deletes and replaces as a push with these options would: a module that
        // refuses any of them refuses the stream too.
        let equivalent: Vec<Vec<u8>> = [
            "--server",
            "-logDtpre.LfxCIvu",
            "--delete-missing-args",
            "--force",
            "-I",
            ".",
        ]
        .iter()
        .map(|w| w.as_bytes().to_vec())
        .chain(words.get(3).cloned())
        .collect();
        crate::request::transfer(&equivalent, Some(&name), &m.refuse_options)
    } else {
        crate::request::transfer(&words, Some(&name), &m.refuse_options)
    };
    if let Some((text, _)) = &transfer.refusal {
        log.line(&format!(
            "{text} [{} from {} ({})]",
            m.name, peer.host, peer.addr
        ));
    }
    // rsync's line: `rsync to backup_www/ from alice@localhost (127.0.0.1)`.
    log.line(&format!(
        "rsync {} {}/{} from {}{} ({})",
        if transfer.we_send { "on" } else { "to" },
        name,
        String::from_utf8_lossy(&transfer.paths.first().cloned().unwrap_or_default()),
        if user.is_empty() {
            String::new()
        } else {
            format!("{user}@")
        },
        peer.host,
        peer.addr
    ));
    if m.timeout > 0 {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(u64::from(m.timeout))));
    } else {
        let _ = stream.set_read_timeout(None);
    }
    reader.set_io_timeout((m.timeout > 0).then(|| Duration::from_secs(u64::from(m.timeout))));
    let view = ModuleView {
        name: m.name.clone(),
        root: path.trim_end_matches("/./").replace("/./", "/").into(),
        read_only,
        write_only: m.write_only,
        filters: crate::module_filters(m),
        numeric_ids: m.numeric_ids(chrooted),
        munge_symlinks: m.munge_symlinks(chrooted),
        sanitize_links: !chrooted,
        confine: true,
        incoming_chmod,
        outgoing_chmod,
        ignore_nonreadable: m.ignore_nonreadable,
    };
    let seed = random_seed();
    let logger = Arc::clone(log);
    let transfer_log: Arc<serve::TransferLog> = {
        let (module, host, addr, user, format, enabled, module_path) = (
            m.name.clone(),
            peer.host.clone(),
            peer.addr.to_string(),
            user.clone(),
            m.log_format.clone(),
            m.transfer_logging,
            path.to_owned(),
        );
        Arc::new(move |op: &str, file: &[u8], len: u64| {
            if enabled {
                logger.transfer(&crate::TransferEntry {
                    format: &format,
                    op,
                    module: &module,
                    module_path: &module_path,
                    host: &host,
                    addr: &addr,
                    user: &user,
                    file,
                    len,
                });
            }
        })
    };
    if stream_asked {
        let result = match &transfer.refusal {
            Some((text, code)) => {
                let mut out = Vec::new();
                protocol::stream::Frame::Fatal {
                    code: *code,
                    message: text.clone(),
                }
                .encode(&mut out);
                let _ = writer.send(&out);
                Err(SessionError::Protocol(protocol::ProtoError::Remote(
                    text.clone(),
                )))
            }
            None => {
                let rel = transfer
                    .paths
                    .first()
                    .and_then(|p| serve::module_relative(p))
                    .unwrap_or_default();
                crate::stream::serve((reader, writer), &view, &rel, &transfer_log)
            }
        };
        return Ending::Transferred {
            module: m.name.clone(),
            user,
            result,
        };
    }
    let result = serve::serve(
        (reader, writer),
        protocol_version,
        &transfer,
        &view,
        seed,
        transfer_log,
    );
    Ending::Transferred {
        module: m.name.clone(),
        user,
        result,
    }
}
