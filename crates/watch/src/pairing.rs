//! Raw events → [`FsEvent`]s: a sans-IO state machine with injected time.
//!
//! `MOVED_FROM` and `MOVED_TO` with the same cookie become one [`FsEvent::Renamed`]. A
//! `MOVED_FROM` whose partner does not arrive within the timeout left the watched trees and
//! becomes a delete; a `MOVED_TO` without a partner came from outside and is a creation. Reads,
//! opens and the watch's own events carry no change and are dropped.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::event::{FsEvent, RawEvent, mask};

/// How long a move-out waits for its move-in (the kernel queues both at once; this only covers
/// a reader that split them between two reads).
pub const MOVE_TIMEOUT: Duration = Duration::from_millis(50);

/// Pairs moves and maps raw events to [`FsEvent`]s.
#[derive(Debug, Default)]
pub struct Pairer {
    /// Unpaired move-outs: (cookie, path, is_dir, when seen).
    pending: VecDeque<(u32, PathBuf, bool, Instant)>,
}

impl Pairer {
    /// A pairer with nothing pending.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one raw event seen at `now`; returns what it means (possibly nothing yet).
    pub fn push(&mut self, ev: &RawEvent, now: Instant) -> Vec<FsEvent> {
        let mut out = self.expire(now);
        let path = ev.path();
        let is_dir = ev.is_dir();
        let m = ev.mask;
        if m & mask::Q_OVERFLOW != 0 {
            out.push(FsEvent::Rescan { path });
        } else if m & mask::MOVED_FROM != 0 {
            self.pending.push_back((ev.cookie, path, is_dir, now));
        } else if m & mask::MOVED_TO != 0 {
            match self
                .pending
                .iter()
                .position(|(c, ..)| *c == ev.cookie && ev.cookie != 0)
            {
                Some(i) => {
                    if let Some((_, from, _, _)) = self.pending.remove(i) {
                        out.push(FsEvent::Renamed {
                            from,
                            to: path,
                            is_dir,
                        });
                    }
                }
                None => out.push(FsEvent::Created { path, is_dir }),
            }
        } else if m & mask::CREATE != 0 {
            out.push(FsEvent::Created { path, is_dir });
        } else if m & mask::DELETE != 0 {
            out.push(FsEvent::Deleted { path, is_dir });
        } else if m & mask::CLOSE_WRITE != 0 {
            out.push(FsEvent::ClosedWrite { path });
        } else if m & mask::MODIFY != 0 {
            out.push(FsEvent::Modified { path });
        } else if m & mask::ATTRIB != 0 && !ev.name.is_empty() {
            out.push(FsEvent::Attributes { path, is_dir });
        } else if m & mask::DELETE_SELF != 0 && ev.name.is_empty() {
            // Below a root, the parent's DELETE reports it; a root's own deletion is reported
            // by the watcher as a rescan of the root.
        }
        out
    }

    /// Move-outs whose partner did not come in time, as deletions.
    pub fn expire(&mut self, now: Instant) -> Vec<FsEvent> {
        let mut out = Vec::new();
        while let Some((_, _, _, seen)) = self.pending.front() {
            if now.duration_since(*seen) < MOVE_TIMEOUT {
                break;
            }
            if let Some((_, path, is_dir, _)) = self.pending.pop_front() {
                out.push(FsEvent::Deleted { path, is_dir });
            }
        }
        out
    }

    /// When the next pending move-out expires, if any: the caller should come back by then.
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.front().map(|(.., seen)| *seen + MOVE_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(watch: &str, name: &str, mask: u32, cookie: u32) -> RawEvent {
        RawEvent {
            watch: watch.into(),
            name: name.as_bytes().to_vec(),
            mask,
            cookie,
            synthetic: false,
        }
    }

    #[test]
    fn moves_pair_by_cookie() {
        let mut p = Pairer::new();
        let t = Instant::now();
        assert!(p.push(&ev("/w", "a", mask::MOVED_FROM, 7), t).is_empty());
        let out = p.push(&ev("/w/d", "b", mask::MOVED_TO, 7), t);
        assert_eq!(
            out,
            [FsEvent::Renamed {
                from: "/w/a".into(),
                to: "/w/d/b".into(),
                is_dir: false
            }]
        );
    }

    #[test]
    fn unpaired_moves_become_delete_and_create() {
        let mut p = Pairer::new();
        let t = Instant::now();
        p.push(&ev("/w", "gone", mask::MOVED_FROM | mask::ISDIR, 1), t);
        assert!(p.expire(t + Duration::from_millis(10)).is_empty());
        assert_eq!(p.deadline(), Some(t + MOVE_TIMEOUT));
        let out = p.expire(t + MOVE_TIMEOUT);
        assert_eq!(
            out,
            [FsEvent::Deleted {
                path: "/w/gone".into(),
                is_dir: true
            }]
        );
        let out = p.push(&ev("/w", "new", mask::MOVED_TO, 2), t);
        assert_eq!(
            out,
            [FsEvent::Created {
                path: "/w/new".into(),
                is_dir: false
            }]
        );
    }

    #[test]
    fn reads_carry_no_change_and_overflow_rescans() {
        let mut p = Pairer::new();
        let t = Instant::now();
        assert!(p.push(&ev("/w", "f", mask::OPEN, 0), t).is_empty());
        assert!(p.push(&ev("/w", "f", mask::CLOSE_NOWRITE, 0), t).is_empty());
        let out = p.push(
            &RawEvent {
                watch: "/w".into(),
                name: vec![],
                mask: mask::Q_OVERFLOW,
                cookie: 0,
                synthetic: false,
            },
            t,
        );
        assert_eq!(out, [FsEvent::Rescan { path: "/w".into() }]);
        let out = p.push(&ev("/w", "f", mask::CLOSE_WRITE, 0), t);
        assert_eq!(
            out,
            [FsEvent::ClosedWrite {
                path: "/w/f".into()
            }]
        );
    }
}
