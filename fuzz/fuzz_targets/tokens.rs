//! Fuzzes `protocol::token::TokenDecoder::decode`, the zstd-compressed token stream of `-z`
//! transfers (flag bytes, `DEFLATED_DATA` records feeding one session-long zstd stream, and
//! relative/absolute block runs). Uncompressed tokens have no decoder of their own: the client
//! reads them with `wire::get_int` (see `wire_primitives` and `sum_head`).
//!
//! Input: byte 0 sets the size of the pieces the stream arrives in; the rest is the stream,
//! decoded as files one after another (`start_file` after each end token), all at once and in
//! pieces, which must give the same tokens. Only the later literal pieces of a record and the
//! later copies of a run may consume no bytes; a literal piece is at most `MAX_LITERAL_PIECE`
//! bytes; a run hands out consecutive blocks (one longer than `RUN_DRAIN` ends the input).
#![no_main]

use std::cell::Cell;

use libfuzzer_sys::fuzz_target;
use protocol::ProtoError;
use protocol::token::{MAX_DATA_COUNT, MAX_LITERAL_PIECE, Token, TokenDecoder};
use rtsync_fuzz::{Limits, feed};

/// Stop after this many literal bytes or block copies: hostile records expand 32768-fold and a
/// 3-byte run record means up to 65536 copies, which would eat the time budget.
const LITERAL_BUDGET: usize = 4 << 20;
const COPY_BUDGET: usize = 1 << 14;
/// Copies taken from one run before the input is given up (the rest is more of the same).
const RUN_DRAIN: u32 = 4096;

#[derive(Debug, PartialEq, Eq)]
enum Out {
    Literal(Vec<u8>),
    /// A block copy and the copies of the following blocks that came with it; `cut` when the
    /// run went on past `RUN_DRAIN`.
    Copies {
        first: u32,
        count: u32,
        cut: bool,
    },
    End,
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_items: usize::MAX,
        // Every literal piece but the first of a record: at most one per 4 compressed bytes.
        max_stall: MAX_DATA_COUNT,
    };
    let run = |chunk: usize| {
        let mut decoder = TokenDecoder::new().expect("zstd starts");
        decoder.start_file();
        let literal_bytes = Cell::new(0usize);
        let copies = Cell::new(0usize);
        feed(
            stream,
            chunk,
            limits,
            |out| {
                matches!(out, Out::Copies { cut: true, .. })
                    || literal_bytes.get() > LITERAL_BUDGET
                    || copies.get() > COPY_BUDGET
            },
            |b| -> Result<Option<(Out, usize)>, ProtoError> {
                let Some((token, used)) = decoder.decode(b)? else {
                    return Ok(None);
                };
                let out = match token {
                    Token::Literal(piece) => {
                        assert!(piece.len() <= MAX_LITERAL_PIECE, "{} bytes", piece.len());
                        literal_bytes.set(literal_bytes.get() + piece.len());
                        Out::Literal(piece)
                    }
                    Token::End => {
                        assert_eq!(used, 1);
                        decoder.start_file();
                        Out::End
                    }
                    Token::Copy(first) => {
                        assert!(used > 0, "a run's first copy consumed nothing");
                        // The rest of the run comes without input.
                        let mut count = 1u32;
                        let mut last = first;
                        let mut cut = false;
                        while let Some((t, n)) = decoder.decode(&[])? {
                            assert_eq!(n, 0);
                            let Token::Copy(block) = t else {
                                panic!("{t:?} in the middle of a run");
                            };
                            assert_eq!(block, last.saturating_add(1));
                            last = block;
                            count += 1;
                            if count == RUN_DRAIN {
                                cut = true;
                                break;
                            }
                        }
                        copies.set(copies.get() + count as usize);
                        Out::Copies { first, count, cut }
                    }
                };
                Ok(Some((out, used)))
            },
        )
    };
    let whole = run(stream.len());
    let pieces = run(usize::from(ctl) + 1);
    assert_eq!(whole, pieces);
});
