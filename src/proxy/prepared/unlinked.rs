//! A client holding no server that only names statements (Parse and Close of named statements,
//! then Sync or Flush: what libpq's `PQprepare` and `PQsendPrepare` send) is answered by the
//! pooler itself. Statements are prepared on a server lazily, at Bind or Describe, so nothing
//! needs a server yet.
//!
//! Why: a client that prepares synchronously while other clients of the same thread hold every
//! server in a transaction (`pgbench -M prepared -j 2 -c 50` TPC-B over a pool of 5) would wait
//! for a server that only its own thread can free. The cost: a Parse with broken SQL is reported
//! at its first Bind or Describe rather than at the Parse.

use bytes::BytesMut;

use super::ClientStatements;
use crate::config::PoolMode;
use crate::pool::Pool;
use crate::protocol::backend::{self, Severity, TxStatus};
use crate::protocol::frontend::{Close, Parse, Target};
use crate::protocol::tag::{backend as be, frontend as fe};
use crate::protocol::walk::Walk;

/// The answer to the buffered messages, when they need no server: how many bytes of `buf` it
/// covers and what the client gets. `None` when a server is needed (or more bytes).
pub fn answer(
    buf: &[u8],
    max_len: usize,
    mode: PoolMode,
    client: &mut ClientStatements,
    pool: &Pool,
) -> Option<(usize, BytesMut)> {
    // The first byte rules out almost every request before anything else is looked at.
    if !matches!(buf.first(), Some(&(fe::PARSE | fe::CLOSE))) || mode == PoolMode::Session {
        return None;
    }
    let mut walk = Walk::new(buf, max_len);
    let mut plan = Vec::new();
    let mut end = None;
    while let Ok(Some(msg)) = walk.next_message() {
        match msg.tag {
            fe::PARSE => {
                let p = Parse::parse(msg.body).ok().filter(|p| !p.name.is_empty())?;
                plan.push(Step::Parse(p));
            }
            fe::CLOSE => {
                let c = Close::parse(msg.body)
                    .ok()
                    .filter(|c| c.target == Target::Statement && !c.name.is_empty())?;
                plan.push(Step::Close(c.name));
            }
            fe::SYNC | fe::FLUSH if !plan.is_empty() => {
                end = Some((msg.tag, walk.consumed()));
                break;
            }
            _ => return None,
        }
    }
    let (last, consumed) = end?;
    // Read last: unnamed Parses (the extended protocol's usual first message) never get here.
    if pool.settings().max_prepared_statements == 0 {
        return None;
    }
    // Messages after the Sync or Flush go through the usual path once this answer is out.
    let mut out = BytesMut::new();
    let mut parses = 0;
    for step in plan {
        match step {
            Step::Parse(p) => {
                parses += 1;
                let s = pool.statements.intern(p.query, p.param_types().collect());
                match client.names.get(p.name) {
                    Some(known) if known.id != s.id => {
                        // As PostgreSQL: an error, and the rest up to Sync is skipped.
                        backend::error_response(
                            &mut out,
                            Severity::Error,
                            "42P05",
                            format!(
                                "prepared statement \"{}\" already exists",
                                String::from_utf8_lossy(p.name)
                            ),
                        )
                        .ok()?;
                        if last == fe::FLUSH {
                            // The error must wait for the client's Sync: a server decides.
                            return None;
                        }
                        break;
                    }
                    Some(_) => {}
                    None => {
                        client.names.insert(p.name.to_vec(), s);
                    }
                }
                out.extend_from_slice(&[be::PARSE_COMPLETE, 0, 0, 0, 4]);
            }
            Step::Close(name) => {
                client.names.remove(name);
                out.extend_from_slice(&[be::CLOSE_COMPLETE, 0, 0, 0, 4]);
            }
        }
    }
    if last == fe::SYNC {
        backend::ready_for_query(&mut out, TxStatus::Idle);
    }
    pool.stats.prepared(parses, 0, 0);
    Some((consumed, out))
}

enum Step<'a> {
    Parse(Parse<'a>),
    Close(&'a [u8]),
}
