//! `rtsync --server …`: the far end of a remote-shell transfer (`main.c start_server`), what a
//! stock client starts with `rsync -e ssh --rsync-path=rtsync`. The client's words are on our
//! command line, our standard input and output are the connection, and the user's own
//! permissions are the only limits: paths are taken as the shell user gives them (relative to
//! the current directory), with no module, chroot or munging.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use session::SessionError;
use session::mux::{MuxReader, MuxWriter, Traffic};

use crate::serve::{self, ModuleView};

/// `path` made absolute and cleaned without touching the disk (`..` folds over the component
/// before it), as the shell would name it from `cwd`.
#[must_use]
pub fn absolute(cwd: &Path, path: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let p = Path::new(std::ffi::OsStr::from_bytes(path));
    let mut out = PathBuf::from("/");
    for c in cwd.join(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Serves one transfer on standard input and output; the exit code is rsync's.
#[must_use]
pub fn run(words: &[Vec<u8>]) -> u8 {
    // rsync's client may hand us non-blocking ends (its own server sets them so and polls);
    // ours block, and a writer never waits without a reader running (the sender's thread).
    let _ = rustix::io::ioctl_fionbio(std::io::stdin(), false);
    let _ = rustix::io::ioctl_fionbio(std::io::stdout(), false);
    let traffic = Arc::new(Traffic::default());
    let mut reader = MuxReader::new(Box::new(std::io::stdin()), None, Arc::clone(&traffic));
    let mut writer = MuxWriter::new(Box::new(std::io::stdout()), None, traffic);
    let fail = |e: &SessionError| {
        let _ = writeln!(std::io::stderr(), "rtsync: {e}");
        e.exit_code()
    };
    // Both sides send their version first (no greeting over a remote shell).
    let mut version = Vec::new();
    protocol::wire::put_int(&mut version, protocol::PROTOCOL_VERSION.cast_signed());
    if let Err(e) = writer.send(&version) {
        return fail(&e);
    }
    let peer = match reader.read_raw(|b| Ok(protocol::wire::get_int(b))) {
        Ok(v) => u32::try_from(v).unwrap_or(0),
        Err(e) => return fail(&e),
    };
    let version = peer.min(protocol::PROTOCOL_VERSION);
    if version < protocol::MIN_PROTOCOL_VERSION {
        let _ = writeln!(
            std::io::stderr(),
            "rtsync: protocol version mismatch: the client speaks {peer}, rtsync needs 30 or newer"
        );
        return 2;
    }
    let mut transfer = crate::request::transfer(words, None, &[]);
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    for p in &mut transfer.paths {
        let trailing = p.ends_with(b"/");
        let mut abs = absolute(&cwd, p).into_os_string().into_encoded_bytes();
        if trailing && abs != b"/" {
            abs.push(b'/');
        }
        *p = abs;
    }
    let view = ModuleView {
        name: "(remote shell)".to_owned(),
        root: PathBuf::from("/"),
        read_only: false,
        write_only: false,
        filters: filter::FilterList::new(),
        numeric_ids: false,
        munge_symlinks: false,
        sanitize_links: false,
        confine: false,
        incoming_chmod: crate::chmod::Chmod::default(),
        outgoing_chmod: crate::chmod::Chmod::default(),
        ignore_nonreadable: false,
    };
    let seed = crate::conn::random_seed();
    match serve::serve(
        (reader, writer),
        version,
        &transfer,
        &view,
        seed,
        Arc::new(|_: &str, _: &[u8], _: u64| {}),
    ) {
        Ok(outcome) if outcome.errors.is_empty() => 0,
        Ok(outcome) => {
            for e in &outcome.errors {
                let _ = writeln!(std::io::stderr(), "rtsync: {e}");
            }
            23
        }
        Err(e) => fail(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_paths_are_the_users_own() {
        let cwd = Path::new("/home/u");
        assert_eq!(absolute(cwd, b"dst"), PathBuf::from("/home/u/dst"));
        assert_eq!(absolute(cwd, b"../v/x"), PathBuf::from("/home/v/x"));
        assert_eq!(absolute(cwd, b"/srv/./a/../b"), PathBuf::from("/srv/b"));
        assert_eq!(absolute(cwd, b"../../../.."), PathBuf::from("/"));
    }
}
