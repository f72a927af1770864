//! The timers a session obeys (`query_timeout`, `idle_transaction_timeout`,
//! `transaction_timeout`, `client_idle_timeout`) and the helpers that apply them to the relay's
//! reads and writes.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::ClientError;
use crate::protocol::backend::TxStatus;

/// Timeouts a session enforces (zero = off).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeouts {
    /// `client_idle_timeout`: no server and no traffic.
    pub client_idle: Duration,
    /// `idle_transaction_timeout`: inside a transaction, waiting for the client.
    pub idle_transaction: Duration,
    /// `query_timeout`: a request outstanding at the server.
    pub query: Duration,
    /// `transaction_timeout`: a transaction open for this long, busy or not.
    pub transaction: Duration,
}

impl Timeouts {
    #[inline]
    fn all_off(self) -> bool {
        self.idle_transaction.is_zero() && self.query.is_zero() && self.transaction.is_zero()
    }

    /// The earliest timer that applies to a link with `pending` requests in `status`, with the
    /// error it raises.
    #[inline]
    pub(super) fn deadline(
        self,
        pending: usize,
        status: TxStatus,
        query_since: Option<Instant>,
        xact_since: Option<Instant>,
    ) -> Option<(Instant, ClientError)> {
        if self.all_off() {
            // The usual case, checked twice per relay step: a few compares, inlined.
            return None;
        }
        self.earliest(pending, status, query_since, xact_since)
    }

    #[inline(never)]
    fn earliest(
        self,
        pending: usize,
        status: TxStatus,
        query_since: Option<Instant>,
        xact_since: Option<Instant>,
    ) -> Option<(Instant, ClientError)> {
        let in_xact = status != TxStatus::Idle;
        let candidates = [
            (pending > 0 && !self.query.is_zero())
                .then(|| query_since.map(|s| (s + self.query, ClientError::QueryTimeout)))
                .flatten(),
            (pending == 0 && in_xact && !self.idle_transaction.is_zero()).then(|| {
                (
                    Instant::now() + self.idle_transaction,
                    ClientError::IdleTransactionTimeout,
                )
            }),
            (in_xact && !self.transaction.is_zero())
                .then(|| {
                    xact_since.map(|s| (s + self.transaction, ClientError::TransactionTimeout))
                })
                .flatten(),
        ];
        candidates.into_iter().flatten().min_by_key(|(at, _)| *at)
    }
}

/// Runs a write under the link's deadline (`query_timeout`, `idle_transaction_timeout`,
/// `transaction_timeout`): a peer that stops reading must not hold the relay, and with it a
/// server, past the limit that would end it if it were merely slow. The outer error is the
/// deadline's; the inner one the write's own.
pub(super) async fn within<T>(
    deadline: Option<(Instant, ClientError)>,
    io: impl Future<Output = std::io::Result<T>>,
) -> Result<std::io::Result<T>, ClientError> {
    match deadline {
        None => Ok(io.await),
        Some((at, e)) => tokio::time::timeout_at(at, io).await.map_err(|_| e),
    }
}

pub(super) async fn sleep_or_never(d: Duration) {
    if d.is_zero() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(d).await;
}

pub(super) async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
