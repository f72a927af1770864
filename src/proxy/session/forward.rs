//! The two halves of a relay step: the client's complete messages to the server (rewritten
//! by the prepared-statement tracker when it must), and the server's to the client, where the
//! release point is found and large rows stream through.

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::timeouts::{Limit, send_all};
use super::{Link, Release, Session, Step, release_after, reserve_ahead};
use crate::error::ClientError;
use crate::protocol::backend::TxStatus;
use crate::protocol::tag::{backend as be, frontend as fe};
use crate::protocol::walk::Walk;
use crate::proxy::prepared::{Tracker, untracked_only};
use crate::registry::wall_us;

/// A buffer that carried a batch larger than this is replaced once the batch is out.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// A message larger than this that the pooler need not read whole (a row, a COPY chunk, a
/// client's large query or parameter) is passed on as it arrives instead of being held whole,
/// as PgBouncer does.
pub(super) const STREAM_OVER: usize = 256 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Sends every complete client message to the server; `false` when the client said Terminate.
    pub(super) async fn forward_client(&mut self, link: &mut Link) -> Result<bool, ClientError> {
        if self.cbuf.is_empty() {
            // After each server batch, most often: nothing to send, and the tracker has no
            // reply of its own pending either (it emits those as server messages come in).
            return Ok(true);
        }
        if link.client_stream_left > 0 {
            // The rest of a large message: straight on, as far as it goes.
            let n = link.client_stream_left.min(self.cbuf.len());
            if n > 0 {
                let deadline = self.deadline(link);
                let bytes = self.cbuf.get(..n).unwrap_or_default();
                send_all(
                    &mut link.server.stream,
                    bytes,
                    deadline,
                    self.entry.as_deref(),
                )
                .await?
                .map_err(|_| ClientError::ServerCrashed)?;
                self.login.pool.stats.traffic(n as u64, 0);
                self.cbuf.advance(n);
                link.client_stream_left -= n;
            }
            if link.client_stream_left > 0 || self.cbuf.is_empty() {
                return Ok(true);
            }
        }
        let server = &mut *link.server;
        // Batches of plain simple queries (and COPY data) need no rewriting: they go out as the
        // client's own bytes unless tracked replies are still owed before them.
        let tracking = link.max_prepared > 0;
        let simple = tracking && untracked_only(&self.cbuf, self.max_len);
        if tracking && !simple && link.pending > 0 && link.expect.is_empty() {
            // Untracked replies are still due: tracking starts once they are in.
            return Ok(true);
        }
        let passthrough = !tracking || (simple && link.expect.is_empty());
        let mut walk = Walk::new(&self.cbuf, self.max_len);
        let mut terminate_at = None;
        let mut out = BytesMut::new();
        // One clock read per batch, and only for a batch that starts a request; the first batch
        // after link() takes link()'s reading, which also stamped the request in the registry.
        let mut now = None;
        let mut tracker = tracking.then(|| {
            Tracker::new(
                &mut link.expect,
                &mut self.statements,
                &mut server.prepared,
                &self.login.pool,
                link.max_prepared,
            )
        });
        while let Some(msg) = walk
            .next_message()
            .map_err(|e| ClientError::Protocol(e.to_string()))?
        {
            if msg.tag == fe::TERMINATE {
                terminate_at = Some(walk.consumed() - crate::protocol::HEADER_LEN - msg.body.len());
                break;
            }
            super::check_simple(self.refuse_simple, msg.tag)?;
            count_request(
                msg.tag,
                &mut link.pending,
                &mut link.query_since,
                &mut link.sync_after_execute,
                || now.get_or_insert_with(|| stamp(&mut link.fresh)).0,
            );
            if let Some(t) = tracker.as_mut() {
                if passthrough {
                    if msg.tag == fe::QUERY {
                        t.observe_query(msg.body);
                    }
                    continue;
                }
                let start = walk.consumed() - crate::protocol::HEADER_LEN - msg.body.len();
                let raw = self.cbuf.get(start..walk.consumed()).unwrap_or_default();
                t.client_message(msg.tag, raw, msg.body, &mut out)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
            }
        }
        // Known before the batch goes out, so that `link` is free again for what follows.
        let mut reply = BytesMut::new();
        if let Some(mut t) = tracker {
            // Replies the pooler owes with nothing before them (a Parse the server already had).
            t.emit_ready(&mut reply);
            t.finish();
        }
        let mut upto = terminate_at.unwrap_or_else(|| walk.consumed());
        match walk.incomplete_len() {
            // The start of a large message goes out with what precedes it and the rest follows
            // read by read, as toward the client: a 100 MB parameter does not sit here whole.
            // Messages the tracker would rewrite or must read whole wait for their end.
            Some(total)
                if total > STREAM_OVER
                    && terminate_at.is_none()
                    && passthrough
                    && (!tracking
                        || passes_untracked(self.cbuf.get(upto..).unwrap_or_default())) =>
            {
                let tag = self.cbuf.get(upto).copied().unwrap_or_default();
                count_request(
                    tag,
                    &mut link.pending,
                    &mut link.query_since,
                    &mut link.sync_after_execute,
                    || now.get_or_insert_with(|| stamp(&mut link.fresh)).0,
                );
                link.client_stream_left = total - (self.cbuf.len() - upto);
                upto = self.cbuf.len();
            }
            Some(len) => reserve_ahead(&mut self.cbuf, len),
            None => {}
        }
        // Taken after the batch was counted: a query that starts here is already timed.
        let deadline = self.timeouts.deadline(
            link.pending,
            server.tx_status,
            link.query_since,
            link.xact_since,
        );
        if upto > 0 {
            if let Some(entry) = &self.entry {
                let (at, stamped) = *now.get_or_insert_with(|| stamp(&mut link.fresh));
                if !stamped {
                    entry.requested(wall_us(at.into_std()));
                }
            }
            let bytes = if passthrough {
                self.cbuf.get(..upto).unwrap_or_default()
            } else {
                out.as_ref()
            };
            send_all(&mut server.stream, bytes, deadline, self.entry.as_deref())
                .await?
                .map_err(|_| ClientError::ServerCrashed)?;
            self.login.pool.stats.traffic(upto as u64, 0);
            self.cbuf.advance(upto);
            let_go_if_huge(&mut self.cbuf, upto);
        }
        link.fresh = None;
        if !reply.is_empty()
            && send_all(&mut self.client, &reply, deadline, self.entry.as_deref())
                .await?
                .is_err()
        {
            return Ok(false);
        }
        Ok(terminate_at.is_none())
    }

    /// Forwards the complete server messages to the client (within the step's `deadline`) and
    /// decides about release.
    pub(super) async fn forward_server(
        &mut self,
        link: &mut Link,
        deadline: Option<(Instant, Limit)>,
    ) -> Result<Step, ClientError> {
        if link.stream_left > 0 {
            let n = link.stream_left.min(link.server.buf.len());
            let bytes = link.server.buf.get(..n).unwrap_or_default();
            if send_all(&mut self.client, bytes, deadline, self.entry.as_deref())
                .await?
                .is_err()
            {
                return Ok(Step::ClientGone);
            }
            self.login.pool.stats.traffic(0, n as u64);
            link.server.buf.advance(n);
            link.stream_left -= n;
            if link.stream_left > 0 || link.server.buf.is_empty() {
                return Ok(Step::Continue);
            }
        }
        let server = &mut *link.server;
        let mut walk = Walk::new(&server.buf, self.max_len);
        let mut ready = false;
        let mut refuse_at = None;
        let mut out = BytesMut::new();
        // Nothing tracked is owed: replies pass as the server's own bytes.
        let mut tracker = (link.max_prepared > 0 && !link.expect.is_empty()).then(|| {
            Tracker::new(
                &mut link.expect,
                &mut self.statements,
                &mut server.prepared,
                &self.login.pool,
                link.max_prepared,
            )
        });
        while let Some(msg) = walk
            .next_message()
            .map_err(|_| ClientError::ServerCrashed)?
        {
            match msg.tag {
                be::READY_FOR_QUERY => {
                    ready = true;
                    link.pending = link.pending.saturating_sub(1);
                    if let Some(status) = msg.body.first().copied().and_then(TxStatus::from_byte) {
                        server.tx_status = status;
                        link.xact_since = match status {
                            TxStatus::Idle => None,
                            _ => link.xact_since.or(link.query_since),
                        };
                    }
                    if link.pending == 0 {
                        let now = Instant::now();
                        link.settled = Some(now);
                        if let Some(since) = link.query_since.take() {
                            let us =
                                u64::try_from(now.saturating_duration_since(since).as_micros())
                                    .unwrap_or(u64::MAX);
                            self.login.pool.stats.query(us);
                        }
                        if release_after(self.mode, server.tx_status, 0) == Release::Refuse {
                            // The client must not see a ReadyForQuery that invites it to continue
                            // a transaction statement mode cannot keep.
                            refuse_at = Some(
                                walk.consumed() - crate::protocol::HEADER_LEN - msg.body.len(),
                            );
                            break;
                        }
                    }
                }
                be::COPY_IN_RESPONSE if link.sync_after_execute => {
                    // PostgreSQL ignores Sync during COPY IN: one fewer ReadyForQuery is coming.
                    link.sync_after_execute = false;
                    link.pending = link.pending.saturating_sub(1);
                }
                be::PARAMETER_STATUS => {
                    if let Ok(ps) = crate::protocol::backend::ParameterStatus::parse(msg.body) {
                        let (name, value) = (
                            String::from_utf8_lossy(ps.name),
                            String::from_utf8_lossy(ps.value),
                        );
                        self.login.params.note(&name, &value);
                        // Server and client changed together: they still agree on every tracked
                        // value, and a client with the old values must be synced again.
                        server.synced_with = self.login.params.fingerprint();
                        if let (Some(entry), "application_name") = (&self.entry, &*name) {
                            entry.set_application_name(&value);
                            if let Some(info) = &server.info {
                                info.link_client(entry.id, &value);
                            }
                        }
                        server.params.insert(name.into_owned(), value.into_owned());
                    }
                }
                _ => {}
            }
            if let Some(t) = tracker.as_mut() {
                let start = walk.consumed() - crate::protocol::HEADER_LEN - msg.body.len();
                let raw = server.buf.get(start..walk.consumed()).unwrap_or_default();
                t.server_message(msg.tag, raw, &mut out);
            }
        }
        let mut upto = refuse_at.unwrap_or_else(|| walk.consumed());
        match walk.incomplete_len() {
            // The start of a large row or COPY chunk goes out with what precedes it; the rest
            // follows read by read, so the pooler never holds more of it than one read.
            Some(total)
                if total > STREAM_OVER
                    && tracker.is_none()
                    && refuse_at.is_none()
                    && matches!(server.buf.get(upto), Some(&(be::DATA_ROW | be::COPY_DATA))) =>
            {
                link.stream_left = total - (server.buf.len() - upto);
                upto = server.buf.len();
            }
            Some(len) => reserve_ahead(&mut server.buf, len),
            None => {}
        }
        if upto > 0 {
            let bytes = match tracker {
                Some(_) => out.as_ref(),
                None => server.buf.get(..upto).unwrap_or_default(),
            };
            if send_all(&mut self.client, bytes, deadline, self.entry.as_deref())
                .await?
                .is_err()
            {
                return Ok(Step::ClientGone);
            }
            self.login.pool.stats.traffic(0, upto as u64);
            server.buf.advance(upto);
            let_go_if_huge(&mut server.buf, upto);
        }
        if refuse_at.is_some() {
            return Err(ClientError::StatementModeTransaction);
        }
        let streaming = link.stream_left > 0 || link.client_stream_left > 0;
        if !ready || !server.buf.is_empty() || !link.expect.is_empty() || streaming {
            return Ok(Step::Continue);
        }
        match release_after(self.mode, server.tx_status, link.pending) {
            Release::Keep | Release::Refuse => Ok(Step::Continue),
            Release::Release => Ok(Step::Release),
        }
    }
}

/// Counts what client message `tag` asks of the server: Query, Sync and FunctionCall each
/// draw a ReadyForQuery (the first one of a quiet link starts the query's clock, read by
/// `now`); an Execute after a Sync is what a COPY FROM STDIN can start.
fn count_request(
    tag: u8,
    pending: &mut usize,
    query_since: &mut Option<Instant>,
    sync_after_execute: &mut bool,
    now: impl FnOnce() -> Instant,
) {
    match tag {
        fe::QUERY | fe::SYNC | fe::FUNCTION_CALL => {
            if *pending == 0 {
                *query_since = Some(now());
            }
            *pending += 1;
            *sync_after_execute |= tag == fe::SYNC;
        }
        fe::EXECUTE => *sync_after_execute = false,
        _ => {}
    }
}

/// The clock reading for a batch: the one `link()` took for the first batch (`true`: the
/// request is stamped already), a new one after.
fn stamp(fresh: &mut Option<Instant>) -> (Instant, bool) {
    fresh
        .take()
        .map_or_else(|| (Instant::now(), false), |at| (at, true))
}

/// Whether the message starting `raw` (its header and the bytes that are in) passes the
/// prepared-statement tracker untouched whatever its end holds: COPY data, and a Query that
/// cannot be `DEALLOCATE ALL` or `DISCARD ALL`.
fn passes_untracked(raw: &[u8]) -> bool {
    match raw.split_first() {
        Some((&fe::COPY_DATA, _)) => true,
        Some((&fe::QUERY, rest)) => !crate::proxy::prepared::may_drop_all_statements(
            rest.get(crate::protocol::HEADER_LEN - 1..)
                .unwrap_or_default(),
        ),
        _ => false,
    }
}

/// After a batch of `sent` bytes went out, moves what is left of `buf` to a fresh buffer when
/// the batch was huge: the old allocation was sized by it (one large row or parameter) and
/// would otherwise stay with the connection for its whole life, a server's across clients.
fn let_go_if_huge(buf: &mut BytesMut, sent: usize) {
    if sent > KEEP_CAPACITY && buf.len() <= KEEP_CAPACITY {
        *buf = BytesMut::from(buf.as_ref());
    }
}
