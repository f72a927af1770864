//! One log line per event. Text keeps PgBouncer's shape (`C-0x1: db/user@addr message`);
//! JSON carries `timestamp`, `level`, `event` and the fields `client`, `server`, `db`, `user`,
//! `addr` (when the event has them) plus any others. Fields whose names suggest a secret are
//! dropped in both, whatever a caller passes.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The fields that name who an event is about, in the order JSON lists them.
const WHO: [&str; 5] = ["client", "server", "db", "user", "addr"];

/// Parts of a field name that mark a secret.
const SECRET: [&str; 5] = ["password", "secret", "proof", "token", "md5"];

/// The event formatter; `json` flips with `log_format` on reload.
pub struct Lines {
    json: Arc<AtomicBool>,
}

impl Lines {
    /// A formatter reading the format from `json` at each event.
    pub fn new(json: Arc<AtomicBool>) -> Self {
        Lines { json }
    }
}

/// An event's message and fields as recorded.
#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(&'static str, Value)>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "message" {
            if let Value::String(s) = value {
                self.message = s;
            }
            return;
        }
        let lower = name.to_ascii_lowercase();
        if SECRET.iter().any(|s| lower.contains(s)) {
            return;
        }
        self.fields.push((name, value));
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::from(value));
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let level = event.metadata().level().as_str();
        if self.json.load(Ordering::Relaxed) {
            writeln!(writer, "{}", json(&timestamp, level, fields))
        } else {
            writeln!(writer, "{}", text(&timestamp, level, &fields))
        }
    }
}

/// One JSON object, keys in a fixed order (timestamp, level, event, who, the rest) for people
/// reading raw lines; a name already written is not repeated.
fn json(timestamp: &str, level: &str, fields: Fields) -> String {
    let mut out = String::from("{");
    let mut seen: Vec<&str> = Vec::new();
    let mut put = |out: &mut String, name: &'static str, value: &Value| {
        if seen.contains(&name) {
            return;
        }
        seen.push(name);
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(&Value::from(name).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    };
    put(&mut out, "timestamp", &Value::from(timestamp));
    put(&mut out, "level", &Value::from(level.to_ascii_lowercase()));
    put(&mut out, "event", &Value::from(fields.message.as_str()));
    for who in WHO {
        if let Some(v) = fields.get(who) {
            put(&mut out, who, &Value::from(plain(v)));
        }
    }
    for (name, value) in &fields.fields {
        put(&mut out, name, value);
    }
    out.push('}');
    out
}

/// `TIME LEVEL [C-0x1: db/user@addr ]message key=value…`, as PgBouncer prefixes its lines about
/// one connection.
fn text(timestamp: &str, level: &str, fields: &Fields) -> String {
    format!("{timestamp} {level:>5} {}", text_body(fields))
}

/// An event as a text line without time and level: what syslog, which has its own, is sent.
pub(super) fn body(event: &Event<'_>) -> String {
    let mut fields = Fields::default();
    event.record(&mut fields);
    text_body(&fields)
}

/// `[C-0x1: db/user@addr ]message key=value…`.
fn text_body(fields: &Fields) -> String {
    let mut line = String::new();
    let who = fields.get("client").or_else(|| fields.get("server"));
    let mut used: &[&str] = &[];
    if let Some(id) = who {
        let part = |name, missing: &str| fields.get(name).map_or(missing.to_owned(), plain);
        let _ = write!(
            line,
            "{}: {}/{}@{} ",
            plain(id),
            part("db", "(nodb)"),
            part("user", "(nouser)"),
            part("addr", "(noaddr)")
        );
        used = &WHO;
    }
    line.push_str(&fields.message);
    for (name, value) in &fields.fields {
        if used.contains(name) {
            continue;
        }
        let value = plain(value);
        if value.contains([' ', '"']) || value.is_empty() {
            let _ = write!(line, " {name}={value:?}");
        } else {
            let _ = write!(line, " {name}={value}");
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str, pairs: &[(&'static str, &str)]) -> Fields {
        Fields {
            message: message.to_owned(),
            fields: pairs.iter().map(|(k, v)| (*k, Value::from(*v))).collect(),
        }
    }

    #[test]
    fn text_keeps_pgbouncers_prefix() {
        let f = fields(
            "closing because: client close request",
            &[
                ("client", "C-0x1"),
                ("db", "app"),
                ("user", "bob"),
                ("addr", "127.0.0.1:5000"),
            ],
        );
        assert_eq!(
            text("T", "INFO", &f),
            "T  INFO C-0x1: app/bob@127.0.0.1:5000 closing because: client close request"
        );
        let f = fields(
            "pooler error: x",
            &[("client", "C-0x2"), ("addr", "[local]")],
        );
        assert_eq!(
            text("T", "WARN", &f),
            "T  WARN C-0x2: (nodb)/(nouser)@[local] pooler error: x"
        );
        let f = fields("accept failed", &[("error", "too many open files")]);
        assert_eq!(
            text("T", "WARN", &f),
            "T  WARN accept failed error=\"too many open files\""
        );
    }

    /// The lines `emit` logs through [`Lines`] as JSON (`json`) or text.
    fn capture(json: bool, emit: impl FnOnce()) -> String {
        use std::sync::Mutex;
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(Lines::new(Arc::new(AtomicBool::new(json))))
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_names_who_and_drops_secrets() {
        let out = capture(true, || {
            tracing::info!(
                server = format_args!("S-0x{:x}", 1),
                db = "app",
                user = "bob",
                addr = "127.0.0.1:5432",
                tls = "no",
                password = "hunter2",
                scram_proof = "cHJvb2Y=",
                "new connection to server"
            );
        });
        assert!(out.starts_with("{\"timestamp\":"), "{out}");
        let v: Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["event"], "new connection to server");
        assert_eq!(v["level"], "info");
        assert_eq!(
            (&v["server"], &v["db"], &v["user"]),
            (
                &Value::from("S-0x1"),
                &Value::from("app"),
                &Value::from("bob")
            )
        );
        assert_eq!(v["addr"], "127.0.0.1:5432");
        assert_eq!(v["tls"], "no");
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{v}"
        );
        assert!(
            !out.contains("hunter2") && !out.contains("cHJvb2Y="),
            "{out}"
        );

        let out = capture(false, || {
            tracing::warn!(
                client = "C-0x3",
                db = "app",
                password = "hunter2",
                "login failed"
            );
        });
        assert!(
            out.contains(" WARN C-0x3: app/(nouser)@(noaddr) login failed\n"),
            "{out}"
        );
        assert!(!out.contains("hunter2"), "{out}");
    }
}
