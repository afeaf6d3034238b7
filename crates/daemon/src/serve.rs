//! One transfer on an accepted connection, once the client's arguments are known: the binary
//! setup a server does (`compat.c setup_protocol`: compat flags, checksum and compression
//! lists, seed), then the role the client left us — the sender for a pull
//! (`main.c do_server_sender`), the generator and receiver for a push (`do_server_recv`).
//!
//! Everything the client names is taken relative to the module: a name with `..` or a leading
//! `/` is refused before any file is touched, and every write goes through an `fsx::Root`
//! opened on the module, so nothing the client sends can reach outside it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use filter::{FilterList, Side};
use protocol::compat::{CF_ID0_NAMES, CF_VARINT_FLIST_FLAGS};
use protocol::flist::{FlistDecoder, FlistOptions, Item, decode_id_list};
use protocol::mux::MsgCode;
use protocol::wire::{get_int, get_vstring, put_int, put_varint, put_vstring};
use session::SessionError;
use session::mux::{DataBuf, MuxReader, MuxWriter};

/// The checksums a server offers, best first (`none` last, as rsync's servers do).
const CHECKSUMS: [&str; 5] = ["xxh128", "xxh3", "xxh64", "md5", "none"];
/// The compressors rtsync offers: zstd, or nothing.
const COMPRESSORS: [&str; 2] = ["zstd", "none"];
/// The longest filter rule a client may send (rsync's `MAXPATHLEN` plus a prefix).
const MAX_RULE_LEN: usize = 4096 + 64;
/// The most filter rules a client may send.
const MAX_RULES: usize = 100_000;

/// When `--delete` runs on the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteWhen {
    /// `--delete-before`.
    Before,
    /// `--delete` / `--delete-during`, and `--delete-delay` (done as during).
    During,
    /// `--delete-after`.
    After,
}

/// What the client asked for, as the roles need it.
#[derive(Debug, Clone, Default)]
#[allow(clippy::struct_excessive_bools)]
pub struct Transfer {
    /// The client receives (`--sender` was in its arguments): we send.
    pub we_send: bool,
    /// The capability letters after `-e` (`.LsfxCIvu`).
    pub capabilities: String,
    /// `-z`.
    pub compress: bool,
    /// `-r`.
    pub recursive: bool,
    /// `-d`.
    pub dirs: bool,
    /// `-l`.
    pub links: bool,
    /// `-p`.
    pub perms: bool,
    /// `-t`.
    pub times: bool,
    /// `-o`.
    pub owner: bool,
    /// `-g`.
    pub group: bool,
    /// `--devices`.
    pub devices: bool,
    /// `--specials`.
    pub specials: bool,
    /// `-H`.
    pub hard_links: bool,
    /// `-c`.
    pub checksum: bool,
    /// `-W`.
    pub whole_file: bool,
    /// `-S`.
    pub sparse: bool,
    /// `-R`.
    pub relative: bool,
    /// `-n`.
    pub dry_run: bool,
    /// `--numeric-ids` (the client's).
    pub numeric_ids: bool,
    /// `--delete*`.
    pub delete: Option<DeleteWhen>,
    /// `--delete-excluded`.
    pub delete_excluded: bool,
    /// `--delete-missing-args`.
    pub delete_missing_args: bool,
    /// `-m`.
    pub prune_empty_dirs: bool,
    /// The generator's quick-check options.
    pub quick: session::receiver::QuickCheck,
    /// `-v` count.
    pub verbose: u8,
    /// `-i` or a `%i` log format: the client itemizes.
    pub itemize: bool,
    /// The paths after `.`, with the module name taken off (`mod/a/b` → `a/b`).
    pub paths: Vec<Vec<u8>>,
    /// `--files-from=-`: on a pull, the client sends the names to send after its filter
    /// rules (relative to the first path).
    pub files_from_client: bool,
    /// `--from0`: those names end with NUL, not newline.
    pub from0: bool,
    /// `--bwlimit` in KiB per second (0: none): what we send is held to it, as rsync does.
    pub bwlimit: u64,
    /// The client's `--chmod`: applied to what we receive, before the module's `incoming
    /// chmod`, as rsync's receiver applies it while reading the file list (on a pull the
    /// client's receiver applies it).
    pub chmod: crate::chmod::Chmod,
    /// Why the transfer is refused (an unknown, refused or unsupported option) and the exit
    /// code: rsync tells the client after the setup, in the multiplexed stream.
    pub refusal: Option<(String, u8)>,
}

/// The module as this transfer sees it.
#[derive(Debug, Clone)]
pub struct ModuleView {
    /// The module's name.
    pub name: String,
    /// Its directory.
    pub root: PathBuf,
    /// Writes refused (`read only`, or the user's `:ro`).
    pub read_only: bool,
    /// Reads refused (`write only`).
    pub write_only: bool,
    /// The module's own `exclude`/`include`/`filter` rules: hidden from pulls, protected
    /// from pushes.
    pub filters: FilterList,
    /// `numeric ids`: no owner or group names go on the wire.
    pub numeric_ids: bool,
    /// `munge symlinks`: symlinks received are stored behind `/rsyncd-munged/`, so that none
    /// can lead out of the module, and sent without it.
    pub munge_symlinks: bool,
    /// `incoming chmod`: applied to the permissions of what a push brings (with `-p`).
    pub incoming_chmod: crate::chmod::Chmod,
    /// `outgoing chmod`: applied to the permissions a pull sends.
    pub outgoing_chmod: crate::chmod::Chmod,
    /// `ignore nonreadable`: a pull leaves out the files the module's user cannot read.
    pub ignore_nonreadable: bool,
    /// Not chrooted: received symlink targets are cleaned so that they stay inside the module
    /// (rsync's `sanitize_paths`), unless they are munged.
    pub sanitize_links: bool,
    /// A daemon's module: a pull reads every file beneath `root`, no symlink followed on the
    /// way (not for a remote-shell server, whose paths are the user's own).
    pub confine: bool,
}

/// A received symlink target made to stay inside the module, as rsync's `sanitize_path`
/// does for a daemon that is not chrooted: a leading `/` goes, `.` goes, `..` backs up over
/// the component before it, and at the start at most `depth` of them (the link's own depth in
/// the module) are kept; the rest are dropped.
#[must_use]
pub fn sanitize_link(target: &[u8], depth: usize) -> Vec<u8> {
    let mut out: Vec<&[u8]> = Vec::new();
    let mut kept_up = 0;
    let mut allowed = depth;
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if out.len() > kept_up {
                    out.pop();
                } else if allowed > 0 {
                    allowed -= 1;
                    kept_up += 1;
                    out.push(part);
                }
            }
            p => out.push(p),
        }
    }
    let mut joined = out.join(&b'/');
    if joined.is_empty() {
        return b".".to_vec();
    }
    if target.ends_with(b"/") {
        joined.push(b'/');
    }
    joined
}

/// What `munge symlinks` puts before every symlink target (`rsync.h SYMLINK_PREFIX`).
const MUNGE_PREFIX: &[u8] = b"/rsyncd-munged/";

/// What the server did, for the log and the exit code.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Files whose content went over the wire.
    pub transferred: u64,
    /// Literal bytes.
    pub literal: u64,
    /// Bytes matched from old versions.
    pub matched: u64,
    /// Per-file errors (already sent to the client).
    pub errors: Vec<String>,
}

/// A line for the daemon's transfer log: the operation (`send`, `recv`, `del.`), the entry's
/// path in the module and its size.
pub type TransferLog = dyn Fn(&str, &[u8], u64) + Send + Sync;

/// The negotiated session.
struct Setup {
    compat: u32,
    checksum: delta::ChecksumKind,
    compress: bool,
    seed: i32,
}

/// Reads one vstring list of names before multiplexing starts.
fn read_list(reader: &mut MuxReader) -> Result<String, SessionError> {
    let list = reader.read_raw(|b| Ok(get_vstring(b).map(|(s, n)| (s.to_vec(), n))))?;
    Ok(String::from_utf8_lossy(&list).into_owned())
}

/// The first name in the client's list that we also offer (rsync lets the client's order
/// decide).
fn choose<'a>(theirs: &str, ours: &[&'a str]) -> Option<&'a str> {
    theirs
        .split_whitespace()
        .find_map(|t| ours.iter().find(|o| **o == t).copied())
}

/// The server half of `setup_protocol`: compat flags, then both lists out before the
/// client's come in, then the seed.
fn setup(
    reader: &mut MuxReader,
    writer: &mut MuxWriter,
    t: &Transfer,
    seed: i32,
) -> Result<Setup, SessionError> {
    let compat = protocol::compat::for_capabilities(&t.capabilities);
    let mut out = Vec::new();
    put_varint(&mut out, compat.cast_signed());
    let mut checksum = delta::ChecksumKind::Md5;
    let mut compress = t.compress;
    if compat & CF_VARINT_FLIST_FLAGS != 0 {
        put_vstring(&mut out, CHECKSUMS.join(" ").as_bytes())?;
        if t.compress {
            put_vstring(&mut out, COMPRESSORS.join(" ").as_bytes())?;
        }
        writer.send(&out)?;
        out.clear();
        let theirs = read_list(reader)?;
        let name = choose(&theirs, &CHECKSUMS[..4]).ok_or_else(|| {
            protocol::ProtoError::protocol_text(
                "checksum negotiation",
                &format!("Failed to negotiate a checksum: the client offers {theirs:?}"),
            )
        })?;
        checksum = delta::ChecksumKind::from_name(name).unwrap_or(delta::ChecksumKind::Md5);
        if t.compress {
            let theirs = read_list(reader)?;
            compress = match choose(&theirs, &COMPRESSORS) {
                Some("zstd") => true,
                Some(_) => false,
                None => {
                    return Err(SessionError::Unsupported(format!(
                        "Failed to negotiate a compression choice: the client offers {theirs:?}, rtsync compresses with zstd only"
                    )));
                }
            };
        }
    } else if t.compress {
        return Err(SessionError::Unsupported(
            "the client cannot negotiate compression (it would use zlib): rtsync compresses with zstd only; use rsync 3.2 or newer, or no -z".into(),
        ));
    }
    put_int(&mut out, seed);
    writer.send(&out)?;
    Ok(Setup {
        compat,
        checksum,
        compress,
        seed,
    })
}

/// Reads the client's filter rules (`exclude.c recv_filter_list`): `int len` + text, ended by
/// a zero length. A merge rule naming a file here is refused: the client may not make us
/// read our own files. Public for the fuzz target `filter_list`.
///
/// # Errors
/// Socket errors, a rule longer than 4160 bytes, more than 100 000 rules, or a rule that does
/// not parse.
pub fn recv_filter_list(
    reader: &mut MuxReader,
    data: &mut session::mux::DataBuf,
    messages: &mut session::mux::MessageSink<'_>,
) -> Result<FilterList, SessionError> {
    let mut rules = FilterList::new();
    for _ in 0..=MAX_RULES {
        let len = reader.recv_data(data, messages, |b| Ok(get_int(b)))?;
        if len == 0 {
            return Ok(rules);
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_RULE_LEN)
            .ok_or_else(|| {
                protocol::ProtoError::protocol_text("filter list", "a filter rule is too long")
            })?;
        let text = reader.recv_data(data, messages, |b| {
            Ok(b.get(..len).map(|s| (s.to_vec(), len)))
        })?;
        rules
            .add_filter(&text, &mut |_| {
                Err("merge files are not read for a client".to_owned())
            })
            .map_err(|e| protocol::ProtoError::protocol_text("filter list", &e.to_string()))?;
    }
    Err(protocol::ProtoError::protocol_text("filter list", "too many filter rules").into())
}

/// The longest name and the most names a client may send with `--files-from=-`.
const MAX_FROM_NAME: usize = 4096;
const MAX_FROM_NAMES: usize = 10_000_000;

/// Reads the names a pulling client sends for `--files-from=-` (`io.c
/// forward_filesfrom_data`): each ends with NUL (or newline, without `--from0`), and an empty
/// name ends the list. Each must stay inside the module.
fn recv_files_from(
    reader: &mut MuxReader,
    data: &mut DataBuf,
    messages: &mut session::mux::MessageSink<'_>,
    from0: bool,
) -> Result<Vec<Vec<u8>>, SessionError> {
    let bad =
        |what: &str| SessionError::from(protocol::ProtoError::protocol_text("files-from", what));
    let mut names = Vec::new();
    loop {
        let name = reader.recv_data(data, messages, |b| {
            let end = b.iter().position(|&c| c == 0 || (!from0 && c == b'\n'));
            match end {
                Some(i) => Ok(Some((b.get(..i).unwrap_or_default().to_vec(), i + 1))),
                None if b.len() > MAX_FROM_NAME => Err(protocol::ProtoError::protocol_text(
                    "files-from",
                    "a name is too long",
                )),
                None => Ok(None),
            }
        })?;
        let name = name.strip_suffix(b"\r").unwrap_or(&name).to_vec();
        if name.is_empty() {
            return Ok(names);
        }
        let safe = module_relative(&name).ok_or_else(|| {
            bad(&format!(
                "the name {:?} leaves the module",
                String::from_utf8_lossy(&name)
            ))
        })?;
        if names.len() >= MAX_FROM_NAMES {
            return Err(bad("too many names"));
        }
        names.push(if safe.is_empty() { b".".to_vec() } else { safe });
    }
}

/// A client path made safe inside the module: no `..`, no leading `/`, no empty or `.`
/// components other than rsync's `/./` marker for `-R`. `None` when it tries to leave.
#[must_use]
pub fn module_relative(path: &[u8]) -> Option<Vec<u8>> {
    let trailing = path.ends_with(b"/");
    let mut out: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return None,
            p => out.push(p),
        }
    }
    let mut joined = out.join(&b'/');
    if trailing && !joined.is_empty() {
        joined.push(b'/');
    }
    Some(joined)
}

/// Sends a message frame to the client.
fn tell(writer: &mut MuxWriter, code: MsgCode, text: &str) -> Result<(), SessionError> {
    let mut frame = Vec::new();
    protocol::mux::encode(&mut frame, code, text.as_bytes())?;
    writer.send_raw(&frame)
}

/// Refuses a transfer once multiplexing has started, as rsync's server does: the reason, the
/// error line, then `MSG_ERROR_EXIT` with the code; the client exits with it. The client's
/// input is drained until it closes, so it reads all of this rather than a connection reset.
fn refuse_started(
    writer: &mut MuxWriter,
    reader: &mut MuxReader,
    text: &str,
    code: u8,
) -> SessionError {
    let _ = tell(writer, MsgCode::Error, &format!("{text}\n"));
    let _ = tell(
        writer,
        MsgCode::Error,
        &format!(
            "rtsync error: {} (code {code}) [daemon=rtsync {}]\n",
            protocol::errcode::describe(code),
            env!("CARGO_PKG_VERSION")
        ),
    );
    let mut frame = Vec::new();
    if protocol::mux::encode(
        &mut frame,
        MsgCode::ErrorExit,
        &i32::from(code).to_le_bytes(),
    )
    .is_ok()
    {
        let _ = writer.send_raw(&frame);
    }
    writer.shutdown();
    let mut ignore = |_: MsgCode, _: &[u8]| {};
    while let Ok(Some(_)) = reader.next_data(&mut ignore) {}
    SessionError::Protocol(protocol::ProtoError::Remote(text.to_owned()))
}

/// Serves one transfer after the arguments. `seed` is the session's checksum seed.
///
/// # Errors
/// Socket and protocol errors, and refusals (read-only module, unsafe path), each already
/// told to the client when the connection still allowed it.
pub fn serve(
    (mut reader, mut writer): (MuxReader, MuxWriter),
    protocol_version: u32,
    t: &Transfer,
    module: &ModuleView,
    seed: i32,
    log: Arc<TransferLog>,
) -> Result<Outcome, SessionError> {
    if t.bwlimit > 0 {
        writer.set_bwlimit(Some(t.bwlimit.saturating_mul(1024)));
    }
    let s = setup(&mut reader, &mut writer, t, seed)?;
    // From here on both directions are multiplexed (protocol 30 and newer).
    if let Some((text, code)) = &t.refusal {
        return Err(refuse_started(&mut writer, &mut reader, text, *code));
    }
    let refuse = |writer: &mut MuxWriter, reader: &mut MuxReader, text: &str| -> SessionError {
        refuse_started(writer, reader, &format!("ERROR: {text}"), 1)
    };
    let mut paths = Vec::new();
    for p in &t.paths {
        match module_relative(p) {
            Some(rel) => paths.push(rel),
            None => {
                return Err(refuse(
                    &mut writer,
                    &mut reader,
                    &format!(
                        "path {:?} leaves module {}",
                        String::from_utf8_lossy(p),
                        module.name
                    ),
                ));
            }
        }
    }
    let flist = FlistOptions {
        protocol: protocol_version,
        varint_flags: s.compat & CF_VARINT_FLIST_FLAGS != 0,
        uid: t.owner,
        gid: t.group,
        links: t.links,
        devices: t.devices,
        specials: t.specials,
        checksum_len: t.checksum.then(|| s.checksum.digest_len()),
        hard_links: t.hard_links,
    };
    if t.we_send {
        if module.write_only {
            return Err(refuse(&mut writer, &mut reader, "module is write only"));
        }
        send_module((reader, writer), t, &s, flist, module, &paths, &log)
    } else {
        if module.read_only {
            return Err(refuse(&mut writer, &mut reader, "module is read only"));
        }
        receive_into_module((reader, writer), t, &s, flist, module, &paths, &log)
    }
}

/// A pull: the module's files out (`do_server_sender`).
fn send_module(
    (mut reader, mut writer): (MuxReader, MuxWriter),
    t: &Transfer,
    s: &Setup,
    flist: FlistOptions,
    module: &ModuleView,
    paths: &[Vec<u8>],
    log: &Arc<TransferLog>,
) -> Result<Outcome, SessionError> {
    let mut data = DataBuf::default();
    let mut ignore = |_: MsgCode, _: &[u8]| {};
    let client_rules = recv_filter_list(&mut reader, &mut data, &mut ignore)?;
    let files_from = if t.files_from_client {
        Some(recv_files_from(
            &mut reader,
            &mut data,
            &mut ignore,
            t.from0,
        )?)
    } else {
        None
    };
    // The module's rules come first: what it hides stays hidden whatever the client asks.
    let mut filters = module.filters.clone();
    for rule in client_rules.rules() {
        filters.push(rule.clone());
    }
    let root = &module.root;
    let mut sources = Vec::new();
    let args: Vec<&[u8]> = if paths.is_empty() {
        vec![b"".as_slice()]
    } else {
        paths.iter().map(Vec::as_slice).collect()
    };
    for p in args {
        let mut full = root.as_os_str().as_encoded_bytes().to_vec();
        // `-R` keeps the names the client gave, relative to the module: rsync's `/./` marker.
        full.extend_from_slice(if t.relative { b"/./" } else { b"/" });
        full.extend_from_slice(p);
        if p.is_empty() && !t.relative {
            full.extend_from_slice(b".");
            // A module's top is sent as its contents, as `mod/` is.
            full.push(b'/');
        }
        sources.push(mirror::flist::SourceArg(full));
    }
    let opts = mirror::Options {
        recursive: t.recursive,
        dirs: t.dirs,
        links: t.links,
        perms: t.perms,
        times: t.times,
        group: t.group,
        owner: t.owner,
        devices: t.devices,
        specials: t.specials,
        hard_links: t.hard_links,
        relative: t.relative,
        delete_missing_args: t.delete_missing_args,
        ..mirror::Options::default()
    };
    let mut list = mirror::flist::build(&sources, files_from.as_deref(), &opts, &filters);
    if module.ignore_nonreadable {
        let readable: Vec<bool> = list
            .entries
            .iter()
            .map(|e| {
                e.kind != Some(fsx::Kind::File)
                    || rustix::fs::access(list.source_path(e), rustix::fs::Access::READ_OK).is_ok()
            })
            .collect();
        let mut keep = readable.into_iter();
        list.entries.retain(|_| keep.next().unwrap_or(true));
    }
    let mut files = session::flist::to_send(&list, t.checksum.then_some(s.checksum));
    if !module.outgoing_chmod.is_empty() {
        for f in files.iter_mut().filter(|f| f.entry.mode & 0o170_000 != 0) {
            let e = &mut f.entry;
            e.mode = (e.mode & !0o7777) | module.outgoing_chmod.apply(e.mode, e.is_dir());
        }
    }
    if module.munge_symlinks {
        for f in &mut files {
            if let Some(target) = &mut f.entry.link_target
                && let Some(rest) = target.strip_prefix(MUNGE_PREFIX)
            {
                *target = rest.to_vec();
            }
        }
    }
    let names = |file: &str, ids: Vec<u32>| {
        if module.numeric_ids || t.numeric_ids {
            Vec::new()
        } else {
            session::flist::id_names(file, ids)
        }
    };
    let o = session::sender::SendOptions {
        flist,
        receiver_rules: None,
        checksum: s.checksum,
        seed: s.seed,
        compat: s.compat,
        user_names: names(
            "/etc/passwd",
            files.iter().filter_map(|f| f.entry.uid).collect(),
        ),
        group_names: names(
            "/etc/group",
            files.iter().filter_map(|f| f.entry.gid).collect(),
        ),
        compress: s.compress,
        dry_run: t.dry_run,
        server: true,
        io_error: i32::from(!list.errors.is_empty()),
        beneath: module.confine.then(|| module.root.clone()),
    };
    // What was skipped, and what could not be listed (exit 23 there), reach the client as
    // rsync's sender says them: names within the module, never the module's own path.
    for note in &list.notes {
        tell(&mut writer, MsgCode::Info, &format!("{note}\n"))?;
    }
    for e in &list.errors {
        tell(
            &mut writer,
            MsgCode::ErrorXfer,
            &format!(
                "rtsync: [sender] {}\n",
                session::told::within_module(e, root, &module.name)
            ),
        )?;
    }
    let mut errors = list.errors.clone();
    let log_item = Arc::clone(log);
    let mut items = |f: &session::sender::SendFile, iflags: u16| {
        if iflags & (1 << 15) != 0 {
            log_item("send", &f.entry.name, f.entry.size.cast_unsigned());
        }
    };
    let stats = session::sender::send(
        (reader, writer),
        &files,
        &o,
        &mut errors,
        &mut items,
        Box::new(|_, _| {}),
    )?;
    Ok(Outcome {
        transferred: stats.transferred,
        literal: stats.literal,
        matched: stats.matched,
        errors,
    })
}

/// A push: the client's files into the module (`do_server_recv`).
fn receive_into_module(
    (mut reader, mut writer): (MuxReader, MuxWriter),
    t: &Transfer,
    s: &Setup,
    flist: FlistOptions,
    module: &ModuleView,
    paths: &[Vec<u8>],
    log: &Arc<TransferLog>,
) -> Result<Outcome, SessionError> {
    let mut data = session::mux::DataBuf::default();
    let mut ignore = |_: MsgCode, _: &[u8]| {};
    // The client sends its rules only when we delete (protocol 29 and newer).
    let client_rules = if t.delete.is_some() || t.prune_empty_dirs {
        let mut rules = recv_filter_list(&mut reader, &mut data, &mut ignore)?;
        if t.delete_excluded {
            rules.delete_excluded();
        }
        rules
    } else {
        FilterList::new()
    };
    let mut decoder = FlistDecoder::new(flist);
    let mut entries = Vec::new();
    while let Item::Entry(e) = reader.recv_data(&mut data, &mut ignore, |b| decoder.decode(b))? {
        entries.push(e);
    }
    let id0 = s.compat & CF_ID0_NAMES != 0;
    let mut names = [Vec::new(), Vec::new()];
    for (wanted, list) in [t.owner, t.group].into_iter().zip(&mut names) {
        if wanted && !t.numeric_ids {
            *list = reader.recv_data(&mut data, &mut ignore, |b| decode_id_list(b, id0))?;
        }
    }
    if !module.numeric_ids {
        session::flist::map_ids(&mut entries, &names[0], &names[1]);
    }
    let mut entries = match session::flist::sort_received(entries) {
        Ok(e) => e,
        // rsync's receiver says this and exits with a protocol error (2).
        Err(e) => {
            return Err(refuse_started(
                &mut writer,
                &mut reader,
                &format!("rtsync: [receiver] {e}"),
                2,
            ));
        }
    };
    for chmod in [&t.chmod, &module.incoming_chmod] {
        if chmod.is_empty() {
            continue;
        }
        // Not symlinks: their permissions mean nothing (rsync's `!S_ISLNK`).
        for e in entries
            .iter_mut()
            .filter(|e| e.mode & 0o170_000 != 0 && !e.is_symlink())
        {
            e.mode = (e.mode & !0o7777) | chmod.apply(e.mode, e.is_dir());
        }
    }
    if module.sanitize_links && !module.munge_symlinks {
        for e in &mut entries {
            let depth = e.name.iter().filter(|&&b| b == b'/').count();
            if let Some(target) = &mut e.link_target {
                *target = sanitize_link(target, depth);
            }
        }
    }
    if module.munge_symlinks {
        for e in &mut entries {
            if let Some(target) = &mut e.link_target {
                let mut munged = MUNGE_PREFIX.to_vec();
                munged.extend_from_slice(target);
                *target = munged;
            }
        }
    }
    let dest = match destination(
        &module.root,
        paths.first().map_or(&[][..], Vec::as_slice),
        &mut entries,
        t.dry_run,
    ) {
        Ok(dest) => dest,
        Err(Unplaced::Refused(text, code)) => {
            return Err(refuse_started(&mut writer, &mut reader, &text, code));
        }
        Err(Unplaced::Failed(e)) => return Err(e),
    };
    let module_filters = module.filters.clone();
    let side = Side::Receiver {
        in_deleted_dir: false,
    };
    let protect: Arc<session::receiver::Protect> = Arc::new(move |path: &[u8], is_dir: bool| {
        module_filters.is_excluded(path, is_dir, side)
            || client_rules.is_excluded(path, is_dir, side)
    });
    let log_entry = Arc::clone(log);
    let report: Arc<session::receiver::Reporter> = Arc::new(move |r| match r {
        session::receiver::Report::Entry { entry, iflags }
            if entry.is_file()
                && session::receiver::itemized(entry, iflags).update
                    == mirror::Update::Received =>
        {
            log_entry("recv", &entry.name, entry.size.cast_unsigned());
        }
        session::receiver::Report::Deleted { name, .. } => log_entry("del.", name, 0),
        _ => {}
    });
    let o = session::receiver::ReceiveOptions {
        perms: t.perms,
        times: t.times,
        owner: t.owner,
        group: t.group,
        links: t.links,
        devices: t.devices || t.specials,
        whole_file: t.whole_file,
        sparse: t.sparse,
        checksum: s.checksum,
        seed: s.seed,
        compat: s.compat,
        protocol: flist.protocol,
        delete: t.delete.is_some(),
        compress: s.compress,
        verbose: t.verbose > 0 || t.itemize,
        always_checksum: t.checksum,
        quick: t.quick,
        sender_is_server: false,
        // A server tells every deletion whatever the verbosity (`log.c log_delete`): the
        // client decides what to print, and counts them for --stats.
        tell_deletions: true,
        tell_errors: true,
        dry_run: t.dry_run,
        tell_items: t.verbose > 0 || t.itemize,
    };
    let mut errors = Vec::new();
    let stats = session::receiver::receive(
        (reader, writer),
        entries,
        &session::receiver::Destination {
            dir: &dest,
            protect,
            report: Some(report),
            within_module: Some((&module.root, &module.name)),
        },
        o,
        &mut ignore,
        &mut errors,
    )?;
    Ok(Outcome {
        transferred: stats.transferred,
        literal: stats.literal,
        matched: stats.matched,
        errors,
    })
}

/// Why a push has no destination: refused with rsync's text and exit code, or failed.
enum Unplaced {
    Refused(String, u8),
    Failed(SessionError),
}

impl From<fsx::FsError> for Unplaced {
    fn from(e: fsx::FsError) -> Self {
        Unplaced::Failed(e.into())
    }
}

/// The directory a push writes into, decided as rsync's receiver decides it once it has the
/// file list ([`mirror::placement`]). For one file written as the named path the entry is
/// renamed to the destination's last component, so the receiver writes it there.
fn destination(
    root: &Path,
    rel: &[u8],
    entries: &mut [protocol::flist::Entry],
    dry_run: bool,
) -> Result<PathBuf, Unplaced> {
    use mirror::placement::{self, Found};
    let trailing_slash = rel.ends_with(b"/");
    let rel = rel.strip_suffix(b"/").unwrap_or(rel);
    if rel.is_empty() {
        return Ok(root.to_path_buf());
    }
    let top = fsx::Root::open(root, fsx::Persist::Buffered)?;
    let (parent, name) = mirror::flist::split_path(rel);
    let dir = match top.open_dir(parent) {
        Ok(dir) => Some(dir),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let found = match &dir {
        None => Found::Missing,
        Some(dir) => match dir.stat(name)? {
            Some(st) if st.kind == fsx::Kind::Dir => Found::Dir,
            Some(_) => Found::Other,
            None => Found::Missing,
        },
    };
    let how = session::flist::place_received(entries, found, trailing_slash)
        .map_err(|r| Unplaced::Refused(r.to_string(), r.exit_code()))?;
    let shown = String::from_utf8_lossy(rel).into_owned();
    let Some(dir) = dir else {
        // rsync enters the parent to write one file (exit 3 when it cannot), and makes a
        // directory otherwise (exit 11 when it cannot).
        return Err(if how == placement::Placement::WriteAs {
            Unplaced::Refused(
                format!(
                    "rtsync: [Receiver] change_dir \"{}\" failed: No such file or directory (2)",
                    String::from_utf8_lossy(parent)
                ),
                3,
            )
        } else {
            Unplaced::Refused(
                format!(
                    "rtsync: [Receiver] mkdir \"{shown}\" failed: No such file or directory (2)"
                ),
                11,
            )
        });
    };
    match how {
        placement::Placement::Enter => {}
        placement::Placement::WriteAs => {
            session::flist::write_as(entries, name);
            return Ok(dir.path().to_path_buf());
        }
        placement::Placement::MakeDir if dry_run => {
            return Err(Unplaced::Refused(
                "rtsync: a dry run into a directory that does not exist yet is not supported"
                    .into(),
                4,
            ));
        }
        placement::Placement::MakeDir => {
            if let Err(e) = dir.mkdir(name, 0o755) {
                return Err(Unplaced::Refused(
                    format!("rtsync: [Receiver] mkdir \"{shown}\" failed: {e}"),
                    11,
                ));
            }
        }
    }
    // Opened through the root, so a symlink on the way cannot lead out of the module.
    let inner = top.open_dir(rel)?;
    Ok(inner.path().to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_paths_stay_inside_the_module() {
        assert_eq!(module_relative(b"a/b/"), Some(b"a/b/".to_vec()));
        assert_eq!(
            module_relative(b"/etc/passwd"),
            Some(b"etc/passwd".to_vec())
        );
        assert_eq!(module_relative(b"./a//b"), Some(b"a/b".to_vec()));
        assert_eq!(module_relative(b""), Some(Vec::new()));
        assert_eq!(module_relative(b"a/../../x"), None);
        assert_eq!(module_relative(b".."), None);
    }

    #[test]
    fn received_links_are_cleaned_as_rsync_cleans_them() {
        assert_eq!(sanitize_link(b"/etc/hostname", 0), b"etc/hostname");
        assert_eq!(sanitize_link(b"../../x", 1), b"../x");
        assert_eq!(sanitize_link(b"a/../../b", 2), b"../b");
        assert_eq!(sanitize_link(b"../x/../../y", 1), b"../y");
        assert_eq!(sanitize_link(b"./", 0), b".");
        assert_eq!(sanitize_link(b"dir/", 0), b"dir/");
        assert_eq!(sanitize_link(b"target", 3), b"target");
    }

    #[test]
    fn the_clients_order_decides_among_what_we_offer() {
        assert_eq!(choose("md5 xxh128", &CHECKSUMS), Some("md5"));
        assert_eq!(choose("sha1 xxh3", &CHECKSUMS), Some("xxh3"));
        assert_eq!(choose("sha1", &CHECKSUMS), None);
        assert_eq!(choose("lz4 zstd zlib", &COMPRESSORS), Some("zstd"));
    }
}
