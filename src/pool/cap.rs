//! Server connections shared by every pool of one database (`max_db_connections`) or one user
//! (`max_user_connections`). A client whose pool has room but whose cap is full has its cap
//! close the longest-idle server of another pool under it, as PgBouncer's `evict_connection`:
//! otherwise idle servers of one user would keep another user's clients waiting until
//! `server_idle_timeout`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

/// A pool under a [`SharedCap`], as the cap sees it when it needs room.
pub trait CapMember: Send + Sync {
    /// Since when its longest-idle connection has been idle; `None` without one.
    fn oldest_idle(&self) -> Option<Instant>;
    /// Closes that connection (PgBouncer's reason: "evicted"); false when it is gone already.
    fn evict_oldest_idle(&self) -> bool;
    /// Whether a client waits that a free place under the cap would let open a connection.
    fn wants_room(&self) -> bool;
}

/// A cap on connections shared by pools; 0 means unlimited.
#[derive(Default)]
pub struct SharedCap {
    state: Mutex<(usize, usize)>,
    /// The maximum again, so waiters ask "is it capped?" without the lock.
    capped: AtomicBool,
    pub(super) freed: Notify,
    members: Mutex<Vec<Weak<dyn CapMember>>>,
    /// Clients waiting only because this cap was full when they queued ([`Blocked`]).
    blocked: AtomicUsize,
}

impl std::fmt::Debug for SharedCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (open, max) = *lock(&self.state);
        write!(f, "SharedCap({open}/{max})")
    }
}

fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    // Each update is a single assignment or push: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SharedCap {
    /// A cap of `max` connections (0 = unlimited).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(SharedCap {
            state: Mutex::new((0, max)),
            capped: AtomicBool::new(max != 0),
            ..SharedCap::default()
        })
    }

    /// Changes the cap (reload).
    pub fn set_max(&self, max: usize) {
        lock(&self.state).1 = max;
        self.capped.store(max != 0, Relaxed);
        self.freed.notify_waiters();
    }

    /// Whether a maximum is set (0 means unlimited).
    pub fn is_capped(&self) -> bool {
        self.capped.load(Relaxed)
    }

    /// Connections currently counted.
    pub fn open(&self) -> usize {
        lock(&self.state).0
    }

    /// Adds a pool to those [`SharedCap::make_room`] may take a connection from; pools gone
    /// since are dropped from the list.
    pub fn join(&self, member: Weak<dyn CapMember>) {
        let mut members = lock(&self.members);
        members.retain(|m| m.strong_count() > 0);
        members.push(member);
    }

    fn is_full(&self) -> bool {
        let (open, max) = *lock(&self.state);
        max != 0 && open >= max
    }

    pub(super) fn try_take(&self) -> bool {
        let mut state = lock(&self.state);
        if state.1 != 0 && state.0 >= state.1 {
            return false;
        }
        state.0 += 1;
        true
    }

    pub(super) fn give_back(&self) {
        let capped = {
            let mut state = lock(&self.state);
            state.0 = state.0.saturating_sub(1);
            state.1 != 0
        };
        if capped {
            self.freed.notify_waiters();
        }
    }

    /// Whether a client of one of its pools waits for a place: a connection coming back idle
    /// elsewhere is better closed, to free its own. The count of held-back clients keeps the
    /// common case to two loads; the pools are asked only then, since a client counted may
    /// have come up against its own pool's size since (a place freed for it would go unused,
    /// and the closed connection be logged in again at its pool's next transaction).
    pub(super) fn is_wanted(&self) -> bool {
        if !self.is_capped() || self.blocked.load(Relaxed) == 0 || !self.is_full() {
            return false;
        }
        let members: Vec<_> = lock(&self.members)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        members.iter().any(|m| m.wants_room())
    }

    /// When full, closes the connection idle longest among its pools; whether one closed.
    pub(super) fn make_room(&self) -> bool {
        if !self.is_full() {
            return false;
        }
        // Out of the lock: closing a connection gives its place back through this cap.
        let members: Vec<_> = lock(&self.members)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        members
            .iter()
            .filter_map(|m| Some((m.oldest_idle()?, m)))
            .min_by_key(|(since, _)| *since)
            .is_some_and(|(_, m)| m.evict_oldest_idle())
    }
}

/// A waiting client counted on the caps that were full when it queued, until it stops waiting.
pub(super) struct Blocked<'a>(Vec<&'a SharedCap>);

impl<'a> Blocked<'a> {
    /// Counts the client on each of `caps` that is full now.
    pub(super) fn on(caps: &'a [Arc<SharedCap>]) -> Self {
        let full: Vec<&SharedCap> = caps.iter().map(|c| &**c).filter(|c| c.is_full()).collect();
        for cap in &full {
            cap.blocked.fetch_add(1, Relaxed);
        }
        Blocked(full)
    }
}

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        for cap in &self.0 {
            cap.blocked.fetch_sub(1, Relaxed);
        }
    }
}
