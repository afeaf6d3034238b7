//! `rtsync sync` over a remote shell, against stock `rsync --server` as the remote end. The
//! "remote shell" is a program that runs the command here (the issue allows it where sshd cannot
//! run); both clients use the same one, and the trees they produce are compared.

mod common;

use std::path::Path;

use common::{fake_ssh, have_rsync, rsync, rtsync, slash};

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

/// A remote shell that damages the first copy of a file on its way (`CORRUPT-ME` becomes
/// `CORRUPTED!`, same length, so the framing holds): the whole-file sum catches it, and the
/// redo pass fetches the file again, as rsync's receiver does.
fn damaging_ssh(dir: &Path) -> String {
    let path = dir.join("damaging-ssh");
    std::fs::write(
        &path,
        r#"#!/usr/bin/perl
# Drops -l USER and the host, runs the rest here, and damages the first marker it passes on.
use IO::Select;
if ($ARGV[0] eq '-l') { shift; shift; }
shift;
open(my $child, '-|', @ARGV) or die "cannot run $ARGV[0]: $!";
binmode $child; binmode STDOUT;
my $sel = IO::Select->new($child);
my ($held, $done) = ('', 0);
while (1) {
    if (!$sel->can_read(0.05)) {
        # Idle: the peer may be waiting for what is held back.
        syswrite(STDOUT, $held); $held = '';
        next;
    }
    my $n = sysread($child, my $chunk, 65536);
    last if !$n;
    $held .= $chunk;
    $done = 1 if !$done && $held =~ s/CORRUPT-ME/CORRUPTED!/;
    # Keep back what could be the start of a marker split between reads.
    my $keep = $done ? 0 : 9;
    my $out = length($held) > $keep ? length($held) - $keep : 0;
    syswrite(STDOUT, substr($held, 0, $out));
    $held = substr($held, $out);
}
syswrite(STDOUT, $held);
close($child);
exit($? >> 8);
"#,
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn a_file_damaged_in_transit_is_fetched_again_in_the_redo_pass() {
    if !have_rsync() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let rsh = damaging_ssh(t.path());
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("before"), b"untouched").unwrap();
    std::fs::write(
        src.join("victim"),
        b"CORRUPT-ME, then the rest of the file\n",
    )
    .unwrap();
    std::fs::write(src.join("zafter"), b"untouched too").unwrap();
    // Old times: stock rsync leaves a directory's time alone when it falls in the second it
    // created the directory.
    testkit::stamp_times(&src);
    let (theirs_dir, ours_dir) = (t.path().join("theirs"), t.path().join("ours"));
    // -v: rsync names the damaged file only when verbose.
    let theirs = rsync([
        "-av",
        "-e",
        &rsh,
        &format!("host:{}", slash(&src)),
        &slash(&theirs_dir),
    ]);
    let ours = rtsync([
        "sync",
        "-av",
        "-e",
        &rsh,
        &format!("host:{}", slash(&src)),
        &slash(&ours_dir),
    ]);
    for (who, out) in [("rsync", &theirs), ("rtsync", &ours)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{who}: {stderr}");
        assert!(
            stderr.contains("victim failed verification -- update discarded (will try again)"),
            "{who}: {stderr} / {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    testkit::assert_same_tree(&src, &ours_dir);
    testkit::assert_same_tree(&theirs_dir, &ours_dir);
}
