//! What a failed transfer means, and how long to wait before the next try.
//!
//! rsync's exit codes sort failures: a network drop, a timeout or a full disk on the target
//! passes (transient: retry forever, backing off); a partial transfer names paths to send again
//! (partial); a refused login or a missing module will not fix itself (permanent: park the
//! changes, report, and retry only slowly, so a fixed config heals without a restart). No
//! failure ever drops a change.

use std::time::Duration;

/// The kind of a failed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Try again soon, forever.
    Transient,
    /// Some paths were not transferred (rsync's 23 and 24): send the batch again.
    Partial,
    /// Needs a person: wrong password, unknown module, bad options.
    Permanent,
}

impl Failure {
    /// Classifies an rsync exit code (`errcode.h`); `None` for success.
    ///
    /// 24 ("some files vanished before they could be transferred", and nothing else failed)
    /// is a success here: a file named by a batch that is gone by the time it is sent was
    /// deleted or renamed after the batch was taken, so that change has its own, later place
    /// in the journal and goes out next. Retrying the batch instead would fail again and
    /// again under steady churn, each retry bigger and later than the last.
    #[must_use]
    pub fn of_exit(code: i32) -> Option<Failure> {
        match code {
            0 | 24 => None,
            23 => Some(Failure::Partial),
            // Syntax, protocol, file selection, unsupported action, start-up/auth.
            1..=5 => Some(Failure::Permanent),
            // Socket, file I/O (a full disk), stream, signals, timeouts, the shell's 255, and
            // anything unknown: the safe reading is "try again".
            _ => Some(Failure::Transient),
        }
    }
}

/// Exponential backoff with jitter, reset by a success.
///
/// The cap for transient failures is short on purpose: a try costs one connection attempt,
/// and the cap bounds how long a target stays behind after its network or daemon comes back
/// (a link down for minutes must not leave it waiting a further minute).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    slow: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `base`, doubling up to `max`; a permanent failure waits `slow`.
    #[must_use]
    pub fn new(base: Duration, max: Duration, slow: Duration) -> Self {
        Backoff {
            base,
            max,
            slow,
            attempt: 0,
        }
    }

    /// The wait before the next try. `jitter` in `[0, 1)` spreads retries of many targets
    /// (and many rtsync instances) so they do not reconnect in lockstep: the wait is between
    /// half and all of the exponential step.
    pub fn next_delay(&mut self, failure: Failure, jitter: f64) -> Duration {
        let step = match failure {
            Failure::Permanent => self.slow,
            Failure::Transient | Failure::Partial => {
                let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
                self.base.saturating_mul(factor).min(self.max)
            }
        };
        self.attempt = self.attempt.saturating_add(1);
        step.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }

    /// How many failures in a row.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Forgets past failures after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_sort_as_rsync_means_them() {
        assert_eq!(Failure::of_exit(0), None);
        assert_eq!(Failure::of_exit(5), Some(Failure::Permanent));
        assert_eq!(Failure::of_exit(23), Some(Failure::Partial));
        assert_eq!(Failure::of_exit(24), None);
        for code in [10, 11, 12, 30, 35, 255] {
            assert_eq!(Failure::of_exit(code), Some(Failure::Transient), "{code}");
        }
    }

    #[test]
    fn waits_double_up_to_the_cap_with_jitter_and_reset() {
        let mut b = Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(5),
            Duration::from_secs(30),
        );
        let full: Vec<u128> = (0..8)
            .map(|_| b.next_delay(Failure::Transient, 0.999_999).as_millis())
            .collect();
        assert_eq!(full, [99, 199, 399, 799, 1599, 3199, 4999, 4999]);
        b.reset();
        assert_eq!(
            b.next_delay(Failure::Transient, 0.0),
            Duration::from_millis(50)
        );
        assert_eq!(
            b.next_delay(Failure::Permanent, 0.0),
            Duration::from_secs(15)
        );
    }
}
