//! `rtsync doctor`: what this machine allows a watcher to do, and the exact commands to change
//! it. It reads `/proc/sys/fs/inotify/*`, counts the directories under the trees given, checks
//! whether fanotify could watch a whole filesystem here, and prints sysctl lines (and how to make
//! them permanent). It never changes a kernel setting itself.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use watch::limits;

const USAGE: &str = "\
Check kernel limits and privileges for watching trees, with advice

Usage: rtsync doctor [TREE]...

For each TREE, counts its directories (each needs one inotify watch) and compares the total with
fs.inotify.max_user_watches. Prints the sysctl lines to raise what is too low; changes nothing.
";

/// Runs `rtsync doctor` with the arguments after the subcommand name.
pub fn main(args: &[OsString]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if let Some(opt) = args.iter().find(|a| a.to_string_lossy().starts_with('-')) {
        eprintln!(
            "rtsync doctor: unknown option {}\n\n{USAGE}",
            opt.to_string_lossy()
        );
        return ExitCode::from(1);
    }
    let trees: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
    print!("{}", report(&trees));
    ExitCode::SUCCESS
}

fn report(trees: &[PathBuf]) -> String {
    let mut out = String::new();
    let watches = limits::read("max_user_watches");
    let instances = limits::read("max_user_instances");
    let queued = limits::read("max_queued_events");
    let show = |v: Option<u64>| v.map_or_else(|| "unreadable".to_string(), |v| v.to_string());
    out.push_str("inotify limits (/proc/sys/fs/inotify):\n");
    out.push_str(&format!("  max_user_watches   = {}\n", show(watches)));
    out.push_str(&format!("  max_user_instances = {}\n", show(instances)));
    out.push_str(&format!("  max_queued_events  = {}\n", show(queued)));

    let mut needed = 0;
    for tree in trees {
        if !tree.is_dir() {
            out.push_str(&format!("\n{}: not a directory\n", tree.display()));
            continue;
        }
        let dirs = limits::count_dirs(tree);
        needed += dirs;
        out.push_str(&format!(
            "\n{}: {dirs} directories (one inotify watch each)\n",
            tree.display()
        ));
    }

    let mut raise: Vec<(&str, u64)> = Vec::new();
    if let Some(limit) = watches
        && needed > 0
        && needed.saturating_mul(10) > limit.saturating_mul(9)
    {
        out.push_str(&format!(
                "\nToo few watches: these trees need {needed}, the limit is {limit} (and other programs use some too).\n"
            ));
        raise.push((
            "fs.inotify.max_user_watches",
            limits::suggested(needed, 65_536),
        ));
    }
    if queued.is_some_and(|q| q < 65_536) {
        out.push_str(
            "\nThe event queue is short: a burst of changes overflows it and forces a rescan.\n",
        );
        raise.push(("fs.inotify.max_queued_events", 65_536));
    }
    if instances.is_some_and(|i| i < 256) {
        raise.push(("fs.inotify.max_user_instances", 1024));
    }

    out.push_str(&format!("\nfanotify: {}\n", fanotify_status()));

    if raise.is_empty() {
        out.push_str("\nNothing to change.\n");
    } else {
        out.push_str("\nTo raise the limits now (as root):\n");
        for (name, value) in &raise {
            out.push_str(&format!("  sysctl -w {name}={value}\n"));
        }
        out.push_str("To keep them after a reboot:\n");
        let lines: Vec<String> = raise.iter().map(|(n, v)| format!("{n}={v}")).collect();
        out.push_str(&format!(
            "  printf '%s\\n' {} > /etc/sysctl.d/90-rtsync.conf && sysctl --system\n",
            lines.join(" ")
        ));
    }
    out
}

/// Whether fanotify's whole-filesystem marks with directory file handles and names
/// (`FAN_REPORT_DFID_NAME`, Linux 5.9) can be used here.
fn fanotify_status() -> String {
    let root = rustix::process::geteuid().is_root();
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let new_enough = version >= (5, 9);
    match (new_enough, root) {
        (true, true) => format!(
            "the kernel ({release}) reports directory handles and names and this process is root: one mark could \
             watch a whole filesystem, whatever the number of directories (rtsync's fanotify backend is not built yet)"
        ),
        (true, false) => {
            format!("the kernel ({release}) supports it, but it needs root (CAP_SYS_ADMIN)")
        }
        (false, _) => format!("the kernel ({release}) is older than 5.9: inotify only"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_directories_and_reads_limits() {
        let t = tempfile::tempdir().unwrap();
        for d in ["a", "a/b", "c"] {
            std::fs::create_dir(t.path().join(d)).unwrap();
        }
        let text = report(&[t.path().to_path_buf()]);
        assert!(text.contains(": 4 directories"), "{text}");
        assert!(text.contains("max_user_watches   = "), "{text}");
        assert!(text.contains("fanotify: "), "{text}");
    }
}
