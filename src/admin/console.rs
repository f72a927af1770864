//! One console session: Simple Query in, results or an `ERROR 08P01` out, always followed by
//! ReadyForQuery so the session survives mistakes. Extended-protocol messages are refused (the
//! console speaks only the simple protocol, as PgBouncer's).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};

use super::command::{self, AdminCommand, is_fake_param};
use super::{Access, Host, control, show, show_conns};
use crate::conn::{Conn, ConnParts};
use crate::protocol::backend::results::{command_complete, empty_query_response};
use crate::protocol::backend::{
    Severity, TxStatus, error_response, notice_response, ready_for_query,
};
use crate::protocol::frontend::Query;
use crate::protocol::tag::frontend as fe;
use crate::protocol::{EncodeError, Frame};
use crate::registry::ClientInfo;

/// A console error: the text, and its SQLSTATE (08P01 unless stated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleError {
    /// The message.
    pub message: String,
    /// The SQLSTATE.
    pub sqlstate: &'static str,
}

impl ConsoleError {
    /// An 08P01 error with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        ConsoleError {
            message: message.into(),
            sqlstate: "08P01",
        }
    }
}

impl From<EncodeError> for ConsoleError {
    fn from(e: EncodeError) -> Self {
        ConsoleError::new(e.to_string())
    }
}

/// One console user's session state.
pub struct Console {
    host: Arc<dyn Host>,
    access: Access,
    /// Values of fake parameters the client SET or sent at startup.
    params: BTreeMap<String, String>,
}

impl Console {
    /// A console for a user with `access`; `params` are the startup parameters it sent.
    pub fn new(host: Arc<dyn Host>, access: Access, params: BTreeMap<String, String>) -> Self {
        Console {
            host,
            access,
            params,
        }
    }

    /// The ParameterStatus set a console client gets at login (PgBouncer's fake server).
    pub fn welcome(&self) -> Vec<(String, String)> {
        welcome(&self.params)
    }

    /// Runs one Simple Query and writes the whole answer, ReadyForQuery included, into `out`.
    pub async fn execute(&mut self, query: &str, out: &mut BytesMut) {
        let mark = out.len();
        if let Err(e) = self.run(query, out).await {
            out.truncate(mark);
            let _ = error_response(out, Severity::Error, e.sqlstate, &e.message);
        }
        ready_for_query(out, TxStatus::Idle);
    }

    async fn run(&mut self, query: &str, out: &mut BytesMut) -> Result<(), ConsoleError> {
        let cmd = command::parse(query).map_err(|e| ConsoleError::new(e.to_string()))?;
        if self.access != Access::Admin && !cmd.read_only() {
            return Err(ConsoleError::new("admin access needed"));
        }
        let host = Arc::clone(&self.host);
        let host = host.as_ref();
        match cmd {
            AdminCommand::Empty => empty_query_response(out),
            AdminCommand::Show(what) => self.show(host, &what, out)?,
            AdminCommand::Set { key, value } if is_fake_param(&key) => {
                notice_response(out, Severity::Notice, "00000", "SET ignored")?;
                self.params.insert(key, value);
                command_complete(out, "SET")?;
            }
            AdminCommand::Set { key, value } => {
                control::set(host, &key, &value)?;
                command_complete(out, "SET")?;
            }
            other => {
                let tag = control::run(host, other).await?;
                command_complete(out, tag)?;
            }
        }
        Ok(())
    }

    fn show(&self, host: &dyn Host, what: &str, out: &mut BytesMut) -> Result<(), ConsoleError> {
        if is_fake_param(what) {
            let value = match what {
                "server_version" => format!("{}/bouncer", super::PGBOUNCER_VERSION),
                other => self
                    .welcome()
                    .into_iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(other))
                    .map(|(_, v)| v)
                    .or_else(|| self.params.get(other).cloned())
                    .unwrap_or_else(|| fake_default(other).to_owned()),
            };
            return show::single(what, &value, out);
        }
        if what == "FDS" && self.access != Access::Admin {
            return Err(ConsoleError::new("admin access needed"));
        }
        match show_conns::table(host, what) {
            Some(table) => Ok(table.write(out)?),
            None => match show::table(host, what, out)? {
                Some(table) => Ok(table.write(out)?),
                None if what == "HELP" => Ok(()),
                None => Err(ConsoleError::new(format!(
                    "invalid command 'SHOW {what}', use SHOW HELP;"
                ))),
            },
        }
    }
}

/// The ParameterStatus set of a console login whose startup packet carried `params` (names in
/// lower case): PgBouncer's fake server, with the client's own encoding, DateStyle and TimeZone.
pub fn welcome(params: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let param = |name: &str, default: &str| {
        params
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    };
    vec![
        (
            "server_version".into(),
            format!("{}/bouncer", super::PGBOUNCER_VERSION),
        ),
        ("client_encoding".into(), param("client_encoding", "UTF8")),
        ("server_encoding".into(), "UTF8".into()),
        ("DateStyle".into(), param("datestyle", "ISO")),
        ("TimeZone".into(), param("timezone", "UTC")),
        ("standard_conforming_strings".into(), "on".into()),
        ("integer_datetimes".into(), "on".into()),
        ("IntervalStyle".into(), "postgres".into()),
        ("is_superuser".into(), "off".into()),
        ("application_name".into(), param("application_name", "")),
    ]
}

fn fake_default(name: &str) -> &'static str {
    match name {
        "default_transaction_isolation" => "read committed",
        "extra_float_digits" => "1",
        "standard_conforming_strings" => "on",
        _ => "",
    }
}

/// Serves a console session over the connection the handshake used (`parts`), until the client
/// leaves or `client` is killed.
#[tracing::instrument(name = "console", skip_all, fields(client = client.id, user = %client.user))]
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    parts: ConnParts<S>,
    max_len: usize,
    mut console: Console,
    client: &ClientInfo,
) {
    let mut conn = Conn::from_parts(parts, max_len);
    let mut shutdown = console.host.shutdown().subscribe();
    let mut skipping = false;
    loop {
        let frame = tokio::select! {
            f = conn.read_frame() => f,
            () = client.killed() => return,
            r = shutdown.wait_for(|p| *p == crate::shutdown::Phase::Immediate) => {
                let _ = r.map(|_| ());
                return;
            }
        };
        let Ok(Some(frame)) = frame else { return };
        client.requested(crate::registry::now_us());
        if !answer(&mut console, &frame, conn.write_buf_mut(), &mut skipping).await {
            return;
        }
        if conn.flush().await.is_err() {
            return;
        }
    }
}

/// Answers one message; `false` when the client said Terminate.
async fn answer(
    console: &mut Console,
    frame: &Frame,
    out: &mut BytesMut,
    skipping: &mut bool,
) -> bool {
    match frame.tag {
        fe::TERMINATE => return false,
        fe::QUERY => match Query::parse(&frame.body) {
            Ok(q) => {
                let text = String::from_utf8_lossy(q.query).into_owned();
                console.execute(&text, out).await;
            }
            Err(e) => {
                let _ = error_response(out, Severity::Error, "08P01", e.to_string());
                ready_for_query(out, TxStatus::Idle);
            }
        },
        fe::SYNC => {
            *skipping = false;
            ready_for_query(out, TxStatus::Idle);
        }
        fe::FLUSH => {}
        _ if *skipping => {}
        _ => {
            // As PostgreSQL after an error: one ErrorResponse, then skip until Sync.
            *skipping = true;
            let _ = error_response(
                out,
                Severity::Error,
                "08P01",
                "the admin console supports only the simple query protocol",
            );
        }
    }
    true
}
