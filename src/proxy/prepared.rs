//! Transaction- and statement-mode prepared statements (issue 6, PgBouncer's
//! `max_prepared_statements`): a client's named statements become pooler-wide names
//! (`BOUNCECTL_<n>`, one per distinct query text and parameter types), prepared lazily on
//! whichever server the client holds, with a per-server LRU.
//!
//! The client side rewrites Parse/Bind/Describe/Close and injects Parse (or an evicting Close)
//! where the server lacks a statement; every message that draws a reply leaves an [`Pipeline`]
//! entry, so the server side can swallow the replies to injected messages and put the pooler's own
//! replies (ParseComplete, CloseComplete, an ErrorResponse) at the right place in the stream.
//! After an ErrorResponse the server skips to Sync, and so does the pipeline: skipped Parses are
//! not counted as prepared. Unnamed statements pass through untouched. No IO here.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::BytesMut;

use crate::pool::Pool;
use crate::pool::statements::{ServerStatements, Statement};
use crate::protocol::EncodeError;
use crate::protocol::backend::{self, Severity};
use crate::protocol::frontend::{self, Bind, Close, Describe, Parse, Query, Target};
use crate::protocol::tag::{backend as be, frontend as fe};

/// Replies that complete a Parse.
const PARSE_DONE: &[u8] = &[be::PARSE_COMPLETE];
/// Replies that complete a Bind.
const BIND_DONE: &[u8] = &[be::BIND_COMPLETE];
/// Replies that complete a Describe (after any ParameterDescription).
const DESCRIBE_DONE: &[u8] = &[be::ROW_DESCRIPTION, be::NO_DATA];
/// Replies that complete an Execute.
const EXECUTE_DONE: &[u8] = &[
    be::COMMAND_COMPLETE,
    be::EMPTY_QUERY_RESPONSE,
    be::PORTAL_SUSPENDED,
];
/// Replies that complete a Close.
const CLOSE_DONE: &[u8] = &[be::CLOSE_COMPLETE];
/// Replies that complete a Query or FunctionCall (errors inside them do not skip anything).
const QUERY_DONE: &[u8] = &[be::READY_FOR_QUERY];

/// A statement name the pooler never prepares: a Describe of it fails on purpose, so the server
/// skips to Sync as PostgreSQL would after the client's own failed Parse.
const MISSING: &str = "bouncectl_missing";

/// One client's named statements: client name → pooler-wide statement.
#[derive(Debug, Default)]
pub struct ClientStatements {
    names: HashMap<Vec<u8>, Arc<Statement>>,
}

impl ClientStatements {
    /// Number of named statements the client holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the client holds none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// What the server's replies to one message mean to the relay.
#[derive(Debug)]
enum Expect {
    /// A client message: forward its replies, the last one has a tag in the list.
    Forward(&'static [u8]),
    /// The client's Parse sent under the pooler-wide name: forward its ParseComplete.
    ClientParse(Vec<u8>, Arc<Statement>),
    /// A Parse the pooler injected: swallow its ParseComplete.
    InjectedParse(Arc<Statement>),
    /// A Close the pooler sent to evict: swallow its CloseComplete.
    EvictClose(Arc<Statement>),
    /// A ParseComplete the pooler answers itself when its turn comes.
    ParseComplete,
    /// A CloseComplete the pooler answers itself when its turn comes.
    CloseComplete,
    /// A Describe sent to fail: its ErrorResponse is replaced by this one.
    ReplaceError(BytesMut),
    /// Sync: its ReadyForQuery ends a skip after an error.
    Sync,
    /// The client's CopyDone or CopyFail, sent before the server's CopyInResponse was seen.
    CopyEnd,
}

impl Expect {
    fn done_by(&self, tag: u8) -> bool {
        match self {
            Expect::Forward(done) => done.contains(&tag),
            Expect::ClientParse(..) | Expect::InjectedParse(_) => tag == be::PARSE_COMPLETE,
            Expect::EvictClose(_) => tag == be::CLOSE_COMPLETE,
            _ => false,
        }
    }

    fn ends_at_ready(&self) -> bool {
        matches!(self, Expect::Sync) || matches!(self, Expect::Forward(d) if *d == QUERY_DONE)
    }
}

/// The replies one server link still owes, in order, and whether it is skipping to Sync.
#[derive(Debug, Default)]
pub struct Pipeline {
    queue: VecDeque<Expect>,
    skipping: bool,
    /// Between CopyInResponse and the client's CopyDone/CopyFail: the server ignores Sync there.
    copy_in: bool,
}

impl Pipeline {
    /// Whether every reply has been accounted for.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Parse/Bind counts for [`crate::stats::PoolStats::prepared`].
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    client_parse: u64,
    server_parse: u64,
    bind: u64,
}

/// The prepared-statement state one relay step works on.
pub struct Tracker<'a> {
    pipeline: &'a mut Pipeline,
    client: &'a mut ClientStatements,
    server: &'a mut ServerStatements,
    pool: &'a Pool,
    max: usize,
    counts: Counts,
}

impl<'a> Tracker<'a> {
    /// Tracks a step of a link whose servers hold at most `max` (> 0) statements.
    pub fn new(
        pipeline: &'a mut Pipeline,
        client: &'a mut ClientStatements,
        server: &'a mut ServerStatements,
        pool: &'a Pool,
        max: usize,
    ) -> Self {
        Tracker {
            pipeline,
            client,
            server,
            pool,
            max,
            counts: Counts::default(),
        }
    }

    /// Appends what the server must get for one client message (`raw`: header and `body`).
    pub fn client_message(
        &mut self,
        tag: u8,
        raw: &[u8],
        body: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if self.pipeline.skipping && self.pipeline.queue.is_empty() && tag != fe::SYNC {
            // The server skips to Sync: the message changes nothing and draws no reply.
            out.extend_from_slice(raw);
            return Ok(());
        }
        match tag {
            fe::PARSE => self.parse(raw, body, out),
            fe::BIND => self.bind(raw, body, out),
            fe::DESCRIBE => self.describe(raw, body, out),
            fe::CLOSE => self.close(raw, body, out),
            fe::EXECUTE => self.forward(raw, EXECUTE_DONE, out),
            fe::SYNC => {
                out.extend_from_slice(raw);
                if !self.pipeline.copy_in {
                    self.push(Expect::Sync);
                }
                Ok(())
            }
            fe::COPY_DONE | fe::COPY_FAIL => {
                out.extend_from_slice(raw);
                if self.pipeline.copy_in {
                    self.pipeline.copy_in = false;
                } else {
                    self.push(Expect::CopyEnd);
                }
                Ok(())
            }
            fe::QUERY | fe::FUNCTION_CALL => {
                if tag == fe::QUERY {
                    self.query(body);
                }
                self.forward(raw, QUERY_DONE, out)
            }
            _ => {
                out.extend_from_slice(raw);
                Ok(())
            }
        }
    }

    /// Appends what the client must see for one server message (`raw`, header included).
    pub fn server_message(&mut self, tag: u8, raw: &[u8], out: &mut BytesMut) {
        self.emit_ready(out);
        match tag {
            be::ERROR_RESPONSE => self.on_error(raw, out),
            be::COPY_IN_RESPONSE => {
                self.on_copy_in();
                out.extend_from_slice(raw);
            }
            be::READY_FOR_QUERY => {
                let mut skipped = Vec::new();
                while let Some(e) = self.pipeline.queue.pop_front() {
                    if e.ends_at_ready() {
                        break;
                    }
                    skipped.push(e);
                }
                self.rollback_all(skipped);
                self.pipeline.skipping = false;
                out.extend_from_slice(raw);
            }
            _ => {
                let done = self.pipeline.queue.front().is_some_and(|e| e.done_by(tag));
                let swallow = done
                    && matches!(
                        self.pipeline.queue.pop_front(),
                        Some(Expect::InjectedParse(_) | Expect::EvictClose(_))
                    );
                if !swallow {
                    out.extend_from_slice(raw);
                }
            }
        }
        self.emit_ready(out);
    }

    /// Appends the pooler's own replies that are next in line (nothing owed before them).
    pub fn emit_ready(&mut self, out: &mut BytesMut) {
        if self.pipeline.skipping {
            return;
        }
        loop {
            match self.pipeline.queue.front() {
                Some(Expect::ParseComplete) => backend::parse_complete(out),
                Some(Expect::CloseComplete) => backend::close_complete(out),
                Some(Expect::CopyEnd) => {}
                _ => return,
            }
            self.pipeline.queue.pop_front();
        }
    }

    /// Adds this step's Parse/Bind counts to the pool's stats.
    pub fn finish(self) {
        let c = self.counts;
        if c.client_parse + c.server_parse + c.bind > 0 {
            self.pool
                .stats
                .prepared(c.client_parse, c.server_parse, c.bind);
        }
    }

    /// PostgreSQL ignores Sync during copy-in: the Syncs queued after the COPY's Execute, up to
    /// the client's CopyDone/CopyFail, draw no ReadyForQuery.
    fn on_copy_in(&mut self) {
        self.pipeline.copy_in = true;
        let mut i = 1;
        loop {
            match self.pipeline.queue.get(i) {
                Some(Expect::Sync) => {
                    self.pipeline.queue.remove(i);
                }
                Some(Expect::CopyEnd) => {
                    self.pipeline.queue.remove(i);
                    self.pipeline.copy_in = false;
                    return;
                }
                Some(_) => i += 1,
                None => return,
            }
        }
    }

    fn on_error(&mut self, raw: &[u8], out: &mut BytesMut) {
        let in_query = match self.pipeline.queue.front() {
            None | Some(Expect::Sync) => true,
            Some(e) => e.ends_at_ready(),
        };
        if in_query {
            out.extend_from_slice(raw);
            return;
        }
        let mut skipped = Vec::new();
        match self.pipeline.queue.pop_front() {
            Some(Expect::ReplaceError(mine)) => out.extend_from_slice(&mine),
            Some(other) => {
                out.extend_from_slice(raw);
                skipped.push(other);
            }
            None => out.extend_from_slice(raw),
        }
        self.pipeline.skipping = true;
        // The server skips everything before the next Sync.
        while self
            .pipeline
            .queue
            .front()
            .is_some_and(|e| !matches!(e, Expect::Sync))
        {
            skipped.extend(self.pipeline.queue.pop_front());
        }
        self.rollback_all(skipped);
    }

    /// Undoes failed and skipped messages latest first, so that an eviction and a Parse of the
    /// same statement later in the batch unwind to what the server really holds.
    fn rollback_all(&mut self, skipped: Vec<Expect>) {
        for e in skipped.into_iter().rev() {
            self.rollback(e);
        }
    }

    /// Undoes the bookkeeping of a message that failed or that the server skipped.
    fn rollback(&mut self, e: Expect) {
        match e {
            Expect::ClientParse(name, s) => {
                self.server.remove(&s);
                if self.client.names.get(&name).is_some_and(|c| c.id == s.id) {
                    self.client.names.remove(&name);
                }
            }
            Expect::InjectedParse(s) => self.server.remove(&s),
            Expect::EvictClose(s) => self.server.insert_oldest(s),
            _ => {}
        }
    }

    fn push(&mut self, e: Expect) {
        // While the server skips to Sync with nothing queued, a new message other than Sync is
        // skipped too: it never draws a reply.
        if self.pipeline.skipping && self.pipeline.queue.is_empty() && !matches!(e, Expect::Sync) {
            self.rollback(e);
            return;
        }
        self.pipeline.queue.push_back(e);
    }

    fn forward(
        &mut self,
        raw: &[u8],
        done: &'static [u8],
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        out.extend_from_slice(raw);
        self.push(Expect::Forward(done));
        Ok(())
    }

    /// Makes sure the server holds `s`, injecting a Parse (after evictions) when it does not.
    fn ensure(&mut self, s: &Arc<Statement>, out: &mut BytesMut) -> Result<(), EncodeError> {
        if self.server.touch(s) {
            return Ok(());
        }
        self.send_parse(s, out)?;
        self.push(Expect::InjectedParse(Arc::clone(s)));
        Ok(())
    }

    fn send_parse(&mut self, s: &Arc<Statement>, out: &mut BytesMut) -> Result<(), EncodeError> {
        while let Some(old) = self.server.evict_for_one(self.max) {
            frontend::close(out, Target::Statement, &old.name)?;
            self.push(Expect::EvictClose(old));
        }
        frontend::parse(out, &s.name, &s.query, &s.param_types)?;
        self.server.insert(Arc::clone(s));
        self.counts.server_parse += 1;
        Ok(())
    }

    fn parse(&mut self, raw: &[u8], body: &[u8], out: &mut BytesMut) -> Result<(), EncodeError> {
        let Ok(p) = Parse::parse(body) else {
            return self.forward(raw, PARSE_DONE, out);
        };
        if p.name.is_empty() {
            return self.forward(raw, PARSE_DONE, out);
        }
        self.counts.client_parse += 1;
        let s = self
            .pool
            .statements
            .intern(p.query, p.param_types().collect());
        match self.client.names.get(p.name) {
            Some(known) if known.id != s.id => {
                let mut err = BytesMut::new();
                backend::error_response(
                    &mut err,
                    Severity::Error,
                    "42P05",
                    format!(
                        "prepared statement \"{}\" already exists",
                        String::from_utf8_lossy(p.name)
                    ),
                )?;
                frontend::describe(out, Target::Statement, MISSING)?;
                self.push(Expect::ReplaceError(err));
                return Ok(());
            }
            Some(_) => {}
            None => {
                self.client.names.insert(p.name.to_vec(), Arc::clone(&s));
            }
        }
        if self.server.touch(&s) {
            self.push(Expect::ParseComplete);
            return Ok(());
        }
        self.send_parse(&s, out)?;
        self.push(Expect::ClientParse(p.name.to_vec(), s));
        Ok(())
    }

    fn bind(&mut self, raw: &[u8], body: &[u8], out: &mut BytesMut) -> Result<(), EncodeError> {
        let Ok(b) = Bind::parse(body) else {
            return self.forward(raw, BIND_DONE, out);
        };
        let Some(s) = self.client.names.get(b.statement).cloned() else {
            return self.forward(raw, BIND_DONE, out);
        };
        self.counts.bind += 1;
        self.ensure(&s, out)?;
        b.rewrite_statement(out, &s.name)?;
        self.push(Expect::Forward(BIND_DONE));
        Ok(())
    }

    fn describe(&mut self, raw: &[u8], body: &[u8], out: &mut BytesMut) -> Result<(), EncodeError> {
        let statement = Describe::parse(body)
            .ok()
            .filter(|d| d.target == Target::Statement)
            .and_then(|d| self.client.names.get(d.name).cloned());
        let Some(s) = statement else {
            return self.forward(raw, DESCRIBE_DONE, out);
        };
        self.ensure(&s, out)?;
        frontend::describe(out, Target::Statement, &s.name)?;
        self.push(Expect::Forward(DESCRIBE_DONE));
        Ok(())
    }

    fn close(&mut self, raw: &[u8], body: &[u8], out: &mut BytesMut) -> Result<(), EncodeError> {
        match Close::parse(body) {
            Ok(c) if c.target == Target::Statement && !c.name.is_empty() => {
                // Other clients may share the server's statement: only the client's name goes.
                self.client.names.remove(c.name);
                self.push(Expect::CloseComplete);
                Ok(())
            }
            _ => self.forward(raw, CLOSE_DONE, out),
        }
    }

    /// `DEALLOCATE ALL` and `DISCARD ALL` drop every statement, the client's and the server's.
    fn query(&mut self, body: &[u8]) {
        let Ok(q) = Query::parse(body) else { return };
        let text = String::from_utf8_lossy(q.query);
        let text = text.trim().trim_end_matches(';').trim();
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        let drops_all = matches!(words.as_slice(), [a, b]
            if (a.eq_ignore_ascii_case("deallocate") || a.eq_ignore_ascii_case("discard"))
                && b.eq_ignore_ascii_case("all"));
        if drops_all {
            self.client.names.clear();
            self.server.clear();
        }
    }
}
