//! Filter rules and their parsing from rsync's rule syntax.

use crate::pattern::Pattern;

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `+` / `include`: transfer it (and, on the receiver, allow deleting it).
    Include,
    /// `-` / `exclude`: skip it (and, on the receiver, protect it from deletion).
    Exclude,
    /// `P` / `protect`: receiver side only, never delete it.
    Protect,
    /// `R` / `risk`: receiver side only, undo a protect.
    Risk,
    /// `H` / `hide`: sender side only, do not send it.
    Hide,
    /// `S` / `show`: sender side only, undo a hide.
    Show,
}

impl Action {
    fn excludes(self) -> bool {
        matches!(self, Action::Exclude | Action::Protect | Action::Hide)
    }

    /// The sides (sender, receiver) a rule of this kind applies to without `s` or `r`.
    fn sides(self) -> (bool, bool) {
        match self {
            Action::Include | Action::Exclude => (true, true),
            Action::Hide | Action::Show => (true, false),
            Action::Protect | Action::Risk => (false, true),
        }
    }
}

/// Which end of a transfer asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The sender, choosing what to transfer.
    Sender,
    /// The receiver, choosing what `--delete` may remove. `in_deleted_dir` is set inside a
    /// directory that is itself being deleted, where perishable rules do not apply.
    Receiver {
        /// Inside a directory being deleted.
        in_deleted_dir: bool,
    },
}

/// One filter rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What the rule does when it matches.
    pub action: Action,
    /// The pattern.
    pub pattern: Pattern,
    /// `!`: the rule applies when the pattern does *not* match.
    pub negate: bool,
    /// Applies on the sending side.
    pub sender: bool,
    /// Applies on the receiving side.
    pub receiver: bool,
    /// `p`: ignored inside directories being deleted.
    pub perishable: bool,
}

impl Rule {
    fn applies(&self, side: Side) -> bool {
        match side {
            Side::Sender => self.sender,
            Side::Receiver { in_deleted_dir } => {
                self.receiver && !(in_deleted_dir && self.perishable)
            }
        }
    }

    fn matches(&self, path: &[u8], is_dir: bool) -> bool {
        self.pattern.matches(path, is_dir) != self.negate
    }

    /// The rule in rsync's short form (`- pattern`), as sent on the wire.
    #[must_use]
    pub fn to_rule_text(&self) -> Vec<u8> {
        let c = match self.action {
            Action::Include => b'+',
            Action::Exclude => b'-',
            Action::Protect => b'P',
            Action::Risk => b'R',
            Action::Hide => b'H',
            Action::Show => b'S',
        };
        let mut out = vec![c];
        if self.negate {
            out.push(b'!');
        }
        // A side other than the action's own goes as a modifier (`Hr`, a hide the `r`
        // modifier moved to the receiver, is not the plain `H`).
        if (self.sender, self.receiver) != self.action.sides() {
            match (self.sender, self.receiver) {
                (true, false) => out.push(b's'),
                (false, true) => out.push(b'r'),
                _ => {}
            }
        }
        if self.perishable {
            out.push(b'p');
        }
        out.push(b' ');
        out.extend(self.pattern.to_rule_text());
        out
    }
}

/// Errors in filter rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// The rule text cannot be parsed.
    #[error("invalid filter rule {rule:?}: {why}")]
    Parse {
        /// The offending rule.
        rule: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The rule is valid rsync syntax but rtsync does not support it.
    #[error("filter rule {rule:?} is not supported: {what}")]
    Unsupported {
        /// The offending rule.
        rule: String,
        /// What is missing.
        what: &'static str,
    },
}

impl FilterError {
    /// Whether this is valid rsync syntax rtsync does not support (rsync's exit code 4) rather
    /// than a syntax error (exit code 1).
    #[must_use]
    pub fn is_unsupported(&self) -> bool {
        matches!(self, FilterError::Unsupported { .. })
    }
}

/// Reads a merge file named by a `merge` rule and returns its content, or why it cannot.
pub type MergeReader<'r> = dyn FnMut(&[u8]) -> Result<Vec<u8>, String> + 'r;

/// What a rule line asks for, before it becomes [`Rule`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A rule.
    Rule(Rule),
    /// `!` / `clear`: forget the rules so far.
    Clear,
    /// `.` / `merge FILE`: read rules from a file.
    Merge(Vec<u8>),
}

/// An ordered list of rules; the first match decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterList {
    rules: Vec<Rule>,
}

fn parse_err(rule: &[u8], why: &'static str) -> FilterError {
    FilterError::Parse {
        rule: String::from_utf8_lossy(rule).into_owned(),
        why,
    }
}

impl FilterList {
    /// An empty list: everything is included.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The rules, in order.
    #[must_use]
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether there are no rules.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Appends a rule.
    pub fn push(&mut self, rule: Rule) {
        self.rules.push(rule);
    }

    /// Adds `--exclude PATTERN` (`include = false`) or `--include PATTERN`. As in rsync, a
    /// leading `- ` or `+ ` chooses the action instead, and `!` alone clears the list.
    ///
    /// # Errors
    /// [`FilterError`] for an unusable pattern.
    pub fn add_pattern(&mut self, pattern: &[u8], include: bool) -> Result<(), FilterError> {
        if pattern == b"!" {
            self.rules.clear();
            return Ok(());
        }
        let (action, pat) = match pattern {
            [b'-', b' ', rest @ ..] => (Action::Exclude, rest),
            [b'+', b' ', rest @ ..] => (Action::Include, rest),
            _ if include => (Action::Include, pattern),
            _ => (Action::Exclude, pattern),
        };
        if pat.is_empty() {
            return Err(parse_err(pattern, "empty pattern"));
        }
        self.rules.push(plain_rule(action, pat));
        Ok(())
    }

    /// Adds the lines of an `--exclude-from` / `--include-from` file: one pattern per line,
    /// blank lines and lines starting with `;` or `#` ignored. With `from0`, NUL separates
    /// patterns instead and nothing is a comment.
    ///
    /// # Errors
    /// [`FilterError`] for an unusable pattern.
    pub fn add_pattern_file(
        &mut self,
        content: &[u8],
        include: bool,
        from0: bool,
    ) -> Result<(), FilterError> {
        for line in split_lines(content, from0) {
            if !from0 && (line.starts_with(b";") || line.starts_with(b"#")) {
                continue;
            }
            self.add_pattern(line, include)?;
        }
        Ok(())
    }

    /// Adds one `--filter` rule. `merge` rules are resolved through `read_file`, which returns the
    /// named file's content.
    ///
    /// # Errors
    /// [`FilterError`] for bad syntax or unsupported rules; `read_file`'s error text is reported
    /// as a parse error.
    pub fn add_filter(
        &mut self,
        text: &[u8],
        read_file: &mut MergeReader<'_>,
    ) -> Result<(), FilterError> {
        match parse_rule(text)? {
            None => Ok(()),
            Some(Parsed::Clear) => {
                self.rules.clear();
                Ok(())
            }
            Some(Parsed::Rule(rule)) => {
                self.rules.push(rule);
                Ok(())
            }
            Some(Parsed::Merge(file)) => {
                let content =
                    read_file(&file).map_err(|_| parse_err(text, "cannot read merge file"))?;
                for line in split_lines(&content, false) {
                    if line.starts_with(b";") || line.starts_with(b"#") {
                        continue;
                    }
                    self.add_filter(line, read_file)?;
                }
                Ok(())
            }
        }
    }

    /// Makes exclude/include rules that apply to both sides apply to the sender only, as
    /// `--delete-excluded` does: excluded files on the receiver are then deleted.
    pub fn delete_excluded(&mut self) {
        for rule in &mut self.rules {
            if matches!(rule.action, Action::Include | Action::Exclude) && rule.sender {
                rule.receiver = false;
            }
        }
    }

    /// Whether `path` is excluded on `side`. The first rule that applies and matches decides;
    /// no match means included.
    #[must_use]
    pub fn is_excluded(&self, path: &[u8], is_dir: bool, side: Side) -> bool {
        self.rules
            .iter()
            .find(|r| r.applies(side) && r.matches(path, is_dir))
            .is_some_and(|r| r.action.excludes())
    }
}

fn plain_rule(action: Action, pat: &[u8]) -> Rule {
    let (sender, receiver) = action.sides();
    Rule {
        action,
        pattern: Pattern::new(pat),
        negate: false,
        sender,
        receiver,
        perishable: false,
    }
}

fn split_lines(content: &[u8], from0: bool) -> impl Iterator<Item = &[u8]> {
    let sep = if from0 { 0 } else { b'\n' };
    content
        .split(move |&b| b == sep)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
}

/// Parses one rule in rsync's `--filter` syntax: `RULE[,MODIFIERS] PATTERN` or the short form
/// `X[MODIFIERS] PATTERN` (`X` one of `- + P R H S ! . :`). Returns `None` for a blank line.
///
/// # Errors
/// [`FilterError`] on bad syntax or an unsupported rule (`dir-merge`, xattr or CVS modifiers).
pub fn parse_rule(text: &[u8]) -> Result<Option<Parsed>, FilterError> {
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.is_empty() {
        return Ok(None);
    }
    // Split the rule word (long or short) from the rest.
    let word_end = text
        .iter()
        .position(|&b| b == b' ' || b == b',' || b == b'_')
        .unwrap_or(text.len());
    let word = text.get(..word_end).unwrap_or_default();
    let long = match word {
        b"exclude" => Some('-'),
        b"include" => Some('+'),
        b"protect" => Some('P'),
        b"risk" => Some('R'),
        b"hide" => Some('H'),
        b"show" => Some('S'),
        b"clear" => Some('!'),
        b"merge" => Some('.'),
        b"dir-merge" => Some(':'),
        _ => None,
    };
    let (kind, after_kind) = match long {
        Some(k) => (k, text.get(word_end..).unwrap_or_default()),
        None => {
            let Some((&c, rest)) = text.split_first() else {
                return Ok(None);
            };
            (char::from(c), rest)
        }
    };
    // Modifiers run up to the separator (space or '_'); a comma may introduce them.
    let after_kind = after_kind.strip_prefix(b",").unwrap_or(after_kind);
    let mod_end = after_kind
        .iter()
        .position(|&b| b == b' ' || b == b'_')
        .unwrap_or(after_kind.len());
    let mods = after_kind.get(..mod_end).unwrap_or_default();
    let arg = after_kind.get(mod_end + 1..).unwrap_or_default();

    let action = match kind {
        '-' => Action::Exclude,
        '+' => Action::Include,
        'P' => Action::Protect,
        'R' => Action::Risk,
        'H' => Action::Hide,
        'S' => Action::Show,
        '!' => {
            if !mods.is_empty() || !arg.is_empty() {
                return Err(parse_err(text, "the clear rule takes no pattern"));
            }
            return Ok(Some(Parsed::Clear));
        }
        '.' => {
            if arg.is_empty() {
                return Err(parse_err(text, "merge needs a file name"));
            }
            if !mods.is_empty() {
                return Err(FilterError::Unsupported {
                    rule: String::from_utf8_lossy(text).into_owned(),
                    what: "modifiers on merge rules",
                });
            }
            return Ok(Some(Parsed::Merge(arg.to_vec())));
        }
        ':' => {
            return Err(FilterError::Unsupported {
                rule: String::from_utf8_lossy(text).into_owned(),
                what: "per-directory merge files (dir-merge, -F)",
            });
        }
        _ => return Err(parse_err(text, "unknown rule type")),
    };
    if arg.is_empty() {
        return Err(parse_err(text, "missing pattern"));
    }
    let mut rule = plain_rule(action, arg);
    for &m in mods {
        match m {
            b'!' => rule.negate = true,
            b'/' => {
                return Err(FilterError::Unsupported {
                    rule: String::from_utf8_lossy(text).into_owned(),
                    what: "the '/' (absolute path) modifier",
                });
            }
            b's' => (rule.sender, rule.receiver) = (true, false),
            b'r' => (rule.sender, rule.receiver) = (false, true),
            b'p' => rule.perishable = true,
            b'C' | b'x' | b'e' | b'n' | b'w' => {
                return Err(FilterError::Unsupported {
                    rule: String::from_utf8_lossy(text).into_owned(),
                    what: "CVS, xattr and merge-file modifiers",
                });
            }
            _ => return Err(parse_err(text, "unknown rule modifier")),
        }
    }
    Ok(Some(Parsed::Rule(rule)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rules: &[&str]) -> FilterList {
        let mut l = FilterList::new();
        for r in rules {
            l.add_filter(r.as_bytes(), &mut |_| Err("no".into()))
                .unwrap();
        }
        l
    }

    const SEND: Side = Side::Sender;
    const RECV: Side = Side::Receiver {
        in_deleted_dir: false,
    };

    #[test]
    fn first_match_wins() {
        let l = list(&["+ keep.swp", "- *.swp"]);
        assert!(!l.is_excluded(b"keep.swp", false, SEND));
        assert!(l.is_excluded(b"d/x.swp", false, SEND));
        assert!(!l.is_excluded(b"x.txt", false, SEND));
    }

    #[test]
    fn include_everything_dirs_then_exclude_rest() {
        // The classic "only *.txt" recipe.
        let l = list(&["+ */", "+ *.txt", "- *"]);
        assert!(!l.is_excluded(b"a", true, SEND));
        assert!(!l.is_excluded(b"a/b.txt", false, SEND));
        assert!(l.is_excluded(b"a/b.bin", false, SEND));
    }

    #[test]
    fn sides() {
        let l = list(&["P /keep", "H secret", "-s onlysend", "-r onlyrecv"]);
        assert!(!l.is_excluded(b"keep", false, SEND));
        assert!(l.is_excluded(b"keep", false, RECV));
        assert!(l.is_excluded(b"secret", false, SEND));
        assert!(!l.is_excluded(b"secret", false, RECV));
        assert!(l.is_excluded(b"onlysend", false, SEND));
        assert!(!l.is_excluded(b"onlysend", false, RECV));
        assert!(l.is_excluded(b"onlyrecv", false, RECV));
    }

    #[test]
    fn delete_excluded_unprotects_plain_excludes() {
        let mut l = list(&["- *.log", "P *.keep"]);
        l.delete_excluded();
        assert!(l.is_excluded(b"a.log", false, SEND));
        assert!(!l.is_excluded(b"a.log", false, RECV));
        assert!(l.is_excluded(b"a.keep", false, RECV));
    }

    #[test]
    fn long_forms_modifiers_and_clear() {
        let l = list(&["exclude,! *.c", "include foo"]);
        assert!(l.is_excluded(b"x.h", false, SEND));
        assert!(!l.is_excluded(b"x.c", false, SEND));
        let l = list(&["- a", "!", "- b"]);
        assert!(!l.is_excluded(b"a", false, SEND));
        assert!(l.is_excluded(b"b", false, SEND));
        let l = list(&["-p tmp"]);
        assert!(l.is_excluded(b"tmp", false, RECV));
        assert!(!l.is_excluded(
            b"tmp",
            false,
            Side::Receiver {
                in_deleted_dir: true
            }
        ));
    }

    #[test]
    fn old_style_prefixes_in_patterns() {
        let mut l = FilterList::new();
        l.add_pattern(b"+ *.c", false).unwrap();
        l.add_pattern(b"*", false).unwrap();
        assert!(!l.is_excluded(b"a.c", false, SEND));
        assert!(l.is_excluded(b"a.h", false, SEND));
    }

    #[test]
    fn pattern_files() {
        let mut l = FilterList::new();
        l.add_pattern_file(b"# comment\n*.o\n\n; also\n/build/\r\n", false, false)
            .unwrap();
        assert_eq!(l.rules().len(), 2);
        assert!(l.is_excluded(b"build", true, SEND));
        let mut l = FilterList::new();
        l.add_pattern_file(b"#a\0b", false, true).unwrap();
        assert!(l.is_excluded(b"#a", false, SEND));
    }

    #[test]
    fn merge_reads_rules_from_a_file() {
        let mut l = FilterList::new();
        l.add_filter(b"merge rules.txt", &mut |name| {
            assert_eq!(name, b"rules.txt");
            Ok(b"- *.tmp\n+ keep\n".to_vec())
        })
        .unwrap();
        assert!(l.is_excluded(b"x.tmp", false, SEND));
        assert_eq!(l.rules().len(), 2);
    }

    #[test]
    fn bad_and_unsupported_rules() {
        let mut l = FilterList::new();
        let mut no = |_: &[u8]| -> Result<Vec<u8>, String> { Err("no".into()) };
        assert!(!l.add_filter(b"? x", &mut no).unwrap_err().is_unsupported());
        assert!(!l.add_filter(b"-", &mut no).unwrap_err().is_unsupported());
        assert!(
            l.add_filter(b": .rsync-filter", &mut no)
                .unwrap_err()
                .is_unsupported()
        );
        assert!(
            l.add_filter(b"dir-merge .rsync-filter", &mut no)
                .unwrap_err()
                .is_unsupported()
        );
    }

    #[test]
    fn rule_text_round_trips() {
        for r in ["- *.swp", "+ /a/b/", "P keep/***", "-s x", "+! y"] {
            let l = list(&[r]);
            assert_eq!(l.rules()[0].to_rule_text(), r.as_bytes());
        }
    }

    /// Found by the `filter_list` fuzz target: `H,r x` (a hide moved to the receiver by `r`)
    /// went on the wire as `H x`, a hide on the sender: the peer applied the other side.
    #[test]
    fn a_modifier_that_moves_a_rule_to_the_other_side_is_sent() {
        for (given, sent) in [
            ("H,r x", "Hr x"),
            ("Sr x", "Sr x"),
            ("Ps x", "Ps x"),
            ("R,s x", "Rs x"),
            ("Hs x", "H x"),
            ("Pr x", "P x"),
        ] {
            let rule = list(&[given]).rules()[0].clone();
            assert_eq!(rule.to_rule_text(), sent.as_bytes(), "{given}");
            assert_eq!(list(&[sent]).rules()[0], rule, "{given}");
        }
    }
}
