//! File metadata as `fsx` reads and writes it.

use rustix::fs::FileType;

/// The type of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Character device.
    CharDev,
    /// Block device.
    BlockDev,
}

impl Kind {
    /// The kind an `st_mode` names (a regular file when its type bits name none).
    #[must_use]
    pub fn from_mode(mode: u32) -> Kind {
        match FileType::from_raw_mode(mode) {
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Fifo,
            FileType::Socket => Kind::Socket,
            FileType::CharacterDevice => Kind::CharDev,
            FileType::BlockDevice => Kind::BlockDev,
            _ => Kind::File,
        }
    }

    pub(crate) fn file_type(self) -> FileType {
        match self {
            Kind::File => FileType::RegularFile,
            Kind::Dir => FileType::Directory,
            Kind::Symlink => FileType::Symlink,
            Kind::Fifo => FileType::Fifo,
            Kind::Socket => FileType::Socket,
            Kind::CharDev => FileType::CharacterDevice,
            Kind::BlockDev => FileType::BlockDevice,
        }
    }

    /// Devices (`-D`'s `--devices` half).
    #[must_use]
    pub fn is_device(self) -> bool {
        matches!(self, Kind::CharDev | Kind::BlockDev)
    }

    /// FIFOs and sockets (`-D`'s `--specials` half).
    #[must_use]
    pub fn is_special(self) -> bool {
        matches!(self, Kind::Fifo | Kind::Socket)
    }

    /// The letter rsync's itemized output uses: `f`, `d`, `L`, `D` or `S`.
    #[must_use]
    pub fn item_letter(self) -> char {
        match self {
            Kind::File => 'f',
            Kind::Dir => 'd',
            Kind::Symlink => 'L',
            Kind::CharDev | Kind::BlockDev => 'D',
            Kind::Fifo | Kind::Socket => 'S',
        }
    }
}

/// A point in time with nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timespec {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nsec: u32,
}

impl Timespec {
    /// Whether two modification times count as the same under rsync's `--modify-window`:
    /// `Some(n)` with `n >= 0` allows `n` whole seconds apart; otherwise (no window, or a
    /// negative one) they must agree to the nanosecond.
    #[must_use]
    pub fn same_within(&self, other: &Timespec, window: Option<i64>) -> bool {
        match window {
            Some(n) if n >= 0 => self.sec.abs_diff(other.sec) <= n.unsigned_abs(),
            _ => self == other,
        }
    }
}

/// What `lstat` says about an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Entry type.
    pub kind: Kind,
    /// Permission bits, including set-id and sticky bits (`mode & 0o7777`).
    pub perms: u32,
    /// Size in bytes.
    pub size: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time.
    pub mtime: Timespec,
    /// Device holding the entry.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Hard link count.
    pub nlink: u64,
    /// Device number, for device nodes.
    pub rdev: u64,
}

impl Stat {
    pub(crate) fn from_raw(st: &rustix::fs::Stat) -> Stat {
        Stat {
            kind: Kind::from_mode(st.st_mode),
            perms: st.st_mode & 0o7777,
            size: u64::try_from(st.st_size).unwrap_or(0),
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: Timespec {
                sec: st.st_mtime,
                nsec: u32::try_from(st.st_mtime_nsec).unwrap_or(0),
            },
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
            rdev: st.st_rdev,
        }
    }
}

/// Metadata to apply. `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    /// Permission bits (`& 0o7777`). Ignored for symlinks, which have none on Linux.
    pub perms: Option<u32>,
    /// Owner; applied only when permitted (root), silently skipped otherwise, as rsync does.
    pub uid: Option<u32>,
    /// Group; a refusal for lack of privilege is skipped, as rsync does.
    pub gid: Option<u32>,
    /// Modification time (access time is left alone).
    pub mtime: Option<Timespec>,
}

/// How hard new files are pushed to disk before they replace the old ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Persist {
    /// Leave it to the kernel, as rsync does by default.
    #[default]
    Buffered,
    /// `fdatasync` each file before its rename and `fsync` the directory after it.
    Sync,
}
