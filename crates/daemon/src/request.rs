//! What a client's argument words ask of this daemon, as a [`Transfer`] for the roles: the
//! words parsed by [`crate::args`] (rsync's own option table), then `refuse options` and what
//! rtsync does not do. A refusal is not an error here: it rides in [`Transfer::refusal`] and
//! is told to the client once the session is set up, in the multiplexed stream, as rsync's
//! daemon does (exit 4 for every option error, `clientserver.c rsync_module`).

use crate::args::{self, DeleteWhen as When, MissingArgs};
use crate::serve::{DeleteWhen, Transfer};

/// Parses the client's words for module `module` with its `refuse options`; with no module
/// (a remote-shell server), the paths stay as the client gave them.
#[must_use]
pub fn transfer(words: &[Vec<u8>], module: Option<&str>, refuse: &[String]) -> Transfer {
    let parsed = match args::parse(words) {
        Ok(a) => a,
        Err(e) => {
            return Transfer {
                // Enough to set the session up and tell the client why it ends.
                capabilities: capabilities(words),
                refusal: Some((
                    format!("rtsync: {e}"),
                    u8::try_from(e.exit_code()).unwrap_or(4),
                )),
                ..Transfer::default()
            };
        }
    };
    let o = &parsed.options;
    let chmod = crate::chmod::Chmod::parse(&o.chmod.join(","));
    let refusal = parsed
        .refused(refuse)
        .map(|name| (format!("rtsync: {}", args::refusal_message(name)), 4))
        .or_else(|| {
            o.unsupported()
                .map(|name| (format!("rtsync: {}", args::unsupported_message(name)), 4))
        })
        .or_else(|| {
            chmod.as_ref().err().map(|_| {
                let text = o.chmod.join(",");
                (
                    format!("rtsync: Invalid argument passed to --chmod ({text})"),
                    1,
                )
            })
        });
    let delete = o.delete.map(|w| match args::delete_when(w, refuse) {
        When::Before => DeleteWhen::Before,
        When::After => DeleteWhen::After,
        When::Unspecified | When::During | When::Delay => DeleteWhen::During,
    });
    Transfer {
        we_send: parsed.sender,
        capabilities: o.client_info.clone().unwrap_or_default(),
        compress: o.compresses(),
        recursive: o.recursive,
        dirs: o.dirs,
        links: o.links,
        perms: o.perms,
        times: o.times,
        owner: o.owner,
        group: o.group,
        devices: o.devices,
        specials: o.specials,
        hard_links: o.hard_links > 0,
        checksum: o.checksum,
        whole_file: o.whole_file == Some(true),
        sparse: o.sparse,
        relative: o.relative,
        dry_run: o.dry_run,
        numeric_ids: o.numeric_ids,
        delete,
        delete_excluded: o.delete_excluded,
        delete_missing_args: o.missing_args == MissingArgs::Delete,
        prune_empty_dirs: o.prune_empty_dirs,
        quick: session::receiver::QuickCheck {
            size_only: o.size_only,
            ignore_times: o.ignore_times,
            update: o.update,
            ignore_existing: o.ignore_existing,
            existing: o.existing,
            // A stock daemon compares whole seconds unless told otherwise (`-@-1`: to the
            // nanosecond).
            modify_window: Some(i64::from(o.modify_window.unwrap_or(0))),
        },
        verbose: u8::try_from(o.verbose).unwrap_or(u8::MAX),
        itemize: o.itemize > 0
            || o.out_format
                .as_deref()
                .is_some_and(|f| crate::logfmt::has_escape(f, 'i')),
        files_from_client: parsed.sender && o.files_from.as_deref() == Some(b"-".as_slice()),
        from0: o.from0,
        bwlimit: o.bwlimit,
        chmod: chmod.unwrap_or_default(),
        paths: match module {
            Some(m) => args::module_paths(&parsed.paths, m, o.secluded_args),
            None => parsed.paths.clone(),
        },
        refusal,
    }
}

/// The capability letters after `e` in the short cluster, found without a full parse (for a
/// refusal that still needs the session set up).
fn capabilities(words: &[Vec<u8>]) -> String {
    words
        .iter()
        .take_while(|w| w.as_slice() != b".")
        .filter(|w| w.starts_with(b"-") && !w.starts_with(b"--"))
        .find_map(|w| {
            let w = String::from_utf8_lossy(w).into_owned();
            w.find('e')
                .map(|i| w.get(i + 1..).unwrap_or_default().to_owned())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[&str]) -> Vec<Vec<u8>> {
        ws.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_clients_chmod_is_parsed_or_refused_with_rsyncs_words() {
        let push = |chmod: &str| {
            transfer(
                &words(&["--server", "-logDtpre.iLsfxCIvu", chmod, ".", "mod/"]),
                Some("mod"),
                &[],
            )
        };
        let t = push("--chmod=D750,F640");
        assert!(t.refusal.is_none(), "{:?}", t.refusal);
        assert_eq!(t.chmod.apply(0o100_777, false), 0o640);
        assert_eq!(t.chmod.apply(0o040_777, true), 0o750);
        let t = push("--chmod=Q+z");
        assert_eq!(
            t.refusal,
            Some(("rtsync: Invalid argument passed to --chmod (Q+z)".into(), 1))
        );
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
            Some("mod"),
            &[],
        );
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
            Some("mod"),
            &[],
        );
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
            Some("m"),
            &refuse,
        )
        .refusal
        .unwrap()
        .0;
        assert_eq!(err, "rtsync: The server is configured to refuse --delete");
        let t = transfer(
            &words(&["--server", "-logDtprce.iLsfxCIvu", ".", "m/"]),
            Some("m"),
            &["checksum".into()],
        );
        assert_eq!(t.refusal.unwrap().1, 4);
    }

    #[test]
    fn unknown_and_unsupported_options_are_refused() {
        assert_eq!(
            transfer(
                &words(&["--server", "--frobnicate", ".", "m/"]),
                Some("m"),
                &[]
            )
            .refusal
            .unwrap()
            .0,
            "rtsync: on remote machine: --frobnicate: unknown option"
        );
        assert!(
            transfer(&words(&["--server", "-lA", ".", "m/"]), Some("m"), &[])
                .refusal
                .unwrap()
                .0
                .contains("--acls")
        );
    }

    #[test]
    fn the_modify_window_rides_in_the_cluster_or_as_a_long_option() {
        let t = transfer(&words(&["--server", "-t@-1", ".", "m/"]), Some("m"), &[]);
        assert_eq!(t.quick.modify_window, Some(-1));
        let t = transfer(
            &words(&["--server", "-t", "--modify-window=2", ".", "m/"]),
            Some("m"),
            &[],
        );
        assert_eq!(t.quick.modify_window, Some(2));
    }
}
