//! The workload `.ci/release` trains its profile-guided build on: pgbench's built-in scripts
//! through transaction pooling, as poolbench drives the pooler. It runs as an ordinary test too,
//! so a training run that would fail (or profile an error path) fails CI first.

use std::time::Duration;

use crate::support::TempPostgres;
use crate::support::binary::Binary;

/// Each pgbench run: what it exercises, clients, transactions per client, extra arguments.
const RUNS: &[(&str, u32, u32, &[&str])] = &[
    ("select-only, simple protocol", 50, 100, &["-S"]),
    ("select-only, 200 clients", 200, 20, &["-S"]),
    (
        "select-only, extended protocol",
        50,
        100,
        &["-S", "-M", "extended"],
    ),
    (
        "select-only, prepared statements",
        50,
        100,
        &["-S", "-M", "prepared"],
    ),
    ("a new connection per transaction", 20, 50, &["-S", "-C"]),
    ("tpcb-like read-write", 20, 25, &[]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_workloads_run_clean_through_transaction_pooling() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    pg.pgbench_init();
    let mut bin = Binary::start(
        &pg,
        pg.port(),
        "default_pool_size = 20\nmax_client_conn = 400",
    )
    .await;
    for &(what, clients, per_client, extra) in RUNS {
        pg.pgbench_clean(bin.port, (clients, per_client), extra, &|| {
            format!("{what}\n{}", bin.log())
        });
    }
    // A clean exit is what writes an instrumented build's profile.
    let status = bin.interrupt(Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "no clean exit on SIGINT: {status:?}\n{}",
        bin.log()
    );
}
