//! The pooler with real clients: tokio-postgres, psql and pgbench through bouncectl to PostgreSQL,
//! in each pool mode.

use std::time::Duration;

use crate::support::bouncer::TestBouncer;
use crate::support::postgres::{MD5_USER, TempPostgres};
use crate::support::{self, rows};

#[tokio::test]
async fn simple_and_extended_queries_through_transaction_pooling() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "").await;
    let client = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let out = client.simple_query("SELECT 1; SELECT 'two'").await.unwrap();
    assert_eq!(rows(&out), ["1", "two"]);
    let row = client
        .query_one("SELECT $1::int + 1", &[&41i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, MD5_USER);
}

#[tokio::test]
async fn an_error_mid_transaction_then_reuse() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 1").await;
    let client = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    let err = client.simple_query("SELECT 1/0").await.unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "22012");
    assert!(
        client.simple_query("SELECT 1").await.is_err(),
        "aborted transaction refuses queries"
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    let other = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    assert_eq!(
        rows(&other.simple_query("SELECT 'reused'").await.unwrap()),
        ["reused"]
    );
    assert_eq!(
        rows(&client.simple_query("SELECT 'again'").await.unwrap()),
        ["again"]
    );
}

#[tokio::test]
async fn copy_in_and_out_and_a_large_result() {
    use futures_util::{SinkExt as _, StreamExt as _};
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    pg.psql(&format!(
        "CREATE TABLE copy_t (n int, s text); GRANT ALL ON copy_t TO {MD5_USER}"
    ));
    let bouncer = TestBouncer::start(&pg, "").await;
    let client = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let sink = client.copy_in("COPY copy_t FROM STDIN").await.unwrap();
    let mut sink = std::pin::pin!(sink);
    let mut data = String::new();
    for i in 0..10_000 {
        data.push_str(&format!("{i}\trow {i}\n"));
    }
    sink.send(bytes::Bytes::from(data.clone())).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 10_000);
    let stream = client.copy_out("COPY copy_t TO STDOUT").await.unwrap();
    let chunks: Vec<_> = stream.collect().await;
    let out: Vec<u8> = chunks
        .into_iter()
        .flat_map(|c| c.unwrap().to_vec())
        .collect();
    assert_eq!(out, data.as_bytes());
    // 50 MB through the relay.
    let big = client
        .simple_query("SELECT repeat('x', 1048576) FROM generate_series(1, 50)")
        .await
        .unwrap();
    let total: usize = rows(&big).iter().map(String::len).sum();
    assert_eq!(total, 50 * 1_048_576);
}

#[tokio::test]
async fn notify_in_transaction_mode_and_listen_in_session_mode() {
    use futures_util::StreamExt as _;
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let session = TestBouncer::start(&pg, "pool_mode = session").await;
    let (listener, mut connection) =
        tokio_postgres::connect(&session.url(MD5_USER, "postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    tokio::spawn(async move {
        while let Some(Ok(msg)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = msg {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    listener.batch_execute("LISTEN chan").await.unwrap();
    let transaction = TestBouncer::start(&pg, "").await;
    let notifier = support::connect(&transaction.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    notifier
        .batch_execute("NOTIFY chan, 'hello'")
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("hello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_share_five_servers() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 5\nmax_client_conn = 500").await;
    let url = bouncer.url(MD5_USER, "postgres");
    let watcher = {
        let url = pg.superuser_url();
        tokio::spawn(async move {
            let su = support::connect(&url).await.unwrap();
            let mut max = 0i64;
            for _ in 0..200 {
                let n: i64 = rows(
                    &su.simple_query(&format!(
                        "SELECT count(*) FROM pg_stat_activity WHERE usename = '{MD5_USER}'"
                    ))
                    .await
                    .unwrap(),
                )[0]
                .parse()
                .unwrap();
                max = max.max(n);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            max
        })
    };
    let mut tasks = Vec::new();
    for i in 0..200 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let c = support::connect(&url).await.unwrap();
            // Simple queries: named prepared statements across transactions are issue 6's job.
            for _ in 0..5 {
                let got = rows(&c.simple_query(&format!("SELECT {i}")).await.unwrap());
                assert_eq!(got, [i.to_string()]);
            }
            c.batch_execute("BEGIN; SELECT pg_sleep(0.001); COMMIT")
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let max = watcher.await.unwrap();
    assert!(max <= 5, "saw {max} backends for a pool of 5");
    assert!(max >= 1);
}

#[tokio::test]
async fn session_mode_discards_state_between_clients() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "pool_mode = session\ndefault_pool_size = 1").await;
    let url = bouncer.url(MD5_USER, "postgres");
    let first = support::connect(&url).await.unwrap();
    first
        .batch_execute(
            "SET work_mem = '7MB'; PREPARE p AS SELECT 1; CREATE TEMP TABLE marker (x int)",
        )
        .await
        .unwrap();
    let pid: i32 = first
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    drop(first);
    let second = support::connect(&url).await.unwrap();
    let same: i32 = second
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(same, pid, "the one server is reused");
    let work_mem: String = second.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_ne!(work_mem, "7MB");
    assert!(
        second.batch_execute("EXECUTE p").await.is_err(),
        "prepared statement survived"
    );
    assert!(
        second.batch_execute("SELECT * FROM marker").await.is_err(),
        "temp table survived"
    );
}

#[tokio::test]
async fn transaction_mode_reapplies_each_clients_startup_parameters() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 1").await;
    let base = bouncer.url(MD5_USER, "postgres");
    let a = support::connect(&format!(
        "{base} application_name=client_a options='-c timezone=UTC'"
    ))
    .await
    .unwrap();
    let b = support::connect(&format!(
        "{base} application_name=client_b options='-c timezone=Asia/Tokyo'"
    ))
    .await
    .unwrap();
    for _ in 0..3 {
        for (client, name, tz) in [(&a, "client_a", "UTC"), (&b, "client_b", "Asia/Tokyo")] {
            let got = rows(
                &client
                    .simple_query("SELECT current_setting('application_name') || '|' || current_setting('TimeZone')")
                    .await
                    .unwrap(),
            );
            assert_eq!(got, [format!("{name}|{tz}")]);
        }
    }
}

#[tokio::test]
async fn transaction_mode_a_set_does_not_reach_the_next_client_with_the_same_startup() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 1").await;
    let url = format!(
        "{} options='-c timezone=UTC'",
        bouncer.url(MD5_USER, "postgres")
    );
    let a = support::connect(&url).await.unwrap();
    let b = support::connect(&url).await.unwrap();
    // A tracked parameter changed by SET: the one server now has a value b never asked for.
    a.batch_execute("SET TimeZone = 'Asia/Tokyo'")
        .await
        .unwrap();
    for _ in 0..2 {
        let tz = rows(&b.simple_query("SHOW TimeZone").await.unwrap());
        assert_eq!(tz, ["UTC"], "b sees a's SET");
        let tz = rows(&a.simple_query("SHOW TimeZone").await.unwrap());
        assert_eq!(tz, ["Asia/Tokyo"], "a lost its own SET");
    }
}

#[tokio::test]
async fn statement_mode_refuses_transaction_blocks() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "pool_mode = statement").await;
    let client = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    assert_eq!(rows(&client.simple_query("SELECT 1").await.unwrap()), ["1"]);
    let err = client.batch_execute("BEGIN").await.unwrap_err();
    let text = format!("{err:?}");
    assert!(
        text.contains("transaction blocks not allowed in statement pooling mode"),
        "{text}"
    );
    let again = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    assert_eq!(rows(&again.simple_query("SELECT 2").await.unwrap()), ["2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_and_pgbench_work_in_every_mode() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    pg.pgbench_init();
    for mode in ["session", "transaction", "statement"] {
        let bouncer =
            TestBouncer::start(&pg, &format!("pool_mode = {mode}\ndefault_pool_size = 3")).await;
        let port = bouncer.port.to_string();
        let psql = pg.run_tool(
            "psql",
            &[
                "-X",
                "-tA",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                MD5_USER,
                "-c",
                "SELECT 40 + 2",
                "postgres",
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&psql.stdout).trim(),
            "42",
            "{mode}: {}",
            String::from_utf8_lossy(&psql.stderr)
        );
        let script = if mode == "statement" {
            vec!["-S"]
        } else {
            vec!["-N"]
        };
        pg.pgbench_clean(bouncer.port, (8, 50), &script, &|| mode.to_owned());
    }
}

#[tokio::test]
async fn copy_in_through_the_extended_protocol_releases_the_server() {
    use futures_util::SinkExt as _;
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    pg.psql(&format!(
        "CREATE TABLE copy_r (n int); GRANT ALL ON copy_r TO {MD5_USER}"
    ));
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 1").await;
    let url = bouncer.url(MD5_USER, "postgres");
    let a = support::connect(&url).await.unwrap();
    // tokio-postgres sends Bind/Execute/Sync, and PostgreSQL ignores that Sync during COPY IN.
    let sink = a.copy_in("COPY copy_r FROM STDIN").await.unwrap();
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from_static(b"1\n2\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    // The one server went back to the pool: another client gets it at once.
    let b = support::connect(&url).await.unwrap();
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        b.simple_query("SELECT count(*) FROM copy_r"),
    )
    .await
    .expect("the server stayed linked to the COPY client")
    .unwrap();
    assert_eq!(rows(&got), ["2"]);
    let n: i64 = a
        .query_one("SELECT count(*) FROM copy_r", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}
