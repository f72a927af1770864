//! The runtime's second worker stays asleep under a light load and takes a share of a heavy
//! one: the change to tokio's wake-ups in `vendor/tokio` (see `vendor/README.md`).
//!
//! A test binary of its own because it reads CPU time: cargo runs test binaries one after
//! another, so no other test loads the machine meanwhile. A worker wakes another only while it
//! gets most of a core, and beside a pgbench run of another test it does not, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The `it` binary uses the rest of the module.
#[allow(unused)]
#[path = "it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use bouncectl::protocol::frontend::{self, Target};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use support::binary::Binary;
use support::client::RawClient;
use support::postgres::{MD5_USER, PASSWORD, TempPostgres};

/// CPU ticks (user + system) of the pooler's two tokio workers. They are the first two threads
/// with tokio's name: blocking-pool threads, which share it, start later.
fn worker_ticks(pid: u32) -> Vec<u64> {
    let mut ticks = named_ticks(pid);
    ticks.truncate(2);
    ticks
}

/// CPU ticks of each thread of `pid` that has tokio's name, in thread order.
fn named_ticks(pid: u32) -> Vec<u64> {
    let mut tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| task.ok().map(|t| t.path()))
        .collect();
    tasks.sort_by_key(|dir| {
        let tid = dir
            .file_name()
            .and_then(|n| n.to_str()?.parse::<u32>().ok());
        tid.unwrap_or(u32::MAX)
    });
    tasks
        .iter()
        .filter_map(|dir| {
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            if !comm.starts_with("tokio-rt-worker") {
                return None;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // Fields after the command name's closing parenthesis, from the third (state) on.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks = |i: usize| fields[i].parse::<u64>().unwrap();
            Some(ticks(11) + ticks(12))
        })
        .collect()
}

/// `clients` clients at once, each sending `queries` queries, `pipelined` of them in flight.
async fn load(bin: &Binary, clients: usize, queries: usize, pipelined: usize) {
    let url = bin.url(MD5_USER, "postgres");
    all_at_once(clients, || {
        let url = url.clone();
        async move {
            let client = support::connect(&url).await.unwrap();
            for _ in 0..queries / pipelined {
                let batch = (0..pipelined).map(|_| support::select_one(&client));
                let answers = futures_util::future::join_all(batch).await;
                assert!(answers.into_iter().all(|ok| ok));
            }
        }
    })
    .await;
}

/// `clients` clients that each send `rounds` batches of `batch` Close/Sync pairs. The pooler
/// answers those itself (no server is involved), so the work is all the pooler's: enough to
/// keep a worker busy on a machine that PostgreSQL and the test share.
async fn own_answers(bin: &Binary, clients: usize, rounds: usize, batch: usize) {
    let mut pairs = BytesMut::new();
    for _ in 0..batch {
        frontend::close(&mut pairs, Target::Statement, "s").unwrap();
        frontend::sync(&mut pairs);
    }
    let port = bin.port;
    all_at_once(clients, || {
        let pairs = pairs.clone();
        async move {
            let params = [("user", MD5_USER), ("database", "postgres")];
            let client = RawClient::connect(port, &params, PASSWORD).await.unwrap();
            let mut stream = client.into_stream();
            // Each pair draws CloseComplete (5 bytes) and ReadyForQuery (6).
            let mut answers = vec![0u8; batch * 11];
            for _ in 0..rounds {
                stream.write_all(&pairs).await.unwrap();
                stream.read_exact(&mut answers).await.unwrap();
            }
        }
    })
    .await;
}

/// Runs `clients` tasks made by `client` at once, until all are done.
async fn all_at_once<F>(clients: usize, client: impl Fn() -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..clients {
        running.spawn(client());
    }
    while let Some(done) = running.join_next().await {
        done.unwrap();
    }
}

/// What the workers spent on some work: ticks each, and the busiest worker's share of a core
/// over the work's wall time.
#[derive(Debug)]
struct Spent {
    ticks: Vec<u64>,
    busiest: f64,
}

impl Spent {
    /// Asserts that the work did enough to tell and stayed on one worker: the other spent at
    /// most a tenth of the first's ticks (`why` says what waking it would mean).
    fn assert_one_worker(&self, why: &str) {
        let (most, least) = (
            *self.ticks.iter().max().unwrap(),
            *self.ticks.iter().min().unwrap(),
        );
        assert!(most >= 10, "the load did too little to tell: {self:?}");
        assert!(least * 10 <= most, "the second worker woke {why}: {self:?}");
    }
}

/// What each worker spent on `work`. The cores take /proc's clock ticks at 100 a second
/// (Linux's fixed USER_HZ).
async fn spent_on(bin: &Binary, work: impl std::future::Future<Output = ()>) -> Spent {
    let started = Instant::now();
    let before = worker_ticks(bin.pid());
    work.await;
    let after = worker_ticks(bin.pid());
    let wall = started.elapsed();
    assert_eq!(before.len(), 2, "two workers expected: {before:?}");
    let ticks: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let wall = wall.as_secs_f64().max(1e-3);
    let most = ticks.iter().copied().max().unwrap_or(0);
    let busiest = Duration::from_millis(10 * most).as_secs_f64() / wall;
    Spent { ticks, busiest }
}

#[tokio::test]
async fn a_light_load_stays_on_one_worker_and_a_heavy_one_spreads() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bin = Binary::start_env(&pg, &[("BOUNCECTL_WORKER_THREADS", "2")]).await;
    // A thread takes its name once it first runs, which on a busy machine may come after the
    // pooler answers.
    let named = support::eventually(Duration::from_secs(10), || {
        named_ticks(bin.pid()).len() >= 2
    });
    assert!(
        named.await,
        "two workers expected: {:?}",
        named_ticks(bin.pid())
    );

    // Two clients, one query each in flight: never more than a couple of tasks ready at once.
    let light = spent_on(&bin, load(&bin, 2, 3000, 1)).await;
    light.assert_one_worker("for a light load");

    // Forty clients with ten queries each in flight: backlogs, but the first worker gets well
    // under a core (PostgreSQL and the test take most of the machine), so no one is woken.
    let backlog = spent_on(&bin, load(&bin, 40, 2500, 10)).await;
    eprintln!("backlog: {backlog:?}");
    backlog.assert_one_worker("for a worker that was not busy");

    // Work that is all the pooler's keeps the first worker busy: the other takes a share.
    // This checks the outcome, not one wake-up path: with the backlog rule forced off, a
    // busy searching worker still brings the other in (seen with `wakes_others` false).
    // Up to five tries, as a machine may not give the pooler's first worker most of a core
    // (shared with other jobs, or where this ping-pong leaves it waiting on the test: seen at
    // 0.65 of a core on a machine where it used to pass); then it is not busy by the rule's
    // measure (over 70% of a core) and, by design, wakes no one. Such a try tells nothing. One
    // where a worker alone ran 0.8 of a core or more and the other sat out fails the test.
    let mut tries = Vec::new();
    for _ in 0..5 {
        let heavy = spent_on(&bin, own_answers(&bin, 16, 40, 200)).await;
        eprintln!("heavy: {heavy:?}");
        if heavy.ticks.iter().all(|&t| t >= 2) {
            return;
        }
        tries.push(heavy);
    }
    if tries.iter().all(|t| t.busiest < 0.8) {
        eprintln!("SKIPPED: no worker got most of a core, so none had to wake another: {tries:?}");
        return;
    }
    panic!("a worker sat out a heavy load: {tries:?}");
}
