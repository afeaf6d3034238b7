//! Fuzzes the daemon's access checks: `daemon::auth::parse_auth_users`, `auth::parse_secrets`
//! and `auth::authorize` (a login), `daemon::hosts::parse_list` / `HostPattern::parse` and
//! `hosts::allowed` (a connection).
//!
//! Input: byte 0 picks the digest (low 3 bits), an IPv4 peer (bit 3) and an unknown host
//! name (bit 4); the next 16 bytes are the peer's address (the first 4 for IPv4); the rest is
//! NUL-separated fields: `auth users`, the secrets file, `hosts allow`, `hosts deny`, the user
//! name, the user's groups (comma-separated), the peer's host name and the challenge.
//!
//! Checked: an `auth users` rule has a pattern without `:` and prints as text that parses back
//! to it; a password has no line break, comes from a `name:password` line of the file and is
//! never a `#` name's; a host pattern prints as text that parses back to it, a name pattern is
//! lowercase and an address pattern matches its own address; `allowed` decides as rsync's
//! rules say from the patterns' own matches, the same for an IPv4 peer and its IPv4-mapped
//! IPv6 form, and the same with forward lookups that find no address. A login succeeds with
//! the right response unless no rule matches or the rule denies, never with a wrong one, never
//! for a `#` name, never without a secrets file, and never with `deny` access.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use daemon::auth::{self, Access, AuthFailure, SecretsProblem};
use daemon::hosts::{self, HostPattern};
use libfuzzer_sys::fuzz_target;
use protocol::daemon::AuthDigest;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let Some((raw_addr, rest)) = rest.split_first_chunk::<16>() else {
        return;
    };
    let digest = AuthDigest::PREFERENCE[usize::from(ctl & 7) % AuthDigest::PREFERENCE.len()];
    let addr = if ctl & 8 != 0 {
        IpAddr::V4(Ipv4Addr::new(
            raw_addr[0],
            raw_addr[1],
            raw_addr[2],
            raw_addr[3],
        ))
    } else {
        IpAddr::V6(Ipv6Addr::from(*raw_addr))
    };
    let mut fields = rest.split(|&b| b == 0).map(String::from_utf8_lossy);
    let mut next = || fields.next().unwrap_or_default();
    let (users, secrets, allow, deny) = (next(), next(), next(), next());
    let (user, groups, host, challenge) = (next(), next(), next(), next());
    let groups: Vec<String> = groups.split(',').map(str::to_owned).collect();
    let host = (ctl & 16 == 0).then_some(&*host);

    let allow = host_list(&allow);
    let deny = host_list(&deny);
    if let (Some(allow), Some(deny)) = (&allow, &deny) {
        check_allowed(allow, deny, addr, host);
    }

    let secrets_text = secrets;
    let secrets = auth::parse_secrets(&secrets_text);
    for name in [&*user, "", "#"]
        .into_iter()
        .chain(groups.iter().map(String::as_str))
    {
        if let Some(password) = secrets.password(name) {
            assert!(!password.contains(['\n', '\r']));
            assert!(!name.starts_with('#'), "a comment line gave a password");
            assert!(secrets_text.contains(&format!("{name}:{password}")));
        }
    }

    let Ok(rules) = auth::parse_auth_users(&users) else {
        return;
    };
    for r in &rules {
        assert!(!r.pattern.is_empty() && !r.pattern.contains(':'), "{r:?}");
        let shown = r.to_string();
        if shown.trim() == shown {
            assert_eq!(
                auth::parse_auth_users(&format!(",{shown}")).as_deref(),
                Ok(std::slice::from_ref(r)),
                "{shown:?}"
            );
        }
    }

    let login = |secrets: &auth::Secrets, response: &str| {
        auth::authorize(
            &rules, secrets, &user, &groups, digest, &challenge, response,
        )
    };
    let check_failure = |e: &AuthFailure| {
        let _ = e.log_line("mod", host.unwrap_or(hosts::UNKNOWN_HOST), "addr");
        assert_eq!(e.user(), Some(&*user));
    };
    // A wrong response: no digest is one character long.
    match login(&secrets, "x") {
        Ok(a) => panic!("a wrong response logged in with {a:?}"),
        Err(e) => check_failure(&e),
    }
    for problem in [SecretsProblem::Missing, SecretsProblem::Rejected] {
        assert!(login(&auth::Secrets::unavailable(problem), "x").is_err());
    }
    let password = (!user.starts_with('@'))
        .then(|| secrets.password(&user))
        .flatten();
    if let Some(password) = password {
        let response = digest.respond(password.as_bytes(), challenge.as_bytes());
        match login(&secrets, &response) {
            Ok(a) => {
                assert_ne!(a, Access::Deny);
                assert!(!user.starts_with('#'));
            }
            Err(e) => {
                check_failure(&e);
                assert!(
                    matches!(
                        e,
                        AuthFailure::NoMatchingRule { .. } | AuthFailure::Denied { .. }
                    ),
                    "the right password for {user:?} failed: {e}"
                );
            }
        }
    }
});

/// A `hosts allow`/`hosts deny` value, its patterns checked one by one.
fn host_list(value: &str) -> Option<Vec<HostPattern>> {
    let list = hosts::parse_list(value);
    let tokens: Vec<&str> = value
        .split([' ', ',', '\t', '\r', '\n'])
        .filter(|t| !t.is_empty())
        .collect();
    match &list {
        Ok(patterns) => assert_eq!(patterns.len(), tokens.len()),
        Err(_) => assert!(tokens.iter().any(|t| HostPattern::parse(t).is_err())),
    }
    for t in tokens {
        let Ok(p) = HostPattern::parse(t) else {
            continue;
        };
        let shown = p.to_string();
        assert_eq!(
            HostPattern::parse(&shown).as_ref(),
            Ok(&p),
            "{t:?} shown as {shown:?}"
        );
        match &p {
            HostPattern::Name(name) => {
                assert!(!name.is_empty() && !name.contains('/'), "{name:?}");
                assert_eq!(name.to_ascii_lowercase(), *name);
            }
            HostPattern::Net { addr, mask, .. } => {
                assert_eq!(addr.is_ipv4(), mask.is_ipv4(), "{t:?}");
                if addr.to_canonical() == *addr {
                    assert!(
                        p.matches(*addr, None),
                        "{t:?} does not match its own address"
                    );
                }
            }
        }
    }
    list.ok()
}

fn check_allowed(allow: &[HostPattern], deny: &[HostPattern], addr: IpAddr, host: Option<&str>) {
    let any = |list: &[HostPattern]| list.iter().any(|p| p.matches(addr, host));
    let expected = if !allow.is_empty() && any(allow) {
        true
    } else if !allow.is_empty() && deny.is_empty() {
        false
    } else {
        !any(deny)
    };
    let got = hosts::allowed(allow, deny, addr, host);
    assert_eq!(got, expected);
    if let IpAddr::V4(v4) = addr {
        let mapped = IpAddr::V6(v4.to_ipv6_mapped());
        assert_eq!(
            hosts::allowed(allow, deny, mapped, host),
            got,
            "{addr} vs {mapped}"
        );
    }
    let mut nowhere = |_: &str| Some(Vec::new());
    assert_eq!(
        hosts::allowed_with_lookup(allow, deny, addr, host, Some(&mut nowhere)),
        got
    );
}
