//! Transfer totals, printed in rsync's `--stats` layout.

use std::fmt::Write as _;
use std::time::Duration;

/// Counters of one transfer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Entries in the file list: regular files, directories, symlinks, devices, specials.
    pub files: [u64; 5],
    /// Entries created, by the same kinds.
    pub created: [u64; 5],
    /// Entries deleted, by the same kinds.
    pub deleted: [u64; 5],
    /// Regular files whose content was transferred.
    pub transferred: u64,
    /// Sum of the sizes of the listed regular files and symlinks.
    pub total_size: u64,
    /// Sum of the sizes of the transferred files.
    pub transferred_size: u64,
    /// Bytes sent as literal data.
    pub literal: u64,
    /// Bytes reconstructed from the old version.
    pub matched: u64,
    /// Bytes of the delta streams (token headers, literals, whole-file sums).
    pub sent: u64,
    /// Bytes of the block signatures the sending side would receive.
    pub received: u64,
    /// Time spent building the file list.
    pub flist_time: Duration,
    /// Bytes of the file list on the wire (0 locally, as rsync counts it).
    pub flist_size: u64,
    /// Time spent sending the file list.
    pub flist_xfer_time: Duration,
}

/// Index of a kind in the per-kind counters.
#[must_use]
pub fn kind_slot(kind: fsx::Kind) -> usize {
    match kind {
        fsx::Kind::File => 0,
        fsx::Kind::Dir => 1,
        fsx::Kind::Symlink => 2,
        fsx::Kind::CharDev | fsx::Kind::BlockDev => 3,
        fsx::Kind::Fifo | fsx::Kind::Socket => 4,
    }
}

/// Counts one entry of `kind` in per-kind counters ([`Stats::files`], `created`, `deleted`).
pub fn count(counts: &mut [u64; 5], kind: fsx::Kind) {
    if let Some(n) = counts.get_mut(kind_slot(kind)) {
        *n += 1;
    }
}

/// `1234567` → `1,234,567`, as rsync prints numbers.
#[must_use]
pub fn commas(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn by_kind(total: u64, counts: &[u64; 5]) -> String {
    let names = ["reg", "dir", "link", "dev", "special"];
    let parts: Vec<String> = names
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(name, n)| format!("{name}: {}", commas(*n)))
        .collect();
    if parts.is_empty() {
        commas(total)
    } else {
        format!("{} ({})", commas(total), parts.join(", "))
    }
}

impl Stats {
    /// The `--stats` block.
    #[must_use]
    pub fn render(&self) -> String {
        let mut s = String::new();
        let sum = |v: &[u64; 5]| v.iter().sum::<u64>();
        let _ = writeln!(
            s,
            "Number of files: {}",
            by_kind(sum(&self.files), &self.files)
        );
        let _ = writeln!(
            s,
            "Number of created files: {}",
            by_kind(sum(&self.created), &self.created)
        );
        let _ = writeln!(
            s,
            "Number of deleted files: {}",
            by_kind(sum(&self.deleted), &self.deleted)
        );
        let _ = writeln!(
            s,
            "Number of regular files transferred: {}",
            commas(self.transferred)
        );
        let _ = writeln!(s, "Total file size: {} bytes", commas(self.total_size));
        let _ = writeln!(
            s,
            "Total transferred file size: {} bytes",
            commas(self.transferred_size)
        );
        let _ = writeln!(s, "Literal data: {} bytes", commas(self.literal));
        let _ = writeln!(s, "Matched data: {} bytes", commas(self.matched));
        let _ = writeln!(s, "File list size: {}", commas(self.flist_size));
        let _ = writeln!(
            s,
            "File list generation time: {:.3} seconds",
            self.flist_time.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "File list transfer time: {:.3} seconds",
            self.flist_xfer_time.as_secs_f64()
        );
        let _ = writeln!(s, "Total bytes sent: {}", commas(self.sent));
        let _ = writeln!(s, "Total bytes received: {}", commas(self.received));
        s
    }

    /// The two summary lines `-v` and `--stats` end with.
    #[must_use]
    pub fn summary(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = (self.sent + self.received) as f64 / secs;
        let speedup = if self.sent + self.received == 0 {
            0.0
        } else {
            self.total_size as f64 / (self.sent + self.received) as f64
        };
        format!(
            "sent {} bytes  received {} bytes  {} bytes/sec\ntotal size is {}  speedup is {:.2}\n",
            commas(self.sent),
            commas(self.received),
            commas_f(rate),
            commas(self.total_size),
            speedup
        )
    }
}

fn commas_f(v: f64) -> String {
    let whole = v.trunc() as u64;
    let frac = ((v - v.trunc()) * 100.0).round() as u64;
    format!("{}.{:02}", commas(whole), frac.min(99))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_commas() {
        assert_eq!(commas(0), "0");
        assert_eq!(commas(999), "999");
        assert_eq!(commas(1000), "1,000");
        assert_eq!(commas(1_048_576), "1,048,576");
    }

    #[test]
    fn stats_layout() {
        let st = Stats {
            files: [2, 1, 0, 0, 0],
            literal: 1_048_576,
            ..Stats::default()
        };
        let r = st.render();
        assert!(r.contains("Number of files: 3 (reg: 2, dir: 1)\n"));
        assert!(r.contains("Literal data: 1,048,576 bytes\n"));
        assert!(r.contains("Matched data: 0 bytes\nFile list size: 0\nFile list generation time"));
        assert!(r.contains("File list transfer time: 0.000 seconds\nTotal bytes sent: 0\n"));
    }
}
