//! Which paths of a batch a transfer through rsync failed on, read from the transfer's error
//! lines, so that `rtsync run` sends those again (rsync's exit 23) rather than the whole
//! batch, every one of its files, at every retry.
//!
//! rsync says which file failed only in text: `rsync: [receiver] mkstemp "/m/d/.f.Ab3xYz"
//! failed: Permission denied (13)`, `send_files failed to open "/src/d/f": ...`, with the
//! path as the server or the sender sees it (under the module's or the source's directory) or
//! as its temporary file. So a line names a path of the batch when one of its quoted strings
//! ends with that path, or with its temporary name. The reading errs one way only: when any
//! error line names no path of the batch, or quotes a name rsync had to escape, the answer is
//! "all of them" (`None`), never fewer paths than failed.

use std::path::Path;

use engine::{Batch, Change};

/// The changes that send again what the error lines in `text` name, or `None` when they may
/// not name everything that failed.
#[must_use]
pub fn failed_changes(text: &str, batch: &Batch) -> Option<Vec<Change>> {
    let printable = |p: &Path| {
        p.to_str().is_some_and(|s| {
            !s.is_empty() && s.chars().all(|c| !c.is_control() && c != '"' && c != '\\')
        })
    };
    if !batch
        .puts
        .iter()
        .chain(&batch.deletes)
        .chain(&batch.trees)
        .all(|p| printable(p))
        || !batch.renames.is_empty()
    {
        return None;
    }
    let mut changes: Vec<Change> = Vec::new();
    let mut lines = 0;
    for line in text.lines().map(str::trim).filter(|l| is_error_line(l)) {
        lines += 1;
        let quoted = quoted_strings(line);
        if quoted.iter().any(|q| q.contains('\\')) {
            return None;
        }
        let mut named = false;
        for q in &quoted {
            let q = q.trim_end_matches('/');
            for p in batch.puts.iter().chain(&batch.deletes) {
                if names(q, p) {
                    named = true;
                    changes.push(Change::Created(p.clone()));
                }
            }
            for t in &batch.trees {
                if within(q, t) {
                    named = true;
                    changes.push(Change::Resync(t.clone()));
                }
            }
        }
        if !named {
            return None;
        }
    }
    if lines == 0 {
        return None;
    }
    changes.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    changes.dedup();
    Some(changes)
}

/// A line reporting a failure, not the closing summary (`rsync error: some files/attrs were
/// not transferred ... (code 23)`) or a statistic.
fn is_error_line(line: &str) -> bool {
    !line.is_empty()
        && !line.starts_with("rsync error:")
        && !line.starts_with("rtsync error:")
        && !line.starts_with("sent ")
        && !line.starts_with("total size")
}

/// The strings between double quotes on `line`.
fn quoted_strings(line: &str) -> Vec<&str> {
    line.split('"').skip(1).step_by(2).collect()
}

/// Whether quoted `q` is path `p` (relative to the transfer's root), a directory above it, or
/// its temporary file, seen from any directory above that root.
fn names(q: &str, p: &Path) -> bool {
    let Some(p) = p.to_str() else {
        return false;
    };
    let is = |path: &str| q == path || q.ends_with(&format!("/{path}"));
    // The path, or a directory above it that the transfer made or timed on its way (`-R`).
    if is(p)
        || Path::new(p)
            .ancestors()
            .skip(1)
            .filter_map(Path::to_str)
            .any(|a| !a.is_empty() && is(a))
    {
        return true;
    }
    // rsync's temporary file: `.NAME.XXXXXX` beside it (rtsync daemon's: `.NAME.rtsync`).
    let (dir, name) = match p.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", p),
    };
    let (q_dir, q_name) = match q.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", q),
    };
    let temp = q_name
        .strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|suffix| suffix.len() == 6 || suffix == "rtsync");
    temp && (q_dir == dir || dir.is_empty() || q_dir.ends_with(&format!("/{dir}")))
}

/// Whether quoted `q` is tree `t` or lies below it.
fn within(q: &str, t: &Path) -> bool {
    let Some(t) = t.to_str() else {
        return false;
    };
    q == t
        || q.ends_with(&format!("/{t}"))
        || q.starts_with(&format!("{t}/"))
        || q.contains(&format!("/{t}/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn batch(puts: &[&str], deletes: &[&str], trees: &[&str]) -> Batch {
        let paths = |v: &[&str]| v.iter().map(PathBuf::from).collect();
        Batch {
            puts: paths(puts),
            deletes: paths(deletes),
            trees: paths(trees),
            ..Batch::default()
        }
    }

    #[test]
    fn receiver_and_sender_lines_name_their_paths() {
        let b = batch(&["d/f", "d/g", "h"], &["gone"], &[]);
        let text = "rsync: [receiver] mkstemp \"/srv/m/d/.f.Ab3xYz\" failed: Permission denied (13)\n\
                    rtsync: [sender] send_files failed to open \"/src/h\": Permission denied (os error 13)\n\
                    rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1338) [sender=3.2.7]\n";
        assert_eq!(
            failed_changes(text, &b),
            Some(vec![
                Change::Created(PathBuf::from("d/f")),
                Change::Created(PathBuf::from("h"))
            ])
        );
        let text = "create temporary file for \"/tmp/x/open/d/g\" failed: Operation not permitted\n\
                    rsync: [generator] delete_file: unlink(gone) failed: Is a directory\n\
                    rsync: [generator] delete_file: rmdir \"gone\" failed: Directory not empty (39)\n";
        // The second line quotes nothing: everything goes again.
        assert_eq!(failed_changes(text, &b), None);
    }

    #[test]
    fn a_line_naming_nothing_in_the_batch_means_all_of_it() {
        let b = batch(&["d/f"], &[], &[]);
        assert_eq!(
            failed_changes(
                "rsync: [receiver] mkdir \"/srv/m/e\" failed: No space\n",
                &b
            ),
            None
        );
        assert_eq!(failed_changes("", &b), None);
        // An escaped name might be any path.
        let b = batch(&["x"], &[], &[]);
        assert_eq!(
            failed_changes("rsync: open \"/m/we\\#012ird/x\" failed\n", &b),
            None
        );
    }

    #[test]
    fn a_suffix_matches_only_at_a_directory_boundary_and_temp_names_at_their_own_place() {
        assert!(names("/m/d/f", Path::new("d/f")));
        assert!(!names("/m/xd/f", Path::new("d/f")));
        assert!(names("/m/d", Path::new("d/f")));
        assert!(!names("/m/f", Path::new("d/f")));
        assert!(names("/m/d/.f.Ab3xYz", Path::new("d/f")));
        assert!(names("d/.f.rtsync", Path::new("d/f")));
        assert!(!names("/m/e/.f.Ab3xYz", Path::new("d/f")));
        assert!(!names("/m/d/.f.long-suffix", Path::new("d/f")));
        assert!(within("/m/t/deep/f", Path::new("t")));
        assert!(!within("/m/tt/f", Path::new("t")));
    }

    #[test]
    fn trees_go_again_whole_and_renames_or_odd_names_send_everything() {
        let b = batch(&[], &[], &["new"]);
        assert_eq!(
            failed_changes("rsync: mkstemp \"/m/new/a/.b.XXXXXX\" failed\n", &b),
            Some(vec![Change::Resync(PathBuf::from("new"))])
        );
        let odd = batch(&["a\nb"], &[], &[]);
        assert_eq!(failed_changes("rsync: x \"/m/a\" failed\n", &odd), None);
    }
}
