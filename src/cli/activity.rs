//! pg_stat_activity as `leaks` sees it: the query for non-idle client sessions, one typed row per
//! session, and the judgement of which are leaks with a hint for each. No printing here.

use std::time::Duration;

use serde::Serialize;

use super::admin_client::{self, Target};

/// Non-idle client sessions but our own, oldest first. An idle-in-transaction session counts
/// from the start of its transaction, an active one from the start of its query (`since`).
const QUERY: &str = "\
SELECT pid, usename::text, application_name, host(client_addr) AS client_addr, state,
       to_char(query_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS query_start,
       CASE WHEN state LIKE 'idle in transaction%' THEN 'xact_start' ELSE 'query_start' END AS since,
       extract(epoch FROM now() - CASE WHEN state LIKE 'idle in transaction%'
                                       THEN coalesce(xact_start, query_start)
                                       ELSE query_start END)::float8 AS duration,
       query
  FROM pg_stat_activity
 WHERE state <> 'idle' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
 ORDER BY duration DESC NULLS LAST";

/// One row of the report; the JSON keys are pg_stat_activity's names plus `since`, `leak`, `hint`.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// Backend process id.
    pub pid: i32,
    /// Role name.
    pub usename: Option<String>,
    /// The client's application_name.
    pub application_name: Option<String>,
    /// Client address; null for a unix socket.
    pub client_addr: Option<String>,
    /// `active`, `idle in transaction`, `idle in transaction (aborted)`, ...
    pub state: String,
    /// Start of the current or last query, UTC.
    pub query_start: Option<String>,
    /// Which timestamp `duration` counts from: `xact_start` or `query_start`.
    pub since: String,
    /// Seconds since `since`.
    pub duration: Option<f64>,
    /// The current or last query, in full.
    pub query: Option<String>,
    /// Whether a threshold is crossed.
    pub leak: bool,
    /// What to do about a leak (null otherwise).
    pub hint: Option<String>,
}

/// Flags a session against the thresholds and writes its hint.
pub fn judge(session: &mut Session, idle_in_transaction: Duration, min_duration: Duration) {
    let secs = session.duration.unwrap_or(0.0);
    let idle_tx = session.state.starts_with("idle in transaction");
    session.leak = (idle_tx && secs >= idle_in_transaction.as_secs_f64())
        || secs >= min_duration.as_secs_f64();
    session.hint = session.leak.then(|| {
        if idle_tx {
            format!(
                "the app opened a transaction and never committed or rolled back: look at application_name {} from client_addr {}",
                session
                    .application_name
                    .as_deref()
                    .filter(|a| !a.is_empty())
                    .unwrap_or("(empty)"),
                session.client_addr.as_deref().unwrap_or("(unix socket)")
            )
        } else {
            format!(
                "long-running query: check for missing indexes/locks, or cancel with SELECT pg_cancel_backend({})",
                session.pid
            )
        }
    });
}

/// Connects to PostgreSQL at `url` and reads its non-idle client sessions, none judged yet.
pub async fn fetch(url: &str) -> anyhow::Result<Vec<Session>> {
    let client = admin_client::connect_to(url, Target::Postgres("--database-url")).await?;
    let rows = client.query(QUERY, &[]).await.map_err(|e| {
        super::usage(format!(
            "cannot read pg_stat_activity: {}",
            admin_client::pg_error_text(&e)
        ))
    })?;
    rows.iter()
        .map(|row| {
            Ok(Session {
                pid: row.try_get("pid")?,
                usename: row.try_get("usename")?,
                application_name: row.try_get("application_name")?,
                client_addr: row.try_get("client_addr")?,
                state: row
                    .try_get::<_, Option<String>>("state")?
                    .unwrap_or_default(),
                query_start: row.try_get("query_start")?,
                since: row.try_get("since")?,
                duration: row.try_get("duration")?,
                query: row.try_get("query")?,
                leak: false,
                hint: None,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(|e| anyhow::anyhow!("unexpected pg_stat_activity row: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(state: &str, secs: f64) -> Session {
        Session {
            pid: 42,
            usename: Some("app".into()),
            application_name: Some("billing".into()),
            client_addr: Some("10.0.0.7".into()),
            state: state.into(),
            query_start: None,
            since: "query_start".into(),
            duration: Some(secs),
            query: Some("SELECT 1".into()),
            leak: false,
            hint: None,
        }
    }

    #[test]
    fn thresholds_decide_leaks() {
        let (idle, min) = (Duration::from_secs(60), Duration::from_secs(300));
        let cases = [
            ("idle in transaction", 59.0, false),
            ("idle in transaction", 60.0, true),
            ("idle in transaction (aborted)", 61.0, true),
            ("active", 299.0, false),
            ("active", 300.0, true),
            ("fastpath function call", 301.0, true),
        ];
        for (state, secs, leak) in cases {
            let mut s = session(state, secs);
            judge(&mut s, idle, min);
            assert_eq!(s.leak, leak, "{state} {secs}");
            assert_eq!(s.hint.is_some(), leak);
        }
    }

    #[test]
    fn hints_name_the_culprit() {
        let mut s = session("idle in transaction", 90.0);
        judge(&mut s, Duration::from_secs(60), Duration::from_secs(300));
        let hint = s.hint.unwrap();
        assert!(
            hint.contains("billing") && hint.contains("10.0.0.7"),
            "{hint}"
        );
        let mut s = session("active", 900.0);
        judge(&mut s, Duration::from_secs(60), Duration::from_secs(300));
        assert!(s.hint.unwrap().contains("pg_cancel_backend(42)"));
    }
}
