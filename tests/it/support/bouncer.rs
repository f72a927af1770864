//! An in-process bouncectl pooler in front of a TempPostgres, on a free loopback port, from a
//! generated pgbouncer.ini and userlist.txt (md5, SCRAM and plain entries for the test roles).

use std::path::PathBuf;

use bouncectl::cli::serve::{Server, load_users};
use bouncectl::config::{Config, NoEnv};
use bouncectl::shutdown::Phase;

use super::postgres::{
    MD5_USER, PASS_USER, PASSWORD, SCRAM_USER, SSL_USER, TRUST_USER, TempPostgres,
};

/// A `stats_users` member of the console (password [`PASSWORD`]).
pub const STATS_USER: &str = "stats_user";
/// The `admin_users` member of the console (password [`PASSWORD`]).
pub const ADMIN_USER: &str = "postgres";

/// The test userlist.txt: md5, SCRAM (copied from PostgreSQL) and plain secrets for the test
/// roles, an empty one for the trust role, plain ones for the console users.
pub fn userlist(pg: &TempPostgres) -> String {
    let scram = pg.psql(&format!(
        "SELECT rolpassword FROM pg_authid WHERE rolname = '{SCRAM_USER}'"
    ));
    format!(
        "\"{MD5_USER}\" \"{}\"\n\"{SCRAM_USER}\" \"{scram}\"\n\"{PASS_USER}\" \"{PASSWORD}\"\n\"{TRUST_USER}\" \"\"\n\"postgres\" \"{PASSWORD}\"\n\"{SSL_USER}\" \"{PASSWORD}\"\n\"{STATS_USER}\" \"{PASSWORD}\"\n",
        bouncectl::auth::md5_secret(MD5_USER, PASSWORD)
    )
}

/// A running in-process pooler; shut down (immediately) on drop.
pub struct TestBouncer {
    /// The pooler's TCP port on 127.0.0.1.
    pub port: u16,
    /// The running server (shared state, shutdown handle).
    pub server: Option<Server>,
    _dir: tempfile::TempDir,
    /// The generated pgbouncer.ini.
    pub ini: PathBuf,
}

impl TestBouncer {
    /// Starts a pooler for `pg` with `[pgbouncer]` settings added after the defaults below.
    pub async fn start(pg: &TempPostgres, settings: &str) -> TestBouncer {
        let port = pg.port();
        let databases =
            format!("postgres = host=127.0.0.1 port={port}\n* = host=127.0.0.1 port={port}\n");
        Self::start_with(pg, &databases, settings).await
    }

    /// As [`TestBouncer::start`], with the server's start error returned (a port picked free
    /// for `settings` may be taken by another test before the pooler binds it).
    pub async fn try_start(pg: &TempPostgres, settings: &str) -> Result<TestBouncer, String> {
        let port = pg.port();
        let databases =
            format!("postgres = host=127.0.0.1 port={port}\n* = host=127.0.0.1 port={port}\n");
        Self::try_start_with(pg, &databases, settings).await
    }

    /// As [`TestBouncer::start`] with the `[databases]` section given.
    pub async fn start_with(pg: &TempPostgres, databases: &str, settings: &str) -> TestBouncer {
        Self::try_start_with(pg, databases, settings)
            .await
            .unwrap_or_else(|e| panic!("the pooler did not start: {e}"))
    }

    async fn try_start_with(
        pg: &TempPostgres,
        databases: &str,
        settings: &str,
    ) -> Result<TestBouncer, String> {
        let dir = tempfile::tempdir().unwrap();
        let auth_file = dir.path().join("userlist.txt");
        std::fs::write(&auth_file, userlist(pg)).unwrap();
        let ini = dir.path().join("pgbouncer.ini");
        let text = format!(
            "[databases]\n{databases}\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = 6432\nunix_socket_dir =\n\
             auth_type = md5\nauth_file = {auth}\npool_mode = transaction\ndefault_pool_size = 5\n\
             admin_users = postgres\nstats_users = {STATS_USER}\n{settings}\n",
            auth = auth_file.display(),
        );
        std::fs::write(&ini, text).unwrap();
        let config = Config::load(&ini, &NoEnv).unwrap_or_else(|e| panic!("{e:?}"));
        Self::start_config(config, dir, ini).await
    }

    async fn start_config(
        config: Config,
        dir: tempfile::TempDir,
        ini: PathBuf,
    ) -> Result<TestBouncer, String> {
        let users = load_users(&config).unwrap();
        let server = Server::start(config, users, Some(0)).await?;
        let port = server.addrs[0].port();
        Ok(TestBouncer {
            port,
            server: Some(server),
            _dir: dir,
            ini,
        })
    }

    /// A key=value connection string through the pooler.
    pub fn url(&self, user: &str, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={PASSWORD} dbname={dbname}",
            self.port
        )
    }

    /// URL of the admin console as `user` (password [`PASSWORD`]).
    pub fn admin_url(&self, user: &str) -> String {
        format!(
            "postgresql://{user}:{PASSWORD}@127.0.0.1:{}/pgbouncer",
            self.port
        )
    }

    /// A raw console client logged in as `user`.
    pub async fn console(&self, user: &str) -> super::client::RawClient {
        super::client::RawClient::connect(
            self.port,
            &[("user", user), ("database", "pgbouncer")],
            PASSWORD,
        )
        .await
        .unwrap_or_else(|e| panic!("console login as {user}: {e:?}"))
    }

    /// The shared state of the running pooler.
    pub fn shared(&self) -> &std::sync::Arc<bouncectl::proxy::Shared> {
        &self.server.as_ref().unwrap().shared
    }
}

impl Drop for TestBouncer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shared.shutdown.advance(Phase::Immediate);
        }
    }
}
