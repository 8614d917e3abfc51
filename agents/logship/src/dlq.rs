//! The dead-letter file: records Elasticsearch rejected for good (mapping errors and the
//! like), one JSON line each in `<data-dir>/dead-letter.ndjson`, with the reason, so nothing is
//! silently dropped and an operator can fix the mapping and replay them:
//!
//! ```json
//! {"@timestamp":"...","_index":"logs-2026.11.26","_id":"...","status":400,
//!  "error":{"type":"document_parsing_exception","reason":"..."},"record":{...the document...}}
//! ```
//!
//! Entries are flushed and synced before their records are acknowledged. Without a data dir,
//! each rejected record goes to the log instead.
use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::PathBuf,
    sync::Mutex,
};

use crate::{events::DeadLetterWriteFailed, record};

/// One rejected record.
pub struct DeadLetter<'a> {
    pub action: &'a [u8],
    pub doc: &'a [u8],
    pub status: u16,
    pub error_type: &'a str,
    pub reason: &'a str,
}

/// The dead-letter file (opened on first use).
pub struct DeadLetters {
    path: Option<PathBuf>,
    file: Mutex<Option<File>>,
}

impl DeadLetters {
    /// Dead letters under `data_dir`, or in the log when there is none.
    pub fn new(data_dir: Option<&std::path::Path>) -> Self {
        DeadLetters {
            path: data_dir.map(|d| d.join("dead-letter.ndjson")),
            file: Mutex::new(None),
        }
    }

    /// The file's path, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// Appends entries and syncs them.
    pub fn write(&self, letters: &[DeadLetter<'_>]) {
        let mut text = Vec::new();
        let ts = record::now_timestamp();
        for l in letters {
            text.extend_from_slice(b"{\"@timestamp\":\"");
            text.extend_from_slice(ts.as_bytes());
            text.extend_from_slice(b"\",\"_index\":");
            record::write_json_str(
                &mut text,
                crate::sink::elasticsearch::encoder::index_of(l.action),
            );
            text.extend_from_slice(b",\"_id\":");
            record::write_json_str(
                &mut text,
                crate::sink::elasticsearch::encoder::id_of(l.action),
            );
            text.extend_from_slice(
                format!(",\"status\":{},\"error\":{{\"type\":", l.status).as_bytes(),
            );
            record::write_json_str(&mut text, l.error_type);
            text.extend_from_slice(b",\"reason\":");
            record::write_json_str(&mut text, l.reason);
            text.extend_from_slice(b"},\"record\":");
            text.extend_from_slice(l.doc);
            text.extend_from_slice(b"}\n");
        }
        let Some(path) = &self.path else {
            self.log_instead(&text, &std::io::Error::other("no --data-dir given"));
            return;
        };
        let Ok(mut guard) = self.file.lock() else {
            self.log_instead(&text, &std::io::Error::other("dead-letter lock poisoned"));
            return;
        };
        if guard.is_none() {
            match OpenOptions::new().create(true).append(true).open(path) {
                Ok(f) => *guard = Some(f),
                Err(e) => {
                    self.log_instead(&text, &e);
                    return;
                }
            }
        }
        if let Some(f) = guard.as_mut() {
            if let Err(e) = f.write_all(&text).and_then(|()| f.sync_data()) {
                *guard = None;
                self.log_instead(&text, &e);
            }
        }
    }

    fn log_instead(&self, text: &[u8], error: &std::io::Error) {
        for line in String::from_utf8_lossy(text).lines() {
            DeadLetterWriteFailed {
                error,
                record: line,
            }
            .emit();
        }
    }
}
