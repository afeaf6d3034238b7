//! Which paths are watched and reported: inotifywait's `--exclude/--include` (POSIX extended
//! regular expressions, `--excludei/--includei` ignoring case), `@path` exclusions, and rsync-style
//! globs. Applied before a watch is added, so an excluded directory costs no watch.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use filter::{FilterList, Side};
use regex::bytes::{Regex, RegexBuilder};

/// The compiled selection.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    exclude: Vec<Regex>,
    include: Vec<Regex>,
    paths: Vec<PathBuf>,
    globs: FilterList,
}

impl Selector {
    /// Selects everything.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Excludes paths matching the regular expression (anywhere in the path, as inotifywait).
    ///
    /// # Errors
    /// The regex syntax error.
    pub fn exclude_regex(&mut self, pattern: &str, ignore_case: bool) -> Result<(), regex::Error> {
        self.exclude.push(
            RegexBuilder::new(pattern)
                .case_insensitive(ignore_case)
                .build()?,
        );
        Ok(())
    }

    /// Reports only paths matching the regular expression (directories are still watched).
    ///
    /// # Errors
    /// The regex syntax error.
    pub fn include_regex(&mut self, pattern: &str, ignore_case: bool) -> Result<(), regex::Error> {
        self.include.push(
            RegexBuilder::new(pattern)
                .case_insensitive(ignore_case)
                .build()?,
        );
        Ok(())
    }

    /// Excludes one path and everything below it (inotifywait's `@path`).
    pub fn exclude_path(&mut self, path: &Path) {
        self.paths.push(path.to_path_buf());
    }

    /// Excludes with rsync rules (`*.swp`, `/cache/`, `+`/`-` rules), matched against the path
    /// relative to the watched root.
    pub fn rsync_rules(&mut self, rules: FilterList) {
        self.globs = rules;
    }

    /// Whether `path` (a directory when `is_dir`) is excluded: never watched, never reported.
    /// `rel` is the path relative to its watched root, for rsync rules.
    #[must_use]
    pub fn is_excluded(&self, path: &Path, rel: &[u8], is_dir: bool) -> bool {
        let bytes = path.as_os_str().as_bytes();
        self.paths.iter().any(|p| path.starts_with(p))
            || self.exclude.iter().any(|r| r.is_match(bytes))
            || (!rel.is_empty() && self.globs.is_excluded(rel, is_dir, Side::Sender))
    }

    /// Whether an event on `path` is reported, given `--include` patterns.
    #[must_use]
    pub fn is_reported(&self, path: &Path) -> bool {
        let bytes = path.as_os_str().as_bytes();
        self.include.is_empty() || self.include.iter().any(|r| r.is_match(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_paths_and_globs() {
        let mut s = Selector::new();
        s.exclude_regex(r"\.swp$", false).unwrap();
        s.exclude_regex("CACHE", true).unwrap();
        s.exclude_path(Path::new("/w/skip"));
        let mut rules = FilterList::new();
        rules.add_pattern(b"*.tmp", false).unwrap();
        s.rsync_rules(rules);
        assert!(s.is_excluded(Path::new("/w/a.swp"), b"a.swp", false));
        assert!(s.is_excluded(Path::new("/w/cache"), b"cache", true));
        assert!(s.is_excluded(Path::new("/w/skip/deep"), b"skip/deep", false));
        assert!(s.is_excluded(Path::new("/w/x.tmp"), b"x.tmp", false));
        assert!(!s.is_excluded(Path::new("/w/keep"), b"keep", false));
        let mut s = Selector::new();
        s.include_regex(r"\.txt$", false).unwrap();
        assert!(s.is_reported(Path::new("a.txt")));
        assert!(!s.is_reported(Path::new("a.bin")));
    }
}
