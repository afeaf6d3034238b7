//! rsync-style wildcard patterns over byte strings.
//!
//! `*` matches within one path component, `**` across components, `?` one byte other than `/`,
//! `[...]` a byte class (`!` or `^` negates, ranges, `[:alpha:]`-style names) that never matches
//! `/`, and `\` escapes the next byte.

/// Whether `text` matches the wildcard `pat` in full.
#[must_use]
pub fn wildmatch(pat: &[u8], text: &[u8]) -> bool {
    matches_from(pat, text)
}

fn matches_from(mut pat: &[u8], mut text: &[u8]) -> bool {
    loop {
        let Some((&p, rest)) = pat.split_first() else {
            return text.is_empty();
        };
        match p {
            b'*' => {
                let double = rest.first() == Some(&b'*');
                let mut after = rest;
                while after.first() == Some(&b'*') {
                    after = after.get(1..).unwrap_or_default();
                }
                if after.is_empty() {
                    return double || !text.contains(&b'/');
                }
                // Try every split point the star can reach.
                let mut i = 0;
                loop {
                    if matches_from(after, text.get(i..).unwrap_or_default()) {
                        return true;
                    }
                    match text.get(i) {
                        None => return false,
                        Some(b'/') if !double => return false,
                        Some(_) => i += 1,
                    }
                }
            }
            b'?' => match text.split_first() {
                Some((&t, trest)) if t != b'/' => {
                    pat = rest;
                    text = trest;
                }
                _ => return false,
            },
            b'[' => {
                let Some((&t, trest)) = text.split_first() else {
                    return false;
                };
                match class(rest, t) {
                    Some((matched, after)) => {
                        if !matched || t == b'/' {
                            return false;
                        }
                        pat = after;
                        text = trest;
                    }
                    // An unterminated class is a literal '['.
                    None => {
                        if t != b'[' {
                            return false;
                        }
                        pat = rest;
                        text = trest;
                    }
                }
            }
            b'\\' if !rest.is_empty() => {
                let (&lit, prest) = rest.split_first().unwrap_or((&b'\\', &[]));
                match text.split_first() {
                    Some((&t, trest)) if t == lit => {
                        pat = prest;
                        text = trest;
                    }
                    _ => return false,
                }
            }
            _ => match text.split_first() {
                Some((&t, trest)) if t == p => {
                    pat = rest;
                    text = trest;
                }
                _ => return false,
            },
        }
    }
}

/// Parses a class body starting after `[` and tests byte `t`. Returns whether it matched and
/// the pattern after the closing `]`, or `None` if the class is not terminated.
fn class(body: &[u8], t: u8) -> Option<(bool, &[u8])> {
    let (negated, mut rest) = match body.first() {
        Some(b'!' | b'^') => (true, body.get(1..).unwrap_or_default()),
        _ => (false, body),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        let (&c, after) = rest.split_first()?;
        if c == b']' && !first {
            return Some((matched != negated, after));
        }
        first = false;
        if c == b'['
            && after.first() == Some(&b':')
            && let Some(end) = after.windows(2).position(|w| w == b":]")
        {
            let name = after.get(1..end).unwrap_or_default();
            matched |= named_class(name, t);
            rest = after.get(end + 2..).unwrap_or_default();
            continue;
        }
        let (c, after) = if c == b'\\' {
            after.split_first().map_or((c, after), |(&e, a)| (e, a))
        } else {
            (c, after)
        };
        if after.first() == Some(&b'-') && after.get(1).is_some_and(|&e| e != b']') {
            let hi = after.get(1).copied().unwrap_or(c);
            matched |= (c..=hi).contains(&t);
            rest = after.get(2..).unwrap_or_default();
        } else {
            matched |= c == t;
            rest = after;
        }
    }
}

fn named_class(name: &[u8], t: u8) -> bool {
    match name {
        b"alpha" => t.is_ascii_alphabetic(),
        b"digit" => t.is_ascii_digit(),
        b"alnum" => t.is_ascii_alphanumeric(),
        b"upper" => t.is_ascii_uppercase(),
        b"lower" => t.is_ascii_lowercase(),
        b"space" => t.is_ascii_whitespace(),
        b"punct" => t.is_ascii_punctuation(),
        b"xdigit" => t.is_ascii_hexdigit(),
        b"blank" => t == b' ' || t == b'\t',
        b"cntrl" => t.is_ascii_control(),
        b"print" => (0x20..0x7f).contains(&t),
        b"graph" => t.is_ascii_graphic(),
        _ => false,
    }
}

/// Whether rsync reads `pattern` as a wildcard one (it has `*`, `?` or `[`; `exclude.c`,
/// `FILTRULE_WILD`): only then is `\` an escape; any other pattern is compared as it is.
#[must_use]
pub fn is_wildcard(pattern: &[u8]) -> bool {
    pattern.iter().any(|c| matches!(c, b'*' | b'?' | b'['))
}

/// `path` as pattern text that matches only itself, in a pattern that will be a wildcard one
/// (`wild`, see [`is_wildcard`]) or not.
#[must_use]
pub fn literal(path: &[u8], wild: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &c in path {
        if wild && matches!(c, b'*' | b'?' | b'[' | b'\\') {
            out.push(b'\\');
        }
        out.push(c);
    }
    out
}

/// A compiled rsync pattern with its placement rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: Vec<u8>,
    anchored: bool,
    dir_only: bool,
    /// `dir/***`: the directory itself and everything below it.
    with_contents: bool,
    /// Matched against whole paths (it has a `/` or `**`), not just the last component.
    full_path: bool,
    /// Has `*`, `?` or `[`: matched as a wildcard, where `\` escapes. Any other pattern is
    /// compared byte for byte, backslashes and all (`exclude.c`, `FILTRULE_WILD`).
    wild: bool,
}

impl Pattern {
    /// Compiles a pattern as written in a rule.
    #[must_use]
    pub fn new(raw: &[u8]) -> Pattern {
        let mut text = raw.to_vec();
        let wild = is_wildcard(raw);
        let anchored = text.first() == Some(&b'/');
        if anchored {
            text.remove(0);
        }
        let mut dir_only = false;
        let mut with_contents = false;
        if text.ends_with(b"/***") {
            text.truncate(text.len() - 4);
            with_contents = true;
        } else if text.ends_with(b"/") {
            while text.ends_with(b"/") {
                text.pop();
            }
            dir_only = true;
        }
        let full_path = anchored || text.contains(&b'/') || text.windows(2).any(|w| w == b"**");
        Pattern {
            text,
            anchored,
            dir_only,
            with_contents,
            full_path,
            wild,
        }
    }

    /// The pattern as rsync would print it back.
    #[must_use]
    pub fn to_rule_text(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.anchored {
            out.push(b'/');
        }
        out.extend_from_slice(&self.text);
        if self.with_contents {
            out.extend_from_slice(b"/***");
        } else if self.dir_only {
            out.push(b'/');
        }
        out
    }

    /// Whether the pattern matches `path` (relative to the transfer root) of an entry that is or
    /// is not a directory.
    #[must_use]
    pub fn matches(&self, path: &[u8], is_dir: bool) -> bool {
        if self.with_contents {
            // "dir/***": the directory itself, or anything with the directory as an ancestor.
            return (is_dir && self.matches_as(path)) || self.has_matching_ancestor(path);
        }
        if self.dir_only && !is_dir {
            return false;
        }
        self.matches_as(path)
    }

    fn has_matching_ancestor(&self, path: &[u8]) -> bool {
        path.iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .any(|(i, _)| self.matches_as(path.get(..i).unwrap_or_default()))
    }

    fn matches_as(&self, path: &[u8]) -> bool {
        let test = |text: &[u8]| {
            if self.wild {
                wildmatch(&self.text, text)
            } else {
                self.text == text
            }
        };
        if !self.full_path {
            let last = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
            return test(last);
        }
        if self.anchored {
            return test(path);
        }
        // Unanchored with a slash: may match any trailing part that starts a component.
        if test(path) {
            return true;
        }
        path.iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .any(|(i, _)| test(path.get(i + 1..).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        wildmatch(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn wildcards() {
        assert!(m("*.swp", "a.swp"));
        assert!(!m("*.swp", "d/a.swp"));
        assert!(m("**.swp", "d/a.swp"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "a/c"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[]]", "]"));
        assert!(m("[[:digit:]]*", "7up"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("foo/**/bar", "foo/x/y/bar"));
        assert!(m("foo**", "foo/x"));
        assert!(m("*", ""));
        assert!(m("[", "["));
    }

    fn pm(p: &str, path: &str, dir: bool) -> bool {
        Pattern::new(p.as_bytes()).matches(path.as_bytes(), dir)
    }

    #[test]
    fn backslashes_escape_only_in_wildcard_patterns() {
        assert!(pm("/a\\b", "a\\b", false), "no wildcard: compared as it is");
        assert!(!pm("/a\\b", "ab", false));
        assert!(pm("/x\\[1]/*", "x[1]/f", false), "a wildcard: \\ escapes");
        assert!(!pm("/x\\[1]/*", "x1/f", false));
    }

    #[test]
    fn placement() {
        assert!(pm("*.o", "a/b/c.o", false));
        assert!(pm("/foo", "foo", false));
        assert!(!pm("/foo", "a/foo", false));
        assert!(pm("foo", "a/foo", false));
        assert!(pm("foo/bar", "x/foo/bar", false));
        assert!(!pm("foo/bar", "x/afoo/bar", false));
        assert!(pm("cache/", "a/cache", true));
        assert!(!pm("cache/", "a/cache", false));
        assert!(pm("/dir/***", "dir", true));
        assert!(pm("/dir/***", "dir/a/b", false));
        assert!(!pm("/dir/***", "dirx", true));
        assert!(pm("a/**/z", "a/b/c/z", false));
    }
}
