//! The straightforward implementation the benchmark compares against: one regex with named
//! captures per line, a `serde_json::Map` per record, chrono for the timestamp.
//!
//! Usage: `naive_regex nginx|syslog < input > output`.
use std::io::{BufRead, BufWriter, Write};

use serde_json::{Map, Value};

fn main() -> std::io::Result<()> {
    let kind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "nginx".to_string());
    let (re, time_fmt) = match kind.as_str() {
        "nginx" => (
            r#"^(?P<remote_addr>\S+) (?P<ident>\S+) (?P<remote_user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>[^"]+)" (?P<status>\d{3}) (?P<size>\d+|-)(?: "(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)")?"#,
            "%d/%b/%Y:%H:%M:%S %z",
        ),
        _ => (
            r"^(?P<time>\w{3} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) (?P<app>[^\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<message>.*)$",
            "%Y %b %e %H:%M:%S",
        ),
    };
    let re = regex::Regex::new(re).expect("regex");
    let names: Vec<&str> = re.capture_names().flatten().collect();
    let stdin = std::io::stdin();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line?;
        let mut m = Map::new();
        match re.captures(&line) {
            Some(c) => {
                for n in &names {
                    let Some(v) = c.name(n) else { continue };
                    let v = v.as_str();
                    let value = match *n {
                        "status" | "size" | "pid" => {
                            v.parse::<u64>().map(Value::from).unwrap_or(Value::from(0))
                        }
                        "time" => {
                            let t = if kind == "nginx" {
                                chrono::DateTime::parse_from_str(v, time_fmt).map(|t| t.to_utc())
                            } else {
                                chrono::NaiveDateTime::parse_from_str(
                                    &format!("2024 {v}"),
                                    time_fmt,
                                )
                                .map(|t| t.and_utc())
                            };
                            match t {
                                Ok(t) => {
                                    m.insert(
                                        "@timestamp".into(),
                                        Value::from(
                                            t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                                        ),
                                    );
                                    continue;
                                }
                                Err(_) => Value::from(v),
                            }
                        }
                        _ => Value::from(v),
                    };
                    m.insert((*n).to_string(), value);
                }
            }
            None => {
                m.insert("message".into(), Value::from(line.as_str()));
                m.insert("parse_error".into(), Value::from("no match"));
            }
        }
        serde_json::to_writer(&mut out, &Value::Object(m))?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
