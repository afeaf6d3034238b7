//! The sender's side of the algorithm: find basis blocks inside the new file and describe the
//! new file as literal bytes and block copies (`match.c match_sums / hash_search`).
//!
//! The window slides one byte at a time with the rolling checksum; a `sum1` hit is confirmed with
//! the strong sum (computed at most once per position). When several blocks share a checksum,
//! the block right after the previous match is preferred, which keeps copies sequential as rsync
//! does. At the end of the file the window shrinks so that a short last block can still match.
//! Literal runs are flushed in pieces of at most [`CHUNK_SIZE`](crate::CHUNK_SIZE).

use std::io::{self, Read};

use crate::rolling::Rolling;
use crate::signature::Signature;
use crate::strong::{FileHasher, StrongSum, block_sum};
use crate::{CHUNK_SIZE, DeltaError};

/// One piece of the description of a new file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token<'a> {
    /// Bytes to write as they are.
    Literal(&'a [u8]),
    /// Copy basis block `n`.
    Copy(u32),
}

/// Receives the matcher's tokens: a wire encoder, a patcher, a recorder or a counter.
pub trait DeltaSink {
    /// Bytes that must be sent as they are (at most [`CHUNK_SIZE`](crate::CHUNK_SIZE) per call).
    ///
    /// # Errors
    /// Whatever the sink's output reports.
    fn literal(&mut self, data: &[u8]) -> io::Result<()>;
    /// Basis block `block` is present in the new file at this point.
    ///
    /// # Errors
    /// Whatever the sink's output reports.
    fn copy(&mut self, block: u32) -> io::Result<()>;
}

impl DeltaSink for Vec<Token<'static>> {
    fn literal(&mut self, data: &[u8]) -> io::Result<()> {
        self.push(Token::Literal(Box::leak(data.to_vec().into_boxed_slice())));
        Ok(())
    }
    fn copy(&mut self, block: u32) -> io::Result<()> {
        self.push(Token::Copy(block));
        Ok(())
    }
}

/// Totals of one matcher run, as rsync's `--stats` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MatchStats {
    /// Bytes sent as literals.
    pub literal_bytes: u64,
    /// Bytes covered by block copies.
    pub matched_bytes: u64,
    /// Number of literal tokens.
    pub literal_tokens: u64,
    /// Number of copy tokens.
    pub copy_tokens: u64,
}

/// Chained hash index from `sum1` to block numbers.
struct BlockIndex {
    mask: u32,
    heads: Vec<u32>,
    next: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl BlockIndex {
    fn new(sig: &Signature) -> Self {
        let buckets = (sig.blocks.len() * 2).next_power_of_two().max(16);
        let mut heads = vec![NONE; buckets];
        let mut next = vec![NONE; sig.blocks.len()];
        let mask = u32::try_from(buckets - 1).unwrap_or(u32::MAX);
        // Insert in reverse so that chains list lower block numbers first.
        for (i, b) in sig.blocks.iter().enumerate().rev() {
            let slot = (mix(b.sum1) & mask) as usize;
            if let (Some(head), Some(n)) = (heads.get_mut(slot), next.get_mut(i)) {
                *n = *head;
                *head = u32::try_from(i).unwrap_or(NONE);
            }
        }
        BlockIndex { mask, heads, next }
    }

    fn first(&self, sum1: u32) -> u32 {
        self.heads
            .get((mix(sum1) & self.mask) as usize)
            .copied()
            .unwrap_or(NONE)
    }

    fn after(&self, i: u32) -> u32 {
        self.next.get(i as usize).copied().unwrap_or(NONE)
    }
}

fn mix(sum1: u32) -> u32 {
    // sum1's low half is a plain byte sum; spread it so nearby sums use different buckets.
    sum1.wrapping_mul(0x9E37_79B1).rotate_right(16)
}

/// Searches a new file for the blocks of one basis signature.
pub struct Matcher<'s> {
    sig: &'s Signature,
    index: BlockIndex,
}

impl<'s> Matcher<'s> {
    /// Indexes a signature for matching.
    #[must_use]
    pub fn new(sig: &'s Signature) -> Self {
        Matcher {
            sig,
            index: BlockIndex::new(sig),
        }
    }

    /// Reads the whole new file from `source` and pushes its description into `sink`.
    /// Returns the totals and the whole-file sum of `source` (the sum the receiver must verify).
    ///
    /// # Errors
    /// [`DeltaError::Io`] when reading `source` or writing to `sink` fails.
    pub fn run(
        &self,
        source: &mut impl Read,
        sink: &mut impl DeltaSink,
    ) -> Result<(MatchStats, StrongSum), DeltaError> {
        self.run_with(source, sink, &mut Vec::new())
    }

    /// [`Matcher::run`] reading through `buf`, whose contents are discarded and whose capacity
    /// is kept: a sender of many files reuses one buffer instead of a fresh allocation (and
    /// its page faults) per file.
    ///
    /// # Errors
    /// As [`Matcher::run`].
    pub fn run_with(
        &self,
        source: &mut impl Read,
        sink: &mut impl DeltaSink,
        buf: &mut Vec<u8>,
    ) -> Result<(MatchStats, StrongSum), DeltaError> {
        buf.clear();
        let mut run = Run {
            matcher: self,
            stats: MatchStats::default(),
            hasher: FileHasher::new(self.sig.kind),
            full_strong_sums: self.sig.sizes.s2_len as usize >= self.sig.kind.digest_len(),
        };
        run.search(source, sink, buf)?;
        Ok((run.stats, run.hasher.finish()))
    }
}

struct Run<'m, 's> {
    matcher: &'m Matcher<'s>,
    stats: MatchStats,
    hasher: FileHasher,
    /// The signature carries whole digests (not truncated to `s2length`).
    full_strong_sums: bool,
}

fn io(about: &'static str) -> impl FnOnce(io::Error) -> DeltaError {
    move |source| DeltaError::Io { about, source }
}

/// Reads until `buf` holds `want` bytes past `from` or the source ends; returns whether it ended.
fn fill(source: &mut impl Read, buf: &mut Vec<u8>, want: usize) -> Result<bool, DeltaError> {
    while buf.len() < want {
        let old = buf.len();
        let grow = (want - old).max(CHUNK_SIZE * 4);
        // `read_to_end` reads into spare capacity: nothing is zeroed first (a 2 KiB file
        // used to cost a 128 KiB memset). Reserving it all first makes that one read of the
        // whole piece, not a ladder of small reads and reallocations.
        buf.reserve(grow);
        let n = match source.by_ref().take(grow as u64).read_to_end(buf) {
            Ok(n) => n,
            Err(e) => {
                buf.truncate(old);
                return Err(io("reading new file")(e));
            }
        };
        if n < grow {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Run<'_, '_> {
    fn flush_literal(&mut self, data: &[u8], sink: &mut impl DeltaSink) -> Result<(), DeltaError> {
        for piece in data.chunks(CHUNK_SIZE) {
            sink.literal(piece).map_err(io("writing delta"))?;
            self.stats.literal_bytes += piece.len() as u64;
            self.stats.literal_tokens += 1;
        }
        Ok(())
    }

    /// Whether `window` is block `want`, judged by its full-length strong sum.
    fn expected(&self, window: &[u8], want: u32) -> Option<u32> {
        let sig = self.matcher.sig;
        let block = sig.blocks.get(want as usize)?;
        if sig.sizes.len_of(want) as usize != window.len() {
            return None;
        }
        let ours = block_sum(sig.kind, sig.seed, sig.seed_fix, window);
        (ours.truncated(sig.sizes.s2_len as usize) == block.strong).then_some(want)
    }

    /// Looks for a block whose sums equal `window`, preferring block `want`: the one right
    /// after the previous match. `want` is tried first, so a run of identical blocks (a file of
    /// zeros, whose blocks all share one chain) costs one probe per block, not a chain walk.
    fn find(&self, window: &[u8], sum1: u32, want: u32) -> Option<u32> {
        let sig = self.matcher.sig;
        let s2 = sig.sizes.s2_len as usize;
        let mut strong: Option<StrongSum> = None;
        let mut matches = |i: u32| {
            sig.blocks.get(i as usize).is_some_and(|block| {
                block.sum1 == sum1
                    && sig.sizes.len_of(i) as usize == window.len()
                    && *strong.get_or_insert_with(|| {
                        block_sum(sig.kind, sig.seed, sig.seed_fix, window).truncated(s2)
                    }) == block.strong
            })
        };
        if matches(want) {
            return Some(want);
        }
        let mut i = self.matcher.index.first(sum1);
        while i != NONE {
            if matches(i) {
                return Some(i);
            }
            i = self.matcher.index.after(i);
        }
        None
    }

    fn search(
        &mut self,
        source: &mut impl Read,
        sink: &mut impl DeltaSink,
        buf: &mut Vec<u8>,
    ) -> Result<(), DeltaError> {
        let sig = self.matcher.sig;
        let blen = sig.sizes.block_len as usize;
        let mut eof = false;
        if sig.sizes.count == 0 || blen == 0 {
            // No basis: the whole file is literal.
            loop {
                buf.clear();
                eof = fill(source, buf, CHUNK_SIZE * 8)?;
                self.hasher.update(buf);
                self.flush_literal(buf, sink)?;
                if eof {
                    return Ok(());
                }
            }
        }
        // `lit` is where unsent literal bytes start, `pos` where the window starts; both index
        // `buf`, whose front is discarded once sent.
        let mut lit = 0usize;
        let mut pos = 0usize;
        let mut hashed = 0usize;
        let mut want = NONE;
        let mut rolling: Option<Rolling> = None;
        loop {
            if !eof && buf.len() < pos + blen + 1 {
                // Compact before growing: keep only what is not sent yet.
                if lit > 0 {
                    self.hasher.update(buf.get(hashed..lit).unwrap_or_default());
                    buf.drain(..lit);
                    pos -= lit;
                    hashed = 0;
                    lit = 0;
                }
                eof = fill(source, buf, pos + blen + CHUNK_SIZE * 4)?;
            }
            let avail = buf.len() - pos;
            if avail == 0 {
                break;
            }
            let k = avail.min(blen);
            let window = buf.get(pos..pos + k).unwrap_or_default();
            // Right after a match the next block is the likely one. With full-length strong sums
            // its strong sum alone is proof enough, and the rolling sum need not be computed.
            let expected = (rolling.is_none() && self.full_strong_sums)
                .then(|| self.expected(window, want))
                .flatten();
            let found = match expected {
                Some(block) => Some(block),
                None => {
                    let r = match rolling {
                        Some(r) if r.len() as usize == k => r,
                        _ => Rolling::new(window),
                    };
                    rolling = Some(r);
                    self.find(window, r.digest(), want)
                }
            };
            if let Some(block) = found {
                self.flush_literal(buf.get(lit..pos).unwrap_or_default(), sink)?;
                sink.copy(block).map_err(io("writing delta"))?;
                self.stats.copy_tokens += 1;
                self.stats.matched_bytes += k as u64;
                pos += k;
                lit = pos;
                want = block + 1;
                rolling = None;
                continue;
            }
            // No match: slide one byte.
            let out = window.first().copied().unwrap_or(0);
            let Some(mut next) = rolling else { break };
            match buf.get(pos + k) {
                Some(&inn) if k == blen => next.roll(out, inn),
                _ => next.shrink(out),
            }
            rolling = Some(next);
            pos += 1;
            if pos - lit >= CHUNK_SIZE {
                self.flush_literal(buf.get(lit..pos).unwrap_or_default(), sink)?;
                lit = pos;
            }
        }
        self.flush_literal(buf.get(lit..pos).unwrap_or_default(), sink)?;
        self.hasher.update(buf.get(hashed..).unwrap_or_default());
        Ok(())
    }
}
