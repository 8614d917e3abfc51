//! The bulk action line of each record: always `create` with a deterministic `_id`
//! (`<fingerprint:016x>-<offset:x>`), so a record sent twice (a retry, a restart) is stored
//! once and the second answer is a 409 that counts as delivered. `create` is also the only
//! operation data streams accept.
use std::io::Write as _;

/// Encodes action lines; the index name is the pattern formatted with the record's date.
#[derive(Debug)]
pub struct ActionEncoder {
    pattern: String,
    dated: bool,
    /// (timestamp the index was computed for, index as a JSON string).
    cache: (String, String),
}

impl ActionEncoder {
    /// `pattern` is an index with strftime parts (`logs-%Y.%m.%d`) or a data stream name.
    pub fn new(pattern: &str, data_stream: bool) -> Self {
        let dated = !data_stream && pattern.contains('%');
        let fixed = if dated { String::new() } else { json(pattern) };
        ActionEncoder {
            pattern: pattern.to_string(),
            dated,
            cache: (String::new(), fixed),
        }
    }

    /// The index for a record stamped `timestamp` (`2026-11-26T15:04:05.123Z`).
    fn index(&mut self, timestamp: &str) -> &str {
        if self.dated {
            // Keyed by the second: patterns finer than that are not useful for indices.
            let key = timestamp.get(..19).unwrap_or(timestamp);
            if self.cache.0 != key {
                let name = chrono::DateTime::parse_from_rfc3339(timestamp)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or_else(|_| chrono::Utc::now())
                    .format(&self.pattern)
                    .to_string();
                self.cache = (key.to_string(), json(&name));
            }
        }
        &self.cache.1
    }

    /// Appends `{"create":{"_index":..,"_id":..}}\n`.
    pub fn encode(&mut self, out: &mut Vec<u8>, timestamp: &str, fingerprint: u64, offset: u64) {
        out.extend_from_slice(b"{\"create\":{\"_index\":");
        let index = self.index(timestamp);
        out.extend_from_slice(index.as_bytes());
        let _ = writeln!(out, ",\"_id\":\"{fingerprint:016x}-{offset:x}\"}}}}");
    }
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"logs\"".to_string())
}

/// The `_id` inside an action line, for dead-letter entries and logs.
pub fn id_of(action: &[u8]) -> &str {
    let s = std::str::from_utf8(action).unwrap_or("");
    s.split("\"_id\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
}

/// The `_index` inside an action line.
pub fn index_of(action: &[u8]) -> &str {
    let s = std::str::from_utf8(action).unwrap_or("");
    s.split("\"_index\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_index_and_deterministic_id() {
        let mut e = ActionEncoder::new("logs-%Y.%m.%d", false);
        let mut out = Vec::new();
        e.encode(&mut out, "2026-11-26T23:59:59.999Z", 0xabc, 0x10);
        e.encode(&mut out, "2026-11-27T00:00:00.000Z", 0xabc, 0x20);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"create":{"_index":"logs-2026.11.26","_id":"0000000000000abc-10"}}"#
        );
        assert_eq!(
            lines[1],
            r#"{"create":{"_index":"logs-2026.11.27","_id":"0000000000000abc-20"}}"#
        );
        assert_eq!(id_of(lines[0].as_bytes()), "0000000000000abc-10");
        assert_eq!(index_of(lines[0].as_bytes()), "logs-2026.11.26");
        let mut ds = ActionEncoder::new("logs-app-default", true);
        let mut out = Vec::new();
        ds.encode(&mut out, "2026-11-26T23:59:59.999Z", 1, 2);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains(r#""_index":"logs-app-default""#));
    }
}
