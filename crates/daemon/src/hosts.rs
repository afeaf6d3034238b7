//! `hosts allow` / `hosts deny`: the patterns and the allow/deny decision for one peer.
//!
//! This module owns what rsync's daemon does with those two parameters (rsync `access.c`):
//!
//! - A list is split on spaces, tabs and commas and lowercased; see [`parse_list`].
//! - A token made only of digits and dots, or containing a `:`, is an address: `a.b.c.d`,
//!   `a:b::c`, `addr/bits`, or `addr/mask` with the mask written as an address of the same
//!   family. Anything else is a hostname pattern matched with wildcards against the peer's
//!   reverse-DNS name, so `192.168.1.*` is a *hostname* pattern, as in rsync.
//! - An IPv4-mapped IPv6 peer (`::ffff:10.1.2.3`) is matched as the IPv4 address it carries,
//!   because rsync converts such a peer to IPv4 before looking at it (`clientname.c`).
//! - [`allowed`]: an allow match always admits; with only an allow list, anything else is
//!   refused; otherwise a deny match refuses and everything else is admitted.
//!
//! Name resolution is the caller's: the reverse-resolved name comes in as `host`, and a forward
//! lookup of a plain hostname pattern (rsync's `forward lookup`) goes through a callback given to
//! [`allowed_with_lookup`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The name rsync gives a peer whose reverse lookup failed or did not confirm; a `host` of
/// `None` is matched as this name, so `hosts deny = *` still refuses such a peer and
/// `hosts allow = unknown` works as rsync documents it.
pub const UNKNOWN_HOST: &str = "UNKNOWN";

/// A forward lookup for `forward lookup`: a hostname's addresses, `None` when it does not
/// resolve.
pub type Resolve<'a> = dyn FnMut(&str) -> Option<Vec<IpAddr>> + 'a;

/// One token of a `hosts allow` / `hosts deny` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// An address and the mask of bits that must equal it (all ones for a bare address).
    Net {
        /// The address as written.
        addr: IpAddr,
        /// The mask, in the same family as `addr`.
        mask: IpAddr,
        /// An IPv6 zone (`fe80::1%eth0`). Accepted for compatibility but not compared: the peer
        /// address handed to [`allowed`] carries no zone.
        scope: Option<String>,
    },
    /// A hostname or wildcard pattern (`*`, `?`, `[...]`), lowercased.
    Name(String),
}

impl HostPattern {
    /// Parses one token, as rsync reads it after lowercasing the list.
    ///
    /// Unlike rsync, which logs a malformed address or mask and lets the token match nothing,
    /// this refuses it: a silently dead `hosts deny` entry admits hosts the admin meant to
    /// refuse. `@netgroup` tokens are refused too (rsync asks NIS; we cannot).
    pub fn parse(token: &str) -> Result<HostPattern, String> {
        let token = token.trim().to_ascii_lowercase();
        if token.is_empty() {
            return Err("empty host pattern".to_owned());
        }
        if token.starts_with('@') {
            return Err(format!(
                "netgroup host pattern \"{token}\" is not supported; list the hosts or addresses"
            ));
        }
        let (addr_part, mask_part) = match token.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (token.as_str(), None),
        };
        if !looks_like_address(addr_part) {
            if mask_part.is_some() {
                return Err(format!(
                    "bad host pattern \"{token}\": a hostname has no mask"
                ));
            }
            return Ok(HostPattern::Name(token));
        }
        let (addr, scope) = parse_address(addr_part)
            .ok_or_else(|| format!("bad address \"{addr_part}\" in host pattern \"{token}\""))?;
        let mask = match mask_part {
            None => full_mask(addr),
            Some(m) => parse_mask(addr, m)
                .ok_or_else(|| format!("bad mask \"{m}\" in host pattern \"{token}\""))?,
        };
        Ok(HostPattern::Net { addr, mask, scope })
    }

    /// Whether a peer matches, without forward lookups.
    #[must_use]
    pub fn matches(&self, addr: IpAddr, host: Option<&str>) -> bool {
        self.matches_with(addr, host, None, false)
    }

    fn matches_with(
        &self,
        addr: IpAddr,
        host: Option<&str>,
        forward: Option<&mut Resolve<'_>>,
        deny: bool,
    ) -> bool {
        match self {
            HostPattern::Net {
                addr: net, mask, ..
            } => net_matches(*net, *mask, addr),
            HostPattern::Name(pattern) => {
                let host = host.unwrap_or(UNKNOWN_HOST);
                if !host.is_empty()
                    && filter::wildmatch(pattern.as_bytes(), host.to_ascii_lowercase().as_bytes())
                {
                    return true;
                }
                match forward {
                    Some(resolve) if is_plain_hostname(pattern) => match resolve(pattern) {
                        Some(addrs) => addrs
                            .iter()
                            .any(|a| a.to_canonical() == addr.to_canonical()),
                        // A deny entry we cannot resolve might be this peer: refuse rather than
                        // admit (as rsync 3.5.0 does).
                        None => deny,
                    },
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Name(name) => f.write_str(name),
            HostPattern::Net { addr, mask, scope } => {
                write!(f, "{addr}")?;
                if let Some(scope) = scope {
                    write!(f, "%{scope}")?;
                }
                if *mask != full_mask(*addr) {
                    match prefix_len(*mask) {
                        Some(bits) => write!(f, "/{bits}")?,
                        None => write!(f, "/{mask}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// Parses a whole `hosts allow` / `hosts deny` value: tokens separated by spaces, tabs or
/// commas. An empty value gives an empty list, which [`allowed`] reads as "not set".
pub fn parse_list(value: &str) -> Result<Vec<HostPattern>, String> {
    value
        .split([' ', ',', '\t', '\r', '\n'])
        .filter(|t| !t.is_empty())
        .map(HostPattern::parse)
        .collect()
}

/// Whether a peer may connect, by rsync's rules: an `allow` match admits; a non-matching peer
/// is refused when only `allow` is set; otherwise a `deny` match refuses and all else is
/// admitted. Empty lists are unset. `host` is the peer's reverse-resolved name (`None` when
/// unknown; see [`UNKNOWN_HOST`]). No forward lookups are made.
#[must_use]
pub fn allowed(
    allow: &[HostPattern],
    deny: &[HostPattern],
    addr: IpAddr,
    host: Option<&str>,
) -> bool {
    allowed_with_lookup(allow, deny, addr, host, None)
}

/// [`allowed`], with `forward lookup` on: a plain hostname pattern (no wildcard, not an
/// address) that does not match `host` is resolved with `resolve` and matches when one of its
/// addresses is the peer's. `resolve` returns `None` when the name does not resolve; such an
/// entry then matches in `deny` (fail closed) and not in `allow`.
#[must_use]
pub fn allowed_with_lookup(
    allow: &[HostPattern],
    deny: &[HostPattern],
    addr: IpAddr,
    host: Option<&str>,
    mut resolve: Option<&mut Resolve<'_>>,
) -> bool {
    let mut any_match = |list: &[HostPattern], deny: bool| {
        list.iter().any(|p| {
            let forward = resolve.as_mut().map(|r| &mut **r as &mut Resolve<'_>);
            p.matches_with(addr, host, forward, deny)
        })
    };
    if !allow.is_empty() {
        if any_match(allow, false) {
            return true;
        }
        if deny.is_empty() {
            return false;
        }
    }
    deny.is_empty() || !any_match(deny, true)
}

/// rsync's test for "this token is an address": only digits and dots, or any colon.
fn looks_like_address(s: &str) -> bool {
    s.contains(':') || s.bytes().all(|b| b == b'.' || b.is_ascii_digit())
}

/// A plain hostname is what rsync would forward-resolve: not all digits and dots, and free of
/// `:`, `/` and wildcard characters.
fn is_plain_hostname(s: &str) -> bool {
    !s.bytes().all(|b| b == b'.' || b.is_ascii_digit()) && !s.contains([':', '/', '*', '?', '['])
}

fn parse_address(s: &str) -> Option<(IpAddr, Option<String>)> {
    match s.split_once('%') {
        Some((a, zone)) if !zone.is_empty() => {
            let v6: Ipv6Addr = a.parse().ok()?;
            Some((IpAddr::V6(v6), Some(zone.to_owned())))
        }
        Some(_) => None,
        None => s.parse().ok().map(|a| (a, None)),
    }
}

fn parse_mask(addr: IpAddr, m: &str) -> Option<IpAddr> {
    match (addr, m.parse::<IpAddr>()) {
        (IpAddr::V4(_), Ok(mask @ IpAddr::V4(_))) | (IpAddr::V6(_), Ok(mask @ IpAddr::V6(_))) => {
            return Some(mask);
        }
        _ => {}
    }
    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u32 = m.parse().ok()?;
    match addr {
        IpAddr::V4(_) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            Some(IpAddr::V4(Ipv4Addr::from(mask)))
        }
        IpAddr::V6(_) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            Some(IpAddr::V6(Ipv6Addr::from(mask)))
        }
        _ => None,
    }
}

fn full_mask(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::MAX)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(u128::MAX)),
    }
}

/// The prefix length of a contiguous mask, for display.
fn prefix_len(mask: IpAddr) -> Option<u32> {
    let (ones, zeros, width) = match mask {
        IpAddr::V4(m) => {
            let v = u32::from(m);
            (v.leading_ones(), v.trailing_zeros(), 32)
        }
        IpAddr::V6(m) => {
            let v = u128::from(m);
            (v.leading_ones(), v.trailing_zeros(), 128)
        }
    };
    (ones + zeros == width).then_some(ones)
}

fn net_matches(net: IpAddr, mask: IpAddr, peer: IpAddr) -> bool {
    match (net, mask, peer.to_canonical()) {
        (IpAddr::V4(n), IpAddr::V4(m), IpAddr::V4(p)) => {
            (u32::from(n) ^ u32::from(p)) & u32::from(m) == 0
        }
        (IpAddr::V6(n), IpAddr::V6(m), IpAddr::V6(p)) => {
            (u128::from(n) ^ u128::from(p)) & u128::from(m) == 0
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn list(s: &str) -> Vec<HostPattern> {
        parse_list(s).unwrap()
    }

    #[test]
    fn tutorial_allow_loopback_deny_everything() {
        let allow = list("127.0.0.1/8");
        let deny = list("*");
        assert!(allowed(&allow, &deny, ip("127.0.0.1"), Some("localhost")));
        assert!(allowed(&allow, &deny, ip("127.5.5.5"), None));
        assert!(!allowed(&allow, &deny, ip("10.0.0.1"), None));
        assert!(!allowed(
            &allow,
            &deny,
            ip("10.0.0.1"),
            Some("host.example.com")
        ));
        assert!(!allowed(&allow, &deny, ip("::1"), None));
    }

    #[test]
    fn rsync_decision_table() {
        let a = list("10.0.0.0/8");
        let d = list("10.1.0.0/16 192.168.0.0/16");
        let none: Vec<HostPattern> = Vec::new();
        // Neither list: everyone.
        assert!(allowed(&none, &none, ip("1.2.3.4"), None));
        // Only allow: members only.
        assert!(allowed(&a, &none, ip("10.9.9.9"), None));
        assert!(!allowed(&a, &none, ip("1.2.3.4"), None));
        // Only deny: all but members.
        assert!(!allowed(&none, &d, ip("192.168.1.1"), None));
        assert!(allowed(&none, &d, ip("1.2.3.4"), None));
        // Both: allow wins, then deny, then admit.
        assert!(allowed(&a, &d, ip("10.1.2.3"), None));
        assert!(!allowed(&a, &d, ip("192.168.1.1"), None));
        assert!(allowed(&a, &d, ip("1.2.3.4"), None));
    }

    #[test]
    fn exact_addresses() {
        let p = HostPattern::parse("192.168.1.10").unwrap();
        assert!(p.matches(ip("192.168.1.10"), None));
        assert!(!p.matches(ip("192.168.1.11"), None));
        let p6 = HostPattern::parse("2001:DB8::1").unwrap();
        assert!(p6.matches(ip("2001:db8::1"), None));
        assert!(!p6.matches(ip("2001:db8::2"), None));
    }

    #[test]
    fn cidr_and_dotted_masks() {
        let p = HostPattern::parse("10.0.0.0/255.255.255.0").unwrap();
        assert!(p.matches(ip("10.0.0.200"), None));
        assert!(!p.matches(ip("10.0.1.1"), None));
        let p = HostPattern::parse("10.0.0.0/24").unwrap();
        assert!(p.matches(ip("10.0.0.7"), None));
        assert!(!p.matches(ip("10.0.1.7"), None));
        let any4 = HostPattern::parse("0.0.0.0/0").unwrap();
        assert!(any4.matches(ip("203.0.113.9"), None));
        assert!(!any4.matches(ip("2001:db8::1"), None));
        let p = HostPattern::parse("1.2.3.4/32").unwrap();
        assert!(p.matches(ip("1.2.3.4"), None));
        assert!(!p.matches(ip("1.2.3.5"), None));
        // A non-contiguous mask is applied bit by bit, as rsync does.
        let p = HostPattern::parse("10.0.0.1/255.0.0.255").unwrap();
        assert!(p.matches(ip("10.200.100.1"), None));
        assert!(!p.matches(ip("10.200.100.2"), None));
    }

    #[test]
    fn ipv6_prefixes_and_masks() {
        let p = HostPattern::parse("::1/128").unwrap();
        assert!(p.matches(ip("::1"), None));
        assert!(!p.matches(ip("::2"), None));
        let p = HostPattern::parse("2001:db8::/32").unwrap();
        assert!(p.matches(ip("2001:db8:ffff::1"), None));
        assert!(!p.matches(ip("2001:db9::1"), None));
        let p = HostPattern::parse("fe80::/ffff:ffff:ffff:ffff::").unwrap();
        assert!(p.matches(ip("fe80::1234"), None));
        assert!(!p.matches(ip("fe81::1"), None));
        let p = HostPattern::parse("fe80::1%eth0").unwrap();
        assert!(p.matches(ip("fe80::1"), None));
        assert!(!p.matches(ip("127.0.0.1"), None));
    }

    #[test]
    fn ipv4_pattern_matches_mapped_peer() {
        let p = HostPattern::parse("127.0.0.1/8").unwrap();
        assert!(p.matches(ip("::ffff:127.0.0.1"), None));
        assert!(p.matches(ip("::ffff:127.9.9.9"), None));
        assert!(!p.matches(ip("::ffff:10.0.0.1"), None));
        assert!(
            HostPattern::parse("10.1.2.3")
                .unwrap()
                .matches(ip("::ffff:10.1.2.3"), None)
        );
        // rsync matches the mapped peer as IPv4, so a v6 pattern never sees it.
        assert!(
            !HostPattern::parse("::ffff:10.1.2.3")
                .unwrap()
                .matches(ip("::ffff:10.1.2.3"), None)
        );
    }

    #[test]
    fn hostname_patterns() {
        let p = HostPattern::parse("*.Example.COM").unwrap();
        assert_eq!(p, HostPattern::Name("*.example.com".into()));
        assert!(p.matches(ip("1.2.3.4"), Some("www.example.com")));
        assert!(p.matches(ip("1.2.3.4"), Some("WWW.EXAMPLE.com")));
        assert!(!p.matches(ip("1.2.3.4"), Some("example.com")));
        assert!(!p.matches(ip("1.2.3.4"), None));
        let p = HostPattern::parse("host?.lan").unwrap();
        assert!(p.matches(ip("1.2.3.4"), Some("host1.lan")));
        assert!(!p.matches(ip("1.2.3.4"), Some("host12.lan")));
        let p = HostPattern::parse("backup.lan").unwrap();
        assert!(p.matches(ip("1.2.3.4"), Some("backup.lan")));
        assert!(!p.matches(ip("1.2.3.4"), Some("other.lan")));
        // rsync reads 192.168.1.* as a hostname pattern, not an address range.
        let p = HostPattern::parse("192.168.1.*").unwrap();
        assert!(matches!(p, HostPattern::Name(_)));
        assert!(!p.matches(ip("192.168.1.5"), None));
    }

    #[test]
    fn star_matches_every_peer_even_unnamed() {
        let p = HostPattern::parse("*").unwrap();
        assert!(p.matches(ip("10.0.0.1"), None));
        assert!(p.matches(ip("::1"), Some("anything")));
        assert!(!p.matches(ip("::1"), Some("")));
        assert!(
            HostPattern::parse("unknown")
                .unwrap()
                .matches(ip("10.0.0.1"), None)
        );
    }

    #[test]
    fn list_separators_and_case() {
        let l = list(" 10.0.0.1,10.0.0.2\t, HOST.lan  ");
        assert_eq!(l.len(), 3);
        assert_eq!(l[2], HostPattern::Name("host.lan".into()));
        assert!(list("").is_empty());
        assert!(list(" , ").is_empty());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "300.1.1.1",
            "10.0.0.0/33",
            "10.0.0.0/abc",
            "10.0.0.0/",
            "::1/129",
            "::1/255.0.0.0",
            "10.0.0.0/ffff::",
            "1.2.3",
            "gg::1",
            "host.lan/24",
            "@netgroup",
            "fe80::1%",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(parse_list("10.0.0.1 999.0.0.1").is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "10.0.0.0/8",
            "10.0.0.1",
            "10.0.0.1/255.0.0.255",
            "::1",
            "2001:db8::/32",
            "fe80::1%eth0",
            "*.example.com",
        ] {
            let p = HostPattern::parse(s).unwrap();
            assert_eq!(p.to_string(), s);
            assert_eq!(HostPattern::parse(&p.to_string()).unwrap(), p);
        }
    }

    #[test]
    fn forward_lookup_of_plain_names() {
        let allow = list("backup.lan *.wild.lan");
        let deny = list("*");
        let mut calls = Vec::new();
        let mut resolve = |name: &str| {
            calls.push(name.to_owned());
            (name == "backup.lan").then(|| vec![ip("192.0.2.7")])
        };
        assert!(allowed_with_lookup(
            &allow,
            &deny,
            ip("192.0.2.7"),
            None,
            Some(&mut resolve)
        ));
        assert!(!allowed_with_lookup(
            &allow,
            &deny,
            ip("192.0.2.8"),
            None,
            Some(&mut resolve)
        ));
        // Wildcards are never resolved.
        assert!(calls.iter().all(|c| c == "backup.lan"));
        // Without a resolver, the name only matches the reverse name.
        assert!(!allowed(&allow, &deny, ip("192.0.2.7"), None));
        assert!(allowed(&allow, &deny, ip("192.0.2.7"), Some("backup.lan")));
    }

    #[test]
    fn unresolvable_deny_name_fails_closed() {
        let deny = list("gone.lan");
        let mut resolve = |_: &str| None;
        assert!(!allowed_with_lookup(
            &[],
            &deny,
            ip("192.0.2.1"),
            None,
            Some(&mut resolve)
        ));
        let mut resolve = |_: &str| Some(vec![ip("192.0.2.99")]);
        assert!(allowed_with_lookup(
            &[],
            &deny,
            ip("192.0.2.1"),
            None,
            Some(&mut resolve)
        ));
        // An unresolvable allow name does not admit.
        let allow = list("gone.lan");
        let mut resolve = |_: &str| None;
        assert!(!allowed_with_lookup(
            &allow,
            &[],
            ip("192.0.2.1"),
            None,
            Some(&mut resolve)
        ));
    }
}
