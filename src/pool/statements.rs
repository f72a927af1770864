//! Prepared-statement bookkeeping shared by the pool (issue 6, PgBouncer's
//! `max_prepared_statements`): the pool-wide [`Registry`] giving each distinct query text and
//! parameter types one pooler-wide name, and the per-server [`ServerStatements`] LRU of the names a
//! server has prepared. Pure data: no IO; the relay in `proxy::prepared` drives it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::FastMap;

/// One distinct statement as the pooler prepares it on servers.
#[derive(Debug, PartialEq, Eq)]
pub struct Statement {
    /// Pool-unique number (the LRU key).
    pub id: u64,
    /// The pooler-wide statement name, `BOUNCECTL_<id>`.
    pub name: String,
    /// The SQL text.
    pub query: Vec<u8>,
    /// Parameter type OIDs as the client's Parse gave them.
    pub param_types: Vec<u32>,
}

/// A statement's identity: query text and parameter type OIDs.
type Key = (Vec<u8>, Vec<u32>);

/// Query text + parameter types → the pooler-wide statement, one per pool.
///
/// Holds statements weakly: once no client names one and no server holds it, it is forgotten
/// (memory stays bounded by what is in use, not by every text ever seen), and the same text seen
/// again gets a new name, which no server can still hold.
#[derive(Debug, Default)]
pub struct Registry {
    map: Mutex<Entries>,
    next: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    by_key: FastMap<Key, Weak<Statement>>,
    /// Size after the last sweep of dead entries; the next sweep waits until it doubles.
    swept_at: usize,
}

/// Entries kept before the first sweep.
const SWEEP_MIN: usize = 1024;

impl Registry {
    /// The statement for `query` and `param_types`, created on first sight.
    pub fn intern(&self, query: &[u8], param_types: Vec<u32>) -> Arc<Statement> {
        // A short critical section (one lookup or insert), never held across an await.
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (query.to_vec(), param_types);
        if let Some(s) = map.by_key.get(&key).and_then(Weak::upgrade) {
            return s;
        }
        if map.by_key.len() >= (map.swept_at * 2).max(SWEEP_MIN) {
            map.by_key.retain(|_, s| s.strong_count() > 0);
            map.swept_at = map.by_key.len();
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let statement = Arc::new(Statement {
            id,
            name: format!("BOUNCECTL_{id}"),
            query: key.0.clone(),
            param_types: key.1.clone(),
        });
        map.by_key.insert(key, Arc::downgrade(&statement));
        statement
    }

    /// How many distinct statements are in use (named by a client or held by a server).
    pub fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_key
            .values()
            .filter(|s| s.strong_count() > 0)
            .count()
    }

    /// Whether no statement was seen yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The pooler-wide statements one server connection holds, least recently used first out.
#[derive(Debug, Default)]
pub struct ServerStatements {
    held: FastMap<u64, (u64, Arc<Statement>)>,
    tick: u64,
}

impl ServerStatements {
    /// Whether the server holds `s`; marks it used when it does.
    pub fn touch(&mut self, s: &Statement) -> bool {
        self.tick += 1;
        match self.held.get_mut(&s.id) {
            Some(entry) => {
                entry.0 = self.tick;
                true
            }
            None => false,
        }
    }

    /// Records `s` as prepared (most recently used).
    pub fn insert(&mut self, s: Arc<Statement>) {
        self.tick += 1;
        self.held.insert(s.id, (self.tick, s));
    }

    /// Records `s` as held but least recently used (a Close the server skipped).
    pub fn insert_oldest(&mut self, s: Arc<Statement>) {
        self.held.insert(s.id, (0, s));
    }

    /// Forgets `s` (its Parse failed or was skipped).
    pub fn remove(&mut self, s: &Statement) {
        self.held.remove(&s.id);
    }

    /// Removes and returns the least recently used statement while more than `max - 1` are held,
    /// making room for one more.
    pub fn evict_for_one(&mut self, max: usize) -> Option<Arc<Statement>> {
        if self.held.len() < max {
            return None;
        }
        let oldest = self
            .held
            .iter()
            .min_by_key(|(_, (tick, _))| *tick)
            .map(|(id, _)| *id)?;
        self.held.remove(&oldest).map(|(_, s)| s)
    }

    /// Forgets everything (the server ran DISCARD ALL or DEALLOCATE ALL).
    pub fn clear(&mut self) {
        self.held.clear();
    }

    /// Number of statements held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_and_types_share_a_name() {
        let r = Registry::default();
        let a = r.intern(b"SELECT $1", vec![23]);
        let b = r.intern(b"SELECT $1", vec![23]);
        let c = r.intern(b"SELECT $1", vec![25]);
        assert_eq!(a.name, b.name);
        assert_ne!(a.name, c.name);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn unused_statements_are_forgotten() {
        let r = Registry::default();
        let first = r.intern(b"SELECT 1", vec![]).name.clone();
        assert_eq!(r.len(), 0);
        for i in 0..3000u32 {
            drop(r.intern(&i.to_be_bytes(), vec![]));
        }
        assert!(r.map.lock().unwrap().by_key.len() < 2100);
        let kept = r.intern(b"SELECT 1", vec![]);
        assert_ne!(kept.name, first, "a forgotten text gets a fresh name");
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let r = Registry::default();
        let s: Vec<_> = (0..3).map(|i| r.intern(&[b'a' + i], vec![])).collect();
        let mut lru = ServerStatements::default();
        lru.insert(Arc::clone(&s[0]));
        lru.insert(Arc::clone(&s[1]));
        assert!(lru.touch(&s[0]));
        let gone = lru.evict_for_one(2).unwrap();
        assert_eq!(gone.id, s[1].id);
        assert!(lru.evict_for_one(2).is_none());
        lru.insert(Arc::clone(&s[2]));
        assert_eq!(lru.len(), 2);
        assert!(!lru.touch(&s[1]));
    }
}
