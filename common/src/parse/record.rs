//! [`Record`]: the reusable JSON object writer every format writes its fields into, with the
//! fast JSON string escaping of the hot path (no `serde_json::Value` per line).
use std::fmt::Write as _;

/// A JSON object being written into a reusable buffer.
///
/// Call [`Record::begin`], add fields (the parser adds its own; the caller may add static ones
/// before or after), then [`Record::finish`] and read [`Record::as_str`]. Keys are written as
/// given: a key written twice appears twice (JSON readers keep the last).
#[derive(Debug, Clone, Default)]
pub struct Record {
    buf: String,
    empty: bool,
}

/// A position in a [`Record`] to [`Record::rewind`] to (drops the fields written since).
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    len: usize,
    empty: bool,
}

impl Record {
    /// An empty writer; the buffer grows to the largest record and is then reused.
    pub fn new() -> Self {
        Record {
            buf: String::with_capacity(512),
            empty: true,
        }
    }

    /// Starts a new object (forgets the previous one).
    pub fn begin(&mut self) {
        self.buf.clear();
        self.buf.push('{');
        self.empty = true;
    }

    /// Closes the object; returns the JSON text (no newline).
    pub fn finish(&mut self) -> &str {
        self.buf.push('}');
        &self.buf
    }

    /// The text written so far (a complete object after [`Record::finish`]).
    pub fn as_str(&self) -> &str {
        &self.buf
    }

    /// True when no field has been written since [`Record::begin`].
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// The current position.
    pub fn mark(&self) -> Mark {
        Mark {
            len: self.buf.len(),
            empty: self.empty,
        }
    }

    /// Drops every field written after `mark`.
    pub fn rewind(&mut self, mark: Mark) {
        self.buf.truncate(mark.len);
        self.empty = mark.empty;
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.buf.push(',');
        }
        self.empty = false;
        self.buf.push('"');
        escape_into(&mut self.buf, key);
        self.buf.push_str("\":");
    }

    /// A string field.
    pub fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.buf.push('"');
        escape_into(&mut self.buf, value);
        self.buf.push('"');
    }

    /// An integer field.
    pub fn int(&mut self, key: &str, value: i64) {
        self.key(key);
        let _ = write!(self.buf, "{value}");
    }

    /// An unsigned integer field.
    pub fn uint(&mut self, key: &str, value: u64) {
        self.key(key);
        let _ = write!(self.buf, "{value}");
    }

    /// A floating-point field (`null` when not finite).
    pub fn float(&mut self, key: &str, value: f64) {
        self.key(key);
        if value.is_finite() {
            let _ = write!(self.buf, "{value}");
        } else {
            self.buf.push_str("null");
        }
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.buf.push_str(if value { "true" } else { "false" });
    }

    /// A field whose value is already valid JSON text (not checked).
    pub fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.buf.push_str(json);
    }

    /// Starts a nested object field; close it with [`Record::end_object`].
    pub fn begin_object(&mut self, key: &str) {
        self.key(key);
        self.buf.push('{');
        self.empty = true;
    }

    /// Closes the nested object opened by [`Record::begin_object`].
    pub fn end_object(&mut self) {
        self.buf.push('}');
        self.empty = false;
    }

    /// Appends already-encoded members (`"a":1,"b":"x"`, without braces; not checked).
    pub fn members(&mut self, json_members: &str) {
        let m = json_members.trim();
        if m.is_empty() {
            return;
        }
        if !self.empty {
            self.buf.push(',');
        }
        self.empty = false;
        self.buf.push_str(m);
    }

    /// Access to the buffer for writers in this module tree (timestamps).
    pub(crate) fn value_buf(&mut self, key: &str) -> &mut String {
        self.key(key);
        &mut self.buf
    }
}

/// 0 = copy as is; b'u' = \u00XX; other = the letter after a backslash.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Appends `s` escaped as the inside of a JSON string (quotes not added). Copies runs of plain
/// bytes at once; only `"`, `\` and control characters are escaped (UTF-8 passes through).
pub fn escape_into(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let mut start = 0;
    while let Some(i) = next_escape(b, start) {
        // `i` is an ASCII byte, so both slices end on character boundaries.
        out.push_str(&s[start..i]);
        match ESCAPE[b[i] as usize] {
            b'u' => {
                let [x, y] = hex(b[i]);
                out.push_str("\\u00");
                out.push(x as char);
                out.push(y as char);
            }
            e => {
                out.push('\\');
                out.push(e as char);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// [`escape_into`] for a byte buffer (the same escaping, as serde_json does it).
pub fn escape_into_bytes(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let mut start = 0;
    while let Some(i) = next_escape(b, start) {
        out.extend_from_slice(&b[start..i]);
        match ESCAPE[b[i] as usize] {
            b'u' => {
                let [x, y] = hex(b[i]);
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', x, y]);
            }
            e => out.extend_from_slice(&[b'\\', e]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

/// The two hex digits of a byte.
fn hex(b: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]
}

/// The index of the first byte at or after `from` that needs escaping. Eight bytes at a time
/// (log lines rarely hold any): a word has one when a byte is below 0x20, `"` or `\`, found
/// with the classic "has a zero byte" bit trick. Its false positives only ever sit above a true
/// match, so the lowest flagged byte is the first one to escape.
#[inline]
fn next_escape(b: &[u8], from: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w);
        let hits = (x.wrapping_sub(LO * 0x20) & !x & HI)
            | zero(x ^ (LO * u64::from(b'"')))
            | zero(x ^ (LO * u64::from(b'\\')));
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    (i..b.len()).find(|&j| ESCAPE[b[j] as usize] != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "tab\there\n",
            "\u{1}\u{1f}",
            "é ü 日本",
            "",
        ] {
            let mut out = String::new();
            out.push('"');
            escape_into(&mut out, s);
            out.push('"');
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn escapes_every_special_byte_at_every_position_of_a_word() {
        // Eight bytes are checked at once: each special byte at each offset within and across
        // words, next to multi-byte characters (bytes >= 0x80 must not count as specials).
        let specials = [
            '"', '\\', '\n', '\u{0}', '\u{1f}', '\t', '\u{7f}', 'é', '日',
        ];
        for c in specials {
            for pos in 0..20 {
                let mut s: String = "aé€bcdefghijklmnopq".chars().take(pos).collect();
                s.push(c);
                s.push_str("xyzé\u{1}ww\"tail long enough for two words");
                let mut out = String::new();
                escape_into(&mut out, &s);
                let want = serde_json::to_string(&s).unwrap();
                assert_eq!(format!("\"{out}\""), want, "{s:?}");
                let mut bytes = Vec::new();
                escape_into_bytes(&mut bytes, &s);
                assert_eq!(bytes, out.as_bytes());
            }
        }
    }

    #[test]
    fn writes_objects_and_rewinds() {
        let mut r = Record::new();
        r.begin();
        r.str("a", "x");
        let m = r.mark();
        r.int("b", -3);
        r.rewind(m);
        r.uint("c", 7);
        r.bool("d", true);
        r.begin_object("e");
        r.str("f", "g");
        r.end_object();
        r.members(" \"h\":null ");
        r.float("i", f64::NAN);
        assert_eq!(
            r.finish(),
            r#"{"a":"x","c":7,"d":true,"e":{"f":"g"},"h":null,"i":null}"#
        );
        let v: serde_json::Value = serde_json::from_str(r.as_str()).unwrap();
        assert_eq!(v["e"]["f"], "g");
    }
}
