//! How a daemon names files in what it tells its client: within the module, never by the
//! module's own path on the server (`link_stat "a/missing" (in open) failed`, as rsync's
//! daemon words it), so a client learns nothing of the server's directory layout.

use std::path::Path;

/// `text` with the module's path taken out of the first name it quotes, and the module named
/// after that name instead. Text quoting no name inside `root` is returned as it is.
#[must_use]
pub fn within_module(text: &str, root: &Path, module: &str) -> String {
    let root = root.to_string_lossy();
    let prefix = format!("\"{}/", root.trim_end_matches('/'));
    let Some(start) = text.find(&prefix) else {
        return text.to_owned();
    };
    let rest = text.get(start + prefix.len()..).unwrap_or_default();
    let Some(close) = rest.find('"') else {
        return text.to_owned();
    };
    let name = rest.get(..close).unwrap_or_default();
    // `-R` names come through the module's `/./` marker.
    let name = name.strip_prefix("./").unwrap_or(name);
    format!(
        "{}\"{name}\" (in {module}){}",
        text.get(..start).unwrap_or_default(),
        rest.get(close + 1..).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_told_within_the_module() {
        assert_eq!(
            within_module(
                "link_stat \"/srv/m/a/missing\" failed: No such file or directory (2)",
                Path::new("/srv/m"),
                "open"
            ),
            "link_stat \"a/missing\" (in open) failed: No such file or directory (2)"
        );
        assert_eq!(
            within_module(
                "mkdir \"/srv/m/./p/new\" failed",
                Path::new("/srv/m/"),
                "open"
            ),
            "mkdir \"p/new\" (in open) failed"
        );
        assert_eq!(
            within_module("read \"/elsewhere/x\" failed", Path::new("/srv/m"), "open"),
            "read \"/elsewhere/x\" failed"
        );
    }
}
