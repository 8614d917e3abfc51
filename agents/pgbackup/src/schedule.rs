//! When backups run: a cron expression in a time zone (`@daily` and friends included), or a
//! fixed interval (`--interval`, or `@every 6h` in `SCHEDULE` as go-cron writes it).
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::Error;

/// A schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Cron in a time zone.
    Cron {
        cron: Box<Cron>,
        tz: Tz,
        text: String,
    },
    /// Every so often, counted from the previous run's start.
    Interval(Duration),
}

impl Schedule {
    /// Parses `SCHEDULE`.
    pub fn parse(s: &str, tz: Tz) -> Result<Self, Error> {
        let t = s.trim();
        if let Some(d) = t.strip_prefix("@every") {
            let d = common::config::parse_duration(d.trim()).map_err(|e| Error::Config {
                option: "--schedule",
                value: s.to_string(),
                expected: format!("@every DURATION: {e}"),
            })?;
            if d.is_zero() {
                return Err(Error::Config {
                    option: "--schedule",
                    value: s.to_string(),
                    expected: "@every with a duration greater than zero".into(),
                });
            }
            return Ok(Schedule::Interval(d));
        }
        let cron = Cron::new(t)
            .with_seconds_optional()
            .parse()
            .map_err(|e| Error::Config {
                option: "--schedule",
                value: s.to_string(),
                expected: format!(
                    "a cron expression such as \"0 3 * * *\", @daily or @every 6h ({e})"
                ),
            })?;
        Ok(Schedule::Cron {
            cron: Box::new(cron),
            tz,
            text: t.to_string(),
        })
    }

    /// The next run strictly after `after` (for an interval: `after + interval`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Interval(d) => chrono::Duration::from_std(*d).ok().map(|d| after + d),
            Schedule::Cron { cron, tz, .. } => cron
                .find_next_occurrence(&after.with_timezone(tz), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// The usual time between two runs (for the default --max-age).
    pub fn period(&self) -> Duration {
        match self {
            Schedule::Interval(d) => *d,
            Schedule::Cron { .. } => {
                let now = Utc::now();
                let a = self.next_after(now);
                let b = a.and_then(|a| self.next_after(a).map(|b| (b - a).to_std().ok()));
                b.flatten().unwrap_or(Duration::from_secs(86_400))
            }
        }
    }

    /// For log lines.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Interval(d) => format!("every {}", humantime_fmt(*d)),
            Schedule::Cron { text, tz, .. } => format!("cron {text} ({tz})"),
        }
    }
}

fn humantime_fmt(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// A random delay in `[0, max]`.
pub fn jitter(max: Duration) -> Duration {
    use rand::Rng;
    if max.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(rand::rng().random_range(0.0..=max.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cron_in_a_time_zone() {
        let s = Schedule::parse("0 3 * * *", chrono_tz::Europe::Berlin).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        // 03:00 in Berlin in winter is 02:00 UTC.
        assert_eq!(
            s.next_after(now).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 11, 2, 0, 0).unwrap()
        );
        let d = Schedule::parse("@daily", chrono_tz::UTC).unwrap();
        assert_eq!(
            d.next_after(now).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 11, 0, 0, 0).unwrap()
        );
        assert_eq!(d.period(), Duration::from_secs(86_400));
    }

    #[test]
    fn every_and_errors() {
        let s = Schedule::parse("@every 90s", chrono_tz::UTC).unwrap();
        assert!(matches!(s, Schedule::Interval(d) if d == Duration::from_secs(90)));
        let e = Schedule::parse("at noon", chrono_tz::UTC)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--schedule") && e.contains("at noon"), "{e}");
        assert!(Schedule::parse("@every 0s", chrono_tz::UTC).is_err());
        assert!(jitter(Duration::from_secs(2)) <= Duration::from_secs(2));
    }
}
