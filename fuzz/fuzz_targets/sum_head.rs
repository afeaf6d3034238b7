//! Fuzzes the sum-header reader, `delta::SumSizes::checked` (`read_sum_head`'s bounds, four
//! `wire::get_int`s on the wire), and what a receiver does with a header it accepted: rebuild a
//! file with `delta::Patcher` from an uncompressed token stream (`get_int` tokens: > 0 literal
//! length, < 0 block −n−1, 0 end), as the client's pull loop does.
//!
//! Input: byte 0 picks the checksum kind (which bounds the strong-sum length); then the four
//! header ints; then the token stream. The whole input also serves as the basis file, so block
//! copies both succeed and run off its end. An accepted header must be within rsync's bounds
//! and describe a length that does not overflow; the patcher must refuse blocks outside it.
#![no_main]

use std::io;

use delta::{ChecksumKind, DeltaError, Patcher, SumSizes};
use libfuzzer_sys::fuzz_target;
use protocol::wire::get_int;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, mut rest)) = data.split_first() else {
        return;
    };
    let kind = ChecksumKind::PREFERENCE[usize::from(ctl) % ChecksumKind::PREFERENCE.len()];
    let mut head = [0i32; 4];
    for v in &mut head {
        let Some((x, n)) = get_int(rest) else {
            return;
        };
        *v = x;
        rest = &rest[n..];
    }
    let Ok(sizes) = SumSizes::checked(head[0], head[1], head[2], head[3], kind.digest_len()) else {
        return;
    };
    assert!(sizes.block_len <= delta::sizes::MAX_BLOCK_SIZE);
    assert!(sizes.s2_len as usize <= kind.digest_len());
    assert!(sizes.remainder <= sizes.block_len);
    assert!(sizes.count == 0 || sizes.block_len > 0);
    let len = sizes.file_len();
    if sizes.count > 0 {
        let last = sizes.count - 1;
        assert_eq!(sizes.offset_of(last) + u64::from(sizes.len_of(last)), len);
    }

    let mut patcher = Patcher::new(data, sizes, kind, io::sink());
    while let Some((t, n)) = get_int(rest) {
        rest = &rest[n..];
        match t {
            0 => break,
            t if t > 0 => {
                let Some(literal) = rest.get(..t as usize) else {
                    break;
                };
                rest = &rest[literal.len()..];
                patcher
                    .write_literal(literal)
                    .expect("a sink takes anything");
            }
            t => {
                let block = u64::from(t.unsigned_abs() - 1);
                let before = patcher.written();
                match patcher.copy_block(block) {
                    Ok(()) => {
                        assert!(block < u64::from(sizes.count));
                        assert_eq!(
                            patcher.written() - before,
                            u64::from(sizes.len_of(block as u32))
                        );
                    }
                    Err(DeltaError::BadBlock { .. }) => assert!(block >= u64::from(sizes.count)),
                    Err(DeltaError::Io { .. }) => {
                        // Past the end of the basis.
                        assert!(
                            sizes.offset_of(block as u32) + u64::from(sizes.len_of(block as u32))
                                > data.len() as u64
                        );
                    }
                    Err(e) => panic!("unexpected {e}"),
                }
            }
        }
    }
    let (_, sum) = patcher.into_parts();
    assert_eq!(sum.as_bytes().len(), kind.digest_len());
});
