//! One pool's bookkeeping: idle server connections, the count of open ones, and a FIFO of waiting
//! clients. Generic over the connection type so the waiting and limit logic is tested without
//! sockets. The mutex is held only for a few pointer moves, never across an await.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::cap::Blocked;
pub use super::cap::{CapMember, SharedCap};
use room::MAKE_ROOM_EVERY;

/// Limits a pool checks when it hands out a connection; they may change on reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `default_pool_size` (or the database/user override).
    pub pool_size: usize,
    /// `reserve_pool_size`: extra connections for clients that waited `reserve_timeout`.
    pub reserve_size: usize,
    /// `reserve_pool_timeout`.
    pub reserve_timeout: Duration,
    /// `query_wait_timeout`; `None` waits forever.
    pub wait_timeout: Option<Duration>,
    /// `server_round_robin`: idle connections are reused oldest first, spreading the load
    /// over all of them (for a load balancer behind the address), instead of newest first.
    pub round_robin: bool,
}

/// Counts of one pool at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Idle server connections.
    pub idle: usize,
    /// Server connections open or being opened.
    pub open: usize,
    /// Clients waiting for a connection.
    pub waiting: usize,
    /// How long the oldest waiter has waited.
    pub max_wait: Duration,
}

/// What a client gets from [`Queue::checkout`].
#[derive(Debug)]
pub enum Lease<T: Send + 'static> {
    /// An idle connection, ready to use.
    Ready(T),
    /// Permission to open a new connection; dropping it without [`Slot::fill`] frees the slot.
    Open(Slot<T>),
}

/// Why [`Queue::checkin_at`] gave a connection back instead of keeping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The pool is closed (shutdown).
    Closed,
    /// More connections are open than the pool's size (plus reserve) allows.
    OverSize,
    /// Nobody here waits for it, and a client of another pool waits for the place it takes
    /// under a full `max_db_connections`/`max_user_connections`.
    Wanted,
}

/// Why a checkout failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    /// Waited `query_wait_timeout` without getting a connection.
    #[error("query_wait_timeout")]
    WaitTimeout,
    /// The pool was closed (database removed or shutdown).
    #[error("pool closed")]
    Closed,
}

struct Idle<T> {
    conn: T,
    since: Instant,
}

struct Waiter<T> {
    id: u64,
    since: Instant,
    tx: oneshot::Sender<Grant<T>>,
}

enum Grant<T> {
    Conn(T),
    Open,
    /// `query_wait_timeout` passed (sent by the queue's sweeper).
    TimedOut,
}

struct State<T> {
    idle: Vec<Idle<T>>,
    /// Idle + in use + being opened.
    open: usize,
    waiters: VecDeque<Waiter<T>>,
    next_waiter: u64,
    limits: Limits,
    closed: bool,
    /// A sweeper task enforces `query_wait_timeout` while anyone waits: one timer per pool
    /// instead of one per waiting client.
    sweeping: bool,
    /// Until then no new connection is opened; clients wait for those open ([`Queue::hold_opens`]).
    opens_held_until: Option<Instant>,
}

impl<T> State<T> {
    /// Whether the pool may count a new connection now: room under its size (plus `extra`)
    /// and no hold on opens.
    fn may_open(&self, extra: usize, now: Instant) -> bool {
        self.open < self.limits.pool_size + extra && self.opens_held_until.is_none_or(|t| now >= t)
    }
}

/// One pool's idle list and wait queue.
pub struct Queue<T> {
    state: Mutex<State<T>>,
    caps: Vec<Arc<SharedCap>>,
    /// PAUSE: checkouts wait while it holds `true`.
    paused: tokio::sync::watch::Sender<bool>,
    /// `paused`'s value for the check every checkout makes: a load, where the channel's
    /// `borrow` is a read lock (an atomic write to a line every worker shares).
    paused_now: AtomicBool,
}

/// A counted, not yet opened connection slot.
pub struct Slot<T: Send + 'static> {
    queue: Option<Arc<Queue<T>>>,
}

impl<T: Send + 'static> Slot<T> {
    /// The connection was opened: it now counts as in use (return it with [`Queue::checkin`]).
    pub fn fill(mut self) {
        self.queue = None;
    }
}

impl<T: Send + 'static> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl<T: Send + 'static> Drop for Slot<T> {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            queue.discard();
        }
    }
}

fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    // A panic while holding this lock cannot leave the counters half-written (each update is a
    // single assignment), so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<T: Send + 'static> Queue<T> {
    /// A new empty pool with `limits`, counted against each of `caps`.
    pub fn new(limits: Limits, caps: Vec<Arc<SharedCap>>) -> Arc<Self> {
        Arc::new(Queue {
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                waiters: VecDeque::new(),
                next_waiter: 0,
                limits,
                closed: false,
                sweeping: false,
                opens_held_until: None,
            }),
            caps,
            paused: tokio::sync::watch::Sender::new(false),
            paused_now: AtomicBool::new(false),
        })
    }

    /// PAUSE (`true`) or RESUME (`false`): while paused, checkouts wait.
    pub fn set_paused(&self, paused: bool) {
        // The flag first: a checkout that sees it then waits on the channel, which decides.
        self.paused_now.store(paused, Ordering::Release);
        self.paused.send_replace(paused);
    }

    /// `query_wait_timeout` as the pool has it now; `None` waits forever.
    pub fn wait_timeout(&self) -> Option<Duration> {
        lock(&self.state).limits.wait_timeout
    }

    /// Whether the pool is paused.
    pub fn is_paused(&self) -> bool {
        self.paused_now.load(Ordering::Acquire)
    }

    /// Waits while the pool is paused; `query_wait_timeout` still applies.
    async fn wait_unpaused(&self, started: Instant) -> Result<(), CheckoutError> {
        if !self.is_paused() {
            return Ok(());
        }
        let wait_timeout = lock(&self.state).limits.wait_timeout;
        let mut rx = self.paused.subscribe();
        let unpaused = async {
            // The guard is dropped before returning; the sender lives as long as the queue.
            let _ = rx.wait_for(|p| !*p).await.map(|_| ());
        };
        match wait_timeout {
            Some(t) => tokio::time::timeout_at(started + t, unpaused)
                .await
                .map_err(|_| CheckoutError::WaitTimeout),
            None => {
                unpaused.await;
                Ok(())
            }
        }
    }

    /// Gets an idle connection or a slot to open one, waiting in FIFO order when the pool is full.
    pub async fn checkout(self: &Arc<Self>) -> Result<Lease<T>, CheckoutError> {
        self.checkout_since(Instant::now())
            .await
            .map(|(lease, _)| lease)
    }

    /// [`Queue::checkout`] for a client that asked at `started` (the caller's clock read); the
    /// flag says whether it had to wait, so the caller knows whether `started` is still now.
    pub async fn checkout_since(
        self: &Arc<Self>,
        started: Instant,
    ) -> Result<(Lease<T>, bool), CheckoutError> {
        let paused = self.is_paused();
        if paused {
            self.wait_unpaused(started).await?;
        }
        let (id, mut rx, limits, capped) = {
            let mut state = lock(&self.state);
            if state.closed {
                return Err(CheckoutError::Closed);
            }
            if state.waiters.is_empty() {
                if let Some(idle) = state.idle.pop() {
                    return Ok((Lease::Ready(idle.conn), paused));
                }
                if state.may_open(0, started) && self.take_caps() {
                    state.open += 1;
                    return Ok((Lease::Open(self.slot()), paused));
                }
            }
            // With room in the pool, only a shared cap keeps this client waiting.
            let capped =
                state.open < state.limits.pool_size && self.caps.iter().any(|c| c.is_capped());
            let (tx, rx) = oneshot::channel();
            let id = state.next_waiter;
            state.next_waiter += 1;
            state.waiters.push_back(Waiter {
                id,
                since: started,
                tx,
            });
            self.start_sweeper(&mut state);
            (id, rx, state.limits, capped)
        };
        let mut reserve_at =
            Some(started + limits.reserve_timeout).filter(|_| limits.reserve_size > 0);
        // Another pool's idle server may be closed to make room now; a server of another pool
        // coming back idle is closed for this client ([`Refusal::Wanted`]); and a server idle
        // since before is looked for again every MAKE_ROOM_EVERY.
        let _blocked = capped.then(|| Blocked::on(&self.caps));
        let mut room_at = None;
        if capped {
            if let Some(lease) = self.open_in_room(id, reserve_at.is_none()) {
                return Ok((lease, true));
            }
            room_at = Some(Instant::now() + MAKE_ROOM_EVERY);
        }
        loop {
            // Unlimited caps never block an open, so only capped ones are worth waiting on.
            let cap_freed = self
                .caps
                .iter()
                .filter(|c| c.is_capped())
                .map(|c| c.freed.notified());
            let any_cap_freed = futures_any(cap_freed);
            // The grant first: it is what ends nearly every wait, and a fixed order skips
            // select!'s random pick on each wake.
            tokio::select! {
                biased;
                grant = &mut rx => return match grant {
                    Ok(Grant::Conn(conn)) => Ok((Lease::Ready(conn), true)),
                    Ok(Grant::Open) => Ok((Lease::Open(self.slot()), true)),
                    Ok(Grant::TimedOut) => Err(CheckoutError::WaitTimeout),
                    Err(_) => Err(CheckoutError::Closed),
                },
                () = sleep_until(reserve_at) => {
                    reserve_at = None;
                    if let Some(lease) = self.try_reserve(id) {
                        return Ok((lease, true));
                    }
                }
                () = any_cap_freed => {
                    if let Some(lease) = self.try_open_as_waiter(id, reserve_at.is_none()) {
                        return Ok((lease, true));
                    }
                }
                () = sleep_until(room_at) => {
                    if let Some(lease) = self.open_in_room(id, reserve_at.is_none()) {
                        return Ok((lease, true));
                    }
                    room_at = Some(Instant::now() + MAKE_ROOM_EVERY);
                }
            }
        }
    }

    /// The idle connection a client may take at once, if `usable` accepts it: the
    /// synchronous fast path of [`Queue::checkout_since`], never ahead of a waiter.
    pub fn try_take_idle(&self, usable: impl FnOnce(&T) -> bool) -> Option<T> {
        if self.is_paused() {
            return None;
        }
        let mut state = lock(&self.state);
        if state.closed || !state.waiters.is_empty() || !usable(&state.idle.last()?.conn) {
            return None;
        }
        state.idle.pop().map(|idle| idle.conn)
    }

    /// Fails waiters whose `query_wait_timeout` has passed, oldest first, sleeping until the
    /// next one is due; ends when nobody waits (the next waiter starts another).
    async fn sweep(queue: std::sync::Weak<Self>) {
        loop {
            let next = match queue.upgrade() {
                Some(queue) => queue.expire_waiters(Instant::now()),
                None => return,
            };
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => return,
            }
        }
    }

    /// Times out the waiters due by `now`; the next deadline, or `None` when the sweeper may
    /// stop.
    fn expire_waiters(&self, now: Instant) -> Option<Instant> {
        let mut state = lock(&self.state);
        if let Some(timeout) = state.limits.wait_timeout {
            // FIFO: the front waiter is the oldest, so the first one not yet due ends the sweep.
            while let Some(due) = state.waiters.front().map(|w| w.since + timeout) {
                if due > now {
                    return Some(due);
                }
                if let Some(waiter) = state.waiters.pop_front() {
                    // A waiter that is already gone has nothing to be told.
                    let _ = waiter.tx.send(Grant::TimedOut);
                }
            }
        }
        state.sweeping = false;
        None
    }

    fn slot(self: &Arc<Self>) -> Slot<T> {
        Slot {
            queue: Some(Arc::clone(self)),
        }
    }

    fn take_caps(&self) -> bool {
        for (i, cap) in self.caps.iter().enumerate() {
            if !cap.try_take() {
                self.caps.iter().take(i).for_each(|c| c.give_back());
                return false;
            }
        }
        true
    }

    /// After `reserve_pool_timeout`, a waiter may open a connection beyond `pool_size`.
    fn try_reserve(self: &Arc<Self>, id: u64) -> Option<Lease<T>> {
        self.try_open_as_waiter(id, true)
    }

    fn try_open_as_waiter(self: &Arc<Self>, id: u64, reserve: bool) -> Option<Lease<T>> {
        let mut state = lock(&self.state);
        let extra = if reserve {
            state.limits.reserve_size
        } else {
            0
        };
        // Found before the caps are taken: a waiter already granted is gone from the line, and
        // caps taken for it would never be given back.
        let pos = state.waiters.iter().position(|w| w.id == id)?;
        if !state.may_open(extra, Instant::now()) || !self.take_caps() {
            return None;
        }
        state.waiters.remove(pos);
        state.open += 1;
        Some(Lease::Open(self.slot()))
    }

    /// [`Queue::checkin_at`] now, for tests: a refused connection is dropped and its slot freed.
    #[cfg(test)]
    pub fn checkin(&self, conn: T) {
        if self.checkin_at(conn, Instant::now()).is_err() {
            self.discard();
        }
    }

    /// Returns a healthy connection that became idle at `now` (the caller's clock read): to
    /// the first waiter, else to the idle list. A closed pool, or one over its size since a
    /// reload made it smaller, gives it back to be closed; its slot is still counted, so the
    /// caller closes it the usual way (which frees the slot).
    pub fn checkin_at(&self, conn: T, now: Instant) -> Result<(), (T, Refusal)> {
        let mut conn = conn;
        // Asked before this queue's lock is taken: it asks the other pools under the caps, whose
        // own check-ins may be asking this one.
        let wanted = self.caps.iter().any(|c| c.is_wanted());
        let mut state = lock(&self.state);
        if state.closed {
            return Err((conn, Refusal::Closed));
        }
        if state.open > state.limits.pool_size + state.limits.reserve_size {
            return Err((conn, Refusal::OverSize));
        }
        while let Some(waiter) = state.waiters.pop_front() {
            match waiter.tx.send(Grant::Conn(conn)) {
                Ok(()) => return Ok(()),
                Err(Grant::Conn(back)) => conn = back,
                // Only a Conn was sent, so only a Conn comes back.
                Err(Grant::Open | Grant::TimedOut) => return Ok(()),
            }
        }
        if wanted {
            return Err((conn, Refusal::Wanted));
        }
        // Checkouts take from the end: the newest there (LIFO, PgBouncer's default), or the
        // oldest when new ones queue up at the front.
        let idle = Idle { conn, since: now };
        match state.limits.round_robin {
            false => state.idle.push(idle),
            true => state.idle.insert(0, idle),
        }
        Ok(())
    }

    /// A slot to open a connection with, when the pool and its caps have room and nobody waits
    /// (a waiter would be granted it first).
    pub fn try_slot(self: &Arc<Self>) -> Option<Slot<T>> {
        let mut state = lock(&self.state);
        if state.closed
            || !state.waiters.is_empty()
            || !state.may_open(0, Instant::now())
            || !self.take_caps()
        {
            return None;
        }
        state.open += 1;
        Some(self.slot())
    }

    /// Takes in a connection opened outside a slot when there is room; gives it back otherwise.
    pub fn adopt(&self, conn: T) -> Result<(), T> {
        {
            let mut state = lock(&self.state);
            if state.closed || state.open >= state.limits.pool_size || !self.take_caps() {
                return Err(conn);
            }
            state.open += 1;
        }
        self.checkin_at(conn, Instant::now()).map_err(|(conn, _)| {
            self.discard();
            conn
        })
    }

    /// A connection was closed (or never opened): frees its slot and lets a waiter open one.
    pub fn discard(&self) {
        let mut state = lock(&self.state);
        state.open = state.open.saturating_sub(1);
        self.caps.iter().for_each(|c| c.give_back());
        self.grant_open(&mut state);
    }

    /// Lets the first waiter still there open a connection, when the pool's size and the caps
    /// have room for one more; false when no waiter got it.
    fn grant_open(&self, state: &mut State<T>) -> bool {
        if state.waiters.is_empty() || !state.may_open(0, Instant::now()) || !self.take_caps() {
            return false;
        }
        while let Some(waiter) = state.waiters.pop_front() {
            if waiter.tx.send(Grant::Open).is_ok() {
                state.open += 1;
                return true;
            }
        }
        self.caps.iter().for_each(|c| c.give_back());
        false
    }

    /// Removes idle connections for which `expired(conn, idle_for)` holds; the caller closes them.
    pub fn take_idle_where(&self, mut expired: impl FnMut(&T, Duration) -> bool) -> Vec<T> {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let (gone, kept): (Vec<_>, Vec<_>) = state
            .idle
            .drain(..)
            .partition(|i| expired(&i.conn, now.duration_since(i.since)));
        state.idle = kept;
        gone.into_iter().map(|i| i.conn).collect()
    }

    /// A snapshot of the counts SHOW POOLS needs.
    pub fn counts(&self) -> Counts {
        let state = lock(&self.state);
        Counts {
            idle: state.idle.len(),
            open: state.open,
            waiting: state.waiters.len(),
            max_wait: state
                .waiters
                .front()
                .map_or(Duration::ZERO, |w| w.since.elapsed()),
        }
    }

    /// Applies new limits (reload); connections over a smaller size close as they come back,
    /// and a larger size lets waiters open connections at once.
    pub fn set_limits(self: &Arc<Self>, limits: Limits) {
        let mut state = lock(&self.state);
        state.limits = limits;
        while self.grant_open(&mut state) {}
        // A query_wait_timeout that a reload turned on applies to those already waiting too.
        self.start_sweeper(&mut state);
    }

    /// Starts the pool's [`Queue::sweep`] when clients wait under a `query_wait_timeout` and
    /// none runs (outside a runtime there is nothing to wait for).
    fn start_sweeper(self: &Arc<Self>, state: &mut State<T>) {
        if state.sweeping || state.waiters.is_empty() || state.limits.wait_timeout.is_none() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            state.sweeping = true;
            runtime.spawn(Self::sweep(Arc::downgrade(self)));
        }
    }

    /// Closes the pool: waiters fail, idle connections are returned for closing.
    pub fn close(&self) -> Vec<T> {
        let mut state = lock(&self.state);
        state.closed = true;
        state.waiters.clear();
        state.idle.drain(..).map(|i| i.conn).collect()
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves when any of `futures` does; never when there are none.
async fn futures_any<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut futures: Vec<_> = futures.map(Box::pin).collect();
    if futures.is_empty() {
        // Nothing to wait for (and, with an empty iterator, nothing was allocated).
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for f in &mut futures {
            if f.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

mod room;
#[cfg(test)]
mod tests;
