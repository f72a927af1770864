//! The timers a session obeys (`query_timeout`, `idle_transaction_timeout`,
//! `transaction_timeout`, `client_idle_timeout`) and the helpers that apply them to the relay's
//! reads and writes.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;

use crate::error::ClientError;
use crate::protocol::backend::TxStatus;
use crate::registry::ClientInfo;

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
    /// `query_wait_notify`: queued this long for a server, the client hears why (a NOTICE).
    pub wait_notify: Duration,
}

/// Which timer a deadline belongs to: small and `Copy`, as it goes with every relay write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    /// `query_timeout`.
    Query,
    /// `idle_transaction_timeout`.
    IdleTransaction,
    /// `transaction_timeout`.
    Transaction,
}

impl Limit {
    /// The error that ends the session when this timer fires.
    pub(super) fn error(self) -> ClientError {
        match self {
            Limit::Query => ClientError::QueryTimeout,
            Limit::IdleTransaction => ClientError::IdleTransactionTimeout,
            Limit::Transaction => ClientError::TransactionTimeout,
        }
    }
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
    ) -> Option<(Instant, Limit)> {
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
    ) -> Option<(Instant, Limit)> {
        let in_xact = status != TxStatus::Idle;
        let candidates = [
            (pending > 0 && !self.query.is_zero())
                .then(|| query_since.map(|s| (s + self.query, Limit::Query)))
                .flatten(),
            (pending == 0 && in_xact && !self.idle_transaction.is_zero()).then(|| {
                (
                    Instant::now() + self.idle_transaction,
                    Limit::IdleTransaction,
                )
            }),
            (in_xact && !self.transaction.is_zero())
                .then(|| xact_since.map(|s| (s + self.transaction, Limit::Transaction)))
                .flatten(),
        ];
        candidates.into_iter().flatten().min_by_key(|(at, _)| *at)
    }
}

/// Runs a write under the link's deadline (`query_timeout`, `idle_transaction_timeout`,
/// `transaction_timeout`): a peer that stops reading must not hold the relay, and with it a
/// server, past the limit that would end it if it were merely slow. The outer error is the
/// deadline's; the inner one the write's own.
pub(super) fn within<T>(
    deadline: Option<(Instant, Limit)>,
    io: impl Future<Output = std::io::Result<T>>,
) -> impl Future<Output = Result<std::io::Result<T>, ClientError>> {
    let limit = deadline.map(|(_, limit)| limit);
    crate::proxy::before(deadline.map(|(at, _)| at), io)
        .map(move |done| done.ok_or_else(|| limit.map_or(ClientError::QueryTimeout, Limit::error)))
}

/// Writes all of `bytes` and flushes, under the link's deadline as [`within`]; a KILL of
/// `client` while the peer does not read ends the wait (as PgBouncer's KILL, at once).
///
/// A relay write almost always completes in one call: that call is made before the write-all,
/// timer and KILL futures are built, which then carry only what is left. The flush costs
/// nothing on a plain socket; on TLS it pushes out records rustls still holds, which would
/// otherwise wait for the next write while the peer waits for them.
pub(super) async fn send_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    deadline: Option<(Instant, Limit)>,
    client: Option<&ClientInfo>,
) -> Result<std::io::Result<()>, ClientError> {
    let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut *w).poll_write(cx, bytes))).await;
    let rest = match first {
        Poll::Ready(Ok(n)) if n > 0 || bytes.is_empty() => bytes.get(n..).unwrap_or_default(),
        Poll::Ready(Ok(_)) => return Ok(Err(std::io::ErrorKind::WriteZero.into())),
        Poll::Ready(Err(e)) => return Ok(Err(e)),
        Poll::Pending => bytes,
    };
    if rest.is_empty() {
        let flushed = poll_fn(|cx| Poll::Ready(Pin::new(&mut *w).poll_flush(cx))).await;
        if let Poll::Ready(r) = flushed {
            return Ok(r);
        }
    }
    let write = within(deadline, async {
        w.write_all(rest).await?;
        w.flush().await
    });
    match client {
        None => write.await,
        Some(client) => tokio::select! {
            biased;
            written = write => written,
            () = client.killed() => Err(ClientError::AdminForcedDisconnect),
        },
    }
}
