//! KILL_CLIENT against a client that has stopped reading: the pooler's write to it is blocked,
//! and the KILL must still end it at once, as PgBouncer's does, whether the client holds a
//! server (a large result it never reads) or not (answers to its prepares).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bouncectl::protocol::frontend::{self, Target};
use bytes::BytesMut;
use tokio::io::AsyncWriteExt as _;

use crate::support::bouncer::{ADMIN_USER, TestBouncer};
use crate::support::client::{QueryResult, RawClient};
use crate::support::postgres::{MD5_USER, PASSWORD, TempPostgres};

/// Small buffers on the pooler's side of the socket: its writes block sooner.
const SMALL_BUFFERS: &str = "tcp_socket_buffer = 4096";

async fn connect(bouncer: &TestBouncer) -> tokio::net::TcpStream {
    RawClient::connect(
        bouncer.port,
        &[("user", MD5_USER), ("database", "postgres")],
        PASSWORD,
    )
    .await
    .unwrap()
    .into_stream()
}

/// SHOW CLIENTS ids of the application's clients.
fn app_clients(r: &QueryResult) -> Vec<String> {
    RawClient::column(r, "user")
        .into_iter()
        .zip(RawClient::column(r, "id"))
        .filter(|(u, _)| *u == Some(MD5_USER))
        .map(|(_, id)| id.unwrap_or_default().to_owned())
        .collect()
}

/// KILLs the one application client and waits (bounded) until SHOW CLIENTS no longer lists it.
async fn kill_and_see_it_gone(bouncer: &TestBouncer) {
    let mut console = bouncer.console(ADMIN_USER).await;
    let ids = app_clients(&console.query("SHOW CLIENTS").await);
    assert_eq!(ids.len(), 1, "{ids:?}");
    let killed = console.query(&format!("KILL_CLIENT {}", ids[0])).await;
    assert_eq!(killed.error, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !app_clients(&console.query("SHOW CLIENTS").await).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "KILL_CLIENT left the client blocked in the pooler's write"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client holding no server that floods Parse/Sync/Close/Sync (answered by the pooler itself)
/// and never reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_ends_a_prepare_only_client_that_never_reads() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, SMALL_BUFFERS).await;
    let stream = connect(&bouncer).await;
    let mut round = BytesMut::new();
    frontend::parse(&mut round, "s", "SELECT 1", &[]).unwrap();
    frontend::sync(&mut round);
    frontend::close(&mut round, Target::Statement, "s").unwrap();
    frontend::sync(&mut round);
    let sender = flood_until_blocked(stream, round).await;
    kill_and_see_it_gone(&bouncer).await;
    sender.abort();
}

/// A client in a transaction whose large result it never reads: the pooler's write to it
/// blocks with a server held. KILL ends the client, and the server it held is not handed on
/// in the middle of that result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_ends_a_linked_client_that_never_reads_its_result() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, &format!("{SMALL_BUFFERS}\ndefault_pool_size = 1")).await;
    let stream = connect(&bouncer).await;
    let mut query = BytesMut::new();
    frontend::query(
        &mut query,
        "SELECT repeat('x', 1000) FROM generate_series(1, 100000)",
    )
    .unwrap();
    let sender = flood_until_blocked(stream, query).await;
    kill_and_see_it_gone(&bouncer).await;
    sender.abort();
    // The pool's only server was mid-result: a new client must get a clean one.
    let client = crate::support::connect(&bouncer.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    let rows = tokio::time::timeout(Duration::from_secs(10), client.simple_query("SELECT 7"))
        .await
        .expect("the next client waited for the killed client's server")
        .unwrap();
    let value = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("7"));
}

/// Sends `request` over and over on `stream` without ever reading, until the pooler has stopped
/// reading for half a second: its write to this client is then blocked. Returns the sending
/// task (abort it to close the connection).
async fn flood_until_blocked(
    stream: tokio::net::TcpStream,
    request: BytesMut,
) -> tokio::task::JoinHandle<()> {
    let (unread, mut writer) = stream.into_split();
    // About 40 KB a chunk.
    let per_chunk = (40_000 / request.len()).max(1);
    let chunk: Vec<u8> = request
        .iter()
        .copied()
        .cycle()
        .take(request.len() * per_chunk)
        .collect();
    const CHUNKS: usize = 2500;
    let sent = Arc::new(AtomicUsize::new(0));
    let progress = Arc::clone(&sent);
    let sender = tokio::spawn(async move {
        let _unread = unread;
        for _ in 0..CHUNKS {
            if writer.write_all(&chunk).await.is_err() {
                break;
            }
            progress.fetch_add(1, Ordering::Relaxed);
        }
        std::future::pending::<()>().await;
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = sent.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline && now < CHUNKS,
            "the pooler kept reading: its writes never blocked"
        );
        last = now;
    }
    sender
}
