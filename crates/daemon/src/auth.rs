//! `auth users`, the secrets file, and the challenge/response check of a daemon login.
//!
//! This module owns the decisions rsync's `authenticate.c` makes on the server side, without
//! touching a file or a socket:
//!
//! - [`parse_auth_users`]: the rule list (`joe:deny @guest:deny admin:rw @rsync:ro susan`);
//! - [`parse_secrets`] / [`check_secrets_permissions`]: the secrets file and `strict modes`;
//! - [`challenge`]: the text after `@RSYNCD: AUTHREQD `;
//! - [`check_digest_floor`]: the 3.5.0 `auth digest` minimum;
//! - [`split_response`] and [`authorize`]: the client's `<user> <digest>` answer checked against
//!   the first matching rule and the secrets file, giving the access the login grants.
//!
//! On failure the daemon logs [`AuthFailure::log_line`] and sends the client
//! `@ERROR: auth failed on module <name>`, as rsync does.

use std::fmt;

use protocol::daemon::AuthDigest;

use crate::config::conf_list;

/// What an `auth users` rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The module's own `read only` setting.
    Default,
    /// `:ro` — read-only whatever the module says.
    ReadOnly,
    /// `:rw` — writable whatever the module says.
    ReadWrite,
    /// `:deny` — refused.
    Deny,
}

/// One `auth users` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// The wildcard pattern, without the `@` of a group rule or the `:option`.
    pub pattern: String,
    /// Whether the pattern names groups of the user (`@group`) rather than the user.
    pub group: bool,
    /// The access a login matched by this rule gets.
    pub access: Access,
}

impl fmt::Display for AuthUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group {
            f.write_str("@")?;
        }
        f.write_str(&self.pattern)?;
        match self.access {
            Access::Default => Ok(()),
            Access::ReadOnly => f.write_str(":ro"),
            Access::ReadWrite => f.write_str(":rw"),
            Access::Deny => f.write_str(":deny"),
        }
    }
}

/// Parses an `auth users` value: rules separated by commas and/or whitespace, or by commas
/// only when the value starts with a comma (so a group name may hold spaces).
///
/// rsync reads an option by its first letters (`d…` deny, `ro…`, `rw…`) and silently ignores
/// any other, which turns a typo such as `joe:dney` into the module's default access; that is
/// refused here instead.
pub fn parse_auth_users(value: &str) -> Result<Vec<AuthUser>, String> {
    conf_list(value).into_iter().map(parse_rule).collect()
}

fn parse_rule(token: &str) -> Result<AuthUser, String> {
    let (name, access) = match token.split_once(':') {
        None => (token, Access::Default),
        Some((name, opt)) => (name, parse_access(name, opt)?),
    };
    let (pattern, group) = match name.strip_prefix('@') {
        Some(g) => (g, true),
        None => (name, false),
    };
    if pattern.is_empty() {
        return Err(format!(
            "auth users rule \"{token}\" names no user or group"
        ));
    }
    Ok(AuthUser {
        pattern: pattern.to_owned(),
        group,
        access,
    })
}

fn parse_access(name: &str, opt: &str) -> Result<Access, String> {
    let lower = opt.to_ascii_lowercase();
    if lower.is_empty() {
        Ok(Access::Default)
    } else if lower.starts_with('d') {
        Ok(Access::Deny)
    } else if lower.starts_with("ro") {
        Ok(Access::ReadOnly)
    } else if lower.starts_with("rw") {
        Ok(Access::ReadWrite)
    } else {
        Err(format!(
            "unknown auth users option \"{opt}\" for \"{name}\" (expected ro, rw or deny)"
        ))
    }
}

/// Why the secrets file cannot be used; the daemon decides this from the filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsProblem {
    /// No `secrets file` is set, or it cannot be opened.
    Missing,
    /// It failed [`check_secrets_permissions`].
    Rejected,
}

/// The contents of a secrets file: `user:password` and `@group:password` lines.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    lines: Vec<String>,
    problem: Option<SecretsProblem>,
}

impl fmt::Debug for Secrets {
    // Passwords stay out of logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("lines", &self.lines.len())
            .field("problem", &self.problem)
            .finish()
    }
}

impl Secrets {
    /// A secrets file that cannot be used: every login that reaches the password check fails
    /// with the matching [`AuthFailure`].
    #[must_use]
    pub fn unavailable(problem: SecretsProblem) -> Secrets {
        Secrets {
            lines: Vec::new(),
            problem: Some(problem),
        }
    }

    /// The password on the first line for `name` (`user`, or `@group`), as rsync reads only
    /// the first line that names someone.
    #[must_use]
    pub fn password(&self, name: &str) -> Option<&str> {
        self.lines.iter().find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(':'))
        })
    }
}

/// Parses a secrets file. Lines are `name:password` (the password is everything after the
/// first colon that follows the name, spaces included); `#` lines and blank lines are skipped.
#[must_use]
pub fn parse_secrets(text: &str) -> Secrets {
    // rsync takes each line up to its first CR or LF, skipping CRs that lead it.
    let lines = text
        .split('\n')
        .map(|l| l.trim_start_matches('\r'))
        .map(|l| l.split('\r').next().unwrap_or_default())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    Secrets {
        lines,
        problem: None,
    }
}

/// `strict modes`: with it on, a secrets file must not be readable or writable by others and,
/// when the daemon runs as root, must be owned by root. The error is rsync's log line.
pub fn check_secrets_permissions(
    mode: u32,
    owner_uid: u32,
    running_as_root: bool,
    strict_modes: bool,
) -> Result<(), String> {
    if !strict_modes {
        return Ok(());
    }
    if mode & 0o006 != 0 {
        return Err("secrets file must not be other-accessible (see strict modes option)".into());
    }
    if running_as_root && owner_uid != 0 {
        return Err(
            "secrets file must be owned by root when running as root (see strict modes)".into(),
        );
    }
    Ok(())
}

/// A challenge for `@RSYNCD: AUTHREQD`: the unpadded base64 of the negotiated digest of
/// `seed`, as long as rsync's (22 characters for md5/md4, 27 sha1, 43 sha256, 86 sha512).
/// `seed` must be unpredictable (rsync hashes 32 random bytes with the peer address, the time
/// and its pid); the client only hashes the result.
#[must_use]
pub fn challenge(seed: &[u8], digest: AuthDigest) -> String {
    digest.respond(seed, b"")
}

/// The `auth digest` floor: refuses a negotiated digest weaker than `floor`.
pub fn check_digest_floor(
    floor: Option<AuthDigest>,
    negotiated: AuthDigest,
) -> Result<(), AuthFailure> {
    let Some(floor) = floor else { return Ok(()) };
    let rank = |d: AuthDigest| AuthDigest::PREFERENCE.iter().position(|p| *p == d);
    if rank(negotiated) > rank(floor) {
        return Err(AuthFailure::DigestTooWeak { negotiated, floor });
    }
    Ok(())
}

/// Splits the client's answer `<user> <response>` at its first space; `None` is rsync's
/// "invalid challenge response".
#[must_use]
pub fn split_response(line: &str) -> Option<(&str, &str)> {
    line.split_once(' ')
}

/// Why a login was refused. [`fmt::Display`] gives rsync's reason text; [`Self::log_line`]
/// the whole line rsync logs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The answer to the challenge had no space between user and digest.
    InvalidResponse,
    /// The negotiated digest is weaker than the module's `auth digest`.
    DigestTooWeak {
        /// What the client and we agreed on.
        negotiated: AuthDigest,
        /// The module's minimum.
        floor: AuthDigest,
    },
    /// No `auth users` rule matches the user or their groups.
    NoMatchingRule {
        /// The name the client gave.
        user: String,
    },
    /// The first matching rule is `:deny`.
    Denied {
        /// The name the client gave.
        user: String,
    },
    /// The secrets file is missing or unreadable.
    NoSecretsFile {
        /// The name the client gave.
        user: String,
    },
    /// The secrets file failed the `strict modes` check.
    SecretsFileIgnored {
        /// The name the client gave.
        user: String,
    },
    /// The name starts with `#`, which would match a comment line.
    InvalidUsername {
        /// The name the client gave.
        user: String,
    },
    /// Neither the user nor the matched group has a line in the secrets file.
    SecretNotFound {
        /// The name the client gave.
        user: String,
    },
    /// The response matched no password for the user or the matched group.
    PasswordMismatch {
        /// The name the client gave.
        user: String,
    },
}

impl AuthFailure {
    /// The user the failure concerns, when the client got as far as naming one.
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        match self {
            AuthFailure::InvalidResponse | AuthFailure::DigestTooWeak { .. } => None,
            AuthFailure::NoMatchingRule { user }
            | AuthFailure::Denied { user }
            | AuthFailure::NoSecretsFile { user }
            | AuthFailure::SecretsFileIgnored { user }
            | AuthFailure::InvalidUsername { user }
            | AuthFailure::SecretNotFound { user }
            | AuthFailure::PasswordMismatch { user } => Some(user),
        }
    }

    /// rsync's log line: `auth failed on module M from HOST (ADDR) for USER: REASON`, or
    /// without `for USER` when no user was read.
    #[must_use]
    pub fn log_line(&self, module: &str, host: &str, addr: &str) -> String {
        match self.user() {
            Some(user) => {
                format!("auth failed on module {module} from {host} ({addr}) for {user}: {self}")
            }
            None => format!("auth failed on module {module} from {host} ({addr}): {self}"),
        }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFailure::InvalidResponse => f.write_str("invalid challenge response"),
            AuthFailure::DigestTooWeak { negotiated, floor } => write!(
                f,
                "negotiated auth digest {} is weaker than the required 'auth digest = {}'",
                negotiated.name(),
                floor.name()
            ),
            AuthFailure::NoMatchingRule { .. } => f.write_str("no matching rule"),
            AuthFailure::Denied { .. } => f.write_str("denied by rule"),
            AuthFailure::NoSecretsFile { .. } => f.write_str("no secrets file"),
            AuthFailure::SecretsFileIgnored { .. } => f.write_str("ignoring secrets file"),
            AuthFailure::InvalidUsername { .. } => f.write_str("invalid username"),
            AuthFailure::SecretNotFound { .. } => f.write_str("secret not found"),
            AuthFailure::PasswordMismatch { .. } => f.write_str("password mismatch"),
        }
    }
}

impl std::error::Error for AuthFailure {}

/// Checks a login as rsync's daemon does.
///
/// The first rule in `users` that matches decides: a user rule by wildcard on `user`, a group
/// rule by wildcard on one of `user_groups` (the groups of the local account named `user`, in
/// the system's order; empty when there is no such account). A `:deny` rule refuses. Otherwise
/// `response` must equal `digest.respond(password, challenge)` for the password on the
/// user's secrets line or, for a group rule, on the `@group` line of the first of the user's
/// groups the rule matched. The comparison takes the same time wherever the strings differ.
///
/// Returns the rule's access: [`Access::Default`] means the module's `read only` applies.
pub fn authorize(
    users: &[AuthUser],
    secrets: &Secrets,
    user: &str,
    user_groups: &[String],
    digest: AuthDigest,
    challenge: &str,
    response: &str,
) -> Result<Access, AuthFailure> {
    let owned = || user.to_owned();
    let (rule, group) = first_match(users, user, user_groups)
        .ok_or_else(|| AuthFailure::NoMatchingRule { user: owned() })?;
    if rule.access == Access::Deny {
        return Err(AuthFailure::Denied { user: owned() });
    }
    match secrets.problem {
        Some(SecretsProblem::Missing) => return Err(AuthFailure::NoSecretsFile { user: owned() }),
        Some(SecretsProblem::Rejected) => {
            return Err(AuthFailure::SecretsFileIgnored { user: owned() });
        }
        None => {}
    }
    if user.starts_with('#') {
        return Err(AuthFailure::InvalidUsername { user: owned() });
    }
    let group_line = group.map(|g| format!("@{g}"));
    // An `@` line is a group's, never the password of a user whose name starts with `@`.
    let user_line = (!user.starts_with('@')).then_some(user);
    let candidates = [user_line, group_line.as_deref()];
    let mut found = false;
    for name in candidates.into_iter().flatten() {
        let Some(password) = secrets.password(name) else {
            continue;
        };
        found = true;
        let expected = digest.respond(password.as_bytes(), challenge.as_bytes());
        if constant_time_eq(expected.as_bytes(), response.as_bytes()) {
            return Ok(rule.access);
        }
    }
    if found {
        Err(AuthFailure::PasswordMismatch { user: owned() })
    } else {
        Err(AuthFailure::SecretNotFound { user: owned() })
    }
}

/// The first rule matching the user, with the group that made a group rule match.
fn first_match<'r, 'g>(
    users: &'r [AuthUser],
    user: &str,
    user_groups: &'g [String],
) -> Option<(&'r AuthUser, Option<&'g str>)> {
    users.iter().find_map(|rule| {
        let pattern = rule.pattern.as_bytes();
        if !rule.group {
            return filter::wildmatch(pattern, user.as_bytes()).then_some((rule, None));
        }
        user_groups
            .iter()
            .find(|g| filter::wildmatch(pattern, g.as_bytes()))
            .map(|g| (rule, Some(g.as_str())))
    })
}

/// Equality that does not stop at the first differing byte, so the time taken does not tell
/// an attacker how much of a forged response was right. Lengths are public (they follow from
/// the digest) and may short-cut.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHALLENGE: &str = "j3PuRvhC5aAV1gECW3mXxw";

    fn rules(s: &str) -> Vec<AuthUser> {
        parse_auth_users(s).unwrap()
    }

    fn answer(password: &str, digest: AuthDigest) -> String {
        digest.respond(password.as_bytes(), CHALLENGE.as_bytes())
    }

    fn login(
        users: &str,
        secrets: &str,
        user: &str,
        groups: &[&str],
        password: &str,
    ) -> Result<Access, AuthFailure> {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        authorize(
            &rules(users),
            &parse_secrets(secrets),
            user,
            &groups,
            AuthDigest::Md5,
            CHALLENGE,
            &answer(password, AuthDigest::Md5),
        )
    }

    #[test]
    fn parses_rules_and_options() {
        let r = rules("joe:deny @guest:deny admin:rw @rsync:ro susan, sam:RO ,x:Rw y:d");
        let shown: Vec<String> = r.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "joe:deny",
                "@guest:deny",
                "admin:rw",
                "@rsync:ro",
                "susan",
                "sam:ro",
                "x:rw",
                "y:deny"
            ]
        );
        assert!(r[1].group && r[1].pattern == "guest");
        assert_eq!(rules("a:").first().unwrap().access, Access::Default);
        assert!(rules("").is_empty());
        assert!(rules(" \t, ").is_empty());
    }

    #[test]
    fn leading_comma_splits_on_commas_only() {
        let r = rules(", joe:deny, @Some Group:deny, admin:rw, @RO Group:ro,,");
        assert_eq!(r.len(), 4);
        assert_eq!(r[1].pattern, "Some Group");
        assert!(r[1].group);
        assert_eq!(r[3].pattern, "RO Group");
        assert_eq!(r[3].access, Access::ReadOnly);
    }

    #[test]
    fn refuses_unknown_options_and_empty_names() {
        assert!(parse_auth_users("joe:read").is_err());
        assert!(parse_auth_users("joe:x").is_err());
        assert!(parse_auth_users(":ro").is_err());
        assert!(parse_auth_users("@").is_err());
    }

    #[test]
    fn right_password_for_every_digest() {
        let users = rules("alice");
        let secrets = parse_secrets("alice:s3cret\n");
        for digest in AuthDigest::PREFERENCE {
            let ok = authorize(
                &users,
                &secrets,
                "alice",
                &[],
                digest,
                CHALLENGE,
                &answer("s3cret", digest),
            );
            assert_eq!(ok, Ok(Access::Default), "{}", digest.name());
            let bad = authorize(
                &users,
                &secrets,
                "alice",
                &[],
                digest,
                CHALLENGE,
                &answer("wrong", digest),
            );
            assert_eq!(
                bad,
                Err(AuthFailure::PasswordMismatch {
                    user: "alice".into()
                })
            );
            // The right password hashed with another digest is refused too.
            let other = if digest == AuthDigest::Md5 {
                AuthDigest::Sha1
            } else {
                AuthDigest::Md5
            };
            assert!(
                authorize(
                    &users,
                    &secrets,
                    "alice",
                    &[],
                    digest,
                    CHALLENGE,
                    &answer("s3cret", other)
                )
                .is_err()
            );
        }
    }

    #[test]
    fn answers_are_unpadded_base64_of_password_then_challenge() {
        // Computed independently: base64(H(b"secretabc")) with the '=' padding removed.
        let secrets = parse_secrets("joe:secret\n");
        for (digest, expected) in [
            (AuthDigest::Md5, "xCuToaw7OC6IBxUQKWqWzg"),
            (AuthDigest::Sha1, "M4EnVA3MvkhYmg/zCHVUj8JMdMg"),
            (
                AuthDigest::Sha256,
                "9roYUjxpQroeG1T4JWUnqxuNuUSWz29KK225aVwPxvk",
            ),
        ] {
            let ok = authorize(&rules("joe"), &secrets, "joe", &[], digest, "abc", expected);
            assert_eq!(ok, Ok(Access::Default), "{}", digest.name());
        }
    }

    #[test]
    fn deny_rules_refuse_before_the_password() {
        let r = login("joe:deny joe", "joe:pw\n", "joe", &[], "pw");
        assert_eq!(r, Err(AuthFailure::Denied { user: "joe".into() }));
        let r = login(
            "@guest:deny joe",
            "joe:pw\n",
            "joe",
            &["users", "guest"],
            "pw",
        );
        assert_eq!(r, Err(AuthFailure::Denied { user: "joe".into() }));
        // Not in the group: the next rule applies.
        assert_eq!(
            login("@guest:deny joe", "joe:pw\n", "joe", &["users"], "pw"),
            Ok(Access::Default)
        );
    }

    #[test]
    fn first_matching_rule_decides_the_access() {
        let users = "joe:deny @guest:deny admin:rw @rsync:ro susan joe sam";
        let secrets = "admin:a\nsusan:s\nsam:m\nbob:b\n";
        assert_eq!(
            login(users, secrets, "admin", &[], "a"),
            Ok(Access::ReadWrite)
        );
        assert_eq!(
            login(users, secrets, "admin", &["guest"], "a"),
            Err(AuthFailure::Denied {
                user: "admin".into()
            })
        );
        assert_eq!(
            login(users, secrets, "bob", &["rsync"], "b"),
            Ok(Access::ReadOnly)
        );
        assert_eq!(
            login(users, secrets, "susan", &["rsync"], "s"),
            Ok(Access::ReadOnly)
        );
        assert_eq!(login(users, secrets, "sam", &[], "m"), Ok(Access::Default));
        assert_eq!(
            login(users, secrets, "eve", &[], "x"),
            Err(AuthFailure::NoMatchingRule { user: "eve".into() })
        );
    }

    #[test]
    fn ro_and_rw_rules() {
        assert_eq!(
            login("joe:ro", "joe:pw", "joe", &[], "pw"),
            Ok(Access::ReadOnly)
        );
        assert_eq!(
            login("joe:rw", "joe:pw", "joe", &[], "pw"),
            Ok(Access::ReadWrite)
        );
    }

    #[test]
    fn wildcard_user_patterns() {
        let secrets = "backup1:one\nbackup22:two\n";
        assert_eq!(
            login("backup?", secrets, "backup1", &[], "one"),
            Ok(Access::Default)
        );
        assert!(matches!(
            login("backup?", secrets, "backup22", &[], "two"),
            Err(AuthFailure::NoMatchingRule { .. })
        ));
        assert_eq!(
            login("backup*", secrets, "backup22", &[], "two"),
            Ok(Access::Default)
        );
        assert_eq!(
            login("[ab]ackup1", secrets, "backup1", &[], "one"),
            Ok(Access::Default)
        );
        // The secrets line is the user's own name, never the pattern.
        assert!(matches!(
            login("*", "*:pw\n", "joe", &[], "pw"),
            Err(AuthFailure::SecretNotFound { .. })
        ));
    }

    #[test]
    fn group_rule_accepts_the_user_or_the_group_password() {
        let secrets = "@staff:shared\njoe:own\n";
        assert_eq!(
            login("@staff", secrets, "joe", &["staff"], "shared"),
            Ok(Access::Default)
        );
        assert_eq!(
            login("@staff", secrets, "joe", &["staff"], "own"),
            Ok(Access::Default)
        );
        assert_eq!(
            login("@st*:rw", secrets, "ann", &["wheel", "staff"], "shared"),
            Ok(Access::ReadWrite)
        );
        assert_eq!(
            login("@staff", secrets, "joe", &["staff"], "nope"),
            Err(AuthFailure::PasswordMismatch { user: "joe".into() })
        );
        // A user rule never accepts a group password.
        assert!(matches!(
            login("ann", secrets, "ann", &["staff"], "shared"),
            Err(AuthFailure::SecretNotFound { .. })
        ));
        // The group line checked is that of the first of the user's groups the rule matched.
        let secrets = "@a1:one\n@a2:two\n";
        assert_eq!(
            login("@a?", secrets, "u", &["a1", "a2"], "one"),
            Ok(Access::Default)
        );
        assert!(login("@a?", secrets, "u", &["a1", "a2"], "two").is_err());
    }

    #[test]
    fn secrets_file_format() {
        let s = parse_secrets(
            "# comment\n\njoe:pa:ss word \r\n@grp:g\njoe:second\n\rann:a\rnot:a line\n",
        );
        assert_eq!(s.password("ann"), Some("a"));
        assert_eq!(s.password("not"), None);
        assert_eq!(s.password("joe"), Some("pa:ss word "));
        assert_eq!(s.password("@grp"), Some("g"));
        assert_eq!(s.password("jo"), None);
        assert_eq!(s.password("# comment"), None);
        assert_eq!(
            login("joe", "joe:first\njoe:second\n", "joe", &[], "second"),
            Err(AuthFailure::PasswordMismatch { user: "joe".into() })
        );
        assert!(!format!("{s:?}").contains("pa:ss"));
    }

    #[test]
    fn secrets_problems_and_bad_names() {
        let users = rules("*");
        let response = answer("pw", AuthDigest::Md5);
        let go = |secrets: &Secrets, user: &str| {
            authorize(
                &users,
                secrets,
                user,
                &[],
                AuthDigest::Md5,
                CHALLENGE,
                &response,
            )
        };
        assert_eq!(
            go(&Secrets::unavailable(SecretsProblem::Missing), "joe"),
            Err(AuthFailure::NoSecretsFile { user: "joe".into() })
        );
        assert_eq!(
            go(&Secrets::unavailable(SecretsProblem::Rejected), "joe"),
            Err(AuthFailure::SecretsFileIgnored { user: "joe".into() })
        );
        assert_eq!(
            go(&parse_secrets("#x:pw\n"), "#x"),
            Err(AuthFailure::InvalidUsername { user: "#x".into() })
        );
        assert_eq!(
            go(&parse_secrets("@staff:pw\n"), "@staff"),
            Err(AuthFailure::SecretNotFound {
                user: "@staff".into()
            })
        );
        assert_eq!(
            go(&parse_secrets("joe:pw\n"), "ann"),
            Err(AuthFailure::SecretNotFound { user: "ann".into() })
        );
    }

    #[test]
    fn strict_modes() {
        assert!(check_secrets_permissions(0o600, 0, true, true).is_ok());
        assert!(check_secrets_permissions(0o640, 0, true, true).is_ok());
        assert!(check_secrets_permissions(0o601, 0, true, true).is_ok());
        assert_eq!(
            check_secrets_permissions(0o644, 0, true, true),
            Err("secrets file must not be other-accessible (see strict modes option)".into())
        );
        assert!(check_secrets_permissions(0o602, 0, false, true).is_err());
        assert_eq!(
            check_secrets_permissions(0o600, 1000, true, true),
            Err(
                "secrets file must be owned by root when running as root (see strict modes)".into()
            )
        );
        assert!(check_secrets_permissions(0o600, 1000, false, true).is_ok());
        assert!(check_secrets_permissions(0o666, 1000, true, false).is_ok());
        assert!(check_secrets_permissions(0o100_600, 0, true, true).is_ok());
    }

    #[test]
    fn challenge_lengths_match_rsync() {
        let seed = [7u8; 32];
        for (digest, len) in [
            (AuthDigest::Md4, 22),
            (AuthDigest::Md5, 22),
            (AuthDigest::Sha1, 27),
            (AuthDigest::Sha256, 43),
            (AuthDigest::Sha512, 86),
        ] {
            let c = challenge(&seed, digest);
            assert_eq!(c.len(), len, "{}", digest.name());
            assert!(
                c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
            );
        }
        assert_ne!(
            challenge(&[1; 32], AuthDigest::Md5),
            challenge(&[2; 32], AuthDigest::Md5)
        );
    }

    #[test]
    fn digest_floor() {
        use AuthDigest::*;
        assert!(check_digest_floor(None, Md4).is_ok());
        assert!(check_digest_floor(Some(Sha256), Sha256).is_ok());
        assert!(check_digest_floor(Some(Sha256), Sha512).is_ok());
        let err = check_digest_floor(Some(Sha256), Md5).unwrap_err();
        assert_eq!(
            err.log_line("m", "h.lan", "10.0.0.1"),
            "auth failed on module m from h.lan (10.0.0.1): negotiated auth digest md5 is weaker than the required 'auth digest = sha256'"
        );
        assert!(check_digest_floor(Some(Md5), Md4).is_err());
        assert!(check_digest_floor(Some(Md5), Sha1).is_ok());
    }

    #[test]
    fn log_lines_are_rsyncs() {
        let f = AuthFailure::PasswordMismatch { user: "joe".into() };
        assert_eq!(
            f.log_line("backup", "client.lan", "192.0.2.1"),
            "auth failed on module backup from client.lan (192.0.2.1) for joe: password mismatch"
        );
        assert_eq!(
            AuthFailure::NoMatchingRule { user: "x".into() }.to_string(),
            "no matching rule"
        );
        assert_eq!(
            AuthFailure::Denied { user: "x".into() }.to_string(),
            "denied by rule"
        );
        assert_eq!(
            AuthFailure::InvalidResponse.log_line("m", "h", "a"),
            "auth failed on module m from h (a): invalid challenge response"
        );
    }

    #[test]
    fn response_splitting() {
        assert_eq!(split_response("joe abc def"), Some(("joe", "abc def")));
        assert_eq!(split_response(" abc"), Some(("", "abc")));
        assert_eq!(split_response("joe"), None);
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
