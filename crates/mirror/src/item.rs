//! What happened to one entry, and rsync's `--itemize-changes` rendering of it
//! (`YXcstpoguax`, `log.c`).

use fsx::Kind;

/// The first letter of an itemized line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// `>`: content received.
    Received,
    /// `<`: content sent (a push, as its client reports what the daemon asked for).
    Sent,
    /// `c`: created or changed locally (directories, symlinks, devices).
    Created,
    /// `h`: made as a hard link to another entry.
    HardLink,
    /// `.`: content unchanged; attributes may have changed.
    Unchanged,
    /// `*deleting`.
    Deleted,
}

/// One reported change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct Item<'a> {
    /// Path relative to the transfer root.
    pub name: &'a [u8],
    /// Entry type.
    pub kind: Kind,
    /// What was done.
    pub update: Update,
    /// The entry did not exist before.
    pub is_new: bool,
    /// Content (or symlink target, or device number) differs.
    pub checksum: bool,
    /// Size differs.
    pub size: bool,
    /// Modification time differs.
    pub time: bool,
    /// Permissions differ.
    pub perms: bool,
    /// Owner differs.
    pub owner: bool,
    /// Group differs.
    pub group: bool,
    /// Symlink target, for display.
    pub link_target: Option<&'a [u8]>,
    /// Hard-link leader, for display.
    pub hardlink_to: Option<Vec<u8>>,
    /// Regular-file bytes written.
    pub bytes: u64,
}

impl<'a> Item<'a> {
    /// A bare item: nothing changed yet.
    #[must_use]
    pub fn new(name: &'a [u8], kind: Kind, update: Update) -> Self {
        Item {
            name,
            kind,
            update,
            is_new: false,
            checksum: false,
            size: false,
            time: false,
            perms: false,
            owner: false,
            group: false,
            link_target: None,
            hardlink_to: None,
            bytes: 0,
        }
    }

    /// Whether anything about the entry changed (what `-v` and a single `-i` show).
    #[must_use]
    pub fn is_change(&self) -> bool {
        matches!(
            self.update,
            Update::Received | Update::Sent | Update::Deleted | Update::HardLink
        ) || self.is_new
            || self.checksum
            || self.attr_changed()
    }

    fn attr_changed(&self) -> bool {
        self.size || self.time || self.perms || self.owner || self.group
    }

    /// The 11-letter change summary, e.g. `>f.st......`, `cd+++++++++`, `*deleting  `.
    #[must_use]
    pub fn itemize(&self) -> String {
        if self.update == Update::Deleted {
            return "*deleting  ".to_string();
        }
        let y = match self.update {
            Update::Received => '>',
            Update::Sent => '<',
            Update::Created => 'c',
            Update::HardLink => 'h',
            Update::Unchanged | Update::Deleted => '.',
        };
        let mut s = String::with_capacity(11);
        s.push(y);
        s.push(self.kind.item_letter());
        if self.is_new {
            s.push_str("+++++++++");
            return s;
        }
        let flag = |on: bool, c: char| if on { c } else { '.' };
        let attrs = [
            flag(self.checksum, 'c'),
            flag(self.size, 's'),
            flag(self.time, 't'),
            flag(self.perms, 'p'),
            flag(self.owner, 'o'),
            flag(self.group, 'g'),
            '.',
            '.',
            '.',
        ];
        if matches!(
            self.update,
            Update::Unchanged | Update::HardLink | Update::Created
        ) && attrs.iter().all(|&c| c == '.')
        {
            s.push_str("         ");
        } else {
            s.extend(attrs);
        }
        s
    }

    /// The name as rsync prints it: directories end in `/`, symlinks show `-> target`,
    /// hard links `=> leader`.
    #[must_use]
    pub fn display_name(&self) -> Vec<u8> {
        let mut out = if self.name == b"." {
            b"./".to_vec()
        } else {
            self.name.to_vec()
        };
        if self.kind == Kind::Dir && !out.ends_with(b"/") {
            out.push(b'/');
        }
        if let Some(t) = self.link_target {
            out.extend_from_slice(b" -> ");
            out.extend_from_slice(t);
        }
        if let Some(l) = &self.hardlink_to {
            out.extend_from_slice(b" => ");
            out.extend_from_slice(l);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsync_letters() {
        let mut i = Item::new(b"f", Kind::File, Update::Received);
        i.is_new = true;
        assert_eq!(i.itemize(), ">f+++++++++");
        let mut i = Item::new(b"f", Kind::File, Update::Received);
        i.size = true;
        i.time = true;
        assert_eq!(i.itemize(), ">f.st......");
        let mut i = Item::new(b"d", Kind::Dir, Update::Unchanged);
        i.time = true;
        assert_eq!(i.itemize(), ".d..t......");
        assert_eq!(
            Item::new(b"d", Kind::Dir, Update::Unchanged).itemize(),
            ".d         "
        );
        assert_eq!(
            Item::new(b"x", Kind::File, Update::Deleted).itemize(),
            "*deleting  "
        );
        let mut l = Item::new(b"l", Kind::Symlink, Update::Created);
        l.is_new = true;
        l.link_target = Some(b"t");
        assert_eq!(l.itemize(), "cL+++++++++");
        assert_eq!(l.display_name(), b"l -> t");
        assert_eq!(
            Item::new(b".", Kind::Dir, Update::Unchanged).display_name(),
            b"./"
        );
    }
}
