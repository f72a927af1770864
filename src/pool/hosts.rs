//! Where a pool's new server connections go and when they may be tried: the database's host list
//! (`host=h1,h2` with one `port` or one per host, PgBouncer 1.24+) walked as `load_balance_hosts`
//! says, and the `server_login_retry` memory of the last failed login.
//!
//! One login attempt walks the whole list from its starting host, moving on after each failure
//! (as libpq does with a host list), so a dead host costs a refused connect, not a client error.
//! Round-robin starts each attempt one host further; `disable` starts where the last success was
//! and moves its start past a host that failed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::server::ServerError;

/// One server address: a host name or IP with its TCP port, or a unix socket directory (starts
/// with `/`) with the number of its `.s.PGSQL.<port>` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Host name, IP address or socket directory.
    pub host: String,
    /// TCP port or socket file number.
    pub port: u16,
}

/// `load_balance_hosts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Each login starts at the next host (PgBouncer's default).
    RoundRobin,
    /// Logins stay on one host until it fails.
    Disable,
}

impl Balance {
    /// From the database's `load_balance_hosts` value (unset = round-robin).
    pub fn from_setting(value: Option<&str>) -> Self {
        match value {
            Some(v) if v.eq_ignore_ascii_case("disable") => Balance::Disable,
            _ => Balance::RoundRobin,
        }
    }
}

/// A database's server addresses, shared by its pools and kept across their logins.
#[derive(Debug)]
pub struct HostList {
    hosts: Vec<Host>,
    balance: Balance,
    cursor: AtomicUsize,
}

impl HostList {
    /// `hosts` in configuration order; an empty list makes every login fail.
    pub fn new(hosts: Vec<Host>, balance: Balance) -> Self {
        HostList {
            hosts,
            balance,
            cursor: AtomicUsize::new(0),
        }
    }

    /// Parses a database's `host` (comma list) and ports: `ports` holds one port per host, or is
    /// empty and `port` applies to every host.
    pub fn from_config(host: &str, port: u16, ports: &[u16], balance: Balance) -> Self {
        let hosts = host
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .enumerate()
            .map(|(i, h)| Host {
                host: h.to_owned(),
                port: ports.get(i).copied().unwrap_or(port),
            })
            .collect();
        Self::new(hosts, balance)
    }

    /// The first configured host (what logs and cancels name before a connection exists).
    pub fn first(&self) -> Option<&Host> {
        self.hosts.first()
    }

    /// Every host, in configuration order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The hosts in the order one login attempt tries them.
    pub fn attempt_order(&self) -> Vec<(usize, &Host)> {
        let n = self.hosts.len();
        if n == 0 {
            return Vec::new();
        }
        let start = match self.balance {
            Balance::RoundRobin => self.cursor.fetch_add(1, Ordering::Relaxed),
            Balance::Disable => self.cursor.load(Ordering::Relaxed),
        } % n;
        (0..n)
            .map(|k| (start + k) % n)
            .filter_map(|i| self.hosts.get(i).map(|h| (i, h)))
            .collect()
    }

    /// A login to host `index` worked: `disable` stays there.
    pub fn succeeded(&self, index: usize) {
        if self.balance == Balance::Disable {
            self.cursor.store(index, Ordering::Relaxed);
        }
    }

    /// A login to host `index` failed: `disable` moves its start to the next host, unless a
    /// concurrent login already moved it.
    pub fn failed(&self, index: usize) {
        if self.balance == Balance::Disable && !self.hosts.is_empty() {
            let next = (index + 1) % self.hosts.len();
            let _ = self
                .cursor
                .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

/// The last failed server login of a pool, for `server_login_retry`.
#[derive(Debug, Default)]
pub struct LoginRetry {
    /// Set while a failure is remembered, so the hot path reads one atomic, not a lock.
    failing: AtomicBool,
    last: Mutex<Option<(Instant, Failure)>>,
}

/// A remembered login failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong, in the words clients get (the "cached error").
    pub reason: String,
    /// The database refused only for now ([`ServerError::is_temporary`]): clients already
    /// waiting keep waiting through it, as PgBouncer's do.
    pub temporary: bool,
}

impl LoginRetry {
    /// Remembers a failed login and what went wrong (the "cached error").
    pub fn failed(&self, e: &ServerError) {
        let failure = Failure {
            reason: cached_reason(e),
            temporary: e.is_temporary(),
        };
        *lock(&self.last) = Some((Instant::now(), failure));
        self.failing.store(true, Ordering::Release);
    }

    /// A login worked: clients may queue again.
    pub fn succeeded(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            *lock(&self.last) = None;
        }
    }

    /// Whether a failed login is remembered (one atomic load: the hot path's check).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// The last failure and when `retry` runs out, while it happened less than `retry` ago.
    pub fn cached(&self, retry: Duration) -> Option<(Failure, Instant)> {
        if !self.failing.load(Ordering::Acquire) {
            return None;
        }
        let last = lock(&self.last);
        let (at, failure) = last.as_ref()?;
        let until = *at + retry;
        (Instant::now() < until).then(|| (failure.clone(), until))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A single assignment per critical section: a poisoned lock still holds a whole value.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// PgBouncer's wording for a failed login in the cached error: the server's own message when it
/// refused, `connect failed` / `connect timeout` when it could not be reached.
fn cached_reason(e: &ServerError) -> String {
    match e {
        ServerError::Refused { message, .. } => message.clone(),
        ServerError::Connect { .. } => "connect failed".to_owned(),
        ServerError::Timeout => "connect timeout".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize, balance: Balance) -> HostList {
        let hosts = (0..n)
            .map(|i| Host {
                host: format!("h{i}"),
                port: 5432,
            })
            .collect();
        HostList::new(hosts, balance)
    }

    fn starts(l: &HostList) -> usize {
        l.attempt_order()
            .first()
            .map(|(i, _)| *i)
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn round_robin_starts_each_attempt_one_host_further_and_tries_all() {
        let l = list(3, Balance::RoundRobin);
        let order: Vec<usize> = l.attempt_order().iter().map(|(i, _)| *i).collect();
        assert_eq!(order, [0, 1, 2]);
        let order: Vec<usize> = l.attempt_order().iter().map(|(i, _)| *i).collect();
        assert_eq!(order, [1, 2, 0]);
        assert_eq!(starts(&l), 2);
        assert_eq!(starts(&l), 0);
    }

    #[test]
    fn disable_sticks_to_a_host_until_it_fails() {
        let l = list(2, Balance::Disable);
        assert_eq!(starts(&l), 0);
        l.succeeded(0);
        assert_eq!(starts(&l), 0);
        l.failed(0);
        assert_eq!(starts(&l), 1);
        l.succeeded(1);
        // A late failure report about host 0 does not move the start off the working host.
        l.failed(0);
        assert_eq!(starts(&l), 1);
    }

    #[test]
    fn host_lists_take_one_port_or_one_per_host() {
        let l = HostList::from_config("a, b", 6000, &[], Balance::RoundRobin);
        assert_eq!(
            l.hosts(),
            [
                Host {
                    host: "a".into(),
                    port: 6000
                },
                Host {
                    host: "b".into(),
                    port: 6000
                }
            ]
        );
        let l = HostList::from_config("a,/tmp", 1, &[7000, 7001], Balance::Disable);
        assert_eq!(
            l.hosts().iter().map(|h| h.port).collect::<Vec<_>>(),
            [7000, 7001]
        );
        assert!(
            HostList::from_config("", 1, &[], Balance::Disable)
                .attempt_order()
                .is_empty()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_cached_for_server_login_retry_only() {
        let r = LoginRetry::default();
        assert!(r.cached(Duration::from_secs(15)).is_none());
        r.failed(&ServerError::Timeout);
        let (failure, _) = r.cached(Duration::from_secs(15)).unwrap();
        assert_eq!(failure.reason, "connect timeout");
        assert!(!failure.temporary);
        tokio::time::advance(Duration::from_secs(16)).await;
        assert!(r.cached(Duration::from_secs(15)).is_none());
        r.failed(&ServerError::Refused {
            sqlstate: "28P01".into(),
            message: "password authentication failed for user \"x\"".into(),
        });
        assert!(
            r.cached(Duration::from_secs(15))
                .is_some_and(|(f, _)| !f.temporary)
        );
        r.failed(&ServerError::Refused {
            sqlstate: "57P03".into(),
            message: "the database system is shutting down".into(),
        });
        assert!(
            r.cached(Duration::from_secs(15))
                .is_some_and(|(f, _)| f.temporary)
        );
        r.succeeded();
        assert!(r.cached(Duration::from_secs(15)).is_none());
    }
}
