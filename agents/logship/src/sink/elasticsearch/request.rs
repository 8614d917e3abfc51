//! Building a bulk request body from some of a batch's records (all of them the first time;
//! the retryable ones, or half of them after a 413, later), optionally gzip-compressed.
use std::io::Write as _;

use bytes::Bytes;
use flate2::{write::GzEncoder, Compression};

use crate::pipeline::Batch;

/// The NDJSON body (ends with a newline, as `_bulk` requires) for records `idx` of `batch`.
pub fn body(batch: &Batch, idx: &[usize]) -> Bytes {
    if idx.len() == batch.items.len() {
        return batch.buf.clone();
    }
    let len = idx.iter().map(|&i| batch.record(i).len()).sum();
    let mut out = Vec::with_capacity(len);
    for &i in idx {
        out.extend_from_slice(batch.record(i));
    }
    Bytes::from(out)
}

/// Compresses a body with gzip (fast level: shipping logs is CPU-bound, not network-bound).
pub fn gzip(body: &[u8]) -> std::io::Result<Bytes> {
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), Compression::fast());
    enc.write_all(body)?;
    Ok(Bytes::from(enc.finish()?))
}
