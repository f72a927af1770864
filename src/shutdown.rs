//! The process's lifecycle as a value on a watch channel, so every task sees the same phase.
//!
//! Signals follow PgBouncer ≥ 1.23: SIGINT asks for a safe shutdown (stop accepting, exit once every
//! server connection is released), SIGTERM waits until every client has left (a second SIGTERM
//! stops at once), SIGQUIT stops at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::SeqCst};

use tokio::sync::watch;

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Serving normally.
    Running,
    /// SIGTERM: no new clients; existing clients keep their sessions until they leave.
    WaitForClients,
    /// SIGINT: no new clients; each client is dropped at its next release point.
    WaitForServers,
    /// SIGQUIT or a second SIGTERM: close everything now.
    Immediate,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Running,
            1 => Phase::WaitForClients,
            2 => Phase::WaitForServers,
            _ => Phase::Immediate,
        }
    }

    /// True once new clients are no longer accepted.
    pub fn is_draining(self) -> bool {
        self != Phase::Running
    }
}

/// The owner's side: moves the phase forward (never back).
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<Phase>,
    /// The phase again, for the relay's per-request check: an atomic load, not the channel's lock.
    now: Arc<AtomicU8>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A handle in `Running`.
    pub fn new() -> Self {
        Shutdown {
            tx: watch::Sender::new(Phase::Running),
            now: Arc::new(AtomicU8::new(Phase::Running as u8)),
        }
    }

    /// Moves to `phase` if it is later than the current one.
    pub fn advance(&self, phase: Phase) {
        self.tx.send_if_modified(|current| {
            if phase > *current {
                *current = phase;
                // Stored before the channel wakes anyone, so whoever is woken sees it.
                self.now.store(phase as u8, SeqCst);
                true
            } else {
                false
            }
        });
    }

    /// The current phase (one atomic load).
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.now.load(SeqCst))
    }

    /// A receiver for tasks that wait on phase changes.
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.tx.subscribe()
    }

    /// A read-only view of the phase, for a session's checks: one shared counter to take and
    /// drop per client, where a clone of the whole handle is the channel's sender as well.
    pub fn view(&self) -> PhaseView {
        PhaseView(Arc::clone(&self.now))
    }
}

/// The phase as [`Shutdown::phase`] reads it, without the means to move it.
#[derive(Debug, Clone)]
pub struct PhaseView(Arc<AtomicU8>);

impl PhaseView {
    /// The current phase (one atomic load).
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.0.load(SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        let s = Shutdown::new();
        s.advance(Phase::WaitForServers);
        s.advance(Phase::WaitForClients);
        assert_eq!(s.phase(), Phase::WaitForServers);
        s.advance(Phase::Immediate);
        assert_eq!(s.phase(), Phase::Immediate);
        assert!(s.phase().is_draining());
    }
}
