//! Making room for a client that a pool would otherwise keep waiting: a full shared cap closes
//! another pool's longest-idle connection, and after a refused login no new connection is
//! opened for a while, so clients wait for those open.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Lease, Queue, lock};

/// How often a waiter held back by a full cap looks for an idle connection to close.
pub(super) const MAKE_ROOM_EVERY: Duration = Duration::from_millis(200);

impl<T: Send + 'static> Queue<T> {
    /// For waiter `id` of a pool with room that a full cap holds back: has the cap close
    /// another pool's longest-idle connection, then opens in its place.
    pub(super) fn open_in_room(self: &Arc<Self>, id: u64, reserve: bool) -> Option<Lease<T>> {
        if !lock(&self.state).may_open(0, Instant::now()) {
            return None;
        }
        let mut made = false;
        for cap in &self.caps {
            made |= cap.make_room();
        }
        made.then(|| self.try_open_as_waiter(id, reserve)).flatten()
    }

    /// Whether a client waits that could open a connection if a shared cap had room.
    pub fn wants_room(&self) -> bool {
        let state = lock(&self.state);
        !state.waiters.is_empty() && state.may_open(0, Instant::now())
    }

    /// Since when the connection idle longest has been idle.
    pub fn oldest_idle(&self) -> Option<Instant> {
        lock(&self.state).idle.iter().map(|i| i.since).min()
    }

    /// Takes the connection idle longest out of the idle list; the caller closes it.
    pub fn take_oldest_idle(&self) -> Option<T> {
        let mut state = lock(&self.state);
        let (pos, _) = state.idle.iter().enumerate().min_by_key(|(_, i)| i.since)?;
        Some(state.idle.remove(pos).conn)
    }

    /// Opens no new connection until `until`: clients wait for one of those open instead, as
    /// PgBouncer's pool launches no login for `server_login_retry` after one failed. At
    /// `until`, waiters the pool has room for may open again.
    pub fn hold_opens(self: &Arc<Self>, until: Instant) {
        let mut state = lock(&self.state);
        if state.opens_held_until.is_some_and(|t| t >= until) {
            return;
        }
        state.opens_held_until = Some(until);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let queue = Arc::downgrade(self);
            runtime.spawn(async move {
                tokio::time::sleep_until(until).await;
                if let Some(queue) = queue.upgrade() {
                    let mut state = lock(&queue.state);
                    if state.opens_held_until.is_some_and(|t| t <= Instant::now()) {
                        state.opens_held_until = None;
                        while queue.grant_open(&mut state) {}
                    }
                }
            });
        }
    }
}
