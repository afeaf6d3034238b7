//! Fuzzes what a daemon makes of the argument vectors a client sends after `@RSYNCD: OK`:
//! the framing, `daemon::args::split_words`; the parsing, `args::parse` (and
//! `args::parse_secluded` when a second vector follows, as a `-s` client sends it); and
//! `daemon::request::transfer`, which turns the words into the transfer the roles run, for a
//! module `mod` (and for no module, as a remote-shell server) with a `refuse options` list.
//!
//! Input: byte 0 sets the size of the pieces the stream arrives in; byte 1 is the length of the
//! `refuse options` value that follows (split on whitespace, as rsyncd.conf splits it); the rest
//! is the client's stream: NUL-terminated words, each vector ended by an empty word. Vectors
//! are split all at once and in pieces, which must give the same words; a vector must be
//! exactly the bytes it consumed, with no empty or over-long word and no more than
//! `MAX_WORDS`. The transfer must be refused exactly when parsing fails (with its exit code),
//! `refuse options` refuses an option or rtsync does not do one; its paths must be the
//! parsed paths with the module name taken off (as sent, without a module), and in a module
//! never start with `/` and be refused by `serve::module_relative` or come out of it without
//! a `..` component.
#![no_main]

use daemon::args::{self, MAX_WORD_LEN, MAX_WORDS, Words};
use daemon::request;
use daemon::serve::module_relative;
use libfuzzer_sys::fuzz_target;
use rtsync_fuzz::{Limits, Outcome, feed};

const MODULE: &str = "mod";

fuzz_target!(|data: &[u8]| {
    let [piece, refuse_len, rest @ ..] = data else {
        return;
    };
    let Some((refuse_text, stream)) = rest.split_at_checked(usize::from(*refuse_len)) else {
        return;
    };
    let refuse: Vec<String> = String::from_utf8_lossy(refuse_text)
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect();

    let limits = Limits {
        // The daemon reads one vector, or two for `-s`; a few more cost little.
        max_items: 4,
        max_stall: 0,
    };
    let run = |chunk: usize| -> Outcome<Words, args::ArgsError> {
        feed(stream, chunk, limits, |_| false, args::split_words)
    };
    let whole = run(stream.len());
    assert_eq!(whole, run(usize::from(*piece) + 1));

    let mut at = 0;
    for words in &whole.items {
        assert!(words.len() <= MAX_WORDS);
        let mut framed = Vec::new();
        for w in words {
            assert!(!w.is_empty() && w.len() <= MAX_WORD_LEN && !w.contains(&0));
            framed.extend_from_slice(w);
            framed.push(0);
        }
        framed.push(0);
        assert_eq!(stream.get(at..at + framed.len()), Some(framed.as_slice()));
        at += framed.len();
    }
    assert_eq!(at, whole.consumed);
    if whole.error.is_some() {
        // Only a size bound stops the framing.
        assert!(matches!(whole.error, Some(args::ArgsError::TooLong(_))));
    }

    let Some(first) = whole.items.first() else {
        return;
    };
    check(first, &refuse);
    if let Some(second) = whole.items.get(1)
        && let Ok(a) = args::parse_secluded(first, second)
    {
        for p in args::module_paths(&a.paths, MODULE, true) {
            check_path(&p);
        }
    }
});

fn check(words: &[Vec<u8>], refuse: &[String]) {
    let t = request::transfer(words, Some(MODULE), refuse);
    // As a remote-shell server (no module) the same words ask the same, paths as sent.
    let shell = request::transfer(words, None, refuse);
    assert_eq!(shell.refusal, t.refusal);
    assert_eq!(shell.we_send, t.we_send);
    match args::parse(words) {
        Err(e) => {
            let (_, code) = t.refusal.as_ref().expect("a bad vector is refused");
            assert_eq!(i32::from(*code), e.exit_code());
            assert!(t.paths.is_empty());
        }
        Ok(a) => {
            let why = a.refused(refuse).or_else(|| a.options.unsupported());
            assert_eq!(
                t.refusal.is_some(),
                why.is_some(),
                "{why:?} / {:?}",
                t.refusal
            );
            assert_eq!(t.we_send, a.sender);
            assert_eq!(
                t.paths,
                args::module_paths(&a.paths, MODULE, a.options.secluded_args)
            );
            assert!(t.paths.len() >= a.paths.iter().filter(|p| !p.is_empty()).count());
            assert_eq!(shell.paths, a.paths);
        }
    }
    for p in &t.paths {
        check_path(p);
    }
}

fn check_path(p: &[u8]) {
    let shown = || String::from_utf8_lossy(p).into_owned();
    assert!(!p.starts_with(b"/"), "{:?}", shown());
    if let Some(rel) = module_relative(p) {
        assert!(!rel.starts_with(b"/"), "{:?}", shown());
        assert!(
            rel.split(|&b| b == b'/').all(|c| c != b".."),
            "{:?} gave {:?}",
            shown(),
            String::from_utf8_lossy(&rel)
        );
    }
}
