//! The kernel's inotify limits, and advice that names the sysctl, the value and the file that
//! makes it permanent. Nothing here changes a kernel setting.

use std::path::Path;

/// Reads `/proc/sys/fs/inotify/<name>` (`max_user_watches`, `max_user_instances`,
/// `max_queued_events`).
#[must_use]
pub fn read(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A comfortable value for a limit that must hold `needed`: double it, rounded up to a power of
/// two, and never below the kernel's usual default.
#[must_use]
pub fn suggested(needed: u64, floor: u64) -> u64 {
    (needed.saturating_mul(2)).max(floor).next_power_of_two()
}

/// The message for an exhausted watch limit.
#[must_use]
pub fn watch_limit_advice(path: &Path, limit: Option<u64>, needed: Option<u64>) -> String {
    let limit_text = limit.map_or_else(|| "unknown".to_string(), |l| l.to_string());
    let target = suggested(needed.unwrap_or(limit.unwrap_or(8192)), 65_536);
    let needed_text = needed.map_or_else(String::new, |n| {
        format!("; the watched trees hold {n} directories")
    });
    format!(
        "upper limit on inotify watches reached while watching {}: fs.inotify.max_user_watches is {limit_text}{needed_text}. \
         Raise it with: sysctl -w fs.inotify.max_user_watches={target} \
         (and make it permanent: echo fs.inotify.max_user_watches={target} > /etc/sysctl.d/90-rtsync.conf), \
         or watch with fanotify as root",
        path.display()
    )
}

/// Counts the directories below `root` (itself included), without following symlinks.
#[must_use]
pub fn count_dirs(root: &Path) -> u64 {
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        count += 1;
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_names_the_sysctl_and_a_value() {
        let text = watch_limit_advice(Path::new("/srv"), Some(8192), Some(100_000));
        assert!(text.contains("fs.inotify.max_user_watches is 8192"));
        assert!(text.contains("100000 directories"));
        assert!(text.contains("sysctl -w fs.inotify.max_user_watches=262144"));
        assert!(text.contains("/etc/sysctl.d/"));
        assert_eq!(suggested(10, 65_536), 65_536);
    }
}
