//! JSON lines: validated (one object per line) and passed through member by member, so the
//! caller's static fields land in the same object.
use super::Record;

pub(super) fn parse(line: &str, rec: &mut Record) -> Result<(), &'static str> {
    let t = line.trim();
    if !t.starts_with('{') {
        return Err("json: line is not a JSON object");
    }
    serde_json::from_str::<serde::de::IgnoredAny>(t).map_err(|_| "json: invalid JSON")?;
    // Valid object: its members are the text between the outer braces.
    rec.members(&t[1..t.len() - 1]);
    Ok(())
}
