//! The built-in formats (and user patterns) against Loghub's ground truth: for every one of the
//! 2,000 lines of each sample, the parsed fields equal the `*_structured.csv` columns.
//!
//! Column mapping (Loghub's names are not always what they hold):
//! - Linux (syslog): `Month`+`Date`+`Time` -> `@timestamp` (year by the syslog rule, "now" fixed
//!   at 2026-11-26), `Level` (really the host) -> `host`, `Component` -> `app`, `PID` -> `pid`
//!   (absent when empty), `Content` -> `message`.
//! - Apache (apache_error): `Time` -> `@timestamp`, `Level` -> `level`, `Content` -> `message`,
//!   where log2json lifts a leading `[client 1.2.3.4]` into `client` (Loghub keeps it in Content).
//! - Hadoop (log4j): `Date`+`Time` -> `@timestamp`, `Level` -> `level`, `Process` (the thread) ->
//!   `thread`, `Component` -> `logger`, `Content` -> `message`.
//! - Android and Windows (a `--pattern` with a `timestamp` capture): `Date`+`Time` ->
//!   `@timestamp`, the other columns -> captures of the same meaning.
//!
//! Loghub trims trailing spaces off Content; log2json trims trailing whitespace off `message`.
use std::collections::HashMap;

use common::parse::{FieldType, Format, Options, Outcome, Parser, Record};
use serde_json::Value;

/// 2026-11-26T00:00:00Z.
const NOW: i64 = 1_795_651_200;

fn fixture(name: &str) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/loghub/");
    let log = std::fs::read_to_string(format!("{dir}{name}_2k.log")).unwrap();
    let csv = std::fs::read_to_string(format!("{dir}{name}_2k.log_structured.csv")).unwrap();
    let lines: Vec<String> = log.lines().map(str::to_string).collect();
    let mut rows = csv_rows(&csv);
    let header = rows.remove(0);
    let rows: Vec<HashMap<String, String>> = rows
        .into_iter()
        .map(|r| header.iter().cloned().zip(r).collect())
        .collect();
    assert_eq!(lines.len(), 2000, "{name} lines");
    assert_eq!(rows.len(), 2000, "{name} rows");
    (lines, rows)
}

/// A small RFC 4180 reader: quoted fields with `""` escapes.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn parse_all(p: &Parser, lines: &[String]) -> Vec<Value> {
    let mut rec = Record::new();
    lines
        .iter()
        .map(|l| {
            rec.begin();
            assert_eq!(
                p.parse(l, &mut rec),
                Outcome::Parsed,
                "line {l:?}: {}",
                rec.as_str()
            );
            serde_json::from_str(rec.finish()).unwrap()
        })
        .collect()
}

fn parser(format: Format, options: Options) -> Parser {
    Parser::new(
        format,
        Options {
            now: Some(NOW),
            ..options
        },
    )
    .unwrap()
}

fn month(m: &str) -> u32 {
    [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|x| *x == m)
    .unwrap() as u32
        + 1
}

/// Asserts field by field, naming the line on failure.
fn check(name: &str, i: usize, line: &str, got: &Value, expected: &[(&str, Value)]) {
    for (k, v) in expected {
        let g = got.get(*k).cloned().unwrap_or(Value::Null);
        assert_eq!(
            &g,
            v,
            "{name} line {}: field {k} of {line:?}\nrecord: {got}",
            i + 1
        );
    }
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

#[test]
fn linux_syslog_matches_ground_truth() {
    let (lines, rows) = fixture("Linux");
    let got = parse_all(&parser(Format::Syslog3164, Options::default()), &lines);
    for (i, (g, r)) in got.iter().zip(&rows).enumerate() {
        let ts = format!(
            "2026-{:02}-{:02}T{}Z",
            month(&r["Month"]),
            r["Date"].parse::<u32>().unwrap(),
            r["Time"]
        );
        let pid = if r["PID"].is_empty() {
            Value::Null
        } else {
            Value::from(r["PID"].parse::<u64>().unwrap())
        };
        check(
            "Linux",
            i,
            &lines[i],
            g,
            &[
                ("@timestamp", s(&ts)),
                ("host", s(&r["Level"])),
                ("app", s(&r["Component"])),
                ("pid", pid),
                ("message", s(&r["Content"])),
            ],
        );
    }
}

#[test]
fn apache_error_log_matches_ground_truth() {
    let (lines, rows) = fixture("Apache");
    let got = parse_all(&parser(Format::ApacheError, Options::default()), &lines);
    for (i, (g, r)) in got.iter().zip(&rows).enumerate() {
        let t: Vec<&str> = r["Time"].split(' ').collect();
        let ts = format!("{}-{:02}-{}T{}Z", t[4], month(t[1]), t[2], t[3]);
        let message = match g.get("client").and_then(Value::as_str) {
            Some(c) => format!("[client {c}] {}", g["message"].as_str().unwrap()),
            None => g["message"].as_str().unwrap().to_string(),
        };
        assert_eq!(
            message,
            r["Content"],
            "Apache line {}: {:?}",
            i + 1,
            lines[i]
        );
        check(
            "Apache",
            i,
            &lines[i],
            g,
            &[("@timestamp", s(&ts)), ("level", s(&r["Level"]))],
        );
    }
}

#[test]
fn hadoop_log4j_matches_ground_truth() {
    let (lines, rows) = fixture("Hadoop");
    let got = parse_all(&parser(Format::Log4j, Options::default()), &lines);
    for (i, (g, r)) in got.iter().zip(&rows).enumerate() {
        let ts = format!("{}T{}Z", r["Date"], r["Time"].replace(',', "."));
        check(
            "Hadoop",
            i,
            &lines[i],
            g,
            &[
                ("@timestamp", s(&ts)),
                ("level", s(&r["Level"])),
                ("thread", s(&r["Process"])),
                ("logger", s(&r["Component"])),
                ("message", s(&r["Content"])),
            ],
        );
    }
}

/// What a user would write for Android's logcat `threadtime` format.
const ANDROID_PATTERN: &str = r"^(?P<timestamp>\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\s+(?P<pid>\d+)\s+(?P<tid>\d+) (?P<level>[VDIWEFA]) (?P<component>.*?): (?P<message>.*?)\s*$";

#[test]
fn android_pattern_matches_ground_truth() {
    let (lines, rows) = fixture("Android");
    let types = HashMap::from([
        ("pid".to_string(), FieldType::Int),
        ("tid".to_string(), FieldType::Int),
    ]);
    let options = Options {
        time_format: Some("%m-%d %H:%M:%S%.3f".into()),
        types,
        ..Options::default()
    };
    let got = parse_all(
        &parser(Format::Regex(ANDROID_PATTERN.into()), options),
        &lines,
    );
    for (i, (g, r)) in got.iter().zip(&rows).enumerate() {
        // Logcat has no year: the syslog year rule gives 2026 for March with "now" in November.
        let ts = format!("2026-{}T{}Z", r["Date"], r["Time"]);
        check(
            "Android",
            i,
            &lines[i],
            g,
            &[
                ("@timestamp", s(&ts)),
                ("pid", Value::from(r["Pid"].parse::<i64>().unwrap())),
                ("tid", Value::from(r["Tid"].parse::<i64>().unwrap())),
                ("level", s(&r["Level"])),
                ("component", s(&r["Component"])),
                ("message", s(&r["Content"])),
            ],
        );
    }
}

/// What a user would write for the Windows CBS log.
const WINDOWS_PATTERN: &str = r"^(?P<timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d), (?P<level>\w+)\s+(?P<component>\w+)\s+(?P<message>.*?)\s*$";

#[test]
fn windows_pattern_matches_ground_truth() {
    let (lines, rows) = fixture("Windows");
    let got = parse_all(
        &parser(Format::Regex(WINDOWS_PATTERN.into()), Options::default()),
        &lines,
    );
    for (i, (g, r)) in got.iter().zip(&rows).enumerate() {
        let ts = format!("{}T{}Z", r["Date"], r["Time"]);
        check(
            "Windows",
            i,
            &lines[i],
            g,
            &[
                ("@timestamp", s(&ts)),
                ("level", s(&r["Level"])),
                ("component", s(&r["Component"])),
                ("message", s(&r["Content"])),
            ],
        );
    }
}

#[test]
fn wrong_format_never_drops_a_line() {
    // Hadoop lines read as syslog: every line comes out, with its raw text and parse_error.
    let (lines, _) = fixture("Hadoop");
    let p = parser(Format::Syslog3164, Options::default());
    let mut rec = Record::new();
    for l in &lines {
        rec.begin();
        assert!(matches!(p.parse(l, &mut rec), Outcome::Failed(_)));
        let v: Value = serde_json::from_str(rec.finish()).unwrap();
        assert_eq!(v["message"], s(l));
        assert!(v["parse_error"].is_string());
    }
}
