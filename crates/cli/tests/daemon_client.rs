//! `rtsync sync` against a stock `rsync --daemon` on loopback: module listings, module access
//! and authentication give what stock rsync gives.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output};

use common::daemon::{SECRET_PASSWORD, SECRET_USER, StockDaemon};
use common::{have_rsync, ok, rsync, rtsync};

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

/// Runs stock rsync over `theirs` (source, destination) and `rtsync sync` over `ours` with the
/// same options, and asserts that both succeed.
fn run_both(opts: &[&str], theirs: [&str; 2], ours: [&str; 2]) -> (Output, Output) {
    let rsync_out = rsync(opts.iter().chain(&theirs));
    ok(&rsync_out);
    let rtsync_out = rtsync(["sync"].iter().chain(opts).chain(&ours));
    ok(&rtsync_out);
    (rsync_out, rtsync_out)
}

/// Rewrites a file with `body`, which has its length, and puts its time back, so that only a
/// checksum can tell.
fn damage_keeping_size_and_time(path: &std::path::Path, body: &[u8]) {
    let meta = std::fs::metadata(path).unwrap();
    assert_eq!(meta.len(), body.len() as u64);
    std::fs::write(path, body).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(meta.modified().unwrap())
        .unwrap();
}

#[test]
fn module_listing_matches_rsync() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let theirs = rsync([d.url("")]);
    let ours = rtsync(["sync".to_string(), d.url("")]);
    assert_eq!(
        code(&ours),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout)
    );
    assert!(String::from_utf8_lossy(&ours.stdout).contains("needs a password"));
    // The host:: spelling with --port.
    let ours = rtsync([
        "sync".to_string(),
        format!("--port={}", d.port),
        "127.0.0.1::".to_string(),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout)
    );
}

#[test]
fn wrong_password_unknown_module_and_refused_connection_exit_as_rsync() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let src = tempfile::tempdir().unwrap();
    let src_arg = format!("{}/", src.path().display());
    let target = d.url("secret/");
    let target = target.replace("rsync://", &format!("rsync://{SECRET_USER}@"));
    let run = |program: &str, pw: &str, dest: &str| {
        let mut cmd = if program == "rtsync" {
            let mut c = Command::new(env!("CARGO_BIN_EXE_rtsync"));
            c.arg("sync");
            c
        } else {
            Command::new("rsync")
        };
        cmd.env("RSYNC_PASSWORD", pw).args(["-a", &src_arg, dest]);
        common::run_bounded(&mut cmd, std::time::Duration::from_secs(30))
    };
    for program in ["rsync", "rtsync"] {
        let out = run(program, "wrong", &target);
        assert_eq!(
            code(&out),
            Some(5),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("@ERROR: auth failed on module secret"),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(program, "", &d.url("nope/"));
        assert_eq!(code(&out), Some(5), "{program}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("@ERROR: Unknown module 'nope'"),
            "{program}"
        );
    }
    // The right password opens the module and the push goes through.
    std::fs::write(src.path().join("pushed"), b"through auth").unwrap();
    let out = run("rtsync", SECRET_PASSWORD, &target);
    assert_eq!(
        code(&out),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(d.module_path("secret").join("pushed")).unwrap(),
        b"through auth"
    );
    // A password file readable by others is refused, as rsync refuses it.
    let pwfile = src.path().join("pw");
    std::fs::write(&pwfile, SECRET_PASSWORD).unwrap();
    std::fs::set_permissions(&pwfile, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = rtsync([
        "sync",
        "-a",
        &src_arg,
        &target,
        &format!("--password-file={}", pwfile.display()),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password file must not be other-accessible")
    );
    drop(d);
    let out = rtsync([
        "sync".to_string(),
        "-a".into(),
        src_arg.clone(),
        target.clone(),
    ]);
    assert_eq!(
        code(&out),
        Some(10),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A module with rsync 3.5's `auth digest = sha256` (served by `rtsync daemon`, which
/// announces the digest list 3.5 does): our client answers the challenge with the strongest
/// digest both sides know and gets in, as does the stock client; a wrong password is still
/// refused with rsync's message and exit 5.
#[test]
fn a_module_requiring_sha256_logins_takes_ours() {
    if !have_rsync() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("m")).unwrap();
    common::daemon::write_secrets(&d.join("secrets"));
    std::fs::write(
        d.join("rsyncd.conf"),
        format!(
            "pid file = {d}/rsyncd.pid\nuse chroot = no\n{ids}[m]\n  path = {d}/m\n  read only = no\n  \
             auth users = {SECRET_USER}\n  secrets file = {d}/secrets\n  auth digest = sha256\n",
            d = d.display(),
            ids = common::daemon::root_ids(),
        ),
    )
    .unwrap();
    let daemon = StockDaemon::with_config(common::daemon::Program::Rtsync, dir);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), b"through sha256").unwrap();
    let src_arg = format!("{}/", src.path().display());
    let target = daemon
        .url("m/")
        .replace("rsync://", &format!("rsync://{SECRET_USER}@"));
    let push = |program: &str, password: &str, dest: &str| {
        let mut cmd = if program == "rtsync" {
            let mut c = Command::new(env!("CARGO_BIN_EXE_rtsync"));
            c.arg("sync");
            c
        } else {
            Command::new("rsync")
        };
        cmd.env("RSYNC_PASSWORD", password)
            .args(["-a", &src_arg, dest]);
        common::run_bounded(&mut cmd, std::time::Duration::from_secs(30))
    };
    for program in ["rtsync", "rsync"] {
        let out = push(program, SECRET_PASSWORD, &format!("{target}{program}/"));
        assert_eq!(
            code(&out),
            Some(0),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(daemon.module_path("m").join(program).join("f")).unwrap(),
            b"through sha256"
        );
        let out = push(program, "wrong", &target);
        assert_eq!(code(&out), Some(5), "{program}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("@ERROR: auth failed on module m"),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn listing_a_module_matches_rsync() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    testkit::tricky_tree(&d.module_path("open"));
    testkit::tricky_tree(&d.module_path("secret"));
    for opts in [
        &[][..],
        &["-a"][..],
        &["-r"][..],
        &["-rlptgoD", "--numeric-ids"][..],
    ] {
        for url in [d.url("open/"), d.url("open/a/b/"), d.url("open/big.bin")] {
            let mut args: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
            args.push("--list-only".into());
            args.push(url.clone());
            let theirs = rsync(&args);
            assert_eq!(
                code(&theirs),
                Some(0),
                "{args:?}: {}",
                String::from_utf8_lossy(&theirs.stderr)
            );
            let ours = rtsync(std::iter::once("sync".to_string()).chain(args.clone()));
            assert_eq!(
                code(&ours),
                Some(0),
                "{args:?}: {}",
                String::from_utf8_lossy(&ours.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&theirs.stdout),
                "{args:?}"
            );
        }
    }
    // Through authentication, with the password in a file as the tutorials keep it.
    let pwfile = d.dir.path().join("client.pw");
    std::fs::write(&pwfile, format!("{SECRET_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pwfile, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let url = d
        .url("secret/")
        .replace("rsync://", &format!("rsync://{SECRET_USER}@"));
    let pw = format!("--password-file={}", pwfile.display());
    let theirs = rsync(["-a", "--list-only", &pw, &url]);
    let ours = rtsync(["sync", "-a", "--list-only", &pw, &url]);
    assert_eq!(
        code(&ours),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout)
    );
}

#[test]
fn pulling_the_tricky_tree_matches_rsync_through_edits() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let module = d.module_path("open");
    testkit::tricky_tree(&module);
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let url = d.url("open/");
    let pull = |extra: &[&str]| {
        let mut args: Vec<String> = vec!["-a".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let theirs = rsync(
            args.iter()
                .cloned()
                .chain([url.clone(), format!("{}/", a.display())]),
        );
        assert_eq!(
            code(&theirs),
            Some(0),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let ours = rtsync(
            ["sync".to_string()]
                .into_iter()
                .chain(args.iter().cloned())
                .chain([url.clone(), format!("{}/", b.display())]),
        );
        assert_eq!(
            code(&ours),
            Some(0),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        testkit::assert_same_tree(&a, &b);
        String::from_utf8_lossy(&ours.stdout).into_owned()
    };
    pull(&[]);
    // Edits on the server side: the changed part of the 10 MiB file comes as literals, the
    // rest is rebuilt from the old copy.
    testkit::mutate(&module);
    let stats = pull(&["--stats"]);
    let literal: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("Literal data: "))
        .map(|v| {
            v.trim_end_matches(" bytes")
                .replace(',', "")
                .parse()
                .unwrap()
        })
        .unwrap();
    let matched: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("Matched data: "))
        .map(|v| {
            v.trim_end_matches(" bytes")
                .replace(',', "")
                .parse()
                .unwrap()
        })
        .unwrap();
    assert!(matched > 9_000_000, "{stats}");
    assert!(literal < 1_000_000, "{stats}");
    // Excludes travel to the daemon.
    let t2 = tempfile::tempdir().unwrap();
    let c = t2.path().join("c");
    let out = rtsync([
        "sync".to_string(),
        "-a".into(),
        "--exclude=*.bin".into(),
        url.clone(),
        format!("{}/", c.display()),
    ]);
    assert_eq!(
        code(&out),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(c.join("a/text.txt").exists());
    assert!(!c.join("big.bin").exists());
}

#[test]
fn pushing_the_tricky_tree_matches_rsync_through_edits_and_deletes() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    testkit::tricky_tree(&src);
    let src_arg = format!("{}/", src.display());
    let push = |extra: &[&str]| {
        let mut args: Vec<String> = vec!["-a".into(), "--delete".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let theirs = rsync(
            args.iter()
                .cloned()
                .chain([src_arg.clone(), d.url("open/")]),
        );
        assert_eq!(
            code(&theirs),
            Some(0),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let ours = rtsync(
            ["sync".to_string()]
                .into_iter()
                .chain(args.iter().cloned())
                .chain([src_arg.clone(), d.url("push/")]),
        );
        assert_eq!(
            code(&ours),
            Some(0),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        testkit::assert_same_tree(&d.module_path("open"), &d.module_path("push"));
        String::from_utf8_lossy(&ours.stdout).into_owned()
    };
    push(&[]);
    // Edits, renames and deletions at the source: the daemon deletes what is gone, and the
    // changed part of the 10 MiB file is all that travels as literal data.
    testkit::mutate(&src);
    let stats = push(&["--stats"]);
    let value = |key: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| {
                v.trim_end_matches(" bytes")
                    .replace(',', "")
                    .parse()
                    .unwrap()
            })
            .unwrap()
    };
    assert!(value("Matched data: ") > 9_000_000, "{stats}");
    assert!(value("Literal data: ") < 1_000_000, "{stats}");
    assert!(!d.module_path("push").join("with space").exists());
    // A read-only module refuses a push with the daemon's words and exit 5.
    let out = rtsync([
        "sync".to_string(),
        "-a".into(),
        src_arg.clone(),
        d.url("ro/"),
    ]);
    let theirs = rsync(["-a".to_string(), src_arg.clone(), d.url("ro/")]);
    assert_eq!(
        code(&out),
        code(&theirs),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pull_with_delete_matches_rsync() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    testkit::tricky_tree(&d.module_path("open"));
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    for variant in [
        &["--delete"][..],
        &["--delete", "--exclude=*.keep"][..],
        &["--delete-after", "--exclude=*.keep", "--delete-excluded"][..],
    ] {
        for dest in [&a, &b] {
            let _ = std::fs::remove_dir_all(dest);
            std::fs::create_dir_all(dest.join("a/stale-dir/deep")).unwrap();
            std::fs::write(dest.join("a/stale-dir/deep/f"), b"x").unwrap();
            std::fs::write(dest.join("stale"), b"x").unwrap();
            std::fs::write(dest.join("a/old.keep"), b"x").unwrap();
            for p in [
                "a/stale-dir/deep/f",
                "a/stale-dir/deep",
                "a/stale-dir",
                "stale",
                "a/old.keep",
            ] {
                testkit::set_mtime(&dest.join(p), 1_500_000_000, 0);
            }
        }
        let mut args: Vec<String> = vec!["-a".into()];
        args.extend(variant.iter().map(|s| s.to_string()));
        let theirs = rsync(
            args.iter()
                .cloned()
                .chain([d.url("open/"), format!("{}/", a.display())]),
        );
        assert_eq!(
            code(&theirs),
            Some(0),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let ours = rtsync(
            ["sync".to_string()]
                .into_iter()
                .chain(args.iter().cloned())
                .chain([d.url("open/"), format!("{}/", b.display())]),
        );
        assert_eq!(
            code(&ours),
            Some(0),
            "{variant:?}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        testkit::assert_same_tree(&a, &b);
    }
}

/// The local destination of a pull is read as rsync's receiver reads it once the file list is
/// in: one file is written as the named path (replacing a file there), a directory is made
/// otherwise, and a destination that cannot take the list is refused with the same exit code.
#[test]
fn a_pull_destination_is_read_as_stock_rsync_reads_it() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let open = d.module_path("open");
    std::fs::create_dir_all(open.join("d")).unwrap();
    std::fs::create_dir_all(open.join("empty")).unwrap();
    std::fs::write(open.join("f"), "one file").unwrap();
    std::fs::write(open.join("d/g"), "in d").unwrap();
    let t = tempfile::tempdir().unwrap();
    let (theirs, ours) = (t.path().join("theirs"), t.path().join("ours"));
    for area in [&theirs, &ours] {
        std::fs::create_dir_all(area.join("exdir")).unwrap();
        for name in ["exfile", "exfile2", "exfile3"] {
            std::fs::write(area.join(name), "old").unwrap();
            // One time in both areas: a refused pull leaves the file as it is.
            testkit::set_mtime(&area.join(name), 1_700_000_000, 0);
        }
    }
    // (source in the module, local destination, exit code stock rsync gives)
    let cases: [(&str, &str, i32); 13] = [
        ("f", "newname", 0), // one file: written as the named path
        ("f", "exfile", 0),  // ... replacing a file there
        ("f", "exdir", 0),   // ... or into an existing directory
        ("f", "newdir/", 0), // a trailing slash makes a directory
        ("d", "dnew", 0),    // several entries: a directory is made
        ("d/", "dnew2", 0),
        ("f", "a/b/c", 3),        // the parent of a one-file destination is missing
        ("d", "x/y/z", 11),       // the parent of a directory to make is missing
        ("f", "newd/x/", 11),     // ... or of one asked for with a slash
        ("d", "exfile2", 3),      // several entries onto a file
        ("empty/", "exfile2", 3), // a directory onto a file
        ("f", "exfile3/", 3),     // a slash on a file's name
        ("missing", "gone", 23),  // nothing to pull: nothing is made
    ];
    for (from, to, want) in cases {
        let run = |program: &str, area: &std::path::Path| {
            let args = [
                "-a".to_string(),
                d.url(&format!("open/{from}")),
                format!("{}/{to}", area.display()),
            ];
            if program == "rsync" {
                rsync(args)
            } else {
                rtsync(["sync".to_string()].into_iter().chain(args))
            }
        };
        let stock = run("rsync", &theirs);
        assert_eq!(
            code(&stock),
            Some(want),
            "stock, {from} -> {to}: {}",
            String::from_utf8_lossy(&stock.stderr)
        );
        let mine = run("rtsync", &ours);
        assert_eq!(
            code(&mine),
            Some(want),
            "ours, {from} -> {to}: {}",
            String::from_utf8_lossy(&mine.stderr)
        );
    }
    // Directories written into and not in the list keep the time of the writes, which
    // differ from one run to the other.
    let diffs = testkit::diff_trees_but_dir_times(&theirs, &ours);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert_eq!(std::fs::read(ours.join("newname")).unwrap(), b"one file");
    assert_eq!(std::fs::read(ours.join("exfile")).unwrap(), b"one file");
    assert_eq!(std::fs::read(ours.join("exfile2")).unwrap(), b"old");
    assert!(!ours.join("gone").exists());
    // With -v the one file is told under its name in the list, as rsync tells it.
    let told = |out: &Output| -> Vec<String> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                !l.starts_with("sent ") && !l.starts_with("total size is ") && !l.is_empty()
            })
            .map(str::to_owned)
            .collect()
    };
    let (stock, mine) = run_both(
        &["-av", "--no-inc-recursive"],
        [&d.url("open/f"), &format!("{}/renamed", theirs.display())],
        [&d.url("open/f"), &format!("{}/renamed", ours.display())],
    );
    assert_eq!(told(&stock), told(&mine));
    assert_eq!(
        std::fs::read(theirs.join("renamed")).unwrap(),
        std::fs::read(ours.join("renamed")).unwrap()
    );
}

#[test]
fn compressed_transfers_with_zstd_match_rsync() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    testkit::tricky_tree(&src);
    let src_arg = format!("{}/", src.display());
    let push = || {
        let theirs = rsync(["-az", "--delete", &src_arg, &d.url("open/")]);
        assert_eq!(
            code(&theirs),
            Some(0),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let ours = rtsync([
            "sync",
            "-az",
            "--delete",
            "--stats",
            &src_arg,
            &d.url("push/"),
        ]);
        assert_eq!(
            code(&ours),
            Some(0),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        testkit::assert_same_tree(&d.module_path("open"), &d.module_path("push"));
        String::from_utf8_lossy(&ours.stdout).into_owned()
    };
    push();
    testkit::mutate(&src);
    let stats = push();
    assert!(stats.contains("Matched data: "), "{stats}");
    // Pull it back compressed, into one copy by rsync and one by rtsync, twice.
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    for _ in 0..2 {
        let theirs = rsync([
            "-az".to_string(),
            d.url("push/"),
            format!("{}/", a.display()),
        ]);
        assert_eq!(code(&theirs), Some(0));
        let ours = rtsync([
            "sync".to_string(),
            "-az".into(),
            d.url("push/"),
            format!("{}/", b.display()),
        ]);
        assert_eq!(
            code(&ours),
            Some(0),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        testkit::assert_same_tree(&a, &b);
        // Change the middle of the 10 MiB file on the daemon's side: the next pull is a delta.
        let big = d.module_path("push").join("big.bin");
        let mut data = std::fs::read(&big).unwrap();
        for byte in &mut data[3_000_000..3_100_000] {
            *byte ^= 0xa5;
        }
        std::fs::write(&big, &data).unwrap();
        testkit::set_mtime(&big, 1_800_000_000, 7);
    }
}

#[test]
fn the_tutorial_push_with_hard_links_matches_rsync() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    testkit::tricky_tree(&src);
    let port = format!("--port={}", d.port);
    for round in 0..2 {
        // `rsync -avH --port N --delete SRC 127.0.0.1::module`, as the tutorials write it.
        let src_arg = src.display().to_string();
        let theirs = rsync(["-avH", &port, "--delete", &src_arg, "127.0.0.1::open"]);
        assert_eq!(
            code(&theirs),
            Some(0),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let ours = rtsync([
            "sync",
            "-avH",
            &port,
            "--delete",
            &src_arg,
            "127.0.0.1::push",
        ]);
        assert_eq!(
            code(&ours),
            Some(0),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        // The module roots are not part of the transfer (no trailing slash on SRC).
        testkit::assert_same_tree_below(&d.module_path("open"), &d.module_path("push"), true);
        if round == 0 {
            testkit::mutate(&src);
        }
    }
}

#[test]
fn the_tutorial_compressed_push_with_excludes_and_a_password_file() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("data");
    std::fs::create_dir(&src).unwrap();
    testkit::tricky_tree(&src);
    std::fs::write(src.join("a/.notes.swp"), b"vim swap").unwrap();
    std::fs::write(src.join("draft.swx"), b"vim swap").unwrap();
    // Old times again: stock rsync's receiver leaves a directory's time alone when it falls
    // in the second the directory was created (seen with 3.5.0), which would make the
    // comparison below depend on the clock.
    testkit::stamp_times(&src);
    std::fs::write(d.module_path("secret").join("stale"), b"to be deleted").unwrap();
    let pwfile = t.path().join("rsync.password");
    std::fs::write(&pwfile, format!("{SECRET_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pwfile, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // `rsync -az --delete --exclude="*.swp" --exclude="*.swx" /data/ user@host::module --password-file=…`
    let opts = ["-az", "--delete", "--exclude=*.swp", "--exclude=*.swx"];
    let src_arg = format!("{}/", src.display());
    ok(&rtsync(
        ["sync"].iter().chain(&opts).map(|s| s.to_string()).chain([
            src_arg.clone(),
            format!("{SECRET_USER}@127.0.0.1::secret"),
            format!("--password-file={}", pwfile.display()),
            format!("--port={}", d.port),
        ]),
    ));
    let module = d.module_path("secret");
    assert!(!module.join("stale").exists());
    assert!(!module.join("a/.notes.swp").exists() && !module.join("draft.swx").exists());
    // Stock rsync, same options, into a second module: the two results must match, which
    // covers what -a without -H keeps (hard links split) and what the daemon does to symlinks.
    std::fs::write(d.module_path("open").join("stale"), b"to be deleted").unwrap();
    ok(&rsync(
        opts.iter().chain(&[src_arg.as_str(), &d.url("open/")]),
    ));
    testkit::assert_same_tree_below(&d.module_path("open"), &module, true);
}

/// The event-driven push `rtsync run` is built on: only the listed paths travel, a listed path
/// that is gone is deleted on the daemon, and the parents sent for `-R` keep their other contents.
#[test]
fn files_from_push_with_delete_missing_args_matches_rsync() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    testkit::tricky_tree(&src);
    let src_arg = format!("{}/", src.display());
    // Debian's rsync 3.2.7-1+deb12u5 (as 3.4.1 to 3.4.3) refuses, as a receiver, the mode-0
    // entries of --delete-missing-args (RsyncProject/rsync#910, fixed in 3.4.4); rtsync does
    // not send them (see mirror::flist::missing_as_deletions). So the stock reference pushes
    // without the option (exit 23 for the missing names), and they are deleted by hand.
    let (open_url, push_url) = (d.url("open/"), d.url("push/"));
    let both = |args: &[String], level_dir_times: bool| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let missing_args = args.contains(&"--delete-missing-args");
        let stock_args: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| *a != "--delete-missing-args")
            .chain([src_arg.as_str(), &open_url])
            .collect();
        let stock = rsync(&stock_args);
        let missing: Vec<Vec<u8>> = files_from_names(&args)
            .into_iter()
            .filter(|n| {
                std::fs::symlink_metadata(src.join(std::ffi::OsStr::from_bytes(n))).is_err()
            })
            .collect();
        let expected = if missing.is_empty() { 0 } else { 23 };
        assert_eq!(
            code(&stock),
            Some(expected),
            "{}",
            String::from_utf8_lossy(&stock.stderr)
        );
        for name in missing.iter().filter(|_| missing_args) {
            let path = d
                .module_path("open")
                .join(std::ffi::OsStr::from_bytes(name));
            if let Ok(meta) = std::fs::symlink_metadata(&path) {
                if meta.is_dir() {
                    std::fs::remove_dir_all(&path).unwrap();
                } else {
                    std::fs::remove_file(&path).unwrap();
                }
            }
        }
        let ours = rtsync(
            ["sync"]
                .iter()
                .chain(&args)
                .chain(&[src_arg.as_str(), push_url.as_str()]),
        );
        ok(&ours);
        // A directory that loses a listed name gets the time of the deletion, which the
        // stock receiver does not put back (and the root is not in a --files-from list at
        // all): directory times differ by when each run happened, so they are levelled.
        for m in ["open", "push"].into_iter().filter(|_| level_dir_times) {
            for (rel, meta) in testkit::list(&d.module_path(m)) {
                if meta.is_dir() {
                    let path = d.module_path(m).join(std::ffi::OsStr::from_bytes(&rel));
                    testkit::set_mtime(&path, 1_000_000_000, 0);
                }
            }
        }
        testkit::assert_same_tree(&d.module_path("open"), &d.module_path("push"));
    };
    both(&["-a".into()], false);
    // Files only the daemon has: a push of a few paths below their directories leaves them.
    for m in ["open", "push"] {
        let path = d.module_path(m).join("a/b/only-on-daemon");
        std::fs::write(&path, b"keep").unwrap();
        testkit::set_mtime(&path, 1_500_000_000, 0);
    }
    change_the_listed_paths(&src);
    let list = t.path().join("changed");
    std::fs::write(
        &list,
        "a/text.txt\na/b/file\nwith space\nnew dir/deeper/f\nnever-existed\n",
    )
    .unwrap();
    let files_from = format!("--files-from={}", list.display());
    both(
        &[
            "-a".into(),
            files_from.clone(),
            "--delete-missing-args".into(),
        ],
        true,
    );
    let push = d.module_path("push");
    assert!(!push.join("a/b/file").exists() && !push.join("with space").exists());
    assert_eq!(std::fs::read(push.join("a/text.txt")).unwrap(), b"edited\n");
    assert_eq!(
        std::fs::read(push.join("new dir/deeper/f")).unwrap(),
        b"new"
    );
    assert!(push.join("a/b/only-on-daemon").exists());
    // With --delete as well (sent as -d --no-r): still only the listed names are touched.
    std::fs::remove_file(src.join("new dir/deeper/f")).unwrap();
    std::fs::write(&list, "new dir/deeper/f\nrun.sh\n").unwrap();
    for m in ["open", "push"] {
        let path = d.module_path(m).join("new dir/only-on-daemon");
        std::fs::write(&path, b"keep").unwrap();
        testkit::set_mtime(&path, 1_500_000_000, 0);
    }
    both(
        &[
            "-a".into(),
            "--delete".into(),
            files_from,
            "--delete-missing-args".into(),
        ],
        true,
    );
    assert!(!push.join("new dir/deeper/f").exists());
    assert!(push.join("new dir/only-on-daemon").exists());
}

/// What a real-time batch carries, made in a tricky tree: one file edited, two deleted, one
/// made in new directories.
fn change_the_listed_paths(root: &std::path::Path) {
    std::fs::write(root.join("a/text.txt"), b"edited\n").unwrap();
    std::fs::remove_file(root.join("a/b/file")).unwrap();
    std::fs::remove_file(root.join("with space")).unwrap();
    std::fs::create_dir_all(root.join("new dir/deeper")).unwrap();
    std::fs::write(root.join("new dir/deeper/f"), b"new").unwrap();
    testkit::stamp_times(root);
}

/// The names of the `--files-from=FILE` among `args` (none without it).
fn files_from_names(args: &[&str]) -> Vec<Vec<u8>> {
    args.iter()
        .find_map(|a| a.strip_prefix("--files-from="))
        .map(|f| {
            std::fs::read(f)
                .unwrap()
                .split(|&c| c == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect()
        })
        .unwrap_or_default()
}

/// A list of 100,000 names each way, with the daemon writing back while we write (the
/// classic rsync deadlock, if reads and writes were not independent).
#[test]
fn a_hundred_thousand_files_each_way_without_deadlock() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    for dir in 0..100 {
        let dir_path = src.join(format!("d{dir:03}"));
        std::fs::create_dir_all(&dir_path).unwrap();
        for f in 0..1000 {
            std::fs::write(dir_path.join(format!("f{f:04}")), format!("{dir}/{f}")).unwrap();
        }
    }
    let bounded = |args: Vec<String>| {
        let started = std::time::Instant::now();
        let out = rtsync(args.into_iter().chain(["--timeout=120".to_string()]));
        assert_eq!(
            code(&out),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        started.elapsed()
    };
    let push = bounded(vec![
        "sync".into(),
        "-a".into(),
        "--delete".into(),
        format!("{}/", src.display()),
        d.url("push/"),
    ]);
    testkit::assert_same_tree_below(&src, &d.module_path("push"), true);
    let back = t.path().join("back");
    let pull = bounded(vec![
        "sync".into(),
        "-a".into(),
        d.url("push/"),
        format!("{}/", back.display()),
    ]);
    testkit::assert_same_tree_below(&src, &back, true);
    eprintln!("100k files: push {push:?}, pull {pull:?}");
}

/// `-c`: the daemon decides by whole-file sums from the list, so a file changed behind the
/// mirror's back with its size and time kept is repaired, and unchanged files are left alone.
#[test]
fn checksum_transfers_repair_what_size_and_time_miss() {
    use std::os::unix::fs::MetadataExt;
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    testkit::tricky_tree(&src);
    let src_arg = format!("{}/", src.display());
    let both = |opts: &str| {
        run_both(
            &[opts],
            [&src_arg, &d.url("open/")],
            [&src_arg, &d.url("push/")],
        );
        testkit::assert_same_tree(&d.module_path("open"), &d.module_path("push"));
    };
    both("-a");
    let inode_of = |rel: &str| {
        std::fs::metadata(d.module_path("push").join(rel))
            .unwrap()
            .ino()
    };
    let big_before = inode_of("big.bin");
    for m in ["open", "push"] {
        damage_keeping_size_and_time(&d.module_path(m).join("a/text.txt"), b"HELLO\nWORLD\n");
    }
    // Size and time agree, so a plain -a push leaves the damage in place...
    both("-a");
    assert_eq!(
        std::fs::read(d.module_path("push").join("a/text.txt")).unwrap(),
        b"HELLO\nWORLD\n"
    );
    // ...and -ac repairs it, rewriting nothing else.
    both("-ac");
    assert_eq!(
        std::fs::read(d.module_path("push").join("a/text.txt")).unwrap(),
        b"hello\nworld\n"
    );
    assert_eq!(inode_of("big.bin"), big_before);

    // The same for pulls: our generator compares sums the daemon's list carries.
    let (theirs, ours) = (t.path().join("theirs"), t.path().join("ours"));
    let pull_both = |opts: &str| {
        run_both(
            &[opts],
            [&d.url("open/"), &format!("{}/", theirs.display())],
            [&d.url("open/"), &format!("{}/", ours.display())],
        );
        testkit::assert_same_tree(&theirs, &ours);
    };
    pull_both("-a");
    let big_before = std::fs::metadata(ours.join("big.bin")).unwrap().ino();
    for dir in [&theirs, &ours] {
        damage_keeping_size_and_time(&dir.join("a/text.txt"), b"HELLO\nWORLD\n");
    }
    pull_both("-a");
    assert_eq!(
        std::fs::read(ours.join("a/text.txt")).unwrap(),
        b"HELLO\nWORLD\n"
    );
    pull_both("-ac");
    assert_eq!(
        std::fs::read(ours.join("a/text.txt")).unwrap(),
        b"hello\nworld\n"
    );
    assert_eq!(
        std::fs::metadata(ours.join("big.bin")).unwrap().ino(),
        big_before
    );
}

/// `-v` on a push names what rsync's client names, and `-n` changes nothing on the daemon.
#[test]
fn verbose_and_dry_run_pushes_print_what_rsync_prints() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    testkit::tricky_tree(&src);
    let src_arg = format!("{}/", src.display());
    // The lines naming entries, without the byte counts, which differ by design.
    let names = |out: &std::process::Output| -> Vec<String> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("sent ") && !l.starts_with("total size is "))
            .map(str::to_string)
            .collect()
    };
    let both = |opts: &[&str], sorted: bool| {
        // rtsync does not use incremental recursion; rsync is asked not to either, so that
        // both say "building file list ... done".
        let (theirs, ours) = run_both(
            &[&["--no-inc-recursive"][..], opts].concat(),
            [&src_arg, &d.url("open/")],
            [&src_arg, &d.url("push/")],
        );
        let (mut a, mut b) = (names(&theirs), names(&ours));
        if sorted {
            // Deletions reach us on their own thread, so only the set of lines is compared.
            a.sort();
            b.sort();
        }
        assert_eq!(a, b);
        String::from_utf8_lossy(&ours.stdout).into_owned()
    };
    let first = both(&["-av"], false);
    assert!(first.contains("big.bin\n") && first.contains("rel-link -> a/b/file\n"));
    testkit::assert_same_tree(&d.module_path("open"), &d.module_path("push"));
    testkit::mutate(&src);
    let before = testkit::list(&d.module_path("push")).len();
    let dry = both(&["-avn", "--delete"], true);
    assert!(dry.contains("deleting ") && dry.trim_end().ends_with("(DRY RUN)"));
    assert_eq!(testkit::list(&d.module_path("push")).len(), before);
    both(&["-av", "--delete"], true);
    testkit::assert_same_tree(&d.module_path("open"), &d.module_path("push"));
}

/// `-v` on a pull names what rsync's client names: the directory made, what arrives, what
/// `--delete` removes.
#[test]
fn verbose_pulls_print_what_rsync_prints() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    testkit::tricky_tree(&d.module_path("open"));
    let (theirs, ours) = (t.path().join("theirs"), t.path().join("ours"));
    let lines = |out: &std::process::Output, dest: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("sent ") && !l.starts_with("total size is "))
            // Each names its own destination.
            .map(|l| l.replace(&dest.display().to_string(), "DEST"))
            .collect();
        // The generator and the receiver print from their own threads (processes, in rsync).
        v.sort();
        v
    };
    let both = |opts: &[&str]| {
        let (rsync_out, rtsync_out) = run_both(
            &[&["--no-inc-recursive"][..], opts].concat(),
            [&d.url("open/"), &format!("{}/", theirs.display())],
            [&d.url("open/"), &format!("{}/", ours.display())],
        );
        assert_eq!(lines(&rsync_out, &theirs), lines(&rtsync_out, &ours));
        assert_eq!(theirs.exists(), ours.exists());
        if theirs.exists() {
            testkit::assert_same_tree(&theirs, &ours);
        }
    };
    // A dry run into a directory that is not there: everything would be new; none is made.
    both(&["-avn"]);
    assert!(!ours.exists() && !theirs.exists());
    both(&["-av"]);
    testkit::mutate(&d.module_path("open"));
    // What would change, itemized, then the same for real.
    both(&["-ain", "--delete"]);
    both(&["-ai", "--delete"]);
    // (Edits in place: a stock receiver does not always put back the time of a directory
    // that gained a name.)
    let open = d.module_path("open");
    std::fs::write(open.join("fresh/new file"), b"rewritten").unwrap();
    std::fs::write(open.join("a/text.txt"), b"rewritten, longer\n").unwrap();
    both(&["-avn", "--delete"]);
    both(&["-av", "--delete"]);
    // Permissions alone: a file with the same content is only put right (".f...p.....").
    let chmodded = d.module_path("open").join("a/text.txt");
    std::fs::set_permissions(
        &chmodded,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    both(&["-ai"]);
    // -H: the same member of each group is sent and the others named "=> it".
    let _ = std::fs::remove_dir_all(&theirs);
    let _ = std::fs::remove_dir_all(&ours);
    both(&["-avH"]);
}

/// `--files-from -R --delete-missing-args` on a pull: the names listed here go to the daemon
/// over the socket; those it has are fetched, those it lacks are deleted here, nothing else
/// is touched. Debian's rsync 3.2.7-1+deb12u5 cannot make this pull itself (its receiver
/// refuses the mode-0 entries, as 3.4.1 to 3.4.3 do: RsyncProject/rsync#910), so it pulls the same
/// list without `--delete-missing-args` (exit 23 for the missing names), which are then
/// deleted by hand.
#[test]
fn files_from_pulls_fetch_and_delete_the_listed_names() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let module = d.module_path("open");
    testkit::tricky_tree(&module);
    let t = tempfile::tempdir().unwrap();
    let (theirs, ours) = (t.path().join("theirs"), t.path().join("ours"));
    let url = d.url("open/");
    let to = |p: &std::path::Path| format!("{}/", p.display());
    run_both(&["-a"], [&url, &to(&theirs)], [&url, &to(&ours)]);
    for dest in [&theirs, &ours] {
        let path = dest.join("a/b/only-here");
        std::fs::write(&path, b"keep").unwrap();
        testkit::set_mtime(&path, 1_500_000_000, 0);
    }
    change_the_listed_paths(&module);
    // NUL-separated, so that a name with a newline can be listed.
    let list = t.path().join("changed");
    std::fs::write(
        &list,
        b"a/text.txt\0a/b/file\0with space\0new dir/deeper/f\0new\nline\0",
    )
    .unwrap();
    std::fs::write(module.join("new\nline"), b"changed newline").unwrap();
    let files_from = format!("--files-from={}", list.display());
    let stock = rsync(["-a", "--from0", &files_from, &url, &to(&theirs)]);
    assert_eq!(
        code(&stock),
        Some(23),
        "{}",
        String::from_utf8_lossy(&stock.stderr)
    );
    for gone in ["a/b/file", "with space"] {
        std::fs::remove_file(theirs.join(gone)).unwrap();
    }
    let mine = rtsync([
        "sync",
        "-a",
        "--from0",
        &files_from,
        "--delete-missing-args",
        &url,
        &to(&ours),
    ]);
    assert_eq!(
        code(&mine),
        Some(0),
        "{}",
        String::from_utf8_lossy(&mine.stderr)
    );
    // Directories that lost a name carry the time of the deletion: levelled.
    for dest in [&theirs, &ours] {
        for (rel, meta) in testkit::list(dest) {
            if meta.is_dir() {
                let path = dest.join(std::ffi::OsStr::from_bytes(&rel));
                testkit::set_mtime(&path, 1_000_000_000, 0);
            }
        }
    }
    testkit::assert_same_tree(&theirs, &ours);
    assert!(!ours.join("a/b/file").exists() && !ours.join("with space").exists());
    assert_eq!(std::fs::read(ours.join("a/text.txt")).unwrap(), b"edited\n");
    assert_eq!(
        std::fs::read(ours.join("new\nline")).unwrap(),
        b"changed newline"
    );
    assert!(
        ours.join("a/b/only-here").exists(),
        "unlisted names are left alone"
    );
}

/// `--stats` on pulls and pushes: rsync's block, line for line; the counts of files, created,
/// deleted and transferred entries and of bytes of data are the same as stock rsync's. (Bytes
/// on the wire and times are each tool's own.)
#[test]
fn stats_blocks_read_as_rsyncs() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    testkit::tricky_tree(&d.module_path("open"));
    let t = tempfile::tempdir().unwrap();
    let block = |out: &std::process::Output| -> Vec<String> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let own = [
                    "File list size:",
                    "File list generation time:",
                    "File list transfer time:",
                    "Total bytes ",
                    "sent ",
                    "total size is ",
                ];
                match own.iter().find(|p| l.starts_with(*p)) {
                    Some(p) => (*p).to_string(),
                    // rsync 3.2.7 counts a device as a link in this one line (its "created"
                    // line says dev): the total is compared, not the kinds.
                    None if l.starts_with("Number of files: ") => {
                        l.split(" (").next().unwrap_or(l).to_string()
                    }
                    None => l.to_string(),
                }
            })
            .collect()
    };
    let (theirs, ours) = (t.path().join("theirs"), t.path().join("ours"));
    let pull = |opts: &[&str]| {
        let (a, b) = run_both(
            &[&["--no-inc-recursive", "--stats"][..], opts].concat(),
            [&d.url("open/"), &format!("{}/", theirs.display())],
            [&d.url("open/"), &format!("{}/", ours.display())],
        );
        assert_eq!(block(&a), block(&b));
        assert!(
            block(&b)
                .iter()
                .any(|l| l.starts_with("Number of created files: "))
        );
    };
    pull(&["-a"]);
    testkit::mutate(&d.module_path("open"));
    pull(&["-a", "--delete"]);
    // A push of what was pulled, to two fresh modules, then again after a deletion.
    let push = |delete: bool| {
        let mut opts = vec!["--no-inc-recursive", "--stats", "-a"];
        if delete {
            opts.push("--delete");
        }
        let (a, b) = run_both(
            &opts,
            [&format!("{}/", theirs.display()), &d.url("push/theirs/")],
            [&format!("{}/", theirs.display()), &d.url("push/ours/")],
        );
        assert_eq!(block(&a), block(&b));
    };
    push(false);
    std::fs::remove_file(theirs.join("a/text.txt")).unwrap();
    push(true);
}

/// `-H` on pulls: the daemon's hard-link groups arrive as groups, before and after edits.
#[test]
fn hard_links_pulled_match_rsync() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let module = d.module_path("open");
    testkit::tricky_tree(&module);
    std::fs::hard_link(module.join("run.sh"), module.join("a/b/run-too")).unwrap();
    std::fs::hard_link(module.join("run.sh"), module.join("sticky/run-three")).unwrap();
    testkit::stamp_times(&module);
    let (theirs, ours) = (t.path().join("theirs"), t.path().join("ours"));
    let both = |opts: &[&str]| {
        run_both(
            opts,
            [&d.url("open/"), &format!("{}/", theirs.display())],
            [&d.url("open/"), &format!("{}/", ours.display())],
        );
        testkit::assert_same_tree(&theirs, &ours);
    };
    both(&["-aH"]);
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &str| std::fs::metadata(ours.join(p)).unwrap().ino();
    assert_eq!(ino("hl1"), ino("a/hl2"));
    assert_eq!(ino("run.sh"), ino("sticky/run-three"));
    // A group that grows, one that splits, and a pull over the result.
    std::fs::remove_file(module.join("a/b/run-too")).unwrap();
    std::fs::hard_link(module.join("hl1"), module.join("dir with space/hl3")).unwrap();
    testkit::mutate(&module);
    testkit::stamp_times(&module);
    both(&["-aH", "--delete"]);
}

/// The quick-check options on pulls (`--size-only`, `-u`, `--ignore-existing`, `-I`) leave
/// alone, or send, exactly what rsync's do.
#[test]
fn quick_check_options_on_pulls_match_rsync() {
    if !have_rsync() {
        return;
    }
    let d = StockDaemon::start();
    let t = tempfile::tempdir().unwrap();
    let module = d.module_path("open");
    for (name, body) in [
        ("same-size", "server!"),
        ("newer-here", "server"),
        ("twin", "server"),
    ] {
        std::fs::write(module.join(name), body).unwrap();
        testkit::set_mtime(&module.join(name), 1_600_000_000, 0);
    }
    testkit::set_mtime(&module, 1_600_000_000, 0);
    let (theirs, ours) = (t.path().join("theirs"), t.path().join("ours"));
    // Both destinations start alike: different content under the same names.
    let reset = || {
        for dest in [&theirs, &ours] {
            let _ = std::fs::remove_dir_all(dest);
            std::fs::create_dir(dest).unwrap();
            for (name, body, time) in [
                ("same-size", "local!!", 1_500_000_000),
                ("newer-here", "local", 1_700_000_000),
                ("twin", "serveR", 1_600_000_000),
            ] {
                std::fs::write(dest.join(name), body).unwrap();
                testkit::set_mtime(&dest.join(name), time, 0);
            }
        }
    };
    for opts in [
        &["-a", "--size-only"][..],
        &["-a", "-u"],
        &["-a", "--ignore-existing"],
        &["-a", "-I"],
        &["-a"],
    ] {
        reset();
        run_both(
            opts,
            [&d.url("open/"), &format!("{}/", theirs.display())],
            [&d.url("open/"), &format!("{}/", ours.display())],
        );
        testkit::assert_same_tree(&theirs, &ours);
    }
    // -I sent the twin that size and time call unchanged; plain -a did not.
    assert_eq!(std::fs::read(ours.join("twin")).unwrap(), b"serveR");
}
