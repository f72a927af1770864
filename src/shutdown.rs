//! The process's lifecycle as a value on a watch channel, so every task sees the same phase.
//!
//! Signals follow PgBouncer ≥ 1.23: SIGINT asks for a safe shutdown (stop accepting, exit once every
//! server connection is released), SIGTERM waits until every client has left (a second SIGTERM
//! stops at once), SIGQUIT stops at once.

use tokio::sync::watch;

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    /// True once new clients are no longer accepted.
    pub fn is_draining(self) -> bool {
        self != Phase::Running
    }
}

/// The owner's side: moves the phase forward (never back).
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<Phase>,
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
        }
    }

    /// Moves to `phase` if it is later than the current one.
    pub fn advance(&self, phase: Phase) {
        self.tx.send_if_modified(|current| {
            if phase > *current {
                *current = phase;
                true
            } else {
                false
            }
        });
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.tx.borrow()
    }

    /// A receiver for tasks that wait on phase changes.
    pub fn subscribe(&self) -> watch::Receiver<Phase> {
        self.tx.subscribe()
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
