//! The generator's side of the algorithm: per-block sums over a basis file
//! (`generator.c generate_and_send_sums`).

use std::io::Read;

use crate::sizes::SumSizes;
use crate::strong::{ChecksumKind, StrongSum, block_sum};
use crate::{DeltaError, rolling::sum1};

/// The sums of one basis block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSum {
    /// Rolling checksum of the block.
    pub sum1: u32,
    /// Strong sum, truncated to the header's `s2_len`.
    pub strong: StrongSum,
}

/// Everything the sender needs to find basis blocks in the new file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The sum header.
    pub sizes: SumSizes,
    /// Strong sum algorithm.
    pub kind: ChecksumKind,
    /// Session checksum seed.
    pub seed: i32,
    /// `CF_CHKSUM_SEED_FIX` in effect.
    pub seed_fix: bool,
    /// One entry per block, in order.
    pub blocks: Vec<BlockSum>,
}

impl Signature {
    /// Computes the signature of `basis`, which must hold exactly the bytes `sizes` describes.
    ///
    /// # Errors
    /// [`DeltaError::Io`] if reading fails or the basis is shorter than the sizes say.
    pub fn generate(
        basis: &mut impl Read,
        sizes: SumSizes,
        kind: ChecksumKind,
        seed: i32,
        seed_fix: bool,
    ) -> Result<Self, DeltaError> {
        let mut blocks = Vec::with_capacity(sizes.count as usize);
        let mut buf = vec![0u8; sizes.block_len as usize];
        for i in 0..sizes.count {
            let len = sizes.len_of(i) as usize;
            let block = buf
                .get_mut(..len)
                .ok_or(DeltaError::BadSumHeader("block length"))?;
            basis.read_exact(block).map_err(|source| DeltaError::Io {
                about: "reading basis file",
                source,
            })?;
            blocks.extend(Self::block_sums(block, i, sizes, kind, seed, seed_fix));
        }
        Ok(Signature {
            sizes,
            kind,
            seed,
            seed_fix,
            blocks,
        })
    }

    /// Assembles a signature from block sums computed elsewhere (for example in parallel with
    /// [`Signature::block_sums`]).
    #[must_use]
    pub fn from_blocks(
        sizes: SumSizes,
        kind: ChecksumKind,
        seed: i32,
        seed_fix: bool,
        blocks: Vec<BlockSum>,
    ) -> Self {
        Signature {
            sizes,
            kind,
            seed,
            seed_fix,
            blocks,
        }
    }

    /// The sums of the consecutive blocks that `data` holds, the first of them being block
    /// `first`. `data` must end on a block boundary or at the end of the basis.
    #[must_use]
    pub fn block_sums(
        data: &[u8],
        first: u32,
        sizes: SumSizes,
        kind: ChecksumKind,
        seed: i32,
        seed_fix: bool,
    ) -> Vec<BlockSum> {
        let mut out = Vec::new();
        let mut rest = data;
        let mut i = first;
        while !rest.is_empty() && i < sizes.count {
            let len = (sizes.len_of(i) as usize).min(rest.len());
            let (block, tail) = rest.split_at(len);
            out.push(BlockSum {
                sum1: sum1(block),
                strong: block_sum(kind, seed, seed_fix, block).truncated(sizes.s2_len as usize),
            });
            rest = tail;
            i += 1;
        }
        out
    }

    /// An empty signature: no basis, so the whole file goes as literals.
    #[must_use]
    pub fn empty(kind: ChecksumKind, seed: i32, seed_fix: bool) -> Self {
        Signature {
            sizes: SumSizes::default(),
            kind,
            seed,
            seed_fix,
            blocks: Vec::new(),
        }
    }

    /// Size in bytes of this signature on the wire: the 16-byte header plus, per block, the
    /// 4-byte `sum1` and `s2_len` strong bytes.
    #[must_use]
    pub fn wire_len(&self) -> u64 {
        16 + u64::from(self.sizes.count) * (4 + u64::from(self.sizes.s2_len))
    }
}
