//! Readiness from backup freshness: `/readyz` fails, with the reason, once the newest
//! successful backup of a database is older than `--max-age`, or when none has succeeded
//! within `--max-age` of start. Seeded from the backups on disk, so a restart does not hide
//! a stale volume.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use common::{readiness::Condition, Shutdown};

#[derive(Debug)]
struct State {
    start: DateTime<Utc>,
    newest: HashMap<String, DateTime<Utc>>,
    expected: Vec<String>,
}

/// The newest success per database, shared by the runner and the watcher.
#[derive(Debug, Clone)]
pub struct Freshness {
    state: Arc<Mutex<State>>,
    max_age: Duration,
}

fn fmt(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

impl Freshness {
    /// Starts the clock at `start`; `expected` are the databases that must stay fresh (empty:
    /// whatever has been seen).
    pub fn new(start: DateTime<Utc>, expected: Vec<String>, max_age: Duration) -> Self {
        Freshness {
            state: Arc::new(Mutex::new(State {
                start,
                newest: HashMap::new(),
                expected,
            })),
            max_age,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a successful backup of `db` taken at `at`.
    pub fn record(&self, db: &str, at: DateTime<Utc>) {
        let mut st = self.lock();
        let e = st.newest.entry(db.to_string()).or_insert(at);
        if at > *e {
            *e = at;
        }
    }

    /// Sets the databases that must stay fresh (after `all` was resolved).
    pub fn set_expected(&self, dbs: Vec<String>) {
        self.lock().expected = dbs;
    }

    /// `Ok` when every expected database is fresh at `now`, else the reason.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), String> {
        let st = self.lock();
        let max = self.max_age;
        let age = |t: DateTime<Utc>| (now - t).to_std().unwrap_or_default();
        let mut dbs: Vec<&String> = st.expected.iter().collect();
        if dbs.is_empty() {
            dbs = st.newest.keys().collect();
            dbs.sort();
        }
        if dbs.is_empty() && age(st.start) > max {
            return Err(format!(
                "no backup has succeeded within --max-age {} of start",
                fmt(max)
            ));
        }
        for db in dbs {
            match st.newest.get(db) {
                Some(t) if age(*t) <= max => {}
                Some(t) => {
                    return Err(format!(
                        "the newest backup of {db} is {} old, older than --max-age {}",
                        fmt(age(*t)),
                        fmt(max)
                    ))
                }
                None if age(st.start) <= max => {}
                None => {
                    return Err(format!(
                        "no backup of {db} has succeeded within --max-age {} of start",
                        fmt(max)
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Re-evaluates the condition every second until shutdown.
pub async fn watch(fresh: Freshness, cond: Condition, shutdown: Shutdown) {
    loop {
        match fresh.check(Utc::now()) {
            Ok(()) => cond.set_ready(),
            Err(reason) => cond.set_not_ready(reason),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.triggered() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn stale_and_never_succeeded() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let h = |n| start + chrono::Duration::hours(n);
        let f = Freshness::new(
            start,
            vec!["app".into(), "crm".into()],
            Duration::from_secs(2 * 3600),
        );
        assert!(f.check(h(1)).is_ok());
        let e = f.check(h(3)).unwrap_err();
        assert_eq!(
            e,
            "no backup of app has succeeded within --max-age 2h of start"
        );
        f.record("app", h(3));
        f.record("crm", h(3));
        assert!(f.check(h(4)).is_ok());
        f.record("crm", h(5));
        assert_eq!(
            f.check(h(6)).unwrap_err(),
            "the newest backup of app is 3h old, older than --max-age 2h"
        );
        let all = Freshness::new(start, vec![], Duration::from_secs(60));
        assert!(all
            .check(h(1))
            .unwrap_err()
            .contains("no backup has succeeded"));
    }
}
