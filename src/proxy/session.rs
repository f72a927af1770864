//! The relay: moves bytes between one client and the server it holds, finds the message
//! boundaries without copying, and hands the server back at the pool mode's release point.
//!
//! A client without a server is `Idle`; its first complete message links a server (waiting in
//! the pool's FIFO when needed), tracked parameters are re-applied, and bytes flow both ways until
//! [`release_after`] says the server may go back.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;

use super::handshake::{LoggedIn, pool_error};
use super::prepared::{ClientStatements, Pipeline};
use crate::config::PoolMode;
use crate::error::ClientError;
use crate::pool::reasons;
use crate::pool::server::ServerConn;
use crate::protocol::backend::TxStatus;
use crate::protocol::tag::frontend as fe;
use crate::protocol::walk::Walk;
use crate::registry::{ClientInfo, wall_us};
use crate::shutdown::{Phase, PhaseView};

mod forward;
mod timeouts;
mod wait;

use timeouts::Limit;
pub use timeouts::Timeouts;
use wait::{Armed, Marks, SocketWakers, Woke, poll_client_side, poll_linked};

/// Whether a server goes back to the pool now (the pure release decision of STYLE.md §3.2).
///
/// `pending` counts requests (Query, Sync, FunctionCall) the server has not yet answered with
/// ReadyForQuery.
pub fn release_after(mode: PoolMode, status: TxStatus, pending: usize) -> Release {
    match (mode, status, pending) {
        (PoolMode::Session, _, _) | (_, _, 1..) => Release::Keep,
        (_, TxStatus::Idle, 0) => Release::Release,
        (PoolMode::Transaction, _, 0) => Release::Keep,
        (PoolMode::Statement, _, 0) => Release::Refuse,
    }
}

/// The outcome of [`release_after`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Keep the server linked.
    Keep,
    /// Return the server to the pool.
    Release,
    /// Statement mode saw a transaction left open: refuse it.
    Refuse,
}

/// Why a session ended, for the disconnect log line.
#[derive(Debug)]
pub enum End {
    /// The client said goodbye or closed its socket.
    ClientClosed,
    /// The pooler closed it, with the error the client was sent.
    Error(ClientError),
}

struct Link {
    server: ServerConn,
    pending: usize,
    since: Instant,
    /// When the link was made, until the first request takes it as its start time.
    fresh: Option<Instant>,
    /// When the last ReadyForQuery that left nothing pending came in.
    settled: Option<Instant>,
    query_since: Option<Instant>,
    xact_since: Option<Instant>,
    /// A Sync went out after the last Execute: if that Execute starts COPY FROM STDIN,
    /// PostgreSQL ignores the Sync, so it will draw no ReadyForQuery.
    sync_after_execute: bool,
    /// `max_prepared_statements` when the link was made, 0 when statements pass through.
    max_prepared: usize,
    expect: Pipeline,
    /// Bytes of a large DataRow or CopyData still to pass straight through (its start went out
    /// before the rest arrived).
    stream_left: usize,
    /// Likewise toward the server: bytes of a large client message still to come. The server
    /// holds a partial message until they are in, so it can go to no one else before.
    client_stream_left: usize,
    /// Both sockets are plain, so each is read under its own waker ([`wait`]). A TLS read may
    /// also write, under whatever waker it is given: then both are polled at every wake.
    marked: bool,
    armed: Armed,
}

impl Link {
    /// Between transactions, owing and streaming nothing.
    fn is_quiet(&self) -> bool {
        self.pending == 0
            && self.server.tx_status == TxStatus::Idle
            && self.expect.is_empty()
            && self.stream_left == 0
            && self.client_stream_left == 0
    }
}

/// One client's relay.
pub struct Session<S> {
    client: S,
    cbuf: BytesMut,
    login: LoggedIn,
    mode: PoolMode,
    max_len: usize,
    timeouts: Timeouts,
    shutdown: PhaseView,
    entry: Option<Arc<ClientInfo>>,
    statements: ClientStatements,
    /// `disable_pqexec`: a simple Query ends the session before it reaches a server.
    refuse_simple: bool,
    /// `server_fast_close` (session mode): a server marked close_needed is closed, with its
    /// client, at the end of the transaction instead of the session.
    fast_close: bool,
    /// The client socket is plain: links to plain servers use [`SocketWakers`]. In transaction
    /// and statement mode, from the session's second link on (`linked_before`): a client that
    /// leaves after one transaction, as under `pgbench -C`, is spared their two allocations.
    /// A session-mode session has only the one link.
    plain: bool,
    linked_before: bool,
    wakers: Option<SocketWakers>,
}

/// The most room reserved at once for the rest of an incomplete message.
const RESERVE_AHEAD: usize = 64 * 1024;

/// Relay steps between voluntary yields to the worker's other tasks.
const YIELD_EVERY: u32 = 64;

/// How often an idle session-mode link looks for its server's close_needed mark
/// (`server_fast_close`), as PgBouncer's janitor does.
const FAST_CLOSE_EVERY: Duration = Duration::from_secs(1);

/// PgBouncer's words to a client queued for `query_wait_notify` seconds.
const QUEUED_NOTICE: &str =
    "No server connection available in postgres backend, client being queued";

/// How long a message of the pooler's own (the closing ErrorResponse, a NOTICE) may wait for
/// a client to read it.
const OWN_SEND_TIMEOUT: Duration = Duration::from_secs(1);

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// A session over `client`, with whatever the handshake had already read in `cbuf`.
    pub fn new(
        client: S,
        cbuf: BytesMut,
        login: LoggedIn,
        max_len: usize,
        timeouts: Timeouts,
        shutdown: PhaseView,
    ) -> Self {
        let mode = login.pool.settings().mode;
        Session {
            client,
            cbuf,
            login,
            mode,
            max_len,
            timeouts,
            shutdown,
            entry: None,
            statements: ClientStatements::default(),
            refuse_simple: false,
            fast_close: false,
            plain: false,
            linked_before: false,
            wakers: None,
        }
    }

    /// The client socket is plain (not TLS): a wake-up then polls only the socket whose waker
    /// fired.
    pub fn socket_wakers(mut self, plain: bool) -> Self {
        self.plain = plain;
        self
    }

    /// `server_fast_close`: in session mode, a server marked close_needed ends its session
    /// between transactions (checked at each boundary and every second while idle).
    pub fn fast_close(mut self, on: bool) -> Self {
        self.fast_close = on && self.mode == PoolMode::Session;
        self
    }

    /// Refuses the simple query protocol (`disable_pqexec`), as PgBouncer: a Query message
    /// ends the session with "PQexec disallowed".
    pub fn refuse_simple_queries(mut self, refuse: bool) -> Self {
        self.refuse_simple = refuse;
        self
    }

    /// Reports state changes to `entry` (SHOW CLIENTS) and obeys its KILL.
    pub fn with_entry(mut self, entry: Arc<ClientInfo>) -> Self {
        self.entry = Some(entry);
        self
    }

    /// The client's login facts (pool, params, key).
    pub fn login(&self) -> &LoggedIn {
        &self.login
    }

    /// Relays until the client leaves or an error ends it; the server is never left dirty.
    pub async fn run(&mut self) -> End {
        let mut link: Option<Link> = None;
        // tokio's cooperative budget is checked on every socket poll; the relay keeps its own,
        // cheaper one ([`YIELD_EVERY`]).
        let end = tokio::task::unconstrained(self.relay(&mut link)).await;
        if let Some(mut link) = link.take() {
            // The link lasted until now, not until its last reply.
            link.settled = None;
            let ended_by = match &end {
                End::ClientClosed => None,
                End::Error(e) => Some(e),
            };
            self.unlink(link, ended_by);
        }
        if let End::Error(e) = &end {
            let _ = self.send_error(e).await;
        }
        end
    }

    async fn relay(&mut self, link: &mut Option<Link>) -> End {
        let mut steps: u32 = 0;
        loop {
            steps = steps.wrapping_add(1);
            if steps % YIELD_EVERY == 0 {
                // Sockets that never run dry (a huge result to a fast reader) must not keep
                // this worker from its other clients.
                tokio::task::yield_now().await;
            }
            if link.is_none() {
                match self.wait_for_request().await {
                    Ok(true) => {}
                    Ok(false) => return End::ClientClosed,
                    Err(e) => return End::Error(e),
                }
                match self.answer_unlinked().await {
                    Ok(Some(true)) => continue,
                    Ok(Some(false)) => return End::ClientClosed,
                    Ok(None) => {}
                    Err(e) => return End::Error(e),
                }
                match self.link(Instant::now()).await {
                    Ok(l) => *link = Some(l),
                    Err(e) => return End::Error(e),
                }
            }
            let Some(l) = link.as_mut() else { continue };
            match self.forward_client(l).await {
                Ok(true) => {}
                Ok(false) => return End::ClientClosed,
                Err(e) => return End::Error(e),
            }
            match self.pump(l).await {
                Ok(Step::Continue) => {}
                Ok(Step::Release) => {
                    if let Some(l) = link.take() {
                        self.unlink(l, None);
                    }
                    if closes_unlinked(&self.shutdown) {
                        return End::Error(ClientError::ShuttingDown);
                    }
                }
                Ok(Step::ClientGone) => return End::ClientClosed,
                Err(e) => return End::Error(e),
            }
        }
    }

    /// Waits until the client buffer holds a complete message, or the start of one large enough
    /// to stream; `false` when the client left.
    async fn wait_for_request(&mut self) -> Result<bool, ClientError> {
        loop {
            let mut walk = Walk::new(&self.cbuf, self.max_len);
            if let Some(first) = walk
                .next_message()
                .map_err(|e| ClientError::Protocol(e.to_string()))?
            {
                check_simple(self.refuse_simple, first.tag)?;
                return Ok(first.tag != fe::TERMINATE);
            }
            if let Some(len) = walk.incomplete_len() {
                if len > forward::STREAM_OVER {
                    // Linked now, the message may stream through instead of piling up here.
                    return Ok(true);
                }
                let missing = len.saturating_sub(self.cbuf.len());
                reserve_ahead(&mut self.cbuf, missing);
            }
            if closes_unlinked(&self.shutdown) {
                return Err(ClientError::ShuttingDown);
            }
            let idle = self.timeouts.client_idle;
            let timer = (!idle.is_zero()).then(|| tokio::time::sleep(idle));
            let mut timer = pin!(timer);
            let (client, cbuf, shutdown) = (&mut self.client, &mut self.cbuf, &self.shutdown);
            let entry = self.entry.as_deref();
            // One hand-written poll instead of a select! over futures built per wait: this runs
            // once or twice per transaction.
            let give_up = || closes_unlinked(shutdown);
            let woke =
                poll_fn(|cx| poll_client_side(client, cbuf, timer.as_mut(), entry, give_up, cx))
                    .await;
            match woke {
                Woke::Client(n) => {
                    if n.map_err(|e| ClientError::Protocol(e.to_string()))? == 0 {
                        return Ok(false);
                    }
                }
                Woke::Deadline => return Err(ClientError::ClientIdleTimeout),
                Woke::Interrupted(killed) => return Err(interruption(killed)),
                // Only the client is polled while unlinked.
                Woke::Server(_) => {}
            }
        }
    }

    /// Named Parse/Close and a Sync (libpq's PQprepare) are answered without a server;
    /// `Ok(None)` when a server is needed, `Ok(Some(false))` when the client is gone.
    ///
    /// The answer waits for the client to read it, however long that takes, as relayed bytes
    /// do; it holds no server meanwhile. KILL and a shutdown end that wait as they end an idle
    /// client's.
    async fn answer_unlinked(&mut self) -> Result<Option<bool>, ClientError> {
        let Some((consumed, reply)) = super::prepared::answer_unlinked(
            &self.cbuf,
            self.max_len,
            self.mode,
            &mut self.statements,
            &self.login.pool,
        ) else {
            return Ok(None);
        };
        self.cbuf.advance(consumed);
        let (client, shutdown) = (&mut self.client, &self.shutdown);
        let give_up = || closes_unlinked(shutdown);
        // KILL first: a client that keeps sending such messages, and reads the answers, would
        // otherwise never wait anywhere a KILL is seen.
        tokio::select! {
            biased;
            killed = killed_or(self.entry.as_deref(), give_up) => Err(interruption(killed)),
            written = client.write_all(&reply) => Ok(Some(written.is_ok())),
        }
    }

    /// Gets a server for a request that arrived at `asked`.
    async fn link(&mut self, asked: Instant) -> Result<Link, ClientError> {
        let pool = Arc::clone(&self.login.pool);
        if let Some(entry) = &self.entry {
            entry.waiting(wall_us(asked.into_std()));
        }
        let acquired = match pool.try_acquire(asked) {
            Some(server) => Ok((server, asked)),
            None => {
                let mut acquire = pin!(pool.acquire(asked));
                let notify = self.timeouts.wait_notify;
                let notice_at = asked + notify;
                let mut told = notify.is_zero();
                loop {
                    // The janitor wakes a client queued for query_wait_notify: no timer per
                    // wait, which most transactions of a busy pool have.
                    let due = || !told && Instant::now() >= notice_at;
                    tokio::select! {
                        biased;
                        r = &mut acquire => break r,
                        killed = killed_or(self.entry.as_deref(), due) => {
                            if killed {
                                return Err(ClientError::AdminForcedDisconnect);
                            }
                            told = true;
                            self.tell_queued().await;
                        }
                    }
                }
            }
        };
        let (mut server, linked_at) = acquired.map_err(pool_error)?;
        let waited = match linked_at == asked {
            true => Duration::ZERO,
            false => linked_at.saturating_duration_since(asked),
        };
        let fingerprint = self.login.params.fingerprint();
        if let Some(entry) = &self.entry {
            entry.linked(server.id);
            if let Some(info) = &server.info {
                // Equal fingerprints mean equal application_name: the entry already shows it.
                match server.synced_with == fingerprint {
                    true => info.set_link(entry.id),
                    false => entry.lend_application_name(info),
                }
            }
        }
        if server.synced_with != fingerprint {
            if let Some(sql) = self.login.params.sync_sql(&server.params) {
                // Boxed: kept inline, this rare round trip would be the largest part of
                // every client's task.
                if let Err(e) = Box::pin(pool.own_query(&mut server, &sql)).await {
                    tracing::warn!(error = %e, "could not apply client parameters");
                    pool.close(server, reasons::SYNC_FAILED);
                    return Err(ClientError::ServerCrashed);
                }
            }
            server.synced_with = fingerprint;
        }
        pool.stats
            .assigned(u64::try_from(waited.as_micros()).unwrap_or(u64::MAX));
        let max_prepared = match self.mode {
            PoolMode::Session => 0,
            _ => pool.max_prepared_statements(),
        };
        let lasting = self.linked_before || self.mode == PoolMode::Session;
        let marked = self.plain && lasting && !server.stream.is_tls();
        Ok(Link {
            server,
            pending: 0,
            since: linked_at,
            fresh: Some(linked_at),
            settled: None,
            query_since: None,
            xact_since: None,
            sync_after_execute: false,
            max_prepared,
            expect: Pipeline::default(),
            stream_left: 0,
            client_stream_left: 0,
            marked,
            armed: Armed::default(),
        })
    }

    /// `query_wait_notify`: PgBouncer's NOTICE to a client queued that long. A client that
    /// does not take it still gets its server when one frees up.
    async fn tell_queued(&mut self) {
        let mut notice = BytesMut::new();
        let told = crate::protocol::backend::notice_response(
            &mut notice,
            crate::protocol::backend::Severity::Notice,
            "00000",
            QUEUED_NOTICE,
        );
        if told.is_ok() {
            let _ = self.send_own(&notice).await;
        }
    }

    /// Gives the server back, or closes it when the link did not end clean (`ended_by` an
    /// error, a transaction still open, replies still owed).
    fn unlink(&mut self, link: Link, ended_by: Option<&ClientError>) {
        self.linked_before = true;
        if let Some(entry) = &self.entry {
            entry.unlinked();
        }
        let pool = &self.login.pool;
        let now = link.settled.unwrap_or_else(Instant::now);
        pool.stats.xact(
            u64::try_from(now.saturating_duration_since(link.since).as_micros())
                .unwrap_or(u64::MAX),
        );
        // Replies still owed (extended-protocol messages without a Sync) would reach the next
        // client: such a server is closed too.
        let reason = match ended_by {
            Some(ClientError::ServerCrashed) => Some(reasons::CRASHED),
            Some(ClientError::QueryTimeout) => Some(reasons::QUERY_TIMEOUT),
            Some(ClientError::IdleTransactionTimeout) => Some(reasons::IDLE_TRANSACTION_TIMEOUT),
            Some(ClientError::TransactionTimeout) => Some(reasons::TRANSACTION_TIMEOUT),
            Some(ClientError::ConfigChanged) => Some(reasons::CONFIG_CHANGED),
            _ if link.server.tx_status != TxStatus::Idle => Some(reasons::NOT_READY),
            _ if link.pending > 0 || !link.expect.is_empty() || link.client_stream_left > 0 => {
                Some(reasons::IN_PROGRESS)
            }
            Some(_) => Some(reasons::NOT_READY),
            None => None,
        };
        if let Some(reason) = reason {
            pool.close(link.server, reason);
            return;
        }
        if pool.resets_after(self.mode) {
            let settings = pool.settings();
            let pool = Arc::clone(pool);
            let mut server = link.server;
            server.set_state(crate::registry::ServerState::Tested);
            tokio::spawn(async move {
                match pool.own_query(&mut server, &settings.reset_query).await {
                    Ok(()) => {
                        // DISCARD ALL (the usual reset) drops the pooler's statements too.
                        server.prepared.clear();
                        pool.release(server)
                    }
                    Err(_) => pool.close(server, reasons::RESET_FAILED),
                }
            });
        } else {
            pool.release_at(link.server, now);
        }
    }

    /// Waits for traffic from either side and moves it on.
    async fn pump(&mut self, link: &mut Link) -> Result<Step, ClientError> {
        let deadline = self.deadline(link);
        let recheck = self.fast_close && link.is_quiet();
        if recheck && link.server.info.as_ref().is_some_and(|i| i.close_needed()) {
            return Err(ClientError::ConfigChanged);
        }
        let wake_at = match (deadline, recheck) {
            (Some((at, _)), false) => Some(at),
            (Some((at, _)), true) => Some(at.min(Instant::now() + FAST_CLOSE_EVERY)),
            (None, true) => Some(Instant::now() + FAST_CLOSE_EVERY),
            (None, false) => None,
        };
        let timer = wake_at.map(tokio::time::sleep_until);
        let mut timer = pin!(timer);
        let server = &mut *link.server;
        let mut marks = Marks {
            on: link.marked,
            wakers: &mut self.wakers,
            armed: &mut link.armed,
        };
        let (client, cbuf) = (&mut self.client, &mut self.cbuf);
        let entry = self.entry.as_deref();
        let woke =
            poll_fn(|cx| poll_linked(server, client, cbuf, &mut marks, timer.as_mut(), entry, cx))
                .await;
        match woke {
            Woke::Server(n) => {
                if n.map_err(|_| ClientError::ServerCrashed)? == 0 {
                    return Err(ClientError::ServerCrashed);
                }
                self.forward_server(link, deadline).await
            }
            Woke::Client(Ok(0) | Err(_)) => Ok(Step::ClientGone),
            Woke::Client(Ok(_)) => Ok(Step::Continue),
            Woke::Deadline => match deadline {
                // server_fast_close's look came first: back to the top of the loop, which
                // checks again.
                Some((at, _)) if recheck && Instant::now() < at => Ok(Step::Continue),
                Some((_, limit)) => Err(limit.error()),
                None if recheck => Ok(Step::Continue),
                None => Err(ClientError::QueryTimeout),
            },
            Woke::Interrupted(_) => Err(ClientError::AdminForcedDisconnect),
        }
    }

    /// The earliest timer that applies in the link's state, with the error it raises.
    fn deadline(&self, link: &Link) -> Option<(Instant, Limit)> {
        self.timeouts.deadline(
            link.pending,
            link.server.tx_status,
            link.query_since,
            link.xact_since,
        )
    }

    async fn send_error(&mut self, e: &ClientError) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        let _ = crate::protocol::backend::error_response(
            &mut out,
            crate::protocol::backend::Severity::Fatal,
            e.sqlstate(),
            e.to_string(),
        );
        self.send_own(&out).await
    }

    /// Writes and flushes a message of the pooler's own. Best effort, as PgBouncer's: a client
    /// that stopped reading does not get to keep its task (and socket, or its wait for a
    /// server) by never taking it.
    async fn send_own(&mut self, out: &[u8]) -> std::io::Result<()> {
        let send = async {
            self.client.write_all(out).await?;
            self.client.flush().await
        };
        tokio::time::timeout(OWN_SEND_TIMEOUT, send)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }
}

/// Under `disable_pqexec` (`refuse`), a Query is the end of the client.
fn check_simple(refuse: bool, tag: u8) -> Result<(), ClientError> {
    if refuse && tag == fe::QUERY {
        tracing::error!("client used 'Q' packet type");
        return Err(ClientError::PqexecDisallowed);
    }
    Ok(())
}

/// What one pump step decided.
enum Step {
    Continue,
    Release,
    ClientGone,
}

/// Makes room for `wanted` more bytes of an incomplete message, at most [`RESERVE_AHEAD`] at a
/// time: memory grows with the bytes a peer sends, not with the length it claims, which may be
/// anything up to max_packet_size (2 GB by default) before a single byte of it has arrived.
fn reserve_ahead(buf: &mut BytesMut, wanted: usize) {
    buf.reserve(wanted.min(RESERVE_AHEAD));
}

/// A safe shutdown has begun: a session holding no server ends (as PgBouncer's SIGINT).
fn closes_unlinked(shutdown: &PhaseView) -> bool {
    shutdown.phase() >= Phase::WaitForServers
}

/// What ends a client whose wait was interrupted: KILL (`true`), else a shutdown.
fn interruption(killed: bool) -> ClientError {
    if killed {
        ClientError::AdminForcedDisconnect
    } else {
        ClientError::ShuttingDown
    }
}

/// Resolves with `true` when the admin console kills this client, or `false` once `give_up`
/// holds when a nudge wakes it ([`ClientInfo::killed_or`]); never without a registry entry.
async fn killed_or(entry: Option<&ClientInfo>, give_up: impl Fn() -> bool) -> bool {
    match entry {
        Some(entry) => entry.killed_or(give_up).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_decision_table() {
        use PoolMode::{Session, Statement, Transaction};
        use TxStatus::{Idle, InFailedTransaction, InTransaction};
        let (keep, release, refuse) = (Release::Keep, Release::Release, Release::Refuse);
        let cases = [
            (Session, Idle, 0, keep),
            (Session, InTransaction, 0, keep),
            (Transaction, Idle, 0, release),
            (Transaction, Idle, 1, keep),
            (Transaction, InTransaction, 0, keep),
            (Transaction, InFailedTransaction, 0, keep),
            (Statement, Idle, 0, release),
            (Statement, Idle, 2, keep),
            (Statement, InTransaction, 0, refuse),
            (Statement, InFailedTransaction, 0, refuse),
        ];
        for (mode, status, pending, want) in cases {
            assert_eq!(
                release_after(mode, status, pending),
                want,
                "{mode:?} {status:?} {pending}"
            );
        }
    }
}
