//! Unit tests of `check`: the judgements that need no server, on configurations and URLs
//! written inline.

use super::app_url::{self, AppUrl};
use super::ini::{self, Server};
use super::probes;
use super::userlist;
use super::*;
use crate::config::{Config, NoEnv};

fn config(text: &str) -> Config {
    Config::parse_str(text, "pgbouncer.ini", &NoEnv).unwrap()
}

const BASE: &str = "[databases]\napp = host=db1 port=5433\n[pgbouncer]\nlisten_port = 6432\n\
                    auth_type = md5\nauth_file = /nonexistent/userlist.txt\npool_mode = transaction\n";

#[test]
fn findings_put_the_worst_first() {
    let mut f = Findings::default();
    f.note(Status::Pass, "a");
    f.note(Status::Skip, "b");
    f.note(Status::Fail, "c");
    f.note(Status::Warn, "d");
    assert_eq!(f.outcome(), Outcome::new(Status::Fail, "c; d; a; b"));
    let mut f = Findings::default();
    f.note(Status::Skip, "only");
    assert_eq!(f.outcome().status, Status::Skip);
    assert_eq!(Findings::default().outcome().status, Status::Pass);
}

#[test]
fn driver_params_are_set_aside_and_decoded() {
    let (connect, driver) = app_url::split_driver_params(
        "postgresql://u:p@h:6432/app?schema=my%20s&pgbouncer=true&sslmode=disable&connection_limit=5",
    );
    assert_eq!(connect, "postgresql://u:p@h:6432/app?sslmode=disable");
    assert_eq!(driver["schema"], "my s");
    assert_eq!(driver["pgbouncer"], "true");
    assert_eq!(driver["connection_limit"], "5");
    let (connect, driver) = app_url::split_driver_params("host=h port=6432 user=u");
    assert_eq!(connect, "host=h port=6432 user=u");
    assert!(driver.is_empty());
    let (connect, _) = app_url::split_driver_params("postgres://h/db?pgbouncer=true");
    assert_eq!(connect, "postgres://h/db");
    let url = AppUrl::parse("postgresql://u:p@h:6432/app?pgbouncer=true&pool_timeout=0").unwrap();
    assert_eq!(url.host_and_port(), ("h".to_owned(), 6432));
}

fn judge(url: &str, config: Option<&Config>, admin: Option<u16>) -> Outcome {
    app_url::judge(&AppUrl::parse(url).unwrap(), config, admin, None)
}

#[test]
fn the_apps_port_must_be_the_poolers() {
    let c = config(BASE);
    let good = "postgresql://u:p@h:6432/app?pgbouncer=true&connection_limit=5";
    let outcome = judge(good, Some(&c), None);
    assert_eq!(outcome.status, Status::Pass, "{outcome:?}");
    assert!(
        outcome
            .evidence
            .contains("connection_limit=5 ≤ pool_size 20")
    );
    let direct = judge(
        "postgresql://u:p@h:5432/app?pgbouncer=true&connection_limit=5",
        Some(&c),
        None,
    );
    assert_eq!(direct.status, Status::Fail);
    assert!(
        direct
            .evidence
            .starts_with("port 5432 points at PostgreSQL directly")
    );
    let elsewhere = judge(
        "postgresql://u:p@h:7000/app?pgbouncer=true&connection_limit=5",
        Some(&c),
        None,
    );
    assert_eq!(elsewhere.status, Status::Warn);
    let by_admin = judge(
        "postgresql://u:p@h:7000/app?pgbouncer=true&connection_limit=5",
        None,
        Some(7000),
    );
    assert_eq!(by_admin.status, Status::Pass, "{by_admin:?}");
}

#[test]
fn prisma_parameters_are_judged_against_the_pool() {
    let c = config(BASE);
    let bare = judge("postgresql://u:p@h:6432/app", Some(&c), None);
    assert_eq!(bare.status, Status::Warn);
    assert!(bare.evidence.contains("no pgbouncer=true"), "{bare:?}");
    assert!(bare.evidence.contains("no connection_limit"), "{bare:?}");
    let greedy = judge(
        "postgresql://u:p@h:6432/app?pgbouncer=true&connection_limit=21",
        Some(&c),
        None,
    );
    assert!(
        greedy
            .evidence
            .contains("connection_limit=21 > pool_size 20"),
        "{greedy:?}"
    );
    let session = config(&format!("{BASE}pool_mode = session\n"));
    let ok = judge(
        "postgresql://u:p@h:6432/app?connection_limit=5",
        Some(&session),
        None,
    );
    assert_eq!(ok.status, Status::Pass, "{ok:?}");
}

#[test]
fn pools_are_summed_per_database_and_pooler() {
    let c = config(&format!(
        "{BASE}reserve_pool_size = 5\n[databases]\nbig = host=db1 pool_size=50\ncapped = host=db1 max_db_connections=10\n"
    ));
    // app 20+5, big 50+5, capped min(20+5, 10) = 10 → 90 per pooler.
    let fits = probes::judge_fit(&c, (300, 3), 3);
    assert_eq!(fits.status, Status::Pass, "{fits:?}");
    assert!(
        fits.evidence
            .starts_with("pools 25 + 55 + 10 × 3 poolers = 270 ≤ 297"),
        "{fits:?}"
    );
    let over = probes::judge_fit(&c, (100, 3), 1);
    assert_eq!(over.status, Status::Pass, "{over:?}");
    let over = probes::judge_fit(&c, (90, 3), 1);
    assert_eq!(over.status, Status::Fail, "{over:?}");
    assert!(over.evidence.contains("= 90 > 87"), "{over:?}");
    assert!(
        over.evidence.contains("size suggests default_pool_size"),
        "{over:?}"
    );
}

#[test]
fn the_suggestion_leaves_room_for_each_reserve_pool() {
    let c = config(&format!("{BASE}reserve_pool_size = 5\n"));
    // 5 poolers × (20 + 5) = 125 > 97; (97 − 5 × 5) / 5 = 14, and 5 × (14 + 5) = 95 fits.
    let outcome = probes::judge_fit(&c, (100, 3), 5);
    assert_eq!(outcome.status, Status::Fail);
    assert!(
        outcome
            .evidence
            .ends_with("size suggests default_pool_size 14, max_db_connections 19 per pooler"),
        "{outcome:?}"
    );
    // 4 × 25 = 100 > 97 although 4 × 20 = 80 would fit: the reserve counts.
    let outcome = probes::judge_fit(&c, (100, 3), 4);
    assert_eq!(outcome.status, Status::Fail);
    assert!(outcome.evidence.contains("size suggests"), "{outcome:?}");
}

#[test]
fn the_size_formula_matches_the_design_example() {
    // 5 pools of 20 against max_connections 100 with 10 reserved: size says 18 per pool.
    let c = config(
        "[databases]\na = host=h\nb = host=h\nc = host=h\nd = host=h\ne = host=h\n[pgbouncer]\n\
         auth_type = md5\nauth_file = /x\n",
    );
    let outcome = probes::judge_fit(&c, (100, 10), 1);
    assert_eq!(outcome.status, Status::Fail);
    assert!(
        outcome
            .evidence
            .ends_with("size suggests default_pool_size 18, max_db_connections 90 per pooler"),
        "{outcome:?}"
    );
}

#[test]
fn servers_are_distinct_with_sockets_and_host_lists() {
    let c = config(
        "[databases]\na = host=db1 port=5433\nb = host=db1,db2 port=5433\nc =\n* = host=/run/pg\n\
         [pgbouncer]\nunix_socket_dir = /sock\nauth_type = md5\nauth_file = /x\n",
    );
    let servers = ini::servers(&c);
    let keys: Vec<String> = servers.keys().map(ToString::to_string).collect();
    assert_eq!(
        keys,
        [
            "db1:5433",
            "db2:5433",
            "/run/pg/.s.PGSQL.5432",
            "/sock/.s.PGSQL.5432"
        ]
    );
    assert_eq!(servers[&Server::Tcp("db1".into(), 5433)], ["a", "b"]);
}

#[test]
fn userlist_entries_are_classified() {
    let md5 = crate::auth::md5_secret("a", "pw");
    let mut f = Findings::default();
    userlist::judge_entries(
        &format!("\"a\" \"{md5}\"\n\"b\" \"plain\"\n"),
        "u.txt",
        0o600,
        &mut f,
    );
    let outcome = f.outcome();
    assert_eq!(outcome.status, Status::Warn);
    assert_eq!(
        outcome.evidence,
        "1 plaintext secret (b): hash with `bouncectl hash --user U --write u.txt`; \
         u.txt: 2 entries (1 md5, 0 scram-sha-256, 1 plain), mode 0600"
    );
    let mut f = Findings::default();
    userlist::judge_entries("\"a\" \"x\"\nbroken\n", "u.txt", 0o600, &mut f);
    assert!(
        f.outcome()
            .evidence
            .starts_with("u.txt:2: broken auth file")
    );
    let mut f = Findings::default();
    userlist::judge_entries("; only a comment\n", "u.txt", 0o600, &mut f);
    assert_eq!(f.outcome().status, Status::Warn);
}

#[test]
fn a_missing_config_skips_with_the_flag() {
    let outcome = userlist::check(&Loaded::NotGiven);
    assert_eq!(outcome, Outcome::skip("needs --config FILE"));
    let passthrough = Loaded::Usable {
        config: Box::new(config(
            "[databases]\n* = host=h\n[pgbouncer]\nauth_type = passthrough\n",
        )),
        problems: Vec::new(),
    };
    assert_eq!(userlist::check(&passthrough).status, Status::Skip);
}
