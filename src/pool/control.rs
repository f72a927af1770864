//! The admin console's switches over pools: which databases are paused (PAUSE, KILL, SUSPEND)
//! and which refuse new logins (DISABLE). The registry consults them when it creates a pool, the
//! handshake when a client logs in; the console flips them and applies them to existing pools.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Default)]
struct State {
    all_paused: bool,
    paused: BTreeSet<String>,
    disabled: BTreeSet<String>,
    suspended: bool,
}

/// PAUSE / DISABLE / SUSPEND state.
#[derive(Debug, Default)]
pub struct Controls {
    state: Mutex<State>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Set inserts and flag assignments only: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Controls {
    /// Whether `database`'s pools are paused (by `PAUSE db` or a global PAUSE).
    pub fn is_paused(&self, database: &str) -> bool {
        let s = lock(&self.state);
        s.all_paused || s.suspended || s.paused.contains(database)
    }

    /// Whether every pool is paused (global PAUSE).
    pub fn all_paused(&self) -> bool {
        lock(&self.state).all_paused
    }

    /// Pauses `database`, or everything with `None`; false when it already was.
    pub fn pause(&self, database: Option<&str>) -> bool {
        let mut s = lock(&self.state);
        match database {
            None => !std::mem::replace(&mut s.all_paused, true),
            Some(db) => s.paused.insert(db.to_owned()),
        }
    }

    /// Resumes `database`, or everything with `None`; false when it was not paused.
    pub fn resume(&self, database: Option<&str>) -> bool {
        let mut s = lock(&self.state);
        match database {
            None => {
                let was = s.all_paused || s.suspended || !s.paused.is_empty();
                s.all_paused = false;
                s.suspended = false;
                s.paused.clear();
                was
            }
            Some(db) => s.paused.remove(db),
        }
    }

    /// SUSPEND; false when already suspended.
    pub fn suspend(&self) -> bool {
        !std::mem::replace(&mut lock(&self.state).suspended, true)
    }

    /// Whether SUSPEND is in force.
    pub fn is_suspended(&self) -> bool {
        lock(&self.state).suspended
    }

    /// Whether `database` refuses new logins.
    pub fn is_disabled(&self, database: &str) -> bool {
        lock(&self.state).disabled.contains(database)
    }

    /// DISABLE (`true`) or ENABLE (`false`) `database`.
    pub fn set_disabled(&self, database: &str, disabled: bool) {
        let mut s = lock(&self.state);
        if disabled {
            s.disabled.insert(database.to_owned());
        } else {
            s.disabled.remove(database);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_resume_and_disable() {
        let c = Controls::default();
        assert!(c.pause(Some("a")));
        assert!(!c.pause(Some("a")));
        assert!(c.is_paused("a") && !c.is_paused("b"));
        assert!(c.pause(None));
        assert!(c.is_paused("b"));
        assert!(c.resume(None));
        assert!(!c.is_paused("a"));
        c.set_disabled("x", true);
        assert!(c.is_disabled("x"));
        c.set_disabled("x", false);
        assert!(!c.is_disabled("x"));
    }
}
