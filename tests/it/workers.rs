//! Worker threads beyond the first sleep until the load needs them: under a light load one
//! tokio worker does all the work; when the awake ones are busier than the wake threshold
//! (`BOUNCECTL_WORKERS_WAKE_AT`), the others wake and take their share, and go back to sleep
//! when the load has passed.

use std::time::Duration;

use crate::support::binary::Binary;
use crate::support::postgres::{MD5_USER, TempPostgres};
use crate::support::{self};

/// CPU ticks (user + system) of each of the pooler's tokio worker threads.
fn worker_ticks(pid: u32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| {
            let dir = task.ok()?.path();
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

/// Four clients, 1,500 queries each, at once.
async fn load(bin: &Binary) {
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let url = bin.url(MD5_USER, "postgres");
        clients.spawn(async move {
            let client = support::connect(&url).await.unwrap();
            for _ in 0..1500 {
                assert!(support::select_one(&client).await);
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
}

/// The binary with two workers, the wake threshold given, and `-v` (each change is logged).
async fn start(pg: &TempPostgres, wake_at: &str) -> Binary {
    let databases = format!("* = host=127.0.0.1 port={}\n", pg.port());
    let env = [
        ("BOUNCECTL_WORKER_THREADS", "2"),
        ("BOUNCECTL_WORKERS_WAKE_AT", wake_at),
    ];
    Binary::start_with(pg, &databases, "", &["-v"], &env).await
}

#[tokio::test]
async fn one_worker_carries_a_light_load_and_the_other_wakes_for_more() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // 1.0: the one awake worker would have to be busy all the time for the other to wake.
    let calm = start(&pg, "1.0").await;
    load(&calm).await;
    let mut ticks = worker_ticks(calm.pid());
    ticks.sort_unstable();
    assert_eq!(ticks.len(), 2, "{ticks:?}");
    assert!(ticks[1] >= 10, "the awake worker did no work: {ticks:?}");
    assert!(ticks[0] <= 2, "the dormant worker worked: {ticks:?}");

    // 0.05: a load wakes the other, and a second of quiet after it puts one back to sleep.
    let busy = start(&pg, "0.05").await;
    load(&busy).await;
    let ticks = worker_ticks(busy.pid());
    assert_eq!(ticks.len(), 2, "{ticks:?}");
    assert!(
        ticks.iter().all(|&t| t >= 3),
        "a worker stayed dormant: {ticks:?}"
    );
    let log = || busy.log();
    assert!(log().contains("2 of 2 workers awake now"), "{}", log());
    let back_to_sleep = support::eventually(Duration::from_secs(10), || {
        log().contains("1 of 2 workers awake now")
    });
    assert!(back_to_sleep.await, "{}", log());
}

/// A tuning value out of range is ignored with a warning that names it; the pooler serves.
#[tokio::test]
async fn a_wake_threshold_out_of_range_is_ignored_with_a_warning() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bin = start(&pg, "2").await;
    let client = support::connect(&bin.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    assert!(support::select_one(&client).await);
    assert!(
        bin.log()
            .contains("BOUNCECTL_WORKERS_WAKE_AT=2 ignored: expected a number from 0 to 1"),
        "{}",
        bin.log()
    );
}
