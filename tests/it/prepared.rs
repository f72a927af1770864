//! Protocol-level prepared statements in transaction mode (issue 6, `max_prepared_statements`):
//! tokio-postgres and pgbench prepare named statements once and use them across transactions
//! that land on whichever server is free.

use std::sync::Arc;

use bouncectl::stats::Totals;
use tokio_postgres::types::ToSql;

use crate::support::bouncer::TestBouncer;
use crate::support::postgres::{MD5_USER, PASSWORD, TempPostgres};
use crate::support::{self};

fn totals(bouncer: &TestBouncer) -> Totals {
    let server = bouncer.server.as_ref().unwrap();
    let pool = server
        .shared
        .registry
        .pools()
        .into_iter()
        .find(|p| p.database == "postgres" && p.user == MD5_USER)
        .unwrap();
    pool.stats.totals()
}

/// 20 clients, each preparing three statements and running them in many transactions.
async fn many_clients(bouncer: &TestBouncer) -> Vec<Result<(), tokio_postgres::Error>> {
    let url = Arc::new(bouncer.url(MD5_USER, "postgres"));
    let mut tasks = Vec::new();
    for i in 0..20i32 {
        let url = Arc::clone(&url);
        tasks.push(tokio::spawn(async move {
            let c = support::connect(&url).await?;
            for round in 0..10i32 {
                let k = round % 3;
                let st = c.prepare(&format!("SELECT $1::int + {k}")).await?;
                for _ in 0..2 {
                    let got: i32 = c.query_one(&st, &[&i]).await?.get(0);
                    assert_eq!(got, i + k);
                }
            }
            Ok(())
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_statements_survive_transaction_pooling() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 2").await;
    for r in many_clients(&bouncer).await {
        r.unwrap();
    }
    let t = totals(&bouncer);
    assert!(t.client_parse_count >= 20 * 10, "{t:?}");
    assert!(t.bind_count >= 20 * 10 * 2, "{t:?}");
    // Two servers, three distinct statements: each prepared once per server.
    assert!(t.server_parse_count <= 2 * 3, "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tracking_named_statements_break() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer =
        TestBouncer::start(&pg, "default_pool_size = 2\nmax_prepared_statements = 0").await;
    let errors: Vec<String> = many_clients(&bouncer)
        .await
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{e:?}")))
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("does not exist")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn an_error_in_a_pipeline_skips_only_its_own_sync() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 1").await;
    let c = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let cast = c.prepare("SELECT $1::text::int").await.unwrap();
    let plus = c.prepare("SELECT $1::int + 1").await.unwrap();
    for _ in 0..3 {
        let (a, b, d, e) = tokio::join!(
            c.query_one(&cast, &[&"1"]),
            c.query_one(&cast, &[&"x"]),
            c.query_one(&plus, &[&41i32]),
            c.query_one(&cast, &[&"7"]),
        );
        assert_eq!(a.unwrap().get::<_, i32>(0), 1);
        let err = b.unwrap_err();
        assert!(format!("{err:?}").contains("22P02"), "{err:?}");
        assert_eq!(d.unwrap().get::<_, i32>(0), 42);
        assert_eq!(e.unwrap().get::<_, i32>(0), 7);
    }
    // A statement first used in a pipeline that fails before it still works afterwards.
    let late = c.prepare("SELECT $1::int * 2").await.unwrap();
    let (bad, good) = tokio::join!(c.query_one(&cast, &[&"y"]), c.query_one(&late, &[&4i32]));
    assert!(bad.is_err());
    assert_eq!(good.unwrap().get::<_, i32>(0), 8);
    assert_eq!(
        c.query_one(&late, &[&5i32]).await.unwrap().get::<_, i32>(0),
        10
    );
}

#[tokio::test]
async fn deallocate_all_and_close_forget_the_clients_statements() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 1").await;
    let c = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let st = c.prepare("SELECT 1").await.unwrap();
    c.query_one(&st, &[]).await.unwrap();
    c.batch_execute("DEALLOCATE ALL").await.unwrap();
    let err = c.query_one(&st, &[]).await.unwrap_err();
    assert!(format!("{err:?}").contains("does not exist"), "{err:?}");
    // Preparing again works, on a server that really lost its statements.
    let again = c.prepare("SELECT 1").await.unwrap();
    assert_eq!(c.query_one(&again, &[]).await.unwrap().get::<_, i32>(0), 1);
    c.batch_execute("DISCARD ALL").await.unwrap();
    let third = c.prepare("SELECT 1").await.unwrap();
    assert_eq!(c.query_one(&third, &[]).await.unwrap().get::<_, i32>(0), 1);
    // Dropping a Statement makes tokio-postgres send Close; its CloseComplete must come back.
    drop(again);
    drop(third);
    drop(st);
    for i in 0..3i32 {
        let s = c.prepare("SELECT $1::int").await.unwrap();
        assert_eq!(c.query_one(&s, &[&i]).await.unwrap().get::<_, i32>(0), i);
    }
    let other = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let s = other.prepare("SELECT 1").await.unwrap();
    assert_eq!(other.query_one(&s, &[]).await.unwrap().get::<_, i32>(0), 1);
}

#[tokio::test]
async fn the_server_lru_is_bounded() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer =
        TestBouncer::start(&pg, "default_pool_size = 1\nmax_prepared_statements = 2").await;
    let c = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let mut statements = Vec::new();
    for k in 0..5i32 {
        statements.push(c.prepare(&format!("SELECT $1::int + {k}")).await.unwrap());
    }
    for round in 0..3i32 {
        for (k, st) in statements.iter().enumerate() {
            let got: i32 = c.query_one(st, &[&round]).await.unwrap().get(0);
            assert_eq!(got, round + k as i32);
        }
    }
    let held: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'BOUNCECTL%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(held <= 2, "the server holds {held} statements");
}

/// Runs `pgbench -M prepared -n` through the pooler with `args`; panics on any failure.
async fn pgbench_prepared(pg: &TempPostgres, port: u16, args: &[&str]) -> String {
    let mut all: Vec<String> = ["-M", "prepared", "-n", "-h", "127.0.0.1", "-p"]
        .iter()
        .map(ToString::to_string)
        .collect();
    all.push(port.to_string());
    all.extend(args.iter().map(ToString::to_string));
    all.extend(["-U".to_owned(), MD5_USER.to_owned(), "postgres".to_owned()]);
    let bindir = pg.bindir().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bindir.join("pgbench"))
            .args(&all)
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}\n{stdout}\n{stderr}");
    assert!(
        !stderr.contains("ERROR") && !stderr.contains("FATAL"),
        "{args:?}\n{stderr}"
    );
    if stdout.contains("number of failed transactions") {
        assert!(
            stdout.contains("number of failed transactions: 0 "),
            "{stdout}"
        );
    }
    stdout
}

/// Issue 6's acceptance: 50 pgbench clients over a pool of 5 in transaction mode, select-only
/// and TPC-B, prepared; each distinct statement is parsed about once per server connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_prepared_50_clients_over_5_servers_parse_once_per_server() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    pg.pgbench_init();
    let pool_size: u64 = 5;
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 5").await;

    // Select-only: one statement.
    let out = pgbench_prepared(
        &pg,
        bouncer.port,
        &["-c", "50", "-j", "2", "-t", "40", "-S"],
    )
    .await;
    assert!(
        out.contains("number of transactions actually processed: 2000/2000"),
        "{out}"
    );
    let select_only = totals(&bouncer);
    assert!(select_only.bind_count >= 2000, "{select_only:?}");
    assert!(
        select_only.server_parse_count <= 2 * pool_size,
        "select-only: {select_only:?}"
    );

    // TPC-B: BEGIN, three UPDATEs, the SELECT (already prepared), INSERT, END: 6 new ones.
    let out = pgbench_prepared(&pg, bouncer.port, &["-c", "50", "-j", "2", "-t", "20"]).await;
    assert!(
        out.contains("number of transactions actually processed: 1000/1000"),
        "{out}"
    );
    let t = totals(&bouncer);
    let tpcb_parses = t.server_parse_count - select_only.server_parse_count;
    assert!(
        tpcb_parses <= 2 * pool_size * 7,
        "TPC-B parsed {tpcb_parses} times: {t:?}"
    );
    assert!(t.client_parse_count >= 50 * 7, "{t:?}");
    eprintln!(
        "pgbench -M prepared, 50 clients over 5 servers: {} client parses, {} server parses \
         (select-only {}, TPC-B {tpcb_parses}), {} binds",
        t.client_parse_count, t.server_parse_count, select_only.server_parse_count, t.bind_count
    );
}

#[tokio::test]
async fn statement_mode_and_reset_query_always_keep_statements_usable() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    for settings in [
        "pool_mode = statement\ndefault_pool_size = 2",
        "default_pool_size = 1\nserver_reset_query_always = 1",
    ] {
        let bouncer = TestBouncer::start(&pg, settings).await;
        let c = support::connect(&bouncer.url(MD5_USER, "postgres"))
            .await
            .unwrap();
        let st = c.prepare("SELECT $1::int * 3").await.unwrap();
        for i in 0..5i32 {
            let got: i32 = c.query_one(&st, &[&i]).await.unwrap().get(0);
            assert_eq!(got, i * 3, "{settings}");
        }
    }
}

#[tokio::test]
async fn session_mode_passes_statement_names_through() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "pool_mode = session").await;
    let c = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let st = c.prepare("SELECT 1").await.unwrap();
    c.query_one(&st, &[]).await.unwrap();
    let names: Vec<String> = c
        .query("SELECT name FROM pg_prepared_statements", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("BOUNCECTL")),
        "{names:?}"
    );
    assert_eq!(totals(&bouncer).server_parse_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_under_concurrency_keeps_every_client_correct() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer =
        TestBouncer::start(&pg, "default_pool_size = 2\nmax_prepared_statements = 2").await;
    let url = Arc::new(bouncer.url(MD5_USER, "postgres"));
    let mut tasks = Vec::new();
    for i in 0..10i32 {
        let url = Arc::clone(&url);
        tasks.push(tokio::spawn(async move {
            let c = support::connect(&url).await.unwrap();
            let mut statements = Vec::new();
            for k in 0..5i32 {
                statements.push(
                    c.prepare(&format!("SELECT $1::int * 10 + {k}"))
                        .await
                        .unwrap(),
                );
            }
            for round in 0..4 {
                for (k, st) in statements.iter().enumerate() {
                    let (pa, pb): ([&(dyn ToSql + Sync); 1], [&(dyn ToSql + Sync); 1]) =
                        ([&i], [&round]);
                    let (a, b) = tokio::join!(c.query_one(st, &pa), c.query_one(st, &pb));
                    assert_eq!(a.unwrap().get::<_, i32>(0), i * 10 + k as i32);
                    assert_eq!(b.unwrap().get::<_, i32>(0), round * 10 + k as i32);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
