//! Log output for `serve`: one line per event through tracing, to `logfile` or stderr, as text
//! (PgBouncer's wording) or JSON (`log_format`), with the level from `verbose` and `-v`/`-q`
//! (`RUST_LOG` overrides), and to syslog as well with `syslog = 1`. A reload (SIGHUP or RELOAD)
//! reopens `logfile`, so logrotate's move-then-HUP works, and applies a changed `log_format` and
//! syslog settings.

mod format;
mod syslog;

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{Config, Key, LogFormat};

/// Where lines go now.
enum Target {
    Stderr,
    Sink,
    File(File),
}

/// The running log output; [`Logging::apply`] follows a reloaded configuration.
#[derive(Clone)]
pub struct Logging {
    target: Arc<Mutex<Target>>,
    json: Arc<AtomicBool>,
    syslog: syslog::Syslog,
    quiet: bool,
}

fn lock(target: &Mutex<Target>) -> MutexGuard<'_, Target> {
    // A panic mid-write leaves a usable file handle behind.
    target
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn open(path: &str) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl Logging {
    /// Reopens `logfile` (the same path after a logrotate move gives a fresh file) or goes back to
    /// stderr when it was unset, and applies `log_format`. On an open error the old target stays
    /// and the error is logged there. Syslog follows `syslog`, `syslog_ident` and
    /// `syslog_facility`.
    pub fn apply(&self, config: &Config) {
        self.syslog.apply(config);
        self.json.store(
            config.pgbouncer.log_format() == LogFormat::Json,
            Ordering::Relaxed,
        );
        let next = match config.pgbouncer.text(Key::Logfile) {
            Some(path) => match open(path) {
                Ok(file) => Target::File(file),
                Err(e) => {
                    tracing::error!("cannot reopen logfile {path}, keeping the old one: {e}");
                    return;
                }
            },
            None if self.quiet => Target::Sink,
            None => Target::Stderr,
        };
        *lock(&self.target) = next;
    }

    /// Logs the error that stops the pooler where its lines go, as PgBouncer's FATAL lines: after
    /// `-d` stderr is /dev/null, and an operator reads the logfile or syslog. When lines go to
    /// stderr, the caller's report prints it there once instead.
    pub fn fatal(&self, err: &anyhow::Error) {
        let on_stderr = matches!(*lock(&self.target), Target::Stderr);
        if !on_stderr {
            tracing::error!("{err:#}");
        }
    }
}

/// Writes each formatted line (the fmt layer writes a whole event at once) to the current target.
pub struct LineWriter(Arc<Mutex<Target>>);

impl std::io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut *lock(&self.0) {
            Target::Stderr => std::io::Write::write(&mut std::io::stderr(), buf),
            Target::Sink => Ok(buf.len()),
            Target::File(file) => std::io::Write::write(file, buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut *lock(&self.0) {
            Target::Stderr => std::io::Write::flush(&mut std::io::stderr()),
            Target::Sink => Ok(()),
            Target::File(file) => std::io::Write::flush(file),
        }
    }
}

impl<'a> MakeWriter<'a> for Logging {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter(Arc::clone(&self.target))
    }
}

/// Installs the global subscriber; call once, before the runtime starts.
pub fn init(config: &Config, verbose_flags: u8, quiet: bool) -> anyhow::Result<Logging> {
    let verbose = config.pgbouncer.int(Key::Verbose) + i64::from(verbose_flags);
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("bouncectl={level},warn")));
    let target = match config.pgbouncer.text(Key::Logfile) {
        Some(path) => Target::File(
            open(path).map_err(|e| anyhow::anyhow!("cannot open logfile {path}: {e}"))?,
        ),
        None if quiet => Target::Sink,
        None => Target::Stderr,
    };
    let logging = Logging {
        target: Arc::new(Mutex::new(target)),
        json: Arc::new(AtomicBool::new(
            config.pgbouncer.log_format() == LogFormat::Json,
        )),
        syslog: syslog::Syslog::default(),
        quiet,
    };
    logging.syslog.apply(config);
    let lines = tracing_subscriber::fmt::layer()
        .event_format(format::Lines::new(Arc::clone(&logging.json)))
        .with_writer(logging.clone());
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(logging.syslog.clone())
        .try_init();
    // A second init (tests starting several servers) keeps the first subscriber.
    let _ = result;
    Ok(logging)
}
