//! The coalescer with [`Settings::renames`]: which renames stay renames, which fold into a
//! delete and a creation, and how later changes, requeues and caps treat them.

use super::*;

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn on() -> Settings {
    Settings {
        renames: true,
        ..Settings::default()
    }
}

fn mv(from: &str, to: &str) -> Change {
    Change::Renamed {
        from: p(from),
        to: p(to),
        is_dir: false,
    }
}

fn mvd(from: &str, to: &str) -> Change {
    Change::Renamed {
        from: p(from),
        to: p(to),
        is_dir: true,
    }
}

fn rn(from: &str, to: &str, is_dir: bool) -> Rename {
    Rename {
        from: p(from),
        to: p(to),
        is_dir,
    }
}

fn push_all(c: &mut Coalescer, changes: &[Change], first_seq: u64, t: Instant) {
    for (seq, ch) in (first_seq..).zip(changes) {
        c.push(ch, seq, t);
    }
}

fn run_with(settings: Settings, changes: &[Change]) -> Batch {
    let mut c = Coalescer::new(settings);
    let t = Instant::now();
    push_all(&mut c, changes, 1, t);
    let b = c.take(t);
    assert!(c.is_empty(), "left pending: {c:?}");
    b
}

fn run(changes: &[Change]) -> Batch {
    run_with(on(), changes)
}

fn batch(renames: &[Rename], puts: &[&str], deletes: &[&str], trees: &[&str], upto: u64) -> Batch {
    Batch {
        renames: renames.to_vec(),
        puts: puts.iter().map(|s| p(s)).collect(),
        deletes: deletes.iter().map(|s| p(s)).collect(),
        trees: trees.iter().map(|s| p(s)).collect(),
        upto,
    }
}

#[test]
fn without_the_setting_a_rename_is_a_delete_and_a_creation_as_before() {
    use Change::*;
    let changes = [
        mv("a", "b"),
        mvd("d", "e"),
        Modified(p("e/x")),
        Resync(p("x")),
    ];
    // What the journal numbered one change is the same number split.
    let split = [
        (1, Deleted(p("a"))),
        (1, Created(p("b"))),
        (2, Deleted(p("d"))),
        (2, CreatedDir(p("e"))),
        (3, Modified(p("e/x"))),
        (4, Resync(p("x"))),
    ];
    let t = Instant::now();
    let mut c = Coalescer::new(Settings::default());
    push_all(&mut c, &changes, 1, t);
    let mut d = Coalescer::new(Settings::default());
    for (seq, ch) in &split {
        d.push(ch, *seq, t);
    }
    let b = c.take(t);
    assert_eq!(b, d.take(t));
    assert_eq!(b, batch(&[], &["b"], &["a", "d"], &["e", "x"], 4));
}

#[test]
fn a_simple_rename_is_one_rename_and_a_delete_of_its_old_name() {
    let b = run(&[mv("a", "b"), mvd("old", "new")]);
    assert_eq!(
        b,
        batch(
            &[rn("a", "b", false), rn("old", "new", true)],
            &[],
            &["a", "old"],
            &[],
            2
        )
    );
    assert_eq!(b.len(), 4);
    assert!(!b.is_empty());
    let only = batch(&[rn("a", "b", false)], &[], &[], &[], 1);
    assert_eq!((only.len(), only.is_empty()), (1, false));
}

#[test]
fn renames_are_listed_in_the_order_they_happened() {
    let b = run(&[mv("z", "y"), mv("a", "b"), mvd("m/n", "c")]);
    assert_eq!(
        b.renames,
        [
            rn("z", "y", false),
            rn("a", "b", false),
            rn("m/n", "c", true)
        ]
    );
    assert_eq!(b.deletes, [p("a"), p("m/n"), p("z")]);
}

#[test]
fn a_rename_supersedes_what_was_pending_at_and_below_its_new_name() {
    use Change::*;
    let b = run(&[
        Modified(p("t")),
        Modified(p("d/x")),
        Written(p("d/y")),
        mv("a", "t"),
        mvd("s", "d"),
    ]);
    assert_eq!(
        b,
        batch(
            &[rn("a", "t", false), rn("s", "d", true)],
            &[],
            &["a", "s"],
            &[],
            5
        )
    );
}

#[test]
fn a_rename_of_a_path_with_pending_content_folds() {
    use Change::*;
    // write tmp; mv tmp file — within one batch.
    let b = run(&[Created(p("tmp")), Modified(p("tmp")), mv("tmp", "file")]);
    assert_eq!(b, batch(&[], &["file"], &["tmp"], &[], 3));
    // Something pending below a renamed directory.
    let b = run(&[Modified(p("d/sub/x")), mvd("d", "e")]);
    assert_eq!(b, batch(&[], &[], &["d"], &["e"], 2));
    // A pending delete at the old name (an entry made there again, then renamed).
    let b = run(&[Deleted(p("a")), Created(p("a")), mv("a", "b")]);
    assert_eq!(b, batch(&[], &["b"], &["a"], &[], 3));
}

#[test]
fn a_rename_into_or_out_of_a_covered_subtree_folds() {
    use Change::*;
    // Into a new directory: the directory is sent whole anyway.
    let b = run(&[CreatedDir(p("n")), mv("a", "n/a")]);
    assert_eq!(b, batch(&[], &[], &["a"], &["n"], 2));
    // Out of a subtree being resynced.
    let b = run(&[Resync(p("r")), mv("r/x", "y")]);
    assert_eq!(b, batch(&[], &["y"], &[], &["r"], 2));
    // Into a directory pending deletion (deleted, made again, renamed into).
    let b = run(&[Deleted(p("d")), mv("a", "d/a")]);
    assert_eq!(b, batch(&[], &[], &["a"], &["d"], 2));
}

#[test]
fn chains_fold_and_stay_correct() {
    // a → b → c: "delete a, delete b, put c", as without renames.
    let b = run(&[mv("a", "b"), mv("b", "c")]);
    assert_eq!(b, batch(&[], &["c"], &["a", "b"], &[], 2));
    // The other way round: c → d after a → c's old name... b → a after a → t.
    let b = run(&[mv("a", "t"), mv("b", "a")]);
    assert_eq!(b, batch(&[rn("a", "t", false)], &["a"], &["b"], &[], 2));
    // Directories: d → e then e/x → e/y (below a rename's end) and f → e/z.
    let b = run(&[mvd("d", "e"), mv("e/x", "e/y"), mv("f", "e/z")]);
    assert_eq!(
        b,
        batch(
            &[rn("d", "e", true)],
            &["e/y", "e/z"],
            &["d", "e/x", "f"],
            &[],
            3
        )
    );
    // A rename into the old name of a renamed directory.
    let b = run(&[mvd("d", "e"), mv("x", "d/x")]);
    assert_eq!(b, batch(&[rn("d", "e", true)], &[], &["x"], &["d"], 2));
}

#[test]
fn swaps_fold_and_stay_correct() {
    // a ↔ b through t: a → t, b → a, t → b.
    let b = run(&[mv("a", "t"), mv("b", "a"), mv("t", "b")]);
    assert_eq!(b, batch(&[], &["a", "b"], &["t"], &[], 3));
    // Directories the same way, with contents changed in between.
    let b = run(&[
        mvd("x", "t"),
        mvd("y", "x"),
        Change::Modified(p("x/f")),
        mvd("t", "y"),
    ]);
    assert_eq!(b, batch(&[], &[], &["t"], &["x", "y"], 4));
}

#[test]
fn a_write_after_a_rename_keeps_it_and_sends_the_file_too() {
    use Change::*;
    let b = run(&[mv("a", "b"), Modified(p("b"))]);
    assert_eq!(b, batch(&[rn("a", "b", false)], &["b"], &["a"], &[], 2));
    // Still being written: the rename goes, the put waits.
    let s = on();
    let mut c = Coalescer::new(s);
    let t = Instant::now();
    c.push(&mv("a", "b"), 1, t);
    c.push(&Written(p("b")), 2, t);
    let first = c.take(t + s.settle);
    // The put held back keeps the rename's number: the acknowledgement stays short of both.
    assert_eq!(first, batch(&[rn("a", "b", false)], &[], &["a"], &[], 0));
    assert_eq!(c.len(), 1);
    let later = t + s.write_quiet;
    assert!(c.is_ready(later));
    assert_eq!(c.take(later), batch(&[], &["b"], &[], &[], 2));
    // A creation at the old name after the move is an ordinary put, after the rename.
    let b = run(&[mv("a", "b"), Created(p("a"))]);
    assert_eq!(b, batch(&[rn("a", "b", false)], &["a"], &[], &[], 2));
}

#[test]
fn a_delete_new_directory_or_resync_at_or_above_the_new_name_supersedes_it() {
    use Change::*;
    let b = run(&[mv("a", "b"), Deleted(p("b"))]);
    assert_eq!(b, batch(&[], &[], &["a", "b"], &[], 2));
    let b = run(&[mv("a", "d/b"), Deleted(p("d"))]);
    assert_eq!(b, batch(&[], &[], &["a", "d"], &[], 2));
    let b = run(&[mvd("a", "b"), Resync(p("b"))]);
    assert_eq!(b, batch(&[], &[], &["a"], &["b"], 2));
    let b = run(&[mv("a", "d/b"), CreatedDir(p("d"))]);
    assert_eq!(b, batch(&[], &[], &["a"], &["d"], 2));
    // The whole tree.
    let b = run(&[mvd("a", "b"), Resync(p(""))]);
    assert_eq!(b, batch(&[], &[], &[], &[""], 2));
    // The old name deleted with its parent: the rename still goes first.
    let b = run(&[mv("d/a", "b"), Deleted(p("d"))]);
    assert_eq!(b, batch(&[rn("d/a", "b", false)], &[], &["d"], &[], 2));
}

#[test]
fn changes_below_a_renamed_directory_are_ordinary_entries_after_it() {
    use Change::*;
    let b = run(&[
        mvd("d", "e"),
        Created(p("e/new")),
        Modified(p("e/old")),
        Deleted(p("e/gone")),
        CreatedDir(p("e/sub")),
        Created(p("e/sub/x")),
    ]);
    assert_eq!(
        b,
        batch(
            &[rn("d", "e", true)],
            &["e/new", "e/old"],
            &["d", "e/gone"],
            &["e/sub"],
            6
        )
    );
}

#[test]
fn a_failed_rename_goes_back_before_newer_renames() {
    let mut c = Coalescer::new(on());
    let t = Instant::now();
    push_all(
        &mut c,
        &[mv("a", "b"), Change::Modified(p("b")), mvd("x", "y")],
        1,
        t,
    );
    let failed = c.take(t);
    c.push(&mv("c", "d"), 4, t);
    c.requeue(failed, t);
    assert_eq!(
        c.take(t),
        batch(
            &[rn("a", "b", false), rn("x", "y", true), rn("c", "d", false)],
            &["b"],
            &["a", "c", "x"],
            &[],
            4
        )
    );
    // Two failed batches, requeued newest first, keep their order too.
    c.push(&mv("e", "f"), 5, t);
    let older = c.take(t);
    c.push(&mv("g", "h"), 6, t);
    let newer = c.take(t);
    c.requeue(newer, t);
    c.requeue(older, t);
    let b = c.take(t);
    assert_eq!(b.renames, [rn("e", "f", false), rn("g", "h", false)]);
    assert_eq!(b.upto, 6);
}

#[test]
fn a_failed_rename_that_meets_newer_changes_folds_under_them() {
    use Change::*;
    let mut c = Coalescer::new(on());
    let t = Instant::now();
    // The new name changed since.
    c.push(&mv("a", "b"), 1, t);
    let failed = c.take(t);
    c.push(&Modified(p("b")), 2, t);
    c.requeue(failed, t);
    assert_eq!(c.take(t), batch(&[], &["b"], &["a"], &[], 2));
    // Below a renamed directory.
    c.push(&mvd("d", "e"), 3, t);
    let failed = c.take(t);
    c.push(&Modified(p("e/x")), 4, t);
    c.requeue(failed, t);
    assert_eq!(c.take(t), batch(&[], &[], &["d"], &["e"], 4));
    // The old name made again: the newer put wins there.
    c.push(&mv("a", "b"), 5, t);
    let failed = c.take(t);
    c.push(&Created(p("a")), 6, t);
    c.requeue(failed, t);
    assert_eq!(c.take(t), batch(&[], &["a", "b"], &[], &[], 6));
    // The new name deleted since: nothing to send there, the old name still goes.
    c.push(&mvd("m", "n"), 7, t);
    let failed = c.take(t);
    c.push(&Deleted(p("n")), 8, t);
    c.requeue(failed, t);
    assert_eq!(c.take(t), batch(&[], &[], &["m", "n"], &[], 8));
    // An attribute change on the new directory is not enough to send it.
    c.push(&mvd("m", "n"), 9, t);
    let failed = c.take(t);
    c.push(&Modified(p("n")), 10, t);
    c.requeue(failed, t);
    assert_eq!(c.take(t), batch(&[], &[], &["m"], &["n"], 10));
    // Another rename touches it: a → b failed, then b → c; both fold (the target's "b" is
    // not what the newer rename expects).
    c.push(&mv("a", "b"), 11, t);
    let failed = c.take(t);
    c.push(&mv("b", "c"), 12, t);
    c.requeue(failed, t);
    assert_eq!(c.take(t), batch(&[], &["c"], &["a", "b"], &[], 12));
}

#[test]
fn a_newer_rename_over_what_a_failed_batch_changed_folds() {
    use Change::*;
    let mut c = Coalescer::new(on());
    let t = Instant::now();
    // "d/x" was written; the batch sending it fails after "d" was renamed to "e": the target's
    // "d" lacks the new "x", so renaming it would leave "e/x" stale.
    c.push(&Modified(p("d/x")), 1, t);
    let failed = c.take(t);
    c.push(&mvd("d", "e"), 2, t);
    c.requeue(failed, t);
    let b = c.take(t);
    assert!(b.renames.is_empty(), "{b:?}");
    assert_eq!(b.trees, [p("d"), p("e")]);
    // A failed delete of the new name does not undo a newer rename onto it either.
    c.push(&Deleted(p("f")), 3, t);
    let failed = c.take(t);
    c.push(&mv("g", "f"), 4, t);
    c.requeue(failed, t);
    assert_eq!(c.take(t), batch(&[], &["f"], &["g"], &[], 4));
}

#[test]
fn requeued_entries_are_numbered_zero_so_acknowledgements_wait() {
    let s = on();
    let mut c = Coalescer::new(s);
    let t = Instant::now();
    c.push(&mv("a", "b"), 1, t);
    let failed = c.take(t);
    c.requeue(failed, t);
    c.push(&Change::Written(p("w")), 2, t);
    // "w" is held back; the requeued rename goes, but the acknowledgement may not pass the
    // held change.
    let b = c.take(t + s.settle);
    assert_eq!(b, batch(&[rn("a", "b", false)], &[], &["a"], &[], 1));
}

#[test]
fn caps_widen_over_renames() {
    let settings = Settings {
        max_pending: 50,
        max_per_dir: 2,
        ..on()
    };
    let mut c = Coalescer::new(settings);
    let t = Instant::now();
    push_all(
        &mut c,
        &[
            mv("p/x", "d/a"),
            mv("q/x", "d/b"),
            mv("r/x", "d/c"),
            mv("s/x", "e"),
        ],
        1,
        t,
    );
    assert_eq!(
        c.take(t),
        batch(
            &[rn("s/x", "e", false)],
            &[],
            &["p/x", "q/x", "r/x", "s/x"],
            &["d"],
            4
        )
    );
    let settings = Settings {
        max_pending: 5,
        ..on()
    };
    let mut c = Coalescer::new(settings);
    push_all(&mut c, &[mv("a", "b"), mv("c", "d"), mv("e", "f")], 1, t);
    assert_eq!(c.take(t), batch(&[], &[], &[], &[""], 3));
    // Nothing of the dropped renames lingers.
    c.push(&mv("b", "a"), 4, t);
    assert_eq!(
        c.take(t),
        batch(&[rn("b", "a", false)], &[], &["b"], &[], 4)
    );
}

#[test]
fn a_resync_meeting_a_rename_folds_it() {
    use Change::*;
    // A missed rename's fallback below a renamed directory's old name: the target's "a" is
    // stale there, so moving it would carry the stale file to "c".
    let b = run(&[mvd("a", "c"), Resync(p("a/b"))]);
    assert_eq!(b, batch(&[], &[], &[], &["a", "c"], 2));
    // Above the old name: events were lost there.
    let b = run(&[mv("d/x", "y"), Resync(p("d"))]);
    assert_eq!(b, batch(&[], &["y"], &[], &["d"], 2));
    // Below the new name of a directory: it is compared whole.
    let b = run(&[mvd("a", "c"), Resync(p("c/x"))]);
    assert_eq!(b, batch(&[], &[], &["a"], &["c"], 2));
    // Elsewhere: the rename stays.
    let b = run(&[mvd("a", "c"), Resync(p("e"))]);
    assert_eq!(b, batch(&[rn("a", "c", true)], &[], &["a"], &["e"], 2));
}
