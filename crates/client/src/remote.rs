//! Remote paths as rsync spells them: `rsync://[user@]host[:port]/module/path`,
//! `[user@]host::module/path`, and `[user@]host:path` (remote shell). A colon only counts
//! before any slash, so `./a:b` and `/x/y:z` stay local.

/// A remote location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// An rsync daemon.
    Daemon {
        /// Login name (`user@`), if given.
        user: Option<String>,
        /// Host name or address (IPv6 without brackets).
        host: String,
        /// Port, if given in the URL.
        port: Option<u16>,
        /// Module; `None` asks for the module list.
        module: Option<String>,
        /// Path inside the module.
        path: Vec<u8>,
    },
    /// A host reached through a remote shell (`-e`).
    Shell {
        /// Login name, if given.
        user: Option<String>,
        /// Host name.
        host: String,
        /// Path on that host.
        path: Vec<u8>,
    },
}

fn split_user(s: &str) -> (Option<String>, &str) {
    match s.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, s),
    }
}

fn split_module(rest: &[u8]) -> (Option<String>, Vec<u8>) {
    if rest.is_empty() {
        return (None, Vec::new());
    }
    match rest.iter().position(|&b| b == b'/') {
        Some(i) => (
            Some(String::from_utf8_lossy(rest.get(..i).unwrap_or_default()).into_owned()),
            rest.get(i + 1..).unwrap_or_default().to_vec(),
        ),
        None => (Some(String::from_utf8_lossy(rest).into_owned()), Vec::new()),
    }
}

impl Remote {
    /// Parses `arg`; `None` means a local path.
    #[must_use]
    pub fn parse(arg: &[u8]) -> Option<Remote> {
        if let Some(rest) = arg.strip_prefix(b"rsync://") {
            let slash = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
            let authority =
                String::from_utf8_lossy(rest.get(..slash).unwrap_or_default()).into_owned();
            let (user, hostport) = split_user(&authority);
            let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
                let (h, tail) = v6.split_once(']').unwrap_or((v6, ""));
                (
                    h.to_string(),
                    tail.strip_prefix(':').and_then(|p| p.parse().ok()),
                )
            } else {
                match hostport.rsplit_once(':') {
                    Some((h, p)) => (h.to_string(), p.parse().ok()),
                    None => (hostport.to_string(), None),
                }
            };
            let (module, path) = split_module(rest.get(slash + 1..).unwrap_or_default());
            return Some(Remote::Daemon {
                user,
                host,
                port,
                module,
                path,
            });
        }
        let colon = arg.iter().position(|&b| b == b':')?;
        if arg.get(..colon)?.contains(&b'/') {
            return None;
        }
        let head = String::from_utf8_lossy(arg.get(..colon)?).into_owned();
        let (user, host) = split_user(&head);
        if arg.get(colon + 1) == Some(&b':') {
            let (module, path) = split_module(arg.get(colon + 2..).unwrap_or_default());
            return Some(Remote::Daemon {
                user,
                host: host.to_string(),
                port: None,
                module,
                path,
            });
        }
        Some(Remote::Shell {
            user,
            host: host.to_string(),
            path: arg.get(colon + 1..).unwrap_or_default().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsync_spellings() {
        assert_eq!(
            Remote::parse(b"rsync://bob@h:8873/mod/a/b"),
            Some(Remote::Daemon {
                user: Some("bob".into()),
                host: "h".into(),
                port: Some(8873),
                module: Some("mod".into()),
                path: b"a/b".to_vec()
            })
        );
        assert_eq!(
            Remote::parse(b"user@host::backup_www"),
            Some(Remote::Daemon {
                user: Some("user".into()),
                host: "host".into(),
                port: None,
                module: Some("backup_www".into()),
                path: vec![]
            })
        );
        assert_eq!(
            Remote::parse(b"host::"),
            Some(Remote::Daemon {
                user: None,
                host: "host".into(),
                port: None,
                module: None,
                path: vec![]
            })
        );
        assert_eq!(
            Remote::parse(b"rsync://[::1]:873/m/"),
            Some(Remote::Daemon {
                user: None,
                host: "::1".into(),
                port: Some(873),
                module: Some("m".into()),
                path: vec![]
            })
        );
        assert_eq!(
            Remote::parse(b"me@box:/srv/data"),
            Some(Remote::Shell {
                user: Some("me".into()),
                host: "box".into(),
                path: b"/srv/data".to_vec()
            })
        );
        assert_eq!(Remote::parse(b"./a:b"), None);
        assert_eq!(Remote::parse(b"/x/y:z"), None);
        assert_eq!(Remote::parse(b"plain"), None);
    }
}
