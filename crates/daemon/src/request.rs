//! What a client's argument words ask of this daemon (`options.c parse_arguments` on the
//! server side), turned into a [`Transfer`]: the short cluster (`-vlogDtprze.iLsfxCIvu`, where
//! `e` takes the rest of the cluster as the client's capability letters), the long options
//! stock clients send, and the paths after `.`. Options the module refuses (`refuse
//! options`), and options rtsync does not do, are refused here with rsync's wording, before
//! any file is touched.

use crate::serve::{DeleteWhen, Transfer};

/// Long options a stock client may send that change nothing on our side.
const HARMLESS: &[&str] = &[
    "server",
    "no-i-r",
    "no-inc-recursive",
    "fsync",
    "mkpath",
    "partial",
    "omit-dir-times",
    "omit-link-times",
    "no-implied-dirs",
    "ignore-errors",
    "safe-links",
    "munge-links",
    "open-noatime",
    "stats",
    "progress",
    "info",
    "debug",
    "msgs2stderr",
    "no-msgs2stderr",
    "human-readable",
    "8-bit-output",
    "blocking-io",
    "timeout",
    "contimeout",
    "bwlimit",
    "max-delete",
    "max-size",
    "min-size",
    "block-size",
    "compress-level",
    "checksum-seed",
    "log-format",
    "out-format",
    "ignore-missing-args",
    "prune-empty-dirs",
    "trust-sender",
    "preallocate",
    "new-compress",
    "old-compress",
];

/// Long options rtsync's daemon does not do; refused with exit 4 ("requested action not
/// supported") rather than silently ignored.
const UNSUPPORTED: &[&str] = &[
    "acls",
    "xattrs",
    "iconv",
    "fuzzy",
    "compare-dest",
    "copy-dest",
    "link-dest",
    "backup",
    "backup-dir",
    "suffix",
    "append",
    "append-verify",
    "inplace",
    "write-devices",
    "copy-as",
    "remove-source-files",
    "remove-sent-files",
    "files-from",
    "copy-links",
    "copy-dirlinks",
    "copy-unsafe-links",
    "keep-dirlinks",
    "delay-updates",
    "temp-dir",
    "partial-dir",
    "chmod",
    "usermap",
    "groupmap",
    "chown",
    "fake-super",
    "super",
    "executability",
    "atimes",
    "crtimes",
    "secluded-args",
    "protect-args",
    "sender-only-for-now",
    "checksum-choice",
    "compress-choice",
    "zc",
    "cc",
    "existing",
    "ignore-non-existing",
];

/// The long name of a short option letter (for `refuse options` and messages).
fn long_name(c: char) -> Option<&'static str> {
    Some(match c {
        'v' => "verbose",
        'q' => "quiet",
        'r' => "recursive",
        'd' => "dirs",
        'l' => "links",
        'L' => "copy-links",
        'k' => "copy-dirlinks",
        'K' => "keep-dirlinks",
        'H' => "hard-links",
        'p' => "perms",
        'E' => "executability",
        'A' => "acls",
        'X' => "xattrs",
        'o' => "owner",
        'g' => "group",
        'D' => "devices",
        't' => "times",
        'U' => "atimes",
        'N' => "crtimes",
        'O' => "omit-dir-times",
        'J' => "omit-link-times",
        'n' => "dry-run",
        'W' => "whole-file",
        'x' => "one-file-system",
        'z' => "compress",
        'c' => "checksum",
        'R' => "relative",
        'u' => "update",
        'S' => "sparse",
        'm' => "prune-empty-dirs",
        'I' => "ignore-times",
        'i' => "itemize-changes",
        'b' => "backup",
        'y' => "fuzzy",
        's' => "secluded-args",
        '0' => "from0",
        'C' => "cvs-exclude",
        'P' => "partial",
        'h' => "human-readable",
        'F' => "filter",
        '8' => "8-bit-output",
        _ => return None,
    })
}

/// Whether `refuse options` refuses `name` (`options.c set_refuse_options`): wildcards, and
/// `delete` covering every `delete-*` option; `!name` re-allows.
#[must_use]
pub fn refused(name: &str, refuse: &[String]) -> bool {
    let mut verdict = false;
    for r in refuse {
        let (allow, pat) = match r.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, r.as_str()),
        };
        let hit = filter::wildmatch(pat.as_bytes(), name.as_bytes())
            || (pat == "delete" && name.starts_with("delete"));
        if hit {
            verdict = !allow;
        }
    }
    verdict
}

/// Parses the client's words for module `module` with its `refuse options`.
///
/// # Errors
/// rsync's message for an unknown, refused or unsupported option, or a path outside the
/// module.
pub fn transfer(words: &[Vec<u8>], module: &str, refuse: &[String]) -> Result<Transfer, String> {
    let mut t = Transfer::default();
    let mut seen: Vec<String> = Vec::new();
    let mut it = words
        .iter()
        .map(|w| String::from_utf8_lossy(w).into_owned());
    let mut after_dot = false;
    while let Some(word) = it.next() {
        if after_dot {
            t.paths.push(word.into_bytes());
            continue;
        }
        if word == "." {
            after_dot = true;
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (long.to_owned(), None),
            };
            seen.push(name.clone());
            long_option(&mut t, &name, value.as_deref())?;
            continue;
        }
        let Some(cluster) = word.strip_prefix('-') else {
            return Err(format!("unexpected argument {word:?} before \".\""));
        };
        let mut chars = cluster.chars();
        while let Some(c) = chars.next() {
            match c {
                'e' => {
                    t.capabilities = chars.by_ref().collect();
                }
                '@' | 'B' | 'T' | 'M' => {
                    // Options with a value: the rest of the cluster, or the next word.
                    let rest: String = chars.by_ref().collect();
                    let value = if rest.is_empty() {
                        it.next().unwrap_or_default()
                    } else {
                        rest
                    };
                    if c == '@' {
                        t.quick.modify_window = value.parse().ok();
                    } else if c == 'T' {
                        seen.push("temp-dir".into());
                    }
                }
                c => {
                    let name = long_name(c).ok_or_else(|| format!("-{c}: unknown option"))?;
                    seen.push(name.to_owned());
                    long_option(&mut t, name, None)?;
                }
            }
        }
    }
    if let Some(name) = seen.iter().find(|n| refused(n, refuse)) {
        return Err(format!("The server is configured to refuse --{name}"));
    }
    if let Some(name) = seen.iter().find(|n| UNSUPPORTED.contains(&n.as_str())) {
        return Err(format!(
            "--{name} is not supported by rtsync's daemon (rsync would accept it)"
        ));
    }
    // The first path names the module: `mod/sub` → `sub`.
    for p in &mut t.paths {
        let rest = p.strip_prefix(module.as_bytes()).unwrap_or(p.as_slice());
        let rest = rest.strip_prefix(b"/").unwrap_or(rest);
        *p = rest.to_vec();
    }
    Ok(t)
}

/// Applies one option by its long name.
fn long_option(t: &mut Transfer, name: &str, value: Option<&str>) -> Result<(), String> {
    match name {
        "sender" => t.we_send = true,
        "verbose" => t.verbose = t.verbose.saturating_add(1),
        "recursive" => t.recursive = true,
        "no-r" | "no-recursive" => t.recursive = false,
        "dirs" => t.dirs = true,
        "links" => t.links = true,
        "hard-links" => t.hard_links = true,
        "perms" => t.perms = true,
        "owner" => t.owner = true,
        "group" => t.group = true,
        "devices" => {
            t.devices = true;
            t.specials = true;
        }
        "specials" => t.specials = true,
        "times" => t.times = true,
        "dry-run" => t.dry_run = true,
        "whole-file" => t.whole_file = true,
        "no-whole-file" | "no-W" => t.whole_file = false,
        "compress" => t.compress = true,
        "checksum" => t.checksum = true,
        "relative" => t.relative = true,
        "update" => t.quick.update = true,
        "sparse" => t.sparse = true,
        "ignore-times" => t.quick.ignore_times = true,
        "size-only" => t.quick.size_only = true,
        "ignore-existing" => t.quick.ignore_existing = true,
        "modify-window" => t.quick.modify_window = value.and_then(|v| v.parse().ok()),
        "itemize-changes" => t.itemize = true,
        "log-format" | "out-format" => t.itemize |= value.is_some_and(|v| v.contains("%i")),
        "numeric-ids" => t.numeric_ids = true,
        "delete" | "delete-during" | "del" | "delete-delay" => {
            t.delete = Some(DeleteWhen::During);
        }
        "delete-before" => t.delete = Some(DeleteWhen::Before),
        "delete-after" => t.delete = Some(DeleteWhen::After),
        "delete-excluded" => {
            t.delete_excluded = true;
            t.delete.get_or_insert(DeleteWhen::During);
        }
        "delete-missing-args" => t.delete_missing_args = true,
        "force" | "one-file-system" | "quiet" | "from0" | "cvs-exclude" => {}
        "prune-empty-dirs" => t.prune_empty_dirs = true,
        n if HARMLESS.contains(&n) || UNSUPPORTED.contains(&n) => {}
        n => return Err(format!("--{n}: unknown option")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[&str]) -> Vec<Vec<u8>> {
        ws.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_stock_push_with_delete() {
        let t = transfer(
            &words(&[
                "--server",
                "-vlogDtprze.iLsfxCIvu",
                "--delete",
                ".",
                "mod/sub/",
            ]),
            "mod",
            &[],
        )
        .unwrap();
        assert!(!t.we_send && t.recursive && t.links && t.perms && t.times && t.owner);
        assert!(t.group && t.devices && t.compress && t.verbose == 1);
        assert_eq!(t.capabilities, ".iLsfxCIvu");
        assert_eq!(t.delete, Some(DeleteWhen::During));
        assert_eq!(t.paths, vec![b"sub/".to_vec()]);
    }

    #[test]
    fn a_stock_pull() {
        let t = transfer(
            &words(&["--server", "--sender", "-logDtpre.iLsfxCIvu", ".", "mod/"]),
            "mod",
            &[],
        )
        .unwrap();
        assert!(t.we_send);
        assert_eq!(t.paths, vec![Vec::<u8>::new()]);
    }

    #[test]
    fn refuse_options_as_rsyncd_conf_says() {
        let refuse = vec!["delete".to_owned()];
        let err = transfer(
            &words(&[
                "--server",
                "-logDtpre.iLsfxCIvu",
                "--delete-after",
                ".",
                "m/",
            ]),
            "m",
            &refuse,
        )
        .unwrap_err();
        assert_eq!(err, "The server is configured to refuse --delete-after");
        assert!(refused("checksum", &["c*".to_owned()]));
        assert!(!refused(
            "checksum",
            &["c*".to_owned(), "!checksum".to_owned()]
        ));
        let err = transfer(
            &words(&["--server", "-logDtprce.iLsfxCIvu", ".", "m/"]),
            "m",
            &["checksum".into()],
        );
        assert!(err.is_err());
    }

    #[test]
    fn unknown_and_unsupported_options_are_refused() {
        assert_eq!(
            transfer(&words(&["--server", "--frobnicate", ".", "m/"]), "m", &[]).unwrap_err(),
            "--frobnicate: unknown option"
        );
        assert!(
            transfer(&words(&["--server", "-lA", ".", "m/"]), "m", &[])
                .unwrap_err()
                .contains("--acls")
        );
    }

    #[test]
    fn the_modify_window_rides_in_the_cluster_or_as_a_long_option() {
        let t = transfer(&words(&["--server", "-t@-1", ".", "m/"]), "m", &[]).unwrap();
        assert_eq!(t.quick.modify_window, Some(-1));
        let t = transfer(
            &words(&["--server", "-t", "--modify-window=2", ".", "m/"]),
            "m",
            &[],
        )
        .unwrap();
        assert_eq!(t.quick.modify_window, Some(2));
    }
}
