//! `bouncectl check` against a real deployment: PostgreSQL, Debian's PgBouncer in front of it, the
//! app's URL through the pooler. First everything passes, then one thing at a time is broken and
//! the matching item and the exit code follow.

use std::io::{Read as _, Write as _};
use std::path::Path;

use serde_json::Value;

use crate::support::pgbouncer::{STATS_PASSWORD, STATS_USER};
use crate::support::postgres::{MD5_USER, PASSWORD};
use crate::support::{self, TempPgbouncer, TempPostgres, bouncectl};

/// A running deployment: PostgreSQL and PgBouncer in front of it.
struct Deployment {
    pg: TempPostgres,
    bouncer: TempPgbouncer,
}

impl Deployment {
    fn start() -> Option<Self> {
        let pg = TempPostgres::start_or_skip()?;
        let bouncer = TempPgbouncer::start_or_skip(&pg, &[])?;
        Some(Deployment { pg, bouncer })
    }

    /// The app's Prisma-style URL through the pooler, with `params` as its query string.
    fn app_url(&self, port: u16, params: &str) -> String {
        format!("postgresql://{MD5_USER}:{PASSWORD}@127.0.0.1:{port}/postgres?{params}")
    }

    fn good_url(&self) -> String {
        self.app_url(self.bouncer.port(), "pgbouncer=true&connection_limit=5")
    }

    /// Runs `check --json` with every input given; `url` is the app's; `extra` adds flags.
    fn check(&self, url: &str, extra: &[&str]) -> (i32, Value) {
        let ini = self.bouncer.ini_path();
        let admin = self.bouncer.admin_url(STATS_USER, STATS_PASSWORD);
        let pg = self.pg.superuser_url();
        let mut args = vec![
            "check",
            "--config",
            ini.to_str().unwrap(),
            "--database-url",
            url,
            "--admin-url",
            &admin,
            "--pg-url",
            &pg,
            "--json",
        ];
        args.extend_from_slice(extra);
        run_json(&args)
    }
}

fn run_json(args: &[&str]) -> (i32, Value) {
    let out = bouncectl(args, "");
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", support::stdout(&out), support::stderr(&out)));
    (out.status.code().unwrap(), json)
}

/// Status and evidence of item `id`.
fn item(json: &Value, id: u64) -> (&str, &str) {
    let item = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no item {id} in {json:#}"));
    (
        item["status"].as_str().unwrap(),
        item["evidence"].as_str().unwrap(),
    )
}

/// Every item's status, in order, as one string for readable assertions.
fn statuses(json: &Value) -> Vec<String> {
    json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{}:{}", i["id"], i["status"].as_str().unwrap()))
        .collect()
}

#[test]
fn check_passes_a_good_deployment() {
    let Some(d) = Deployment::start() else {
        return;
    };
    let (code, json) = d.check(&d.good_url(), &[]);
    let expected: Vec<String> = (1..=8)
        .map(|id| format!("{id}:pass"))
        .chain(["9:manual".to_owned()])
        .collect();
    assert_eq!(statuses(&json), expected, "{json:#}\n{}", d.bouncer.log());
    assert_eq!(code, 0);
    assert_eq!(json["ok"], true);
    assert_eq!(
        json["summary"],
        serde_json::json!({"pass": 8, "warn": 0, "fail": 0, "skip": 0, "manual": 1})
    );
    let mut keys: Vec<&str> = json["items"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["evidence", "id", "name", "status"]);
    assert!(item(&json, 1).1.contains("mode 0600"), "{json:#}");
    assert!(item(&json, 3).1.contains("max_connections 300"), "{json:#}");
    assert!(item(&json, 4).1.contains("pgbouncer=true"), "{json:#}");
    assert!(item(&json, 6).1.contains("SELECT 1 in"), "{json:#}");
    assert!(
        item(&json, 8).1.contains("SHOW STATS as stats_user"),
        "{json:#}"
    );
    assert!(
        item(&json, 8).1.contains("metrics_listen not set"),
        "{json:#}"
    );

    // The table: one row per item on stdout, the counts on stderr.
    let ini = d.bouncer.ini_path();
    let url = d.good_url();
    let out = bouncectl(
        &[
            "check",
            "--config",
            ini.to_str().unwrap(),
            "--database-url",
            &url,
        ],
        "",
    );
    let text = support::stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        support::stderr(&out)
    );
    let header = text.lines().nth(1).unwrap();
    let columns: Vec<&str> = header.split(['│', '┆']).map(str::trim).collect();
    assert_eq!(
        columns,
        ["", "#", "item", "status", "evidence", ""],
        "{text}"
    );
    for name in ["pooler is up", "app credentials accepted", "secrets kept"] {
        assert!(text.contains(name), "{text}");
    }
    assert!(text.contains("needs --pg-url"), "{text}");
    assert!(
        support::stderr(&out).contains("0 fail"),
        "{}",
        support::stderr(&out)
    );
}

#[test]
fn check_judges_the_apps_url_and_the_pool_sizes() {
    let Some(d) = Deployment::start() else {
        return;
    };
    // Straight at PostgreSQL: the login works, but item 4 fails.
    let direct = d.app_url(d.pg.port(), "pgbouncer=true&connection_limit=5");
    let (code, json) = d.check(&direct, &[]);
    let (status, evidence) = item(&json, 4);
    assert_eq!(status, "fail", "{json:#}");
    assert!(
        evidence.contains("points at PostgreSQL directly"),
        "{evidence}"
    );
    assert_eq!((code, item(&json, 7).0), (1, "pass"));

    // No pgbouncer=true: a warning, exit 0, but 1 under --strict.
    let no_flag = d.app_url(d.bouncer.port(), "connection_limit=5&schema=public");
    let (code, json) = d.check(&no_flag, &[]);
    let (status, evidence) = item(&json, 4);
    assert_eq!((code, status), (0, "warn"), "{json:#}");
    assert!(evidence.contains("no pgbouncer=true"), "{evidence}");
    assert_eq!(json["ok"], true);
    let (code, json) = d.check(&no_flag, &["--strict"]);
    assert_eq!((code, &json["ok"]), (1, &Value::Bool(false)));

    // connection_limit above the pool: a warning.
    let greedy = d.app_url(d.bouncer.port(), "pgbouncer=true&connection_limit=50");
    let (_, json) = d.check(&greedy, &[]);
    let (status, evidence) = item(&json, 4);
    assert_eq!(status, "warn", "{json:#}");
    assert!(evidence.contains("> pool_size 20"), "{evidence}");

    // 20 poolers × 20 = 400 > 300 − 3: item 3 fails.
    let (code, json) = d.check(&d.good_url(), &["--poolers", "20"]);
    let (status, evidence) = item(&json, 3);
    assert_eq!((code, status), (1, "fail"), "{json:#}");
    assert!(evidence.contains("= 400 > 297"), "{evidence}");
    assert!(
        evidence.contains("size suggests default_pool_size 14"),
        "{evidence}"
    );
}

#[test]
fn check_judges_the_userlist() {
    let Some(d) = Deployment::start() else {
        return;
    };
    let path = d.bouncer.userlist_path();
    let hashed = std::fs::read_to_string(&path).unwrap();
    let plain = format!("{hashed}\"app_plain\" \"{PASSWORD}\"\n");

    d.bouncer.write_userlist(&plain, 0o600);
    let (code, json) = d.check(&d.good_url(), &[]);
    let (status, evidence) = item(&json, 1);
    assert_eq!((code, status), (0, "warn"), "{json:#}");
    assert!(
        evidence.contains("1 plaintext secret (app_plain)"),
        "{evidence}"
    );
    let (code, _) = d.check(&d.good_url(), &["--strict"]);
    assert_eq!(code, 1);

    d.bouncer.write_userlist(&hashed, 0o644);
    let (code, json) = d.check(&d.good_url(), &[]);
    let (status, evidence) = item(&json, 1);
    assert_eq!((code, status), (1, "fail"), "{json:#}");
    assert!(evidence.contains("mode 0644"), "{evidence}");

    // A broken line fails item 1 and, through the config's own validation, item 2.
    d.bouncer.write_userlist(&format!("{hashed}oops\n"), 0o600);
    let (code, json) = d.check(&d.good_url(), &[]);
    assert_eq!(code, 1);
    assert_eq!(item(&json, 1).0, "fail", "{json:#}");
    let (status, evidence) = item(&json, 2);
    assert_eq!(status, "fail");
    assert!(evidence.contains("userlist.txt:4"), "{evidence}");
}

#[test]
fn check_fails_on_a_wrong_password_and_a_stopped_pooler() {
    let Some(mut d) = Deployment::start() else {
        return;
    };
    let wrong = format!(
        "postgresql://{MD5_USER}:wrong@127.0.0.1:{}/postgres?pgbouncer=true&connection_limit=5",
        d.bouncer.port()
    );
    let (code, json) = d.check(&wrong, &[]);
    assert_eq!(code, 1);
    let (status, evidence) = item(&json, 7);
    assert_eq!(status, "fail", "{json:#}");
    assert!(evidence.contains("password"), "{evidence}");
    assert!(item(&json, 6).1.contains("item 7"), "{json:#}");
    assert_eq!(item(&json, 5).0, "pass");

    d.bouncer.stop();
    let (code, json) = d.check(&d.good_url(), &[]);
    assert_eq!(code, 1);
    for id in [5, 6, 8] {
        let (status, evidence) = item(&json, id);
        assert_eq!(status, "fail", "item {id}: {json:#}");
        assert!(evidence.contains("nothing listens on"), "{evidence}");
    }
    assert_eq!(item(&json, 7).0, "skip");
    assert_eq!(item(&json, 2).0, "pass", "PostgreSQL is still up: {json:#}");
}

/// A config with a dead server, its own userlist, and `metrics_listen` at `metrics`.
fn offline_config(dir: &Path, metrics: Option<u16>) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let userlist = dir.join("userlist.txt");
    let secret = bouncectl::auth::md5_secret("app", "pw");
    std::fs::write(&userlist, format!("\"app\" \"{secret}\"\n")).unwrap();
    std::fs::set_permissions(&userlist, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dead = support::postgres::free_port();
    let listen = support::postgres::free_port();
    let mut ini = format!(
        "[databases]\napp = host=127.0.0.1 port={dead}\n* = host=127.0.0.1 port={dead}\n\
         [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {listen}\nauth_type = md5\nauth_file = {}\n",
        userlist.display()
    );
    if let Some(port) = metrics {
        ini.push_str(&format!("metrics_listen = 127.0.0.1:{port}\n"));
    }
    let path = dir.join("pgbouncer.ini");
    std::fs::write(&path, ini).unwrap();
    path
}

/// Answers one HTTP request with `status_line` on a free port.
fn one_shot_http(status_line: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = write!(stream, "{status_line}\r\ncontent-length: 0\r\n\r\n");
        }
    });
    port
}

#[test]
fn check_probes_servers_and_metrics_without_a_pooler() {
    let dir = tempfile::tempdir().unwrap();
    let port = one_shot_http("HTTP/1.1 200 OK");
    let ini = offline_config(dir.path(), Some(port));
    let (code, json) = run_json(&["check", "--config", ini.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(item(&json, 1).0, "pass", "{json:#}");
    let (status, evidence) = item(&json, 2);
    assert_eq!(status, "fail");
    assert!(evidence.contains("database *, app"), "{evidence}");
    let (status, evidence) = item(&json, 8);
    assert_eq!(status, "pass", "{json:#}");
    assert!(evidence.contains("200 OK"), "{evidence}");
    assert!(evidence.contains("needs --admin-url"), "{evidence}");
    assert_eq!(
        item(&json, 5).0,
        "fail",
        "nothing listens on listen_port: {json:#}"
    );

    let port = one_shot_http("HTTP/1.1 404 Not Found");
    let ini = offline_config(dir.path(), Some(port));
    let (_, json) = run_json(&["check", "--config", ini.to_str().unwrap(), "--json"]);
    assert_eq!(item(&json, 8).0, "fail", "{json:#}");
}

#[test]
fn check_reports_config_problems_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ini = offline_config(dir.path(), None);
    let mut text = std::fs::read_to_string(&ini).unwrap();
    text.push_str("default_pool_sise = 10\n");
    std::fs::write(&ini, text).unwrap();
    let (code, json) = run_json(&["check", "--config", ini.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    let (status, evidence) = item(&json, 2);
    assert_eq!(status, "fail");
    assert!(
        evidence.contains("pgbouncer.ini:9: unknown parameter"),
        "{evidence}"
    );
    assert_eq!(item(&json, 3).0, "skip", "{json:#}");

    for (args, says) in [
        (vec!["check", "--poolers", "0"], "--poolers"),
        (vec!["check", "--config", "/nonexistent.ini"], "--config"),
        (
            vec!["check", "--pg-url", "postgresql://h:notaport/x"],
            "--pg-url",
        ),
    ] {
        let out = bouncectl(&args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            support::stderr(&out).contains(says),
            "{}",
            support::stderr(&out)
        );
        assert!(out.stdout.is_empty());
    }
}
