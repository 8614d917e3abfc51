//! The bulk response, read item by item. `items` answers the actions in the order they were
//! sent (one entry per action, keyed by the operation), which is why logship never sends
//! `filter_path`: a trimmed response could not be matched to the records by position.
use std::collections::BTreeMap;

use serde::Deserialize;

use super::retry::item_retryable;

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Stored now.
    Created,
    /// 409 on `create`: stored by an earlier attempt.
    AlreadyPresent,
    /// 429 or 5xx: send again later.
    Retry { error_type: String },
    /// Rejected for good (a mapping error and the like).
    Reject {
        status: u16,
        error_type: String,
        reason: String,
    },
}

#[derive(Deserialize)]
struct Head {
    errors: bool,
}

#[derive(Deserialize)]
struct Full {
    items: Vec<BTreeMap<String, Item>>,
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    #[serde(default)]
    error: Option<ItemError>,
}

#[derive(Deserialize)]
struct ItemError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    caused_by: Option<Box<ItemError>>,
}

/// Reads a 2xx bulk answer for `sent` records: `Ok(None)` when every record was stored
/// (`"errors": false`), else each record's outcome in order. An answer that cannot be read or
/// does not match the records is an error (the request is retried as a whole).
pub fn parse(body: &[u8], sent: usize) -> Result<Option<Vec<ItemOutcome>>, String> {
    if no_errors_up_front(body) {
        return Ok(None);
    }
    let head: Head =
        serde_json::from_slice(body).map_err(|e| format!("unreadable bulk response: {e}"))?;
    if !head.errors {
        return Ok(None);
    }
    let full: Full =
        serde_json::from_slice(body).map_err(|e| format!("unreadable bulk response: {e}"))?;
    if full.items.len() != sent {
        return Err(format!(
            "bulk response has {} items for {sent} records",
            full.items.len()
        ));
    }
    let outcomes = full
        .items
        .into_iter()
        .map(|m| match m.into_values().next() {
            None => ItemOutcome::Retry {
                error_type: "empty_item".into(),
            },
            Some(item) => classify(item),
        })
        .collect();
    Ok(Some(outcomes))
}

/// True when the answer opens with a top-level `"errors":false` before its `"items"`, as
/// Elasticsearch and OpenSearch write it (`{"took":3,"errors":false,"items":[...]}`). Then the
/// items (about 100 bytes of JSON per record) need not be walked at all: skipping them was a
/// tenth of logship's CPU. Anything else takes the full parse.
fn no_errors_up_front(body: &[u8]) -> bool {
    let head = &body[..body.len().min(512)];
    let Some(items) = find(head, b"\"items\"") else {
        return false;
    };
    let head = &head[..items];
    if head.first() != Some(&b'{') || head[1..].iter().any(|&b| matches!(b, b'{' | b'[')) {
        return false;
    }
    let Some(at) = find(head, b"\"errors\"") else {
        return false;
    };
    let rest = head[at + 8..].trim_ascii_start();
    rest.strip_prefix(b":")
        .is_some_and(|r| r.trim_ascii_start().starts_with(b"false"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn classify(item: Item) -> ItemOutcome {
    let status = item.status;
    let (error_type, reason) = match &item.error {
        Some(e) => (e.kind.clone(), reason(e)),
        None => (String::new(), String::new()),
    };
    match status {
        200..=299 => ItemOutcome::Created,
        409 if error_type == "version_conflict_engine_exception" || error_type.is_empty() => {
            ItemOutcome::AlreadyPresent
        }
        s if item_retryable(s) => ItemOutcome::Retry {
            error_type: if error_type.is_empty() {
                format!("http_{s}")
            } else {
                error_type
            },
        },
        _ => ItemOutcome::Reject {
            status,
            error_type: if error_type.is_empty() {
                format!("http_{status}")
            } else {
                error_type
            },
            reason,
        },
    }
}

fn reason(e: &ItemError) -> String {
    let mut r = e.reason.clone().unwrap_or_default();
    if let Some(c) = &e.caused_by {
        r.push_str(&format!(" (caused by {}: {})", c.kind, reason(c)));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_items_in_order() {
        let body = br#"{"took":3,"errors":true,"items":[
          {"create":{"_index":"logs","_id":"a","_version":1,"result":"created","status":201}},
          {"create":{"_index":"logs","_id":"b","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[b]: version conflict, document already exists (current version [1])"}}},
          {"create":{"_index":"logs","_id":"c","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}},
          {"create":{"_index":"logs","_id":"d","status":400,"error":{"type":"document_parsing_exception","reason":"failed to parse field [n] of type [long]","caused_by":{"type":"illegal_argument_exception","reason":"For input string: \"x\""}}}}
        ]}"#;
        let out = parse(body, 4).unwrap().unwrap();
        assert_eq!(out[0], ItemOutcome::Created);
        assert_eq!(out[1], ItemOutcome::AlreadyPresent);
        assert_eq!(
            out[2],
            ItemOutcome::Retry {
                error_type: "es_rejected_execution_exception".into()
            }
        );
        match &out[3] {
            ItemOutcome::Reject {
                status: 400,
                error_type,
                reason,
            } => {
                assert_eq!(error_type, "document_parsing_exception");
                assert!(
                    reason.contains("caused by illegal_argument_exception"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(
                br#"{"took":1,"errors":false,"items":[{"create":{"status":201}}]}"#,
                1
            )
            .unwrap(),
            None
        );
        assert!(parse(br#"{"took":1,"errors":true,"items":[]}"#, 1).is_err());
        assert!(no_errors_up_front(
            br#"{"took":1, "errors" : false, "items":[]}"#
        ));
        assert!(!no_errors_up_front(
            br#"{"took":1,"errors":true,"items":[]}"#
        ));
        // Only a top-level flag counts.
        assert!(!no_errors_up_front(
            br#"{"x":{"errors":false},"errors":true,"items":[]}"#
        ));
        assert!(!no_errors_up_front(br#"{"errors":false}"#));
        assert!(parse(b"<html>", 1).is_err());
    }
}
