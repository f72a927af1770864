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

use std::sync::Arc;

use bytes::BytesMut;

mod pipeline;
mod unlinked;
mod untracked;

pub use pipeline::Pipeline;
use pipeline::{
    BIND_DONE, CLOSE_DONE, DESCRIBE_DONE, EXECUTE_DONE, Expect, PARSE_DONE, QUERY_DONE,
};
pub use unlinked::answer as answer_unlinked;
pub use untracked::untracked_only;

use crate::FastMap;
use crate::pool::Pool;
use crate::pool::statements::{ServerStatements, Statement};
use crate::protocol::EncodeError;
use crate::protocol::backend::{self, Severity};
use crate::protocol::frontend::{self, Bind, Close, Describe, Parse, Query, Target};
use crate::protocol::tag::frontend as fe;

/// A statement name the pooler never prepares: a Describe of it fails on purpose, so the server
/// skips to Sync as PostgreSQL would after the client's own failed Parse.
const MISSING: &str = "bouncectl_missing";

/// One client's named statements: client name → pooler-wide statement.
#[derive(Debug, Default)]
pub struct ClientStatements {
    names: FastMap<Vec<u8>, Arc<Statement>>,
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
        if self.pipeline.skips_everything() && tag != fe::SYNC {
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
                self.pipeline.client_sync();
                Ok(())
            }
            fe::COPY_DONE | fe::COPY_FAIL => {
                out.extend_from_slice(raw);
                self.pipeline.client_copy_end();
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

    /// A simple Query forwarded untouched (nothing outstanding is tracked): only `DEALLOCATE ALL`
    /// and `DISCARD ALL` matter, as they drop every statement of the client and the server.
    pub fn observe_query(&mut self, body: &[u8]) {
        self.query(body);
    }

    /// Appends what the client must see for one server message (`raw`, header included).
    pub fn server_message(&mut self, tag: u8, raw: &[u8], out: &mut BytesMut) {
        let undo = self.pipeline.server_message(tag, raw, out);
        self.rollback_all(undo);
    }

    /// Appends the pooler's own replies that are next in line (nothing owed before them).
    pub fn emit_ready(&mut self, out: &mut BytesMut) {
        self.pipeline.emit_ready(out);
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
        self.pipeline.push(e);
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
        // The first-letter test first: parsing looks for the terminator through the whole text.
        if !starts_with_d(body) {
            return;
        }
        let Ok(q) = Query::parse(body) else { return };
        if drops_all_statements(q.query) {
            self.client.names.clear();
            self.server.clear();
        }
    }
}

/// Whether a Query whose text starts with `sql` could be `DEALLOCATE ALL` or `DISCARD ALL`
/// (the statements the tracker must see whole): blanks alone could still be either.
pub fn may_drop_all_statements(sql: &[u8]) -> bool {
    sql.iter().all(u8::is_ascii_whitespace) || starts_with_d(sql)
}

/// Whether the first non-blank byte is `d` or `D`: nearly every query fails this at once.
fn starts_with_d(sql: &[u8]) -> bool {
    let first = sql.iter().find(|b| !b.is_ascii_whitespace());
    matches!(first, Some(b'd' | b'D'))
}

/// True for `DEALLOCATE ALL` and `DISCARD ALL` (any case, spacing, trailing `;`).
///
/// Runs on every simple query in transaction mode, so it looks at bytes and allocates nothing.
fn drops_all_statements(sql: &[u8]) -> bool {
    if !starts_with_d(sql) {
        return false;
    }
    let end = sql
        .iter()
        .rposition(|b| *b != b';' && !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let mut words = sql
        .get(..end)
        .unwrap_or_default()
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty());
    match (words.next(), words.next(), words.next()) {
        (Some(verb), Some(all), None) => {
            (verb.eq_ignore_ascii_case(b"deallocate") || verb.eq_ignore_ascii_case(b"discard"))
                && all.eq_ignore_ascii_case(b"all")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::drops_all_statements;

    #[test]
    fn deallocate_and_discard_all_are_recognised_without_allocating() {
        for sql in [
            "DEALLOCATE ALL",
            "discard all",
            "  Discard\n\tALL ;; ",
            "deallocate all;",
        ] {
            assert!(drops_all_statements(sql.as_bytes()), "{sql:?}");
        }
        for sql in [
            "",
            ";",
            "discard",
            "discard plans",
            "deallocate all now",
            "select 'discard all'",
            "DEALLOCATE s1",
        ] {
            assert!(!drops_all_statements(sql.as_bytes()), "{sql:?}");
        }
    }
}
