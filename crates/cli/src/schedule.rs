//! When `rtsync run` compares everything again whatever the events say (sersync's crontab):
//! every N seconds (`resync_interval`), at the times of a cron expression (`resync_cron`, five
//! fields, local time), or both, whichever comes first.

use std::str::FromStr;
use std::time::{Duration, Instant};

/// The periodic compare's schedule; [`Schedule::default`] has none.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    every: Option<Duration>,
    cron: Option<croner::Cron>,
}

impl Schedule {
    /// A schedule from an interval and a cron expression, either optional.
    ///
    /// # Errors
    /// A cron expression that does not parse, with the parser's reason.
    pub fn new(every: Option<Duration>, cron: Option<&str>) -> Result<Schedule, String> {
        let cron = cron
            .map(|c| croner::Cron::from_str(c).map_err(|e| format!("resync cron {c:?}: {e}")))
            .transpose()?;
        Ok(Schedule {
            every: every.filter(|d| !d.is_zero()),
            cron,
        })
    }

    /// The next compare after `now`: the interval counted from `now`, or the cron
    /// expression's next time on the local clock.
    #[must_use]
    pub fn next(&self, now: Instant) -> Option<Instant> {
        let by_interval = self.every.map(|e| now + e);
        let by_cron = self.cron.as_ref().and_then(|c| {
            let wall = chrono::Local::now();
            let at = c.find_next_occurrence(&wall, false).ok()?;
            Some(now + (at - wall).to_std().ok()?)
        });
        by_interval.into_iter().chain(by_cron).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sooner_of_interval_and_cron_and_none_without_either() {
        let now = Instant::now();
        assert_eq!(Schedule::default().next(now), None);
        let every = Schedule::new(Some(Duration::from_secs(60)), None).unwrap();
        assert_eq!(every.next(now), Some(now + Duration::from_secs(60)));
        // Every minute: at most a minute away, and sooner than an hour's interval.
        let cron = Schedule::new(Some(Duration::from_secs(3600)), Some("* * * * *")).unwrap();
        let at = cron.next(now).unwrap();
        assert!(at <= now + Duration::from_secs(61), "{:?}", at - now);
        let e = Schedule::new(None, Some("61 * * * *")).unwrap_err();
        assert!(e.contains("61 * * * *"), "{e}");
    }
}
