//! What an accept loop does when `accept` fails. Out of file descriptors (EMFILE, ENFILE) the
//! listener stays readable, so retrying at once would spin; PgBouncer stops accepting for five
//! seconds and logs each failure. Here the loop retries every 50 ms, so clients get in as soon
//! as descriptors free up, and the failure is logged once per five seconds while it lasts.

use std::time::Duration;

use tokio::time::Instant;

/// Between tries while accepting fails.
const RETRY_AFTER: Duration = Duration::from_millis(50);

/// Between log lines of a failure that lasts.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// One accept loop's record of its failures.
#[derive(Default)]
pub(super) struct AcceptBackoff {
    logged: Option<Instant>,
}

impl AcceptBackoff {
    /// Logs `e` unless it was logged within [`LOG_EVERY`], then waits before the next try. A
    /// connection reset while it waited in the queue (ECONNABORTED) is no failure of ours.
    pub(super) async fn after(&mut self, e: &std::io::Error) {
        if e.kind() == std::io::ErrorKind::ConnectionAborted {
            return;
        }
        let now = Instant::now();
        if self
            .logged
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
        {
            tracing::error!("accept() failed: {e}");
            self.logged = Some(now);
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }
}
