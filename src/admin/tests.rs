use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;

use super::command::{AdminCommand, ParseError, ShutdownMode, parse};
use super::*;
use crate::config::NoEnv;
use crate::protocol::backend::results::RowDescription;
use crate::protocol::backend::{BackendMessage, ErrorFields};
use crate::protocol::walk::Walk;

#[test]
fn commands_parse_like_pgbouncer() {
    use AdminCommand as C;
    let cases: &[(&str, C)] = &[
        ("show pools", C::Show("POOLS".into())),
        ("SHOW STATS;", C::Show("STATS".into())),
        ("  select version ; ", C::Show("VERSION".into())),
        ("show client_encoding", C::Show("client_encoding".into())),
        ("SHOW DateStyle", C::Show("datestyle".into())),
        ("pause", C::Pause(None)),
        ("PAUSE mydb;", C::Pause(Some("mydb".into()))),
        ("resume \"My Db\"", C::Resume(Some("My Db".into()))),
        ("kill_client 42", C::KillClient(42)),
        (
            "shutdown wait_for_clients",
            C::Shutdown(ShutdownMode::WaitForClients),
        ),
        ("SHUTDOWN", C::Shutdown(ShutdownMode::Immediate)),
        ("reload", C::Reload),
        ("wait_close", C::WaitClose(None)),
        ("", C::Empty),
        (";", C::Empty),
    ];
    for (text, want) in cases {
        assert_eq!(parse(text).as_ref(), Ok(want), "{text}");
    }
    let set = |k: &str, v: &str| C::Set {
        key: k.into(),
        value: v.into(),
    };
    assert_eq!(
        parse("SET default_pool_size = 7"),
        Ok(set("default_pool_size", "7"))
    );
    assert_eq!(
        parse("set default_pool_size=7;"),
        Ok(set("default_pool_size", "7"))
    );
    assert_eq!(
        parse("SET application_name TO 'it''s'"),
        Ok(set("application_name", "it's"))
    );
    assert_eq!(parse("disable"), Err(ParseError::DatabaseRequired));
    assert_eq!(
        parse("DROP TABLE x").map_err(|e| e.to_string()),
        Err("invalid command 'DROP TABLE x', use SHOW HELP;".to_owned())
    );
    assert!(parse("kill_client abc").is_err());
    assert!(parse("pause a b").is_err());
    assert!(parse("SHOW pools").unwrap().read_only());
    assert!(!parse("PAUSE").unwrap().read_only());
    assert!(parse("SET extra_float_digits = 3").unwrap().read_only());
}

#[test]
fn fuzz_entry_survives_odd_input() {
    for seed in [
        &b"SET"[..],
        b"SET x",
        b"SET x =",
        b"SET x = 'unterminated",
        b"show \"\"",
        b"\"",
        b"KILL_CLIENT 99999999999999999999999",
        b"\xff\xfe",
        b"=;=;",
    ] {
        fuzz_entry(seed);
    }
}

struct FakeHost {
    config: Mutex<Arc<Config>>,
    pools: PoolRegistry,
    clients: Arc<ClientRegistry>,
    shutdown: Shutdown,
}

impl Host for FakeHost {
    fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.lock().unwrap())
    }
    fn replace_config(&self, config: Config) {
        *self.config.lock().unwrap() = Arc::new(config);
    }
    fn reload(&self) -> Result<(), String> {
        Err("no file".into())
    }
    fn peer_cancels(&self) -> Vec<(u16, usize, usize)> {
        // No pooler behind this console: no cancel is ever forwarded.
        Vec::new()
    }
    fn pools(&self) -> &PoolRegistry {
        &self.pools
    }
    fn clients(&self) -> &ClientRegistry {
        &self.clients
    }
    fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }
    fn client_count(&self) -> usize {
        0
    }
    fn auth_users(&self) -> Vec<String> {
        vec!["app".into()]
    }
}

fn host() -> Arc<FakeHost> {
    let config = Config::parse_str(
        "[databases]\nappdb = host=127.0.0.1 port=5432\n[pgbouncer]\nauth_type = passthrough\nadmin_users = admin\n",
        "test.ini",
        &NoEnv,
    )
    .unwrap();
    Arc::new(FakeHost {
        config: Mutex::new(Arc::new(config)),
        pools: PoolRegistry::new(),
        clients: Arc::new(ClientRegistry::default()),
        shutdown: Shutdown::new(),
    })
}

/// Runs `query` and returns (tag, body) of every message written.
async fn run(console: &mut Console, query: &str) -> Vec<(u8, Vec<u8>)> {
    let mut out = BytesMut::new();
    console.execute(query, &mut out).await;
    let mut walk = Walk::new(&out, usize::MAX);
    let mut msgs = Vec::new();
    while let Some(m) = walk.next_message().unwrap() {
        msgs.push((m.tag, m.body.to_vec()));
    }
    msgs
}

fn columns(msgs: &[(u8, Vec<u8>)]) -> Vec<String> {
    let (_, body) = msgs
        .iter()
        .find(|(t, _)| *t == b'T')
        .expect("a RowDescription");
    RowDescription::parse(body)
        .unwrap()
        .fields()
        .map(|f| String::from_utf8_lossy(f.name).into_owned())
        .collect()
}

fn error(msgs: &[(u8, Vec<u8>)]) -> Option<(String, String)> {
    msgs.iter().find(|(t, _)| *t == b'E').map(|(_, body)| {
        let f = ErrorFields::parse(body).unwrap();
        (
            String::from_utf8_lossy(f.code().unwrap()).into_owned(),
            String::from_utf8_lossy(f.message().unwrap()).into_owned(),
        )
    })
}

#[tokio::test]
async fn console_answers_show_and_errors_keep_the_session() {
    let host = host();
    let mut console = Console::new(host.clone(), Access::Admin, BTreeMap::new());
    let msgs = run(&mut console, "SHOW POOLS;").await;
    let names: Vec<&str> = columns::POOLS.iter().map(|(n, _)| *n).collect();
    assert_eq!(columns(&msgs), names);
    assert_eq!(msgs.last().map(|m| m.0), Some(b'Z'));

    let msgs = run(&mut console, "SHOW VERSION").await;
    let row = msgs.iter().find(|m| m.0 == b'D').unwrap();
    assert!(
        String::from_utf8_lossy(&row.1).contains("PgBouncer 1."),
        "{row:?}"
    );

    let msgs = run(&mut console, "hello").await;
    assert_eq!(
        error(&msgs),
        Some((
            "08P01".into(),
            "invalid command 'hello', use SHOW HELP;".into()
        ))
    );
    assert_eq!(msgs.last().map(|m| m.0), Some(b'Z'));

    let msgs = run(&mut console, "PAUSE nosuch").await;
    assert_eq!(error(&msgs).unwrap().1, "no such database: nosuch");
    let msgs = run(&mut console, "PAUSE pgbouncer").await;
    assert_eq!(error(&msgs).unwrap().1, "cannot pause admin db: pgbouncer");
    let msgs = run(&mut console, "RESUME").await;
    assert_eq!(error(&msgs).unwrap().1, "pooler is not paused/suspended");
    assert!(error(&run(&mut console, "PAUSE appdb").await).is_none());
    assert!(host.pools.controls.is_paused("appdb"));
    let msgs = run(&mut console, "SHOW DATABASES").await;
    assert!(msgs.iter().any(|m| m.0 == b'D'));
    assert!(error(&run(&mut console, "RESUME appdb").await).is_none());

    assert!(error(&run(&mut console, "SET default_pool_size = 7").await).is_none());
    assert_eq!(
        host.config()
            .pgbouncer
            .int(crate::config::Key::DefaultPoolSize),
        7
    );
    assert!(error(&run(&mut console, "SET listen_port = 1").await).is_some());
    let msgs = run(&mut console, "RELOAD").await;
    assert_eq!(error(&msgs).unwrap().0, "F0000");
    assert!(matches!(
        BackendMessage::parse(b'Z', &msgs.last().unwrap().1),
        Ok(BackendMessage::ReadyForQuery(_))
    ));
}

#[tokio::test]
async fn every_show_has_a_row_description_and_stats_users_only_read() {
    let host = host();
    let mut console = Console::new(host.clone(), Access::Stats, BTreeMap::new());
    for what in [
        "STATS",
        "STATS_TOTALS",
        "STATS_AVERAGES",
        "TOTALS",
        "POOLS",
        "CLIENTS",
        "SERVERS",
        "DATABASES",
        "USERS",
        "CONFIG",
        "LISTS",
        "VERSION",
        "STATE",
        "MEM",
        "PEERS",
        "PEER_POOLS",
        "SOCKETS",
        "ACTIVE_SOCKETS",
        "DNS_HOSTS",
        "DNS_ZONES",
    ] {
        let msgs = run(&mut console, &format!("show {what}")).await;
        assert!(error(&msgs).is_none(), "{what}: {msgs:?}");
        assert!(!columns(&msgs).is_empty(), "{what}");
    }
    let help = run(&mut console, "SHOW HELP").await;
    assert_eq!(help.first().map(|m| m.0), Some(b'N'));
    let notice = ErrorFields::parse(&help[0].1).unwrap();
    assert_eq!(notice.message(), Some(&b"Console usage"[..]));
    assert!(String::from_utf8_lossy(notice.get(b'D').unwrap()).contains("PAUSE [<db>]"));
    for cmd in [
        "PAUSE",
        "SHOW FDS",
        "KILL_CLIENT 1",
        "RELOAD",
        "SET default_pool_size = 3",
    ] {
        let msgs = run(&mut console, cmd).await;
        assert_eq!(error(&msgs).unwrap().1, "admin access needed", "{cmd}");
    }
    let msgs = run(&mut console, "SET extra_float_digits = 3").await;
    assert!(error(&msgs).is_none());
    let msgs = run(&mut console, "SHOW extra_float_digits").await;
    assert_eq!(columns(&msgs), ["extra_float_digits"]);
    assert_eq!(host.shutdown.phase(), crate::shutdown::Phase::Running);
}

#[test]
fn access_follows_admin_and_stats_users() {
    let config = Config::parse_str(
        "[pgbouncer]\nauth_type = passthrough\nadmin_users = a\nstats_users = s\n",
        "t.ini",
        &NoEnv,
    )
    .unwrap();
    assert_eq!(access_for(&config, "a"), Some(Access::Admin));
    assert_eq!(access_for(&config, "s"), Some(Access::Stats));
    assert_eq!(access_for(&config, "x"), None);
}

#[test]
fn timestamps_render_as_text() {
    assert_eq!(
        table::time(1_764_171_296_000_000).as_deref(),
        Some("2025-11-26 15:34:56 UTC")
    );
    assert_eq!(table::time(0), None);
}

/// The committed seeds of `fuzz/fuzz_targets/admin_command.rs` go through the same entry point.
#[test]
fn fuzz_seeds_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/admin_command");
    let mut replayed = 0;
    for seed in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(seed.unwrap().path()).unwrap();
        fuzz_entry(&data);
        assert!(parse(std::str::from_utf8(&data).unwrap()).is_ok());
        replayed += 1;
    }
    assert!(replayed >= 5);
}
