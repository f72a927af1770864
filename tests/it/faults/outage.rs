//! PostgreSQL restarted, and stopped for 10 s, under 100 clients running transactions: clients
//! see errors only while PostgreSQL is away, each error arrives promptly, and every client works
//! again afterwards — on servers no other client left dirty.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Baseline, CLEAN, LEFTOVERS_SQL, fill_pool, until};
use crate::support::binary::Binary;
use crate::support::postgres::{MD5_USER, TempPostgres};
use crate::support::{self, rows};

const CLIENTS: usize = 100;
const POOL: usize = 20;
/// A worker's whole life, whatever happens.
const HARD_STOP: Duration = Duration::from_secs(60);
/// No single connect or transaction may take longer, outage or not.
const MAX_OP: Duration = Duration::from_secs(5);

/// What one attempt of one worker came to.
#[derive(Debug, Clone)]
struct Event {
    worker: usize,
    at: Instant,
    took: Duration,
    outcome: Result<(), String>,
}

#[derive(Default)]
struct Journal {
    events: Mutex<Vec<Event>>,
    /// Transactions that found another client's marker, transaction or temp table.
    dirty: Mutex<Vec<String>>,
}

impl Journal {
    fn record(&self, worker: usize, started: Instant, outcome: Result<(), String>) {
        self.events.lock().unwrap().push(Event {
            worker,
            at: Instant::now(),
            took: started.elapsed(),
            outcome,
        });
    }

    /// Workers with a success after `since`.
    fn succeeded_after(&self, since: Instant) -> usize {
        let events = self.events.lock().unwrap();
        let mut seen = [false; CLIENTS];
        for e in events.iter().filter(|e| e.at > since && e.outcome.is_ok()) {
            seen[e.worker] = true;
        }
        seen.iter().filter(|s| **s).count()
    }
}

/// One client: reconnects after any error, runs marker transactions until `stop`.
async fn worker(id: usize, url: String, journal: Arc<Journal>, stop: Arc<tokio::sync::Notify>) {
    let hard_stop = Instant::now() + HARD_STOP;
    let mut client: Option<tokio_postgres::Client> = None;
    let stopped = stop.notified();
    tokio::pin!(stopped);
    while Instant::now() < hard_stop {
        let started = Instant::now();
        let work = async {
            if client.is_none() {
                client = Some(support::connect(&url).await.map_err(|e| e.to_string())?);
            }
            let c = client.as_ref().ok_or("no client")?;
            let before = c
                .simple_query(LEFTOVERS_SQL)
                .await
                .map_err(|e| e.to_string())?;
            let before = rows(&before).concat();
            if before != CLEAN {
                journal.dirty.lock().unwrap().push(before);
            }
            c.batch_execute(&format!(
                "BEGIN; SET LOCAL myapp.marker = 'w{id}'; SELECT pg_sleep(0.01); COMMIT"
            ))
            .await
            .map_err(|e| e.to_string())
        };
        let outcome = tokio::select! {
            r = tokio::time::timeout(MAX_OP, work) => r.unwrap_or_else(|_| Err("timed out".into())),
            () = &mut stopped => return,
        };
        let failed = outcome.is_err();
        journal.record(id, started, outcome);
        if failed {
            client = None;
        }
        let pause = if failed { 200 } else { 20 };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(pause)) => {}
            () = &mut stopped => return,
        }
    }
}

/// Runs the load around `fault` (which returns once PostgreSQL is back) and checks the journal.
async fn under_load(pg: &mut TempPostgres, fault: impl AsyncFnOnce(&mut TempPostgres)) {
    let mut bin = Binary::start(
        pg,
        pg.port(),
        &format!("default_pool_size = {POOL}\nmax_client_conn = 500\nserver_login_retry = 1"),
    )
    .await;
    let url = bin.url(MD5_USER, "postgres");
    fill_pool(&url, POOL).await;
    let base = Baseline::of(&bin);
    let journal = Arc::new(Journal::default());
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    let began = Instant::now();
    for id in 0..CLIENTS {
        tasks.spawn(worker(
            id,
            url.clone(),
            Arc::clone(&journal),
            Arc::clone(&stop),
        ));
    }
    let warm = until(Duration::from_secs(20), || async {
        journal.succeeded_after(began) == CLIENTS
    })
    .await;
    assert!(warm, "not every client got going before the fault");
    let fault_start = Instant::now();
    fault(pg).await;
    let back = Instant::now();
    let recovered = until(Duration::from_secs(20), || async {
        journal.succeeded_after(back) == CLIENTS
    })
    .await;
    let recovery = back.elapsed();
    // Every client keeps working for a while after its first success.
    let settled = Instant::now();
    let steady = until(Duration::from_secs(20), || async {
        journal.succeeded_after(settled + Duration::from_millis(300)) == CLIENTS
    })
    .await;
    stop.notify_waiters();
    while tasks.join_next().await.is_some() {}
    let events = journal.events.lock().unwrap().clone();
    let errors: Vec<&Event> = events.iter().filter(|e| e.outcome.is_err()).collect();
    let slowest = events.iter().map(|e| e.took).max().unwrap_or_default();
    eprintln!(
        "{} transactions, {} errors, recovery {recovery:?}, slowest attempt {slowest:?}",
        events.len(),
        errors.len()
    );
    assert!(recovered, "not every client worked again within 20 s");
    assert!(steady, "clients failed again after the recovery");
    assert!(
        journal.dirty.lock().unwrap().is_empty(),
        "dirty servers: {:?}",
        journal.dirty
    );
    for e in &errors {
        // Errors belong to the outage: a connection broken when PostgreSQL left may surface at
        // the client's next attempt, so allow one retry period after it came back.
        let in_outage = e.at >= fault_start && e.at <= back + Duration::from_secs(3);
        assert!(in_outage, "an error outside the outage: {e:?}");
    }
    assert!(slowest < MAX_OP, "an attempt hung for {slowest:?}");
    assert!(bin.alive(), "{}", bin.log());
    base.assert_back(&mut bin, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_100_clients() {
    let Some(mut pg) = TempPostgres::start_or_skip() else {
        return;
    };
    under_load(&mut pg, async |pg: &mut TempPostgres| {
        tokio::task::block_in_place(|| pg.restart());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_10_seconds_under_100_clients() {
    let Some(mut pg) = TempPostgres::start_or_skip() else {
        return;
    };
    under_load(&mut pg, async |pg: &mut TempPostgres| {
        tokio::task::block_in_place(|| pg.stop());
        // The outage itself lasts 10 s; the clients keep trying meanwhile.
        tokio::time::sleep(Duration::from_secs(10)).await;
        tokio::task::block_in_place(|| pg.start_again());
    })
    .await;
}
