//! `rtsync sync` against stock `rsync` on one host: the same command on the same source must
//! produce identical trees (type, size, mode, nanosecond mtime, owner, link target, content,
//! hard-link structure).

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use common::{have_rsync, ok, rsync, rtsync, slash};
use testkit::{assert_same_tree, assert_same_tree_below, mutate, tricky_tree};

/// A temporary directory holding `src` (a tricky tree) and the paths of the two destinations,
/// `a` for rsync and `b` for rtsync.
fn tricky_setup() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let (src, a, b) = (t.path().join("src"), t.path().join("a"), t.path().join("b"));
    fs::create_dir(&src).unwrap();
    tricky_tree(&src);
    (t, src, a, b)
}

/// Runs the same arguments through both tools into `a` (rsync) and `b` (rtsync), then compares.
fn both(args: &[&str], src: &str, a: &Path, b: &Path) {
    let mut ra: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    ra.push(src.to_string());
    let mut rb = ra.clone();
    ra.push(slash(a));
    rb.push(slash(b));
    ok(&rsync(&ra));
    ok(&rtsync(std::iter::once("sync".to_string()).chain(rb)));
    // The destination root carries the source's attributes only when the source's contents
    // (`SRC/`) are sent; otherwise its times are the times of its creation.
    let root_sent = src.ends_with('/')
        && !args
            .iter()
            .any(|a| a.starts_with("--files-from") || a.contains('R'));
    assert_same_tree_below(a, b, !root_sent);
}

/// [`both`] for `--files-from` with `--delete-missing-args`, which Debian's rsync
/// 3.2.7-1+deb12u5 (as 3.4.1 to 3.4.3) cannot run: its receiver refuses the mode-0 entries
/// ("invalid file mode 00", exit 2; RsyncProject/rsync#910, fixed in 3.4.4). Stock rsync runs
/// without the option (exit 23 for the missing names) and they are deleted by hand as rsync
/// deletes them: a non-empty directory only with `--force`.
fn both_with_missing_args(args: &[&str], list: &Path, src: &Path, a: &Path, b: &Path) {
    let force = args.contains(&"--force");
    let files_from = format!("--files-from={}", list.display());
    let stock: Vec<String> = args
        .iter()
        .map(|s| s.to_string())
        .chain([files_from.clone(), slash(src), slash(a)])
        .collect();
    let out = rsync(&stock);
    assert_eq!(
        out.status.code(),
        Some(23),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in fs::read(list)
        .unwrap()
        .split(|&c| c == b'\n')
        .filter(|n| !n.is_empty())
    {
        let name = std::ffi::OsStr::from_bytes(name);
        if fs::symlink_metadata(src.join(name)).is_ok() {
            continue;
        }
        let there = a.join(name);
        match fs::symlink_metadata(&there) {
            Ok(m) if m.is_dir() && force => fs::remove_dir_all(&there).unwrap(),
            Ok(m) if m.is_dir() => {
                let _ = fs::remove_dir(&there);
            }
            Ok(_) => fs::remove_file(&there).unwrap(),
            Err(_) => {}
        }
    }
    let ours: Vec<String> = ["sync".to_string(), "--delete-missing-args".into()]
        .into_iter()
        .chain(args.iter().map(|s| s.to_string()))
        .chain([files_from, slash(src), slash(b)])
        .collect();
    ok(&rtsync(ours));
    assert_same_tree_below(a, b, true);
}

#[test]
fn archive_delete_matches_rsync_through_edits() {
    if !have_rsync() {
        return;
    }
    let (_t, src, a, b) = tricky_setup();
    both(&["-a", "--delete"], &slash(&src), &a, &b);
    mutate(&src);
    both(&["-a", "--delete"], &slash(&src), &a, &b);
    // A third run changes nothing and says so.
    let out = ok(&rtsync([
        "sync",
        "-ai",
        "--delete",
        &slash(&src),
        &slash(&b),
    ]));
    assert_eq!(out, "", "a no-change run itemized something");
    assert_same_tree(&a, &b);
}

#[test]
fn hard_links_match_rsync() {
    if !have_rsync() {
        return;
    }
    let (_t, src, a, b) = tricky_setup();
    both(&["-aH", "--delete"], &slash(&src), &a, &b);
    // The destination keeps the source's link structure.
    assert_same_tree(&src, &b);
    mutate(&src);
    both(&["-aH", "--delete"], &slash(&src), &a, &b);
}

#[test]
fn without_trailing_slash_the_directory_itself_is_copied() {
    if !have_rsync() {
        return;
    }
    let (_t, src, a, b) = tricky_setup();
    both(&["-a"], src.to_str().unwrap(), &a, &b);
    assert!(b.join("src/big.bin").exists());
}

#[test]
fn filter_rules_select_what_rsync_selects() {
    if !have_rsync() {
        return;
    }
    let rule_sets: &[&[&str]] = &[
        &["--exclude=*.bin", "--exclude=/a/b/"],
        &["--include=*/", "--include=*.txt", "--exclude=*"],
        &["--exclude=a/b/**", "--exclude=sticky/***"],
        &["-f", "- with space", "-f", "+ /a/", "-f", "- /*"],
        &["--exclude=?mpty", "--exclude=[rs]*"],
        &["--exclude=- hl1", "--include=+ big.bin", "--exclude=*.bin"],
        &["--exclude=dir with space/"],
    ];
    for rules in rule_sets {
        let (_t, src, a, b) = tricky_setup();
        let mut args = vec!["-a", "--delete"];
        args.extend_from_slice(rules);
        both(&args, &slash(&src), &a, &b);
    }
}

#[test]
fn delete_variants_and_protection_match_rsync() {
    if !have_rsync() {
        return;
    }
    let variants: &[&[&str]] = &[
        &["--delete-before"],
        &["--delete-during"],
        &["--delete-after"],
        &["--delete", "--exclude=*.keep"],
        &["--delete", "--exclude=*.keep", "--delete-excluded"],
        &[
            "--delete",
            "-f",
            "P *.keep",
            "--exclude=*.keep",
            "--delete-excluded",
        ],
        &["--delete", "--exclude=extra-dir/"],
    ];
    for rules in variants {
        let (_t, src, a, b) = tricky_setup();
        for dest in [&a, &b] {
            fs::create_dir_all(dest.join("a/extra-dir/deep")).unwrap();
            fs::write(dest.join("a/extra-dir/deep/f"), b"x").unwrap();
            fs::write(dest.join("stale"), b"x").unwrap();
            fs::write(dest.join("a/old.keep"), b"x").unwrap();
            fs::write(dest.join("big.bin"), b"a file in the way").unwrap();
            // Entries the transfer keeps must not differ between the two destinations.
            for kept in [
                "a/extra-dir/deep/f",
                "a/extra-dir/deep",
                "a/extra-dir",
                "stale",
                "a/old.keep",
            ] {
                testkit::set_mtime(&dest.join(kept), 1_500_000_000, 0);
            }
        }
        let mut args = vec!["-a"];
        args.extend_from_slice(rules);
        both(&args, &slash(&src), &a, &b);
    }
}

#[test]
fn relative_files_from_and_missing_args_match_rsync() {
    if !have_rsync() {
        return;
    }
    let (t, src, a, b) = tricky_setup();
    // -R keeps the path below the /./ marker and creates the implied directories.
    let marked = format!("{}/./a/b/file", src.display());
    both(&["-aR"], &marked, &a, &b);
    // --files-from with --delete-missing-args: listed paths are created, updated or deleted.
    for dest in [&a, &b] {
        fs::create_dir_all(dest.join("gone-dir")).unwrap();
        fs::write(dest.join("gone-dir/x"), b"x").unwrap();
        fs::write(dest.join("gone-file"), b"x").unwrap();
        for kept in ["gone-dir/x", "gone-dir", "gone-file"] {
            testkit::set_mtime(&dest.join(kept), 1_500_000_000, 0);
        }
    }
    let list = t.path().join("list");
    fs::write(&list, "a/text.txt\nsticky\ngone-file\ngone-dir\nrun.sh\n").unwrap();
    let files_from = format!("--files-from={}", list.display());
    both_with_missing_args(&["-a"], &list, &src, &a, &b);
    assert!(!b.join("gone-file").exists());
    // Without --force or --delete a non-empty directory stays, as with rsync; with it, it goes.
    assert!(b.join("gone-dir/x").exists());
    both_with_missing_args(&["-a", "--force"], &list, &src, &a, &b);
    assert!(!b.join("gone-dir").exists());
    // NUL-separated lists.
    fs::write(&list, "with space\0new\nline\0").unwrap();
    both(&["-a", &files_from, "--from0"], &slash(&src), &a, &b);
    assert!(b.join("new\nline").exists());
}

#[test]
fn single_file_to_a_new_name_and_dry_run() {
    if !have_rsync() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    tricky_tree(&src);
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    let file = src.join("a/text.txt");
    ok(&rsync([
        "-a",
        file.to_str().unwrap(),
        a.join("renamed.txt").to_str().unwrap(),
    ]));
    ok(&rtsync([
        "sync",
        "-a",
        file.to_str().unwrap(),
        b.join("renamed.txt").to_str().unwrap(),
    ]));
    assert_same_tree_below(&a, &b, true);
    // A dry run reports but changes nothing.
    let out = ok(&rtsync([
        "sync",
        "-ani",
        "--delete",
        &slash(&src),
        &slash(&b),
    ]));
    assert!(out.contains(">f+++++++++ big.bin"), "{out}");
    assert!(out.contains("*deleting   renamed.txt"), "{out}");
    assert_same_tree_below(&a, &b, true);
}

/// The destination argument is read as rsync reads it once the list is known (the rule the
/// daemon and the pull share): one entry is written as the named path, several need a
/// directory, and a destination that cannot take the list gives rsync's exit code.
#[test]
fn destination_forms_match_rsync() {
    if !have_rsync() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::create_dir_all(src.join("empty")).unwrap();
    fs::write(src.join("f"), "one file").unwrap();
    fs::write(src.join("d/g"), "in d").unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    for area in [&a, &b] {
        fs::create_dir_all(area.join("exdir")).unwrap();
        for name in ["exfile", "exfile2", "exfile3"] {
            fs::write(area.join(name), "old").unwrap();
            testkit::set_mtime(&area.join(name), 1_700_000_000, 0);
        }
    }
    // (options, source below src, destination below the area, rsync's exit code)
    let cases: [(&str, &str, &str, i32); 14] = [
        ("-a", "f", "newname", 0),
        ("-a", "f", "exfile", 0),
        ("-a", "f", "exdir", 0),
        ("-a", "f", "newdir/", 0),
        ("-a", "d", "dnew", 0),
        ("-a", "f", "x/y/c", 3),
        ("-a", "d", "x/y/z", 11),
        ("-a", "d", "exfile2", 3),
        ("-a", "empty/", "exfile2", 3),
        ("-a", "f", "exfile3/", 3),
        ("-a", "missing", "gone", 23),
        ("-t", "d", "skipped", 0), // no -r: "skipping directory d", nothing made
        ("-d", "d", "dirsonly", 0), // -d: the directory itself, written as the name
        ("-a", "empty/", "emptied", 0),
    ];
    for (opt, from, to, want) in cases {
        let args = |area: &Path| {
            [
                opt.to_string(),
                src.join(from).display().to_string(),
                format!("{}/{to}", area.display()),
            ]
        };
        let theirs = rsync(args(&a));
        assert_eq!(
            theirs.status.code(),
            Some(want),
            "rsync {opt} {from} {to}: {}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let ours = rtsync(["sync".to_string()].into_iter().chain(args(&b)));
        assert_eq!(
            ours.status.code(),
            Some(want),
            "rtsync {opt} {from} {to}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
    }
    // Directories written into and not in the list keep the time of the writes.
    let diffs = testkit::diff_trees_but_dir_times(&a, &b);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert!(!b.join("gone").exists() && !b.join("skipped").exists());
    assert_eq!(fs::read(b.join("exfile")).unwrap(), b"one file");
    // A lone directory written as a new name, with --delete: what is beside it stays.
    for when in ["--delete-before", "--delete-during", "--delete-after"] {
        let new = b.join(format!("made{when}"));
        ok(&rtsync([
            "sync",
            "-a",
            when,
            &slash(&src.join("empty")),
            new.to_str().unwrap(),
        ]));
        assert!(new.is_dir() && b.join("exfile2").is_file() && b.join("exdir").is_dir());
    }
}

#[test]
fn itemized_output_matches_rsync_on_a_simple_tree() {
    if !have_rsync() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("f1"), b"one").unwrap();
    fs::write(src.join("sub/f2"), b"two").unwrap();
    std::os::unix::fs::symlink("f1", src.join("link")).unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let run = |a: &Path, b: &Path| {
        let ra = ok(&rsync(["-ai", "--delete", &slash(&src), &slash(a)]));
        let rb = ok(&rtsync([
            "sync",
            "-ai",
            "--delete",
            &slash(&src),
            &slash(b),
        ]));
        let a_dir = a.display().to_string();
        let b_dir = b.display().to_string();
        assert_eq!(rb.replace(&b_dir, "DEST"), ra.replace(&a_dir, "DEST"));
    };
    run(&a, &b);
    fs::write(src.join("f1"), b"one, longer").unwrap();
    fs::remove_file(src.join("sub/f2")).unwrap();
    testkit::set_mtime(&src.join("f1"), 1_700_000_000, 5);
    testkit::set_mtime(&src.join("sub"), 1_700_000_000, 5);
    run(&a, &b);
}
