//! User time formats (`--time-format`, chrono strftime) and the reader that tries every
//! timestamp shape log2json knows, for captured timestamps of user patterns and logfmt.
//! (Tested in `time`'s tests.)
use chrono::{DateTime, NaiveDate, NaiveDateTime};

use super::time::{infer_year, parse_bsd, parse_clf, parse_ctime, parse_iso, Civil, Instant, Zone};

/// A user's `--time-format` (chrono strftime), applied to a captured timestamp.
#[derive(Debug, Clone)]
pub struct TimeFormat {
    fmt: String,
    has_offset: bool,
    has_year: bool,
    has_time: bool,
    /// Fraction digits the format always writes (`%.3f` -> 3).
    frac: Option<u8>,
}

impl TimeFormat {
    /// Checks that `fmt` is a usable strftime format.
    pub fn new(fmt: &str) -> Result<TimeFormat, String> {
        let items: Vec<_> = chrono::format::StrftimeItems::new(fmt).collect();
        if items
            .iter()
            .any(|i| matches!(i, chrono::format::Item::Error))
        {
            return Err(format!(
                "invalid time format {fmt:?}: expected strftime such as %Y-%m-%d %H:%M:%S%.f"
            ));
        }
        let has = |s: &str| fmt.contains(s);
        Ok(TimeFormat {
            fmt: fmt.to_string(),
            frac: if has("%.3f") || has("%3f") {
                Some(3)
            } else if has("%.6f") || has("%6f") {
                Some(6)
            } else if has("%.9f") || has("%9f") {
                Some(9)
            } else {
                None
            },
            has_offset: has("%z")
                || has("%:z")
                || has("%#z")
                || has("%::z")
                || has("%Z")
                || has("%+")
                || has("%s"),
            has_year: has("%Y")
                || has("%y")
                || has("%G")
                || has("%C")
                || has("%+")
                || has("%s")
                || has("%D")
                || has("%F")
                || has("%c"),
            has_time: has("%H")
                || has("%I")
                || has("%T")
                || has("%R")
                || has("%X")
                || has("%+")
                || has("%s")
                || has("%c")
                || has("%r"),
        })
    }

    /// Parses `s`; times without a zone are read in `zone`, without a year get the year rule.
    pub fn parse(&self, s: &str, zone: Zone, now: i64) -> Option<Instant> {
        let s = s.trim();
        if self.has_offset {
            let dt = DateTime::parse_from_str(s, &self.fmt).ok()?;
            return Some(Instant {
                secs: dt.timestamp(),
                nanos: dt.timestamp_subsec_nanos(),
                frac_digits: self
                    .frac
                    .unwrap_or_else(|| digits_for(dt.timestamp_subsec_nanos())),
            });
        }
        let naive = if !self.has_year {
            // Parse with a placeholder leap year, then apply the year rule.
            let n =
                NaiveDateTime::parse_from_str(&format!("2000 {s}"), &format!("%Y {}", self.fmt))
                    .ok()?;
            let c = civil_of(&n);
            let y = infer_year(&c, zone, now);
            n.with_year_checked(y)?
        } else if self.has_time {
            NaiveDateTime::parse_from_str(s, &self.fmt).ok()?
        } else {
            NaiveDate::parse_from_str(s, &self.fmt)
                .ok()?
                .and_hms_opt(0, 0, 0)?
        };
        let mut c = civil_of(&naive);
        c.frac_digits = self.frac.unwrap_or_else(|| digits_for(c.nanos));
        c.to_instant(None, zone)
    }
}

/// The precision to print a parsed fraction with: none, milli, micro or nano.
fn digits_for(nanos: u32) -> u8 {
    match nanos {
        0 => 0,
        n if n % 1_000_000 == 0 => 3,
        n if n % 1_000 == 0 => 6,
        _ => 9,
    }
}

trait WithYear: Sized {
    fn with_year_checked(self, y: i32) -> Option<Self>;
}

impl WithYear for NaiveDateTime {
    fn with_year_checked(self, y: i32) -> Option<Self> {
        use chrono::Datelike as _;
        self.with_year(y)
    }
}

fn civil_of(n: &NaiveDateTime) -> Civil {
    use chrono::{Datelike as _, Timelike as _};
    Civil {
        year: n.year(),
        month: n.month(),
        day: n.day(),
        hour: n.hour(),
        minute: n.minute(),
        second: n.second(),
        nanos: n.nanosecond(),
        frac_digits: 0,
    }
}

/// Tries the timestamp shapes log2json knows (ISO 8601/RFC 3339, BSD syslog, ctime, CLF, Unix
/// seconds or milliseconds) on the whole of `s`.
pub fn parse_any(s: &str, zone: Zone, now: i64) -> Option<Instant> {
    let s = s.trim();
    let b = s.as_bytes();
    if let Some((c, off, n)) = parse_iso(b) {
        return (n == b.len()).then(|| c.to_instant(off, zone)).flatten();
    }
    if let Some((mut c, n)) = parse_bsd(b) {
        if n == b.len() {
            c.year = infer_year(&c, zone, now);
            return c.to_instant(None, zone);
        }
    }
    if let Some((c, n)) = parse_ctime(b) {
        return (n == b.len()).then(|| c.to_instant(None, zone)).flatten();
    }
    if let Some((c, off, n)) = parse_clf(b) {
        return (n == b.len()).then(|| c.to_instant(off, zone)).flatten();
    }
    if !b.is_empty() && b.len() <= 19 && b.iter().all(u8::is_ascii_digit) {
        let v: i64 = s.parse().ok()?;
        return Some(if b.len() > 11 {
            Instant {
                secs: v.div_euclid(1000),
                nanos: (v.rem_euclid(1000) * 1_000_000) as u32,
                frac_digits: 3,
            }
        } else {
            Instant {
                secs: v,
                nanos: 0,
                frac_digits: 0,
            }
        });
    }
    None
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
