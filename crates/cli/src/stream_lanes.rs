//! The rtsync stream to one target over several connections at once (up to `-n/--workers`).
//!
//! One TCP connection carries at most its send buffer per round trip: with Linux's default
//! 4 MiB cap on `tcp_wmem`, about 75 MB/s at a 55 ms round trip, less than a target fed 500
//! files/s of 10-300 KB needs. So a worker opens another connection when every open one has
//! had a batch awaiting its acknowledgement for [`FAR`], and spreads batches over them.
//!
//! Each connection applies its batches in order; different connections apply theirs
//! concurrently, so a batch goes on another connection only if it touches no path (nor one
//! above or below it) that a batch in flight on that connection touches ([`Flights`] says which
//! connections a batch meets: one lane per connection, numbered by its generation). A batch
//! that meets batches on two connections waits until it meets at most one. A batch that
//! renames, deletes or compares a subtree is applied alone: it waits until at most one
//! connection has batches in flight, and goes on that one (with only the path rule, a churn of
//! renames and deletes beside new files lost files on the target in about one run in three of
//! `a_stream_over_several_connections_keeps_every_change_in_order`; the cause is not found).
//! So the connections carry new and rewritten files side by side, the steady load of an
//! upload or web tree, and a backlog cut into pieces ([`crate::push_stream::parts`]).
//!
//! What is left to order is the attributes of a directory that two batches on two connections
//! both set (each ends by setting the attributes of the directories it wrote in, read when it
//! was planned): applied at the same time, the one planned first may set them last, and the
//! order of their acknowledgements does not say which did (each waits for its own `syncfs`).
//! So a directory set by batches in flight on two connections at once is sent again once the
//! last of them has landed ([`Lanes::stale_dirs`]).
//!
//! Here is only the bookkeeping; the worker in [`crate::run`] opens, sends and closes.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use engine::Batch;

use crate::push_stream::Feed;

/// How many stream batches may await their acknowledgement on one connection at once.
pub const WINDOW: usize = 8;

/// A connection whose oldest batch has awaited its acknowledgement this long is held up by
/// its link or its peer, not by the batch's own work: another connection may help.
pub const FAR: Duration = Duration::from_millis(20);

/// A stream batch sent and not yet acknowledged.
pub struct Sent {
    /// Its number on its connection.
    pub number: u64,
    /// Its number in the worker's [`Flights`](engine::Flights).
    pub flight: u64,
    pub batch: Batch,
    pub at: Instant,
    /// The content it sends, as planned (the wire adds a little).
    pub bytes: u64,
    /// The directories whose attributes it sets.
    pub dirs: Vec<PathBuf>,
}

/// What a lane needs of its connection.
pub trait Connection {
    fn close(self);
    /// Bytes written to it so far.
    fn sent_bytes(&self) -> u64;
}

impl Connection for Feed {
    fn close(self) {
        Feed::close(self);
    }

    fn sent_bytes(&self) -> u64 {
        Feed::sent_bytes(self)
    }
}

/// One open connection.
pub struct Lane<P = Feed> {
    pub pipe: P,
    /// Tells its events from those of every other connection, and is its lane in `Flights`.
    pub generation: u64,
    pub window: VecDeque<Sent>,
    /// When it last acknowledged a batch (or opened).
    pub acked_at: Instant,
    /// What it had written at its last acknowledgement.
    counted: u64,
}

impl<P: Connection> Lane<P> {
    /// Whether a batch in flight here sets the attributes of `dir`.
    fn sets(&self, dir: &PathBuf) -> bool {
        self.window
            .iter()
            .any(|s| s.dirs.binary_search(dir).is_ok())
    }

    fn unacked_bytes(&self) -> u64 {
        self.window.iter().map(|s| s.bytes).sum()
    }

    /// What it wrote since the last time this was asked: counted with the batch just
    /// acknowledged.
    pub fn written_since(&mut self) -> u64 {
        let now = self.pipe.sent_bytes();
        let n = now.saturating_sub(self.counted);
        self.counted = now;
        n
    }
}

/// Where the next batch goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// On the open connection at this index.
    Lane(usize),
    /// On a new connection.
    Open,
}

/// A target's open stream connections.
pub struct Lanes<P = Feed> {
    lanes: Vec<Lane<P>>,
    /// How many connections may be open; lowered when the daemon refuses one more.
    cap: usize,
    /// Whether the daemon took the stream once (it may be down now).
    offered: bool,
    /// Directories whose attributes batches in flight on two connections at once set.
    contested: HashSet<PathBuf>,
}

impl<P: Connection> Lanes<P> {
    /// No connection yet; up to `max` of them.
    #[must_use]
    pub fn new(max: usize) -> Lanes<P> {
        Lanes {
            lanes: Vec::new(),
            cap: max.max(1),
            offered: false,
            contested: HashSet::new(),
        }
    }

    /// Whether the daemon took the stream once: batches for it may be cut into pieces.
    #[must_use]
    pub fn offered(&self) -> bool {
        self.offered
    }

    /// Whether no connection is open.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.lanes.is_empty()
    }

    /// Batches awaiting their acknowledgement, on every connection.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.lanes.iter().map(|l| l.window.len()).sum()
    }

    /// How many batches may await their acknowledgement at once.
    #[must_use]
    pub fn room(&self) -> usize {
        WINDOW * self.cap
    }

    /// Where a batch that meets the connections `met` (generations) goes: on the one it meets,
    /// else on an idle one, else on a new one while the cap allows and every open one has had
    /// a batch awaiting its acknowledgement for [`FAR`] or more (a long link or a slow peer:
    /// on a fast one, more connections only cost the target CPU), else on the one with the
    /// fewest bytes unacknowledged. `None` when it meets two or more: it must wait.
    #[must_use]
    pub fn choose(&self, met: &[u64], now: Instant) -> Option<Choice> {
        match met {
            [] => {}
            [g] => {
                if let Some(k) = self.lanes.iter().position(|l| l.generation == *g) {
                    return Some(Choice::Lane(k));
                }
            }
            _ => return None,
        }
        if let Some(k) = self.lanes.iter().position(|l| l.window.is_empty()) {
            return Some(Choice::Lane(k));
        }
        let all_far = self.lanes.iter().all(|l| {
            l.window
                .front()
                .is_some_and(|s| now.saturating_duration_since(s.at) >= FAR)
        });
        if self.lanes.len() < self.cap && (all_far || self.lanes.is_empty()) {
            return Some(Choice::Open);
        }
        self.lanes
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| l.unacked_bytes())
            .map(|(k, _)| Choice::Lane(k))
            .or(Some(Choice::Open))
    }

    /// The connections with batches in flight.
    #[must_use]
    pub fn busy(&self) -> Vec<u64> {
        self.lanes
            .iter()
            .filter(|l| !l.window.is_empty())
            .map(|l| l.generation)
            .collect()
    }

    /// Adds a new connection; returns its index.
    pub fn add(&mut self, pipe: P, generation: u64) -> usize {
        self.offered = true;
        self.lanes.push(Lane {
            pipe,
            generation,
            window: VecDeque::new(),
            acked_at: Instant::now(),
            counted: 0,
        });
        self.lanes.len() - 1
    }

    /// The daemon would not take one more connection: stay with those open.
    pub fn cap_at_open(&mut self) {
        self.cap = self.lanes.len().max(1);
    }

    /// How many connections are open.
    #[must_use]
    pub fn open(&self) -> usize {
        self.lanes.len()
    }

    pub fn lane_mut(&mut self, k: usize) -> Option<&mut Lane<P>> {
        self.lanes.get_mut(k)
    }

    /// The connection of `generation`.
    pub fn by_generation(&mut self, generation: u64) -> Option<&mut Lane<P>> {
        self.lanes.iter_mut().find(|l| l.generation == generation)
    }

    /// Whether some connection has had a batch awaiting its acknowledgement for longer than
    /// `silence` without acknowledging anything.
    #[must_use]
    pub fn silent_for(&self, silence: Duration) -> bool {
        self.lanes.iter().any(|l| {
            l.window
                .front()
                .is_some_and(|s| s.at.max(l.acked_at).elapsed() > silence)
        })
    }

    /// Closes the connection of `generation` if it has nothing in flight; whether it did.
    pub fn drop_idle(&mut self, generation: u64) -> bool {
        let Some(k) = self
            .lanes
            .iter()
            .position(|l| l.generation == generation && l.window.is_empty())
        else {
            return false;
        };
        self.lanes.remove(k).pipe.close();
        true
    }

    /// Closes every connection; what was in flight, newest first.
    pub fn close_all(&mut self, max: usize) -> Vec<Sent> {
        let mut sent: Vec<Sent> = Vec::new();
        for lane in self.lanes.drain(..) {
            sent.extend(lane.window);
            lane.pipe.close();
        }
        sent.sort_by_key(|s| std::cmp::Reverse(s.flight));
        self.cap = max.max(1);
        self.contested.clear();
        sent
    }

    /// Puts `sent` in flight on the connection at index `k`.
    pub fn push(&mut self, k: usize, sent: Sent) {
        for dir in &sent.dirs {
            let elsewhere = self
                .lanes
                .iter()
                .enumerate()
                .any(|(i, l)| i != k && l.sets(dir));
            if elsewhere {
                self.contested.insert(dir.clone());
            }
        }
        if let Some(lane) = self.lanes.get_mut(k) {
            lane.window.push_back(sent);
        }
    }

    /// The directories `landed` (just taken off its connection) set that batches on another
    /// connection set at the same time, now that none of those is in flight: they must be sent
    /// again.
    pub fn stale_dirs(&mut self, landed: &Sent) -> Vec<PathBuf> {
        let mut stale = Vec::new();
        for dir in &landed.dirs {
            let still_set = self.lanes.iter().any(|l| l.sets(dir));
            if !still_set && self.contested.remove(dir) {
                stale.push(dir.clone());
            }
        }
        stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl Connection for Fake {
        fn close(self) {}
        fn sent_bytes(&self) -> u64 {
            0
        }
    }

    fn sent(flight: u64, bytes: u64, dirs: &[&str]) -> Sent {
        Sent {
            number: flight,
            flight,
            batch: Batch::default(),
            at: Instant::now(),
            bytes,
            dirs: dirs.iter().map(PathBuf::from).collect(),
        }
    }

    fn push(lanes: &mut Lanes<Fake>, k: usize, s: Sent) {
        lanes.lane_mut(k).unwrap().window.push_back(s);
    }

    #[test]
    fn a_batch_goes_where_it_must_then_where_it_is_idle_then_on_a_new_connection() {
        let mut lanes: Lanes<Fake> = Lanes::new(3);
        let now = Instant::now();
        // Past FAR even for batches made a moment after `now`.
        let later = now + FAR * 2;
        assert_eq!(lanes.choose(&[], now), Some(Choice::Open));
        lanes.add(Fake, 7);
        assert_eq!(lanes.choose(&[], now), Some(Choice::Lane(0)), "idle");
        push(&mut lanes, 0, sent(1, 100, &[]));
        assert_eq!(
            lanes.choose(&[7], now),
            Some(Choice::Lane(0)),
            "the one it meets"
        );
        assert_eq!(
            lanes.choose(&[], now),
            Some(Choice::Lane(0)),
            "busy, not for long"
        );
        assert_eq!(
            lanes.choose(&[], later),
            Some(Choice::Open),
            "held up: one more"
        );
        lanes.add(Fake, 9);
        let mut second = sent(2, 50, &[]);
        second.at = later;
        push(&mut lanes, 1, second);
        assert_eq!(lanes.choose(&[7, 9], later), None, "meets two: waits");
        assert_eq!(
            lanes.choose(&[], later),
            Some(Choice::Lane(1)),
            "the second not held up yet"
        );
        lanes.cap_at_open();
        let much_later = later + FAR * 2;
        assert_eq!(
            lanes.choose(&[], much_later),
            Some(Choice::Lane(1)),
            "no more allowed: fewest bytes"
        );
        assert_eq!(lanes.room(), 2 * WINDOW);
    }

    #[test]
    fn only_an_idle_connection_closes_alone() {
        let mut lanes: Lanes<Fake> = Lanes::new(2);
        lanes.add(Fake, 1);
        lanes.add(Fake, 2);
        push(&mut lanes, 0, sent(1, 10, &[]));
        assert!(!lanes.drop_idle(1));
        assert!(lanes.drop_idle(2));
        assert_eq!(lanes.open(), 1);
        let back = lanes.close_all(2);
        assert_eq!(back.len(), 1);
        assert!(lanes.is_closed());
    }

    #[test]
    fn what_is_in_flight_comes_back_newest_first() {
        let mut lanes: Lanes<Fake> = Lanes::new(2);
        lanes.add(Fake, 1);
        lanes.add(Fake, 2);
        push(&mut lanes, 0, sent(1, 0, &[]));
        push(&mut lanes, 1, sent(2, 0, &[]));
        push(&mut lanes, 0, sent(3, 0, &[]));
        let order: Vec<u64> = lanes.close_all(2).iter().map(|s| s.flight).collect();
        assert_eq!(order, vec![3, 2, 1]);
    }

    #[test]
    fn a_directory_set_on_two_connections_at_once_goes_again_after_the_last() {
        let mut lanes: Lanes<Fake> = Lanes::new(2);
        lanes.add(Fake, 1);
        lanes.add(Fake, 2);
        lanes.push(0, sent(1, 0, &["s1", "s2"]));
        lanes.push(1, sent(2, 0, &["s2", "s3"]));
        lanes.push(1, sent(3, 0, &["s3"]));
        let first = lanes.lane_mut(0).unwrap().window.pop_front().unwrap();
        assert!(lanes.stale_dirs(&first).is_empty(), "s2 is still being set");
        let second = lanes.lane_mut(1).unwrap().window.pop_front().unwrap();
        assert_eq!(lanes.stale_dirs(&second), vec![PathBuf::from("s2")]);
        let third = lanes.lane_mut(1).unwrap().window.pop_front().unwrap();
        assert!(
            lanes.stale_dirs(&third).is_empty(),
            "s3 only ever on one connection"
        );
        assert!(lanes.contested.is_empty());
    }
}
