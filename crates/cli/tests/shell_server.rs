//! Stock `rsync` over a remote shell with `--rsync-path=rtsync`: rtsync is the far end
//! (`rtsync --server`), for a host that has rtsync and no rsync. The same pushes and pulls
//! with stock rsync at the far end give the same trees.

mod common;

use common::{fake_ssh, have_rsync, rsync, slash};

#[test]
fn stock_rsync_pushes_to_and_pulls_from_rtsync_server_over_a_remote_shell() {
    if !have_rsync() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let rsh = fake_ssh(t.path());
    let rtsync = env!("CARGO_BIN_EXE_rtsync");
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    testkit::tricky_tree(&src);
    let (a, b) = (t.path().join("by-rsync"), t.path().join("by-rtsync"));
    let run = |extra: &[&str], from: String, to: String, far_end: Option<&str>| {
        let mut args: Vec<String> = vec!["-aH".into(), "-e".into(), rsh.clone()];
        if let Some(path) = far_end {
            args.push(format!("--rsync-path={path}"));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(from);
        args.push(to);
        let out = rsync(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let push = |extra: &[&str]| {
        run(extra, slash(&src), format!("host:{}", slash(&a)), None);
        run(
            extra,
            slash(&src),
            format!("host:{}", slash(&b)),
            Some(rtsync),
        );
        testkit::assert_same_tree(&a, &b);
    };
    push(&["--delete"]);
    testkit::mutate(&src);
    push(&["--delete", "-z"]);
    testkit::assert_same_tree(&src, &b);
    // Pulled back from the rtsync end, into fresh directories.
    let (pa, pb) = (t.path().join("pull-rsync"), t.path().join("pull-rtsync"));
    run(&[], format!("host:{}", slash(&b)), slash(&pa), None);
    run(&[], format!("host:{}", slash(&b)), slash(&pb), Some(rtsync));
    testkit::assert_same_tree(&pa, &pb);
    testkit::assert_same_tree(&src, &pb);
}
