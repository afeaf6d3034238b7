//! `rtsync sync` over a remote shell, against stock `rsync --server` as the remote end. The
//! "remote shell" is a program that runs the command here (the issue allows it where sshd cannot
//! run); both clients use the same one, and the trees they produce are compared.

mod common;

use std::path::Path;

use common::{have_rsync, rsync, rtsync, slash};

fn fake_ssh(dir: &Path) -> String {
    let path = dir.join("fake-ssh");
    std::fs::write(&path, "#!/bin/sh\n# Drops -l USER and the host, runs the rest here.\nif [ \"$1\" = \"-l\" ]; then shift 2; fi\nshift\nexec \"$@\"\n").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn push_and_pull_over_a_remote_shell_match_rsync() {
    if !have_rsync() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let rsh = fake_ssh(t.path());
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    testkit::tricky_tree(&src);
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let push = |extra: &[&str]| {
        let mut args: Vec<String> = vec!["-a".into(), "--delete".into(), "-e".into(), rsh.clone()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let theirs = rsync(
            args.iter()
                .cloned()
                .chain([slash(&src), format!("me@host:{}", slash(&a))]),
        );
        assert_eq!(
            theirs.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let ours = rtsync(
            ["sync".to_string()]
                .into_iter()
                .chain(args.iter().cloned())
                .chain([slash(&src), format!("me@host:{}", slash(&b))]),
        );
        assert_eq!(
            ours.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&ours.stderr)
        );
        testkit::assert_same_tree(&a, &b);
    };
    push(&[]);
    testkit::mutate(&src);
    push(&[]);
    // And back: pulls from the "remote" side.
    let (c, d) = (t.path().join("c"), t.path().join("d"));
    let theirs = rsync(["-a", "-e", &rsh, &format!("host:{}", slash(&a)), &slash(&c)]);
    assert_eq!(theirs.status.code(), Some(0));
    let ours = rtsync([
        "sync",
        "-a",
        "-e",
        &rsh,
        &format!("host:{}", slash(&a)),
        &slash(&d),
    ]);
    assert_eq!(
        ours.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    testkit::assert_same_tree(&c, &d);
    // A remote shell that cannot start is a connection error.
    let out = rtsync([
        "sync",
        "-a",
        "-e",
        "/nonexistent/ssh",
        &slash(&src),
        "host:/x/",
    ]);
    assert_eq!(
        out.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
