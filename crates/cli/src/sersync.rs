//! `rtsync run --sersync confxml.xml`: sersync 2.5's XML configuration, mapped onto the same
//! [`RunConfig`] as the command line and the TOML file, so a sersync setup moves over as it is.
//!
//! Mapped: `localpath watch` (the source), each `remote ip name` (a target: `ip::name`, or
//! `rsync://[users@]ip:port/name/` with `userDefinedPort`, or `ip:name` with `ssh`), `auth`
//! (user and password file), `timeout`, `z` and `--bwlimit` in `commonParams`, `crontab`
//! (a full compare every `schedule` minutes, skipping what an enabled `crontabfilter`
//! excludes), `filter` excludes where their regular expressions have an rsync-pattern
//! equivalent, and the `command` and `socket` plugins `<sersync>` turns on. Everything else is
//! named in a warning: rtsync always watches every kind of event, keeps its own journal
//! instead of the fail log, and does not speak ChinaCache's `refreshCDN`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_xml::events::{BytesStart, Event};

use crate::plugin_config::{Kind, PluginConfig};
use crate::run_config::{DEFAULT_EXCLUDES, RunConfig, TargetConfig};

/// One element's attributes, by name.
fn attrs(e: &BytesStart<'_>) -> Vec<(String, String)> {
    e.attributes()
        .flatten()
        .map(|a| {
            let key = a.key.as_ref().to_string();
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_or_else(|_| a.value.to_string(), std::borrow::Cow::into_owned);
            (key, value)
        })
        .collect()
}

fn get<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn on(attrs: &[(String, String)]) -> bool {
    get(attrs, "start") == Some("true")
}

/// sersync's filter expressions are regular expressions on the path below the watch; the
/// What one `<plugin name=...>` section of a confxml says.
#[derive(Debug, Default)]
struct PluginSection {
    name: String,
    /// The command plugin's `<param prefix=... suffix=...>`: sersync runs
    /// `prefix PATH suffix` for each changed file.
    prefix: String,
    suffix: String,
    filter_on: bool,
    /// Regular expressions of `<include expression=...>`.
    include: Vec<String>,
    /// The socket plugin's `<deshost ip=... port=...>`.
    deshost: Option<String>,
}

/// The plugins `<sersync>` turns on, as rtsync's; what cannot be mapped is warned about.
fn plugins_of(
    on: &[String],
    sections: &[PluginSection],
    warnings: &mut Vec<String>,
) -> Vec<PluginConfig> {
    let mut out = Vec::new();
    for name in on {
        let Some(s) = sections.iter().find(|s| s.name == *name) else {
            warnings.push(format!(
                "plugin {name:?} is turned on but has no <plugin name={name:?}> section"
            ));
            continue;
        };
        let mut include = Vec::new();
        if s.filter_on {
            for x in &s.include {
                match regex_to_rsync(x) {
                    Some(p) => include.push(p),
                    None => warnings.push(format!(
                        "plugin {name}: include expression {x:?} has no rsync-pattern equivalent and is ignored"
                    )),
                }
            }
            if include.is_empty() {
                warnings.push(format!(
                    "plugin {name}: no include could be mapped; it is not run"
                ));
                continue;
            }
        }
        let kind = match name.as_str() {
            "command" if !s.prefix.trim().is_empty() => Kind::Command {
                argv: s.prefix.split_whitespace().map(OsString::from).collect(),
                after: s.suffix.split_whitespace().map(OsString::from).collect(),
                per_run: 1,
                stdin: false,
            },
            "socket" => match &s.deshost {
                Some(address) => Kind::Socket {
                    address: address.clone(),
                },
                None => {
                    warnings.push(
                        "plugin socket has no <deshost ip=... port=...>; it is not run".into(),
                    );
                    continue;
                }
            },
            "refreshCDN" => {
                warnings.push(
                    "plugin refreshCDN (ChinaCache's API) is not supported; an http plugin in a TOML config can tell a CDN's purge endpoint".into(),
                );
                continue;
            }
            other => {
                warnings.push(format!("plugin {other:?} cannot be mapped and is ignored"));
                continue;
            }
        };
        out.push(PluginConfig {
            name: name.clone(),
            // sersync's command plugin runs for files made or changed, not for deletions.
            deletes: !matches!(kind, Kind::Command { .. }),
            kind,
            include,
            targets: Vec::new(),
            timeout: crate::run_config::PLUGIN_TIMEOUT,
        });
    }
    out
}

/// common ones are globs in disguise.
fn regex_to_rsync(expr: &str) -> Option<String> {
    let word = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    if let Some(ext) = expr.strip_prefix("(.*)\\.")
        && word(ext, "")
    {
        return Some(format!("*.{ext}"));
    }
    if let Some(rest) = expr.strip_prefix("(.*)")
        && word(rest, "_-")
    {
        return Some(format!("*{rest}"));
    }
    if let Some(dir) = expr.strip_prefix('^').and_then(|d| d.strip_suffix("/*"))
        && word(dir, "_-./")
    {
        return Some(format!("/{dir}/"));
    }
    None
}

/// The line (from 1) that byte `at` of `text` is on.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()
        .get(..at)
        .unwrap_or(text.as_bytes())
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The result: the run, and what was ignored, for the user to read.
#[derive(Debug)]
pub struct Mapped {
    pub config: RunConfig,
    pub warnings: Vec<String>,
}

/// Reads a sersync `confxml.xml`.
///
/// # Errors
/// Unreadable or malformed XML (with its position), or no `localpath`/`remote`.
pub fn read(path: &Path) -> Result<Mapped, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(path, &text)
}

/// Maps the bytes of a `confxml.xml`; `path` names the file in messages (the fuzz target
/// `sersync_conf` calls this with bytes of its own).
///
/// # Errors
/// Malformed XML (with its position), or no `localpath`/`remote`.
#[allow(clippy::too_many_lines)]
pub fn parse(path: &Path, text: &[u8]) -> Result<Mapped, String> {
    // sersync's files declare ISO-8859-1; the names we use are ASCII either way.
    let text = String::from_utf8_lossy(text).into_owned();
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut stack: Vec<String> = Vec::new();
    let mut warnings = Vec::new();
    let mut source: Option<PathBuf> = None;
    let mut remotes: Vec<(String, String)> = Vec::new();
    let mut exclude: Vec<String> = Vec::new();
    let mut filter_on = false;
    let mut filter_exprs: Vec<String> = Vec::new();
    let mut auth: Option<(String, PathBuf)> = None;
    let mut port: Option<u16> = None;
    let mut timeout: u64 = 60;
    let mut ssh = false;
    let mut compress = false;
    let mut bwlimit: Option<u64> = None;
    let mut crontab_filter = false;
    let mut resync_exclude: Vec<String> = Vec::new();
    let mut resync: Option<Duration> = None;
    // Plugins: those <sersync> turns on, and what each <plugin name=...> section says.
    let mut plugins_on: Vec<String> = Vec::new();
    let mut plugin_at: Option<String> = None;
    let mut sections: Vec<PluginSection> = Vec::new();
    loop {
        let event = reader.read_event().map_err(|e| {
            let at = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
            format!(
                "{}:{}: malformed XML at byte {at}: {e}",
                path.display(),
                line_of(&text, at)
            )
        })?;
        let (e, empty) = match &event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                if stack.pop().as_deref() == Some("plugin") {
                    plugin_at = None;
                }
                continue;
            }
            // A file cut short (a copy or an edit that did not finish) is refused, not read
            // as far as it goes: the targets after the cut would be lost without a word.
            Event::Eof if !stack.is_empty() => {
                return Err(format!(
                    "{}:{}: malformed XML: <{}> is not closed at the end of the file",
                    path.display(),
                    line_of(&text, text.len()),
                    stack.last().map(String::as_str).unwrap_or_default()
                ));
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = e.name().as_ref().to_string();
        let a = attrs(e);
        let parent = stack.last().map(String::as_str).unwrap_or("");
        let in_sersync = stack.iter().any(|s| s == "sersync");
        let in_plugin = stack.iter().any(|s| s == "plugin");
        match (parent, name.as_str()) {
            ("head", "filter") => filter_on = on(&a),
            ("filter", "exclude") if !in_plugin && !stack.iter().any(|s| s == "crontab") => {
                if let Some(x) = get(&a, "expression") {
                    filter_exprs.push(x.to_string());
                }
            }
            ("sersync", "localpath") => match get(&a, "watch") {
                Some(w) if source.is_none() => source = Some(PathBuf::from(w)),
                Some(w) => warnings.push(format!("a second localpath ({w}) is ignored: run one rtsync per source")),
                None => {}
            },
            ("localpath", "remote") if in_sersync => {
                if let (Some(ip), Some(module)) = (get(&a, "ip"), get(&a, "name")) {
                    remotes.push((ip.to_string(), module.to_string()));
                }
            }
            ("rsync", "commonParams") => {
                let params = get(&a, "params").unwrap_or("");
                for word in params.split_whitespace() {
                    if word == "--compress"
                        || (!word.starts_with("--") && word.starts_with('-') && word.contains('z'))
                    {
                        compress = true;
                    } else if let Some(rate) = word.strip_prefix("--bwlimit=") {
                        match daemon::args::parse_bwlimit(rate.as_bytes()) {
                            Ok(kib) => bwlimit = (kib > 0).then_some(kib),
                            Err(e) => warnings.push(format!("commonParams: {e}; no limit is set")),
                        }
                    }
                }
                warnings.push(format!(
                    "commonParams {params:?}: rtsync always sends with -a -H (plus -z and --bwlimit if given) and deletes what the source deletes"
                ));
            }
            ("rsync", "auth") if on(&a) => {
                auth = Some((
                    get(&a, "users").unwrap_or("").to_string(),
                    PathBuf::from(get(&a, "passwordfile").unwrap_or("")),
                ));
            }
            ("rsync", "userDefinedPort") if on(&a) => {
                port = get(&a, "port").and_then(|p| p.parse().ok());
            }
            ("rsync", "timeout") if on(&a) => {
                timeout = get(&a, "time").and_then(|t| t.parse().ok()).unwrap_or(timeout);
            }
            ("rsync", "ssh") => ssh = on(&a),
            ("sersync", "failLog") => warnings.push(
                "failLog is ignored: failed changes stay in rtsync's journal and are retried until they land".to_string(),
            ),
            ("sersync", "crontab") if on(&a) => {
                let minutes: u64 = get(&a, "schedule").and_then(|s| s.parse().ok()).unwrap_or(600);
                resync = Some(Duration::from_secs(minutes.max(1) * 60));
            }
            ("crontab", "crontabfilter") if on(&a) => crontab_filter = true,
            // sersync hands these to rsync's --exclude as they are: patterns, not regexes.
            ("crontabfilter", "exclude") if crontab_filter => {
                if let Some(x) = get(&a, "expression").filter(|x| !x.is_empty()) {
                    resync_exclude.push(x.to_string());
                }
            }
            ("sersync", "plugin") if on(&a) => {
                plugins_on.push(get(&a, "name").unwrap_or("").to_string());
            }
            ("head", "plugin") => {
                let name = get(&a, "name").unwrap_or("").to_string();
                sections.push(PluginSection {
                    name: name.clone(),
                    ..PluginSection::default()
                });
                plugin_at = Some(name);
            }
            ("plugin", "param") | ("plugin", "filter") | ("filter", "include") | ("localpath", "deshost")
                if in_plugin =>
            {
                if let Some(s) = sections
                    .iter_mut()
                    .rfind(|s| Some(&s.name) == plugin_at.as_ref())
                {
                    match name.as_str() {
                        "param" => {
                            s.prefix = get(&a, "prefix").unwrap_or("").to_string();
                            s.suffix = get(&a, "suffix").unwrap_or("").to_string();
                        }
                        "filter" => s.filter_on = on(&a),
                        "include" => s.include.extend(get(&a, "expression").map(str::to_string)),
                        _ => {
                            if let (Some(ip), Some(port)) = (get(&a, "ip"), get(&a, "port")) {
                                s.deshost = Some(format!("{ip}:{port}"));
                            }
                        }
                    }
                }
            }
            ("head", "inotify") => warnings.push(
                "the inotify switches are ignored: rtsync watches every kind of change".to_string(),
            ),
            ("head", "debug") if on(&a) => warnings.push("debug is ignored: use -v".to_string()),
            _ => {}
        }
        if !empty {
            stack.push(name);
        }
    }
    let source = source
        .ok_or_else(|| format!("{}: no <localpath watch=...> in <sersync>", path.display()))?;
    if remotes.is_empty() {
        return Err(format!(
            "{}: no <remote ip=... name=...> under <localpath>",
            path.display()
        ));
    }
    if filter_on {
        for x in filter_exprs {
            match regex_to_rsync(&x) {
                Some(p) => exclude.push(p),
                None => warnings.push(format!(
                    "filter expression {x:?} has no rsync-pattern equivalent and is ignored; add an exclude to a TOML config instead"
                )),
            }
        }
    }
    let user = auth
        .as_ref()
        .map(|(u, _)| u.clone())
        .filter(|u| !u.is_empty());
    let targets = remotes
        .into_iter()
        .map(|(ip, module)| {
            let at = user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
            let dest = if ssh {
                format!("{at}{ip}:{module}")
            } else if let Some(port) = port {
                format!("rsync://{at}{ip}:{port}/{module}/")
            } else {
                format!("{at}{ip}::{module}")
            };
            TargetConfig {
                dest: dest.into(),
                password_file: auth
                    .as_ref()
                    .map(|(_, p)| p.clone())
                    .filter(|p| !p.as_os_str().is_empty()),
                compress,
                timeout,
                bwlimit,
            }
        })
        .collect();
    exclude.extend(DEFAULT_EXCLUDES.iter().map(|s| (*s).to_string()));
    Ok(Mapped {
        config: RunConfig {
            source,
            targets,
            exclude,
            initial_sync: true,
            state_dir: None,
            settle: Duration::from_millis(20),
            max_latency: Duration::from_millis(200),
            batch_gap: Duration::from_millis(500),
            resync_interval: resync,
            resync_cron: None,
            resync_exclude,
            plugins: plugins_of(&plugins_on, &sections, &mut warnings),
            status_listen: None,
            workers: crate::run_config::DEFAULT_WORKERS,
            verbose: false,
        },
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sersync 2.5.4's shipped layout, every section present, with auth, a port and ssh off.
    fn confxml(extra_rsync: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<head version="2.5">
    <host hostip="localhost" port="8008"></host>
    <debug start="false"/>
    <fileSystem xfs="false"/>
    <filter start="true">
        <exclude expression="(.*)\.svn"></exclude>
        <exclude expression="(.*)\.gz"></exclude>
        <exclude expression="^info/*"></exclude>
        <exclude expression="^st[a-z]+tic/.*"></exclude>
    </filter>
    <inotify>
        <delete start="true"/>
        <createFolder start="true"/>
        <createFile start="false"/>
        <closeWrite start="true"/>
        <moveFrom start="true"/>
        <moveTo start="true"/>
        <attrib start="false"/>
        <modify start="false"/>
    </inotify>
    <sersync>
        <localpath watch="/opt/tongbu">
            <remote ip="10.0.0.2" name="tongbu1"/>
            <!--<remote ip="192.168.8.39" name="tongbu"/>-->
            <remote ip="10.0.0.3" name="tongbu2"/>
        </localpath>
        <rsync>
            <commonParams params="-artuz"/>
            <auth start="true" users="rsync_backup" passwordfile="/etc/rsync.pas"/>
            {extra_rsync}
            <timeout start="true" time="100"/><!-- timeout=100 -->
            <ssh start="false"/>
        </rsync>
        <failLog path="/tmp/rsync_fail_log.sh" timeToExecute="60"/>
        <crontab start="true" schedule="600">
            <crontabfilter start="false">
                <exclude expression="*.php"></exclude>
            </crontabfilter>
        </crontab>
        <plugin start="false" name="command"/>
    </sersync>
    <plugin name="command">
        <param prefix="/bin/sh" suffix="" ignoreError="true"/>
        <filter start="false">
            <include expression="(.*)\.php"/>
        </filter>
    </plugin>
    <plugin name="socket">
        <localpath watch="/opt/tongbu">
            <deshost ip="192.168.138.20" port="8009"/>
        </localpath>
    </plugin>
    <plugin name="refreshCDN">
        <localpath watch="/data0/htdocs/cms.xoyo.com/site/">
            <cdninfo domainname="ccms.chinacache.com" port="80" username="xxxx" passwd="xxxx"/>
            <sendurl base="http://pic.xoyo.com/cms"/>
            <regexurl regex="false" match="cms.xoyo.com/site([/a-zA-Z0-9]*).xoyo.com/images"/>
        </localpath>
    </plugin>
</head>
"#
        )
    }

    fn read_str(text: &str) -> Result<Mapped, String> {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("confxml.xml");
        std::fs::write(&p, text).unwrap();
        read(&p)
    }

    #[test]
    fn the_default_layout_maps_to_targets_auth_timeout_and_crontab() {
        let m = read_str(&confxml(r#"<userDefinedPort start="false" port="874"/>"#)).unwrap();
        let c = &m.config;
        assert_eq!(c.source, PathBuf::from("/opt/tongbu"));
        let dests: Vec<_> = c.targets.iter().map(|t| t.dest.clone()).collect();
        assert_eq!(
            dests,
            [
                "rsync_backup@10.0.0.2::tongbu1",
                "rsync_backup@10.0.0.3::tongbu2"
            ]
        );
        assert!(c.targets.iter().all(|t| t.compress && t.timeout == 100));
        assert_eq!(
            c.targets[0].password_file.as_deref(),
            Some(Path::new("/etc/rsync.pas"))
        );
        assert_eq!(c.resync_interval, Some(Duration::from_secs(600 * 60)));
        for p in ["*.svn", "*.gz", "/info/"] {
            assert!(c.exclude.contains(&p.to_string()), "{p} in {:?}", c.exclude);
        }
        let said = m.warnings.join("\n");
        for w in [
            "failLog",
            "inotify switches",
            "commonParams",
            "^st[a-z]+tic/.*",
        ] {
            assert!(said.contains(w), "{w} not warned:\n{said}");
        }
        assert!(m.config.resync_exclude.is_empty());
        let text = confxml("").replace(
            r#"<crontabfilter start="false">"#,
            r#"<crontabfilter start="true">"#,
        );
        let m = read_str(&text).unwrap();
        assert_eq!(m.config.resync_exclude, ["*.php"]);
    }

    #[test]
    fn common_params_give_compression_and_a_bandwidth_limit() {
        let m = read_str(&confxml("")).unwrap();
        assert!(m.config.targets[0].compress);
        assert_eq!(m.config.targets[0].bwlimit, None);
        let text = confxml("").replace(
            r#"params="-artuz""#,
            r#"params="-artu --bwlimit=2m --exclude=zz""#,
        );
        let m = read_str(&text).unwrap();
        assert!(!m.config.targets[0].compress);
        assert_eq!(m.config.targets[1].bwlimit, Some(2048));
    }

    #[test]
    fn plugins_turned_on_map_to_rtsyncs_and_refresh_cdn_is_named() {
        let m = read_str(&confxml("")).unwrap();
        assert!(m.config.plugins.is_empty());
        let text = confxml("")
            .replace(
                r#"<plugin start="false" name="command"/>"#,
                r#"<plugin start="true" name="command"/><plugin start="true" name="socket"/><plugin start="true" name="refreshCDN"/>"#,
            )
            .replace(r#"<filter start="false">"#, r#"<filter start="true">"#);
        let m = read_str(&text).unwrap();
        let [command, socket] = m.config.plugins.as_slice() else {
            panic!("{:?}", m.config.plugins);
        };
        assert_eq!(
            command.kind,
            Kind::Command {
                argv: vec!["/bin/sh".into()],
                after: Vec::new(),
                per_run: 1,
                stdin: false
            }
        );
        assert_eq!(command.include, ["*.php"]);
        assert!(!command.deletes);
        assert_eq!(
            socket.kind,
            Kind::Socket {
                address: "192.168.138.20:8009".into()
            }
        );
        assert!(
            m.warnings.join("\n").contains("refreshCDN"),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn a_port_or_ssh_changes_the_destination_form() {
        let m = read_str(&confxml(r#"<userDefinedPort start="true" port="874"/>"#)).unwrap();
        assert_eq!(
            m.config.targets[0].dest,
            "rsync://rsync_backup@10.0.0.2:874/tongbu1/"
        );
        let text = confxml("").replace(r#"<ssh start="false"/>"#, r#"<ssh start="true"/>"#);
        let m = read_str(&text).unwrap();
        assert_eq!(m.config.targets[1].dest, "rsync_backup@10.0.0.3:tongbu2");
    }

    #[test]
    fn broken_or_empty_files_say_what_is_wrong() {
        let e = read_str("<head><sersync><localpath watch=\"/a\"/></sersync></head>").unwrap_err();
        assert!(e.contains("no <remote"), "{e}");
        let e = read_str("<head>\n<sersync>\n</head>").unwrap_err();
        assert!(e.contains(":3: malformed XML"), "{e}");
        let e = read_str("<head/>").unwrap_err();
        assert!(e.contains("no <localpath"), "{e}");
    }

    /// A file cut short was read as far as it went: the remotes after the cut were dropped
    /// without a word (found writing the malformed-config tests of `tests/hostile.rs`).
    #[test]
    fn a_file_cut_short_is_refused_with_its_last_line() {
        let e = read_str(
            "<head>\n<sersync>\n<localpath watch=\"/a\">\n<remote ip=\"10.0.0.2\" name=\"m\"/>\n",
        )
        .unwrap_err();
        assert!(
            e.ends_with(":5: malformed XML: <localpath> is not closed at the end of the file"),
            "{e}"
        );
    }
}
