//! rsyncd.conf `log format` and the `%i` itemize string, as rsync's `log.c` writes them.
//!
//! This module owns the text of a transfer-log line: [`expand`] turns a format such as the default
//! [`DEFAULT_LOG_FORMAT`] (`%o %h [%a] %m (%u) %f %l`) and a [`LogContext`] into the line, and
//! [`itemize`] builds the 11-character change summary that `%i` and `rsync -i` print
//! (`>f+++++++++`, `.d..t......`, `*deleting  `). It does no I/O and reads no clock: the caller
//! passes the current time, the pid and the file's facts in.
//!
//! Escapes follow rsync's rules (`log.c log_formatted`): `%` may be followed by apostrophes (each
//! raises the human-readable level of `%l`, `%b` and `%c`: one adds thousands separators, two
//! uses 1000-based units, three 1024-based), then an optional `-` (left-align) and a field width,
//! then more apostrophes, then the escape letter. An escape rsync does not know (`%z`), or one
//! whose value is not available (`%h` outside a daemon), stays in the line as written.

use std::fmt::Write as _;

/// `ITEM_REPORT_ATIME`: the access time differs (`u` in column 9).
pub const ITEM_REPORT_ATIME: u32 = 1 << 0;
/// `ITEM_REPORT_CHANGE`: the checksum (regular file) or symlink target (`c` in column 3).
pub const ITEM_REPORT_CHANGE: u32 = 1 << 1;
/// `ITEM_REPORT_SIZE`: the size differs (regular files; `s` in column 4).
pub const ITEM_REPORT_SIZE: u32 = 1 << 2;
/// `ITEM_REPORT_TIMEFAIL`: a symlink's time could not be set (same bit as the size one).
pub const ITEM_REPORT_TIMEFAIL: u32 = 1 << 2;
/// `ITEM_REPORT_TIME`: the modification time differs (`t`/`T` in column 5).
pub const ITEM_REPORT_TIME: u32 = 1 << 3;
/// `ITEM_REPORT_PERMS`: the permissions differ (`p`).
pub const ITEM_REPORT_PERMS: u32 = 1 << 4;
/// `ITEM_REPORT_OWNER`: the owner differs (`o`).
pub const ITEM_REPORT_OWNER: u32 = 1 << 5;
/// `ITEM_REPORT_GROUP`: the group differs (`g`).
pub const ITEM_REPORT_GROUP: u32 = 1 << 6;
/// `ITEM_REPORT_ACL`: the ACL differs (`a`).
pub const ITEM_REPORT_ACL: u32 = 1 << 7;
/// `ITEM_REPORT_XATTR`: the extended attributes differ (`x`).
pub const ITEM_REPORT_XATTR: u32 = 1 << 8;
/// `ITEM_REPORT_CRTIME`: the creation time differs (`n`, or `b` with the access time).
pub const ITEM_REPORT_CRTIME: u32 = 1 << 10;
/// `ITEM_BASIS_TYPE_FOLLOWS`: a basis-type byte follows on the wire (not shown).
pub const ITEM_BASIS_TYPE_FOLLOWS: u32 = 1 << 11;
/// `ITEM_XNAME_FOLLOWS`: a name follows on the wire; with a local change it means a hard link.
pub const ITEM_XNAME_FOLLOWS: u32 = 1 << 12;
/// `ITEM_IS_NEW`: the entry is created (`+++++++++`).
pub const ITEM_IS_NEW: u32 = 1 << 13;
/// `ITEM_LOCAL_CHANGE`: changed on the receiver without a transfer (`c`, or `h` for a hard link).
pub const ITEM_LOCAL_CHANGE: u32 = 1 << 14;
/// `ITEM_TRANSFER`: the content is transferred (`<` or `>`).
pub const ITEM_TRANSFER: u32 = 1 << 15;
/// `ITEM_MISSING_DATA`: never on the wire; the data is missing (`?????????`).
pub const ITEM_MISSING_DATA: u32 = 1 << 16;
/// `ITEM_DELETED`: never on the wire; the line is for a deletion (`*deleting  `).
pub const ITEM_DELETED: u32 = 1 << 17;

/// rsyncd.conf's default `log format` (rsyncd.conf(5), "log format").
pub const DEFAULT_LOG_FORMAT: &str = "%o %h [%a] %m (%u) %f %l";

/// What rsync puts before every line it writes to a `log file` (expand it with [`expand`]).
pub const LOG_FILE_PREFIX: &str = "%t [%p] ";

/// The longest width rsync's escape buffer holds: `%`, an optional `-` and the digits share
/// 23 bytes (`LOG_FMT_SIZE` 32 less room for the conversion).
const MAX_FLAG_BYTES: usize = 23;

/// rsync formats each expansion into a `MAXPATHLEN` buffer, so no field grows past this.
const MAX_FIELD: usize = 4095;

/// The values one transfer-log line may name; each field says which escape shows it.
#[derive(Debug, Clone, Copy)]
pub struct LogContext<'a> {
    /// `%t`: the current local time, as rsync prints it (`2024/01/02 03:04:05`; see
    /// [`format_time`]).
    pub time: &'a str,
    /// `%p`: the pid of the process serving the transfer.
    pub pid: u32,
    /// `%a`: the client's address; `None` leaves `%a` as written (rsync outside a daemon).
    pub addr: Option<&'a str>,
    /// `%h`: the client's host name (`UNDETERMINED` when `reverse lookup` is off).
    pub host: Option<&'a str>,
    /// `%m`: the module's name.
    pub module: Option<&'a str>,
    /// `%P`: the module's path.
    pub module_path: Option<&'a str>,
    /// `%u`: the authenticated user; a daemon passes `Some("")` without `auth users`.
    pub user: Option<&'a str>,
    /// `%o`: `send`, `recv` or `del.`.
    pub op: &'a str,
    /// `%f`: the file's path as the daemon names it, relative to the module (a leading `/` is
    /// dropped, as rsync does).
    pub file: &'a str,
    /// `%n`: the file's name in the transfer; a directory gets a trailing `/`.
    pub name: &'a str,
    /// `%L`: a symlink's target (shown as ` -> target`).
    pub symlink: Option<&'a str>,
    /// `%L`: the name this entry is a hard link to (shown as ` => name`; wins over `symlink`).
    pub hardlink: Option<&'a str>,
    /// `%l`: the file's length.
    pub length: i64,
    /// `%b`: bytes transferred for this file (shown as 0 without [`ITEM_TRANSFER`]). rsync
    /// counts bytes read on a receiver and bytes written on a sender.
    pub bytes: i64,
    /// `%c`: the other direction's byte count (checksum data; also 0 without a transfer).
    pub checksum_bytes: i64,
    /// `%C`: the file's checksum in hex, if known.
    pub checksum: Option<&'a str>,
    /// `%C` without a checksum prints this many spaces (twice the digest length).
    pub checksum_width: usize,
    /// `%i` and the `ITEM_*` facts behind `%b`/`%c`.
    pub iflags: u32,
    /// `%B` and the file type behind `%i` and `%n`: the full `st_mode`.
    pub mode: u32,
    /// `%M`: the file's modification time, formatted like `time` (its space becomes `-`).
    pub mtime: &'a str,
    /// `%U`: the owner's uid; `None` (owners not preserved) prints 0, as rsync does.
    pub uid: Option<u32>,
    /// `%G`: the group's gid; `None` (groups not preserved) prints `DEFAULT`.
    pub gid: Option<u32>,
    /// `%i`: this side sends the file (a transfer shows `<`, not `>`). False for local copies.
    pub sending: bool,
    /// `%i`: `-t` is in effect (otherwise a time change shows `T`).
    pub preserve_mtimes: bool,
    /// `%i`: the receiver can set symlink times (the client's `L` capability).
    pub symlink_times: bool,
}

impl Default for LogContext<'_> {
    fn default() -> Self {
        LogContext {
            time: "",
            pid: 0,
            addr: None,
            host: None,
            module: None,
            module_path: None,
            user: None,
            op: "",
            file: "",
            name: "",
            symlink: None,
            hardlink: None,
            length: 0,
            bytes: 0,
            checksum_bytes: 0,
            checksum: None,
            checksum_width: 32,
            iflags: 0,
            mode: 0o100_644,
            mtime: "",
            uid: None,
            gid: None,
            sending: false,
            preserve_mtimes: true,
            symlink_times: true,
        }
    }
}

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFIFO: u32 = 0o010_000;
const S_IFSOCK: u32 = 0o140_000;

/// The `%i` type letter for an `st_mode`: `d`, `L`, `D` (device), `S` (fifo or socket) or `f`.
#[must_use]
pub fn kind_of(mode: u32) -> char {
    match mode & S_IFMT {
        S_IFDIR => 'd',
        S_IFLNK => 'L',
        S_IFCHR | S_IFBLK => 'D',
        S_IFIFO | S_IFSOCK => 'S',
        _ => 'f',
    }
}

/// The 11-character `%i` string (`YXcstpoguax`) for `iflags` on an entry of type `kind`
/// (`f`, `d`, `L`, `D`, `S`; see [`kind_of`]).
///
/// The first letter comes from the flags: `c` (or `h` with [`ITEM_XNAME_FOLLOWS`]) for a local
/// change, `.` without [`ITEM_TRANSFER`], else `<` when `sending` and `>` otherwise. A time change
/// shows `T` when times are not preserved (or, for a symlink, cannot be set or failed to be).
/// [`ITEM_DELETED`] gives `*deleting  `.
#[must_use]
pub fn itemize(
    iflags: u32,
    kind: char,
    sending: bool,
    preserve_mtimes: bool,
    symlink_times: bool,
) -> String {
    if iflags & ITEM_DELETED != 0 {
        return "*deleting  ".to_owned();
    }
    let has = |bit: u32| iflags & bit != 0;
    let flag = |bit: u32, c: char| if has(bit) { c } else { '.' };
    let update = if has(ITEM_LOCAL_CHANGE) {
        if has(ITEM_XNAME_FOLLOWS) { 'h' } else { 'c' }
    } else if !has(ITEM_TRANSFER) {
        '.'
    } else if sending {
        '<'
    } else {
        '>'
    };
    // A symlink has no size column, and its time is "T" whenever it could not be set exactly.
    let (size, time) = if kind == 'L' {
        let time = if !has(ITEM_REPORT_TIME) {
            '.'
        } else if !preserve_mtimes || !symlink_times || has(ITEM_REPORT_TIMEFAIL) {
            'T'
        } else {
            't'
        };
        ('.', time)
    } else {
        let time = if !has(ITEM_REPORT_TIME) {
            '.'
        } else if preserve_mtimes {
            't'
        } else {
            'T'
        };
        (flag(ITEM_REPORT_SIZE, 's'), time)
    };
    let other_time = match (has(ITEM_REPORT_ATIME), has(ITEM_REPORT_CRTIME)) {
        (true, true) => 'b',
        (true, false) => 'u',
        (false, true) => 'n',
        (false, false) => '.',
    };
    let mut attrs = [
        flag(ITEM_REPORT_CHANGE, 'c'),
        size,
        time,
        flag(ITEM_REPORT_PERMS, 'p'),
        flag(ITEM_REPORT_OWNER, 'o'),
        flag(ITEM_REPORT_GROUP, 'g'),
        other_time,
        flag(ITEM_REPORT_ACL, 'a'),
        flag(ITEM_REPORT_XATTR, 'x'),
    ];
    if has(ITEM_IS_NEW) || has(ITEM_MISSING_DATA) {
        let fill = if has(ITEM_IS_NEW) { '+' } else { '?' };
        attrs = [fill; 9];
    } else if matches!(update, '.' | 'h' | 'c') && attrs.iter().all(|&c| c == '.') {
        // Nothing changed: rsync blanks the attributes so unchanged entries read as "same".
        attrs = [' '; 9];
    }
    let mut s = String::with_capacity(11);
    s.push(update);
    s.push(kind);
    s.extend(attrs);
    s
}

/// True when `format` uses the escape `esc` (e.g. `i` in `%-9i`), skipping `%%` as rsync's
/// `log_format_has` does.
#[must_use]
pub fn has_escape(format: &str, esc: char) -> bool {
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        let spec = parse_spec(rest.get(at + 1..).unwrap_or_default());
        match spec.letter {
            None => return false,
            Some(c) if c == esc => return true,
            Some('%') => rest = spec.rest.get(1..).unwrap_or_default(),
            Some(_) => rest = spec.rest,
        }
    }
    false
}

/// One escape's flags, as rsync reads them after the `%`.
struct Spec<'f> {
    /// Apostrophes, before and after the width.
    humanize: u32,
    /// `-`.
    left: bool,
    /// The width's digits began with `0` (pads numbers with zeros).
    zero: bool,
    /// The field width (0: none).
    width: usize,
    /// The flags were present at all (rsync formats through `%…s` only then).
    has_flags: bool,
    /// The escape letter, or `None` at the end of the format.
    letter: Option<char>,
    /// The format from the escape letter on.
    rest: &'f str,
}

fn parse_spec(after: &str) -> Spec<'_> {
    let bytes = after.as_bytes();
    let mut i = 0;
    let mut humanize = 0;
    while bytes.get(i) == Some(&b'\'') {
        humanize += 1;
        i += 1;
    }
    let mut flag_bytes = 0;
    let left = bytes.get(i) == Some(&b'-');
    if left {
        i += 1;
        flag_bytes += 1;
    }
    let digits_start = i;
    while flag_bytes < MAX_FLAG_BYTES && bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
        flag_bytes += 1;
    }
    let digits = after.get(digits_start..i).unwrap_or_default();
    while bytes.get(i) == Some(&b'\'') {
        humanize += 1;
        i += 1;
    }
    let rest = after.get(i..).unwrap_or_default();
    Spec {
        humanize,
        left,
        zero: digits.starts_with('0'),
        width: digits
            .bytes()
            .fold(0usize, |w, d| {
                w.saturating_mul(10).saturating_add(usize::from(d - b'0'))
            })
            .min(MAX_FIELD),
        has_flags: flag_bytes > 0,
        letter: rest.chars().next(),
        rest,
    }
}

/// Pads `s` to the spec's width the way printf's `%s` does (the `0` flag does not apply).
fn pad(s: &str, spec: &Spec<'_>) -> String {
    let len = s.chars().count();
    let mut out = String::with_capacity(spec.width.max(len));
    if len < spec.width && !spec.left {
        out.extend(std::iter::repeat_n(' ', spec.width - len));
    }
    out.push_str(s);
    if len < spec.width && spec.left {
        out.extend(std::iter::repeat_n(' ', spec.width - len));
    }
    truncate_field(out)
}

/// Pads a number the way printf's `%d`/`%u` does: the `0` flag pads with zeros unless `-`.
fn pad_number(n: i64, spec: &Spec<'_>) -> String {
    if !spec.zero || spec.left {
        return pad(&n.to_string(), spec);
    }
    let digits = n.unsigned_abs().to_string();
    let sign = if n < 0 { "-" } else { "" };
    let zeros = spec.width.saturating_sub(sign.len() + digits.len());
    truncate_field(format!("{sign}{}{digits}", "0".repeat(zeros)))
}

fn truncate_field(mut s: String) -> String {
    if s.len() > MAX_FIELD {
        let mut end = MAX_FIELD;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// `format` expanded for one entry, without the newline rsync adds.
#[must_use]
pub fn expand(format: &str, ctx: &LogContext<'_>) -> String {
    let mut out = String::with_capacity(format.len() + 64);
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 1..).unwrap_or_default();
        let spec = parse_spec(after);
        let Some(letter) = spec.letter else {
            // A trailing escape with no letter stays as written.
            out.push('%');
            out.push_str(after);
            return out;
        };
        match value(letter, &spec, ctx) {
            Some(v) => {
                out.push_str(&v);
                rest = spec.rest.get(letter.len_utf8()..).unwrap_or_default();
            }
            None => {
                // Unknown or unavailable: keep the `%` and flags and go on from the letter,
                // which is then plain text.
                out.push('%');
                out.push_str(
                    after
                        .get(..after.len() - spec.rest.len())
                        .unwrap_or_default(),
                );
                rest = spec.rest;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text for one escape, or `None` to leave the escape as written.
fn value(letter: char, spec: &Spec<'_>, ctx: &LogContext<'_>) -> Option<String> {
    let text = |s: &str| Some(pad(s, spec));
    let transferred = ctx.iflags & ITEM_TRANSFER != 0;
    match letter {
        'a' => ctx.addr.and_then(text),
        'h' => ctx.host.and_then(text),
        'm' => ctx.module.and_then(text),
        'P' => ctx.module_path.and_then(text),
        'u' => ctx.user.and_then(text),
        't' => text(ctx.time),
        'o' => text(ctx.op),
        'p' => Some(pad_number(i64::from(ctx.pid), spec)),
        'U' => Some(pad_number(i64::from(ctx.uid.unwrap_or(0)), spec)),
        'G' => match ctx.gid {
            Some(gid) => Some(pad_number(i64::from(gid), spec)),
            None => text("DEFAULT"),
        },
        'l' => text(&big_num(ctx.length, spec.humanize)),
        'b' => text(&big_num(
            if transferred { ctx.bytes } else { 0 },
            spec.humanize,
        )),
        'c' => text(&big_num(
            if transferred { ctx.checksum_bytes } else { 0 },
            spec.humanize,
        )),
        'M' => text(&ctx.mtime.replace(' ', "-")),
        'B' => {
            let perms = protocol::flist::mode_string(ctx.mode);
            text(perms.get(1..).unwrap_or_default())
        }
        'f' => text(ctx.file.strip_prefix('/').unwrap_or(ctx.file)),
        'n' => {
            if ctx.mode & S_IFMT == S_IFDIR {
                text(&format!("{}/", ctx.name))
            } else {
                text(ctx.name)
            }
        }
        'L' => {
            // The width applies to the target only, after the four-character arrow.
            let (arrow, target) = match (ctx.hardlink, ctx.symlink) {
                (Some(h), _) if !h.is_empty() => (" => ", h),
                (_, Some(s)) if ctx.mode & S_IFMT == S_IFLNK => (" -> ", s),
                _ if !spec.has_flags => return Some(String::new()),
                _ => ("    ", ""),
            };
            Some(truncate_field(format!("{arrow}{}", pad(target, spec))))
        }
        'C' => match ctx.checksum {
            Some(sum) if ctx.iflags & ITEM_DELETED == 0 => text(sum),
            // rsync writes the blank in place, so no width applies to it.
            _ => Some(" ".repeat(ctx.checksum_width.min(MAX_FIELD))),
        },
        'i' => text(&itemize(
            ctx.iflags,
            kind_of(ctx.mode),
            ctx.sending,
            ctx.preserve_mtimes,
            ctx.symlink_times,
        )),
        '%' => text("%"),
        _ => None,
    }
}

/// A number as rsync's `do_big_num` prints it: `human` 0 is plain, 1 adds `,` thousands
/// separators, 2 scales by 1000 and 3 or more by 1024 into `K`/`M`/`G`/`T`/`P` with two
/// decimals (numbers below one unit keep the separators).
#[must_use]
pub fn big_num(num: i64, human: u32) -> String {
    if human > 1 {
        let mult: f64 = if human == 2 { 1000.0 } else { 1024.0 };
        #[allow(clippy::cast_precision_loss)]
        let mut d = (num as f64).abs() / mult;
        if d >= 1.0 {
            let mut units = 'P';
            for u in ['K', 'M', 'G', 'T'] {
                if d < mult {
                    units = u;
                    break;
                }
                d /= mult;
            }
            let d = if num < 0 { -d } else { d };
            return format!("{d:.2}{units}");
        }
    }
    let digits = num.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if num < 0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if human > 0 && i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `unix` seconds as rsync's `timestring` prints local time (`2024/01/02 03:04:05`), for a
/// zone `utc_offset` seconds east of UTC. The caller reads the clock and the zone.
#[must_use]
pub fn format_time(unix: i64, utc_offset: i64) -> String {
    let t = unix.saturating_add(utc_offset);
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = String::with_capacity(19);
    let _ = write!(
        s,
        "{y:4}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    s
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (the era-based method: 400-year
/// eras of 146 097 days, years starting in March so the leap day falls last).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REG: u32 = 0o100_644;
    const DIR: u32 = 0o040_755;
    const LNK: u32 = 0o120_777;

    fn new_file() -> u32 {
        ITEM_TRANSFER | ITEM_IS_NEW
    }

    // Expected strings below were printed by Debian's rsync 3.5.0 (`rsync -ai`, `-aii`,
    // `--out-format=...` on local copies, and a daemon's transfer log).

    #[test]
    fn itemize_new_entries() {
        assert_eq!(itemize(new_file(), 'f', false, true, true), ">f+++++++++");
        assert_eq!(itemize(new_file(), 'f', true, true, true), "<f+++++++++");
        assert_eq!(
            itemize(ITEM_LOCAL_CHANGE | ITEM_IS_NEW, 'd', false, true, true),
            "cd+++++++++"
        );
        assert_eq!(
            itemize(ITEM_LOCAL_CHANGE | ITEM_IS_NEW, 'L', false, true, true),
            "cL+++++++++"
        );
        assert_eq!(
            itemize(ITEM_LOCAL_CHANGE | ITEM_IS_NEW, 'S', false, true, true),
            "cS+++++++++"
        );
        assert_eq!(
            itemize(
                ITEM_LOCAL_CHANGE | ITEM_XNAME_FOLLOWS | ITEM_IS_NEW,
                'f',
                false,
                true,
                true
            ),
            "hf+++++++++"
        );
        assert_eq!(
            itemize(ITEM_TRANSFER | ITEM_MISSING_DATA, 'f', false, true, true),
            ">f?????????"
        );
    }

    #[test]
    fn itemize_changes() {
        assert_eq!(
            itemize(ITEM_TRANSFER | ITEM_REPORT_TIME, 'f', false, true, true),
            ">f..t......"
        );
        assert_eq!(
            itemize(
                ITEM_TRANSFER | ITEM_REPORT_SIZE | ITEM_REPORT_TIME | ITEM_REPORT_PERMS,
                'f',
                false,
                true,
                true
            ),
            ">f.stp....."
        );
        assert_eq!(
            itemize(
                ITEM_LOCAL_CHANGE | ITEM_REPORT_CHANGE | ITEM_REPORT_TIME,
                'L',
                false,
                true,
                true
            ),
            "cLc.t......"
        );
        assert_eq!(
            itemize(ITEM_REPORT_TIME, 'd', false, true, true),
            ".d..t......"
        );
        assert_eq!(
            itemize(ITEM_TRANSFER | ITEM_REPORT_TIME, 'f', false, false, true),
            ">f..T......"
        );
        assert_eq!(
            itemize(
                ITEM_TRANSFER | ITEM_REPORT_CHANGE | ITEM_REPORT_SIZE | ITEM_REPORT_TIME,
                'f',
                false,
                false,
                true
            ),
            ">fcsT......"
        );
        assert_eq!(
            itemize(
                ITEM_REPORT_OWNER | ITEM_REPORT_GROUP,
                'f',
                false,
                true,
                true
            ),
            ".f....og..."
        );
    }

    #[test]
    fn itemize_unchanged_blanks_and_deleted() {
        assert_eq!(itemize(0, 'd', false, true, true), ".d         ");
        assert_eq!(itemize(0, 'f', false, true, true), ".f         ");
        assert_eq!(itemize(0, 'L', false, true, true), ".L         ");
        // A transfer with nothing to report keeps its dots.
        assert_eq!(
            itemize(ITEM_TRANSFER, 'f', false, true, true),
            ">f........."
        );
        assert_eq!(itemize(ITEM_DELETED, 'f', false, true, true), "*deleting  ");
    }

    #[test]
    fn itemize_symlink_time_and_other_columns() {
        // Symlinks: the size bit means "time failed"; no size column.
        let t = ITEM_REPORT_TIME;
        assert_eq!(itemize(t, 'L', false, true, true), ".L..t......");
        assert_eq!(itemize(t, 'L', false, true, false), ".L..T......");
        assert_eq!(
            itemize(t | ITEM_REPORT_TIMEFAIL, 'L', false, true, true),
            ".L..T......"
        );
        assert_eq!(
            itemize(ITEM_REPORT_ATIME, 'f', false, true, true),
            ".f......u.."
        );
        assert_eq!(
            itemize(ITEM_REPORT_CRTIME, 'f', false, true, true),
            ".f......n.."
        );
        assert_eq!(
            itemize(
                ITEM_REPORT_ATIME | ITEM_REPORT_CRTIME,
                'f',
                false,
                true,
                true
            ),
            ".f......b.."
        );
        assert_eq!(
            itemize(ITEM_REPORT_ACL | ITEM_REPORT_XATTR, 'D', false, true, true),
            ".D.......ax"
        );
    }

    #[test]
    fn kinds() {
        assert_eq!(kind_of(REG), 'f');
        assert_eq!(kind_of(DIR), 'd');
        assert_eq!(kind_of(LNK), 'L');
        assert_eq!(kind_of(0o020_644), 'D');
        assert_eq!(kind_of(0o060_644), 'D');
        assert_eq!(kind_of(0o010_644), 'S');
        assert_eq!(kind_of(0o140_644), 'S');
    }

    fn local_big() -> LogContext<'static> {
        LogContext {
            time: "2026/11/22 02:39:35",
            pid: 12394,
            op: "send",
            file: "s/hard",
            name: "hard",
            length: 1_234_567,
            bytes: 1_234_758,
            checksum_bytes: 16,
            iflags: new_file(),
            mode: REG,
            mtime: "2024/01/02 03:04:05",
            uid: Some(0),
            gid: Some(0),
            ..LogContext::default()
        }
    }

    #[test]
    fn local_out_format_golden() {
        // rsync -aH --out-format="[%i] [%n] [%f] [%L] [%l] [%'l] [%''l] [%'''l] [%b] [%c] [%B]
        // [%M] [%U] [%G] [%o] [%-8n|%8n] [%5l|%-5l] [%05l] [%-5U|] [%h] [%z] [%%] [%5%]
        // [%-8L] [%'5l] [%5'l]" s/ d/  (the line for the regular file `hard`)
        let fmt = "[%i] [%n] [%f] [%L] [%l] [%'l] [%''l] [%'''l] [%b] [%c] [%B] [%M] [%U] [%G] \
                   [%o] [%-8n|%8n] [%5l|%-5l] [%05l] [%-5U|] [%h] [%z] [%%] [%5%] [%-8L] [%'5l] [%5'l]";
        assert_eq!(
            expand(fmt, &local_big()),
            "[>f+++++++++] [hard] [s/hard] [] [1234567] [1,234,567] [1.23M] [1.18M] [1234758] \
             [16] [rw-r--r--] [2024/01/02-03:04:05] [0] [0] [send] [hard    |    hard] \
             [1234567|1234567] [1234567] [0    |] [%h] [%z] [%] [    %] [            ] \
             [1,234,567] [1,234,567]"
        );
    }

    #[test]
    fn local_out_format_dir_link_and_hardlink() {
        let fmt = "[%i] [%n] [%L] [%l] [%'l] [%''l] [%'''l] [%b] [%B] [%-8L] [%5l|%-5l]";
        let dir = LogContext {
            name: ".",
            file: "s/.",
            length: 4096,
            iflags: ITEM_LOCAL_CHANGE | ITEM_IS_NEW,
            mode: DIR,
            ..local_big()
        };
        assert_eq!(
            expand(fmt, &dir),
            "[cd+++++++++] [./] [] [4096] [4,096] [4.10K] [4.00K] [0] [rwxr-xr-x] [            ] \
             [ 4096|4096 ]"
        );
        let link = LogContext {
            name: "link",
            length: 5,
            symlink: Some("small"),
            iflags: ITEM_LOCAL_CHANGE | ITEM_IS_NEW,
            mode: LNK,
            ..local_big()
        };
        assert_eq!(
            expand(fmt, &link),
            "[cL+++++++++] [link] [ -> small] [5] [5] [5] [5] [0] [rwxrwxrwx] [ -> small   ] \
             [    5|5    ]"
        );
        let hard = LogContext {
            name: "big",
            hardlink: Some("hard"),
            iflags: ITEM_LOCAL_CHANGE | ITEM_XNAME_FOLLOWS | ITEM_IS_NEW,
            ..local_big()
        };
        assert_eq!(
            expand("[%i] [%L] [%b] [%c] [%-8L]", &hard),
            "[hf+++++++++] [ => hard] [0] [0] [ => hard    ]"
        );
        let setuid = LogContext {
            mode: 0o104_755,
            ..local_big()
        };
        assert_eq!(expand("%B", &setuid), "rwsr-xr-x");
        let sticky = LogContext {
            mode: 0o041_777,
            ..local_big()
        };
        assert_eq!(expand("%B", &sticky), "rwxrwxrwt");
    }

    #[test]
    fn numeric_padding_and_defaults() {
        // rsync -r --out-format="[%08p] [%-08p] [%08U] [%08G] [%U] [%G] [%-5z] [%'z] ..."
        let ctx = LogContext {
            pid: 12492,
            uid: None,
            gid: None,
            ..local_big()
        };
        assert_eq!(
            expand(
                "[%08p] [%-08p] [%08U] [%08G] [%U] [%G] [%-5z] [%'z] [%]%",
                &ctx
            ),
            "[00012492] [12492   ] [00000000] [ DEFAULT] [0] [DEFAULT] [%-5z] [%'z] [%]%"
        );
        assert_eq!(
            expand("[%025p]", &LogContext { pid: 16784, ..ctx }),
            "[0000000000000000000016784]"
        );
    }

    #[test]
    fn widths_on_other_escapes() {
        // rsync -rl --out-format="[%-3%] [%12i] [%-12B] [%5C] [%36C] [%-5M|] [%'''5b]
        // [%''''l] [%6o] [%2n] [%5f] [%''' l]" s/sub s/link d3/
        let link = LogContext {
            name: "link",
            file: "s/link",
            length: 5,
            symlink: Some("small"),
            iflags: ITEM_LOCAL_CHANGE | ITEM_IS_NEW,
            mode: LNK,
            mtime: "2026/11/22 02:39:35",
            ..local_big()
        };
        let fmt = "[%-3%] [%12i] [%-12B] [%5C] [%36C] [%-5M|] [%'''5b] [%''''l] [%6o] [%2n] [%5f] \
                   [%''' l] [%8L]";
        assert_eq!(
            expand(fmt, &link),
            format!(
                "[%  ] [ cL+++++++++] [rwxrwxrwx   ] [{sp}] [{sp}] [2026/11/22-02:39:35|] [    0] \
                 [5] [  send] [link] [s/link] [%''' l] [ ->    small]",
                sp = " ".repeat(32)
            )
        );
        let file = LogContext {
            name: "sub/f",
            file: "s/sub/f",
            length: 2,
            bytes: 56,
            checksum: Some("da7f157179080dc8d95963b66a1b5b09"),
            ..local_big()
        };
        assert_eq!(
            expand("[%5C] [%36C] [%'''5b] [%''''l]", &file),
            "[da7f157179080dc8d95963b66a1b5b09] [    da7f157179080dc8d95963b66a1b5b09] [   56] [2]"
        );
    }

    #[test]
    fn daemon_log_format_golden() {
        // rsyncd.conf: log format = LF [%t] [%p] [%a] [%h] [%m] [%P] [%u] [%o] [%f] [%n] [%L]
        // [%l] [%b] [%c] [%i] [%B] [%M] [%U] [%G] [%-6m|%6u] [%'b] [%z]; `rsync -ai a/
        // rsync://127.0.0.1:18731/lfm/sub/` then a pull of the same.
        let fmt = "LF [%t] [%p] [%a] [%h] [%m] [%P] [%u] [%o] [%f] [%n] [%L] [%l] [%b] [%c] [%i] \
                   [%B] [%M] [%U] [%G] [%-6m|%6u] [%'b] [%z]";
        let recv = LogContext {
            time: "2026/11/22 02:40:02",
            pid: 12855,
            addr: Some("127.0.0.1"),
            host: Some("localhost"),
            module: Some("lfm"),
            module_path: Some("/tmp/rd/lfm"),
            user: Some(""),
            op: "recv",
            file: "sub/f1",
            name: "f1",
            length: 4,
            bytes: 44,
            checksum_bytes: 0,
            iflags: new_file(),
            mode: REG,
            mtime: "2026/11/22 02:39:54",
            uid: Some(1),
            gid: Some(1),
            ..LogContext::default()
        };
        assert_eq!(
            expand(fmt, &recv),
            "LF [2026/11/22 02:40:02] [12855] [127.0.0.1] [localhost] [lfm] [/tmp/rd/lfm] [] \
             [recv] [sub/f1] [f1] [] [4] [44] [0] [>f+++++++++] [rw-r--r--] \
             [2026/11/22-02:39:54] [1] [1] [lfm   |      ] [44] [%z]"
        );
        let send = LogContext {
            pid: 12860,
            op: "send",
            bytes: 47,
            checksum_bytes: 16,
            sending: true,
            ..recv
        };
        assert_eq!(
            expand("[%o] [%f] [%b] [%c] [%i] [%'b]", &send),
            "[send] [sub/f1] [47] [16] [<f+++++++++] [47]"
        );
        let top = LogContext {
            file: "sub/.",
            name: ".",
            length: 4096,
            iflags: ITEM_LOCAL_CHANGE | ITEM_IS_NEW,
            mode: DIR,
            ..recv
        };
        assert_eq!(
            expand("[%f] [%n] [%l] [%b] [%i]", &top),
            "[sub/.] [./] [4096] [0] [cd+++++++++]"
        );
    }

    #[test]
    fn deletion_lines() {
        // rsync -a --delete --out-format='%i|%o|%n|%l|%B|%b|%M' a/ b/ with b/zz extra.
        let del = LogContext {
            op: "del.",
            name: "zz",
            file: "zz",
            iflags: ITEM_DELETED,
            mode: 0o100_000,
            mtime: "1970/01/01 00:00:00",
            ..LogContext::default()
        };
        assert_eq!(
            expand("%i|%o|%n|%l|%B|%b|%M", &del),
            "*deleting  |del.|zz|0|---------|0|1970/01/01-00:00:00"
        );
        let dir = LogContext {
            name: "gone/x",
            mode: 0o040_000,
            ..del
        };
        assert_eq!(expand("%i %n", &dir), "*deleting   gone/x/");
    }

    #[test]
    fn default_format_and_prefix() {
        let ctx = LogContext {
            time: "2026/11/22 02:40:02",
            pid: 77,
            addr: Some("10.0.0.2"),
            host: Some("UNDETERMINED"),
            module: Some("www"),
            user: Some("alice"),
            op: "recv",
            file: "/docs/a.txt",
            length: 1234,
            ..LogContext::default()
        };
        assert_eq!(
            expand(&format!("{LOG_FILE_PREFIX}{DEFAULT_LOG_FORMAT}"), &ctx),
            "2026/11/22 02:40:02 [77] recv UNDETERMINED [10.0.0.2] www (alice) docs/a.txt 1234"
        );
    }

    #[test]
    fn unavailable_and_trailing_escapes_stay() {
        let ctx = LogContext::default();
        assert_eq!(expand("%a %h %m %P %u", &ctx), "%a %h %m %P %u");
        assert_eq!(expand("end%", &ctx), "end%");
        assert_eq!(expand("end%-5", &ctx), "end%-5");
        assert_eq!(expand("end%''", &ctx), "end%''");
        assert_eq!(expand("%%%%", &ctx), "%%");
        assert_eq!(expand("100%% %q%", &ctx), "100% %q%");
        assert_eq!(expand("é%zé", &ctx), "é%zé");
        // More digits than rsync's buffer holds: the escape letter is then a digit, unknown.
        let long = format!("%{}5l", "1".repeat(23));
        assert_eq!(expand(&long, &ctx), long);
    }

    #[test]
    fn bytes_need_a_transfer() {
        let ctx = LogContext {
            bytes: 99,
            checksum_bytes: 7,
            iflags: ITEM_REPORT_TIME,
            ..LogContext::default()
        };
        assert_eq!(expand("%b %c", &ctx), "0 0");
    }

    #[test]
    fn has_escape_mirrors_log_format_has() {
        assert!(has_escape("%i", 'i'));
        assert!(has_escape("%-9i %n", 'i'));
        assert!(has_escape("x %''i", 'i'));
        assert!(!has_escape("%%i", 'i'));
        assert!(has_escape("%%%i", 'i'));
        assert!(!has_escape("%n%L", 'i'));
        assert!(!has_escape("%", 'i'));
        assert!(has_escape("%o", 'o'));
    }

    #[test]
    fn big_numbers() {
        assert_eq!(big_num(0, 0), "0");
        assert_eq!(big_num(0, 1), "0");
        assert_eq!(big_num(999, 1), "999");
        assert_eq!(big_num(1000, 1), "1,000");
        assert_eq!(big_num(-1_234_567, 1), "-1,234,567");
        assert_eq!(big_num(i64::MIN, 0), "-9223372036854775808");
        assert_eq!(big_num(999, 2), "999");
        assert_eq!(big_num(1000, 2), "1.00K");
        assert_eq!(big_num(1023, 3), "1,023");
        assert_eq!(big_num(586_928, 3), "573.17K");
        assert_eq!(big_num(586_928, 2), "586.93K");
        assert_eq!(big_num(-2048, 3), "-2.00K");
        assert_eq!(big_num(1 << 40, 3), "1.00T");
        assert_eq!(big_num(1 << 50, 3), "1.00P");
        assert_eq!(big_num(i64::MAX, 3), "8192.00P");
    }

    #[test]
    fn times() {
        assert_eq!(format_time(0, 0), "1970/01/01 00:00:00");
        assert_eq!(format_time(1_704_164_645, 0), "2024/01/02 03:04:05");
        assert_eq!(format_time(1_704_164_645, 3600), "2024/01/02 04:04:05");
        assert_eq!(format_time(951_782_400, 0), "2000/02/29 00:00:00");
        assert_eq!(format_time(-1, 0), "1969/12/31 23:59:59");
    }

    proptest::proptest! {
        #[test]
        fn expand_never_panics(fmt in ".{0,64}", pid in proptest::prelude::any::<u32>(),
                               len in proptest::prelude::any::<i64>(), mode in proptest::prelude::any::<u32>(),
                               iflags in proptest::prelude::any::<u32>()) {
            let ctx = LogContext { pid, length: len, mode, iflags, ..local_big() };
            let _ = expand(&fmt, &ctx);
        }
    }
}
