//! Retention: which verified backups of one database to keep, as restic's `forget` decides:
//! the last N, the newest of each of the last D days / W weeks / M months that have backups,
//! and everything newer than `within`; the rules combine with OR. Computed from the backups'
//! timestamps (their names), never from file ages, with the clock passed in. The newest
//! backup is always kept. Pure: the caller deletes (or, in dry-run, only logs).
use std::{collections::HashSet, time::Duration};

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;

/// Maps a local time to its day, ISO week or month.
type BucketKey = fn(DateTime<Tz>) -> (i32, u32);

/// The rules.
#[derive(Debug, Clone)]
pub struct Policy {
    pub last: usize,
    pub days: usize,
    pub weeks: usize,
    pub months: usize,
    pub within: Duration,
    pub tz: Tz,
}

/// The decision for one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Index into the list given to [`plan`].
    pub index: usize,
    /// Why it is kept; empty means delete.
    pub reasons: Vec<String>,
}

impl Decision {
    /// Whether it is kept.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }

    /// The reasons, for log lines.
    pub fn why(&self) -> String {
        if self.reasons.is_empty() {
            "matches no keep rule".to_string()
        } else {
            self.reasons.join(", ")
        }
    }
}

/// Decides over `times` (the backups of one database, any order) at `now`.
pub fn plan(times: &[DateTime<Utc>], policy: &Policy, now: DateTime<Utc>) -> Vec<Decision> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    // Newest first.
    order.sort_by(|&a, &b| times[b].cmp(&times[a]));
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); times.len()];
    if let Some(&newest) = order.first() {
        reasons[newest].push("newest backup".into());
    }
    for (rank, &i) in order.iter().enumerate() {
        if rank < policy.last {
            reasons[i].push(format!("last {}", policy.last));
        }
    }
    if let Ok(within) = chrono::Duration::from_std(policy.within) {
        if !policy.within.is_zero() {
            for &i in &order {
                if now - times[i] <= within {
                    reasons[i].push(format!("within {}s", policy.within.as_secs()));
                }
            }
        }
    }
    let buckets: [(&str, usize, BucketKey); 3] = [
        ("daily", policy.days, |t| (t.year(), t.ordinal())),
        ("weekly", policy.weeks, |t| {
            let w = t.iso_week();
            (w.year(), w.week())
        }),
        ("monthly", policy.months, |t| (t.year(), t.month())),
    ];
    for (name, n, key) in buckets {
        let mut seen = HashSet::new();
        for &i in &order {
            if seen.len() >= n {
                break;
            }
            let k = key(times[i].with_timezone(&policy.tz));
            if seen.insert(k) {
                reasons[i].push(format!("{name} {}", seen.len()));
            }
        }
    }
    order
        .into_iter()
        .map(|index| Decision {
            index,
            reasons: std::mem::take(&mut reasons[index]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn policy(last: usize, days: usize, weeks: usize, months: usize) -> Policy {
        Policy {
            last,
            days,
            weeks,
            months,
            within: Duration::ZERO,
            tz: chrono_tz::UTC,
        }
    }

    fn kept(times: &[DateTime<Utc>], p: &Policy, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut k: Vec<_> = plan(times, p, now)
            .into_iter()
            .filter(Decision::keep)
            .map(|d| times[d.index])
            .collect();
        k.sort();
        k
    }

    /// One backup every 6 hours for 120 days, simulated: no sleeping, the clock is a value.
    fn simulated() -> (Vec<DateTime<Utc>>, DateTime<Utc>) {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let times: Vec<_> = (0..120 * 4)
            .map(|i| start + chrono::Duration::hours(6 * i))
            .collect();
        let now = *times.last().unwrap() + chrono::Duration::minutes(5);
        (times, now)
    }

    #[test]
    fn gfs_keeps_newest_of_each_day_week_month() {
        let (times, now) = simulated();
        let k = kept(&times, &policy(0, 7, 4, 6), now);
        let d = |m, d, h| Utc.with_ymd_and_hms(2026, m, d, h, 0, 0).unwrap();
        // Last backup 2026-04-30 18:00. 7 days: Apr 24..30 at 18:00.
        for day in 24..=30 {
            assert!(k.contains(&d(4, day, 18)), "day {day}");
        }
        // Weekly: this week's newest (Thursday Apr 30), then Sundays 18:00 (Apr 26, 19, 12).
        for day in [26, 19, 12] {
            assert!(k.contains(&d(4, day, 18)), "week ending {day}");
        }
        assert!(!k.contains(&d(4, 5, 18)));
        // Monthly: last backup of Jan, Feb, Mar (Apr is the newest).
        assert!(
            k.contains(&d(1, 31, 18)) && k.contains(&d(2, 28, 18)) && k.contains(&d(3, 31, 18))
        );
        // 7 daily + 2 more weekly + 3 more monthly = 12 (overlaps counted once).
        assert_eq!(k.len(), 12, "{k:?}");
        assert!(!k.contains(&d(4, 30, 12)));
    }

    #[test]
    fn last_n_combines_with_or_and_newest_always_kept() {
        let (times, now) = simulated();
        let k = kept(&times, &policy(10, 0, 0, 0), now);
        assert_eq!(k.len(), 10);
        assert_eq!(k.last(), times.last());
        // Nothing asked for: the newest is still kept.
        let k = kept(&times, &policy(0, 0, 0, 0), now);
        assert_eq!(k, vec![*times.last().unwrap()]);
        // Last 10 OR 2 days: the 10 newest cover 2.5 days, so 10.
        assert_eq!(kept(&times, &policy(10, 2, 0, 0), now).len(), 10);
        // Last 2 OR 5 days: 2 newest (same day) + one per older day = 6.
        assert_eq!(kept(&times, &policy(2, 5, 0, 0), now).len(), 6);
    }

    #[test]
    fn days_count_days_with_backups_so_a_stopped_schedule_deletes_nothing_more() {
        let (times, _) = simulated();
        // Months later, no new backups: the same set is kept as right after the last one.
        let later = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let (_, now) = simulated();
        assert_eq!(
            kept(&times, &policy(0, 7, 4, 6), later),
            kept(&times, &policy(0, 7, 4, 6), now)
        );
    }

    #[test]
    fn within_uses_the_injected_clock_and_time_zone_buckets() {
        let (times, now) = simulated();
        let mut p = policy(0, 0, 0, 0);
        p.within = Duration::from_secs(24 * 3600);
        // 18:00, 12:00, 06:00, 00:00 of the last day (18:00 the day before is 24h05m old).
        assert_eq!(kept(&times, &p, now).len(), 4);
        // Buckets follow the time zone: in Tokyo (UTC+9) 18:00 UTC is the next day.
        let mut p = policy(0, 2, 0, 0);
        p.tz = chrono_tz::Asia::Tokyo;
        let k = kept(&times, &p, now);
        let d = |m, d, h| Utc.with_ymd_and_hms(2026, m, d, h, 0, 0).unwrap();
        assert_eq!(k, vec![d(4, 30, 12), d(4, 30, 18)]);
        let plan = plan(&times, &p, now);
        assert_eq!(plan[0].why(), "newest backup, daily 1");
        assert_eq!(plan[2].why(), "matches no keep rule");
    }
}
