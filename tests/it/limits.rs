//! Limits, timeouts and cancel: each is hit on purpose, the client gets PgBouncer's error text,
//! and the pooler keeps serving everyone else.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::support::bouncer::{ADMIN_USER, TestBouncer};
use crate::support::postgres::{MD5_USER, PASSWORD, TempPostgres};
use crate::support::{self, select_one};

/// Connects and returns the client plus the connection task, whose error says why it closed.
async fn connect_watched(
    url: &str,
) -> (
    Client,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    (client, tokio::spawn(connection))
}

async fn closed_because(
    task: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) -> String {
    let result = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    let err = result.expect_err("the pooler should close the connection with an error");
    err.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| err.to_string())
}

/// The server's message of a failed query.
fn message(err: &tokio_postgres::Error) -> String {
    err.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| err.to_string())
}

async fn idle_in_transaction(pg: &TempPostgres) -> i64 {
    let su = support::connect(&pg.superuser_url()).await.unwrap();
    su.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state LIKE 'idle in transaction%'",
        &[&MD5_USER],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn max_client_conn_refuses_the_extra_client() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "max_client_conn = 2").await;
    let url = bouncer.url(MD5_USER, "postgres");
    let a = support::connect(&url).await.unwrap();
    let b = support::connect(&url).await.unwrap();
    let err = support::connect(&url)
        .await
        .err()
        .map(|e| e.as_db_error().map(|d| d.message().to_owned()));
    assert_eq!(
        err,
        Some(Some(
            "no more connections allowed (max_client_conn)".to_owned()
        ))
    );
    assert!(select_one(&a).await && select_one(&b).await);
    drop(a);
    assert!(
        support::eventually(Duration::from_secs(5), || bouncer.shared().client_count()
            < 2)
        .await
    );
    let c = support::connect(&url).await.unwrap();
    assert!(select_one(&c).await);
}

#[tokio::test]
async fn query_wait_timeout_fails_the_waiter_only() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 1\nquery_wait_timeout = 1").await;
    let url = bouncer.url(MD5_USER, "postgres");
    let holder = support::connect(&url).await.unwrap();
    holder.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let (waiter, task) = connect_watched(&url).await;
    let started = Instant::now();
    let err = waiter.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(message(&err), "query_wait_timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(task);
    holder.batch_execute("COMMIT").await.unwrap();
    assert!(select_one(&holder).await);
}

#[tokio::test]
async fn client_idle_timeout_closes_idle_clients() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "client_idle_timeout = 1").await;
    let (client, task) = connect_watched(&bouncer.url(MD5_USER, "postgres")).await;
    assert!(select_one(&client).await);
    assert_eq!(closed_because(task).await, "client_idle_timeout");
}

#[tokio::test]
async fn idle_transaction_timeout_closes_the_client_and_its_server() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "idle_transaction_timeout = 1").await;
    let (client, task) = connect_watched(&bouncer.url(MD5_USER, "postgres")).await;
    client.batch_execute("BEGIN; SELECT 1").await.unwrap();
    assert_eq!(closed_because(task).await, "idle transaction timeout");
    let mut left = 1;
    for _ in 0..100 {
        left = idle_in_transaction(&pg).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, 0, "a server stayed idle in transaction");
}

#[tokio::test]
async fn query_timeout_stops_a_long_query() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "query_timeout = 1").await;
    let url = bouncer.url(MD5_USER, "postgres");
    let (client, task) = connect_watched(&url).await;
    let started = Instant::now();
    let err = client
        .simple_query("SELECT pg_sleep(20)")
        .await
        .unwrap_err();
    assert_eq!(message(&err), "query_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    drop(task);
    let other = support::connect(&url).await.unwrap();
    assert!(select_one(&other).await);
}

#[tokio::test]
async fn a_client_killed_mid_transaction_leaves_no_dirty_server() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 1").await;
    let url = bouncer.url(MD5_USER, "postgres");
    let (client, task) = connect_watched(&url).await;
    client
        .batch_execute("BEGIN; CREATE TEMP TABLE dirty (x int)")
        .await
        .unwrap();
    task.abort(); // the socket closes with the transaction open
    drop(client);
    let next = support::connect(&url).await.unwrap();
    let status = next
        .simple_query("SELECT count(*) FROM pg_tables WHERE tablename = 'dirty'")
        .await
        .unwrap();
    let count = status.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(count.as_deref(), Some("0"));
    assert_eq!(idle_in_transaction(&pg).await, 0);
}

#[tokio::test]
async fn cancel_reaches_the_running_query() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "").await;
    let client = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let token = client.cancel_token();
    let started = Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await
    });
    let err = client
        .simple_query("SELECT pg_sleep(10)")
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().map(|d| d.code().code()), Some("57014"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    canceller.await.unwrap().unwrap();
    assert!(
        select_one(&client).await,
        "the client keeps working after its cancel"
    );
}

#[tokio::test]
async fn a_cancel_from_a_client_without_a_server_reaches_nobody() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // One server: whatever a has held, b now holds.
    let bouncer = TestBouncer::start(&pg, "default_pool_size = 1").await;
    let url = bouncer.url(MD5_USER, "postgres");
    let a = support::connect(&url).await.unwrap();
    let b = support::connect(&url).await.unwrap();
    assert!(select_one(&a).await, "a used the server and released it");
    let token = a.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await
    });
    let slept = b.simple_query("SELECT pg_sleep(1)").await;
    canceller.await.unwrap().unwrap();
    assert!(slept.is_ok(), "a's cancel hit b's query: {slept:?}");
}

#[tokio::test]
async fn transaction_timeout_ends_a_long_busy_transaction() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "transaction_timeout = 1").await;
    let (client, _task) = connect_watched(&bouncer.url(MD5_USER, "postgres")).await;
    client.batch_execute("BEGIN").await.unwrap();
    let started = Instant::now();
    let mut failure = None;
    while started.elapsed() < Duration::from_secs(10) {
        // Busy, never idle for long: only transaction_timeout can end this.
        if let Err(e) = client.simple_query("SELECT pg_sleep(0.1)").await {
            failure = Some(message(&e));
            break;
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    let failure = failure.expect("the transaction outlived transaction_timeout");
    assert!(
        failure == "transaction timeout" || failure.contains("closed"),
        "{failure}"
    );
    let other = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    assert!(select_one(&other).await);
    assert_eq!(idle_in_transaction(&pg).await, 0);
}

#[tokio::test]
async fn per_database_and_per_user_client_caps() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    for (setting, text) in [
        (
            "max_db_client_connections = 1",
            "client connections exceeded (max_db_client_connections)",
        ),
        (
            "max_user_client_connections = 1",
            "client connections exceeded (max_user_client_connections)",
        ),
    ] {
        let bouncer = TestBouncer::start(&pg, setting).await;
        let url = bouncer.url(MD5_USER, "postgres");
        let first = support::connect(&url).await.unwrap();
        let (second, task) = connect_watched(&url).await;
        // The FATAL arrives on the query or, if the socket closed first, on the connection.
        let refused = match second
            .simple_query("SELECT 1")
            .await
            .map_err(|e| message(&e))
        {
            Err(m) if m == text => m,
            _ => closed_because(task).await,
        };
        assert_eq!(refused, text);
        assert!(select_one(&first).await);
        drop(first);
        assert!(
            support::eventually(Duration::from_secs(5), || bouncer.shared().client_count()
                == 0)
            .await
        );
        let again = support::connect(&url).await.unwrap();
        assert!(select_one(&again).await, "{setting}: the slot comes back");
    }
}

#[tokio::test]
async fn min_pool_size_keeps_servers_open_and_checks_run_before_reuse() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(
        &pg,
        "min_pool_size = 3\nserver_check_delay = 0\nserver_check_query = SELECT 1",
    )
    .await;
    let client = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    for _ in 0..20 {
        assert!(select_one(&client).await);
    }
    let su = support::connect(&pg.superuser_url()).await.unwrap();
    let backends = backends_reaching(&su, 3, Duration::from_secs(5)).await;
    assert_eq!(backends, 3, "min_pool_size opens the pool up to 3");
}

/// Polls PostgreSQL (as superuser `su`) until [`MD5_USER`] has `n` backends or `within` has
/// passed; the last count seen.
async fn backends_reaching(su: &Client, n: i64, within: Duration) -> i64 {
    let deadline = Instant::now() + within;
    loop {
        let backends = support::sessions_of(su, &[MD5_USER]).await;
        if backends >= n || Instant::now() >= deadline {
            return backends;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_server_that_never_answers_does_not_hold_up_min_pool_size_elsewhere() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // Accepts and then says nothing: every login to it waits out server_connect_timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    // Pools are filled in (database, user) order: the silent one comes first.
    let dbs = format!(
        "a_silent = host=127.0.0.1 port={silent_port} dbname=postgres user={MD5_USER} \
         password={PASSWORD} min_pool_size=3\n\
         postgres = host=127.0.0.1 port={} min_pool_size=3\n",
        pg.port()
    );
    let bouncer = TestBouncer::start_with(&pg, &dbs, "server_connect_timeout = 30").await;
    // A client of each database makes its pool; the silent one's login hangs in its own task.
    let silent_url = bouncer.url(MD5_USER, "a_silent");
    let hung = tokio::spawn(async move { support::connect(&silent_url).await.is_ok() });
    let client = support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    assert!(select_one(&client).await);
    let su = support::connect(&pg.superuser_url()).await.unwrap();
    let backends = backends_reaching(&su, 3, Duration::from_secs(5)).await;
    assert_eq!(
        backends, 3,
        "min_pool_size of postgres waited behind a_silent's login"
    );
    hung.abort();
}

/// Peering: two poolers with `peer_id` 1 and 2. A client of the first runs `pg_sleep`; its
/// CancelRequest, sent to the second (as a load balancer might), is forwarded by the key's peer
/// id to the first, which cancels the query (57014). A key naming no configured peer is dropped.
/// Console keys carry the peer id as well.
#[tokio::test]
async fn a_cancel_sent_to_the_wrong_peer_is_forwarded_to_the_right_one() {
    use crate::support::wire::{Wire, query_bytes};
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let first = TestBouncer::start(&pg, "peer_id = 1").await;
    let second = TestBouncer::start(
        &pg,
        &format!(
            "peer_id = 2\n[peers]\n1 = host=127.0.0.1 port={}",
            first.port
        ),
    )
    .await;
    let mut client = Wire::login(first.port, MD5_USER, "postgres", PASSWORD)
        .await
        .unwrap();
    let (pid, secret) = client.key.unwrap();
    let peer_of = |pid: i32| {
        let [_, low, high, _] = pid.to_be_bytes();
        u16::from_le_bytes([low, high])
    };
    assert_eq!(peer_of(pid), 1, "the key names its pooler");
    let console = Wire::login(second.port, ADMIN_USER, "pgbouncer", PASSWORD)
        .await
        .unwrap();
    assert_eq!(peer_of(console.key.unwrap().0), 2, "so do the console's");
    let peers = second.console(ADMIN_USER).await.query("SHOW PEERS").await;
    let port = first.port.to_string();
    assert_eq!(
        peers.rows,
        [
            [Some("1"), Some("127.0.0.1"), Some(port.as_str()), Some("5")]
                .map(|c| c.map(String::from))
        ],
        "pool_size unset: default_pool_size, as PgBouncer shows it"
    );

    let cancel_via = |port: u16, pid: i32| async move {
        let mut wire = send_cancel(port, pid, secret).await;
        // The pooler closes the socket once it has passed the request on.
        assert!(wire.recv().await.is_none());
    };
    // Peer 3 is not configured on the second pooler: nothing happens.
    let [sign, _, _, last] = pid.to_be_bytes();
    let stray = i32::from_be_bytes([sign, 3, 0, last]);
    client.send(&query_bytes("SELECT pg_sleep(1)")).await;
    cancel_via(second.port, stray).await;
    let slept = client.until_ready().await.unwrap();
    assert!(
        !slept.iter().any(|(tag, _)| *tag == b'E'),
        "a key for an unknown peer cancelled something"
    );

    let started = Instant::now();
    client.send(&query_bytes("SELECT pg_sleep(10)")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel_via(second.port, pid).await;
    let (code, _) = client.next_error().await.unwrap();
    assert_eq!(code, "57014");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// A peer's `pool_size` caps the cancels forwarded to it at once, and SHOW PEER_POOLS counts
/// them: one being sent, one waiting for the slot. The peer here never completes a handshake
/// (its accept queue is full), so each send lasts `cancel_wait_timeout`, then both are gone.
#[tokio::test]
async fn a_peers_pool_size_caps_forwarded_cancels_as_show_peer_pools_shows() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let silent = tokio::net::TcpSocket::new_v4().unwrap();
    silent.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let silent = silent.listen(0).unwrap();
    let port = silent.local_addr().unwrap().port();
    // The one connection a backlog of 0 queues; the kernel drops SYNs after it.
    let _queued = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let settings = format!(
        "peer_id = 1\ncancel_wait_timeout = 1\n[peers]\n3 = host=127.0.0.1 port={port} pool_size=1"
    );
    let bouncer = TestBouncer::start(&pg, &settings).await;
    let mut senders = Vec::new();
    for n in 0..2u8 {
        let pid = i32::from_be_bytes([0x10, 3, 0, n]);
        senders.push(send_cancel(bouncer.port, pid, [1, 2, 3, 0x43]).await);
    }
    let mut console = bouncer.console(ADMIN_USER).await;
    let busy = ["3", "1", "1", "1", "0"];
    assert_eq!(
        peer_pools_until(&mut console, busy, Duration::from_secs(1)).await,
        [busy],
        "peer_id, cl_active, cl_waiting, sv_active, sv_login"
    );
    // Each gives up after cancel_wait_timeout (1 s) of waiting and 1 s of sending at most.
    let idle = ["3", "0", "0", "0", "0"];
    assert_eq!(
        peer_pools_until(&mut console, idle, Duration::from_secs(5)).await,
        [idle]
    );
}

/// A CancelRequest for (`pid`, `secret`) written to 127.0.0.1:`port`; the socket stays open.
async fn send_cancel(port: u16, pid: i32, secret: [u8; 4]) -> crate::support::wire::Wire {
    use tokio::io::AsyncWriteExt as _;
    let mut packet = bytes::BytesMut::new();
    bouncectl::protocol::startup::cancel_request(&mut packet, pid, &secret).unwrap();
    let mut wire = crate::support::wire::Wire::connect(port).await;
    wire.stream.write_all(&packet).await.unwrap();
    wire
}

/// SHOW PEER_POOLS's rows, polled until they are the one row `expected` or `timeout` passes.
async fn peer_pools_until(
    console: &mut crate::support::client::RawClient,
    expected: [&str; 5],
    timeout: Duration,
) -> Vec<Vec<String>> {
    let deadline = Instant::now() + timeout;
    loop {
        let shown = console.query("SHOW PEER_POOLS").await;
        let rows: Vec<Vec<String>> = shown
            .rows
            .iter()
            .map(|row| row.iter().map(|c| c.clone().unwrap_or_default()).collect())
            .collect();
        if rows == [expected] || Instant::now() >= deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
