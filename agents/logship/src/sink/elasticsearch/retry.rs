//! What is retried and how: the statuses worth another attempt and the backoff between them
//! (`common::retry::Backoff`).
use std::time::Duration;

use common::retry::Backoff;

/// A bulk item status that may succeed later: 429 (write queue full) and 5xx (shard
/// unavailable, node restarting). 408 is a timeout.
pub fn item_retryable(status: u16) -> bool {
    status == 429 || status == 408 || (500..=599).contains(&status)
}

/// A whole-request status to retry as is: overload, server errors, and the ones a fix on the
/// cluster side (credentials, a proxy route) cures without dropping data.
pub fn request_retryable(status: u16) -> bool {
    matches!(status, 401 | 403 | 404 | 408 | 429) || (500..=599).contains(&status)
}

/// The backoff for one batch: 100ms doubling up to `max`, with jitter.
pub fn backoff(max: Duration) -> Backoff {
    Backoff::new(Duration::from_millis(100), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(
            item_retryable(429)
                && item_retryable(503)
                && !item_retryable(400)
                && !item_retryable(409)
        );
        assert!(
            request_retryable(503)
                && request_retryable(401)
                && !request_retryable(413)
                && !request_retryable(400)
        );
    }
}
