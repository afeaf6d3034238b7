//! Fuzzes rsyncd.conf's `incoming chmod` / `outgoing chmod` values, `daemon::chmod::Chmod::parse`
//! and `Chmod::apply`.
//!
//! Input: bytes 0–1 a starting mode (12 bits), byte 2 bit 0 a directory; the rest the value. A
//! value it accepts must give only permission bits for any mode, the same result when the mode
//! comes with file-type bits, and nothing when it is empty; a refusal must quote the item.
#![no_main]

use daemon::chmod::Chmod;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [lo, hi, flags, rest @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mode = u32::from(u16::from_le_bytes([*lo, *hi])) & 0o7777;
    let is_dir = flags & 1 != 0;
    match Chmod::parse(text) {
        Ok(c) => {
            let m = c.apply(mode, is_dir);
            assert_eq!(m & !0o7777, 0, "{text:?} gave {m:o}");
            let typed = if is_dir { 0o040_000 } else { 0o100_000 };
            assert_eq!(c.apply(mode | typed, is_dir), m, "{text:?}");
            if c.is_empty() {
                assert_eq!(m, mode);
            }
        }
        Err(e) => assert!(e.starts_with("invalid chmod item"), "{e:?}"),
    }
});
