//! Fuzzes the daemon's two path cleaners in `daemon::serve`: `module_relative` (a path a client
//! names, made relative to the module or refused) and `sanitize_link` (a symlink target a client
//! pushes to a module that is not chrooted, cut down so that it stays inside the module).
//!
//! Input: byte 0 is the depth of the link in the module (how many `..` may lead its target);
//! the rest is the path, used both as a client path and as a link target. `module_relative`
//! must refuse exactly the paths with a `..` component and otherwise give a path with no
//! leading `/` and no empty, `.` or `..` component (a trailing `/` kept), which it gives back
//! unchanged. `sanitize_link` must give `.` or a path with no leading `/`, at most `depth`
//! leading `..` and no `..` after a name, no empty or `.` component, the same path again when
//! given its own result, and what `module_relative` gives for a target without `..`.
#![no_main]

use daemon::serve::{module_relative, sanitize_link};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&depth, path)) = data.split_first() else {
        return;
    };
    let depth = usize::from(depth);
    let has_dotdot = components(path).any(|c| c == b"..");

    let relative = module_relative(path);
    assert_eq!(relative.is_none(), has_dotdot);
    if let Some(rel) = &relative {
        assert!(!rel.starts_with(b"/"), "{:?}", String::from_utf8_lossy(rel));
        assert!(
            components(rel).all(|c| !matches!(c, b"" | b"." | b"..")),
            "{:?} from {:?}",
            String::from_utf8_lossy(rel),
            String::from_utf8_lossy(path)
        );
        assert_eq!(rel.ends_with(b"/"), path.ends_with(b"/") && !rel.is_empty());
        assert_eq!(module_relative(rel).as_ref(), Some(rel));
    }

    let link = sanitize_link(path, depth);
    let shown = || {
        format!(
            "{:?} at depth {depth} gave {:?}",
            String::from_utf8_lossy(path),
            String::from_utf8_lossy(&link)
        )
    };
    assert!(!link.is_empty(), "{}", shown());
    assert!(!link.starts_with(b"/"), "{}", shown());
    if link != b"." {
        let mut ups = 0;
        let mut named = false;
        for c in components(&link) {
            match c {
                b".." => {
                    assert!(!named, "`..` after a name: {}", shown());
                    ups += 1;
                }
                b"" | b"." => panic!("empty or `.` component: {}", shown()),
                _ => named = true,
            }
        }
        assert!(ups <= depth, "{ups} leading `..`: {}", shown());
    }
    assert_eq!(sanitize_link(&link, depth), link, "not stable: {}", shown());
    if let Some(rel) = relative {
        let expected = if rel.is_empty() { b".".to_vec() } else { rel };
        assert_eq!(link, expected, "{}", shown());
    }
});

/// The `/`-separated components of a path, without the empty one after a trailing `/` (or the
/// one before a leading `/`).
fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let path = path.strip_prefix(b"/").unwrap_or(path);
    let path = path.strip_suffix(b"/").unwrap_or(path);
    path.split(|&b| b == b'/').filter(move |_| !path.is_empty())
}
