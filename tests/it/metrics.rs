//! The metrics endpoint (`metrics_listen`): exact values after known traffic, a strict parse of
//! the whole page, `/healthz` and `/readyz`. Name parity with pgbouncer_exporter is in
//! `metrics_names.rs`; JSON logs and the logfile's reopen on reload in `logs.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use openmetrics_parser::{PrometheusType, PrometheusValue};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_postgres::SimpleQueryMessage;

use crate::support::bouncer::{ADMIN_USER, TestBouncer};
use crate::support::connect;

use crate::support::postgres::{self, MD5_USER, TempPostgres};

/// A GET's status, headers (lower-cased names) and body.
pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// `GET path` over a fresh connection (HTTP/1.1, `Connection: close`), with an `Accept` header.
pub async fn get(addr: SocketAddr, path: &str, accept: &str) -> Reply {
    request(addr, "GET", path, accept).await
}

/// `method path` over a fresh connection; the reply read to the end.
pub async fn request(addr: SocketAddr, method: &str, path: &str, accept: &str) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("no full reply within 10s")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// A scraped page, parsed whole by a strict exposition-format parser.
pub(crate) struct Page {
    families: BTreeMap<String, openmetrics_parser::MetricFamily<PrometheusType, PrometheusValue>>,
}

impl Page {
    fn parse(text: &str) -> Page {
        let parsed = openmetrics_parser::prometheus::parse_prometheus(text)
            .unwrap_or_else(|e| panic!("not valid Prometheus text ({e:?}):\n{text}"));
        Page {
            families: parsed.families.into_iter().collect(),
        }
    }

    /// The sample of `name` whose labels include `labels`.
    fn sample(&self, name: &str, labels: &[(&str, &str)]) -> PrometheusValue {
        let family = self
            .families
            .get(name)
            .unwrap_or_else(|| panic!("no family {name}; have {:?}", self.families.keys()));
        family
            .iter_samples()
            .find(|s| {
                let set = s.get_labelset().unwrap();
                labels
                    .iter()
                    .all(|(k, v)| set.get_label_value(k) == Some(*v))
            })
            .unwrap_or_else(|| panic!("no {name} sample with {labels:?}"))
            .value
            .clone()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.sample(name, labels) {
            PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
            PrometheusValue::Counter(c) => c.value.as_f64(),
            other => panic!("{name} is not a single number: {other:?}"),
        }
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> openmetrics_parser::HistogramValue {
        match self.sample(name, labels) {
            PrometheusValue::Histogram(h) => h,
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    /// Label names of `name`'s samples (the first sample's; all share them).
    pub(crate) fn label_names(&self, name: &str) -> Option<BTreeSet<String>> {
        self.families
            .get(name)
            .map(|f| f.get_label_names().iter().cloned().collect())
    }
}

pub(crate) fn metrics_addr(bouncer: &TestBouncer) -> SocketAddr {
    bouncer
        .server
        .as_ref()
        .unwrap()
        .metrics
        .as_ref()
        .unwrap()
        .addr
}

pub(crate) async fn scrape(addr: SocketAddr) -> Page {
    let reply = get(addr, "/metrics", "text/plain").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .headers
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        reply.headers
    );
    Page::parse(&reply.body)
}

/// How many single-statement queries the traffic below runs before its explicit transaction.
const SELECTS: usize = 7;

/// The same traffic for bouncectl and PgBouncer: `SELECTS` autocommit queries and one explicit
/// three-statement transaction on one client, then a second client left inside a transaction.
/// Returns both clients (kept connected for the gauges).
pub(crate) async fn traffic(url: &str) -> (tokio_postgres::Client, tokio_postgres::Client) {
    let a = connect(&format!("{url} application_name=metrics-a"))
        .await
        .unwrap();
    for i in 0..SELECTS {
        a.simple_query(&format!("SELECT {i}")).await.unwrap();
    }
    for q in ["BEGIN", "SELECT pg_sleep(0.02)", "COMMIT"] {
        a.simple_query(q).await.unwrap();
    }
    let b = connect(&format!("{url} application_name=metrics-b"))
        .await
        .unwrap();
    b.simple_query("BEGIN").await.unwrap();
    b.simple_query("SELECT 1").await.unwrap();
    (a, b)
}

pub(crate) fn metrics_settings(port: u16) -> String {
    format!("metrics_listen = 127.0.0.1:{port}\nmax_client_conn = 50\nmax_user_connections = 9\n")
}

/// A pooler with [`metrics_settings`] on a port picked free. `metrics_listen` takes no port 0,
/// and another test's connection may take the picked port before the pooler binds it: such a
/// start is tried again on another port.
pub(crate) async fn start_with_metrics(pg: &TempPostgres) -> TestBouncer {
    let mut error = String::new();
    for _ in 0..5 {
        match TestBouncer::try_start(pg, &metrics_settings(postgres::free_port())).await {
            Ok(bouncer) => return bouncer,
            Err(e) if e.contains("in use") => error = e,
            Err(e) => panic!("the pooler did not start: {e}"),
        }
    }
    panic!("the pooler did not start on five ports: {error}");
}

#[tokio::test]
async fn scrape_after_known_traffic_has_exact_values() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = start_with_metrics(&pg).await;
    let addr = metrics_addr(&bouncer);
    let (_a, _b) = traffic(&bouncer.url(MD5_USER, "postgres")).await;

    let page = scrape(addr).await;
    let db = [("database", "postgres")];
    let pool = [("database", "postgres"), ("user", MD5_USER)];
    // Client a: SELECTS + 3 queries in SELECTS + 1 transactions; client b: 2 queries, its
    // transaction still open. Each transaction (and b's open one) is one server assignment.
    let queries = (SELECTS + 3 + 2) as f64;
    let xacts = (SELECTS + 1) as f64;
    let assignments = (SELECTS + 2) as f64;
    let counter = |name: &str| page.value(&format!("pgbouncer_stats_totals_{name}_total"), &db);
    assert_eq!(counter("queries_pooled"), queries);
    assert_eq!(counter("sql_transactions_pooled"), xacts);
    assert_eq!(counter("server_assignments"), assignments);
    assert!(counter("received_bytes") > 0.0 && counter("sent_bytes") > 0.0);
    // The explicit transaction slept 20 ms: both duration counters saw it.
    assert!(counter("queries_duration_seconds") >= 0.02);
    assert!(counter("server_in_transaction_seconds") >= 0.02);

    let gauge = |name: &str| page.value(&format!("pgbouncer_pools_{name}"), &pool);
    assert_eq!(gauge("client_active_connections"), 2.0);
    assert_eq!(gauge("client_waiting_connections"), 0.0);
    assert_eq!(
        gauge("server_active_connections"),
        1.0,
        "b holds the one server"
    );
    assert_eq!(gauge("server_idle_connections"), 0.0);
    assert_eq!(gauge("client_maxwait_seconds"), 0.0);
    let by_state = |app: &str, state: &str| {
        page.value(
            "pgbouncer_client_connections",
            &[
                ("database", "postgres"),
                ("user", MD5_USER),
                ("application_name", app),
                ("state", state),
            ],
        )
    };
    assert_eq!(by_state("metrics-a", "idle"), 1.0);
    assert_eq!(by_state("metrics-b", "active"), 1.0);
    let dbs = [("name", "postgres")];
    assert_eq!(
        page.value("pgbouncer_databases_current_connections", &dbs),
        1.0
    );
    assert_eq!(page.value("pgbouncer_databases_pool_size", &dbs), 5.0);
    assert_eq!(page.value("pgbouncer_databases_paused", &dbs), 0.0);
    assert_eq!(page.value("pgbouncer_used_clients", &[]), 2.0);
    assert_eq!(page.value("pgbouncer_used_servers", &[]), 1.0);
    assert_eq!(
        page.value("pgbouncer_pools", &[]),
        2.0,
        "ours and the console's"
    );
    assert_eq!(
        page.value("pgbouncer_config_max_client_connections", &[]),
        50.0
    );
    assert_eq!(
        page.value("pgbouncer_config_max_user_connections", &[]),
        9.0
    );
    assert_eq!(page.value("pgbouncer_up", &[]), 1.0);
    let version = page.families["pgbouncer_version_info"]
        .iter_samples()
        .next()
        .unwrap()
        .get_labelset()
        .unwrap()
        .get_label_value("version")
        .unwrap()
        .to_owned();
    assert!(
        version.starts_with("PgBouncer 1.25.2 (bouncectl "),
        "{version}"
    );

    // Histograms: counts equal the counters, every bucket cumulative and ending at the count.
    for (name, count, sum_of) in [
        (
            "bouncectl_query_duration_seconds",
            queries,
            "queries_duration_seconds",
        ),
        (
            "bouncectl_transaction_duration_seconds",
            xacts,
            "server_in_transaction_seconds",
        ),
        (
            "bouncectl_client_wait_seconds",
            assignments,
            "client_wait_seconds",
        ),
    ] {
        let h = page.histogram(name, &db);
        assert_eq!(h.count, Some(count as u64), "{name}");
        let sum = h.sum.map(|s| s.as_f64()).unwrap();
        assert_eq!(
            sum,
            counter(sum_of),
            "{name}: same µs counter as SHOW STATS"
        );
        let mut last = 0.0;
        for b in &h.buckets {
            let n = b.count.as_f64();
            assert!(
                n >= last,
                "{name}: buckets must be cumulative: {:?}",
                h.buckets
            );
            last = n;
        }
        let inf = h
            .buckets
            .iter()
            .find(|b| b.upper_bound == f64::INFINITY)
            .unwrap();
        assert_eq!(inf.count.as_f64(), count, "{name}");
        // Loopback queries take well under a minute: the 60 s bucket already holds them all.
        let minute = h.buckets.iter().find(|b| b.upper_bound == 60.0).unwrap();
        assert_eq!(minute.count.as_f64(), count, "{name}");
    }
    let q = page.histogram("bouncectl_query_duration_seconds", &db);
    let at = |le: f64| {
        q.buckets
            .iter()
            .find(|b| b.upper_bound == le)
            .unwrap()
            .count
            .as_f64()
    };
    assert!(
        at(0.01) < queries,
        "the 20 ms sleep is above 10 ms: {:?}",
        q.buckets
    );

    // The console agrees: the counters are the ones SHOW STATS_TOTALS reads.
    let console = connect(&bouncer.admin_url(ADMIN_USER)).await.unwrap();
    let totals = show(&console, "STATS_TOTALS").await;
    let row = totals.iter().find(|r| r["database"] == "postgres").unwrap();
    assert_eq!(row["query_count"], (queries as u64).to_string());
    assert_eq!(row["xact_count"], (xacts as u64).to_string());

    // A client chooses its application_name: quotes, braces and backslashes stay inside the label.
    const HOSTILE: &str = "x\"} evil{y=\"1\\";
    let mut config: tokio_postgres::Config = bouncer.url(MD5_USER, "postgres").parse().unwrap();
    config.application_name(HOSTILE);
    let (hostile, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let page = scrape(addr).await;
    let app = [("application_name", HOSTILE)];
    assert_eq!(page.value("pgbouncer_client_connections", &app), 1.0);
    drop(hostile);

    // OpenMetrics on request, just as strict.
    let reply = get(
        addr,
        "/metrics",
        "application/openmetrics-text; version=1.0.0",
    )
    .await;
    assert!(
        reply.headers.contains("application/openmetrics-text"),
        "{}",
        reply.headers
    );
    assert!(reply.body.ends_with("# EOF\n"));
    openmetrics_parser::openmetrics::parse_openmetrics(&reply.body)
        .unwrap_or_else(|e| panic!("not valid OpenMetrics ({e:?}):\n{}", reply.body));
    assert_eq!(get(addr, "/nope", "*/*").await.status, 404);
}

/// Every row of `SHOW what` as column → value (NULL as "").
pub(crate) async fn show(
    client: &tokio_postgres::Client,
    what: &str,
) -> Vec<BTreeMap<String, String>> {
    client
        .simple_query(&format!("SHOW {what}"))
        .await
        .unwrap_or_else(|e| panic!("SHOW {what}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_owned(), r.get(i).unwrap_or("").to_owned()))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn healthz_and_readyz_follow_pause_postgres_and_shutdown() {
    let Some(mut pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = start_with_metrics(&pg).await;
    let addr = metrics_addr(&bouncer);
    let status = |path: &'static str| async move { get(addr, path, "*/*").await.status };
    assert_eq!(status("/healthz").await, 200);
    assert_eq!(status("/readyz").await, 200);
    let head = request(addr, "HEAD", "/metrics", "*/*").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert!(
        head.headers.contains("content-length: "),
        "{}",
        head.headers
    );
    let post = request(addr, "POST", "/metrics", "*/*").await;
    assert_eq!(post.status, 405);
    assert!(
        post.headers.contains("allow: get, head"),
        "{}",
        post.headers
    );

    let console = connect(&bouncer.admin_url(ADMIN_USER)).await.unwrap();
    console.simple_query("PAUSE").await.unwrap();
    let reply = get(addr, "/readyz", "*/*").await;
    assert_eq!(reply.status, 503);
    assert!(reply.body.contains("paused"), "{}", reply.body);
    assert_eq!(status("/healthz").await, 200);
    console.simple_query("RESUME").await.unwrap();
    assert_eq!(status("/readyz").await, 200);

    pg.stop();
    let reply = until_status(addr, "/readyz", 503).await;
    assert!(reply.body.contains("no server reachable"), "{}", reply.body);
    assert_eq!(status("/healthz").await, 200);
    pg.start_again();
    until_status(addr, "/readyz", 200).await;

    // Draining (SIGTERM's phase): not ready, still healthy, and still scraped.
    bouncer
        .shared()
        .shutdown
        .advance(bouncectl::shutdown::Phase::WaitForClients);
    assert_eq!(status("/readyz").await, 503);
    assert_eq!(status("/healthz").await, 200);
    assert_eq!(scrape(addr).await.value("pgbouncer_up", &[]), 1.0);
    drop(console);
}

/// Polls `GET path` until it answers `want` (10 s at most) and returns that reply.
async fn until_status(addr: SocketAddr, path: &str, want: u16) -> Reply {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = get(addr, path, "*/*").await;
        if reply.status == want {
            return reply;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} still {} ({}), want {want}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_bad_metrics_listen_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("pgbouncer.ini");
    std::fs::write(
        &ini,
        "[databases]\n* = host=127.0.0.1\n[pgbouncer]\nauth_type = any\n\
         metrics_listen = 127.0.0.1:99999\nmetrics_path = /readyz\n",
    )
    .unwrap();
    let out = crate::support::bouncectl(&["serve", ini.to_str().unwrap(), "--check-config"], "");
    assert_eq!(out.status.code(), Some(2));
    let err = crate::support::stderr(&out);
    let at = |line: u32| format!("{}:{line}: ", ini.display());
    assert!(
        err.contains(&format!("{}metrics_listen: expected host:port", at(5))),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}metrics_path must differ", at(6))),
        "{err}"
    );
}
