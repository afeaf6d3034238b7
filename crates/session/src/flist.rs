//! File lists between disk and wire: the entries a sender sends for a local list
//! ([`to_send`]), the order a receiver gives the entries it received ([`sort_received`]),
//! and the owner and group names that go with ids ([`id_names`]).

use mirror::flist::FileList;
use protocol::flist::{DirRole, Entry};

use crate::sender::SendFile;

/// The entries to send for a local file list, in its order; with `checksum`, each file
/// carries its whole-file sum (`-c`). The first of each group of hard links is sent in full,
/// the others name it by index (`-H`).
#[must_use]
pub fn to_send(list: &FileList, checksum: Option<delta::ChecksumKind>) -> Vec<SendFile> {
    let mut files: Vec<SendFile> = list
        .entries
        .iter()
        .map(|e| {
            let rdev = e.rdev;
            let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff);
            let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff);
            let entry = Entry {
                name: e.name.clone(),
                size: i64::try_from(e.size).unwrap_or(i64::MAX),
                mtime: e.mtime.sec,
                mtime_nsec: e.mtime.nsec,
                // A missing argument with --delete-missing-args goes as mode 0.
                mode: e.kind.map_or(0, |kind| type_bits(kind) | e.perms),
                uid: Some(e.uid),
                gid: Some(e.gid),
                rdev: e.kind.is_some_and(fsx::Kind::is_device).then_some((
                    u32::try_from(major).unwrap_or(0),
                    u32::try_from(minor).unwrap_or(0),
                )),
                link_target: e.link_target.clone(),
                // -c: the daemon compares this with its own file's sum, not size and time.
                checksum: checksum
                    .filter(|_| e.kind == Some(fsx::Kind::File))
                    .map(|kind| {
                        mirror::whole_file_sum(&list.source_path(e), kind)
                            .unwrap_or_else(|| vec![0; kind.digest_len()])
                    }),
                ..Entry::default()
            };
            let role = if e.content_dir {
                DirRole::Content { top: e.top_dir }
            } else if e.implied_dir {
                DirRole::Implied
            } else {
                DirRole::Listed
            };
            SendFile {
                entry,
                source: list.source_path(e),
                role,
            }
        })
        .collect();
    // -H: the first of each group of links is sent in full, the others name it by index.
    let mut firsts: std::collections::HashMap<(u64, u64), u32> = std::collections::HashMap::new();
    for (i, (file, e)) in files.iter_mut().zip(list.entries.iter()).enumerate() {
        if let Some(key) = e.hardlink {
            match firsts.get(&key) {
                Some(&leader) => file.entry.hardlink_leader = Some(leader),
                None => {
                    firsts.insert(key, u32::try_from(i).unwrap_or(u32::MAX));
                    file.entry.hardlink_first = true;
                }
            }
        }
    }
    files
}

/// Reads where a received list lands on `found` ([`mirror::placement::place`]), counting the
/// entries the list still holds (cleared duplicates aside).
///
/// # Errors
/// The placement's [`mirror::placement::Refusal`].
pub fn place_received(
    entries: &[Entry],
    found: mirror::placement::Found,
    trailing_slash: bool,
) -> Result<mirror::placement::Placement, mirror::placement::Refusal> {
    let live = entries.iter().filter(|e| !e.is_cleared());
    let first_is_dir = live.clone().next().is_some_and(Entry::is_dir);
    mirror::placement::place(found, trailing_slash, live.count(), first_is_dir)
}

/// For a list written as the named path ([`mirror::placement::Placement::WriteAs`]): its one
/// entry takes the destination's last component `name`; returns the name it had in the list.
pub fn write_as(entries: &mut [Entry], name: &[u8]) -> Option<Vec<u8>> {
    entries
        .iter_mut()
        .find(|e| !e.is_cleared())
        .map(|e| std::mem::replace(&mut e.name, name.to_vec()))
}

/// Whether a name from a peer's list is safe to use below a destination: relative, no `..`
/// or `.` components (only the lone `.` of the top), no empty ones (rsync's receiver aborts
/// on such a name: "ABORTING due to unsafe pathname from sender").
#[must_use]
pub fn is_safe_name(name: &[u8]) -> bool {
    name == b"."
        || (!name.is_empty()
            && name
                .split(|&b| b == b'/')
                .all(|part| !part.is_empty() && part != b"." && part != b".."))
}

/// The received list in rsync's sorted order (indexes refer to this order), each duplicate
/// name left as an [`Entry::cleared`] place, with hard-link leaders renumbered to match.
///
/// # Errors
/// A name that is not [`is_safe_name`]: the peer is trying to write outside the destination.
pub fn sort_received(entries: Vec<Entry>) -> Result<Vec<Entry>, crate::SessionError> {
    if let Some(bad) = entries.iter().find(|e| !is_safe_name(&e.name)) {
        return Err(protocol::ProtoError::protocol_text(
            "file list",
            &format!(
                "ABORTING due to unsafe pathname from sender: {}",
                String::from_utf8_lossy(&bad.name)
            ),
        )
        .into());
    }
    // A hard-link follower names its leader by its place in the list as sent; after sorting
    // it must name the leader's place in the sorted list.
    // The order is found on indexes, not on the entries themselves: moving whole entries
    // around was most of a large list's sorting time.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&i, &j| match (entries.get(i), entries.get(j)) {
        (Some(a), Some(b)) => mirror::flist::compare(&a.name, a.is_dir(), &b.name, b.is_dir()),
        _ => std::cmp::Ordering::Equal,
    });
    let mut slots: Vec<Option<Entry>> = entries.into_iter().map(Some).collect();
    let mut numbered: Vec<(usize, Entry)> = order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take).map(|e| (i, e)))
        .collect();
    let dropped = duplicates(&numbered);
    let mut sorted_place = vec![None; numbered.iter().map(|(i, _)| i + 1).max().unwrap_or(0)];
    for (place, (sent, _)) in numbered.iter().enumerate() {
        // (A keeper may itself give way to a later directory of the same name.)
        let mut place = place;
        while let Some(&keep) = dropped.get(&place) {
            place = keep;
        }
        if let Some(slot) = sorted_place.get_mut(*sent) {
            *slot = u32::try_from(place).ok();
        }
    }
    for (&drop, &keep) in &dropped {
        let gone = numbered
            .get_mut(drop)
            .map(|(_, e)| std::mem::replace(e, Entry::cleared()));
        if let (Some(gone), Some((_, kept))) = (gone, numbered.get_mut(keep))
            && gone.is_dir()
            && kept.is_dir()
        {
            // Two listings of one directory: it is a top directory, and has its contents
            // in the list, if either says so.
            use protocol::flist::{SAME_RDEV_MAJOR as NO_CONTENT, TOP_DIR};
            kept.flags |= gone.flags & TOP_DIR;
            kept.flags &= gone.flags | !NO_CONTENT;
        }
    }
    let mut entries: Vec<Entry> = numbered
        .into_iter()
        .map(|(_, mut e)| {
            e.hardlink_leader = e
                .hardlink_leader
                .and_then(|l| sorted_place.get(l as usize).copied().flatten());
            e
        })
        .collect();
    // rsync's receiver transfers the last member of each group in list order and links the
    // others to it (`hlink.c`); doing the same names the same files under -v.
    let mut last_of_group: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    for (place, e) in entries.iter().enumerate() {
        let Ok(place) = u32::try_from(place) else {
            continue;
        };
        let group = e.hardlink_leader.unwrap_or(place);
        if e.hardlink_leader.is_some() || e.hardlink_first {
            last_of_group.insert(group, place);
        }
    }
    for (place, e) in entries.iter_mut().enumerate() {
        let Ok(place) = u32::try_from(place) else {
            continue;
        };
        let group = e.hardlink_leader.unwrap_or(place);
        if let Some(&last) = last_of_group.get(&group) {
            e.hardlink_leader = (last != place).then_some(last);
        }
    }
    Ok(entries)
}

/// The duplicates in a sorted list, as (place dropped, place kept): entries that sort
/// equal to the last one kept, as rsync's receiver finds them (`flist.c
/// flist_sort_and_clean`). A file and a directory of one name are not equal (files of a
/// directory sort before its subdirectories); should they ever be, the directory is kept,
/// since it may have contents in the list. Otherwise the first is kept.
fn duplicates(sorted: &[(usize, Entry)]) -> std::collections::HashMap<usize, usize> {
    let mut dropped = std::collections::HashMap::new();
    let mut prev: Option<(usize, &Entry)> = None;
    for (place, (_, e)) in sorted.iter().enumerate() {
        match prev {
            Some((earlier, p))
                if p.name == e.name
                    && mirror::flist::compare(&p.name, p.is_dir(), &e.name, e.is_dir())
                        == std::cmp::Ordering::Equal =>
            {
                if e.is_dir() && !p.is_dir() {
                    dropped.insert(earlier, place);
                    prev = Some((place, e));
                } else {
                    dropped.insert(place, earlier);
                }
            }
            _ => prev = Some((place, e)),
        }
    }
    dropped
}

/// Names for the ids in use, from `/etc/passwd` or `/etc/group` (id lists on the wire let the
/// daemon map owners by name, as rsync does without `--numeric-ids`).
#[must_use]
pub fn id_names(file: &str, ids: impl IntoIterator<Item = u32>) -> Vec<(u32, Vec<u8>)> {
    let ids: std::collections::BTreeSet<u32> = ids.into_iter().collect();
    let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
    for (name, id) in account_ids(file) {
        if ids.contains(&id) && !out.iter().any(|(i, _)| *i == id) {
            out.push((id, name));
        }
    }
    out
}

/// The `name:x:id:…` lines of `/etc/passwd` or `/etc/group`, as (name, id) in file order
/// (unreadable files and malformed lines give nothing).
#[must_use]
pub fn account_ids(file: &str) -> Vec<(Vec<u8>, u32)> {
    let content = std::fs::read(file).unwrap_or_default();
    content
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut fields = line.split(|&b| b == b':');
            let (name, _, id) = (fields.next()?, fields.next()?, fields.next()?);
            let id = std::str::from_utf8(id).ok()?.parse().ok()?;
            Some((name.to_vec(), id))
        })
        .collect()
}

/// The type bits of `st_mode` for a kind.
fn type_bits(kind: fsx::Kind) -> u32 {
    match kind {
        fsx::Kind::File => 0o100_000,
        fsx::Kind::Dir => 0o040_000,
        fsx::Kind::Symlink => 0o120_000,
        fsx::Kind::Fifo => 0o010_000,
        fsx::Kind::Socket => 0o140_000,
        fsx::Kind::CharDev => 0o020_000,
        fsx::Kind::BlockDev => 0o060_000,
    }
}

/// Local ids by name, from `/etc/passwd` or `/etc/group` (the first line of a name counts).
fn local_ids(file: &str) -> std::collections::HashMap<Vec<u8>, u32> {
    let mut out = std::collections::HashMap::new();
    for (name, id) in account_ids(file) {
        out.entry(name).or_insert(id);
    }
    out
}

/// Maps the sender's owners and groups to ours by name, as rsync does without
/// `--numeric-ids` (`uidlist.c match_uid`): an id whose name is known here becomes the local
/// id of that name; one without a name, or with a name unknown here, keeps its number.
pub fn map_ids(
    entries: &mut [Entry],
    users: &protocol::flist::IdList,
    groups: &protocol::flist::IdList,
) {
    let mapping =
        |list: &protocol::flist::IdList, file: &str| -> std::collections::HashMap<u32, u32> {
            if list.is_empty() {
                return std::collections::HashMap::new();
            }
            let here = local_ids(file);
            list.iter()
                .filter_map(|(id, name)| here.get(name).map(|&local| (*id, local)))
                .collect()
        };
    let (uids, gids) = (mapping(users, "/etc/passwd"), mapping(groups, "/etc/group"));
    for e in entries {
        if let Some(u) = e.uid.as_mut()
            && let Some(&local) = uids.get(u)
        {
            *u = local;
        }
        if let Some(g) = e.gid.as_mut()
            && let Some(&local) = gids.get(g)
        {
            *g = local;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_destination_are_unsafe() {
        for ok in [&b"."[..], b"a", b"a/b", b"with space/x", b"..a", b"a..b/c"] {
            assert!(is_safe_name(ok), "{ok:?}");
        }
        for bad in [
            &b""[..],
            b"/etc/passwd",
            b"../x",
            b"a/../../x",
            b"a//b",
            b"a/./b",
            b"a/",
            b"a/..",
        ] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
        let e = |name: &[u8]| Entry {
            name: name.to_vec(),
            mode: 0o100_644,
            ..Entry::default()
        };
        assert!(sort_received(vec![e(b"."), e(b"../escape")]).is_err());
        assert_eq!(sort_received(vec![e(b"b"), e(b"a")]).unwrap()[0].name, b"a");
    }

    #[test]
    fn duplicates_keep_their_places_so_indexes_match_the_senders() {
        let entry = |name: &[u8], mode: u32, size: i64| Entry {
            name: name.to_vec(),
            mode,
            size,
            ..Entry::default()
        };
        // A stock sender given `a` twice (say by --files-from) lists it twice and
        // numbers both.
        let sorted = sort_received(vec![
            entry(b".", 0o040_755, 0),
            entry(b"a", 0o100_644, 1),
            entry(b"a", 0o100_644, 2),
            entry(b"d", 0o100_644, 3),
            entry(b"d", 0o040_755, 0),
            entry(b"z", 0o100_644, 4),
        ])
        .unwrap();
        let live: Vec<_> = sorted
            .iter()
            .filter(|e| !e.is_cleared())
            .map(|e| (e.name.clone(), e.is_dir(), e.size))
            .collect();
        assert_eq!(
            live,
            vec![
                (b".".to_vec(), true, 0),
                (b"a".to_vec(), false, 1),
                (b"d".to_vec(), false, 3),
                (b"z".to_vec(), false, 4),
                (b"d".to_vec(), true, 0),
            ],
            "the first of two files is kept; a file and a directory of one name both stay, \
             files before subdirectories as rsync sorts them"
        );
        assert!(
            sorted[2].is_cleared(),
            "the second `a` keeps its place, cleared"
        );
        assert_eq!(sorted.len(), 6);
    }

    #[test]
    fn owners_map_by_name_and_unknown_names_keep_their_numbers() {
        let mut entries = vec![Entry {
            name: b"f".to_vec(),
            uid: Some(5000),
            gid: Some(6000),
            ..Entry::default()
        }];
        // The sender's 5000 is "root" there: 0 here. 6000 has a name nobody here has.
        map_ids(
            &mut entries,
            &vec![(5000, b"root".to_vec())],
            &vec![(6000, b"no-such-group-here".to_vec())],
        );
        assert_eq!((entries[0].uid, entries[0].gid), (Some(0), Some(6000)));
    }
}
