//! The real binary's log output: `log_format = json` lines (who, never a password), `logfile`
//! reopened on SIGHUP and RELOAD (logrotate's move-then-HUP), `syslog = 1`, warnings for keys
//! without effect, and the metrics endpoint of a `bouncectl serve` process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::postgres::{self, MD5_USER, PASSWORD, TempPostgres};
use crate::support::{self, connect, select_one};

/// `bouncectl serve` as a child process; killed on drop.
struct Binary {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Binary {
    /// Starts it with `settings` added to a config for `pg` (md5 auth, `md5_user` is admin);
    /// stderr goes to `stderr.log` in its directory.
    fn start(pg: &TempPostgres, settings: &str, quiet: bool) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let port = postgres::free_port();
        let auth = dir.path().join("userlist.txt");
        let secret = bouncectl::auth::md5_secret(MD5_USER, PASSWORD);
        std::fs::write(&auth, format!("\"{MD5_USER}\" \"{secret}\"\n")).unwrap();
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\npostgres = host=127.0.0.1 port={}\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = md5\nauth_file = {}\nadmin_users = {MD5_USER}\n{settings}\n",
                pg.port(),
                auth.display(),
            ),
        )
        .unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut cmd = Command::new(support::bin());
        cmd.arg("serve");
        if quiet {
            cmd.arg("-q");
        }
        let child = cmd
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut bin = Binary { child, port, dir };
        let up = support::wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !up {
            let status = bin.child.try_wait().unwrap();
            panic!(
                "bouncectl did not start ({status:?}): {}",
                bin.read("stderr.log")
            );
        }
        bin
    }

    fn url(&self, password: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={MD5_USER} password={password} dbname=postgres",
            self.port
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn until(what: &str, timeout: Duration, probe: impl FnMut() -> bool) {
    assert!(support::eventually(timeout, probe).await, "{what}");
}

/// Every line of `text` as a JSON object.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v.is_object(), "{l}");
            v
        })
        .collect()
}

fn find<'a>(lines: &'a [Value], event_prefix: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| {
            l["event"]
                .as_str()
                .is_some_and(|e| e.starts_with(event_prefix))
        })
        .unwrap_or_else(|| panic!("no {event_prefix:?} line in {lines:#?}"))
}

#[tokio::test]
async fn json_logs_name_who_and_never_a_password() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let metrics_port = postgres::free_port();
    let bin = Binary::start(
        &pg,
        &format!(
            "log_format = json\nmetrics_listen = 127.0.0.1:{metrics_port}\nserver_idle_timeout = 1\n"
        ),
        false,
    );
    let client = connect(&bin.url(PASSWORD)).await.unwrap();
    assert!(select_one(&client).await);
    const WRONG: &str = "Wr0ng-pw-never-logged";
    assert!(
        connect(&bin.url(WRONG)).await.is_err(),
        "a wrong password logs in"
    );
    drop(client);
    until("the disconnect is logged", Duration::from_secs(10), || {
        bin.read("stderr.log").contains("closing because")
    })
    .await;
    until(
        "the idle server's close is logged",
        Duration::from_secs(10),
        || {
            bin.read("stderr.log")
                .contains("closing because: server idle timeout")
        },
    )
    .await;

    // The process's own endpoint answers too.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], metrics_port));
    let reply = crate::metrics::get(addr, "/metrics", "text/plain").await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("\npgbouncer_up 1\n"), "{}", reply.body);

    let text = bin.read("stderr.log");
    let lines = json_lines(&text);
    for line in &lines {
        for key in ["timestamp", "level", "event"] {
            assert!(line[key].is_string(), "{key} missing: {line}");
        }
    }
    let login = find(&lines, "login attempt");
    assert!(
        login["client"].as_str().unwrap().starts_with("C-0x"),
        "{login}"
    );
    assert_eq!(
        (&login["db"], &login["user"]),
        (&Value::from("postgres"), &Value::from(MD5_USER))
    );
    assert!(
        login["addr"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{login}"
    );
    assert_eq!(login["level"], "info");
    let server = find(&lines, "new connection to server");
    assert!(
        server["server"].as_str().unwrap().starts_with("S-0x"),
        "{server}"
    );
    assert_eq!(server["addr"], format!("127.0.0.1:{}", pg.port()));
    let closed = find(&lines, "closing because: server idle timeout (age=");
    assert_eq!(
        (&closed["server"], &closed["db"], &closed["user"]),
        (
            &server["server"],
            &Value::from("postgres"),
            &Value::from(MD5_USER)
        )
    );
    assert_eq!(closed["addr"], server["addr"]);
    let refused = find(&lines, "pooler error");
    assert!(
        refused["client"].is_string() && refused["addr"].is_string(),
        "{refused}"
    );
    let secret = bouncectl::auth::md5_secret(MD5_USER, PASSWORD);
    for needle in [PASSWORD, WRONG, secret.as_str()] {
        assert!(
            !text.contains(needle),
            "{needle} appears in the log:\n{text}"
        );
    }
}

fn rename(bin: &Binary, from: &str, to: &str) {
    std::fs::rename(bin.path(from), bin.path(to)).unwrap();
}

#[tokio::test]
async fn a_failed_server_check_is_logged_in_pgbouncers_words() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // Every lease runs a check that fails: the server is closed and the client gets a new one.
    let bin = Binary::start(
        &pg,
        "pool_mode = transaction\nserver_check_delay = 0\nserver_check_query = SELECT 1/0\n",
        false,
    );
    let client = connect(&bin.url(PASSWORD)).await.unwrap();
    assert!(select_one(&client).await);
    assert!(select_one(&client).await, "the second lease is checked");
    until(
        "the failed check is logged",
        Duration::from_secs(10),
        || {
            bin.read("stderr.log")
                .contains("closing because: test query failed")
        },
    )
    .await;
}

#[tokio::test]
async fn logfile_is_reopened_on_sighup_and_reload() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let dir_log = |bin: &Binary| bin.read("bouncectl.log");
    let bin = Binary::start(&pg, "", true);
    // The log path must live in the binary's directory; point the config at it and reload once.
    let ini = bin.path("pgbouncer.ini");
    let text = std::fs::read_to_string(&ini).unwrap();
    let logfile = bin.path("bouncectl.log");
    std::fs::write(&ini, format!("{text}logfile = {}\n", logfile.display())).unwrap();
    bin.signal(Signal::SIGHUP);
    until("logfile taken on reload", Duration::from_secs(10), || {
        dir_log(&bin).contains("configuration reloaded")
    })
    .await;

    let first = connect(&bin.url(PASSWORD)).await.unwrap();
    until("first login logged", Duration::from_secs(10), || {
        dir_log(&bin).contains("login attempt")
    })
    .await;

    // logrotate: move the file, then HUP; new lines land in a new file at the same path.
    rename(&bin, "bouncectl.log", "bouncectl.log.1");
    bin.signal(Signal::SIGHUP);
    until(
        "a fresh logfile after SIGHUP",
        Duration::from_secs(10),
        || dir_log(&bin).contains("configuration reloaded"),
    )
    .await;
    let second = connect(&bin.url(PASSWORD)).await.unwrap();
    until(
        "second login in the new file",
        Duration::from_secs(10),
        || dir_log(&bin).contains("login attempt"),
    )
    .await;
    let rotated = bin.read("bouncectl.log.1");
    assert_eq!(rotated.matches("login attempt").count(), 1, "{rotated}");
    assert_eq!(dir_log(&bin).matches("login attempt").count(), 1);
    // The id itself varies: a readiness probe that connects and closes takes one too.
    let login = dir_log(&bin);
    let login = login.lines().find(|l| l.contains("login attempt"));
    assert!(
        login.is_some_and(|l| {
            l.contains(" C-0x") && l.contains(&format!(": postgres/{MD5_USER}@127.0.0.1:"))
        }),
        "text lines keep PgBouncer's prefix: {login:?}"
    );

    // The console's RELOAD does the same.
    rename(&bin, "bouncectl.log", "bouncectl.log.2");
    let console = connect(&format!(
        "host=127.0.0.1 port={} user={MD5_USER} password={PASSWORD} dbname=pgbouncer",
        bin.port
    ))
    .await
    .unwrap();
    console.simple_query("RELOAD").await.unwrap();
    until(
        "a fresh logfile after RELOAD",
        Duration::from_secs(10),
        || dir_log(&bin).contains("configuration reloaded"),
    )
    .await;
    // Each file holds exactly the one reload that opened it.
    for name in ["bouncectl.log.1", "bouncectl.log.2", "bouncectl.log"] {
        let text = bin.read(name);
        assert_eq!(
            text.matches("configuration reloaded").count(),
            1,
            "{name}: {text}"
        );
    }
    drop((first, second));
}

#[tokio::test]
async fn syslog_gets_each_line_with_ident_facility_and_severity() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sock");
    let syslog = tokio::net::UnixDatagram::bind(&path).unwrap();
    let databases = format!("postgres = host=127.0.0.1 port={}\n", pg.port());
    let settings =
        "syslog = 1\nsyslog_ident = bctest\nsyslog_facility = local3\nlog_connections = 1";
    let env = [("BOUNCECTL_SYSLOG_SOCKET", path.to_str().unwrap())];
    let bin =
        crate::support::binary::Binary::start_with(&pg, &databases, settings, &["-q"], &env).await;
    select_one(&connect(&bin.url(MD5_USER, "postgres")).await.unwrap()).await;
    let wrong = format!(
        "host=127.0.0.1 port={} user={MD5_USER} password=wrong dbname=postgres",
        bin.port
    );
    assert!(connect(&wrong).await.is_err());

    // local3 (19) * 8 + info (6) and + warning (4), tagged as syslog(3) would.
    let (info, warning) = (
        format!("<158>bctest[{}]: C-0x", bin.pid()),
        format!("<156>bctest[{}]: C-0x", bin.pid()),
    );
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(seen
        .iter()
        .any(|l: &String| l.starts_with(&info) && l.contains("login attempt: db=postgres"))
        && seen
            .iter()
            .any(|l| l.starts_with(&warning) && l.contains("password authentication failed")))
    {
        match tokio::time::timeout_at(deadline, syslog.recv(&mut buf)).await {
            Ok(Ok(n)) => seen.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => panic!("missing syslog lines; got {seen:#?}"),
        }
    }
    // In addition to the log file, not instead of it.
    assert!(
        bin.log().contains("login attempt: db=postgres"),
        "{}",
        bin.log()
    );
}

/// A key bouncectl reads but does not act on, set away from PgBouncer's default, is warned
/// about at start; one a reload sets, at that reload. A default written out is no news.
#[tokio::test]
async fn keys_without_effect_are_warned_about_at_start_and_reload() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bin = Binary::start(&pg, "pkt_buf = 8192\nsbuf_loopcnt = 5", false);
    let stderr = || bin.read("stderr.log");
    until("the start's warning", Duration::from_secs(10), || {
        stderr().contains("pkt_buf = 8192 has no effect in bouncectl")
    })
    .await;
    let ini = bin.path("pgbouncer.ini");
    let text = std::fs::read_to_string(&ini).unwrap();
    std::fs::write(&ini, format!("{text}suspend_timeout = 20\n")).unwrap();
    bin.signal(Signal::SIGHUP);
    until("the reload", Duration::from_secs(10), || {
        stderr().contains("configuration reloaded")
    })
    .await;
    let log = stderr();
    assert!(
        log.contains("suspend_timeout = 20 has no effect in bouncectl"),
        "{log}"
    );
    assert_eq!(log.matches("pkt_buf = 8192").count(), 1, "said once: {log}");
    assert!(!log.contains("sbuf_loopcnt"), "{log}");
}

/// A `BOUNCECTL_WORKER_THREADS` that is not a whole number over 0 is ignored with a warning
/// that names it; the pooler serves with its default.
#[tokio::test]
async fn a_worker_thread_count_that_does_not_parse_is_named_in_a_warning() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let env = [("BOUNCECTL_WORKER_THREADS", "zero")];
    let bin = crate::support::binary::Binary::start_env(&pg, &env).await;
    let client = connect(&bin.url(MD5_USER, "postgres")).await.unwrap();
    assert!(select_one(&client).await);
    assert!(
        bin.log()
            .contains("BOUNCECTL_WORKER_THREADS=zero ignored: expected a whole number over 0"),
        "{}",
        bin.log()
    );
}

#[tokio::test]
async fn a_client_gone_during_its_login_is_a_disconnection_not_a_pooler_error() {
    use std::io::{Read as _, Write as _};
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bin = Binary::start(&pg, "log_disconnections = 1\nlog_pooler_errors = 1", false);
    // A startup packet, then gone before answering the md5 request.
    let mut packet = bytes::BytesMut::new();
    bouncectl::protocol::startup::startup_message(
        &mut packet,
        bouncectl::protocol::startup::PROTOCOL_3_0,
        [("user", MD5_USER), ("database", "postgres")],
    )
    .unwrap();
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", bin.port)).unwrap();
    socket.write_all(&packet).unwrap();
    let mut request = [0u8; 1];
    socket.read_exact(&mut request).unwrap();
    assert_eq!(&request, b"R", "an authentication request");
    drop(socket);
    logged_as_a_disconnection(&bin).await;
}

#[tokio::test]
async fn a_console_client_gone_before_its_welcome_is_a_disconnection_not_a_pooler_error() {
    use std::io::Write as _;
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let sockets = tempfile::tempdir().unwrap();
    let bin = Binary::start(
        &pg,
        &format!(
            "log_disconnections = 1\nlog_pooler_errors = 1\nunix_socket_dir = {}",
            sockets.path().display()
        ),
        false,
    );
    // The socket's own superuser needs no password, so the pooler's next write is the
    // welcome; a unix socket whose peer has closed refuses it (EPIPE). The close can lose
    // the race with the pooler's write, so try a few times.
    let path = sockets.path().join(format!(".s.PGSQL.{}", bin.port));
    let mut packet = bytes::BytesMut::new();
    bouncectl::protocol::startup::startup_message(
        &mut packet,
        bouncectl::protocol::startup::PROTOCOL_3_0,
        [("user", "pgbouncer"), ("database", "pgbouncer")],
    )
    .unwrap();
    for _ in 0..20 {
        let mut socket = std::os::unix::net::UnixStream::connect(&path).unwrap();
        socket.write_all(&packet).unwrap();
        drop(socket);
        if bin.read("stderr.log").contains(CLIENT_GONE) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    logged_as_a_disconnection(&bin).await;
}

/// PgBouncer's words for a client that left during its login.
const CLIENT_GONE: &str = "closing because: client unexpected eof";

/// Waits for `bin` to log a client gone during its login as a disconnection, and checks it
/// logged no pooler error.
async fn logged_as_a_disconnection(bin: &Binary) {
    until(
        "the disconnection is logged",
        Duration::from_secs(10),
        || bin.read("stderr.log").contains(CLIENT_GONE),
    )
    .await;
    let log = bin.read("stderr.log");
    assert!(!log.contains("pooler error"), "{log}");
}
