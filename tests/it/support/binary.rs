//! The real `bouncectl serve` binary as a child process, for tests that need what only a process
//! shows: its resident memory and open file descriptors (/proc), its log file, its survival.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::bouncer::userlist;
use super::client::RawClient;
use super::postgres::{PASSWORD, TempPostgres, free_port};

/// A running `bouncectl serve`; killed on drop.
pub struct Binary {
    child: Child,
    /// The pooler's TCP port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Binary {
    /// Starts the binary for `pg` with `[databases] * = …` pointing at `server_port` (PostgreSQL
    /// itself or a relay in front of it) and `settings` added to `[pgbouncer]`.
    pub async fn start(pg: &TempPostgres, server_port: u16, settings: &str) -> Binary {
        let databases = format!("* = host=127.0.0.1 port={server_port}\n");
        Self::start_with(pg, &databases, settings, &["-q"], &[]).await
    }

    /// As [`Binary::start`] against `pg` itself, with no settings and the extra environment
    /// given.
    pub async fn start_env(pg: &TempPostgres, env: &[(&str, &str)]) -> Binary {
        let databases = format!("* = host=127.0.0.1 port={}\n", pg.port());
        Self::start_with(pg, &databases, "", &["-q"], env).await
    }

    /// As [`Binary::start`] with the `[databases]` section, the command-line flags and extra
    /// environment given.
    pub async fn start_with(
        pg: &TempPostgres,
        databases: &str,
        settings: &str,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let auth_file = dir.path().join("userlist.txt");
        std::fs::write(&auth_file, userlist(pg)).unwrap();
        let port = free_port();
        let ini = dir.path().join("pgbouncer.ini");
        let text = format!(
            "[databases]\n{databases}\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = md5\nauth_file = {auth}\npool_mode = transaction\ndefault_pool_size = 5\n\
             admin_users = postgres\nstats_users = {stats}\nlogfile = {log}\n{settings}\n",
            auth = auth_file.display(),
            stats = super::bouncer::STATS_USER,
            log = dir.path().join("bouncectl.log").display(),
        );
        std::fs::write(&ini, text).unwrap();
        let child = Command::new(super::bin())
            .arg("serve")
            .args(flags)
            .arg(&ini)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut bin = Binary { child, port, dir };
        let up = super::eventually(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
        assert!(up, "bouncectl did not start listening: {}", bin.log());
        assert!(bin.alive());
        bin
    }

    /// A key=value connection string through the pooler.
    pub fn url(&self, user: &str, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={PASSWORD} dbname={dbname} connect_timeout=10",
            self.port
        )
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident memory in KiB (VmRSS of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The most resident memory the process ever had, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// Address space in KiB (VmSize): what was reserved, touched or not.
    pub fn vm_size_kib(&self) -> u64 {
        self.status_kib("VmSize:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Open file descriptors (entries of /proc/PID/fd).
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// The log file so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where the log goes.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("bouncectl.log")
    }

    /// The generated pgbouncer.ini.
    pub fn ini(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.ini")
    }

    /// A raw console client logged in as the admin user.
    pub async fn console(&self) -> RawClient {
        RawClient::connect(
            self.port,
            &[
                ("user", super::bouncer::ADMIN_USER),
                ("database", "pgbouncer"),
            ],
            PASSWORD,
        )
        .await
        .unwrap_or_else(|e| panic!("console login: {e:?}"))
    }

    /// Sends SIGINT (safe shutdown) and waits up to `timeout` for the exit; `None` if it is
    /// still running. An instrumented build writes its profile on this exit, not on SIGKILL.
    pub async fn interrupt(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Polls until the fd count is at most `limit`; returns the last count seen.
    pub async fn fds_settle(&self, limit: usize, timeout: Duration) -> usize {
        let mut last = self.fds();
        // The caller checks the count returned.
        let _settled = super::eventually(timeout, || {
            last = self.fds();
            last <= limit
        })
        .await;
        last
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
