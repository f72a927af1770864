//! Which client batches the statement tracker would pass untouched, so the relay can send them
//! as the client's own bytes.

use crate::protocol::tag::frontend as fe;
use crate::protocol::walk::Walk;

/// True when every complete message in `buf` is one the prepared-statement tracker would pass
/// on untouched: simple queries, COPY data, and the extended protocol on the unnamed statement
/// (what `pgbench -M extended`, JDBC's first executions and most drivers' one-shot queries send).
/// Such a batch goes out as the client's own bytes, and its replies come back the same way.
/// Extended messages count only when a Sync ends the batch: their replies then all come before
/// a ReadyForQuery the relay waits for, so none can reach a later, tracked batch.
pub fn untracked_only(buf: &[u8], max_len: usize) -> bool {
    let mut walk = Walk::new(buf, max_len);
    let (mut extended, mut last) = (false, 0);
    while let Ok(Some(msg)) = walk.next_message() {
        last = msg.tag;
        let simple = matches!(
            msg.tag,
            fe::QUERY
                | fe::FUNCTION_CALL
                | fe::TERMINATE
                | fe::COPY_DATA
                | fe::COPY_DONE
                | fe::COPY_FAIL
        );
        extended |= !simple;
        let untracked = simple
            || match msg.tag {
                fe::EXECUTE | fe::SYNC | fe::FLUSH => true,
                // Parse: the statement name comes first.
                fe::PARSE => msg.body.first() == Some(&0),
                // Bind: the portal name, then the statement name.
                fe::BIND => msg
                    .body
                    .iter()
                    .position(|&b| b == 0)
                    .is_some_and(|end| msg.body.get(end + 1) == Some(&0)),
                // Describe and Close: a portal, or the unnamed statement.
                fe::DESCRIBE | fe::CLOSE => match msg.body {
                    [b'P', ..] => true,
                    [b'S', name_end, ..] => *name_end == 0,
                    _ => false,
                },
                _ => false,
            };
        if !untracked {
            return false;
        }
    }
    !extended || last == fe::SYNC
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn unnamed_extended_batches_ending_in_sync_pass_untracked() {
        use crate::protocol::frontend::{self as f, Target};
        let batch = |build: &dyn Fn(&mut BytesMut)| {
            let mut b = BytesMut::new();
            build(&mut b);
            untracked_only(&b, 1 << 20)
        };
        let unnamed = |b: &mut BytesMut| {
            f::parse(b, "", "SELECT $1", &[]).unwrap();
            f::bind(b, "", "", &[], &[Some(b"1")], &[]).unwrap();
            f::describe(b, Target::Portal, "").unwrap();
            f::execute(b, "", 0).unwrap();
        };
        assert!(batch(&|b| f::query(b, "SELECT 1").unwrap()));
        assert!(batch(&|b| {
            unnamed(b);
            f::sync(b);
        }));
        // Replies owed with no ReadyForQuery to wait for: the tracker must see what follows.
        assert!(!batch(&|b| {
            unnamed(b);
            f::flush(b);
        }));
        assert!(!batch(&|b| f::describe(b, Target::Portal, "").unwrap()));
        // Named statements are the tracker's.
        assert!(!batch(&|b| {
            f::parse(b, "s1", "SELECT 1", &[]).unwrap();
            f::sync(b);
        }));
        assert!(!batch(&|b| {
            f::bind(b, "", "s1", &[], &[], &[]).unwrap();
            f::execute(b, "", 0).unwrap();
            f::sync(b);
        }));
        assert!(!batch(&|b| {
            f::describe(b, Target::Statement, "s1").unwrap();
            f::sync(b);
        }));
        assert!(!batch(&|b| {
            f::close(b, Target::Statement, "s1").unwrap();
            f::sync(b);
        }));
        assert!(batch(&|b| {
            f::close(b, Target::Statement, "").unwrap();
            f::close(b, Target::Portal, "p").unwrap();
            f::sync(b);
        }));
    }
}
