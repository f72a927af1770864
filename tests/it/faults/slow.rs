//! Clients too slow to matter: slow-loris logins and queries trickled a byte at a time, and a
//! client that asks for a gigabyte and never reads it. The pooler's memory stays bounded
//! (backpressure reaches PostgreSQL instead of piling up in the pooler) and everyone else is
//! served meanwhile. A single huge row or parameter leaves no buffer of its size behind, and
//! many small queries leave an idle client's buffer small.

use std::time::{Duration, Instant};

use super::{Baseline, backends, fill_pool, fresh_client_is_clean, until};
use crate::support::binary::Binary;
use crate::support::client::RawClient;
use crate::support::postgres::{MD5_USER, PASSWORD, TempPostgres};
use crate::support::wire::{Wire, extended_bytes, query_bytes, startup_bytes};
use crate::support::{self, rows, select_one};

/// Sends `bytes` one at a time, `every` apart; stops early when the pooler hangs up.
async fn trickle(wire: &mut Wire, bytes: &[u8], every: Duration) -> bool {
    use tokio::io::AsyncWriteExt as _;
    for b in bytes {
        if wire.stream.write_all(&[*b]).await.is_err() {
            return false;
        }
        tokio::time::sleep(every).await;
    }
    true
}

/// Others log in and query, each promptly, `n` times in a row.
async fn others_served(url: &str, n: usize) {
    for _ in 0..n {
        let started = Instant::now();
        let client = support::connect(url).await.unwrap();
        assert!(select_one(&client).await);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a bystander waited {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_logins_are_cut_at_client_login_timeout() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // The baseline holds the pool at its full size, so the fds cannot legitimately end higher.
    let mut bin = Binary::start(
        &pg,
        pg.port(),
        "client_login_timeout = 2\ndefault_pool_size = 2",
    )
    .await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, 2).await;
    let base = Baseline::of(&bin);
    let startup = startup_bytes(MD5_USER, "postgres");
    let lorises = (0..20).map(|_| {
        let startup = startup.clone();
        let port = bin.port;
        tokio::spawn(async move {
            let started = Instant::now();
            let mut wire = Wire::connect(port).await;
            // 40-odd bytes at 10 per second: twice what the login timeout allows.
            let finished = trickle(&mut wire, &startup, Duration::from_millis(100)).await;
            if finished {
                // The whole packet arrived in time after all: the pooler must still hang up.
                while wire.recv().await.is_some() {}
            }
            started.elapsed()
        })
    });
    let lorises: Vec<_> = lorises.collect();
    others_served(&url, 10).await;
    for loris in lorises {
        let took = loris.await.unwrap();
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
            "a slow login lived {took:?} under client_login_timeout = 2"
        );
    }
    base.assert_back(&mut bin, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_trickled_in_holds_no_server() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // One server: if the trickling client held it, everyone else would wait.
    let mut bin = Binary::start(&pg, pg.port(), "default_pool_size = 1").await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, 1).await;
    let base = Baseline::of(&bin);
    let mut loris = Wire::login(bin.port, MD5_USER, "postgres", PASSWORD)
        .await
        .unwrap();
    let query = query_bytes("SELECT 'slow'");
    let trickling = tokio::spawn(async move {
        assert!(trickle(&mut loris, &query, Duration::from_millis(50)).await);
        let answer = loris.until_ready().await.unwrap();
        (loris, answer)
    });
    others_served(&url, 5).await;
    let (loris, answer) = trickling.await.unwrap();
    assert!(
        answer.iter().any(|(tag, _)| *tag == b'D'),
        "the slow query still runs"
    );
    drop(loris);
    fresh_client_is_clean(&url).await;
    base.assert_back(&mut bin, 0).await;
}

/// What a result of 1,000 rows of 1 MB would cost if the pooler buffered it.
const HUGE: &str = "SELECT repeat('x', 1000000) FROM generate_series(1, 1000)";

/// One row of 200 MB: a pooler that held each message whole would hold all of it.
const HUGE_ROW: &str = "SELECT repeat('x', 200000000)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_gets_backpressure_not_buffering() {
    never_read(HUGE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_huge_row_streams_through_instead_of_piling_up() {
    never_read(HUGE_ROW).await;
}

/// A client sends `query` (whose result starts with `SELECT repeat`) and never reads: the
/// pooler's memory stays flat, PostgreSQL waits, others are served, and all is clean after.
async fn never_read(query: &str) {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let mut bin = Binary::start(&pg, pg.port(), "default_pool_size = 2").await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, 2).await;
    others_served(&url, 3).await;
    let base = Baseline::of(&bin);
    let mut hog = Wire::login(bin.port, MD5_USER, "postgres", PASSWORD)
        .await
        .unwrap();
    hog.send(&query_bytes(query)).await;
    // Backpressure reaches PostgreSQL: its backend waits to write to the pooler.
    let blocked = until(Duration::from_secs(20), || async {
        let su = support::connect(&pg.superuser_url()).await.unwrap();
        let waiting: i64 = su
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'ClientWrite' \
                 AND query LIKE 'SELECT repeat%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        waiting == 1
    })
    .await;
    assert!(blocked, "PostgreSQL never had to wait for the pooler");
    let mut peak = 0;
    for _ in 0..10 {
        peak = peak.max(bin.rss_kib());
        others_served(&url, 1).await;
    }
    eprintln!(
        "RSS baseline {} KiB, peak while {query:?} waits {peak} KiB",
        base.rss_kib
    );
    assert!(
        peak < base.rss_kib + 32 * 1024,
        "the pooler buffers the unread result: {peak} KiB against a baseline of {} KiB",
        base.rss_kib
    );
    drop(hog);
    let gone = until(Duration::from_secs(10), || async {
        !backends(&pg, MD5_USER)
            .await
            .iter()
            .any(|(_, state, q)| state == "active" && q.starts_with("SELECT repeat"))
    })
    .await;
    assert!(gone, "the abandoned query runs on");
    fresh_client_is_clean(&url).await;
    base.assert_back(&mut bin, 0).await;
}

/// With `query_timeout`, a client that stops reading cannot keep its server forever: the
/// only server comes back to the waiting client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_timeout_frees_the_server_of_a_client_that_never_reads() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let mut bin = Binary::start(
        &pg,
        pg.port(),
        "default_pool_size = 1\nquery_timeout = 2\nquery_wait_timeout = 20",
    )
    .await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, 1).await;
    let base = Baseline::of(&bin);
    let mut hog = Wire::login(bin.port, MD5_USER, "postgres", PASSWORD)
        .await
        .unwrap();
    hog.send(&query_bytes(HUGE)).await;
    let started = Instant::now();
    let waiter = support::connect(&url).await.unwrap();
    assert!(select_one(&waiter).await, "the waiter never got the server");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(8), "waited {waited:?}");
    drop((hog, waiter));
    fresh_client_is_clean(&url).await;
    base.assert_back(&mut bin, 0).await;
}

/// A logged-in client announces messages of almost 2 GB (under the default max_packet_size) and
/// sends a few bytes of each: the pooler must not reserve what was only claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_two_gigabyte_message_reserves_nothing() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let mut bin = Binary::start(&pg, pg.port(), "default_pool_size = 2").await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, 2).await;
    let base = Baseline::of(&bin);
    let vm_before = bin.vm_size_kib();
    let mut claimers = Vec::new();
    for _ in 0..4 {
        let mut wire = Wire::login(bin.port, MD5_USER, "postgres", PASSWORD)
            .await
            .unwrap();
        // A simple query first, so the second claim arrives while a server is linked.
        wire.send(&query_bytes("SELECT 1")).await;
        wire.send(&[b'Q', 0x7f, 0xff, 0xff, 0x00]).await;
        wire.send(b"SELECT 'only the start of it'").await;
        claimers.push(wire);
    }
    let fresh = support::connect(&url).await.unwrap();
    assert!(select_one(&fresh).await);
    let vm_after = bin.vm_size_kib();
    eprintln!("VmSize {vm_before} KiB before, {vm_after} KiB with 4 claims of 2 GB");
    assert!(
        vm_after < vm_before + 1024 * 1024,
        "the pooler reserved what clients only claimed: VmSize {vm_before} -> {vm_after} KiB"
    );
    drop((claimers, fresh));
    base.assert_back(&mut bin, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_row_and_a_huge_parameter_leave_no_huge_buffer_behind() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let mut bin = Binary::start(&pg, pg.port(), "default_pool_size = 1").await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, 1).await;
    others_served(&url, 3).await;
    let base = Baseline::of(&bin);
    // 96 MB in one DataRow, then in one Bind: the pooler holds each whole message once.
    const HUGE: usize = 96 * 1024 * 1024;
    let client = support::connect(&url).await.unwrap();
    let row = client
        .query_one(&format!("SELECT repeat('x', {HUGE})"), &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0).len(), HUGE);
    let sent = "y".repeat(HUGE);
    let length: i32 = client
        .query_one("SELECT length($1::text)", &[&sent])
        .await
        .unwrap()
        .get(0);
    assert_eq!(usize::try_from(length).unwrap(), HUGE);
    drop(sent);
    // The server stays pooled and the client connected: neither keeps a 96 MB buffer.
    assert!(select_one(&client).await);
    base.assert_back(&mut bin, 1).await;
    drop(client);
}

/// A client's 64 MB query goes to the server as it arrives, as PgBouncer passes it, and so does a
/// 64 MB parameter where statements pass through untracked: the pooler's memory never held either
/// whole. (With max_prepared_statements on, a Bind waits for its end: the tracker may rename its
/// statement.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_query_or_parameter_streams_to_the_server() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    const BIG: usize = 64 * 1024 * 1024;
    let text = "y".repeat(BIG);
    for untracked in [false, true] {
        let settings = match untracked {
            false => "default_pool_size = 1",
            true => "default_pool_size = 1\nmax_prepared_statements = 0",
        };
        let mut bin = Binary::start(&pg, pg.port(), settings).await;
        let url = bin.url(MD5_USER, "postgres");
        fill_pool(&url, 1).await;
        let base = Baseline::of(&bin);
        let peak_before = bin.peak_rss_kib();
        let client = support::connect(&url).await.unwrap();
        let answer = client
            .simple_query(&format!("SELECT length('{text}')"))
            .await
            .unwrap();
        assert_eq!(rows(&answer), [BIG.to_string()]);
        if untracked {
            let length: i32 = client
                .query_one("SELECT length($1::text)", &[&text])
                .await
                .unwrap()
                .get(0);
            assert_eq!(usize::try_from(length).unwrap(), BIG);
        }
        let peak = bin.peak_rss_kib();
        eprintln!("peak RSS {peak_before} KiB before, {peak} KiB after (untracked: {untracked})");
        assert!(
            peak < peak_before + 32 * 1024,
            "the pooler held the message whole: peak {peak} KiB against {peak_before} KiB"
        );
        // The server stayed pooled and serves the next query.
        assert!(select_one(&client).await);
        drop(client);
        base.assert_back(&mut bin, 1).await;
    }

    // A client gone halfway through its message: the server holds half a message, so it is
    // closed, never handed to the next client (whose query would be read as the rest). A Parse
    // streams only untracked, and unlike a Query it owes no reply yet.
    let settings = "default_pool_size = 1\nmax_prepared_statements = 0";
    let mut bin = Binary::start(&pg, pg.port(), settings).await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, 1).await;
    let base = Baseline::of(&bin);
    let mut quitter = Wire::login(bin.port, MD5_USER, "postgres", PASSWORD)
        .await
        .unwrap();
    let whole = extended_bytes(&format!("SELECT length('{text}')"));
    quitter.send(&whole[..8 * 1024 * 1024]).await;
    // Linked means fed: the start goes out as soon as the server is there.
    let mut console = bin.console().await;
    let mut linked = false;
    for _ in 0..200 {
        let pools = console.query("SHOW POOLS").await;
        if RawClient::column(&pools, "sv_active").contains(&Some("1")) {
            linked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(linked, "the message's start never went to a server");
    drop((quitter, console));
    let client = support::connect(&url).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), select_one(&client)).await;
    assert!(
        next.unwrap_or(false),
        "the next client got the half-fed server"
    );
    drop(client);
    fresh_client_is_clean(&url).await;
    base.assert_back(&mut bin, 1).await;
}

/// A client of many small queries that then sits idle keeps a small buffer: 300 of them, 50
/// queries each (about 6 KB in all apiece), cost the pooler under 9 KB of RSS each. Before the
/// client buffer went back to its start when empty, each grew to a 16 KB chunk: about 15 KB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_keep_small_buffers_after_many_queries() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    const CLIENTS: usize = 300;
    let bin = Binary::start(
        &pg,
        pg.port(),
        "default_pool_size = 5\nmax_client_conn = 400",
    )
    .await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, 5).await;
    let before = bin.rss_kib();
    let mut idle = Vec::new();
    for _ in 0..CLIENTS / 50 {
        let logins = (0..50).map(|_| async {
            let mut wire = Wire::login(bin.port, MD5_USER, "postgres", PASSWORD)
                .await
                .unwrap();
            for i in 0..50 {
                let sql = format!("SELECT {i} /* {} */", "x".repeat(100));
                assert_eq!(wire.query(&sql).await.unwrap(), [Some(i.to_string())]);
            }
            wire
        });
        idle.extend(futures_util::future::join_all(logins).await);
    }
    let per_client = (bin.rss_kib() - before) * 1024 / CLIENTS as u64;
    eprintln!("RSS per idle client after 50 queries: {per_client} bytes");
    assert!(per_client < 9 * 1024, "{per_client} bytes per idle client");
    drop(idle);
}
