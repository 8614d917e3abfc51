//! The bulk action line of each record: always `create` with a deterministic `_id`
//! (`<fingerprint:016x>-<offset:x>`), so a record sent twice (a retry, a restart) is stored
//! once and the second answer is a 409 that counts as delivered. `create` is also the only
//! operation data streams accept.
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

    /// The index for a record stamped `timestamp` (RFC 3339: `2026-11-26T15:04:05.123Z`,
    /// `2026-11-26T16:04:05+01:00`); the date is taken in UTC.
    fn index(&mut self, timestamp: &str) -> &str {
        if self.dated && !same_second(&self.cache.0, timestamp) {
            let name = chrono::DateTime::parse_from_rfc3339(timestamp)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_else(|_| chrono::Utc::now())
                .format(&self.pattern)
                .to_string();
            self.cache = (timestamp.to_string(), json(&name));
        }
        &self.cache.1
    }

    /// Appends `{"create":{"_index":..,"_id":..}}\n`.
    pub fn encode(&mut self, out: &mut Vec<u8>, timestamp: &str, fingerprint: u64, offset: u64) {
        out.extend_from_slice(b"{\"create\":{\"_index\":");
        let index = self.index(timestamp);
        out.extend_from_slice(index.as_bytes());
        out.extend_from_slice(b",\"_id\":\"");
        push_id(out, fingerprint, offset);
        out.extend_from_slice(b"\"}}\n");
    }
}

/// True when two RFC 3339 timestamps name the same second in the same zone (they differ at
/// most in their fraction): patterns finer than a second are not useful for indices.
fn same_second(a: &str, b: &str) -> bool {
    fn split(t: &str) -> (&str, &str) {
        let (head, rest) = t.split_at(t.len().min(19));
        let zone = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
        (head, zone)
    }
    !a.is_empty() && split(a) == split(b)
}

/// `<fingerprint:016x>-<offset:x>` without the formatting machinery (it is per record).
fn push_id(out: &mut Vec<u8>, fingerprint: u64, offset: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(HEX[(fingerprint >> (shift * 4)) as usize & 15]);
    }
    out.push(b'-');
    let digits = (64 - offset.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        out.push(HEX[(offset >> (shift * 4)) as usize & 15]);
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

    #[test]
    fn the_index_date_is_utc_and_the_cache_tells_zones_apart() {
        let mut e = ActionEncoder::new("logs-%Y.%m.%d", false);
        assert_eq!(e.index("2025-01-03T00:00:01+01:00"), "\"logs-2025.01.02\"");
        assert_eq!(e.index("2025-01-03T00:00:01Z"), "\"logs-2025.01.03\"");
        assert_eq!(e.index("2025-01-03T00:00:01.5Z"), "\"logs-2025.01.03\"");
        assert!(same_second(
            "2025-01-03T00:00:01.123Z",
            "2025-01-03T00:00:01.999Z"
        ));
        let mut id = Vec::new();
        push_id(&mut id, u64::MAX, 0);
        push_id(&mut id, 1, 0xdead_beef);
        assert_eq!(id, b"ffffffffffffffff-00000000000000001-deadbeef");
        assert!(!same_second(
            "2025-01-03T00:00:01Z",
            "2025-01-03T00:00:01+01:00"
        ));
    }
}
