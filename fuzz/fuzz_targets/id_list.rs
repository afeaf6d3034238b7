//! Fuzzes `protocol::flist::decode_id_list`, the uid/gid name lists sent after a file list.
//!
//! Input: byte 0 bit 0 is `CF_ID0_NAMES`; the rest is read as back-to-back lists, as the client
//! reads the uid list and then the gid list. A list must use exactly the bytes it claims
//! (fewer give `None`), hold id 0 only as its `CF_ID0_NAMES` terminator, and re-encode with
//! `encode_id_list` to bytes that decode to the same list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::flist::{decode_id_list, encode_id_list};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, mut rest)) = data.split_first() else {
        return;
    };
    let id0 = ctl & 1 != 0;
    while let Ok(Some((ids, n))) = decode_id_list(rest, id0) {
        assert!(
            n > 0 && n <= rest.len(),
            "list used {n} of {} bytes",
            rest.len()
        );
        assert_eq!(decode_id_list(&rest[..n], id0), Ok(Some((ids.clone(), n))));
        assert_eq!(decode_id_list(&rest[..n - 1], id0), Ok(None));
        for (i, (id, name)) in ids.iter().enumerate() {
            assert!(name.len() <= 255);
            assert_eq!(*id == 0, id0 && i + 1 == ids.len());
        }
        let (body, id0_name) = match ids.split_last() {
            Some(((0, name), body)) => (body, name.as_slice()),
            _ => (ids.as_slice(), &[][..]),
        };
        let mut out = Vec::new();
        encode_id_list(&mut out, body, id0, id0_name);
        assert_eq!(
            decode_id_list(&out, id0),
            Ok(Some((ids.clone(), out.len())))
        );
        rest = &rest[n..];
    }
});
