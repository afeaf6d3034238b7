//! The file list on the wire (`flist.c send_file_entry / recv_file_entry`), decoding side.
//!
//! Each entry starts with its flags (a varint when `CF_VARINT_FLIST_FLAGS` is set, else one or
//! two bytes); many fields are sent only when they differ from the previous entry's
//! (`XMIT_SAME_*`), and the name is sent as a suffix of the previous name. A zero flag word
//! ends the list, followed by an I/O error code. Without incremental recursion, uid and gid name
//! lists follow the list when owners or groups are preserved and ids are not numeric.

use crate::ProtoError;
use crate::wire::{get_varint, get_varlong};

/// `XMIT_TOP_DIR`.
pub const TOP_DIR: u32 = 1 << 0;
/// `XMIT_SAME_MODE`.
pub const SAME_MODE: u32 = 1 << 1;
/// `XMIT_EXTENDED_FLAGS`.
pub const EXTENDED_FLAGS: u32 = 1 << 2;
/// `XMIT_SAME_UID`.
pub const SAME_UID: u32 = 1 << 3;
/// `XMIT_SAME_GID`.
pub const SAME_GID: u32 = 1 << 4;
/// `XMIT_SAME_NAME`.
pub const SAME_NAME: u32 = 1 << 5;
/// `XMIT_LONG_NAME`.
pub const LONG_NAME: u32 = 1 << 6;
/// `XMIT_SAME_TIME`.
pub const SAME_TIME: u32 = 1 << 7;
/// `XMIT_SAME_RDEV_MAJOR` (devices) / `XMIT_NO_CONTENT_DIR` (directories).
pub const SAME_RDEV_MAJOR: u32 = 1 << 8;
/// `XMIT_NO_CONTENT_DIR`: a directory whose contents the list does not cover (protocol ≥ 30).
pub const NO_CONTENT_DIR: u32 = 1 << 8;
/// `XMIT_HLINKED`.
pub const HLINKED: u32 = 1 << 9;
/// `XMIT_USER_NAME_FOLLOWS`.
pub const USER_NAME_FOLLOWS: u32 = 1 << 10;
/// `XMIT_GROUP_NAME_FOLLOWS`.
pub const GROUP_NAME_FOLLOWS: u32 = 1 << 11;
/// `XMIT_HLINK_FIRST`.
pub const HLINK_FIRST: u32 = 1 << 12;
/// `XMIT_MOD_NSEC`.
pub const MOD_NSEC: u32 = 1 << 13;

const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFIFO: u32 = 0o010_000;
const S_IFSOCK: u32 = 0o140_000;

/// What the options of the transfer put in each entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct FlistOptions {
    /// Negotiated protocol.
    pub protocol: u32,
    /// `CF_VARINT_FLIST_FLAGS`.
    pub varint_flags: bool,
    /// `-o`.
    pub uid: bool,
    /// `-g`.
    pub gid: bool,
    /// `-l`.
    pub links: bool,
    /// `--devices`.
    pub devices: bool,
    /// `--specials`.
    pub specials: bool,
    /// `-H`.
    pub hard_links: bool,
    /// `-c`: bytes of whole-file checksum per regular file.
    pub checksum_len: Option<usize>,
}

/// What a directory entry tells the receiver about the directory's contents; `--delete` scans
/// only directories whose contents the list covers (`flist.c send_file_entry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirRole {
    /// Everything in it is in the list; `top` marks one named on the command line.
    Content {
        /// Named on the command line (`XMIT_TOP_DIR`).
        top: bool,
    },
    /// A parent sent so that a deeper `-R` name has a place to go; its other contents stay.
    Implied,
    /// Sent without its contents (`-d`, `--files-from` without `-r`); they stay.
    Listed,
}

impl DirRole {
    /// The `XMIT_*` bits a directory with this role starts with.
    fn flags(self, protocol: u32) -> u32 {
        match (self, protocol >= 30) {
            (DirRole::Content { top: true }, _) => TOP_DIR,
            (DirRole::Content { top: false }, _) | (_, false) => 0,
            (DirRole::Implied, true) => TOP_DIR | NO_CONTENT_DIR,
            (DirRole::Listed, true) => NO_CONTENT_DIR,
        }
    }
}

/// One file-list entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// Path, `/`-separated.
    pub name: Vec<u8>,
    /// The `XMIT_*` flags it came with.
    pub flags: u32,
    /// Size in bytes.
    pub size: i64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    pub mtime_nsec: u32,
    /// `st_mode`.
    pub mode: u32,
    /// Owner id, with `-o`.
    pub uid: Option<u32>,
    /// Group id, with `-g`.
    pub gid: Option<u32>,
    /// Owner name sent with the entry.
    pub user_name: Option<Vec<u8>>,
    /// Group name sent with the entry.
    pub group_name: Option<Vec<u8>>,
    /// Device numbers (major, minor).
    pub rdev: Option<(u32, u32)>,
    /// Symlink target.
    pub link_target: Option<Vec<u8>>,
    /// Whole-file checksum (`-c`).
    pub checksum: Option<Vec<u8>>,
    /// For a hard-link follower: the index of its leader.
    pub hardlink_leader: Option<u32>,
    /// The first entry of a group of hard links (the one the others point to).
    pub hardlink_first: bool,
}

impl Entry {
    /// The file-type bits of `mode`.
    #[must_use]
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
    /// A directory.
    #[must_use]
    pub fn is_dir(&self) -> bool {
        self.file_type() == 0o040_000
    }
    /// A symlink.
    #[must_use]
    pub fn is_symlink(&self) -> bool {
        self.file_type() == S_IFLNK
    }
    /// A regular file.
    #[must_use]
    pub fn is_file(&self) -> bool {
        self.file_type() == S_IFREG
    }
    /// The place of a duplicate a receiver dropped from its sorted list. rsync's receiver
    /// clears duplicates where they lie rather than removing them, because the sender keeps
    /// them and both sides number the sorted list, duplicates included.
    #[must_use]
    pub fn cleared() -> Self {
        Self::default()
    }
    /// A [`Entry::cleared`] place: no name (every name received is checked non-empty).
    #[must_use]
    pub fn is_cleared(&self) -> bool {
        self.name.is_empty()
    }
}

/// What [`FlistDecoder::decode`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An entry.
    Entry(Entry),
    /// The end of the list, with the sender's I/O error code.
    End {
        /// Non-zero when the sender could not read some files.
        io_error: i32,
    },
}

/// Decodes entries one by one, keeping the "same as previous" state.
#[derive(Debug, Clone)]
pub struct FlistDecoder {
    opts: FlistOptions,
    prev: Entry,
    prev_major: u32,
    entries: u32,
    /// Hard-link leaders by index: a follower takes their attributes.
    leaders: std::collections::HashMap<u32, Entry>,
}

fn bad(detail: impl Into<String>) -> ProtoError {
    ProtoError::protocol("file list", detail)
}

/// A cursor over a byte slice whose reads say "need more" with `None`.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.at)?;
        self.at += 1;
        Some(b)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(b)
    }
    fn int(&mut self) -> Option<i32> {
        let b: [u8; 4] = self.bytes(4)?.try_into().ok()?;
        Some(i32::from_le_bytes(b))
    }
    fn varint(&mut self) -> Result<Option<i32>, ProtoError> {
        Ok(
            get_varint(self.buf.get(self.at..).unwrap_or_default())?.map(|(v, n)| {
                self.at += n;
                v
            }),
        )
    }
    fn varlong(&mut self, min: usize) -> Result<Option<i64>, ProtoError> {
        Ok(
            get_varlong(self.buf.get(self.at..).unwrap_or_default(), min)?.map(|(v, n)| {
                self.at += n;
                v
            }),
        )
    }
}

macro_rules! need {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return Ok(None),
        }
    };
}

impl FlistDecoder {
    /// A decoder for a list sent with `opts`.
    #[must_use]
    pub fn new(opts: FlistOptions) -> Self {
        FlistDecoder {
            opts,
            prev: Entry::default(),
            prev_major: 0,
            entries: 0,
            leaders: std::collections::HashMap::new(),
        }
    }

    /// Decodes the next item from `buf`. `Ok(None)` when `buf` does not hold a whole item yet
    /// (nothing is consumed then; call again with more bytes).
    ///
    /// # Errors
    /// Malformed or hostile entries (bad lengths, names that do not fit, unknown leaders).
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Item, usize)>, ProtoError> {
        let mut c = Cursor { buf, at: 0 };
        let flags = if self.opts.varint_flags {
            need!(c.varint()?).cast_unsigned()
        } else {
            let mut f = u32::from(need!(c.byte()));
            if f & EXTENDED_FLAGS != 0 {
                f |= u32::from(need!(c.byte())) << 8;
            }
            f
        };
        if flags == 0 {
            let io_error = if self.opts.varint_flags {
                need!(c.varint()?)
            } else {
                0
            };
            return Ok(Some((Item::End { io_error }, c.at)));
        }
        let mut e = Entry {
            flags,
            ..Entry::default()
        };
        let same = if flags & SAME_NAME != 0 {
            usize::from(need!(c.byte()))
        } else {
            0
        };
        let suffix_len = if flags & LONG_NAME != 0 {
            usize::try_from(need!(c.varint()?)).map_err(|_| bad("negative name length"))?
        } else {
            usize::from(need!(c.byte()))
        };
        if same > self.prev.name.len() || same + suffix_len > 4096 || same + suffix_len == 0 {
            return Err(bad(format!(
                "name of {} + {suffix_len} bytes after a name of {}",
                same,
                self.prev.name.len()
            )));
        }
        e.name = self.prev.name.get(..same).unwrap_or_default().to_vec();
        e.name.extend_from_slice(need!(c.bytes(suffix_len)));
        if e.name.contains(&0) {
            return Err(bad("NUL in a file name"));
        }
        if flags & HLINKED != 0 && flags & HLINK_FIRST == 0 && self.opts.hard_links {
            let leader = need!(c.varint()?);
            let first = u32::try_from(leader)
                .ok()
                .and_then(|l| self.leaders.get(&l).map(|f| (l, f)))
                .ok_or_else(|| bad("hard-link leader out of range"))?;
            // Without incremental recursion the leader is in this list: the entry ends here, takes
            // the leader's attributes, and they become the "previous" ones, as on the sender.
            let (index, first) = first;
            let name = std::mem::take(&mut e.name);
            e = Entry {
                name,
                flags,
                hardlink_leader: Some(index),
                hardlink_first: false,
                ..first.clone()
            };
            self.prev = e.clone();
            self.entries += 1;
            return Ok(Some((Item::Entry(e), c.at)));
        }
        e.size = need!(c.varlong(3)?);
        if e.size < 0 {
            return Err(bad("negative file size"));
        }
        e.mtime = if flags & SAME_TIME != 0 {
            self.prev.mtime
        } else {
            need!(c.varlong(4)?)
        };
        if flags & MOD_NSEC != 0 {
            e.mtime_nsec = u32::try_from(need!(c.varint()?))
                .ok()
                .filter(|&n| n < 1_000_000_000)
                .ok_or_else(|| bad("bad nanoseconds"))?;
        }
        e.mode = if flags & SAME_MODE != 0 {
            self.prev.mode
        } else {
            need!(c.int()).cast_unsigned()
        };
        if self.opts.uid {
            e.uid = if flags & SAME_UID != 0 {
                self.prev.uid
            } else {
                let id = need!(c.varint()?).cast_unsigned();
                if flags & USER_NAME_FOLLOWS != 0 {
                    let len = usize::from(need!(c.byte()));
                    e.user_name = Some(need!(c.bytes(len)).to_vec());
                }
                Some(id)
            };
        }
        if self.opts.gid {
            e.gid = if flags & SAME_GID != 0 {
                self.prev.gid
            } else {
                let id = need!(c.varint()?).cast_unsigned();
                if flags & GROUP_NAME_FOLLOWS != 0 {
                    let len = usize::from(need!(c.byte()));
                    e.group_name = Some(need!(c.bytes(len)).to_vec());
                }
                Some(id)
            };
        }
        let ft = e.file_type();
        let device = ft == S_IFCHR || ft == S_IFBLK;
        let special = ft == S_IFIFO || ft == S_IFSOCK;
        if (self.opts.devices && device)
            || (self.opts.specials && special && self.opts.protocol < 31)
        {
            let major = if flags & SAME_RDEV_MAJOR != 0 {
                self.prev_major
            } else {
                need!(c.varint()?).cast_unsigned()
            };
            let minor = need!(c.varint()?).cast_unsigned();
            self.prev_major = major;
            e.rdev = Some((major, minor));
        }
        if self.opts.links && ft == S_IFLNK {
            let len = usize::try_from(need!(c.varint()?))
                .ok()
                .filter(|&l| l > 0 && l <= 4096)
                .ok_or_else(|| bad("bad symlink length"))?;
            e.link_target = Some(need!(c.bytes(len)).to_vec());
        }
        if let (Some(n), true) = (self.opts.checksum_len, ft == S_IFREG) {
            e.checksum = Some(need!(c.bytes(n)).to_vec());
        }
        if flags & HLINKED != 0 && flags & HLINK_FIRST != 0 {
            e.hardlink_first = true;
            self.leaders.insert(self.entries, e.clone());
        }
        self.prev = e.clone();
        self.entries += 1;
        Ok(Some((Item::Entry(e), c.at)))
    }
}

/// Encodes entries one by one, with rsync's "same as previous" compression.
#[derive(Debug, Clone)]
pub struct FlistEncoder {
    opts: FlistOptions,
    prev: Entry,
    prev_major: Option<u32>,
}

impl FlistEncoder {
    /// An encoder for a list sent with `opts`.
    #[must_use]
    pub fn new(opts: FlistOptions) -> Self {
        FlistEncoder {
            opts,
            prev: Entry::default(),
            prev_major: None,
        }
    }

    /// Appends entry `e`; `role` says what a directory's entry covers (ignored for others).
    ///
    /// # Errors
    /// A name longer than rsync accepts, or empty.
    pub fn encode(
        &mut self,
        out: &mut Vec<u8>,
        e: &Entry,
        role: DirRole,
    ) -> Result<(), ProtoError> {
        if e.name.is_empty() || e.name.len() > 4095 {
            return Err(bad(format!("cannot send a name of {} bytes", e.name.len())));
        }
        let mut flags = if e.is_dir() {
            role.flags(self.opts.protocol)
        } else {
            0
        };
        let follower = self.opts.hard_links.then_some(e.hardlink_leader).flatten();
        if self.opts.hard_links && (e.hardlink_first || follower.is_some()) {
            flags |= HLINKED;
            if follower.is_none() {
                flags |= HLINK_FIRST;
            }
        }
        if e.mode == self.prev.mode {
            flags |= SAME_MODE;
        }
        if e.mtime == self.prev.mtime {
            flags |= SAME_TIME;
        }
        if e.mtime_nsec != 0 && self.opts.protocol >= 31 {
            flags |= MOD_NSEC;
        }
        if self.opts.uid && e.uid == self.prev.uid {
            flags |= SAME_UID;
        }
        if self.opts.gid && e.gid == self.prev.gid {
            flags |= SAME_GID;
        }
        let same = e
            .name
            .iter()
            .zip(&self.prev.name)
            .take(255)
            .take_while(|(a, b)| a == b)
            .count();
        if same > 0 {
            flags |= SAME_NAME;
        }
        let suffix = e.name.get(same..).unwrap_or_default();
        if suffix.len() > 255 {
            flags |= LONG_NAME;
        }
        let ft = e.file_type();
        let device = ft == S_IFCHR || ft == S_IFBLK;
        let send_rdev = self.opts.devices && device;
        if send_rdev && e.rdev.map(|r| r.0) == self.prev_major {
            flags |= SAME_RDEV_MAJOR;
        }
        if flags == 0 {
            // Zero ends the list: use a filler flag.
            flags = if self.opts.varint_flags {
                EXTENDED_FLAGS
            } else {
                TOP_DIR
            };
        }
        if self.opts.varint_flags {
            crate::wire::put_varint(out, flags.cast_signed());
        } else if flags & 0xff00 != 0 || flags & 0xff == 0 {
            let f = flags | EXTENDED_FLAGS;
            out.push((f & 0xff) as u8);
            out.push((f >> 8) as u8);
        } else {
            out.push(flags as u8);
        }
        if flags & SAME_NAME != 0 {
            out.push(same as u8);
        }
        if flags & LONG_NAME != 0 {
            crate::wire::put_varint(out, i32::try_from(suffix.len()).unwrap_or(0));
        } else {
            out.push(suffix.len() as u8);
        }
        out.extend_from_slice(suffix);
        if let Some(leader) = follower {
            // A follower is its leader's index; its attributes are the leader's.
            crate::wire::put_varint(out, leader.cast_signed());
            self.prev = e.clone();
            return Ok(());
        }
        crate::wire::put_varlong(out, e.size, 3);
        if flags & SAME_TIME == 0 {
            crate::wire::put_varlong(out, e.mtime, 4);
        }
        if flags & MOD_NSEC != 0 {
            crate::wire::put_varint(out, i32::try_from(e.mtime_nsec).unwrap_or(0));
        }
        if flags & SAME_MODE == 0 {
            crate::wire::put_int(out, e.mode.cast_signed());
        }
        if self.opts.uid && flags & SAME_UID == 0 {
            crate::wire::put_varint(out, e.uid.unwrap_or(0).cast_signed());
        }
        if self.opts.gid && flags & SAME_GID == 0 {
            crate::wire::put_varint(out, e.gid.unwrap_or(0).cast_signed());
        }
        if send_rdev {
            let (major, minor) = e.rdev.unwrap_or((0, 0));
            if flags & SAME_RDEV_MAJOR == 0 {
                crate::wire::put_varint(out, major.cast_signed());
            }
            crate::wire::put_varint(out, minor.cast_signed());
            self.prev_major = Some(major);
        }
        if self.opts.links && ft == S_IFLNK {
            let target = e.link_target.as_deref().unwrap_or_default();
            crate::wire::put_varint(out, i32::try_from(target.len()).unwrap_or(0));
            out.extend_from_slice(target);
        }
        if let (Some(n), true) = (self.opts.checksum_len, ft == S_IFREG) {
            let sum = e.checksum.as_deref().unwrap_or_default();
            out.extend((0..n).map(|i| sum.get(i).copied().unwrap_or(0)));
        }
        self.prev = e.clone();
        Ok(())
    }

    /// Appends the end of the list with the sender's I/O error code.
    pub fn finish(&self, out: &mut Vec<u8>, io_error: i32) {
        if self.opts.varint_flags {
            out.push(0);
            crate::wire::put_varint(out, io_error);
        } else {
            out.push(0);
        }
    }
}

/// Appends a uid or gid name list (`uidlist.c send_one_list`); with `id0_names` the
/// terminator carries the name of id 0.
pub fn encode_id_list(out: &mut Vec<u8>, ids: &[(u32, Vec<u8>)], id0_names: bool, id0_name: &[u8]) {
    for (id, name) in ids.iter().filter(|(id, _)| *id != 0) {
        crate::wire::put_varint(out, id.cast_signed());
        let name = name.get(..255).unwrap_or(name);
        out.push(name.len() as u8);
        out.extend_from_slice(name);
    }
    crate::wire::put_varint(out, 0);
    if id0_names {
        let name = id0_name.get(..255).unwrap_or(id0_name);
        out.push(name.len() as u8);
        out.extend_from_slice(name);
    }
}

/// (id, name) pairs of a uid or gid list.
pub type IdList = Vec<(u32, Vec<u8>)>;

/// Decodes a uid or gid name list (`uidlist.c recv_id_list`): (id, name) pairs up to a zero id;
/// with `id0_names` the terminator carries a name for id 0. `Ok(None)` until it is all there.
///
/// # Errors
/// Malformed varints.
pub fn decode_id_list(buf: &[u8], id0_names: bool) -> Result<Option<(IdList, usize)>, ProtoError> {
    let mut c = Cursor { buf, at: 0 };
    let mut out = Vec::new();
    loop {
        let id = need!(c.varint()?).cast_unsigned();
        if id == 0 && !id0_names {
            return Ok(Some((out, c.at)));
        }
        let len = usize::from(need!(c.byte()));
        let name = need!(c.bytes(len)).to_vec();
        out.push((id, name));
        if id == 0 {
            return Ok(Some((out, c.at)));
        }
    }
}

/// `ls -l`-style permission string, as `rsync --list-only` prints it.
#[must_use]
pub fn mode_string(mode: u32) -> String {
    let kind = match mode & S_IFMT {
        0o040_000 => 'd',
        S_IFLNK => 'l',
        S_IFCHR => 'c',
        S_IFBLK => 'b',
        S_IFIFO => 'p',
        S_IFSOCK => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(kind);
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (bit, ch)) in bits.iter().enumerate() {
        let set = mode & bit != 0;
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        s.push(match (special, set, i) {
            (true, true, 8) => 't',
            (true, false, 8) => 'T',
            (true, true, _) => 's',
            (true, false, _) => 'S',
            (false, true, _) => *ch,
            (false, false, _) => '-',
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file list stock rsync 3.5.0 sent for `rsync -a --list-only rsync://…/open/` over a
    /// module holding `f.txt`, `link -> f.txt` and `sub/` (captured with strace, the payload of
    /// the first MSG_DATA frame up to the end marker).
    const CAPTURED: &[u8] = b"\xac\x01\x01\x2e\x00\x00\x10\x6b\xf9\x0c\x02\xf0\x6c\xe9\x43\x29\xed\x41\x00\x00\x00\x04\x72\x6f\x6f\x74\x00\x04\x72\x6f\x6f\x74\xa0\x98\x05\x66\x2e\x74\x78\x74\x00\x06\x00\xf0\x6c\xe9\x43\x29\xa4\x81\x00\x00\xa0\x98\x04\x6c\x69\x6e\x6b\x00\x05\x00\xf0\x6c\xe9\x43\x29\xff\xa1\x00\x00\x05\x66\x2e\x74\x78\x74\xa0\x98\x03\x73\x75\x62\x00\x00\x10\xf0\x6c\xe9\x43\x29\xed\x41\x00\x00\x00\x00";

    #[test]
    fn decodes_a_list_captured_from_rsync() {
        let opts = FlistOptions {
            protocol: 32,
            varint_flags: true,
            uid: true,
            gid: true,
            links: true,
            devices: true,
            specials: true,
            ..FlistOptions::default()
        };
        let mut d = FlistDecoder::new(opts);
        let mut at = 0;
        let mut entries = Vec::new();
        loop {
            let (item, used) = d.decode(&CAPTURED[at..]).unwrap().unwrap();
            at += used;
            match item {
                Item::Entry(e) => entries.push(e),
                Item::End { io_error } => {
                    assert_eq!(io_error, 0);
                    break;
                }
            }
        }
        assert_eq!(at, CAPTURED.len());
        let names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(names, [&b"."[..], b"f.txt", b"link", b"sub"]);
        let dot = &entries[0];
        assert_eq!(
            (dot.size, dot.mode, dot.uid, dot.user_name.as_deref()),
            (4096, 0o40755, Some(0), Some(&b"root"[..]))
        );
        assert_eq!((dot.mtime, dot.mtime_nsec), (0x6b02_0cf9, 0x2943_e96c));
        assert_eq!(
            (entries[1].size, entries[1].mode, entries[1].mtime),
            (6, 0o100644, dot.mtime)
        );
        assert_eq!(entries[2].link_target.as_deref(), Some(&b"f.txt"[..]));
        assert!(entries[3].is_dir());
        // Every prefix short of a whole item asks for more bytes instead of failing.
        let mut d = FlistDecoder::new(opts);
        for cut in 0..32 {
            assert_eq!(d.decode(&CAPTURED[..cut]).unwrap(), None, "cut {cut}");
        }
    }

    #[test]
    fn encoded_lists_decode_to_the_same_entries() {
        let opts = FlistOptions {
            protocol: 31,
            varint_flags: true,
            uid: true,
            gid: true,
            links: true,
            devices: true,
            specials: true,
            ..FlistOptions::default()
        };
        let mut d = FlistDecoder::new(opts);
        let mut at = 0;
        let mut entries = Vec::new();
        while let (Item::Entry(e), used) = d.decode(&CAPTURED[at..]).unwrap().unwrap() {
            at += used;
            entries.push(e);
        }
        let long = Entry {
            name: vec![b'x'; 300],
            mode: 0o100_600,
            size: 5 << 32,
            mtime: 3,
            uid: Some(7),
            gid: Some(9),
            ..Entry::default()
        };
        let dev = Entry {
            name: b"dev/null".to_vec(),
            mode: 0o020_666,
            rdev: Some((1, 3)),
            uid: Some(0),
            gid: Some(0),
            ..Entry::default()
        };
        entries.push(long);
        entries.push(dev);
        for varint_flags in [true, false] {
            let opts = FlistOptions {
                varint_flags,
                ..opts
            };
            let mut enc = FlistEncoder::new(opts);
            let mut out = Vec::new();
            for (i, e) in entries.iter().enumerate() {
                enc.encode(&mut out, e, DirRole::Content { top: i == 0 })
                    .unwrap();
            }
            enc.finish(&mut out, 0);
            let mut d = FlistDecoder::new(opts);
            let mut at = 0;
            let mut back = Vec::new();
            loop {
                let (item, used) = d.decode(&out[at..]).unwrap().unwrap();
                at += used;
                match item {
                    Item::Entry(mut e) => {
                        e.flags = 0;
                        e.user_name = None;
                        e.group_name = None;
                        back.push(e);
                    }
                    Item::End { .. } => break,
                }
            }
            let expected: Vec<Entry> = entries
                .iter()
                .cloned()
                .map(|mut e| {
                    e.flags = 0;
                    e.user_name = None;
                    e.group_name = None;
                    e
                })
                .collect();
            assert_eq!(back, expected, "varint flags {varint_flags}");
            assert_eq!(at, out.len());
        }
    }

    #[test]
    fn directory_roles_set_rsyncs_flags() {
        // flist.c send_file_entry: content dirs carry only TOP_DIR; implied parents
        // TOP_DIR|NO_CONTENT_DIR; listed-only dirs NO_CONTENT_DIR; before 30 only TOP_DIR.
        let cases = [
            (DirRole::Content { top: true }, 31, TOP_DIR),
            (DirRole::Content { top: false }, 31, 0),
            (DirRole::Implied, 31, TOP_DIR | NO_CONTENT_DIR),
            (DirRole::Listed, 31, NO_CONTENT_DIR),
            (DirRole::Implied, 29, 0),
        ];
        for (role, protocol, want) in cases {
            assert_eq!(role.flags(protocol), want, "{role:?} at {protocol}");
        }
        let opts = FlistOptions {
            protocol: 31,
            varint_flags: true,
            ..FlistOptions::default()
        };
        let dir = Entry {
            name: b"a".to_vec(),
            mode: 0o040_755,
            ..Entry::default()
        };
        let file = Entry {
            name: b"a/f".to_vec(),
            mode: 0o100_644,
            ..Entry::default()
        };
        let mut enc = FlistEncoder::new(opts);
        let mut out = Vec::new();
        enc.encode(&mut out, &dir, DirRole::Implied).unwrap();
        enc.encode(&mut out, &file, DirRole::Implied).unwrap();
        enc.finish(&mut out, 0);
        let mut d = FlistDecoder::new(opts);
        let mut at = 0;
        let mut flags = Vec::new();
        while let Some((Item::Entry(e), used)) = d.decode(&out[at..]).unwrap() {
            at += used;
            flags.push(e.flags & (TOP_DIR | NO_CONTENT_DIR));
        }
        // The role means nothing for a file.
        assert_eq!(flags, [TOP_DIR | NO_CONTENT_DIR, 0]);
    }

    #[test]
    fn hard_link_followers_carry_only_their_leader() {
        let opts = FlistOptions {
            protocol: 31,
            varint_flags: true,
            hard_links: true,
            uid: true,
            gid: true,
            ..FlistOptions::default()
        };
        let leader = Entry {
            name: b"a".to_vec(),
            mode: 0o100_644,
            size: 5,
            mtime: 10,
            uid: Some(1),
            gid: Some(2),
            hardlink_first: true,
            ..Entry::default()
        };
        let other = Entry {
            name: b"b".to_vec(),
            mode: 0o100_600,
            size: 7,
            mtime: 11,
            uid: Some(3),
            gid: Some(4),
            ..Entry::default()
        };
        let follower = Entry {
            name: b"c".to_vec(),
            hardlink_leader: Some(0),
            ..leader.clone()
        };
        let after = Entry {
            name: b"d".to_vec(),
            ..leader.clone()
        };
        let mut enc = FlistEncoder::new(opts);
        let mut out = Vec::new();
        for e in [&leader, &other, &follower, &after] {
            enc.encode(&mut out, e, DirRole::Content { top: false })
                .unwrap();
        }
        enc.finish(&mut out, 0);
        let mut d = FlistDecoder::new(opts);
        let mut at = 0;
        let mut got = Vec::new();
        loop {
            let item = d.decode(&out[at..]).unwrap();
            let Some((Item::Entry(e), used)) = item else {
                panic!("at {at} of {}: {item:?} {out:02x?}", out.len())
            };
            at += used;
            got.push(e);
            if got.len() == 4 {
                break;
            }
        }
        assert_eq!(got[2].hardlink_leader, Some(0));
        assert_eq!(
            (got[2].size, got[2].mode, got[2].uid),
            (5, 0o100_644, Some(1))
        );
        // The entry after a follower is compared with the follower's (the leader's) attributes.
        assert_eq!(
            (got[3].size, got[3].mode, got[3].mtime, got[3].uid),
            (5, 0o100_644, 10, Some(1))
        );
        // A follower naming no leader is refused.
        let mut bad_list = Vec::new();
        FlistEncoder::new(opts)
            .encode(
                &mut bad_list,
                &Entry {
                    hardlink_leader: Some(7),
                    ..follower.clone()
                },
                DirRole::Content { top: false },
            )
            .unwrap();
        assert!(FlistDecoder::new(opts).decode(&bad_list).is_err());
    }

    #[test]
    fn hostile_entries_are_refused() {
        let opts = FlistOptions {
            protocol: 31,
            varint_flags: true,
            ..FlistOptions::default()
        };
        // SAME_NAME with a prefix longer than the previous (empty) name.
        assert!(FlistDecoder::new(opts).decode(&[0x20, 5, 1, b'a']).is_err());
        // A name with a NUL.
        assert!(
            FlistDecoder::new(opts)
                .decode(&[0x02, 2, b'a', 0, 0, 0, 0, 0, 0, 0, 0])
                .is_err()
        );
    }

    #[test]
    fn modes_print_like_ls() {
        assert_eq!(mode_string(0o40755), "drwxr-xr-x");
        assert_eq!(mode_string(0o100644), "-rw-r--r--");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
        assert_eq!(mode_string(0o41777), "drwxrwxrwt");
        assert_eq!(mode_string(0o104755), "-rwsr-xr-x");
    }

    #[test]
    fn id_lists() {
        let (ids, used) = decode_id_list(&[0x05, 3, b'b', b'o', b'b', 0x00], false)
            .unwrap()
            .unwrap();
        assert_eq!((ids, used), (vec![(5, b"bob".to_vec())], 6));
        assert_eq!(decode_id_list(&[0x05, 3, b'b'], false).unwrap(), None);
    }
}
