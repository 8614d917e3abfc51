//! The record shape: how one line of a file becomes one JSON document (ECS field names).
//!
//! ```json
//! {"@timestamp":"2026-11-26T15:04:05.123Z",
//!  "message":"GET /healthz 200",
//!  "log":{"file":{"path":"/var/log/app/app.log"},"offset":1234,"flags":["truncated"]},
//!  "kubernetes":{"pod":{"name":"web-0"}}}
//! ```
//!
//! - `@timestamp`: when logship read the line (UTC, milliseconds); with `--parse`, the line's
//!   own timestamp when the format has one.
//! - `message`: the line without its newline. Invalid UTF-8 bytes are replaced with U+FFFD.
//! - `log.file.path`: the file's path when the line was read (after a rename, the new path).
//! - `log.offset`: byte offset of the line in the file (with the file's fingerprint, the
//!   document `_id`: `<fingerprint:016x>-<offset:x>`).
//! - `log.flags`: present only when something is special: `truncated` (a piece of a line
//!   longer than `--max-line-bytes`), `partial` (no newline arrived before
//!   `--partial-line-timeout`), `invalid_utf8` (bytes were replaced).
//! - static fields from `--field key.sub=value`, nested by their dots.
//! - with `--parse FORMAT`, the fields log2json's format extracts, at the root (`message` is
//!   then the format's message part, or the whole line for formats without one such as access
//!   logs; a line that does not parse keeps the raw line in `message` and gets `parse_error`).
//!   The index date (`logs-%Y.%m.%d`) follows `@timestamp`: the line's own time when it was
//!   parsed, else the read time.
//! - with `--multiline-*`, one record per group of lines: `message` holds the lines joined
//!   with `\n`, `log.offset` is the group's first line, and the flags of any of its lines.
use common::tail::Line;

use crate::{config::ParseSpec, Error};

/// Encodes lines into JSON documents.
#[derive(Debug)]
pub struct RecordEncoder {
    /// The static fields, pre-rendered as `,"k":{...}` (empty when none).
    statics: String,
    parser: Option<crate::parse::LineParser>,
    /// A parsed record's `log` object, rebuilt per record in place.
    log: String,
}

impl RecordEncoder {
    /// An encoder adding `fields` (dotted key, value) to every record.
    pub fn new(fields: &[(String, String)], parse: Option<&ParseSpec>) -> Result<Self, Error> {
        let mut root = serde_json::Map::new();
        for (k, v) in fields {
            let mut obj = &mut root;
            let parts: Vec<&str> = k.split('.').collect();
            for p in &parts[..parts.len() - 1] {
                let entry = obj
                    .entry(p.to_string())
                    .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
                if !entry.is_object() {
                    *entry = serde_json::Value::Object(serde_json::Map::new());
                }
                obj = entry.as_object_mut().expect("just made an object");
            }
            obj.insert(
                parts[parts.len() - 1].to_string(),
                serde_json::Value::String(v.clone()),
            );
        }
        let mut statics = String::new();
        for (k, v) in &root {
            statics.push(',');
            statics.push_str(&serde_json::to_string(k).unwrap_or_default());
            statics.push(':');
            statics.push_str(&v.to_string());
        }
        let parser = parse.map(crate::parse::LineParser::new).transpose()?;
        Ok(RecordEncoder {
            statics,
            parser,
            log: String::new(),
        })
    }

    /// True when lines are parsed (documents may carry their own `@timestamp`).
    pub fn parses(&self) -> bool {
        self.parser.is_some()
    }

    /// Appends the document for `line` (no trailing newline) to `out`. `timestamp` is the
    /// read time, already formatted; `path_json` the file path as a JSON string (quoted).
    pub fn encode(&mut self, out: &mut Vec<u8>, timestamp: &str, path_json: &str, line: &Line) {
        if self.parser.is_some() {
            self.encode_parsed(out, timestamp, path_json, line);
            return;
        }
        out.extend_from_slice(b"{\"@timestamp\":\"");
        out.extend_from_slice(timestamp.as_bytes());
        out.extend_from_slice(b"\",\"message\":");
        write_json_str(out, &line.text);
        out.extend_from_slice(b",\"log\":");
        write_log(out, path_json, line);
        out.extend_from_slice(self.statics.as_bytes());
        out.push(b'}');
    }

    fn encode_parsed(&mut self, out: &mut Vec<u8>, timestamp: &str, path_json: &str, line: &Line) {
        self.log.clear();
        write_log(&mut self.log, path_json, line);
        let Some(parser) = self.parser.as_mut() else {
            return;
        };
        let (rec, _parsed) = parser.parse(&line.text);
        if !rec.as_str().contains("\"@timestamp\":") {
            rec.str("@timestamp", timestamp);
        }
        // Every record has a `message` (ECS): formats without a message part (access logs)
        // keep the line itself there.
        if !rec.as_str().contains("\"message\":") {
            rec.str("message", &line.text);
        }
        rec.raw("log", &self.log);
        if self.statics.len() > 1 {
            rec.members(&self.statics[1..]);
        }
        out.extend_from_slice(rec.finish().as_bytes());
    }
}

/// The `@timestamp` value of an encoded document (the first one at its top level, which is
/// where the encoders put it), for the index date.
pub fn timestamp_of(doc: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"{\"@timestamp\":\"";
    // Parsed records open with the format's fields; search the whole document.
    let start = if doc.starts_with(KEY) {
        KEY.len()
    } else {
        memchr_find(doc, &KEY[1..])? + KEY.len() - 1
    };
    let len = doc[start..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&doc[start..start + len]).ok()
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// What records are written into: a batch buffer, or a parsed record's text.
trait Out {
    fn put(&mut self, s: &str);
}

impl Out for Vec<u8> {
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

impl Out for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

/// `{"file":{"path":..},"offset":..,"flags":[..]}`
fn write_log(out: &mut impl Out, path_json: &str, line: &Line) {
    out.put("{\"file\":{\"path\":");
    out.put(path_json);
    out.put("},\"offset\":");
    let mut digits = [0u8; 20];
    out.put(decimal(line.offset, &mut digits));
    if line.truncated || line.partial || line.invalid_utf8 {
        out.put(",\"flags\":[");
        let mut first = true;
        for (on, name) in [
            (line.truncated, "\"truncated\""),
            (line.partial, "\"partial\""),
            (line.invalid_utf8, "\"invalid_utf8\""),
        ] {
            if on {
                if !first {
                    out.put(",");
                }
                first = false;
                out.put(name);
            }
        }
        out.put("]");
    }
    out.put("}");
}

/// `n` in decimal, written into `digits` (per record: no formatting machinery).
fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &str {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&digits[i..]).unwrap_or("0")
}

/// Writes `s` as a JSON string.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // common's escaper: eight bytes checked at once, bulk copies between escapes.
    out.push(b'"');
    common::parse::escape_into_bytes(out, s);
    out.push(b'"');
}

/// The current time as `@timestamp` text: `2026-11-26T15:04:05.123Z`.
pub fn now_timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, offset: u64) -> Line {
        Line {
            offset,
            text: text.to_string(),
            invalid_utf8: false,
            truncated: false,
            partial: false,
        }
    }

    #[test]
    fn shape_is_ecs_with_nested_static_fields() {
        let mut enc = RecordEncoder::new(
            &[
                ("kubernetes.pod.name".into(), "web-0".into()),
                ("kubernetes.namespace".into(), "prod".into()),
                ("service".into(), "shop".into()),
            ],
            None,
        )
        .unwrap();
        let mut out = Vec::new();
        let mut l = line("say \"hi\"\t\u{1}", 42);
        l.truncated = true;
        l.invalid_utf8 = true;
        enc.encode(
            &mut out,
            "2026-01-02T03:04:05.006Z",
            "\"/var/log/a.log\"",
            &l,
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["@timestamp"], "2026-01-02T03:04:05.006Z");
        assert_eq!(v["message"], "say \"hi\"\t\u{1}");
        assert_eq!(v["log"]["file"]["path"], "/var/log/a.log");
        assert_eq!(v["log"]["offset"], 42);
        assert_eq!(
            v["log"]["flags"],
            serde_json::json!(["truncated", "invalid_utf8"])
        );
        assert_eq!(v["kubernetes"]["pod"]["name"], "web-0");
        assert_eq!(v["kubernetes"]["namespace"], "prod");
        assert_eq!(v["service"], "shop");
        let mut plain = Vec::new();
        enc.encode(&mut plain, "t", "\"p\"", &line("x", 0));
        let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert!(v["log"].get("flags").is_none());
        for n in [0, 7, 10, 1234, u64::MAX] {
            assert_eq!(decimal(n, &mut [0; 20]), n.to_string());
        }
    }
}
