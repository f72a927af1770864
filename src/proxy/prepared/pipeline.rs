//! The in-order account of what a server still owes for the messages sent to it, for the
//! prepared-statement relay: which replies to forward, which to swallow (injected Parse, evicting
//! Close), where the pooler's own replies go, what the server skips after an error (up to Sync)
//! and the Syncs it ignores during COPY IN. Knows nothing of statements' meaning: the entries of
//! failed or skipped messages go back to the caller to undo.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;

use crate::pool::statements::Statement;
use crate::protocol::backend;
use crate::protocol::tag::backend as be;

/// Replies that complete a Parse.
pub(super) const PARSE_DONE: &[u8] = &[be::PARSE_COMPLETE];
/// Replies that complete a Bind.
pub(super) const BIND_DONE: &[u8] = &[be::BIND_COMPLETE];
/// Replies that complete a Describe (after any ParameterDescription).
pub(super) const DESCRIBE_DONE: &[u8] = &[be::ROW_DESCRIPTION, be::NO_DATA];
/// Replies that complete an Execute.
pub(super) const EXECUTE_DONE: &[u8] = &[
    be::COMMAND_COMPLETE,
    be::EMPTY_QUERY_RESPONSE,
    be::PORTAL_SUSPENDED,
];
/// Replies that complete a Close.
pub(super) const CLOSE_DONE: &[u8] = &[be::CLOSE_COMPLETE];
/// Replies that complete a Query or FunctionCall (errors inside them do not skip anything).
pub(super) const QUERY_DONE: &[u8] = &[be::READY_FOR_QUERY];

/// What the server's replies to one message mean to the relay.
#[derive(Debug)]
pub(super) enum Expect {
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

    /// Whether the server skips every message until the next Sync the client sends.
    pub(super) fn skips_everything(&self) -> bool {
        self.skipping && self.queue.is_empty()
    }

    pub(super) fn push(&mut self, e: Expect) {
        self.queue.push_back(e);
    }

    /// The client's Sync: PostgreSQL ignores it in copy-in mode.
    pub(super) fn client_sync(&mut self) {
        if !self.copy_in {
            self.push(Expect::Sync);
        }
    }

    /// The client's CopyDone or CopyFail.
    pub(super) fn client_copy_end(&mut self) {
        if self.copy_in {
            self.copy_in = false;
        } else {
            self.push(Expect::CopyEnd);
        }
    }
    /// Appends what the client must see for one server message (`raw`, header included).
    /// Returns the entries of messages that failed or were skipped, in order, for rollback.
    pub(super) fn server_message(
        &mut self,
        tag: u8,
        raw: &[u8],
        out: &mut BytesMut,
    ) -> Vec<Expect> {
        self.emit_ready(out);
        let mut undo = Vec::new();
        match tag {
            be::ERROR_RESPONSE => undo = self.on_error(raw, out),
            be::COPY_IN_RESPONSE => {
                self.on_copy_in();
                out.extend_from_slice(raw);
            }
            be::READY_FOR_QUERY => {
                while let Some(e) = self.queue.pop_front() {
                    if e.ends_at_ready() {
                        break;
                    }
                    undo.push(e);
                }
                self.skipping = false;
                out.extend_from_slice(raw);
            }
            _ => {
                let done = self.queue.front().is_some_and(|e| e.done_by(tag));
                let swallow = done
                    && matches!(
                        self.queue.pop_front(),
                        Some(Expect::InjectedParse(_) | Expect::EvictClose(_))
                    );
                if !swallow {
                    out.extend_from_slice(raw);
                }
            }
        }
        self.emit_ready(out);
        undo
    }

    /// Appends the pooler's own replies that are next in line (nothing owed before them).
    pub(super) fn emit_ready(&mut self, out: &mut BytesMut) {
        if self.skipping {
            return;
        }
        loop {
            match self.queue.front() {
                Some(Expect::ParseComplete) => backend::parse_complete(out),
                Some(Expect::CloseComplete) => backend::close_complete(out),
                Some(Expect::CopyEnd) => {}
                _ => return,
            }
            self.queue.pop_front();
        }
    }

    /// PostgreSQL ignores Sync during copy-in: the Syncs queued after the COPY's Execute, up to
    /// the client's CopyDone/CopyFail, draw no ReadyForQuery.
    fn on_copy_in(&mut self) {
        self.copy_in = true;
        let mut i = 1;
        loop {
            match self.queue.get(i) {
                Some(Expect::Sync) => {
                    self.queue.remove(i);
                }
                Some(Expect::CopyEnd) => {
                    self.queue.remove(i);
                    self.copy_in = false;
                    return;
                }
                Some(_) => i += 1,
                None => return,
            }
        }
    }

    fn on_error(&mut self, raw: &[u8], out: &mut BytesMut) -> Vec<Expect> {
        let in_query = match self.queue.front() {
            None | Some(Expect::Sync) => true,
            Some(e) => e.ends_at_ready(),
        };
        if in_query {
            out.extend_from_slice(raw);
            return Vec::new();
        }
        let mut skipped = Vec::new();
        match self.queue.pop_front() {
            Some(Expect::ReplaceError(mine)) => out.extend_from_slice(&mine),
            Some(other) => {
                out.extend_from_slice(raw);
                skipped.push(other);
            }
            None => out.extend_from_slice(raw),
        }
        self.skipping = true;
        // The server skips everything before the next Sync.
        while self
            .queue
            .front()
            .is_some_and(|e| !matches!(e, Expect::Sync))
        {
            skipped.extend(self.queue.pop_front());
        }
        skipped
    }
}

#[cfg(test)]
mod tests;
