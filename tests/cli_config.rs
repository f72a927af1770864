//! `bouncectl serve --check-config` and `--print-config`, run as the built binary (no PostgreSQL).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `bouncectl serve ARGS` in `dir` with a controlled environment.
fn serve(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bouncectl"));
    cmd.arg("serve").args(args).current_dir(dir);
    for name in [
        "PG_HOST",
        "PG_USER",
        "PG_PASSWORD",
        "PGHOST",
        "PGPORT",
        "PGUSER",
    ] {
        cmd.env_remove(name);
    }
    cmd.envs(vars.iter().copied());
    cmd.output().unwrap()
}

const SEED_ENV: &[(&str, &str)] = &[
    ("PG_HOST", "db.internal"),
    ("PG_USER", "app"),
    ("PG_PASSWORD", "hunter2"),
];

#[test]
fn check_config_accepts_the_seed_config() {
    let out = serve(&fixtures(), &["seed.ini", "--check-config"], SEED_ENV);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_config_names_keys_without_effect_and_still_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("old.ini"),
        "[databases]\napp = host=db user=app\n[pgbouncer]\nauth_type = any\npkt_buf = 8192\n\
         sbuf_loopcnt = 5\nsuspend_timeout = 20\n",
    )
    .unwrap();
    let out = serve(dir.path(), &["old.ini", "--check-config"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    // sbuf_loopcnt = 5 is PgBouncer's default: no news.
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            "old.ini:5: pkt_buf = 8192 has no effect in bouncectl",
            "old.ini:7: suspend_timeout = 20 has no effect in bouncectl",
            "old.ini: configuration is valid",
        ]
    );
}

#[test]
fn check_config_reports_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.ini"),
        "[databases]\napp = hots=x\n[pgbouncer]\nauth_file = u\nmax_client_con = 10\nlisten_port = 0\npool_mode = batch\n",
    )
    .unwrap();
    let out = serve(dir.path(), &["bad.ini", "--check-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "bad.ini:2: app: unrecognized connection parameter: hots (did you mean host?)",
            "bad.ini:5: unknown parameter max_client_con in [pgbouncer] (did you mean max_client_conn?)",
            "bad.ini:6: listen_port: 0 is out of range (expected 1 to 65535)",
            "bad.ini:7: pool_mode: expected one of session, transaction, statement, found \"batch\"",
        ]
    );
}

#[test]
fn check_config_names_an_unset_variable() {
    let out = serve(&fixtures(), &["seed.ini", "--check-config"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("seed.ini:2: *: host: environment variable PG_HOST is not set\n"),
        "{stderr}"
    );
}

#[test]
fn print_config_shows_defaults_and_masks_passwords() {
    let out = serve(&fixtures(), &["seed.ini", "--print-config"], SEED_ENV);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("; effective configuration of bouncectl, from seed.ini\n"));
    for line in [
        "* = host=db.internal port=5432 user=app password=********",
        "max_db_connections = 90",
        "server_tls_sslmode = require",
        "query_wait_timeout = 120",
        "server_idle_timeout = 600",
        "unix_socket_dir = /tmp",
        "max_prepared_statements = 200",
    ] {
        assert!(stdout.lines().any(|l| l == line), "missing {line:?}");
    }
    assert!(!stdout.contains("hunter2"));
}

#[test]
fn print_config_without_a_file_is_the_embedded_default() {
    let out = serve(&fixtures(), &["--print-config"], &[("PGUSER", "alice")]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("; effective configuration of bouncectl, from embedded default\n"));
    for line in [
        "* = host=127.0.0.1 port=5432",
        "auth_type = passthrough",
        "admin_users = alice",
        "listen_addr = 127.0.0.1",
    ] {
        assert!(stdout.lines().any(|l| l == line), "missing {line:?}");
    }
}

#[test]
fn serve_exits_2_when_its_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("pgbouncer.ini");
    std::fs::write(
        &ini,
        format!(
            "[databases]\n* = host=127.0.0.1 port=5432 user=app\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nunix_socket_dir =\nauth_type = any\n"
        ),
    )
    .unwrap();
    let out = serve(dir.path(), &[ini.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn serve_version_is_what_show_version_answers() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve(dir.path(), &["--version"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().next(),
        Some(bouncectl::admin::version_text().as_str())
    );
    assert!(text.starts_with("PgBouncer "), "{text}");
}
