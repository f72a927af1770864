//! `syslog = 1`: every log line also goes to the local syslog socket, `/dev/log` (or
//! `$BOUNCECTL_SYSLOG_SOCKET`), as `<PRI>ident[pid]: message`, a form rsyslog and journald both
//! parse; `syslog_ident` and `syslog_facility` as PgBouncer's. A send never blocks the pooler: a
//! line the socket will not take at once is dropped, and a missing socket is looked for again
//! at most once a second.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::config::{Config, Key};

/// The environment variable naming another syslog socket than `/dev/log`.
pub const SOCKET_ENV: &str = "BOUNCECTL_SYSLOG_SOCKET";

/// How often a missing or failed socket is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Where syslog lines go, if anywhere; shared by the layer and reloads.
#[derive(Clone, Default)]
pub struct Syslog {
    on: Arc<AtomicBool>,
    sink: Arc<Mutex<Option<Sink>>>,
}

struct Sink {
    path: PathBuf,
    ident: String,
    facility: u8,
    pid: u32,
    socket: Option<UnixDatagram>,
    /// When the socket was last (re)connected, successfully or not.
    tried: Option<Instant>,
}

fn lock(sink: &Mutex<Option<Sink>>) -> MutexGuard<'_, Option<Sink>> {
    sink.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The syslog facility code of a `syslog_facility` name (the config only admits these).
fn facility(name: &str) -> u8 {
    match name {
        "auth" => 4,
        "authpriv" => 10,
        "user" => 1,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => 3, // daemon, PgBouncer's default
    }
}

/// The syslog severity of a tracing level (err, warning, info, debug).
fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// `<PRI>ident[pid]: message`.
fn datagram(facility: u8, severity: u8, ident: &str, pid: u32, message: &str) -> String {
    format!(
        "<{}>{ident}[{pid}]: {message}",
        u16::from(facility) * 8 + u16::from(severity)
    )
}

impl Syslog {
    /// Follows `syslog`, `syslog_ident` and `syslog_facility` of `config`.
    pub fn apply(&self, config: &Config) {
        let s = &config.pgbouncer;
        let mut sink = lock(&self.sink);
        if !s.flag(Key::Syslog) {
            *sink = None;
            self.on.store(false, Ordering::Relaxed);
            return;
        }
        let path = std::env::var_os(SOCKET_ENV).map_or_else(|| "/dev/log".into(), PathBuf::from);
        let ident = s.text(Key::SyslogIdent).unwrap_or("pgbouncer").to_owned();
        let facility = facility(s.text(Key::SyslogFacility).unwrap_or("daemon"));
        match sink.as_mut() {
            Some(kept) if kept.path == path => {
                kept.ident = ident;
                kept.facility = facility;
            }
            _ => {
                *sink = Some(Sink {
                    path,
                    ident,
                    facility,
                    pid: std::process::id(),
                    socket: None,
                    tried: None,
                });
            }
        }
        self.on.store(true, Ordering::Relaxed);
    }

    fn send(&self, severity: u8, message: &str) {
        let mut guard = lock(&self.sink);
        let Some(sink) = guard.as_mut() else { return };
        if sink.socket.is_none() {
            if sink.tried.is_some_and(|t| t.elapsed() < RETRY_EVERY) {
                return;
            }
            sink.tried = Some(Instant::now());
            sink.socket = UnixDatagram::unbound()
                .and_then(|socket| {
                    socket.connect(&sink.path)?;
                    socket.set_nonblocking(true)?;
                    Ok(socket)
                })
                .ok();
        }
        let Some(socket) = &sink.socket else { return };
        let line = datagram(sink.facility, severity, &sink.ident, sink.pid, message);
        match socket.send(line.as_bytes()) {
            Ok(_) => {}
            // The reader is behind: this line is lost, the next one may pass.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // Gone (the syslog daemon restarted): connect again on a later line.
            Err(_) => sink.socket = None,
        }
    }
}

impl<S: Subscriber> Layer<S> for Syslog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        self.send(
            severity(event.metadata().level()),
            &super::format::body(event),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_carry_pgbouncers_priority_and_tag() {
        // local3 (19) * 8 + info (6); daemon (3) * 8 + err (3).
        assert_eq!(
            datagram(
                facility("local3"),
                severity(&Level::INFO),
                "pgb",
                42,
                "hello"
            ),
            "<158>pgb[42]: hello"
        );
        assert_eq!(
            datagram(facility("daemon"), severity(&Level::ERROR), "pgb", 1, "x"),
            "<27>pgb[1]: x"
        );
        assert_eq!(severity(&Level::WARN), 4);
        assert_eq!(severity(&Level::TRACE), 7);
        for name in crate::config::keys::SYSLOG_FACILITIES {
            assert!(facility(name) != 3 || *name == "daemon", "{name}");
        }
    }
}
