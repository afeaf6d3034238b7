//! Fuzzes the filter rules a client sends a daemon (`exclude.c recv_filter_list`):
//! `daemon::serve::recv_filter_list` reading `int len` + rule text records from the
//! multiplexed stream through `session::mux::MuxReader`, each rule parsed by
//! `filter::FilterList::add_filter`, then the list asked about
//! paths as both sides ask it (`FilterList::is_excluded`, wildmatch).
//!
//! Input: byte 0 sets the size of the data frames the rest is cut into (the target frames it,
//! so the fuzzer spends its time on the rules; `session_mux` fuzzes the framing). A list that is
//! read must hold only rules from records that parse, never more than the records sent, and
//! each rule must print in rsync's short form as text that parses back to the same rule; a
//! rejected list must be refused as a protocol error or for the connection's end.
#![no_main]

use std::io::Cursor;
use std::sync::Arc;

use filter::{FilterList, Side};
use libfuzzer_sys::fuzz_target;
use protocol::mux::{self, MsgCode};
use session::SessionError;
use session::mux::{DataBuf, MuxReader, Traffic};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let mut framed = Vec::new();
    for piece in stream.chunks(usize::from(ctl) + 1) {
        mux::encode(&mut framed, MsgCode::Data, piece).expect("a small frame");
    }
    let mut reader = MuxReader::new(
        Box::new(Cursor::new(framed)),
        None,
        Arc::new(Traffic::default()),
    );
    let mut buf = DataBuf::default();
    let mut told = 0usize;
    let mut sink = |_: MsgCode, _: &[u8]| told += 1;
    let got = daemon::serve::recv_filter_list(&mut reader, &mut buf, &mut sink);
    let records = stream.len() / 4;
    match got {
        Ok(list) => {
            assert!(list.rules().len() <= records);
            for rule in list.rules() {
                let text = rule.to_rule_text();
                let mut back = FilterList::new();
                let parsed = back.add_filter(&text, &mut |_| Err(String::new()));
                assert!(
                    parsed.is_ok() && back.rules() == std::slice::from_ref(rule),
                    "{:?} parsed as {parsed:?} {:?}, not {rule:?}",
                    String::from_utf8_lossy(&text),
                    back.rules()
                );
                let raw = rule.pattern.to_rule_text();
                for side in [
                    Side::Sender,
                    Side::Receiver {
                        in_deleted_dir: false,
                    },
                    Side::Receiver {
                        in_deleted_dir: true,
                    },
                ] {
                    for is_dir in [false, true] {
                        let _ = list.is_excluded(&raw, is_dir, side);
                        let _ = list.is_excluded(b"a/b/c", is_dir, side);
                    }
                }
            }
        }
        Err(SessionError::Protocol(_) | SessionError::Socket(_)) => {}
        Err(e) => panic!("unexpected {e}"),
    }
    assert_eq!(told, 0);
});
