//! TempPostgres: a throwaway PostgreSQL cluster per test, copied from a template made once per
//! machine, on a free loopback port, with one role per authentication method.
//!
//! PostgreSQL refuses to run as root; when the tests are root (as CI is), `initdb` and `postgres`
//! run as the `postgres` OS user on directories it owns.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::certs::TestCerts;

/// Password of every password-protected test role.
pub const PASSWORD: &str = "s3cr3t-pw";

/// One role per authentication method in pg_hba.conf (DESIGN.md §4).
pub const MD5_USER: &str = "md5_user";
/// Stored as SCRAM and checked with scram-sha-256.
pub const SCRAM_USER: &str = "scram_user";
/// Checked with cleartext `password`.
pub const PASS_USER: &str = "pass_user";
/// No password check.
pub const TRUST_USER: &str = "trust_user";
/// Allowed only over TLS (`hostssl`), on clusters from [`TempPostgres::start_with_tls`].
pub const SSL_USER: &str = "ssl_user";
/// The bootstrap superuser; password-checked with SCRAM over TCP, trusted over the socket.
pub const SUPERUSER: &str = "postgres";

const TEMPLATE_VERSION: &str = "v1";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running throwaway cluster; stopped and removed on drop.
pub struct TempPostgres {
    root: PathBuf,
    data: PathBuf,
    port: u16,
    child: Option<Child>,
    bindir: PathBuf,
    /// Extra `-c name=value` settings (TLS).
    settings: Vec<String>,
}

/// Where the PostgreSQL server binaries live, or why they are missing.
pub fn bindir() -> Result<PathBuf, String> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.into_iter().rev().find(|d| has(d)).ok_or_else(|| {
        "PostgreSQL server binaries not found (no initdb/postgres via pg_config --bindir or \
         /usr/lib/postgresql/*/bin): apt-get install postgresql"
            .to_owned()
    })
}

impl TempPostgres {
    /// Starts a cluster, or returns `None` after a loud message when PostgreSQL is not installed
    /// (under `CI=true` that is a failure instead).
    pub fn start_or_skip() -> Option<Self> {
        match bindir() {
            Ok(dir) => Some(Self::start_in(&dir, None)),
            Err(why) if std::env::var_os("CI").is_some_and(|v| v == "true") => panic!("{why}"),
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                None
            }
        }
    }

    /// As [`TempPostgres::start_or_skip`], with `ssl = on` using `certs`' server certificate
    /// and key, and a [`SSL_USER`] role that pg_hba.conf admits only over TLS (scram-sha-256).
    pub fn start_with_tls(certs: &TestCerts) -> Option<Self> {
        let dir = match bindir() {
            Ok(dir) => dir,
            Err(why) if std::env::var_os("CI").is_some_and(|v| v == "true") => panic!("{why}"),
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return None;
            }
        };
        let pg = Self::start_in(&dir, Some(certs));
        pg.psql(&format!(
            "CREATE ROLE {SSL_USER} LOGIN PASSWORD '{PASSWORD}'"
        ));
        // First match wins: these go before the template's catch-all `host all all` line.
        let hba = pg.data.join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).expect("cannot read pg_hba.conf");
        std::fs::write(
            &hba,
            format!(
                "hostssl all {SSL_USER} 127.0.0.1/32 scram-sha-256\n\
                 hostnossl all {SSL_USER} 127.0.0.1/32 reject\n{old}"
            ),
        )
        .expect("cannot write pg_hba.conf");
        assert_eq!(pg.psql("SELECT pg_reload_conf()"), "t");
        // The postmaster rereads pg_hba.conf on SIGHUP, a moment later: wait until a
        // plaintext login of the TLS-only role is refused by the new `reject` line.
        let refused = || {
            let out = Command::new(pg.bindir.join("psql"))
                .args(["-X", "-q", "-w", "-c", "SELECT 1"])
                .arg(format!(
                    "host=127.0.0.1 port={} user={SSL_USER} dbname=postgres sslmode=disable",
                    pg.port
                ))
                .env("PGPASSWORD", PASSWORD)
                .output()
                .expect("cannot run psql");
            String::from_utf8_lossy(&out.stderr).contains("rejects connection")
        };
        assert!(
            super::wait_until(Duration::from_secs(10), refused),
            "the pg_hba.conf reload was not seen"
        );
        Some(pg)
    }

    /// Copies the server certificate and key where PostgreSQL wants them: owned by its user,
    /// the key mode 0600 (it refuses a key others can read).
    fn tls_settings(root: &Path, certs: &TestCerts) -> Vec<String> {
        use std::os::unix::fs::PermissionsExt as _;
        let cert = root.join("server.crt");
        let key = root.join("server.key");
        std::fs::copy(&certs.server_cert, &cert).expect("cannot copy the server certificate");
        std::fs::copy(&certs.server_key, &key).expect("cannot copy the server key");
        for file in [&cert, &key] {
            chown_to_postgres(file);
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                .expect("cannot chmod");
        }
        vec![
            "ssl=on".to_owned(),
            format!("ssl_cert_file={}", cert.display()),
            format!("ssl_key_file={}", key.display()),
        ]
    }

    fn start_in(bindir: &Path, tls: Option<&TestCerts>) -> Self {
        let template = template(bindir);
        let root = unique_dir("bouncectl-pg");
        let data = root.join("data");
        run_as_postgres(Command::new("cp").arg("-a").arg(&template).arg(&data));
        let settings = tls
            .map(|certs| Self::tls_settings(&root, certs))
            .unwrap_or_default();
        for _ in 0..5 {
            let port = free_port();
            let mut pg = TempPostgres {
                root: root.clone(),
                data: data.clone(),
                port,
                child: None,
                bindir: bindir.to_path_buf(),
                settings: settings.clone(),
            };
            match pg.spawn_server() {
                Ok(()) => return pg,
                Err(log) if log.contains("could not bind") || log.contains("in use") => {
                    pg.root = PathBuf::new(); // keep the directory for the next attempt
                    continue;
                }
                Err(log) => panic!("postgres did not start:\n{log}"),
            }
        }
        panic!("postgres could not bind a free port in 5 attempts");
    }

    fn spawn_server(&mut self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.data.join("postmaster.pid"));
        let log = self.root.join("postgres.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        chown_to_postgres(&log);
        let mut cmd = Command::new(self.bindir.join("postgres"));
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string());
        cmd.arg("-k").arg(&self.root);
        for setting in [
            "listen_addresses=127.0.0.1",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "max_connections=300",
            "shared_buffers=32MB",
        ] {
            cmd.arg("-c").arg(setting);
        }
        for setting in &self.settings {
            cmd.arg("-c").arg(setting);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        cmd.stderr(log_file);
        as_postgres_user(&mut cmd);
        self.child = Some(
            cmd.spawn()
                .map_err(|e| format!("cannot run postgres: {e}"))?,
        );
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.is_ready() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    return Err(format!("exited with {status}:\n{text}"));
                }
            }
            if Instant::now() > deadline {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("not ready within {START_TIMEOUT:?}:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True once postmaster.pid says the server accepts connections.
    fn is_ready(&self) -> bool {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .map(|pid| pid.lines().nth(7).is_some_and(|s| s.trim() == "ready"))
            .unwrap_or(false)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The unix socket directory.
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The server binaries' directory (for psql, pgbench, pg_ctl).
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// A key=value connection string for `user` over TCP, with the test password.
    pub fn tcp_url(&self, user: &str, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={PASSWORD} dbname={dbname}",
            self.port
        )
    }

    /// A connection string for the superuser over the unix socket (trusted).
    pub fn superuser_url(&self) -> String {
        format!(
            "host={} port={} user={SUPERUSER} dbname=postgres",
            self.root.display(),
            self.port
        )
    }

    /// Runs one of the server's client tools (pgbench, psql, …) with the test password.
    pub fn run_tool(&self, tool: &str, args: &[&str]) -> std::process::Output {
        Command::new(self.bindir.join(tool))
            .args(args)
            .env("PGPASSWORD", PASSWORD)
            .output()
            .expect("cannot run a PostgreSQL client tool")
    }

    /// `pgbench -n -j 2 -c CLIENTS -t PER_CLIENT EXTRA` as the md5 user on database `postgres`
    /// through 127.0.0.1:`port`; panics (with `context`) unless every transaction is processed.
    pub fn pgbench_clean(
        &self,
        port: u16,
        (clients, per_client): (u32, u32),
        extra: &[&str],
        context: &dyn Fn() -> String,
    ) -> String {
        let (port, c, t) = (
            port.to_string(),
            clients.to_string(),
            per_client.to_string(),
        );
        let mut args = vec![
            "-n",
            "-j",
            "2",
            "-c",
            &c,
            "-t",
            &t,
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            MD5_USER,
        ];
        args.extend_from_slice(extra);
        args.push("postgres");
        let run = self.run_tool("pgbench", &args);
        let out = String::from_utf8_lossy(&run.stdout).into_owned();
        let total = clients * per_client;
        let processed = format!("number of transactions actually processed: {total}/{total}");
        assert!(
            run.status.success() && out.contains(&processed),
            "pgbench {extra:?}: {out}{}\n{}",
            String::from_utf8_lossy(&run.stderr),
            context()
        );
        out
    }

    /// `pgbench -i -s 1` into database `postgres`, with its tables granted to the md5 role the
    /// pooler tests log in as.
    pub fn pgbench_init(&self) {
        let port = self.port().to_string();
        let init = self.run_tool(
            "pgbench",
            &[
                "-i",
                "-s",
                "1",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "postgres",
            ],
        );
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        self.psql(&format!(
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO {MD5_USER}"
        ));
    }

    /// Runs SQL as the superuser through psql over the unix socket; panics with psql's stderr on error.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.root)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "-d", "postgres", "-c", sql])
            .output()
            .expect("cannot run psql");
        assert!(
            out.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl TempPostgres {
    /// Stops the server with a fast shutdown (as `pg_ctl stop -m fast`) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT is PostgreSQL's fast shutdown: no waiting for clients.
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a smart shutdown (SIGTERM, as `pg_ctl stop -m smart`) without waiting for it:
    /// PostgreSQL refuses new connections with 57P03 until its last session ends, then exits.
    pub fn begin_smart_shutdown(&self) {
        if let Some(child) = &self.child {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }

    /// Starts the stopped server again on the same port.
    pub fn start_again(&mut self) {
        self.spawn_server()
            .unwrap_or_else(|log| panic!("postgres did not restart:\n{log}"));
    }

    /// `pg_ctl restart -m fast`: stop, then start on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        self.stop();
        if !self.root.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// The template cluster for this machine and bindir, made once (atomically renamed into place).
fn template(bindir: &Path) -> PathBuf {
    let tag: String = bindir
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let path = std::env::temp_dir().join(format!("bouncectl-pg-template-{TEMPLATE_VERSION}-{tag}"));
    if path.join("PG_VERSION").is_file() && path.join("roles.done").is_file() {
        return path;
    }
    let build = unique_dir("bouncectl-pg-template-build");
    let data = build.join("data");
    run_as_postgres(
        Command::new(bindir.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .stdout(Stdio::null()),
    );
    std::fs::write(data.join("pg_hba.conf"), HBA).expect("cannot write pg_hba.conf");
    let mut pg = TempPostgres {
        root: build.clone(),
        data: data.clone(),
        port: free_port(),
        child: None,
        bindir: bindir.to_path_buf(),
        settings: Vec::new(),
    };
    pg.spawn_server()
        .unwrap_or_else(|log| panic!("template postgres did not start:\n{log}"));
    pg.psql(&roles_sql());
    pg.root = PathBuf::new(); // stop the server but keep the directory
    drop(pg);
    let _ = std::fs::remove_file(data.join("postmaster.pid"));
    std::fs::write(data.join("roles.done"), "").expect("cannot mark the template");
    chown_to_postgres(&data.join("roles.done"));
    if std::fs::rename(&data, &path).is_err() && !path.join("roles.done").is_file() {
        panic!("cannot move the template cluster into {}", path.display());
    }
    let _ = std::fs::remove_dir_all(&build);
    path
}

const HBA: &str = "\
local all all trust
host all md5_user 127.0.0.1/32 md5
host all scram_user 127.0.0.1/32 scram-sha-256
host all pass_user 127.0.0.1/32 password
host all trust_user 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
";

fn roles_sql() -> String {
    format!(
        "SET password_encryption = 'md5';
         CREATE ROLE {MD5_USER} LOGIN PASSWORD '{PASSWORD}';
         SET password_encryption = 'scram-sha-256';
         CREATE ROLE {SCRAM_USER} LOGIN PASSWORD '{PASSWORD}';
         CREATE ROLE {PASS_USER} LOGIN PASSWORD '{PASSWORD}';
         CREATE ROLE {TRUST_USER} LOGIN;
         ALTER ROLE {SUPERUSER} PASSWORD '{PASSWORD}';"
    )
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller retries on a bind race).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A new directory under the temp dir, owned by the user PostgreSQL runs as.
pub fn unique_dir(prefix: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("cannot create a temp dir");
    chown_to_postgres(&dir);
    dir
}

fn postgres_ids() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("running as root needs the `postgres` OS user (apt-get install postgresql)");
    Some((user.uid.as_raw(), user.gid.as_raw()))
}

/// Hands `path` to the `postgres` OS user when we are root.
pub fn chown_to_postgres(path: &Path) {
    if let Some((uid, gid)) = postgres_ids() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("cannot chown to postgres");
    }
}

/// Makes `cmd` run as the `postgres` OS user when we are root (PostgreSQL refuses root).
pub fn as_postgres_user(cmd: &mut Command) {
    if let Some((uid, gid)) = postgres_ids() {
        cmd.uid(uid).gid(gid);
    }
}

fn run_as_postgres(cmd: &mut Command) {
    as_postgres_user(cmd);
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .expect("cannot run a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
