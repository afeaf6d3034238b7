//! rsync's `--chmod` strings, as rsyncd.conf's `incoming chmod` and `outgoing chmod` use
//! them (`chmod.c`): comma-separated items, each an octal mode or `[DF][ugoa]*[-+=][rwxXst]*`.
//! `D` limits an item to directories, `F` to everything else; `X` sets execute only where
//! some execute bit is already set (or on directories).

/// One parsed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item {
    /// Applies to directories.
    dirs: bool,
    /// Applies to other entries.
    files: bool,
    /// The bits `who` covers (`u`, `g`, `o`, `a`; none given means all).
    who: u32,
    /// `+`, `-`, `=`, or an octal mode (`#`).
    op: u8,
    /// The permission bits named (`rwxst`, before `who` masks them), or the octal mode.
    bits: u32,
    /// `X` was named.
    cond_x: bool,
}

/// A parsed `chmod` string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chmod {
    items: Vec<Item>,
}

impl Chmod {
    /// Parses `text`.
    ///
    /// # Errors
    /// The item that is not rsync's syntax.
    pub fn parse(text: &str) -> Result<Chmod, String> {
        let mut items = Vec::new();
        for raw in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            items.push(parse_item(raw).ok_or_else(|| format!("invalid chmod item {raw:?}"))?);
        }
        Ok(Chmod { items })
    }

    /// Whether there is nothing to apply.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The permission bits (`mode & 0o7777`) after every item, for a directory or not.
    #[must_use]
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let mut m = mode & 0o7777;
        for it in &self.items {
            if (is_dir && !it.dirs) || (!is_dir && !it.files) {
                continue;
            }
            if it.op == b'#' {
                m = it.bits & 0o7777;
                continue;
            }
            let mut bits = it.bits;
            if it.cond_x && (is_dir || m & 0o111 != 0) {
                bits |= 0o111;
            }
            let bits = bits & it.who;
            m = match it.op {
                b'+' => m | bits,
                b'-' => m & !bits,
                _ => (m & !it.who) | bits,
            };
        }
        m
    }
}

fn parse_item(raw: &str) -> Option<Item> {
    let mut s = raw.as_bytes();
    let (mut dirs, mut files) = (true, true);
    match s.first() {
        Some(b'D') => {
            files = false;
            s = s.get(1..)?;
        }
        Some(b'F') => {
            dirs = false;
            s = s.get(1..)?;
        }
        _ => {}
    }
    if !s.is_empty() && s.iter().all(u8::is_ascii_digit) {
        let bits = u32::from_str_radix(std::str::from_utf8(s).ok()?, 8).ok()?;
        return (bits <= 0o7777).then_some(Item {
            dirs,
            files,
            who: 0o7777,
            op: b'#',
            bits,
            cond_x: false,
        });
    }
    let mut who = 0;
    while let Some(&c) = s.first() {
        who |= match c {
            b'u' => 0o4700,
            b'g' => 0o2070,
            b'o' => 0o1007,
            b'a' => 0o7777,
            _ => break,
        };
        s = s.get(1..)?;
    }
    if who == 0 {
        who = 0o7777;
    }
    let (&op, rest) = s.split_first()?;
    if !matches!(op, b'+' | b'-' | b'=') {
        return None;
    }
    let (mut bits, mut cond_x) = (0, false);
    for &c in rest {
        match c {
            b'r' => bits |= 0o444,
            b'w' => bits |= 0o222,
            b'x' => bits |= 0o111,
            b'X' => cond_x = true,
            b's' => bits |= 0o6000,
            b't' => bits |= 0o1000,
            _ => return None,
        }
    }
    Some(Item {
        dirs,
        files,
        who,
        op,
        bits,
        cond_x,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_items_rsyncs_manual_shows() {
        let c = Chmod::parse("Dg+s,ug+w,Fo-w,+X").unwrap();
        assert_eq!(c.apply(0o755, true), 0o2775);
        assert_eq!(c.apply(0o644, false), 0o664);
        assert_eq!(c.apply(0o600, false), 0o620);
        assert_eq!(c.apply(0o700, false), 0o731);
        let c = Chmod::parse("D2775,F664").unwrap();
        assert_eq!(c.apply(0o700, true), 0o2775);
        assert_eq!(c.apply(0o600, false), 0o664);
        let c = Chmod::parse("Du=rwx,Dgo=rx,Fu=rw,Fgo=r").unwrap();
        assert_eq!(c.apply(0o777, true), 0o755);
        assert_eq!(c.apply(0o777, false), 0o644);
        assert_eq!(Chmod::parse("a-w").unwrap().apply(0o666, false), 0o444);
    }

    #[test]
    fn bad_items_are_refused() {
        for bad in ["u+q", "Z+r", "u", "99999", "D"] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
        assert!(Chmod::parse("").unwrap().is_empty());
    }
}
