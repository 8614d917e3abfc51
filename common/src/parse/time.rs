//! Timestamps: the hand-written readers of the formats' timestamps, the conversion of a local
//! civil time in a zone to UTC, the syslog year rule, and the RFC 3339 UTC writer.
//!
//! # The syslog year rule
//! A BSD syslog timestamp (`Jun 14 15:16:01`) has neither year nor zone. It is read in the
//! configured zone (`--timezone`, UTC by default) and given the current year *in that zone*;
//! if that puts it more than 31 days in the future it is from last year (a December line read in
//! January). Symmetrically, a January line read in December is given next year (a sender whose
//! clock is slightly ahead at New Year). The same rule applies to `--time-format` formats
//! without a year.
use chrono::{DateTime, NaiveDate, NaiveDateTime, Offset, TimeZone as _};

pub use super::strftime::{now_secs, parse_any, TimeFormat};

/// The zone for timestamps that carry no offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    /// UTC (the default).
    #[default]
    Utc,
    /// A fixed offset east of UTC, in seconds.
    Fixed(i32),
    /// An IANA zone (`Europe/Berlin`), daylight saving included.
    Named(chrono_tz::Tz),
}

impl std::str::FromStr for Zone {
    type Err = String;
    /// `UTC`, `Z`, `+02:00`, `-0500`, or an IANA name such as `Europe/Berlin`.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("utc") || t == "Z" || t.is_empty() {
            return Ok(Zone::Utc);
        }
        if let Some(off) = parse_offset(t.as_bytes()) {
            return Ok(if off == 0 {
                Zone::Utc
            } else {
                Zone::Fixed(off)
            });
        }
        t.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
            "expected UTC, an offset such as +02:00, or an IANA zone such as Europe/Berlin"
                .to_string()
        })
    }
}

/// A civil (wall clock) date and time as written in a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Civil {
    /// Year.
    pub year: i32,
    /// 1-12.
    pub month: u32,
    /// 1-31.
    pub day: u32,
    /// 0-23.
    pub hour: u32,
    /// 0-59.
    pub minute: u32,
    /// 0-60.
    pub second: u32,
    /// Fraction of the second in nanoseconds.
    pub nanos: u32,
    /// How many fraction digits the input had (kept on output, at most 9).
    pub frac_digits: u8,
}

/// An instant in UTC with the precision to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instant {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds.
    pub nanos: u32,
    /// Fraction digits to print (0, 3, 6 or 9 after rounding up the input's count).
    pub frac_digits: u8,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((y + i64::from(m <= 2)) as i32, m, d)
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

impl Civil {
    /// True when every part is in range.
    pub fn is_valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second <= 60
    }

    fn epoch_secs_as_utc(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second.min(59))
    }

    fn naive(&self) -> Option<NaiveDateTime> {
        NaiveDate::from_ymd_opt(self.year, self.month, self.day)?.and_hms_nano_opt(
            self.hour,
            self.minute,
            self.second.min(59),
            self.nanos,
        )
    }

    /// This wall-clock time at `offset` seconds east of UTC, or in `zone` when `None`.
    pub fn to_instant(&self, offset: Option<i32>, zone: Zone) -> Option<Instant> {
        if !self.is_valid() {
            return None;
        }
        let local = self.epoch_secs_as_utc();
        let off = match (offset, zone) {
            (Some(o), _) => o,
            (None, Zone::Utc) => 0,
            (None, Zone::Fixed(o)) => o,
            (None, Zone::Named(tz)) => {
                let naive = self.naive()?;
                match tz.offset_from_local_datetime(&naive) {
                    chrono::LocalResult::Single(o) => o.fix().local_minus_utc(),
                    chrono::LocalResult::Ambiguous(o, _) => o.fix().local_minus_utc(),
                    // In a spring-forward gap: the offset in force just before it.
                    chrono::LocalResult::None => {
                        tz.offset_from_utc_datetime(&naive).fix().local_minus_utc()
                    }
                }
            }
        };
        let digits = match self.frac_digits {
            0 => 0,
            1..=3 => 3,
            4..=6 => 6,
            _ => 9,
        };
        Some(Instant {
            secs: local - i64::from(off),
            nanos: self.nanos,
            frac_digits: digits,
        })
    }
}

/// The offset of `zone` at the instant `secs`.
fn offset_at(zone: Zone, secs: i64) -> i32 {
    match zone {
        Zone::Utc => 0,
        Zone::Fixed(o) => o,
        Zone::Named(tz) => DateTime::from_timestamp(secs, 0)
            .map(|d| {
                tz.offset_from_utc_datetime(&d.naive_utc())
                    .fix()
                    .local_minus_utc()
            })
            .unwrap_or(0),
    }
}

/// The year for a timestamp without one (see the module doc), `now` in seconds since the epoch.
pub fn infer_year(c: &Civil, zone: Zone, now: i64) -> i32 {
    let now_local = now + i64::from(offset_at(zone, now));
    let (ny, nm, _) = civil_from_days(now_local.div_euclid(86_400));
    let mut probe = Civil { year: ny, ..*c };
    if c.month == 2 && c.day == 29 && days_in_month(ny, 2) == 28 {
        // Feb 29 only exists in leap years: take the nearest past one that fits the rule.
        probe.year = ny - 1;
        while days_in_month(probe.year, 2) == 28 {
            probe.year -= 1;
        }
        return probe.year;
    }
    let t = probe.epoch_secs_as_utc();
    if t > now_local + 31 * 86_400 {
        ny - 1
    } else if nm == 12 && c.month == 1 {
        ny + 1
    } else {
        ny
    }
}

/// Writes `t` as RFC 3339 UTC: `2024-01-02T03:04:05.678Z`.
pub fn write_rfc3339(out: &mut String, t: Instant) {
    let days = t.secs.div_euclid(86_400);
    let sod = t.secs.rem_euclid(86_400) as u32;
    let (y, mo, d) = civil_from_days(days);
    let mut b = [0u8; 32];
    let mut n = 0;
    let put2 = |b: &mut [u8; 32], n: &mut usize, v: u32| {
        b[*n] = b'0' + (v / 10) as u8;
        b[*n + 1] = b'0' + (v % 10) as u8;
        *n += 2;
    };
    if (0..=9999).contains(&y) {
        let y = y as u32;
        put2(&mut b, &mut n, y / 100);
        put2(&mut b, &mut n, y % 100);
    } else {
        // Out of RFC 3339 range: write what we have; rare enough not to matter for speed.
        out.push_str(&format!("{y:04}"));
    }
    b[n] = b'-';
    n += 1;
    put2(&mut b, &mut n, mo);
    b[n] = b'-';
    n += 1;
    put2(&mut b, &mut n, d);
    b[n] = b'T';
    n += 1;
    put2(&mut b, &mut n, sod / 3600);
    b[n] = b':';
    n += 1;
    put2(&mut b, &mut n, sod / 60 % 60);
    b[n] = b':';
    n += 1;
    put2(&mut b, &mut n, sod % 60);
    if t.frac_digits > 0 {
        b[n] = b'.';
        n += 1;
        let mut div = 100_000_000;
        for _ in 0..t.frac_digits.min(9) {
            b[n] = b'0' + (t.nanos / div % 10) as u8;
            n += 1;
            div /= 10;
        }
    }
    b[n] = b'Z';
    n += 1;
    // The bytes are ASCII digits and punctuation.
    out.push_str(std::str::from_utf8(&b[..n]).unwrap_or_default());
}

/// `Jan`..`Dec` (case-insensitive) to 1..12.
pub fn month_abbr(b: &[u8]) -> Option<u32> {
    if b.len() != 3 {
        return None;
    }
    let k = [
        b[0].to_ascii_lowercase(),
        b[1].to_ascii_lowercase(),
        b[2].to_ascii_lowercase(),
    ];
    Some(match &k {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

/// Reads exactly `n` ASCII digits at `b[i..]`.
pub fn digits(b: &[u8], i: usize, n: usize) -> Option<u32> {
    let s = b.get(i..i + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Reads `.123` / `,123456789` at `b[i..]`: (nanos, digits, bytes consumed). No fraction = 0s.
pub fn fraction(b: &[u8], i: usize) -> (u32, u8, usize) {
    if !matches!(b.get(i), Some(b'.') | Some(b',')) {
        return (0, 0, 0);
    }
    let mut j = i + 1;
    let mut nanos = 0u32;
    let mut nd = 0u8;
    while let Some(&c) = b.get(j) {
        if !c.is_ascii_digit() {
            break;
        }
        if nd < 9 {
            nanos = nanos * 10 + u32::from(c - b'0');
            nd += 1;
        }
        j += 1;
    }
    if j == i + 1 {
        return (0, 0, 0);
    }
    let mut scaled = nanos;
    for _ in nd..9 {
        scaled *= 10;
    }
    (scaled, nd, j - i)
}

/// `Z`, `+02:00`, `+0200`, `-05`: seconds east of UTC.
pub fn parse_offset(b: &[u8]) -> Option<i32> {
    if b == b"Z" || b == b"z" {
        return Some(0);
    }
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h = digits(b, 1, 2)?;
    let m = match b.len() {
        3 => 0,
        5 => digits(b, 3, 2)?,
        6 if b[3] == b':' => digits(b, 4, 2)?,
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h as i32 * 3600 + m as i32 * 60))
}

/// `2024-01-02T03:04:05[.fff][Z|+hh:mm]`, also with a space or `,` fraction (log4j):
/// returns the civil time, its offset if written, and the bytes consumed.
pub fn parse_iso(b: &[u8]) -> Option<(Civil, Option<i32>, usize)> {
    let year = digits(b, 0, 4)? as i32;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    if !matches!(b.get(10), Some(b'T') | Some(b' ') | Some(b't')) {
        return None;
    }
    let mut c = Civil {
        year,
        month: digits(b, 5, 2)?,
        day: digits(b, 8, 2)?,
        hour: digits(b, 11, 2)?,
        minute: digits(b, 14, 2)?,
        second: digits(b, 17, 2)?,
        ..Civil::default()
    };
    let (nanos, nd, used) = fraction(b, 19);
    c.nanos = nanos;
    c.frac_digits = nd;
    let mut i = 19 + used;
    let mut offset = None;
    match b.get(i) {
        Some(b'Z') | Some(b'z') => {
            offset = Some(0);
            i += 1;
        }
        Some(b'+') | Some(b'-') => {
            let end = (i + 1..b.len().min(i + 7))
                .find(|&j| !(b[j].is_ascii_digit() || b[j] == b':'))
                .unwrap_or(b.len().min(i + 7));
            if let Some(o) = parse_offset(&b[i..end]) {
                offset = Some(o);
                i = end;
            }
        }
        _ => {}
    }
    c.is_valid().then_some((c, offset, i))
}

/// `Jun 14 15:16:01` or `Jun  4 15:16:01` (15 bytes; a fraction may follow): civil time with
/// year 0 and the bytes consumed.
pub fn parse_bsd(b: &[u8]) -> Option<(Civil, usize)> {
    let month = month_abbr(b.get(0..3)?)?;
    if b.get(3) != Some(&b' ') {
        return None;
    }
    let day = match (b.get(4)?, b.get(5)?) {
        (b' ', d) if d.is_ascii_digit() => u32::from(d - b'0'),
        (a, d) if a.is_ascii_digit() && d.is_ascii_digit() => {
            u32::from(a - b'0') * 10 + u32::from(d - b'0')
        }
        _ => return None,
    };
    if b.get(6) != Some(&b' ') || b.get(9) != Some(&b':') || b.get(12) != Some(&b':') {
        return None;
    }
    let (nanos, nd, used) = fraction(b, 15);
    let c = Civil {
        year: 2000, // leap year: Feb 29 validates; the caller sets the real year.
        month,
        day,
        hour: digits(b, 7, 2)?,
        minute: digits(b, 10, 2)?,
        second: digits(b, 13, 2)?,
        nanos,
        frac_digits: nd,
    };
    c.is_valid().then_some((c, 15 + used))
}

/// `Sun Dec 04 04:47:44 2005` or `Wed Oct 11 14:32:52.123456 2000` (Apache error log).
pub fn parse_ctime(b: &[u8]) -> Option<(Civil, usize)> {
    if b.get(3) != Some(&b' ') {
        return None;
    }
    let (mut c, used) = parse_bsd(&b[4..])?;
    let i = 4 + used;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    c.year = digits(b, i + 1, 4)? as i32;
    c.is_valid().then_some((c, i + 5))
}

/// `10/Oct/2000:13:55:36 -0700` (common/combined access logs).
pub fn parse_clf(b: &[u8]) -> Option<(Civil, Option<i32>, usize)> {
    if b.get(2) != Some(&b'/') || b.get(6) != Some(&b'/') || b.get(11) != Some(&b':') {
        return None;
    }
    let c = Civil {
        day: digits(b, 0, 2)?,
        month: month_abbr(b.get(3..6)?)?,
        year: digits(b, 7, 4)? as i32,
        hour: digits(b, 12, 2)?,
        minute: digits(b, 15, 2)?,
        second: digits(b, 18, 2)?,
        ..Civil::default()
    };
    if b.get(14) != Some(&b':') || b.get(17) != Some(&b':') || !c.is_valid() {
        return None;
    }
    if b.get(20) == Some(&b' ') {
        if let Some(o) = b.get(21..26).and_then(parse_offset) {
            return Some((c, Some(o), 26));
        }
    }
    Some((c, None, 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(t: Instant) -> String {
        let mut s = String::new();
        write_rfc3339(&mut s, t);
        s
    }

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    #[test]
    fn civil_round_trip_matches_chrono() {
        for days in [-800_000i64, -1, 0, 1, 10_957, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let c = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(
                c.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
                    .num_days(),
                days
            );
        }
    }

    #[test]
    fn iso_and_offsets() {
        let (c, off, n) = parse_iso(b"2024-01-01T00:00:00.000000000Z stdout").unwrap();
        assert_eq!((off, n), (Some(0), 30));
        assert_eq!(
            rfc(c.to_instant(off, Zone::Utc).unwrap()),
            "2024-01-01T00:00:00.000000000Z"
        );
        let (c, off, _) = parse_iso(b"2015-10-18 18:01:47,978 INFO").unwrap();
        assert_eq!(off, None);
        let berlin: Zone = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            rfc(c.to_instant(None, berlin).unwrap()),
            "2015-10-18T16:01:47.978Z"
        );
        assert_eq!(
            rfc(c.to_instant(None, "+05:30".parse().unwrap()).unwrap()),
            "2015-10-18T12:31:47.978Z"
        );
        let (c, off, _) = parse_iso(b"2003-10-11T22:14:15.003-07:00").unwrap();
        assert_eq!(
            rfc(c.to_instant(off, Zone::Utc).unwrap()),
            "2003-10-12T05:14:15.003Z"
        );
        assert!(parse_iso(b"2024-02-30T00:00:00Z").is_none());
        assert!("Mars/Olympus".parse::<Zone>().is_err());
    }

    #[test]
    fn new_year_rule() {
        let (mut c, _) = parse_bsd(b"Dec 31 23:59:58").unwrap();
        // Read on Jan 1st: last year.
        c.year = infer_year(&c, Zone::Utc, at("2027-01-01T00:00:05Z"));
        assert_eq!(c.year, 2026);
        // Read on Dec 31st: this year.
        assert_eq!(infer_year(&c, Zone::Utc, at("2026-12-31T23:59:59Z")), 2026);
        // A January line read on Dec 31st (sender clock ahead): next year.
        let (j, _) = parse_bsd(b"Jan  1 00:00:01").unwrap();
        assert_eq!(infer_year(&j, Zone::Utc, at("2026-12-31T23:59:59Z")), 2027);
        // A few days in the future is still this year (clock skew); months ahead is last year.
        let (jun, _) = parse_bsd(b"Jun 20 10:00:00").unwrap();
        assert_eq!(
            infer_year(&jun, Zone::Utc, at("2026-06-14T00:00:00Z")),
            2026
        );
        assert_eq!(
            infer_year(&jun, Zone::Utc, at("2026-03-01T00:00:00Z")),
            2025
        );
        // The zone decides what "this year" is: 23:30 UTC on Dec 31 is already Jan 1 in Berlin.
        let berlin: Zone = "Europe/Berlin".parse().unwrap();
        assert_eq!(infer_year(&j, berlin, at("2026-12-31T23:30:00Z")), 2027);
        let (feb29, _) = parse_bsd(b"Feb 29 12:00:00").unwrap();
        assert_eq!(
            infer_year(&feb29, Zone::Utc, at("2027-03-01T00:00:00Z")),
            2024
        );
    }

    #[test]
    fn other_shapes() {
        let (c, n) = parse_ctime(b"Sun Dec 04 04:47:44 2005] [notice]").unwrap();
        assert_eq!(n, 24);
        assert_eq!(
            rfc(c.to_instant(None, Zone::Utc).unwrap()),
            "2005-12-04T04:47:44Z"
        );
        let (c, off, n) = parse_clf(b"10/Oct/2000:13:55:36 -0700]").unwrap();
        assert_eq!(n, 26);
        assert_eq!(
            rfc(c.to_instant(off, Zone::Utc).unwrap()),
            "2000-10-10T20:55:36Z"
        );
        let now = at("2026-11-26T00:00:00Z");
        assert_eq!(
            rfc(parse_any("1700000000123", Zone::Utc, now).unwrap()),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            rfc(parse_any("Jun  4 01:02:03", Zone::Utc, now).unwrap()),
            "2026-06-04T01:02:03Z"
        );
        let f = TimeFormat::new("%m-%d %H:%M:%S%.3f").unwrap();
        assert_eq!(
            rfc(f.parse("03-17 16:13:38.811", Zone::Utc, now).unwrap()),
            "2026-03-17T16:13:38.811Z"
        );
        let f = TimeFormat::new("%d.%m.%Y %H:%M:%S %z").unwrap();
        assert_eq!(
            rfc(f
                .parse("01.02.2024 10:00:00 +0100", Zone::Utc, now)
                .unwrap()),
            "2024-02-01T09:00:00Z"
        );
        let f = TimeFormat::new("%Y/%m/%d").unwrap();
        assert_eq!(
            rfc(f.parse("2024/02/01", Zone::Utc, now).unwrap()),
            "2024-02-01T00:00:00Z"
        );
    }
}
