//! Writes the seed corpora, `fuzz/corpus/<target>/seed-*`: a few valid encodings made with the
//! protocol crate's own encoders, and for the daemon's decoders what stock clients send and
//! what admins write, so the fuzzer starts from inputs that decode deep.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds`

use std::fs;
use std::path::Path;

use protocol::flist::{DirRole, Entry, FlistEncoder, FlistOptions, encode_id_list};
use protocol::mux::{self, MsgCode};
use protocol::token::TokenEncoder;
use protocol::wire::{self, NdxCodec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(format!("seed-{name}")), bytes)
    };

    // wire_primitives: op byte (kind = op % 6) then a value, back to back.
    let mut s = Vec::new();
    s.push(0);
    wire::put_int(&mut s, -2);
    s.push(1);
    wire::put_short(&mut s, 0x1234);
    s.push(2);
    wire::put_varint(&mut s, 0x1fe);
    s.push(3);
    wire::put_varlong(&mut s, 1 << 40, 3);
    s.push(3 | 0x80);
    wire::put_varlong(&mut s, 1_700_000_000, 4);
    s.push(4);
    wire::put_vstring(&mut s, b"xxh128 xxh3 xxh64 md5 md4")?;
    let mut ndx = NdxCodec::default();
    for n in [0, 5, -2, 70_000] {
        s.push(5);
        ndx.encode(&mut s, n);
    }
    write("wire_primitives", "mixed", &s)?;
    // ... and a byte of piece size then a run of file indexes.
    let mut s = vec![0];
    let mut ndx = NdxCodec::default();
    for n in [0, 1, 2, 300, 299, 100_000, -1, -2, 5, -101] {
        ndx.encode(&mut s, n);
    }
    write("wire_primitives", "ndx", &s)?;

    // mux_header: a few frames.
    let mut s = Vec::new();
    mux::encode(&mut s, MsgCode::Data, b"\x01\x02\x03")?;
    mux::encode(&mut s, MsgCode::Info, b"sending incremental file list\n")?;
    mux::encode(&mut s, MsgCode::IoError, &[0, 0, 0, 0])?;
    mux::encode(&mut s, MsgCode::ErrorExit, &[])?;
    write("mux_header", "frames", &s)?;

    // daemon_text: line limit / 16, piece size − 1, then the server's text.
    let session: &[&[u8]] = &[
        b"@RSYNCD: 31.0 sha512 sha256 sha1 md5 md4\nWelcome\r\n\n@RSYNCD: AUTHREQD 6Kk4lV3q1Zg\n@RSYNCD: OK\n",
        b"@RSYNCD: 30.0\nmodule1\tfirst module\nmodule2\n@RSYNCD: EXIT\n",
        b"@RSYNCD: 29\n@ERROR: Unknown module 'nope'\n",
    ];
    for (i, text) in session.iter().enumerate() {
        let mut s = vec![255, [0, 7, 200][i]];
        s.extend_from_slice(text);
        write("daemon_text", &format!("session{i}"), &s)?;
    }

    // flist: option bytes (see the target), then a list and its name lists.
    let file = |name: &[u8], mode: u32| Entry {
        name: name.to_vec(),
        mode,
        size: 1234,
        mtime: 1_700_000_000,
        mtime_nsec: 5,
        uid: Some(1000),
        gid: Some(100),
        checksum: Some(vec![0xab; 16]),
        ..Entry::default()
    };
    let entries = vec![
        (file(b".", 0o040_755), DirRole::Content { top: true }),
        (file(b"dir", 0o040_700), DirRole::Listed),
        (
            Entry {
                hardlink_first: true,
                ..file(b"dir/a", 0o100_644)
            },
            DirRole::Listed,
        ),
        (
            Entry {
                hardlink_leader: Some(2),
                ..file(b"dir/b", 0o100_644)
            },
            DirRole::Listed,
        ),
        (
            Entry {
                link_target: Some(b"../target".to_vec()),
                ..file(b"link", 0o120_777)
            },
            DirRole::Listed,
        ),
        (
            Entry {
                rdev: Some((8, 1)),
                ..file(b"sda1", 0o060_660)
            },
            DirRole::Listed,
        ),
        (file(&[b'n'; 300], 0o100_600), DirRole::Listed),
    ];
    // (flags byte, protocol/checksum byte, extra byte): see the target's doc comment.
    for (flags, proto, extra) in [(0xff, (16 << 2) | 2, 1), (0x7f, 1, 2), (0x00, 1, 0)] {
        let opts = FlistOptions {
            protocol: 29 + u32::from(proto & 3),
            varint_flags: flags & 1 != 0,
            uid: flags & 2 != 0,
            gid: flags & 4 != 0,
            links: flags & 8 != 0,
            devices: flags & 16 != 0,
            specials: flags & 32 != 0,
            hard_links: flags & 64 != 0,
            checksum_len: (flags & 128 != 0).then_some(usize::from(proto >> 2)),
        };
        let mut s = vec![flags, proto, extra];
        let mut enc = FlistEncoder::new(opts);
        for (e, role) in &entries {
            enc.encode(&mut s, e, *role)?;
        }
        enc.finish(&mut s, 0);
        if extra & 2 == 0 {
            for wanted in [opts.uid, opts.gid] {
                if wanted {
                    encode_id_list(&mut s, &[(1000, b"user".to_vec())], extra & 1 != 0, b"root");
                }
            }
        }
        write(
            "flist",
            &format!("opts-{flags:02x}-{proto:02x}-{extra:02x}"),
            &s,
        )?;
    }

    // id_list: CF_ID0_NAMES bit, then a uid list and a gid list.
    for id0 in [false, true] {
        let mut s = vec![u8::from(id0)];
        encode_id_list(
            &mut s,
            &[(1000, b"alice".to_vec()), (70_000, b"bob".to_vec())],
            id0,
            b"root",
        );
        encode_id_list(&mut s, &[(100, b"users".to_vec())], id0, b"wheel");
        write("id_list", &format!("id0-{id0}"), &s)?;
    }

    // tokens: piece size − 1, then two files of compressed tokens.
    let mut s = vec![3];
    let mut enc = TokenEncoder::new(3)?;
    enc.start_file();
    enc.literal(&mut s, &b"hello ".repeat(100))?;
    for block in [0, 1, 2, 100, 5] {
        enc.copy(&mut s, block)?;
    }
    enc.literal(&mut s, b"tail")?;
    enc.end_file(&mut s)?;
    enc.start_file();
    enc.copy(&mut s, 7)?;
    enc.literal(
        &mut s,
        &(0..2000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
    )?;
    enc.end_file(&mut s)?;
    write("tokens", "two-files", &s)?;

    // sum_head: checksum kind, the header, then plain tokens against the input as basis.
    let mut s = vec![3]; // md5
    for v in [3, 16, 2, 5] {
        wire::put_int(&mut s, v);
    }
    for t in [-1, 4, -3, -2, 0] {
        wire::put_int(&mut s, t);
        if t > 0 {
            s.extend_from_slice(b"data");
        }
    }
    write("sum_head", "header-and-tokens", &s)?;

    // daemon_args: piece size − 1, refuse-options length, refuse options, then what a stock
    // rsync 3.5 client sends after `@RSYNCD: OK` (one vector, or two for `-s`).
    let vectors: [(&str, &str, &[u8]); 4] = [
        (
            "pull",
            "",
            b"--server\0--sender\0-logDtpre.iLsfxCIvu\0.\0mod/\0\0",
        ),
        (
            "push-delete-refused",
            "delete checksum",
            b"--server\0-vlogDtprze.iLsfxCIvu\0--delete\0.\0mod/sub/ mod/other\0\0",
        ),
        (
            "files-from-escaped",
            "!a *",
            b"--server\0--sender\0-logDtpRe.LsfxCIvu\0--files-from\0my\\ list.txt\0.\0mod//a/../b\0\0",
        ),
        (
            "secluded",
            "compress",
            b"--server\0-slogDtpre.iLsfxCIvu\0--iconv=utf8\0\0rsync\0--suffix=x\0--delete\0.\0mod/\0\0",
        ),
    ];
    for (i, (name, refuse, stream)) in vectors.iter().enumerate() {
        let mut s = vec![[255, 0, 6, 1][i], u8::try_from(refuse.len())?];
        s.extend_from_slice(refuse.as_bytes());
        s.extend_from_slice(stream);
        write("daemon_args", name, &s)?;
    }

    // rsyncd_conf: the shipped example, and one with includes, variables and continuations.
    write(
        "rsyncd_conf",
        "contrib",
        include_str!("../../contrib/rsyncd.conf").as_bytes(),
    )?;
    write(
        "rsyncd_conf",
        "includes",
        b"port = 0\n&merge extra.inc\n[global]\nhosts deny = *\n&include conf.d\n\
          [home]\n\tpath = %HOME%/./pub/\n\tauth users = ,joe:deny, @staff group:rw\n\
          \trefuse options = delete \\\n  checksum\n\tname = home two\n\
          [Home]\n\tuse chroot = unset\n\thosts allow = fe80::1%eth0/64 10.0.0.0/255.0.0.0\n\
          ; a comment\nbare line\n",
    )?;

    // daemon_auth: digest (md5), IPv4 peer, its address, then the NUL-separated fields.
    let mut s = vec![3 | 8];
    s.extend_from_slice(&[10, 0, 0, 5]);
    s.extend_from_slice(&[0; 12]);
    for field in [
        "alice, @staff:ro, bob:deny, *:rw",
        "alice:secret\n\r@staff:grouppw\r\n#comment:x\nbob:pw",
        "10.0.0.0/24 *.example.com ::1/128",
        "*, 192.168.1.*",
        "alice",
        "staff,users",
        "host.example.com",
        "6Kk4lV3q1Zg",
    ] {
        s.extend_from_slice(field.as_bytes());
        s.push(0);
    }
    write("daemon_auth", "login", &s)?;

    // daemon_paths: the link's depth, then a path.
    for (name, depth, path) in [
        ("up-and-back", 2, "a/../../b/./c/"),
        ("absolute", 0, "/etc/passwd"),
        ("escape", 1, "../x/../../y//z"),
    ] {
        let mut s = vec![depth];
        s.extend_from_slice(path.as_bytes());
        write("daemon_paths", name, &s)?;
    }

    // sersync_conf: sersync 2.5.4's shipped confxml.xml, with auth, a port and a crontab on.
    write(
        "sersync_conf",
        "shipped",
        br#"<?xml version="1.0" encoding="ISO-8859-1"?>
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
        <closeWrite start="true"/>
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
            <userDefinedPort start="true" port="874"/>
            <timeout start="true" time="100"/>
            <ssh start="false"/>
        </rsync>
        <failLog path="/tmp/rsync_fail_log.sh" timeToExecute="60"/>
        <crontab start="true" schedule="600"><crontabfilter start="false">
            <exclude expression="*.php"></exclude>
        </crontabfilter></crontab>
        <plugin start="false" name="command"/>
    </sersync>
</head>
"#,
    )?;

    // run_config: README's complete rtsync.toml.
    write(
        "run_config",
        "readme",
        br#"source = "/var/www/html"
state_dir = "/var/lib/rtsync/www"
initial_sync = true
exclude = ["*.tmp", "/cache/"]
default_excludes = true
settle_ms = 20
max_latency_ms = 200
resync_interval = 3600
verbose = false
password_file = "/etc/rtsync.pass"
compress = false
timeout = 60

[[target]]
dest = "backup@10.0.0.2::www"
compress = true

[[target]]
dest = "rsync://10.0.0.3:8730/www/"
password_file = "/etc/rtsync.other.pass"
timeout = 30
"#,
    )?;

    // daemon_chmod: a mode (0o644), not a directory, then a value.
    for (name, dir, value) in [
        ("symbolic", 0u8, "Dg+s,ug+w,Fo-w,+X"),
        ("octal", 1, "D755,F644"),
    ] {
        let mut s = 0o644u16.to_le_bytes().to_vec();
        s.push(dir);
        s.extend_from_slice(value.as_bytes());
        write("daemon_chmod", name, &s)?;
    }

    // filter_list: frame size − 1, then the rules a stock client sends with --delete and
    // excludes (`int len` + text, ended by 0).
    let mut s = vec![6];
    for rule in [
        &b"- *.tmp"[..],
        b"+ /keep/",
        b"P /protected",
        b"-! *.c",
        b"H,s hidden",
        b"Rp risky/**",
        b"exclude,r /cache/",
        b"!",
        b"- x",
    ] {
        wire::put_int(&mut s, i32::try_from(rule.len())?);
        s.extend_from_slice(rule);
    }
    wire::put_int(&mut s, 0);
    write("filter_list", "delete-excludes", &s)?;

    // session_mux: read and value sizes, then data split across frames with messages between
    // and an error exit.
    let mut s = vec![(3 << 5) | 6];
    mux::encode(&mut s, MsgCode::Data, &[1, 0, 0, 0, 2, 0])?;
    mux::encode(&mut s, MsgCode::Warning, b"careful\n")?;
    mux::encode(&mut s, MsgCode::Data, &[0, 0, 3, 0, 0, 0])?;
    mux::encode(&mut s, MsgCode::IoError, &[0, 0, 0, 0])?;
    mux::encode(&mut s, MsgCode::Data, &[])?;
    mux::encode(&mut s, MsgCode::ErrorExit, &23i32.to_le_bytes())?;
    write("session_mux", "frames-and-exit", &s)?;
    Ok(())
}
