//! Property: `patch(basis, delta(basis, target)) == target`, over random contents, block sizes,
//! checksum kinds, seeds and edit patterns.

use delta::{
    BlockSizeRule, ChecksumKind, MatchStats, Matcher, Patcher, Signature, SumSizes, Token,
};
use proptest::prelude::*;

fn roundtrip(
    basis: &[u8],
    target: &[u8],
    block: Option<u32>,
    kind: ChecksumKind,
    seed: i32,
) -> MatchStats {
    roundtrip_with(basis, target, block, kind, seed, false)
}

/// `full_sums`: the signature carries whole digests (as local transfers and the redo phase do),
/// which lets the matcher confirm the expected next block by strong sum alone.
fn roundtrip_with(
    basis: &[u8],
    target: &[u8],
    block: Option<u32>,
    kind: ChecksumKind,
    seed: i32,
    full_sums: bool,
) -> MatchStats {
    let csum_length = if full_sums {
        delta::sizes::SUM_LENGTH
    } else {
        delta::sizes::SHORT_SUM_LENGTH
    };
    let rule = BlockSizeRule {
        forced: block,
        csum_length,
        digest_len: kind.digest_len() as u32,
        ..BlockSizeRule::default()
    };
    let sizes = SumSizes::for_file(basis.len() as u64, rule);
    let sig = Signature::generate(&mut &basis[..], sizes, kind, seed, true).unwrap();
    let mut patcher = Patcher::new(basis, sizes, kind, Vec::new());
    let (stats, sum) = Matcher::new(&sig)
        .run(&mut &target[..], &mut patcher)
        .unwrap();
    let out = patcher.finish(sum.as_bytes()).unwrap();
    assert_eq!(out.len(), target.len());
    assert!(out == target, "rebuilt file differs");
    assert_eq!(
        stats.literal_bytes + stats.matched_bytes,
        target.len() as u64
    );
    stats
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Overwrite(usize, Vec<u8>),
}

fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        match e {
            Edit::Insert(at, bytes) => {
                let at = at % (data.len() + 1);
                data.splice(at..at, bytes.iter().copied());
            }
            Edit::Delete(at, n) => {
                if !data.is_empty() {
                    let at = at % data.len();
                    let end = (at + n).min(data.len());
                    data.drain(at..end);
                }
            }
            Edit::Overwrite(at, bytes) => {
                if !data.is_empty() {
                    let at = at % data.len();
                    for (i, b) in bytes.iter().enumerate() {
                        if let Some(slot) = data.get_mut(at + i) {
                            *slot = *b;
                        }
                    }
                }
            }
        }
    }
    data
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..300))
            .prop_map(|(a, b)| Edit::Insert(a, b)),
        (any::<usize>(), 1usize..2000).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..300))
            .prop_map(|(a, b)| Edit::Overwrite(a, b)),
    ]
}

fn kind() -> impl Strategy<Value = ChecksumKind> {
    prop::sample::select(ChecksumKind::PREFERENCE.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn edited_files_rebuild(
        basis in prop::collection::vec(any::<u8>(), 0..20_000),
        edits in prop::collection::vec(edit(), 0..6),
        block in prop::option::of(prop::sample::select(vec![1u32, 7, 8, 64, 700, 1024, 4096])),
        kind in kind(),
        seed in any::<i32>(),
        full_sums in any::<bool>(),
    ) {
        let target = apply(basis.clone(), &edits);
        roundtrip_with(&basis, &target, block, kind, seed, full_sums);
    }

    #[test]
    fn unrelated_files_rebuild(
        basis in prop::collection::vec(any::<u8>(), 0..5_000),
        target in prop::collection::vec(any::<u8>(), 0..5_000),
        block in prop::option::of(1u32..2048),
        kind in kind(),
    ) {
        roundtrip(&basis, &target, block, kind, 0);
    }

    #[test]
    fn repetitive_files_rebuild(
        unit in prop::collection::vec(0u8..3, 1..16),
        reps in 1usize..3000,
        edits in prop::collection::vec(edit(), 0..4),
        block in prop::sample::select(vec![2u32, 8, 16, 700]),
    ) {
        // Low-entropy data makes many blocks share sums: the preference for the next block
        // and the strong-sum check both get exercised.
        let basis: Vec<u8> = unit.iter().copied().cycle().take(unit.len() * reps).collect();
        let target = apply(basis.clone(), &edits);
        roundtrip(&basis, &target, Some(block), ChecksumKind::Xxh128, 1);
        roundtrip_with(&basis, &target, Some(block), ChecksumKind::Xxh3, 1, true);
    }
}

#[test]
fn identical_file_is_all_copies() {
    let data: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let stats = roundtrip(&data, &data, None, ChecksumKind::Xxh128, 99);
    assert_eq!(stats.literal_bytes, 0);
    assert_eq!(stats.copy_tokens, 143); // ceil(100000 / 700)
}

#[test]
fn a_change_in_the_middle_costs_about_its_size() {
    let basis: Vec<u8> = (0..4_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    let mut target = basis.clone();
    for b in &mut target[2_000_000..2_100_000] {
        *b = !*b;
    }
    let stats = roundtrip(&basis, &target, None, ChecksumKind::Xxh128, 5);
    let blen = SumSizes::for_file(basis.len() as u64, BlockSizeRule::default()).block_len as u64;
    assert!(stats.literal_bytes >= 100_000);
    assert!(
        stats.literal_bytes <= 100_000 + 2 * blen,
        "literal {}",
        stats.literal_bytes
    );
}

#[test]
fn literals_never_exceed_chunk_size() {
    let target: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    let sig = Signature::empty(ChecksumKind::Md5, 0, true);
    let mut tokens: Vec<Token<'static>> = Vec::new();
    Matcher::new(&sig)
        .run(&mut &target[..], &mut tokens)
        .unwrap();
    assert!(
        tokens
            .iter()
            .all(|t| matches!(t, Token::Literal(d) if d.len() <= delta::CHUNK_SIZE))
    );
    let total: usize = tokens
        .iter()
        .map(|t| match t {
            Token::Literal(d) => d.len(),
            Token::Copy(_) => 0,
        })
        .sum();
    assert_eq!(total, target.len());
}

#[test]
fn bad_block_index_is_refused() {
    let basis = vec![1u8; 1400];
    let sizes = SumSizes::for_file(1400, BlockSizeRule::default());
    let mut p = Patcher::new(&basis[..], sizes, ChecksumKind::Md5, Vec::new());
    assert!(matches!(
        p.copy_block(2),
        Err(delta::DeltaError::BadBlock { block: 2, count: 2 })
    ));
    assert!(p.copy_block(1).is_ok());
    assert!(matches!(
        p.finish(&[0; 16]),
        Err(delta::DeltaError::ChecksumMismatch { .. })
    ));
}
