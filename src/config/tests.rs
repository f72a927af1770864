use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "PG_HOST" => Some("db.internal".into()),
        "PG_USER" => Some("app".into()),
        "PG_PASSWORD" => Some("s3cr3t pass'word".into()),
        _ => None,
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    Config::parse_str(text, "t.ini", &env)
}

/// The rendered problems of a config that must fail.
fn problems(text: &str) -> Vec<String> {
    parse(text)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

const OK_BASE: &str = "[pgbouncer]\nauth_file = u.txt\n";

#[test]
fn registry_is_sorted_unique_and_defaults_parse() {
    for pair in KEYS.windows(2) {
        assert!(
            pair[0].name < pair[1].name,
            "{} before {}",
            pair[0].name,
            pair[1].name
        );
    }
    for (index, spec) in KEYS.iter().enumerate() {
        assert_eq!(spec.key as usize, index);
        assert_eq!(Key::lookup(spec.name), Some(spec.key));
        keys::parse_value(spec.kind, spec.default).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
    }
}

#[test]
fn reads_debians_sample_config() {
    let text = std::fs::read_to_string(fixture("debian-pgbouncer.ini")).unwrap();
    let config = Config::parse_str(&text, "debian-pgbouncer.ini", &NoEnv).unwrap();
    let s = &config.pgbouncer;
    assert_eq!(s.listen_addrs(), vec!["localhost"]);
    assert_eq!(s.listen_port(), 6432);
    assert_eq!(s.text(Key::UnixSocketDir), Some("/var/run/postgresql"));
    assert_eq!(s.text(Key::AuthFile), Some("/etc/pgbouncer/userlist.txt"));
    assert_eq!(s.auth_type(), AuthType::Md5);
    assert_eq!(s.pool_mode(), PoolMode::Session);
    assert!(config.databases.is_empty());
}

#[test]
fn reads_the_seed_config_and_prints_defaults() {
    let text = std::fs::read_to_string(fixture("seed.ini")).unwrap();
    let config = Config::parse_str(&text, "seed.ini", &env).unwrap();
    let s = &config.pgbouncer;
    assert_eq!(s.pool_mode(), PoolMode::Transaction);
    assert_eq!(s.server_tls_sslmode(), SslMode::Require);
    assert_eq!(s.int(Key::MaxDbConnections), 90);
    assert_eq!(s.int(Key::Verbose), 1);
    assert!(s.flag(Key::LogConnections));
    assert_eq!(s.duration(Key::QueryWaitTimeout), Duration::from_secs(120));
    let fallback = &config.databases["*"].target;
    assert_eq!(fallback.host.as_deref(), Some("db.internal"));
    assert_eq!(fallback.password.as_deref(), Some("s3cr3t pass'word"));
    let ini = config.to_ini();
    assert!(ini.starts_with("; effective configuration of bouncectl, from seed.ini\n"));
    for line in [
        "* = host=db.internal port=5432 user=app password=********",
        "server_idle_timeout = 600",
        "server_lifetime = 3600",
        "max_prepared_statements = 200",
        "unix_socket_mode = 0777",
        "server_reset_query = DISCARD ALL",
        "auth_query = SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname=$1 AND rolcanlogin",
    ] {
        assert!(ini.lines().any(|l| l == line), "missing {line:?} in\n{ini}");
    }
    assert!(!ini.contains("s3cr3t"));
    let again = Config::parse_str(&ini, "printed.ini", &NoEnv).unwrap();
    assert_eq!(again.pgbouncer, config.pgbouncer);
}

#[test]
fn every_key_type_parses_and_renders() {
    for (key, input, rendered) in [
        ("max_client_conn", "500", "500"),
        ("max_client_conn", "0x10", "16"),
        ("listen_backlog", "010", "8"),
        ("log_connections", "off", "0"),
        ("log_connections", "Yes", "1"),
        ("server_round_robin", "true", "1"),
        ("query_timeout", "2.5", "2.5"),
        ("query_timeout", "0", "0"),
        ("pool_mode", "Statement", "statement"),
        ("auth_type", "SCRAM-SHA-256", "scram-sha-256"),
        ("auth_type", "passthrough", "passthrough"),
        ("unix_socket_mode", "0700", "0700"),
        ("unix_socket_mode", "644", "0644"),
        ("admin_users", " a , b,,c ", "a,b,c"),
        ("metrics_listen", "127.0.0.1:9127", "127.0.0.1:9127"),
        ("metrics_listen", "*:9127", "*:9127"),
        ("metrics_listen", "[::1]:9127", "[::1]:9127"),
        (
            "metrics_listen",
            "metrics.internal:9127",
            "metrics.internal:9127",
        ),
        ("metrics_path", "/prom", "/prom"),
        ("log_format", "json", "json"),
        ("server_check_query", "select 1", "select 1"),
        ("MAX_CLIENT_CONN", "7", "7"),
    ] {
        let config = parse(&format!("{OK_BASE}{key} = {input}\n"))
            .unwrap_or_else(|e| panic!("{key}={input}: {e:?}"));
        let k = Key::lookup(key).unwrap();
        assert_eq!(config.pgbouncer.render(k), rendered, "{key} = {input}");
    }
}

#[test]
fn each_error_class_names_file_and_line() {
    for (body, expected) in [
        (
            "max_client_con = 10",
            "t.ini:3: unknown parameter max_client_con in [pgbouncer] (did you mean max_client_conn?)",
        ),
        (
            "listen_port = 0",
            "t.ini:3: listen_port: 0 is out of range (expected 1 to 65535)",
        ),
        (
            "listen_port = 70000",
            "t.ini:3: listen_port: 70000 is out of range (expected 1 to 65535)",
        ),
        (
            "query_timeout = -1",
            "t.ini:3: query_timeout: expected seconds (a number ≥ 0, e.g. 2.5), found \"-1\"",
        ),
        (
            "default_pool_size = -5",
            "t.ini:3: default_pool_size: -5 is out of range (expected 0 to 2147483647)",
        ),
        (
            "max_client_conn = lots",
            "t.ini:3: max_client_conn: expected an integer, found \"lots\"",
        ),
        (
            "log_stats = maybe",
            "t.ini:3: log_stats: expected a boolean (0/1, yes/no, on/off, true/false), found \"maybe\"",
        ),
        (
            "pool_mode = batch",
            "t.ini:3: pool_mode: expected one of session, transaction, statement, found \"batch\"",
        ),
        (
            "unix_socket_mode = 0999",
            "t.ini:3: unix_socket_mode: expected an octal file mode such as 0777, found \"0999\"",
        ),
        (
            "metrics_listen = 9127",
            "t.ini:3: metrics_listen: expected host:port (e.g. 127.0.0.1:9127), found \"9127\"",
        ),
        (
            "metrics_listen = 127.0.0.300:9127",
            "t.ini:3: metrics_listen: expected host:port (e.g. 127.0.0.1:9127), found \"127.0.0.300:9127\"",
        ),
        (
            "metrics_listen = my host:9127",
            "t.ini:3: metrics_listen: expected host:port (e.g. 127.0.0.1:9127), found \"my host:9127\"",
        ),
        (
            "metrics_listen = ::1:9127",
            "t.ini:3: metrics_listen: expected host:port (e.g. 127.0.0.1:9127), found \"::1:9127\"",
        ),
        (
            "metrics_listen = 127.0.0.1:0",
            "t.ini:3: metrics_listen: expected host:port (e.g. 127.0.0.1:9127), found \"127.0.0.1:0\"",
        ),
        (
            "logfile = ${NOPE}",
            "t.ini:3: logfile: environment variable NOPE is not set",
        ),
        (
            "client_tls_sslmode = require",
            "t.ini:3: client_tls_sslmode = require needs client_tls_key_file and client_tls_cert_file",
        ),
        (
            "max_db_connections = 2\nmin_pool_size = 5",
            "t.ini:3: max_db_connections = 2 is below min_pool_size = 5",
        ),
        (
            "this is not ini",
            "t.ini:3: syntax error: expected `key = value`, found \"this is not ini\"",
        ),
    ] {
        let got = problems(&format!("{OK_BASE}{body}\n"));
        assert_eq!(got, vec![expected.to_owned()], "{body}");
    }
}

#[test]
fn sections_and_contradictions_across_them() {
    for (text, expected) in [
        (
            "[pgbouncr]\nx = 1\n[pgbouncer]\nauth_file = u\n",
            "t.ini:1: unknown section [pgbouncr] (did you mean pgbouncer?)",
        ),
        (
            "x = 1\n[pgbouncer]\nauth_file = u\n",
            "t.ini:1: x is outside any section; put it under [pgbouncer]",
        ),
        (
            "[databases]\npgbouncer = host=x\n[pgbouncer]\nauth_file = u\n",
            "t.ini:2: database name \"pgbouncer\" is reserved for the admin console",
        ),
        (
            "[databases]\nd = hots=x\n[pgbouncer]\nauth_file = u\n",
            "t.ini:2: d: unrecognized connection parameter: hots (did you mean host?)",
        ),
        (
            "[pgbouncer]\nauth_file = u\nmetrics_path = /readyz\n",
            "t.ini:3: metrics_path must differ from /healthz and /readyz (the probes)",
        ),
        (
            "[pgbouncer]\nauth_file = u\nmetrics_path = metrics\n",
            "t.ini:3: metrics_path must start with '/'",
        ),
        (
            "[databases]\nd = port=99999\n[pgbouncer]\nauth_file = u\n",
            "t.ini:2: d: port: 99999 is out of range (expected 1 to 65535)",
        ),
        (
            "[databases]\nd = host='x\n[pgbouncer]\nauth_file = u\n",
            "t.ini:2: d: value of host has no closing quote",
        ),
        (
            "[databases]\nd = host=x\n[pgbouncer]\nauth_type = any\n",
            "t.ini:2: database d has no user=, but auth_type = any ignores the client's user name; add user= to it",
        ),
        (
            "[databases]\nd = min_pool_size=10 max_db_connections=3\n[pgbouncer]\nauth_file = u\n",
            "t.ini:2: database d: max_db_connections = 3 is below min_pool_size = 10",
        ),
        (
            "[users]\nu = pool_mode=none\n[pgbouncer]\nauth_file = u\n",
            "t.ini:2: u: pool_mode: expected one of session, transaction, statement, found \"none\"",
        ),
        (
            "[users]\nu = max_user_conn=1\n[pgbouncer]\nauth_file = u\n",
            "t.ini:2: u: unrecognized user parameter: max_user_conn",
        ),
        (
            "[peers]\n0 = host=x\n[pgbouncer]\nauth_file = u\n",
            "t.ini:2: peer id \"0\": 0 is out of range (expected 1 to 16383)",
        ),
        (
            "[peers]\n1 = port=1\n[pgbouncer]\nauth_file = u\n",
            "t.ini:2: 1: peer needs host=",
        ),
        (
            "[pgbouncer]\nauth_type = md5\n",
            "t.ini:2: auth_type = md5 needs auth_file (or auth_user with auth_query); no client could log in",
        ),
        (
            "[pgbouncer]\nauth_type = hba\n",
            "t.ini:2: auth_type = hba needs auth_hba_file",
        ),
    ] {
        assert_eq!(problems(text), vec![expected.to_owned()], "{text}");
    }
}

#[test]
fn all_problems_are_collected() {
    let text = "[pgbouncer]\nauth_file = u\nlisten_port = 0\nmax_client_con = 1\nverbose = 9\n[nope]\n[databases]\nd = bad\n";
    let got = problems(text);
    let lines: Vec<&str> = got.iter().map(|p| p.split(' ').next().unwrap()).collect();
    assert_eq!(
        lines,
        ["t.ini:3:", "t.ini:4:", "t.ini:5:", "t.ini:6:", "t.ini:8:"]
    );
}

#[test]
fn port_lists_give_one_port_per_host() {
    let config = parse(&format!(
        "[databases]\napp = host=a,b port=6000,6001\n{OK_BASE}"
    ))
    .unwrap();
    let target = &config.databases["app"].target;
    assert_eq!(
        (target.port, target.ports.clone()),
        (6000, vec![6000, 6001])
    );
    assert!(
        config
            .to_ini()
            .lines()
            .any(|l| l == "app = host=a,b port=6000,6001")
    );
    let got = problems(&format!(
        "[databases]\napp = host=a,b,c port=6000,6001\n{OK_BASE}"
    ));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("2 ports for 3 hosts"), "{got:?}");
}

#[test]
fn databases_users_and_peers_are_typed() {
    let text = "[databases]\n\
                app = host=10.0.0.1,10.0.0.2 port=6000 dbname=real user=u password='a b''c' pool_size=5 \
                reserve_pool=2 pool_mode=session max_db_connections=9 query_wait_timeout=1.5 \
                connect_query='SELECT 1' load_balance_hosts=disable application_name=x\n\
                \"we ird\" =\n\
                app = host=later\n\
                [users]\nbob = pool_mode=statement max_user_connections=3 query_timeout=4\n\
                [peers]\n1 = host=p1\n2 = host=/tmp port=7000 pool_size=4\n\
                [pgbouncer]\nauth_file = u\nPool_Mode = transaction\npool_mode = statement\n";
    let config = parse(text).unwrap();
    assert_eq!(
        config.databases["app"].target.host.as_deref(),
        Some("later"),
        "last entry wins"
    );
    assert_eq!(
        config.databases["we ird"],
        Database {
            target: Target {
                port: 5432,
                ..Target::default()
            },
            ..Database::default()
        }
    );
    assert_eq!(
        config.pgbouncer.pool_mode(),
        PoolMode::Statement,
        "last key wins"
    );
    let bob = &config.users["bob"];
    assert_eq!(bob.pool_mode, Some(PoolMode::Statement));
    assert_eq!(bob.max_user_connections, Some(3));
    assert_eq!(bob.query_timeout, Some(Duration::from_secs(4)));
    assert_eq!(config.peers[&1].port, 6432);
    assert_eq!(config.peers[&2].pool_size, Some(4));

    let first = parse(&text.replace("app = host=later\n", "")).unwrap();
    let db = &first.databases["app"];
    assert_eq!(db.target.password.as_deref(), Some("a b'c"));
    assert_eq!(db.target.port, 6000);
    assert_eq!(db.pool.reserve_pool_size, Some(2));
    assert_eq!(
        db.pool.query_wait_timeout,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(db.target.connect_query.as_deref(), Some("SELECT 1"));
    assert_eq!(
        first.origin(Section::Databases, "app"),
        Some(&Location::new("t.ini", 2))
    );
}

#[test]
fn environment_expansion() {
    let config = parse("[databases]\nd = user=${PG_USER} password=${PG_PASSWORD}\n[pgbouncer]\nauth_file = $$HOME/${PG_USER}$1\n").unwrap();
    assert_eq!(
        config.databases["d"].target.password.as_deref(),
        Some("s3cr3t pass'word")
    );
    assert_eq!(config.pgbouncer.text(Key::AuthFile), Some("$HOME/app$1"));
    assert_eq!(
        env::expand("${A", &env).unwrap_err(),
        "unterminated ${ in \"${A\" (write $$ for a literal $)"
    );
    assert!(
        env::expand("${1A}", &env)
            .unwrap_err()
            .contains("invalid environment variable name")
    );
    for text in ["$", "$$", "${", "a$${b}", "$$$1", "x$"] {
        assert_eq!(env::expand(&env::escape(text), &NoEnv).unwrap(), text);
    }
}

#[test]
fn embedded_default() {
    let config = Config::embedded_default(&NoEnv).unwrap();
    let s = &config.pgbouncer;
    assert_eq!(config.source, Source::Embedded);
    assert_eq!(s.listen_addrs(), vec!["127.0.0.1"]);
    assert_eq!(s.listen_port(), 6432);
    assert_eq!(s.pool_mode(), PoolMode::Transaction);
    assert_eq!(s.int(Key::DefaultPoolSize), 20);
    assert_eq!(s.int(Key::MaxClientConn), 1000);
    assert_eq!(s.auth_type(), AuthType::Passthrough);
    assert_eq!(s.list(Key::AdminUsers), vec!["postgres"]);
    assert_eq!(
        config.databases["*"].target.host.as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(config.databases["*"].target.port, 5432);

    let custom = |n: &str| match n {
        "PGHOST" => Some("/var/run/postgresql".to_owned()),
        "PGPORT" => Some("5433".to_owned()),
        "PGUSER" => Some("ad${min}".to_owned()),
        _ => None,
    };
    let config = Config::embedded_default(&custom).unwrap();
    assert_eq!(
        config.databases["*"].target.host.as_deref(),
        Some("/var/run/postgresql")
    );
    assert_eq!(config.databases["*"].target.port, 5433);
    assert_eq!(config.pgbouncer.list(Key::AdminUsers), vec!["ad${min}"]);
    assert!(
        config
            .to_ini()
            .starts_with("; effective configuration of bouncectl, from embedded default\n")
    );
    let bad_port = |n: &str| (n == "PGPORT").then(|| "x".to_owned());
    assert!(Config::embedded_default(&bad_port).is_err());
}

#[test]
fn diff_sorts_live_from_restart() {
    let old =
        parse("[databases]\na = host=x\nb = host=y\nc = host=z\n[pgbouncer]\nauth_file = u\n")
            .unwrap();
    let new = parse("[databases]\na = host=x pool_size=3\nb = host=moved\nd = host=w\n[pgbouncer]\nauth_file = u\nlisten_port = 7000\npool_mode = transaction\n").unwrap();
    let diff = Config::diff(&old, &new);
    let names: Vec<(&str, bool)> = diff
        .settings
        .iter()
        .map(|c| (c.key.name(), c.reloadable))
        .collect();
    assert_eq!(names, [("listen_port", false), ("pool_mode", true)]);
    assert_eq!(diff.needs_restart()[0].new, "7000");
    assert_eq!(diff.live()[0].old, "session");
    assert_eq!(diff.databases.added, ["d"]);
    assert_eq!(diff.databases.removed, ["c"]);
    assert_eq!(diff.databases.changed, ["a", "b"]);
    assert_eq!(diff.reconnect, ["b"]);
    assert!(Config::diff(&old, &old).is_empty());
    let non_reloadable: Vec<&str> = KEYS
        .iter()
        .filter(|s| !s.reloadable)
        .map(|s| s.name)
        .collect();
    assert_eq!(
        non_reloadable,
        [
            "disable_pqexec",
            "job_name",
            "listen_addr",
            "listen_backlog",
            "listen_port",
            "metrics_listen",
            "pidfile",
            "pkt_buf",
            "resolv_conf",
            "service_name",
            "so_reuseport",
            "track_extra_parameters",
            "unix_socket_dir",
            "unix_socket_group",
            "unix_socket_mode",
            "user",
        ]
    );
}

#[test]
fn admin_set_and_show_config() {
    let mut config = parse(OK_BASE).unwrap();
    config.set("DEFAULT_POOL_SIZE", "50").unwrap();
    assert_eq!(config.pgbouncer.int(Key::DefaultPoolSize), 50);
    assert_eq!(
        config.set("listen_port", "7000").unwrap_err(),
        "listen_port cannot be changed at run time; it needs a restart"
    );
    assert_eq!(
        config.set("pool_mode", "x").unwrap_err(),
        "pool_mode: expected one of session, transaction, statement, found \"x\""
    );
    assert!(
        config
            .set("max_client_con", "1")
            .unwrap_err()
            .contains("did you mean max_client_conn?")
    );
    assert!(
        config
            .set("client_tls_sslmode", "require")
            .unwrap_err()
            .contains("needs client_tls_key_file")
    );
    assert_eq!(
        config.pgbouncer.client_tls_sslmode(),
        SslMode::Disable,
        "a refused SET changes nothing"
    );
    let rows = config.show_config();
    assert_eq!(rows.len(), KEYS.len());
    let row = rows.iter().find(|r| r.key == "default_pool_size").unwrap();
    assert_eq!(
        (row.value.as_str(), row.default, row.changeable),
        ("50", "20", true)
    );
    assert!(
        !rows
            .iter()
            .find(|r| r.key == "unix_socket_dir")
            .unwrap()
            .changeable
    );
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn includes_cycles_and_depth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let b = write(d, "b.ini", "listen_port = 7001\n");
    let a = write(
        d,
        "a.ini",
        &format!("[pgbouncer]\nauth_type = passthrough\n%include {b}\nmax_client_conn = 5\n"),
    );
    let config = Config::load(Path::new(&a), &NoEnv).unwrap();
    assert_eq!(config.pgbouncer.listen_port(), 7001);
    assert_eq!(
        config.pgbouncer.set_at(Key::ListenPort),
        Some(&Location::new(b.clone(), 1))
    );

    let x = d.join("x.ini").display().to_string();
    let y = write(d, "y.ini", &format!("%include {x}\n"));
    write(
        d,
        "x.ini",
        &format!("[pgbouncer]\nauth_type = passthrough\n%include {y}\n"),
    );
    let errors = Config::load(Path::new(&x), &NoEnv).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .starts_with(&format!("{y}:1: %include cycle: ")),
        "{errors:?}"
    );

    for i in 0..15 {
        write(
            d,
            &format!("n{i}.ini"),
            &format!("%include {}\n", d.join(format!("n{}.ini", i + 1)).display()),
        );
    }
    write(d, "n15.ini", "");
    let errors = Config::load(&d.join("n0.ini"), &NoEnv).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.message == "%include nested more than 10 deep"),
        "{errors:?}"
    );

    let missing = write(
        d,
        "m.ini",
        "[pgbouncer]\nauth_type = passthrough\n%include /nonexistent/z.ini\n",
    );
    let errors = Config::load(Path::new(&missing), &NoEnv).unwrap_err();
    assert!(errors[0].to_string().starts_with(&format!(
        "{missing}:3: %include /nonexistent/z.ini: cannot open:"
    )));
}

#[test]
fn huge_and_binary_files_are_refused_cheaply() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.ini");
    let garbage: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&big, &garbage).unwrap();
    let errors = Config::load(&big, &NoEnv).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].message.contains("larger than 1024 KiB"),
        "{errors:?}"
    );
    assert_eq!(errors[0].line, 0);

    let binary = dir.path().join("bin.ini");
    std::fs::write(&binary, b"[pgbouncer]\n\xff\xfe").unwrap();
    let errors = Config::load(&binary, &NoEnv).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}:2: not UTF-8 text; is this a configuration file?",
            binary.display()
        )
    );
}

#[test]
fn load_checks_the_files_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let users = write(d, "users.txt", "\"a\" \"b\"\nbroken\n");
    let hba = write(
        d,
        "hba.conf",
        "host all all all md5\nhost all all all nope\n",
    );
    let ident = write(d, "ident.conf", "ops alice app\nops alice\n");
    let ini = write(
        d,
        "p.ini",
        &format!(
            "[pgbouncer]\nauth_type = hba\nauth_hba_file = {hba}\nauth_ident_file = {ident}\nauth_file = {users}\n"
        ),
    );
    let got: Vec<String> = Config::load(Path::new(&ini), &NoEnv)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[0].starts_with(&format!("{hba}:2: unsupported authentication method")));
    assert!(got[1].starts_with(&format!("{ident}:2: expected 3 fields")));
    assert!(got[2].starts_with(&format!("{users}:2: broken auth file")));

    let ini = write(
        d,
        "q.ini",
        "[pgbouncer]\nauth_file = /nonexistent/users.txt\n",
    );
    let got = Config::load(Path::new(&ini), &NoEnv).unwrap_err();
    assert!(
        got[0].to_string().starts_with(&format!(
            "{ini}:2: auth_file /nonexistent/users.txt: cannot open:"
        )),
        "{got:?}"
    );
    let ini = write(
        d,
        "r.ini",
        "[pgbouncer]\nauth_type = passthrough\nauth_file = /nonexistent/users.txt\n",
    );
    Config::load(Path::new(&ini), &NoEnv).unwrap();
}

#[test]
fn fuzz_seeds_replay_without_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut replayed = 0;
    for (target, entry) in [
        ("ini", ini::fuzz_entry as fn(&[u8])),
        ("userlist", userlist::fuzz_entry),
    ] {
        for file in std::fs::read_dir(root.join(target)).unwrap() {
            entry(&std::fs::read(file.unwrap().path()).unwrap());
            replayed += 1;
        }
    }
    assert!(replayed >= 4);
    for junk in [
        &b""[..],
        b"[",
        b"%include",
        b"[databases]\n*=host='",
        b"a=${",
        b"\xff[pgbouncer]\nx",
    ] {
        ini::fuzz_entry(junk);
        userlist::fuzz_entry(junk);
    }
}

#[test]
fn precedence_user_then_database_then_global() {
    let text = "[databases]\nd = pool_mode=session pool_size=7\n* = host=x\n\
                [users]\nbob = pool_mode=statement pool_size=2\n\
                [pgbouncer]\nauth_file = u\npool_mode = transaction\ndefault_pool_size = 9\n";
    let config = parse(text).unwrap();
    assert_eq!(config.pool_mode_for("d", "bob"), PoolMode::Statement);
    assert_eq!(config.pool_mode_for("d", "eve"), PoolMode::Session);
    assert_eq!(config.pool_mode_for("other", "eve"), PoolMode::Transaction);
    assert_eq!(config.pool_size_for("d", "bob"), 2);
    assert_eq!(config.pool_size_for("d", "eve"), 7);
    assert_eq!(config.pool_size_for("other", "eve"), 9);
    assert_eq!(
        config.database("other").unwrap().target.host.as_deref(),
        Some("x")
    );
    let no_fallback = parse("[databases]\nd =\n[pgbouncer]\nauth_file = u\n").unwrap();
    assert!(no_fallback.database("other").is_none());
}

#[test]
fn a_missing_auth_file_is_reported_where_it_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(
        dir.path(),
        "q.ini",
        "[pgbouncer]\nauth_file = /nonexistent/users.txt\n",
    );
    let got = Config::load(Path::new(&ini), &NoEnv).unwrap_err();
    let expected = format!("{ini}:2: auth_file /nonexistent/users.txt: cannot open:");
    assert!(got[0].to_string().starts_with(&expected), "{got:?}");
    let ini = write(
        dir.path(),
        "r.ini",
        "[pgbouncer]\nauth_type = passthrough\nauth_file = /nonexistent/u\n",
    );
    Config::load(Path::new(&ini), &NoEnv).unwrap();
}

proptest::proptest! {
    #[test]
    fn connstr_values_survive_quoting_and_escaping(value in "[^\n\r]{1,30}") {
        let written = env::escape(&database::quote_value(&value));
        let text = format!("[databases]\nd = host={written} dbname=x\n[pgbouncer]\nauth_file = u\n");
        let config = Config::parse_str(&text, "p.ini", &NoEnv).unwrap();
        let target = &config.databases["d"].target;
        proptest::prop_assert_eq!(target.host.as_deref(), Some(value.as_str()));
        proptest::prop_assert_eq!(target.dbname.as_deref(), Some("x"));
    }
}

#[test]
fn inert_keys_are_reported_only_away_from_their_defaults() {
    assert_eq!(
        parse(OK_BASE).unwrap().inert_settings(),
        Vec::<String>::new()
    );
    // PgBouncer's defaults written out are no news.
    let defaults = "pkt_buf = 4096\nsuspend_timeout = 10\n\
                    client_tls_dheparams = auto\nsbuf_loopcnt = 5\n";
    let config = parse(&format!("{OK_BASE}{defaults}")).unwrap();
    assert_eq!(config.inert_settings(), Vec::<String>::new());
    let set =
        "suspend_timeout = 20\npkt_buf = 8192\nsbuf_loopcnt = 9\nclient_tls_dheparams = none\n";
    let config = parse(&format!("{OK_BASE}{set}")).unwrap();
    assert_eq!(
        config.inert_settings(),
        [
            "client_tls_dheparams = none",
            "pkt_buf = 8192",
            "sbuf_loopcnt = 9",
            "suspend_timeout = 20"
        ]
    );
}
