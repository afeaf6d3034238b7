//! Fuzzes `protocol::flist::FlistDecoder::decode` under every combination of `FlistOptions`,
//! followed, as in the client, by the uid and gid name lists (`decode_id_list`) after the end
//! of the list.
//!
//! Input: byte 0 holds the option flags (bit 0 varint flags, 1 `-o`, 2 `-g`, 3 `-l`,
//! 4 `--devices`, 5 `--specials`, 6 `-H`, 7 `-c`); byte 1 the protocol (29–32, low 2 bits) and
//! the checksum length (0–63, high 6 bits); byte 2 bit 0 `CF_ID0_NAMES`, bit 1 `--numeric-ids`
//! (no name lists), bits 2–7 the size of the pieces the stream arrives in. The rest is the
//! stream. It is decoded all at once and in pieces, which must give the same items; every
//! entry must respect the bounds the decoder promises.
#![no_main]

use std::cell::Cell;

use libfuzzer_sys::fuzz_target;
use protocol::ProtoError;
use protocol::flist::{FlistDecoder, FlistOptions, IdList, Item, decode_id_list};
use rtsync_fuzz::{Limits, feed};

#[derive(Debug, PartialEq, Eq)]
enum Out {
    Item(Item),
    Ids(IdList),
}

fuzz_target!(|data: &[u8]| {
    let [flags, proto, extra, stream @ ..] = data else {
        return;
    };
    let bit = |n: u8| flags & (1 << n) != 0;
    let opts = FlistOptions {
        protocol: 29 + u32::from(proto & 3),
        varint_flags: bit(0),
        uid: bit(1),
        gid: bit(2),
        links: bit(3),
        devices: bit(4),
        specials: bit(5),
        hard_links: bit(6),
        checksum_len: bit(7).then_some(usize::from(proto >> 2)),
    };
    let id0 = extra & 1 != 0;
    let numeric = extra & 2 != 0;
    let name_lists = [opts.uid, opts.gid]
        .into_iter()
        .filter(|&wanted| wanted && !numeric)
        .count();
    let limits = Limits {
        max_items: usize::MAX,
        max_stall: 0,
    };
    let run = |chunk: usize| {
        let mut decoder = FlistDecoder::new(opts);
        // Name lists still to read once the file list has ended.
        let lists_left: Cell<Option<usize>> = Cell::new(None);
        feed(
            stream,
            chunk,
            limits,
            |out| match out {
                Out::Item(Item::End { .. }) => name_lists == 0,
                Out::Item(Item::Entry(_)) => false,
                Out::Ids(_) => lists_left.get() == Some(0),
            },
            |b| -> Result<Option<(Out, usize)>, ProtoError> {
                match lists_left.get() {
                    None => {
                        let r = decoder.decode(b)?;
                        if let Some((Item::End { .. }, _)) = r {
                            lists_left.set(Some(name_lists));
                        }
                        Ok(r.map(|(item, n)| (Out::Item(item), n)))
                    }
                    Some(left) => {
                        let r = decode_id_list(b, id0)?;
                        if r.is_some() {
                            lists_left.set(Some(left - 1));
                        }
                        Ok(r.map(|(ids, n)| (Out::Ids(ids), n)))
                    }
                }
            },
        )
    };
    let whole = run(stream.len());
    for out in &whole.items {
        match out {
            Out::Item(Item::Entry(e)) => check(&opts, e),
            Out::Item(Item::End { io_error }) => assert!(opts.varint_flags || *io_error == 0),
            Out::Ids(ids) => check_ids(ids, id0),
        }
    }
    let pieces = run(usize::from(extra >> 2) + 1);
    assert_eq!(whole, pieces);
});

fn check(opts: &FlistOptions, e: &protocol::flist::Entry) {
    assert!(
        !e.name.is_empty() && e.name.len() <= 4096,
        "name of {} bytes",
        e.name.len()
    );
    assert!(!e.name.contains(&0));
    assert!(e.size >= 0);
    assert!(e.mtime_nsec < 1_000_000_000);
    assert!(opts.uid || e.uid.is_none());
    assert!(opts.gid || e.gid.is_none());
    assert!(e.user_name.as_ref().is_none_or(|n| n.len() <= 255));
    assert!(e.group_name.as_ref().is_none_or(|n| n.len() <= 255));
    if let Some(target) = &e.link_target {
        assert!(opts.links && e.is_symlink());
        assert!((1..=4096).contains(&target.len()));
    }
    if let Some(sum) = &e.checksum {
        assert_eq!(Some(sum.len()), opts.checksum_len);
    }
    if e.hardlink_leader.is_some() {
        assert!(opts.hard_links && !e.hardlink_first);
    }
}

fn check_ids(ids: &IdList, id0: bool) {
    for (i, (id, name)) in ids.iter().enumerate() {
        assert!(name.len() <= 255);
        // Only the terminator has id 0, and only with CF_ID0_NAMES.
        assert_eq!(*id == 0, id0 && i + 1 == ids.len());
    }
}
