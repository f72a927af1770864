//! `client_login_timeout` without a timer per login, as PgBouncer enforces it: a login that
//! waits on its client (a TLS handshake included) leaves its deadline here, and the janitor's
//! sweep, once a second, wakes every login past it. A tokio timer per login put an entry into
//! the timer wheel and took it out again on every connection, 3% of a login's instructions
//! under `pgbench -C`; here a wait costs a turn of one uncontended mutex. The limit is in
//! seconds, and PgBouncer's own check runs from its janitor too, so a deadline noticed up to a
//! second late is what operators know.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use tokio::time::Instant;

/// Deadlines of the logins waiting on their clients.
#[derive(Default)]
pub struct LoginDeadlines {
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
}

struct Entry {
    at: Instant,
    waker: Waker,
    expired: bool,
}

impl LoginDeadlines {
    /// Runs `work` to its end, or until a sweep finds `at` passed (`None`); no deadline with
    /// `at` unset.
    ///
    /// Takes the work pinned where the caller made it, and is no async fn: a login's handshake
    /// is most of a client task's size, and an async fn here would hold it twice (as its
    /// argument and in the local it is pinned in), for every client.
    pub fn within<'a, F: Future + ?Sized>(
        &'a self,
        at: Option<Instant>,
        mut work: Pin<&'a mut F>,
    ) -> impl Future<Output = Option<F::Output>> + 'a {
        let mut slot = Slot {
            owner: self,
            key: None,
        };
        std::future::poll_fn(move |cx| {
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            match at.is_some_and(|at| slot.expired_or_wait(at, cx.waker())) {
                true => Poll::Ready(None),
                false => Poll::Pending,
            }
        })
    }

    /// Wakes every login past its deadline at `now`: the janitor calls this once a second.
    pub fn expire(&self, now: Instant) {
        let mut slots = self.lock();
        for entry in slots.entries.iter_mut().flatten() {
            if !entry.expired && entry.at <= now {
                entry.expired = true;
                entry.waker.wake_by_ref();
            }
        }
    }

    /// Logins waiting with a deadline.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().entries.iter().flatten().count()
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A login's entry, from its first wait to its end (either way).
struct Slot<'a> {
    owner: &'a LoginDeadlines,
    key: Option<usize>,
}

impl Slot<'_> {
    /// Whether a sweep found the deadline passed; otherwise the entry holds `waker`.
    fn expired_or_wait(&mut self, at: Instant, waker: &Waker) -> bool {
        let mut slots = self.owner.lock();
        let entry = self
            .key
            .and_then(|key| slots.entries.get_mut(key))
            .and_then(Option::as_mut);
        if let Some(entry) = entry {
            if !entry.expired && !entry.waker.will_wake(waker) {
                entry.waker.clone_from(waker);
            }
            return entry.expired;
        }
        let key = slots.free.pop().unwrap_or_else(|| {
            slots.entries.push(None);
            slots.entries.len() - 1
        });
        if let Some(free) = slots.entries.get_mut(key) {
            *free = Some(Entry {
                at,
                waker: waker.clone(),
                expired: false,
            });
        }
        self.key = Some(key);
        false
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let Some(key) = self.key else {
            return;
        };
        let mut slots = self.owner.lock();
        if let Some(entry) = slots.entries.get_mut(key) {
            *entry = None;
            slots.free.push(key);
        }
        if slots.free.len() == slots.entries.len() {
            // The last login left: a storm of them does not keep its table.
            slots.entries = Vec::new();
            slots.free = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LoginDeadlines;
    use std::time::Duration;
    use tokio::time::Instant;

    #[tokio::test]
    async fn a_login_ends_at_the_first_sweep_past_its_deadline() {
        let deadlines = LoginDeadlines::default();
        let at = Instant::now() + Duration::from_secs(5);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut rx = std::pin::pin!(rx);
        let mut login = Box::pin(deadlines.within(Some(at), rx.as_mut()));
        assert!(futures_util::poll!(login.as_mut()).is_pending());
        assert_eq!(deadlines.waiting(), 1);
        deadlines.expire(at - Duration::from_secs(1));
        assert!(
            futures_util::poll!(login.as_mut()).is_pending(),
            "swept early"
        );
        deadlines.expire(at);
        assert!(matches!(
            futures_util::poll!(login.as_mut()),
            std::task::Poll::Ready(None)
        ));
        drop(login);
        assert_eq!(deadlines.waiting(), 0);
        drop(tx);
    }

    #[tokio::test]
    async fn a_finished_login_leaves_its_slot_to_the_next() {
        let deadlines = LoginDeadlines::default();
        let at = Some(Instant::now() + Duration::from_secs(60));
        let (_first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        let mut first_rx = std::pin::pin!(first_rx);
        let mut first = Box::pin(deadlines.within(at, first_rx.as_mut()));
        assert!(futures_util::poll!(first.as_mut()).is_pending());
        for _ in 0..3 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let mut rx = std::pin::pin!(rx);
            let mut login = Box::pin(deadlines.within(at, rx.as_mut()));
            assert!(futures_util::poll!(login.as_mut()).is_pending());
            assert_eq!(deadlines.waiting(), 2);
            tx.send(7).unwrap();
            assert!(matches!(login.await, Some(Ok(7))));
            assert_eq!(deadlines.waiting(), 1);
        }
        assert_eq!(
            deadlines.lock().entries.len(),
            2,
            "a freed slot is taken again"
        );
        drop(first);
        assert_eq!(
            deadlines.lock().entries.capacity(),
            0,
            "kept after the last login"
        );
        let one = std::pin::pin!(async { 1 });
        assert_eq!(Some(1), deadlines.within(None, one).await);
    }
}
