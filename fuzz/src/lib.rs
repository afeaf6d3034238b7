//! Shared driver for the fuzz targets: feeds a byte stream to a sans-IO decoder the way the
//! client does (decode, drop the bytes it consumed, read more on `Ok(None)`, give up on `Err`)
//! and checks the decoder keeps its side of the contract.

/// Bounds for one run of [`feed`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Stop after this many items (keeps hostile run-length records from eating the time budget).
    pub max_items: usize,
    /// How many items in a row may consume no bytes (0 for every decoder but the token decoder,
    /// whose block runs hand out up to 65535 copies from one record).
    pub max_stall: usize,
}

/// What one run of [`feed`] produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome<T, E> {
    /// The decoded items, in order.
    pub items: Vec<T>,
    /// The error that ended the run, if one did.
    pub error: Option<E>,
    /// Bytes consumed by the items.
    pub consumed: usize,
}

/// Feeds `stream` to `decode` in pieces of `chunk` bytes (everything at once when `chunk` is at
/// least `stream.len()`), as a receiver appends socket reads to its buffer.
///
/// Panics (a fuzz finding) when the decoder claims more bytes than it was given, or makes no
/// progress for more than `limits.max_stall` items in a row. Stops after an item for which
/// `last` is true, at `limits.max_items` items, on an error, or when the stream is exhausted and
/// the decoder still wants more.
pub fn feed<T, E>(
    stream: &[u8],
    chunk: usize,
    limits: Limits,
    last: impl Fn(&T) -> bool,
    mut decode: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, E>,
) -> Outcome<T, E> {
    let chunk = chunk.max(1);
    let mut at = 0;
    let mut fed = chunk.min(stream.len());
    let mut stall = 0;
    let mut items = Vec::new();
    loop {
        let window = &stream[at..fed];
        match decode(window) {
            Ok(Some((item, used))) => {
                assert!(
                    used <= window.len(),
                    "decoder claimed {used} bytes of {}",
                    window.len()
                );
                if used == 0 {
                    stall += 1;
                    assert!(
                        stall <= limits.max_stall,
                        "decoder made no progress for {stall} items"
                    );
                } else {
                    stall = 0;
                }
                at += used;
                let done = last(&item);
                items.push(item);
                if done || items.len() >= limits.max_items {
                    break;
                }
            }
            Ok(None) => {
                if fed == stream.len() {
                    break;
                }
                fed = (fed + chunk).min(stream.len());
            }
            Err(e) => {
                return Outcome {
                    items,
                    error: Some(e),
                    consumed: at,
                };
            }
        }
    }
    Outcome {
        items,
        error: None,
        consumed: at,
    }
}
