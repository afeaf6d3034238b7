//! Local transfers send changed files through the delta engine: in-place edits and appends by
//! the same-offset comparison, moved content by rsync's rolling search.

use std::fs;
use std::path::Path;

use filter::FilterList;
use mirror::{Options, Outcome, Reporter, SourceArg};
use testkit::noise;

struct Quiet;
impl Reporter for Quiet {}

fn sync(src: &Path, dst: &Path) -> Outcome {
    let arg = SourceArg::new(format!("{}/", src.display()));
    let out = mirror::run(
        &[arg],
        None,
        dst,
        &Options::archive(),
        &FilterList::new(),
        &mut Quiet,
    )
    .unwrap();
    assert_eq!(out.exit_code(), 0, "{out:?}");
    out
}

fn check(src: &Path, dst: &Path, old: &[u8], new: &[u8]) -> Outcome {
    fs::write(src.join("f"), old).unwrap();
    testkit::set_mtime(&src.join("f"), 1_000_000, 0);
    sync(src, dst);
    fs::write(src.join("f"), new).unwrap();
    testkit::set_mtime(&src.join("f"), 2_000_000, 0);
    let out = sync(src, dst);
    assert!(fs::read(dst.join("f")).unwrap() == new, "content differs");
    out
}

#[test]
fn inserted_bytes_are_found_by_the_rolling_search() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("s"), t.path().join("d"));
    fs::create_dir(&src).unwrap();
    let old = noise(3_000_000, 9);
    let mut new = b"inserted at the front".to_vec();
    new.extend_from_slice(&old);
    let out = check(&src, &dst, &old, &new);
    // Every block moved by 21 bytes; only the insertion and a block's worth around it are literal.
    assert!(out.stats.literal < 10_000, "literal {}", out.stats.literal);
    assert!(out.stats.matched > 2_900_000);
}

#[test]
fn in_place_edits_and_appends_cost_their_size() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("s"), t.path().join("d"));
    fs::create_dir(&src).unwrap();
    let old = noise(4_000_000, 3);
    let mut new = old.clone();
    for b in &mut new[1_000_000..1_050_000] {
        *b ^= 0x55;
    }
    new.extend_from_slice(&noise(30_000, 4));
    let out = check(&src, &dst, &old, &new);
    assert!(
        out.stats.literal >= 80_000 && out.stats.literal < 90_000,
        "literal {}",
        out.stats.literal
    );
}

#[test]
fn deleted_bytes_and_shorter_files() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("s"), t.path().join("d"));
    fs::create_dir(&src).unwrap();
    let old = noise(2_000_000, 5);
    let mut new = old[..500_000].to_vec();
    new.extend_from_slice(&old[500_100..1_500_000]);
    let out = check(&src, &dst, &old, &new);
    assert!(out.stats.literal < 10_000, "literal {}", out.stats.literal);
}
