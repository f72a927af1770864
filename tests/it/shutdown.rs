//! The real binary under signals (SIGTERM, SIGINT, SIGHUP, SIGQUIT), a PostgreSQL restart
//! while serving, daemon mode and `user`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::bouncer::TestBouncer;
use crate::support::postgres::{MD5_USER, PASSWORD, TempPostgres};
use crate::support::{self, select_one};

/// `bouncectl serve` as a child process with a generated config on a free port.
struct Binary {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Binary {
    fn start(pg: &TempPostgres, settings: &str) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::support::postgres::free_port();
        let ini = write_config(pg, dir.path(), port, settings);
        let child = Command::new(support::bin())
            .args(["serve", "-q"])
            .arg(&ini)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let up = support::wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "bouncectl did not start listening");
        Binary { child, port, dir }
    }

    fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={MD5_USER} password={PASSWORD} dbname=postgres",
            self.port
        )
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bouncectl.log")).unwrap_or_default()
    }

    async fn exited_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    fn accepts(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a userlist with `md5_user` and a pgbouncer.ini for `pg` on `port` (log in `dir/bouncectl.log`).
fn write_config(
    pg: &TempPostgres,
    dir: &std::path::Path,
    port: u16,
    settings: &str,
) -> std::path::PathBuf {
    let auth = dir.join("userlist.txt");
    let secret = bouncectl::auth::md5_secret(MD5_USER, PASSWORD);
    std::fs::write(&auth, format!("\"{MD5_USER}\" \"{secret}\"\n")).unwrap();
    let ini = dir.join("pgbouncer.ini");
    std::fs::write(
        &ini,
        format!(
            "[databases]\n* = host=127.0.0.1 port={}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = md5\nauth_file = {}\nlogfile = {}\n{settings}\n",
            pg.port(),
            auth.display(),
            dir.join("bouncectl.log").display()
        ),
    )
    .unwrap();
    ini
}

#[tokio::test]
async fn sigterm_waits_for_clients_then_exits() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let mut bin = Binary::start(&pg, "");
    let client = support::connect(&bin.url()).await.unwrap();
    bin.signal(Signal::SIGTERM);
    assert!(
        support::eventually(Duration::from_secs(5), || !bin.accepts()).await,
        "still accepting"
    );
    assert!(select_one(&client).await, "connected client keeps working");
    assert!(
        bin.exited_within(Duration::from_millis(300))
            .await
            .is_none(),
        "exited with a client connected"
    );
    drop(client);
    let status = bin
        .exited_within(Duration::from_secs(10))
        .await
        .expect("exit after the last client");
    assert!(status.success());
}

#[tokio::test]
async fn second_sigterm_and_sigquit_stop_at_once() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    for signals in [&[Signal::SIGTERM, Signal::SIGTERM][..], &[Signal::SIGQUIT]] {
        let mut bin = Binary::start(&pg, "");
        let _client = support::connect(&bin.url()).await.unwrap();
        for s in signals {
            bin.signal(*s);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            bin.exited_within(Duration::from_secs(10)).await.is_some(),
            "{signals:?} did not stop it"
        );
    }
}

#[tokio::test]
async fn sigint_lets_the_open_transaction_finish() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // Transaction mode: the server is released at COMMIT (session mode holds it until the client leaves).
    let mut bin = Binary::start(&pg, "pool_mode = transaction");
    let client = support::connect(&bin.url()).await.unwrap();
    // Holds no server and sends nothing: SIGINT must still close it, or the process never exits.
    let idle = support::connect(&bin.url()).await.unwrap();
    assert!(select_one(&idle).await);
    client.batch_execute("BEGIN; SELECT 1").await.unwrap();
    bin.signal(Signal::SIGINT);
    assert!(support::eventually(Duration::from_secs(5), || !bin.accepts()).await);
    assert!(select_one(&client).await, "the transaction goes on");
    client.batch_execute("COMMIT").await.unwrap();
    let Some(status) = bin.exited_within(Duration::from_secs(10)).await else {
        panic!("no exit once the server was released: {}", bin.log());
    };
    assert!(status.success());
    assert!(
        !select_one(&idle).await,
        "the idle client outlived the pooler"
    );
}

#[tokio::test]
async fn sighup_reloads_and_a_broken_file_keeps_the_old_config() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bin = Binary::start(&pg, "");
    let ini = bin.dir.path().join("pgbouncer.ini");
    let good = std::fs::read_to_string(&ini).unwrap();
    std::fs::write(&ini, format!("{good}default_pool_size = 7\n")).unwrap();
    bin.signal(Signal::SIGHUP);
    assert!(
        support::eventually(Duration::from_secs(5), || bin
            .log()
            .contains("configuration reloaded"))
        .await,
        "{}",
        bin.log()
    );
    std::fs::write(&ini, format!("{good}max_client_con = 10\n")).unwrap();
    bin.signal(Signal::SIGHUP);
    assert!(
        support::eventually(Duration::from_secs(5), || bin
            .log()
            .contains("keeping the old configuration"))
        .await,
        "{}",
        bin.log()
    );
    assert!(
        bin.log().contains("max_client_conn"),
        "did-you-mean in the log: {}",
        bin.log()
    );
    let client = support::connect(&bin.url()).await.unwrap();
    assert!(select_one(&client).await);
}

#[tokio::test]
async fn postgres_restart_while_serving() {
    let Some(mut pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bouncer = TestBouncer::start(&pg, "").await;
    let url = bouncer.url(MD5_USER, "postgres");
    {
        let warm = support::connect(&url).await.unwrap();
        assert!(select_one(&warm).await);
    }
    pg.restart();
    let started = Instant::now();
    let mut ok = false;
    while started.elapsed() < Duration::from_secs(5) {
        if let Ok(client) = support::connect(&url).await {
            if select_one(&client).await {
                ok = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "no successful query within 5 s of the restart");
    // Every later client works too: dead idle servers were dropped, not handed out.
    for _ in 0..5 {
        let client = support::connect(&url).await.unwrap();
        assert!(select_one(&client).await);
    }
}

#[tokio::test]
async fn daemon_mode_writes_its_pidfile_and_serves() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::postgres::free_port();
    let pidfile = dir.path().join("bouncectl.pid");
    let ini = write_config(
        &pg,
        dir.path(),
        port,
        &format!("pidfile = {}", pidfile.display()),
    );
    let status = Command::new(support::bin())
        .args(["serve", "-d"])
        .arg(&ini)
        .status()
        .unwrap();
    assert!(status.success(), "the foreground process returns at once");
    assert!(
        support::eventually(Duration::from_secs(10), || pidfile.is_file()).await,
        "no pidfile"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let url =
        format!("host=127.0.0.1 port={port} user={MD5_USER} password={PASSWORD} dbname=postgres");
    let client = support::connect(&url).await.unwrap();
    assert!(select_one(&client).await);
    drop(client);
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    assert!(
        support::eventually(Duration::from_secs(10), || !pidfile.is_file()).await,
        "the pidfile is removed at exit"
    );
}

/// As PgBouncer's `check_pidfile`: a second instance whose pidfile names a live process does
/// not start (so it never deletes the first one's file at its exit); a stale one is replaced.
#[tokio::test]
async fn a_pidfile_held_by_a_live_process_refuses_a_second_instance() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let pidfile = first_dir.path().join("bouncectl.pid");
    let setting = format!("pidfile = {}", pidfile.display());
    let port = crate::support::postgres::free_port();
    let first_ini = write_config(&pg, first_dir.path(), port, &setting);
    let second_port = crate::support::postgres::free_port();
    let second_ini = write_config(&pg, second_dir.path(), second_port, &setting);
    let serve = |ini: &std::path::Path| {
        Reaped(
            Command::new(support::bin())
                .arg("serve")
                .arg(ini)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        )
    };
    let mut first = serve(&first_ini);
    assert!(
        support::eventually(Duration::from_secs(10), || pidfile.is_file()).await,
        "no pidfile"
    );
    let mut refused = serve(&second_ini);
    let exited = support::eventually(Duration::from_secs(10), || {
        !matches!(refused.0.try_wait(), Ok(None))
    })
    .await;
    assert!(exited, "a second instance started on a live pidfile");
    assert_eq!(refused.0.wait().unwrap().code(), Some(2));
    let mut stderr = String::new();
    if let Some(mut pipe) = refused.0.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
    }
    assert!(stderr.contains("another instance running?"), "{stderr}");
    let first_pid = first.0.id();
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        first_pid.to_string(),
        "the first instance's pidfile is left alone"
    );
    first.0.kill().unwrap();
    first.0.wait().unwrap();

    // The first one died without cleaning up: its pidfile is stale now, and no obstacle.
    let mut second = serve(&second_ini);
    let second_pid = second.0.id();
    let took_over = support::eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&pidfile).is_ok_and(|p| p.trim() == second_pid.to_string())
    })
    .await;
    assert!(
        took_over,
        "the second instance did not take over the stale pidfile"
    );
    kill(Pid::from_raw(second_pid as i32), Signal::SIGTERM).unwrap();
    second.0.wait().unwrap();
    assert!(!pidfile.exists(), "the pidfile is removed at exit");
}

/// A child pooler killed when the test ends, passed or not: one left running would keep the
/// test harness's output open.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// After `-d` stderr is /dev/null: what stops the daemon is logged to its logfile, as
/// PgBouncer's FATAL lines are.
#[test]
fn a_daemon_that_cannot_listen_says_why_in_its_logfile() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let log = dir.path().join("bouncectl.log");
    let pidfile = dir.path().join("bouncectl.pid");
    let ini = dir.path().join("pgbouncer.ini");
    std::fs::write(
        &ini,
        format!(
            "[databases]\n* = host=127.0.0.1 user=app\n[pgbouncer]\nauth_type = any\n\
             unix_socket_dir =\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             logfile = {}\npidfile = {}\n",
            log.display(),
            pidfile.display()
        ),
    )
    .unwrap();
    let status = Command::new(support::bin())
        .args(["serve", "-d"])
        .arg(&ini)
        .status()
        .unwrap();
    assert!(status.success(), "the foreground process returns at once");
    let expected = format!("cannot listen on 127.0.0.1:{port}: Address already in use");
    let logged = support::wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains(&expected))
    });
    assert!(
        logged,
        "{:?}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        !pidfile.exists(),
        "a pooler that never served left a pidfile"
    );
}

#[test]
fn daemon_mode_without_pidfile_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("pgbouncer.ini");
    std::fs::write(&ini, "[databases]\n* = host=127.0.0.1 user=app\n[pgbouncer]\nauth_type = any\nunix_socket_dir =\nlisten_addr = 127.0.0.1\n").unwrap();
    let out = Command::new(support::bin())
        .args(["serve", "-d"])
        .arg(&ini)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pidfile"));
}

/// The uids (real, effective, saved, filesystem) of every thread of `pid`.
fn thread_uids(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .filter_map(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            Some(
                line.split_whitespace()
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })
        .collect()
}

/// Started as root with `user = postgres`, every thread runs as postgres once the sockets are
/// open, and clients are still served; a user that does not exist stops the start.
#[tokio::test]
async fn user_runs_the_pooler_as_that_os_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: only root can change to another user");
        return;
    }
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let uid = nix::unistd::User::from_name("postgres")
        .unwrap()
        .unwrap()
        .uid;
    let bin = crate::support::binary::Binary::start(&pg, pg.port(), "user = postgres").await;
    let expected = vec![uid.to_string(); 4].join(" ");
    let dropped = support::eventually(Duration::from_secs(5), || {
        let uids = thread_uids(bin.pid());
        !uids.is_empty() && uids.iter().all(|u| *u == expected)
    })
    .await;
    assert!(dropped, "threads' uids: {:?}", thread_uids(bin.pid()));
    let client = support::connect(&bin.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    assert!(select_one(&client).await);

    let text = std::fs::read_to_string(bin.ini()).unwrap();
    let port = crate::support::postgres::free_port();
    let text = text
        .replace(
            &format!("listen_port = {}", bin.port),
            &format!("listen_port = {port}"),
        )
        .replace("user = postgres", "user = no_such_user_here");
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("pgbouncer.ini");
    std::fs::write(&ini, text).unwrap();
    let out = Command::new(support::bin())
        .arg("serve")
        .arg(&ini)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("user = no_such_user_here: no such user"),
        "{stderr}"
    );
}
