//! The large-file case: a 1 GiB file with 1 MiB changed in the middle moves little more
//! than 1 MiB of literal data, as `--stats` reports it.

mod common;

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};

use common::{ok, rtsync, slash};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn literal_bytes(stats: &str) -> u64 {
    let line = stats
        .lines()
        .find(|l| l.starts_with("Literal data: "))
        .expect("Literal data line");
    line.trim_start_matches("Literal data: ")
        .trim_end_matches(" bytes")
        .replace(',', "")
        .parse()
        .expect("number")
}

fn same_content(a: &std::path::Path, b: &std::path::Path) -> bool {
    let (mut fa, mut fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    loop {
        let na = fa.read(&mut ba).unwrap();
        let mut nb = 0;
        while nb < na {
            let n = fb.read(&mut bb[nb..na]).unwrap();
            if n == 0 {
                break;
            }
            nb += n;
        }
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return fb.read(&mut bb).unwrap() == 0;
        }
    }
}

#[test]
fn one_mib_changed_in_one_gib_sends_about_one_mib() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir(&src).unwrap();
    let big = src.join("big");
    {
        let mut f = File::create(&big).unwrap();
        for i in 0..(GIB / MIB) {
            f.write_all(&testkit::noise(MIB as usize, i + 1)).unwrap();
        }
    }
    testkit::set_mtime(&big, 1_700_000_000, 0);
    ok(&rtsync(["sync", "-a", &slash(&src), &slash(&dst)]));

    let mut f = fs::OpenOptions::new().write(true).open(&big).unwrap();
    f.seek(SeekFrom::Start(GIB / 2)).unwrap();
    f.write_all(&testkit::noise(MIB as usize, 999_999)).unwrap();
    drop(f);
    testkit::set_mtime(&big, 1_700_000_100, 0);

    let out = ok(&rtsync([
        "sync",
        "-a",
        "--stats",
        &slash(&src),
        &slash(&dst),
    ]));
    let literal = literal_bytes(&out);
    // sqrt(1 GiB) = 32 KiB blocks; the change is block-aligned here, so at most two partial
    // blocks of slack are allowed.
    assert!(
        (MIB..=MIB + 2 * 32 * 1024).contains(&literal),
        "literal {literal}\n{out}"
    );
    assert!(out.contains("Matched data: 1,072,693,248 bytes"), "{out}");
    assert!(same_content(&big, &dst.join("big")));
}
