//! The operator commands run as a user would: the built binary, real PostgreSQL where needed.

use std::os::unix::fs::PermissionsExt as _;

use crate::support::{self, TempPostgres, bouncectl};

/// md5 of 'yourpassworddbuser', as `echo -n yourpassworddbuser | md5sum` prints it.
const DBUSER_MD5: &str = "md5afff9bb81732f1c10813291c588037f5";

#[test]
fn hash_prints_the_pg_md5_line() {
    let out = bouncectl(
        &["hash", "--user", "dbuser", "--password", "yourpassword"],
        "",
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert_eq!(
        support::stdout(&out),
        format!("\"dbuser\" \"{DBUSER_MD5}\"\n")
    );
}

#[test]
fn hash_shell_method_agrees_with_md5sum() {
    let piped = std::process::Command::new("sh")
        .args(["-c", "printf %s yourpassworddbuser | md5sum"])
        .output()
        .unwrap();
    let digest = support::stdout(&piped)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(format!("md5{digest}"), DBUSER_MD5);
    let out = bouncectl(
        &[
            "hash",
            "-u",
            "dbuser",
            "--password-stdin",
            "--method",
            "shell",
        ],
        "yourpassword\n",
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert_eq!(
        support::stdout(&out),
        format!("\"dbuser\" \"{DBUSER_MD5}\"\n")
    );
}

#[test]
fn hash_without_password_or_tty_is_a_usage_error() {
    let out = bouncectl(&["hash", "--user", "dbuser"], "");
    assert_eq!(out.status.code(), Some(2));
    let err = support::stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--password-stdin"), "{err}");
}

#[test]
fn hash_all_methods_agree_against_a_real_server() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let url = pg.superuser_url();
    let out = bouncectl(
        &[
            "hash",
            "--user",
            "dbuser",
            "--password",
            "yourpassword",
            "--method",
            "all",
            "--database-url",
            &url,
            "--json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["secret"], DBUSER_MD5);
    assert_eq!(json["agree"], true);
    for method in ["native", "psql", "shell"] {
        assert_eq!(json["methods"][method], DBUSER_MD5, "{method}: {json}");
    }
    assert_eq!(json["line"], format!("\"dbuser\" \"{DBUSER_MD5}\""));
}

#[test]
fn hash_psql_method_reports_an_unreachable_server() {
    let out = bouncectl(
        &[
            "hash",
            "-u",
            "x",
            "--password",
            "y",
            "--method",
            "psql",
            "--database-url",
            "host=127.0.0.1 port=1 user=x",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("127.0.0.1:1"),
        "{}",
        support::stderr(&out)
    );
}

#[tokio::test]
async fn scram_verifier_lets_the_role_log_in() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let out = bouncectl(
        &[
            "hash",
            "--user",
            "verifier_user",
            "--password-stdin",
            "--scram",
            "--iterations",
            "1000",
        ],
        "pa ss'word\n",
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let line = support::stdout(&out);
    let verifier = line.trim().split('"').nth(3).unwrap().to_owned();
    assert!(verifier.starts_with("SCRAM-SHA-256$1000:"), "{verifier}");
    pg.psql(&format!(
        "CREATE ROLE verifier_user LOGIN PASSWORD '{verifier}'"
    ));
    assert_eq!(
        pg.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'verifier_user'"),
        verifier
    );
    let url = format!(
        "host=127.0.0.1 port={} user=verifier_user dbname=postgres password='pa ss\\'word'",
        pg.port()
    );
    let client = support::connect(&url)
        .await
        .expect("login with the SCRAM verifier");
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "verifier_user");
    let wrong = format!(
        "host=127.0.0.1 port={} user=verifier_user dbname=postgres password=nope",
        pg.port()
    );
    let Err(err) = support::connect(&wrong).await else {
        panic!("a wrong password was accepted");
    };
    assert_eq!(err.as_db_error().map(|e| e.code().code()), Some("28P01"));
}

#[test]
fn hash_write_upserts_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("userlist.txt");
    let original = ";; managed by ops\n\"alice\" \"md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n\n; bob rotates monthly\n\"bob\" \"old\"\n\"carol\" \"SCRAM\"\n";
    std::fs::write(&file, original).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let path = file.to_str().unwrap();
    let out = bouncectl(
        &[
            "hash",
            "--user",
            "bob",
            "--password",
            "yourpassword",
            "--write",
            path,
        ],
        "",
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let expected = original.replace(
        "\"bob\" \"old\"",
        &format!(
            "\"bob\" \"{}\"",
            bouncectl::auth::md5_secret("bob", "yourpassword")
        ),
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "temp file left behind: {names:?}");
}

#[test]
fn hash_write_creates_a_private_file_and_quotes_names() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new-userlist.txt");
    let out = bouncectl(
        &[
            "hash",
            "--user",
            "we\"ird",
            "--password",
            "pw",
            "--write",
            file.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let entries = bouncectl::config::userlist::parse(&text).unwrap();
    assert_eq!(entries[0].user, "we\"ird");
    assert!(text.starts_with("\"we\"\"ird\" \"md5"), "{text}");
}

#[test]
fn hash_write_into_a_missing_directory_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no/such/dir/userlist.txt");
    let out = bouncectl(
        &[
            "hash",
            "--user",
            "u",
            "--password",
            "pw",
            "--write",
            file.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("does not exist"),
        "{}",
        support::stderr(&out)
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn size_reproduces_the_worked_example() {
    let out = bouncectl(
        &[
            "size",
            "--instances",
            "5",
            "--per-instance",
            "20",
            "--pg-max-connections",
            "100",
            "--json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "demand": 110, "max_db_connections": 90, "default_pool_size": 15,
            "reserve_pool_size": 5, "fits": false, "per_pooler_max_db_connections": 90
        })
    );
    let text = bouncectl(
        &[
            "size",
            "--instances",
            "5",
            "--per-instance",
            "20",
            "--pg-max-connections",
            "100",
            "--poolers",
            "2",
        ],
        "",
    );
    let text = support::stdout(&text);
    assert!(
        text.contains(
            "[pgbouncer]\ndefault_pool_size = 15\nreserve_pool_size = 5\nmax_db_connections = 45\n"
        ),
        "{text}"
    );
}

#[test]
fn size_rejects_bad_inputs_naming_the_flag() {
    for (args, flag) in [
        (
            vec!["--instances", "0", "--per-instance", "20"],
            "--instances",
        ),
        (
            vec!["--instances", "5", "--per-instance", "-3"],
            "--per-instance",
        ),
        (
            vec![
                "--instances",
                "5",
                "--per-instance",
                "20",
                "--pg-max-connections",
                "5",
            ],
            "--admin-reserve",
        ),
        (
            vec!["--instances", "5", "--per-instance", "20", "--poolers", "0"],
            "--poolers",
        ),
    ] {
        let mut full = vec!["size"];
        full.extend(args);
        let out = bouncectl(&full, "");
        assert_eq!(out.status.code(), Some(2), "{full:?}");
        assert!(
            support::stderr(&out).contains(flag),
            "{full:?}: {}",
            support::stderr(&out)
        );
    }
}
