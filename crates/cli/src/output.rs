//! What `rtsync sync` prints while it works: itemized changes, names, deletions, `--progress`
//! lines, a progress bar on a terminal, and errors — in rsync's wording.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mirror::{Item, Reporter, Update};

/// Escapes a file name as rsync does: control bytes and bytes that are not valid UTF-8 become
/// `\#ooo` (octal); valid UTF-8 passes through.
pub fn escape_name(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_escaped(&mut out, s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                push_escaped(&mut out, std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                for b in bad.iter().take(n) {
                    out.push_str(&format!("\\#{b:03o}"));
                }
                rest = bad.get(n..).unwrap_or_default();
            }
        }
    }
    out
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        if (c as u32) < 0x20 || c == '\x7f' {
            out.push_str(&format!("\\#{:03o}", c as u32));
        } else {
            out.push(c);
        }
    }
}

/// Verbosity settings of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verbosity {
    /// `-v` count.
    pub verbose: u8,
    /// `-i` count.
    pub itemize: u8,
    /// `-q`.
    pub quiet: bool,
    /// `--progress`.
    pub progress: bool,
}

/// Prints a transfer's events on stdout (and errors on stderr).
pub struct Printer {
    v: Verbosity,
    out: std::io::BufWriter<std::io::Stdout>,
    bar: Option<ProgressBar>,
    bar_shown: bool,
    started: Instant,
    transferred: u64,
}

impl Printer {
    pub fn new(v: Verbosity) -> Self {
        // The bar is for a person watching a long run: only on a terminal, only when nothing
        // else is printed per file, and only once the run has lasted a moment.
        let quiet_listing = v.verbose == 0 && v.itemize == 0 && !v.progress && !v.quiet;
        let bar = (quiet_listing && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {pos}/{len} entries {wide_bar} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Printer {
            v,
            out: std::io::BufWriter::new(std::io::stdout()),
            bar,
            bar_shown: false,
            started: Instant::now(),
            transferred: 0,
        }
    }

    pub fn line(&mut self, text: &str) {
        if !self.v.quiet {
            let _ = writeln!(self.out, "{text}");
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let _ = self.out.flush();
    }
}

impl Reporter for Printer {
    fn item(&mut self, item: &Item<'_>) {
        if self.v.quiet {
            return;
        }
        let show = item.is_change() || self.v.itemize > 1 || self.v.verbose > 1;
        if !show {
            return;
        }
        let name = escape_name(&item.display_name());
        if self.v.itemize > 0 {
            let _ = writeln!(self.out, "{} {name}", item.itemize());
        } else if self.v.verbose > 0 || (self.v.progress && item.update == Update::Received) {
            // -v names what was written; an unchanged file whose attributes were fixed is only
            // shown from -vv, while directories show any change, as rsync does.
            let named = item.update != Update::Unchanged || item.kind == fsx::Kind::Dir;
            if item.update == Update::Deleted {
                let _ = writeln!(self.out, "deleting {name}");
            } else if named || self.v.verbose > 1 {
                let _ = writeln!(self.out, "{name}");
            }
        }
    }

    fn file_done(&mut self, item: &Item<'_>, elapsed: Duration) {
        self.transferred += 1;
        if !self.v.progress || self.v.quiet {
            return;
        }
        let secs = elapsed.as_secs_f64().max(1e-6);
        let rate = item.bytes as f64 / secs;
        let (rate, unit) = if rate >= 1e9 {
            (rate / 1_073_741_824.0, "GB/s")
        } else if rate >= 1e6 {
            (rate / 1_048_576.0, "MB/s")
        } else {
            (rate / 1024.0, "kB/s")
        };
        let t = elapsed.as_secs();
        let _ = writeln!(
            self.out,
            "{:>15} 100% {:>7.2}{unit} {:>4}:{:02}:{:02} (xfr#{})",
            mirror::stats::commas(item.bytes),
            rate,
            t / 3600,
            (t / 60) % 60,
            t % 60,
            self.transferred
        );
    }

    fn error(&mut self, message: &str) {
        let _ = self.out.flush();
        if let Some(bar) = &self.bar {
            bar.suspend(|| eprintln!("rtsync: {message}"));
        } else {
            eprintln!("rtsync: {message}");
        }
    }

    fn note(&mut self, message: &str) {
        let wanted = if message.starts_with("created directory") {
            self.v.verbose > 0 || self.v.itemize > 0
        } else {
            self.v.verbose > 0 || message.starts_with("skipping")
        };
        if wanted {
            self.line(message);
        }
    }

    fn tick(&mut self, done: usize, total: usize) {
        let Some(bar) = &self.bar else { return };
        if !self.bar_shown {
            if self.started.elapsed() < Duration::from_millis(700) {
                return;
            }
            bar.set_draw_target(ProgressDrawTarget::stderr());
            self.bar_shown = true;
        }
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_like_rsync() {
        assert_eq!(escape_name(b"plain name"), "plain name");
        assert_eq!(escape_name(b"new\nline"), "new\\#012line");
        assert_eq!(escape_name("é文".as_bytes()), "é文");
        assert_eq!(escape_name(b"bad-\xff\xfe"), "bad-\\#377\\#376");
    }
}
