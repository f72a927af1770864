//! TempPgbouncer: the system's real PgBouncer (Debian's `/usr/sbin/pgbouncer`) in front of a
//! TempPostgres, on a free loopback port, with an admin user, a stats user and `md5_user` in its
//! userlist. Like PostgreSQL it refuses to run as root, so as root it runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::postgres::{self, MD5_USER, PASSWORD, TempPostgres};

/// Admin user of the console (`admin_users`).
pub const ADMIN_USER: &str = "pgbouncer";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-pw";
/// Read-only console user (`stats_users`).
pub const STATS_USER: &str = "stats_user";
/// Its password.
pub const STATS_PASSWORD: &str = "stats-pw";

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running PgBouncer; killed and its directory removed on drop.
pub struct TempPgbouncer {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// The PgBouncer binary, or why there is none.
pub fn binary() -> Result<PathBuf, String> {
    let candidates = [
        PathBuf::from("/usr/sbin/pgbouncer"),
        PathBuf::from("/usr/bin/pgbouncer"),
    ];
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        "PgBouncer not found (/usr/sbin/pgbouncer): apt-get install pgbouncer".to_owned()
    })
}

impl TempPgbouncer {
    /// Starts PgBouncer in front of `pg`, or returns `None` after a loud message when it is not
    /// installed (under `CI=true` that is a failure instead). `extra` adds `[pgbouncer]` settings.
    pub fn start_or_skip(pg: &TempPostgres, extra: &[(&str, &str)]) -> Option<Self> {
        match binary() {
            Ok(bin) => Some(Self::start(&bin, pg, extra)),
            Err(why) if std::env::var_os("CI").is_some_and(|v| v == "true") => panic!("{why}"),
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                None
            }
        }
    }

    /// Starts `bin` in front of `pg`; panics with PgBouncer's log when it does not come up.
    pub fn start(bin: &Path, pg: &TempPostgres, extra: &[(&str, &str)]) -> Self {
        let dir = postgres::unique_dir("bouncectl-pgbouncer");
        let userlist = [
            (ADMIN_USER, ADMIN_PASSWORD),
            (STATS_USER, STATS_PASSWORD),
            (MD5_USER, PASSWORD),
        ]
        .iter()
        .map(|(user, pw)| format!("\"{user}\" \"{}\"\n", bouncectl::auth::md5_secret(user, pw)))
        .collect::<String>();
        write_private(&dir.join("userlist.txt"), &userlist, 0o600);
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = postgres::free_port();
            write_owned(
                &dir.join("pgbouncer.ini"),
                &ini(&dir, port, pg.port(), extra),
            );
            let mut bouncer = TempPgbouncer {
                dir: dir.clone(),
                port,
                child: None,
            };
            match bouncer.spawn(bin) {
                Ok(()) => return bouncer,
                Err(log) if log.contains("in use") => {
                    bouncer.dir = PathBuf::new(); // keep the directory for the next attempt
                    last_log = log;
                }
                Err(log) => panic!("pgbouncer did not start:\n{log}"),
            }
        }
        panic!("pgbouncer could not bind a free port in 5 attempts:\n{last_log}");
    }

    fn spawn(&mut self, bin: &Path) -> Result<(), String> {
        let log = self.dir.join("pgbouncer.log");
        let stderr =
            std::fs::File::create(self.dir.join("stderr.log")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(bin);
        cmd.arg(self.dir.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        postgres::as_postgres_user(&mut cmd);
        self.child = Some(
            cmd.spawn()
                .map_err(|e| format!("cannot run pgbouncer: {e}"))?,
        );
        let deadline = Instant::now() + START_TIMEOUT;
        let read_log = || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let err = std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
            format!("{text}{err}")
        };
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("exited with {status}:\n{}", read_log()));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not listening within {START_TIMEOUT:?}:\n{}",
                    read_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of the admin console for `user` with `password`.
    pub fn admin_url(&self, user: &str, password: &str) -> String {
        format!(
            "postgresql://{user}:{password}@127.0.0.1:{}/pgbouncer",
            self.port
        )
    }

    /// A key=value connection string through the pooler to database `postgres` as `md5_user`.
    pub fn app_url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={MD5_USER} password={PASSWORD} dbname=postgres",
            self.port
        )
    }

    /// The pgbouncer.ini it runs with.
    pub fn ini_path(&self) -> PathBuf {
        self.dir.join("pgbouncer.ini")
    }

    /// Its auth_file (md5 secrets, mode 0600 unless rewritten).
    pub fn userlist_path(&self) -> PathBuf {
        self.dir.join("userlist.txt")
    }

    /// Rewrites the auth_file with `text` and `mode` (PgBouncer reads it again on RELOAD only).
    pub fn write_userlist(&self, text: &str, mode: u32) {
        write_private(&self.userlist_path(), text, mode);
    }

    /// Stops PgBouncer now, keeping its directory (config, userlist, log) until drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// PgBouncer's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for TempPgbouncer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM is an immediate shutdown in PgBouncer before 1.23, a clients-first one after;
            // either way a kill follows if it lingers.
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn ini(dir: &Path, port: u16, pg_port: u16, extra: &[(&str, &str)]) -> String {
    let mut text = format!(
        "[databases]\n\
         postgres = host=127.0.0.1 port={pg_port}\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = md5\n\
         auth_file = {dir}/userlist.txt\n\
         admin_users = {ADMIN_USER}\n\
         stats_users = {STATS_USER}\n\
         logfile = {dir}/pgbouncer.log\n\
         pool_mode = transaction\n",
        dir = dir.display()
    );
    for (key, value) in extra {
        text.push_str(&format!("{key} = {value}\n"));
    }
    text
}

/// Writes a file the pooler (running as `postgres` when we are root) can read.
fn write_owned(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    postgres::chown_to_postgres(path);
}

/// Writes a file the pooler can read, with `mode` (e.g. 0600 for a userlist).
fn write_private(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    write_owned(path, text);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}
