//! The on-disk journal of changes, and each target's acknowledgement in it.
//!
//! Every change the watcher reports is appended, with a sequence number, before any target
//! acts on it. A target acknowledges a sequence number once a batch covering everything up to
//! it has landed. After a crash or `kill -9`, each target replays what it has not acknowledged.
//!
//! Records are `SEQ OP PATH\0` (paths are bytes and may hold newlines; never NUL). A rename is
//! `SEQ N LEN FROMTO\0` (`n` for a directory), where the decimal `LEN` is the length of `FROM` in
//! bytes, so neither path needs escaping. A torn last record, left by a crash mid-write, is
//! ignored on replay, and so is any record that does not parse. Acknowledgements are small files
//! replaced atomically (temp, fsync, rename). Once every target has acknowledged a prefix, the
//! journal is rewritten without it.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::change::Change;

/// Journal failures: the run cannot promise durability without its journal, so these stop it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// An OS error on a journal file.
    #[error("journal {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The append-only change log of one `rtsync run`, in its state directory.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    log: BufWriter<File>,
    next_seq: u64,
}

/// Appends the record of change `c` numbered `seq` to `rec`, NUL included.
fn encode_record(seq: u64, c: &Change, rec: &mut Vec<u8>) {
    rec.extend_from_slice(format!("{seq} ").as_bytes());
    let op = match c {
        Change::Created(_) => b'C',
        Change::CreatedDir(_) => b'D',
        Change::Modified(_) => b'M',
        Change::Written(_) => b'W',
        Change::Deleted(_) => b'X',
        Change::Resync(_) => b'R',
        Change::Renamed { is_dir: false, .. } => b'N',
        Change::Renamed { is_dir: true, .. } => b'n',
    };
    rec.push(op);
    rec.push(b' ');
    if let Change::Renamed { from, .. } = c {
        let from = from.as_os_str().as_bytes();
        rec.extend_from_slice(format!("{} ", from.len()).as_bytes());
        rec.extend_from_slice(from);
    }
    rec.extend_from_slice(c.path().as_os_str().as_bytes());
    rec.push(0);
}

fn path_of(bytes: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

fn parse_record(rec: &[u8]) -> Option<(u64, Change)> {
    let mut parts = rec.splitn(3, |&b| b == b' ');
    let seq = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let op = *parts.next()?.first()?;
    let rest = parts.next()?;
    if op == b'N' || op == b'n' {
        let (len, paths) = rest.split_at(rest.iter().position(|&b| b == b' ')?);
        let len: usize = std::str::from_utf8(len).ok()?.parse().ok()?;
        let paths = paths.get(1..)?;
        let (from, to) = (paths.get(..len)?, paths.get(len..)?);
        if from.is_empty() || to.is_empty() {
            return None;
        }
        let change = Change::Renamed {
            from: path_of(from),
            to: path_of(to),
            is_dir: op == b'n',
        };
        return Some((seq, change));
    }
    let path = path_of(rest);
    let change = match op {
        b'C' => Change::Created(path),
        b'D' => Change::CreatedDir(path),
        b'M' => Change::Modified(path),
        b'W' => Change::Written(path),
        b'X' => Change::Deleted(path),
        b'R' => Change::Resync(path),
        _ => return None,
    };
    Some((seq, change))
}

impl Journal {
    /// Opens (or starts) the journal in `dir`, which is created if needed.
    ///
    /// # Errors
    /// The OS error.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join("journal");
        let next_seq = Self::read_records(&path)?
            .last()
            .map_or(1, |(seq, _)| seq + 1)
            .max(Self::read_floor(dir)? + 1);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            log: BufWriter::new(file),
            next_seq,
        })
    }

    fn read_records(path: &Path) -> Result<Vec<(u64, Change)>, JournalError> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io(path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(path)(e)),
        }
        let mut records: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
        // The piece after the last NUL is empty, or a torn record.
        records.pop();
        Ok(records.into_iter().filter_map(parse_record).collect())
    }

    /// The sequence number below which the journal was compacted away.
    fn read_floor(dir: &Path) -> Result<u64, JournalError> {
        read_number(&dir.join("floor"))
    }

    /// Appends changes, returning the sequence number of each. They are durable after
    /// [`Journal::sync`].
    ///
    /// # Errors
    /// The OS error.
    pub fn append(&mut self, changes: &[Change]) -> Result<Vec<u64>, JournalError> {
        let path = self.dir.join("journal");
        let mut seqs = Vec::with_capacity(changes.len());
        for c in changes {
            let seq = self.next_seq;
            self.next_seq += 1;
            let mut rec = Vec::new();
            encode_record(seq, c, &mut rec);
            self.log.write_all(&rec).map_err(io(&path))?;
            seqs.push(seq);
        }
        Ok(seqs)
    }

    /// Writes out and fsyncs everything appended.
    ///
    /// # Errors
    /// The OS error.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        let path = self.dir.join("journal");
        self.log.flush().map_err(io(&path))?;
        self.log.get_ref().sync_data().map_err(io(&path))
    }

    /// The highest sequence number handed out so far.
    #[must_use]
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// What target `id` has not acknowledged, in order.
    ///
    /// # Errors
    /// The OS error.
    pub fn unacknowledged(&mut self, id: &str) -> Result<Vec<(u64, Change)>, JournalError> {
        self.sync()?;
        let acked = self.acknowledged(id)?;
        Ok(Self::read_records(&self.dir.join("journal"))?
            .into_iter()
            .filter(|(seq, _)| *seq > acked)
            .collect())
    }

    /// The sequence number target `id` acknowledged last (0: none).
    ///
    /// # Errors
    /// The OS error.
    pub fn acknowledged(&self, id: &str) -> Result<u64, JournalError> {
        read_number(&self.dir.join(format!("ack-{id}")))
    }

    /// Records that target `id` has everything up to `seq`, durably.
    ///
    /// # Errors
    /// The OS error.
    pub fn acknowledge(&self, id: &str, seq: u64) -> Result<(), JournalError> {
        write_number(&self.dir.join(format!("ack-{id}")), seq)
    }

    /// Rewrites the journal without the records every one of `targets` has acknowledged.
    ///
    /// # Errors
    /// The OS error.
    pub fn compact(&mut self, targets: &[&str]) -> Result<(), JournalError> {
        self.sync()?;
        let mut floor = u64::MAX;
        for id in targets {
            floor = floor.min(self.acknowledged(id)?);
        }
        if floor == u64::MAX || floor == 0 {
            return Ok(());
        }
        let path = self.dir.join("journal");
        let keep: Vec<(u64, Change)> = Self::read_records(&path)?
            .into_iter()
            .filter(|(seq, _)| *seq > floor)
            .collect();
        write_number(
            &self.dir.join("floor"),
            floor.max(Self::read_floor(&self.dir)?),
        )?;
        let tmp = self.dir.join("journal.tmp");
        {
            let mut out = BufWriter::new(File::create(&tmp).map_err(io(&tmp))?);
            for (seq, c) in &keep {
                let mut rec = Vec::new();
                encode_record(*seq, c, &mut rec);
                out.write_all(&rec).map_err(io(&tmp))?;
            }
            out.flush().map_err(io(&tmp))?;
            out.get_ref().sync_data().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(&self.dir)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        self.log = BufWriter::new(file);
        Ok(())
    }
}

fn read_number(path: &Path) -> Result<u64, JournalError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s.trim().parse().unwrap_or(0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io(path)(e)),
    }
}

fn write_number(path: &Path, n: u64) -> Result<(), JournalError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        writeln!(f, "{n}").map_err(io(&tmp))?;
        f.sync_data().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes() -> Vec<Change> {
        vec![
            Change::Created("a b".into()),
            Change::Modified("line\nbreak".into()),
            Change::Deleted(PathBuf::from(std::ffi::OsStr::from_bytes(b"bad\xffname"))),
            Change::CreatedDir("d".into()),
            Change::Resync("".into()),
        ]
    }

    #[test]
    fn what_a_target_has_not_acknowledged_survives_reopening() {
        let t = tempfile::tempdir().unwrap();
        let mut j = Journal::open(t.path()).unwrap();
        let seqs = j.append(&changes()).unwrap();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        j.sync().unwrap();
        j.acknowledge("one", 2).unwrap();
        drop(j);
        let mut j = Journal::open(t.path()).unwrap();
        assert_eq!(j.last_seq(), 5);
        let left: Vec<u64> = j
            .unacknowledged("one")
            .unwrap()
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(left, [3, 4, 5]);
        let all: Vec<Change> = j
            .unacknowledged("two")
            .unwrap()
            .into_iter()
            .map(|r| r.1)
            .collect();
        assert_eq!(all, changes());
    }

    fn odd(bytes: &[u8]) -> PathBuf {
        path_of(bytes)
    }

    #[test]
    fn renames_round_trip_whatever_bytes_their_names_hold() {
        let renames = vec![
            Change::Renamed {
                from: "a b".into(),
                to: "c d/e f".into(),
                is_dir: false,
            },
            Change::Renamed {
                from: odd(b"line\nbreak \x01 9 "),
                to: odd(b"12 N 3 x\x01\n"),
                is_dir: true,
            },
            // A name that looks like a length, and one that is all spaces.
            Change::Renamed {
                from: "3".into(),
                to: "   ".into(),
                is_dir: false,
            },
            Change::Renamed {
                from: odd(b"bad\xffname"),
                to: odd(b"d/\xfe"),
                is_dir: true,
            },
        ];
        let t = tempfile::tempdir().unwrap();
        let mut j = Journal::open(t.path()).unwrap();
        let mut all = changes();
        all.extend(renames);
        j.append(&all).unwrap();
        drop(j);
        let mut j = Journal::open(t.path()).unwrap();
        let back: Vec<Change> = j
            .unacknowledged("x")
            .unwrap()
            .into_iter()
            .map(|r| r.1)
            .collect();
        assert_eq!(back, all);
        // Compaction writes them the same way.
        j.acknowledge("x", 1).unwrap();
        j.compact(&["x"]).unwrap();
        drop(j);
        let mut j = Journal::open(t.path()).unwrap();
        let back: Vec<Change> = j
            .unacknowledged("x")
            .unwrap()
            .into_iter()
            .map(|r| r.1)
            .collect();
        assert_eq!(back, all[1..]);
    }

    #[test]
    fn old_journals_parse_and_garbled_renames_are_skipped() {
        let t = tempfile::tempdir().unwrap();
        // A journal written before renames were records of their own, then garbage.
        let mut bytes = b"1 C a b\x002 X gone\x003 D d\x00".to_vec();
        for bad in [
            &b"4 N 10 short"[..],
            b"5 N x ab",
            b"6 N 2 ab",
            b"7 N 0 ab",
            b"8 n",
            b"9 N 2",
            b"x N 1 ab",
            b"10 Q what",
        ] {
            bytes.extend_from_slice(bad);
            bytes.push(0);
        }
        bytes.extend_from_slice(b"11 N 1 ab\x0012 n 2 abc");
        std::fs::write(t.path().join("journal"), &bytes).unwrap();
        let mut j = Journal::open(t.path()).unwrap();
        let back = j.unacknowledged("x").unwrap();
        assert_eq!(
            back,
            [
                (1, Change::Created("a b".into())),
                (2, Change::Deleted("gone".into())),
                (3, Change::CreatedDir("d".into())),
                (
                    11,
                    Change::Renamed {
                        from: "a".into(),
                        to: "b".into(),
                        is_dir: false
                    }
                ),
            ]
        );
        assert_eq!(j.last_seq(), 11);
    }

    #[test]
    fn a_torn_last_record_is_ignored() {
        let t = tempfile::tempdir().unwrap();
        let mut j = Journal::open(t.path()).unwrap();
        j.append(&changes()[..2]).unwrap();
        j.sync().unwrap();
        drop(j);
        let mut f = OpenOptions::new()
            .append(true)
            .open(t.path().join("journal"))
            .unwrap();
        f.write_all(b"3 M half-writ").unwrap();
        drop(f);
        let mut j = Journal::open(t.path()).unwrap();
        assert_eq!(j.unacknowledged("x").unwrap().len(), 2);
        // Numbering goes on after the last whole record; the torn one is never replayed.
        assert_eq!(j.append(&changes()[..1]).unwrap(), [3]);
    }

    #[test]
    fn compaction_keeps_what_any_target_still_needs() {
        let t = tempfile::tempdir().unwrap();
        let mut j = Journal::open(t.path()).unwrap();
        j.append(&changes()).unwrap();
        j.acknowledge("fast", 5).unwrap();
        j.acknowledge("slow", 3).unwrap();
        j.compact(&["fast", "slow"]).unwrap();
        assert_eq!(j.unacknowledged("slow").unwrap().len(), 2);
        assert!(j.unacknowledged("fast").unwrap().is_empty());
        j.append(&changes()[..1]).unwrap();
        j.acknowledge("slow", 6).unwrap();
        j.acknowledge("fast", 6).unwrap();
        j.compact(&["fast", "slow"]).unwrap();
        drop(j);
        // Numbers never go back, even when the journal is empty.
        let mut j = Journal::open(t.path()).unwrap();
        assert_eq!(j.append(&changes()[..1]).unwrap(), [7]);
    }
}
