//! Stock `rsync` clients against `rtsync daemon`, side by side with a stock `rsync --daemon`
//! given the same rsyncd.conf and the same commands: the module trees, the trees pulled back,
//! the exit codes and the refusals must match.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Output;

use common::daemon::{Program, SECRET_PASSWORD, SECRET_USER, StockDaemon};
use common::{have_rsync, rsync, rtsync};

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A stock daemon and ours, each with the standard test modules.
struct Pair {
    stock: StockDaemon,
    ours: StockDaemon,
}

impl Pair {
    fn start() -> Pair {
        Pair {
            stock: StockDaemon::start(),
            ours: StockDaemon::start_rtsync(),
        }
    }

    /// Runs stock rsync with `args`, where `{}` in an argument stands for the daemon's URL
    /// prefix (`rsync://127.0.0.1:PORT/`), against both daemons; asserts the same exit code.
    fn run(&self, args: &[&str]) -> (Output, Output) {
        let with = |d: &StockDaemon| -> Vec<String> {
            args.iter().map(|a| a.replace("{}", &d.url(""))).collect()
        };
        let theirs = rsync(with(&self.stock));
        let ours = rsync(with(&self.ours));
        assert_eq!(
            code(&ours),
            code(&theirs),
            "exit codes differ for {args:?}\nstock daemon: {}\nrtsync daemon: {}",
            text(&theirs),
            text(&ours)
        );
        (theirs, ours)
    }

    fn same_module(&self, module: &str) {
        testkit::assert_same_tree(
            &self.stock.module_path(module),
            &self.ours.module_path(module),
        );
    }
}

fn slash(p: &Path) -> String {
    format!("{}/", p.display())
}

/// The tricky tree in `t/name`.
fn tricky_source(t: &Path, name: &str) -> std::path::PathBuf {
    let src = t.join(name);
    std::fs::create_dir(&src).unwrap();
    testkit::tricky_tree(&src);
    src
}

/// A file only its owner may read (password and secrets files).
fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

#[test]
fn stock_clients_push_and_pull_the_tricky_tree_as_with_a_stock_daemon() {
    if !have_rsync() {
        return;
    }
    let pair = Pair::start();
    let t = tempfile::tempdir().unwrap();
    let src = tricky_source(t.path(), "src");
    let src_arg = slash(&src);

    let (_, ours) = pair.run(&["-aH", "--delete", &src_arg, "{}open/"]);
    assert_eq!(code(&ours), Some(0), "{}", text(&ours));
    pair.same_module("open");

    // Edits, renames and deletions: the module follows, and the big file's change is all
    // the literal data that travels.
    testkit::mutate(&src);
    let (theirs, ours) = pair.run(&["-aH", "--delete", "--stats", &src_arg, "{}open/"]);
    pair.same_module("open");
    let literal =
        |out: &Output| common::stat(&String::from_utf8_lossy(&out.stdout), "Literal data:");
    assert!(
        literal(&ours) <= literal(&theirs) + 64 * 1024,
        "{}\n{}",
        text(&theirs),
        text(&ours)
    );

    // Pulled back, by both daemons, into fresh directories: the same trees.
    let (a, b) = (t.path().join("pull-stock"), t.path().join("pull-ours"));
    let theirs = rsync(["-aH".to_string(), pair.stock.url("open/"), slash(&a)]);
    let ours = rsync(["-aH".to_string(), pair.ours.url("open/"), slash(&b)]);
    assert_eq!(code(&theirs), Some(0), "{}", text(&theirs));
    assert_eq!(code(&ours), Some(0), "{}", text(&ours));
    testkit::assert_same_tree(&a, &b);

    // A pull with --delete into a tree that has more.
    std::fs::write(b.join("extra file"), "x").unwrap();
    let ours = rsync([
        "-a".to_string(),
        "--delete".into(),
        pair.ours.url("open/"),
        slash(&b),
    ]);
    assert_eq!(code(&ours), Some(0), "{}", text(&ours));
    assert!(!b.join("extra file").exists());
}

#[test]
fn compressed_pushes_and_pulls_negotiate_zstd() {
    if !have_rsync() {
        return;
    }
    let pair = Pair::start();
    let t = tempfile::tempdir().unwrap();
    let src = tricky_source(t.path(), "src");
    let (_, ours) = pair.run(&["-az", "--delete", &slash(&src), "{}open/"]);
    assert_eq!(code(&ours), Some(0), "{}", text(&ours));
    pair.same_module("open");
    let (a, b) = (t.path().join("back-stock"), t.path().join("back-ours"));
    let theirs = rsync(["-az".to_string(), pair.stock.url("open/"), slash(&a)]);
    let ours = rsync(["-az".to_string(), pair.ours.url("open/"), slash(&b)]);
    assert_eq!(code(&theirs), Some(0), "{}", text(&theirs));
    assert_eq!(code(&ours), Some(0), "{}", text(&ours));
    testkit::assert_same_tree(&a, &b);
}

#[test]
fn event_batches_with_files_from_and_delete_missing_args() {
    if !have_rsync() {
        return;
    }
    let pair = Pair::start();
    let t = tempfile::tempdir().unwrap();
    let src = tricky_source(t.path(), "src");
    pair.run(&["-a", &slash(&src), "{}open/"]);
    // What an event batch sends: two changed files, one made, one gone.
    std::fs::write(src.join("new file"), "fresh").unwrap();
    std::fs::remove_file(src.join("with space")).ok();
    let list = t.path().join("list");
    std::fs::write(&list, "new file\0with space\0").unwrap();
    let from = format!("--files-from={}", list.display());
    // Debian's rsync 3.2.7-1+deb12u5 (as 3.4.1 to 3.4.3) cannot be the reference here: its
    // receiver refuses the mode-0 entries of --delete-missing-args ("invalid file mode 00",
    // exit 2; RsyncProject/rsync#910, fixed in 3.4.4). The stock daemon gets the same batch
    // without the option (exit 23 for the missing name), and that name is deleted by hand;
    // ours gets the stock client's mode-0 entry and deletes it as rsync 3.4.4 does.
    let stock_url = pair.stock.url("open/");
    let theirs = rsync(["-a", "-R", "--from0", &from, &slash(&src), &stock_url]);
    assert_eq!(code(&theirs), Some(23), "{}", text(&theirs));
    std::fs::remove_file(pair.stock.module_path("open").join("with space")).unwrap();
    let ours_url = pair.ours.url("open/");
    let ours = rsync([
        "-a",
        "-R",
        "--from0",
        "--delete-missing-args",
        &from,
        &slash(&src),
        &ours_url,
    ]);
    assert_eq!(code(&ours), Some(0), "{}", text(&ours));
    // The module's own time moves with each write there: only what is below it must match.
    testkit::assert_same_tree_below(
        &pair.stock.module_path("open"),
        &pair.ours.module_path("open"),
        true,
    );
    assert!(pair.ours.module_path("open").join("new file").exists());
    assert!(!pair.ours.module_path("open").join("with space").exists());

    // A pull of just the listed paths: the names go to the daemon over the socket.
    let pull_list = t.path().join("pull-list");
    std::fs::write(
        &pull_list,
        "new file
a/text.txt
not there
a/b
",
    )
    .unwrap();
    let (a, b) = (t.path().join("pulled-stock"), t.path().join("pulled-ours"));
    let from = format!("--files-from={}", pull_list.display());
    let theirs = rsync([
        "-a".to_string(),
        from.clone(),
        pair.stock.url("open/"),
        slash(&a),
    ]);
    let ours = rsync(["-a".to_string(), from, pair.ours.url("open/"), slash(&b)]);
    assert_eq!(
        code(&ours),
        code(&theirs),
        "{}\n{}",
        text(&theirs),
        text(&ours)
    );
    testkit::assert_same_tree_below(&a, &b, true);
    assert!(b.join("a/text.txt").exists() && !b.join("big.bin").exists());
}

/// `a` and `b` are the same but for directory `old`'s time: stock rsync 3.5 leaves the time of
/// a directory it wrote into under --existing as the write left it; rtsync gives it the
/// source's, as without --existing.
fn same_but_old_dir_time(a: &Path, b: &Path) {
    let diffs: Vec<String> = testkit::diff_trees_below(a, b, true)
        .into_iter()
        .filter(|d| !d.starts_with("\"old\" differs"))
        .collect();
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn existing_pushes_update_only_what_the_module_has_as_with_a_stock_daemon() {
    if !have_rsync() {
        return;
    }
    let pair = Pair::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("old")).unwrap();
    std::fs::write(src.join("old/kept"), "v1").unwrap();
    pair.run(&["-a", &slash(&src), "{}open/"]);
    std::fs::write(src.join("old/kept"), "version 2").unwrap();
    std::fs::write(src.join("old/new file"), "not made").unwrap();
    std::fs::create_dir_all(src.join("new dir/deep")).unwrap();
    std::fs::write(src.join("new dir/deep/f"), "not made").unwrap();
    std::fs::write(src.join("top"), "not made").unwrap();
    let (_, ours) = pair.run(&["-a", "--existing", &slash(&src), "{}open/"]);
    assert_eq!(code(&ours), Some(0), "{}", text(&ours));
    same_but_old_dir_time(
        &pair.stock.module_path("open"),
        &pair.ours.module_path("open"),
    );
    let m = pair.ours.module_path("open");
    assert_eq!(
        std::fs::metadata(m.join("old"))
            .unwrap()
            .modified()
            .unwrap(),
        std::fs::metadata(src.join("old"))
            .unwrap()
            .modified()
            .unwrap()
    );
    assert_eq!(std::fs::read(m.join("old/kept")).unwrap(), b"version 2");
    assert!(
        !m.join("old/new file").exists() && !m.join("new dir").exists() && !m.join("top").exists()
    );
    // And our client pulling with --existing does what stock rsync does.
    let (a, b) = (t.path().join("pull-stock"), t.path().join("pull-ours"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d.join("old")).unwrap();
        std::fs::write(d.join("old/kept"), "stale").unwrap();
    }
    let theirs = rsync(["-a", "--existing", &pair.stock.url("open/"), &slash(&a)]);
    let ours = rtsync([
        "sync",
        "-a",
        "--existing",
        &pair.stock.url("open/"),
        &slash(&b),
    ]);
    assert_eq!(
        code(&ours),
        code(&theirs),
        "{}\n{}",
        text(&theirs),
        text(&ours)
    );
    same_but_old_dir_time(&a, &b);
    assert_eq!(std::fs::read(b.join("old/kept")).unwrap(), b"version 2");
}

#[test]
fn a_destination_path_below_the_module_is_read_as_a_stock_daemon_reads_it() {
    if !have_rsync() {
        return;
    }
    let pair = Pair::start();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::create_dir_all(src.join("empty")).unwrap();
    std::fs::write(src.join("f"), "one file").unwrap();
    std::fs::write(src.join("d/g"), "in d").unwrap();
    for d in [&pair.stock, &pair.ours] {
        let m = d.module_path("open");
        std::fs::create_dir_all(m.join("exdir")).unwrap();
        std::fs::write(m.join("exfile"), "old").unwrap();
        std::fs::write(m.join("exfile2"), "old").unwrap();
        // The same time in both modules: a refused push leaves it as it is.
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        for name in ["exfile", "exfile2"] {
            std::fs::File::options()
                .write(true)
                .open(m.join(name))
                .and_then(|f| f.set_modified(when))
                .unwrap();
        }
    }
    let f = src.join("f").display().to_string();
    let d = src.join("d").display().to_string();
    // (source, destination below the module, exit code stock rsync 3.2.7-3.5.0 gives)
    let cases: [(&str, &str, i32); 12] = [
        (&f, "newname", 0), // one file: written as the named path
        (&f, "exfile", 0),  // ... replacing a file there
        (&f, "exdir", 0),   // ... or into an existing directory
        (&f, "newdir/", 0), // a trailing slash makes a directory
        (&d, "dnew", 0),    // several entries: a directory is made
        (&f, "a/b/c", 3),   // the parent of a one-file destination is missing
        (&d, "x/y/z", 11),  // the parent of a directory to make is missing
        (&f, "newd/x/", 11),
        (&d, "exfile2", 3),                         // several entries onto a file
        (&slash(&src.join("empty")), "exfile2", 3), // a directory onto a file
        (&slash(&src.join("d")), "dnew2", 0),
        (&f, "exfile2/", 3), // a slash on a file's name
    ];
    for (from, to, want) in cases {
        let (theirs, ours) = pair.run(&["-a", from, &format!("{{}}open/{to}")]);
        assert_eq!(
            code(&theirs),
            Some(want),
            "stock, {from} -> {to}: {}",
            text(&theirs)
        );
        if want != 0 {
            let said = text(&ours);
            assert!(
                said.contains("failed") || said.contains("ERROR: "),
                "{from} -> {to}: {said}"
            );
        }
    }
    // Directory times aside: stock 3.5.0 leaves some directories it made with the time its
    // writes gave them.
    let diffs = testkit::diff_trees_but_dir_times(
        &pair.stock.module_path("open"),
        &pair.ours.module_path("open"),
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    let m = pair.ours.module_path("open");
    assert_eq!(std::fs::read(m.join("newname")).unwrap(), b"one file");
    assert_eq!(std::fs::read(m.join("exfile")).unwrap(), b"one file");
    assert_eq!(std::fs::read(m.join("exfile2")).unwrap(), b"old");
}

/// What a pull cannot find, or a directory it is not asked to recurse into, gives the stock
/// client what a stock daemon gives: exit 23 and the name within the module (never the
/// server's path), or a "skipping directory" and exit 0, and nothing made here.
#[test]
fn a_pull_of_nothing_is_told_as_a_stock_daemon_tells_it() {
    if !have_rsync() {
        return;
    }
    let pair = Pair::start();
    for d in [&pair.stock, &pair.ours] {
        std::fs::create_dir_all(d.module_path("open").join("dd")).unwrap();
    }
    let t = tempfile::tempdir().unwrap();
    let gone = t.path().join("gone");
    let (theirs, ours) = pair.run(&["-a", "{}open/missing", gone.to_str().unwrap()]);
    assert_eq!(code(&theirs), Some(23), "{}", text(&theirs));
    let said = text(&ours);
    assert!(said.contains("\"missing\" (in open)"), "{said}");
    let module = pair.ours.module_path("open").display().to_string();
    assert!(!said.contains(&module), "{said}");
    assert!(!gone.exists());
    let (theirs, ours) = pair.run(&["-v", "{}open/dd", gone.to_str().unwrap()]);
    assert_eq!(code(&theirs), Some(0), "{}", text(&theirs));
    assert!(
        text(&ours).contains("skipping directory dd"),
        "{}",
        text(&ours)
    );
    assert!(!gone.exists());
}

#[test]
fn a_clients_chmod_applies_to_what_it_pushes_as_with_a_stock_daemon() {
    if !have_rsync() {
        return;
    }
    let pair = Pair::start();
    let t = tempfile::tempdir().unwrap();
    let src = tricky_source(t.path(), "src");
    let (_, ours) = pair.run(&["-a", "--chmod=D750,Fgo-rwx,F+X", &slash(&src), "{}open/"]);
    assert_eq!(code(&ours), Some(0), "{}", text(&ours));
    testkit::assert_same_tree_below(
        &pair.stock.module_path("open"),
        &pair.ours.module_path("open"),
        true,
    );
    // A malformed one is refused as stock rsync refuses it (by the client, before asking).
    let (theirs, ours) = pair.run(&["-a", "--chmod=Q+z", &slash(&src), "{}open/"]);
    assert_ne!(code(&ours), Some(0), "{}", text(&ours));
    assert_eq!(code(&ours), code(&theirs));
}

/// The classic tutorial's rsyncd.conf, as written (uid/gid root only where we are root).
fn tutorial_conf(d: &Path, port_note: &str) -> String {
    format!(
        "{ids}use chroot = no\nmax connections = 200\ntimeout = 600\npid file = {d}/rsyncd.pid\n\
         lock file = {d}/rsync.lock\nlog file = {d}/rsyncd.log\nlog format = %t %a %m %f %b\n\
         # {port_note}\n\
         [backup_www]\npath = {d}/www/\nignore errors\nread only = no\nlist = no\n\
         hosts allow = 127.0.0.1/8\nhosts deny = *\nauth users = {SECRET_USER}\n\
         secrets file = {d}/rsync.password\n",
        d = d.display(),
        ids = common::daemon::root_ids(),
    )
}

fn tutorial_daemon(program: Program) -> StockDaemon {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("www")).unwrap();
    write_private(
        &d.join("rsync.password"),
        &format!("{SECRET_USER}:{SECRET_PASSWORD}\n"),
    );
    std::fs::write(d.join("rsyncd.conf"), tutorial_conf(d, "the tutorial's")).unwrap();
    StockDaemon::with_config(program, dir)
}

#[test]
fn the_tutorial_configuration_works_as_written() {
    if !have_rsync() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = tricky_source(t.path(), "html");
    let pw = t.path().join("rsync.password");
    write_private(&pw, &format!("{SECRET_PASSWORD}\n"));
    let pw_arg = format!("--password-file={}", pw.display());
    let stock = tutorial_daemon(Program::Rsync);
    let ours = tutorial_daemon(Program::Rtsync);
    let push = |d: &StockDaemon| {
        rsync([
            "-avH".to_string(),
            "--port".into(),
            d.port.to_string(),
            "--delete".into(),
            slash(&src),
            format!("{SECRET_USER}@127.0.0.1::backup_www"),
            pw_arg.clone(),
        ])
    };
    let (theirs, mine) = (push(&stock), push(&ours));
    assert_eq!(code(&theirs), Some(0), "{}", text(&theirs));
    assert_eq!(code(&mine), Some(0), "{}", text(&mine));
    // `use chroot = no` munges symlinks on both daemons alike.
    testkit::assert_same_tree(&stock.module_path("www"), &ours.module_path("www"));
    // `list = no`: the module is not listed.
    let listing = rsync([format!("rsync://127.0.0.1:{}/", ours.port)]);
    assert!(!text(&listing).contains("backup_www"), "{}", text(&listing));
    // The log file names the connection and the login.
    let log = std::fs::read_to_string(ours.dir.path().join("rsyncd.log")).unwrap();
    assert!(
        log.lines().any(|l| l.contains(&format!(
            "rsync to backup_www/ from {SECRET_USER}@localhost (127.0.0.1)"
        ))),
        "{log}"
    );
    // Pulled back through the munging, the links are the source's again.
    let back = t.path().join("back");
    let out = rsync([
        "-aH".to_string(),
        format!("rsync://{SECRET_USER}@127.0.0.1:{}/backup_www/", ours.port),
        slash(&back),
        pw_arg.clone(),
    ]);
    assert_eq!(code(&out), Some(0), "{}", text(&out));
    testkit::assert_same_tree(&src, &back);
}

/// The first line of what the client printed for a refusal.
fn first_line(out: &Output) -> String {
    text(out).lines().next().unwrap_or_default().to_owned()
}

#[test]
fn refusals_give_rsyncs_messages_and_exit_codes() {
    if !have_rsync() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    let pw = t.path().join("pw");
    write_private(&pw, "wrong\n");
    let wrong = format!("--password-file={}", pw.display());
    let pair = Pair::start();

    // Wrong password, and a user the module does not know: exit 5 with the daemon's words.
    for user in [SECRET_USER, "mallory"] {
        let target = format!("rsync://{user}@127.0.0.1:PORT/secret/");
        let args = |d: &StockDaemon| {
            vec![
                "-a".to_string(),
                slash(&src),
                target.replace("PORT", &d.port.to_string()),
                wrong.clone(),
            ]
        };
        let theirs = rsync(args(&pair.stock));
        let ours = rsync(args(&pair.ours));
        assert_eq!(code(&theirs), Some(5));
        assert_eq!(code(&ours), Some(5), "{}", text(&ours));
        assert_eq!(first_line(&ours), first_line(&theirs));
    }
    // An unknown module.
    let (theirs, ours) = pair.run(&["-a", &slash(&src), "{}nosuch/"]);
    assert_eq!(first_line(&ours), first_line(&theirs));
    // A read-only module refuses a push with the daemon's text.
    let (theirs, ours) = pair.run(&["-a", &slash(&src), "{}ro/"]);
    assert!(
        text(&ours).contains("ERROR: module is read only"),
        "{}",
        text(&ours)
    );
    assert!(text(&theirs).contains("ERROR: module is read only"));
    assert!(
        std::fs::read_dir(pair.ours.module_path("ro"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// A daemon whose rsyncd.conf is `conf` (with `{d}` for its directory) and one module `m`.
fn custom(program: Program, conf: &str) -> StockDaemon {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("m")).unwrap();
    let ids = common::daemon::root_ids();
    let text = format!(
        "{ids}use chroot = no\nlog file = {d}/rsyncd.log\n{}",
        conf.replace("{d}", &dir.path().display().to_string()),
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("rsyncd.conf"), text).unwrap();
    StockDaemon::with_config(program, dir)
}

#[test]
fn denied_hosts_refused_options_and_max_connections_as_rsync() {
    if !have_rsync() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    let cases = [
        "[m]\npath = {d}/m\nread only = no\nhosts allow = 10.0.0.0/8\n",
        "[m]\npath = {d}/m\nread only = no\nhosts deny = 127.0.0.1\n",
        "[m]\npath = {d}/m\nread only = no\nrefuse options = delete\n",
    ];
    for conf in cases {
        let (stock, ours) = (custom(Program::Rsync, conf), custom(Program::Rtsync, conf));
        let args = |d: &StockDaemon| {
            vec![
                "-a".to_string(),
                "--delete".into(),
                slash(&src),
                d.url("m/"),
            ]
        };
        let theirs = rsync(args(&stock));
        let mine = rsync(args(&ours));
        assert_ne!(code(&theirs), Some(0), "{conf}");
        assert_eq!(
            code(&mine),
            code(&theirs),
            "{conf}\n{}\n{}",
            text(&theirs),
            text(&mine)
        );
        let key = |out: &Output| {
            let t = text(out);
            ["access denied", "refuse", "delete"]
                .iter()
                .filter(|k| t.contains(*k))
                .count()
        };
        assert_eq!(
            key(&mine),
            key(&theirs),
            "{}\n{}",
            text(&theirs),
            text(&mine)
        );
        assert!(
            std::fs::read_dir(ours.module_path("m"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    // max connections = 1: a client that holds the only slot keeps the next one out.
    let conf = "[m]\npath = {d}/m\nread only = no\nmax connections = 1\nlock file = {d}/lock\n";
    for program in [Program::Rsync, Program::Rtsync] {
        let d = custom(program, conf);
        let mut holder = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
        holder
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        holder.write_all(b"@RSYNCD: 31.0\nm\n").unwrap();
        // Wait until the daemon has taken the slot: it answers with OK.
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("@RSYNCD: OK") {
            let n = holder.read(&mut buf).unwrap();
            assert!(n > 0, "{program:?}: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        let out = rsync(["-a".to_string(), slash(&src), d.url("m/")]);
        assert_eq!(code(&out), Some(5), "{program:?}: {}", text(&out));
        assert!(
            text(&out).contains("max connections (1) reached -- try again later"),
            "{program:?}: {}",
            text(&out)
        );
        drop(holder);
    }
}

/// The lines a `-v` client prints about items, without the header (a stock daemon grants
/// incremental recursion, rtsync does not), the byte counts, and the top directory's line
/// (`./`: whether rsync names it depends on when its delete-during pass retimes the top,
/// which rtsync, deleting before, does not reproduce).
fn item_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("sending incremental")
                && !l.starts_with("building file list")
                && !l.starts_with("sent ")
                && !l.starts_with("total size")
                && *l != "./"
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn verbose_and_dry_run_pushes_print_what_a_stock_daemon_makes_them_print() {
    if !have_rsync() {
        return;
    }
    let pair = Pair::start();
    let t = tempfile::tempdir().unwrap();
    let src = tricky_source(t.path(), "src");
    pair.run(&["-a", &slash(&src), "{}open/"]);
    testkit::mutate(&src);
    std::fs::create_dir(src.join("made later")).unwrap();
    std::fs::write(src.join("made later/inside"), "x").unwrap();
    for d in [&pair.stock, &pair.ours] {
        std::fs::write(d.module_path("open").join("only there"), "x").unwrap();
    }
    let before = testkit::list(&pair.ours.module_path("open"));
    // -n: the same report, and nothing changes.
    let (theirs, ours) = pair.run(&["-avn", "--delete", &slash(&src), "{}open/"]);
    // rsync deletes during the walk, directory by directory; rtsync before it: the same
    // lines in another order.
    let sorted = |out: &Output| {
        let mut v = item_lines(out);
        v.sort();
        v
    };
    assert_eq!(sorted(&ours), sorted(&theirs));
    assert!(item_lines(&ours).iter().any(|l| l == "deleting only there"));
    let after = testkit::list(&pair.ours.module_path("open"));
    assert_eq!(
        before.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        after.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    // For real: the same report again, and the same modules.
    let (theirs, ours) = pair.run(&["-av", "--delete", &slash(&src), "{}open/"]);
    assert_eq!(sorted(&ours), sorted(&theirs));
    // (Here the stock daemon's times for the top and for the new directory come out later
    // than the source's, where rtsync's match the source, so the module is checked against
    // the source rather than against the stock daemon's.)
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let made = pair.ours.module_path("open").join("made later");
    assert_eq!(mtime(&made), mtime(&src.join("made later")));
    assert_eq!(std::fs::read(made.join("inside")).unwrap(), b"x");
    assert!(!pair.ours.module_path("open").join("only there").exists());
}

#[test]
fn incoming_and_outgoing_chmod_and_ignore_nonreadable_as_rsync() {
    if !have_rsync() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("dir/f"), "x").unwrap();
    std::fs::set_permissions(
        src.join("dir/f"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let conf = "[m]\npath = {d}/m\nread only = no\nincoming chmod = Dg+s,Fo-r\n\
                outgoing chmod = F600\n";
    let (stock, ours) = (custom(Program::Rsync, conf), custom(Program::Rtsync, conf));
    let mode =
        |p: &Path| std::os::unix::fs::MetadataExt::mode(&std::fs::metadata(p).unwrap()) & 0o7777;
    for d in [&stock, &ours] {
        let out = rsync(["-a".to_string(), slash(&src), d.url("m/")]);
        assert_eq!(code(&out), Some(0), "{}", text(&out));
    }
    for p in ["dir", "dir/f"] {
        assert_eq!(
            mode(&ours.module_path("m").join(p)),
            mode(&stock.module_path("m").join(p)),
            "{p}"
        );
    }
    assert_eq!(mode(&ours.module_path("m").join("dir/f")), 0o640);
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    rsync(["-a".to_string(), stock.url("m/"), slash(&a)]);
    rsync(["-a".to_string(), ours.url("m/"), slash(&b)]);
    assert_eq!(mode(&b.join("dir/f")), mode(&a.join("dir/f")));
    assert_eq!(mode(&b.join("dir/f")), 0o600);

    // `ignore nonreadable`: only meaningful when the module's user is not root.
    if !common::daemon::rustix_is_root() {
        return;
    }
    for (extra, expect_file) in [("", false), ("ignore nonreadable = yes\n", false)] {
        let conf =
            format!("[m]\npath = {{d}}/m\nread only = yes\nuid = nobody\ngid = nogroup\n{extra}");
        let (stock, ours) = (
            custom(Program::Rsync, &conf),
            custom(Program::Rtsync, &conf),
        );
        for d in [&stock, &ours] {
            let m = d.module_path("m");
            std::fs::set_permissions(
                d.dir.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
            std::fs::set_permissions(&m, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            std::fs::write(m.join("secret"), "s").unwrap();
            std::fs::set_permissions(
                m.join("secret"),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .unwrap();
            std::fs::write(m.join("public"), "p").unwrap();
            std::fs::set_permissions(
                m.join("public"),
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )
            .unwrap();
        }
        let (a, b) = (
            t.path().join(format!("na{}", extra.len())),
            t.path().join(format!("nb{}", extra.len())),
        );
        let theirs = rsync(["-a".to_string(), stock.url("m/"), slash(&a)]);
        let mine = rsync(["-a".to_string(), ours.url("m/"), slash(&b)]);
        assert_eq!(
            code(&mine),
            code(&theirs),
            "{extra}\n{}\n{}",
            text(&theirs),
            text(&mine)
        );
        assert_eq!(b.join("secret").exists(), expect_file);
        assert!(b.join("public").exists());
    }
}
