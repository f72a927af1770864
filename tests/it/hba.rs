//! `auth_type = hba`: rules by connection type (unix socket, 127.0.0.1, ::1), database and user
//! pick trust, md5, scram-sha-256, password, peer or reject, with PgBouncer's errors for the
//! refusals; a RELOAD re-reads the file. Real clients: tokio-postgres and psql.

use std::path::Path;
use std::process::Command;

use crate::support::bouncer::{ADMIN_USER, TestBouncer};
use crate::support::postgres::{
    MD5_USER, PASS_USER, PASSWORD, SCRAM_USER, TRUST_USER, TempPostgres, as_postgres_user,
    unique_dir,
};
use crate::support::{self};

const RULES: &str = "\
# console for the admin, from IPv4 loopback only
host    pgbouncer  postgres             127.0.0.1/32  md5
local   all        postgres                           peer
local   all        trust_user                         trust
local   all        pass_user                          peer
local   all        all                                reject
host    all        md5_user             127.0.0.1/32  md5
host    all        scram_user           127.0.0.1/32  scram-sha-256
host    all        pass_user            127.0.0.1     255.255.255.255  password
host    sameuser   trust_user           127.0.0.0/8   trust
host    all        all                  ::1/128       reject
";

async fn whoami(url: &str) -> Result<String, String> {
    match support::connect(url).await {
        Ok(client) => Ok(client
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap()
            .get(0)),
        Err(e) => Err(e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_else(|| e.to_string())),
    }
}

fn url(host: &str, port: u16, user: &str, password: &str, dbname: &str) -> String {
    format!("host={host} port={port} user={user} password={password} dbname={dbname}")
}

/// psql over the pooler's unix socket, as `os_user` (`postgres` or ourselves); stdout or stderr.
fn psql_unix(pg: &TempPostgres, dir: &Path, port: u16, user: &str, as_postgres: bool) -> String {
    let mut cmd = Command::new(pg.bindir().join("psql"));
    cmd.args(["-X", "-A", "-t", "-w", "-h"])
        .arg(dir)
        .args(["-p", &port.to_string(), "-U", user, "-d", "postgres"])
        .args(["-c", "SELECT current_user"])
        .env("PGPASSWORD", PASSWORD);
    if as_postgres {
        as_postgres_user(&mut cmd);
    }
    let out = cmd.output().unwrap();
    let text = if out.status.success() {
        &out.stdout
    } else {
        &out.stderr
    };
    String::from_utf8_lossy(text).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_pick_the_method_by_address_database_and_user() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // Owned by the postgres OS user so that psql running as it can reach the socket.
    let dir = unique_dir("bouncectl-hba");
    let hba = dir.join("hba.conf");
    std::fs::write(&hba, RULES).unwrap();
    let settings = format!(
        "auth_type = hba\nauth_hba_file = {}\nlisten_addr = 127.0.0.1,::1\nunix_socket_dir = {}\n",
        hba.display(),
        dir.display()
    );
    let bouncer = TestBouncer::start(&pg, &settings).await;
    let v4 = bouncer.port;
    let v6 = bouncer.server.as_ref().unwrap().addrs[1].port();
    let pg_db = "postgres";

    // 127.0.0.1: each user gets its rule's method.
    for user in [MD5_USER, SCRAM_USER, PASS_USER] {
        assert_eq!(
            whoami(&url("127.0.0.1", v4, user, PASSWORD, pg_db)).await,
            Ok(user.to_owned())
        );
    }
    assert_eq!(
        whoami(&url("127.0.0.1", v4, MD5_USER, "nope", pg_db)).await,
        Err("password authentication failed".to_owned())
    );
    assert_eq!(
        whoami(&url("127.0.0.1", v4, SCRAM_USER, "nope", pg_db)).await,
        Err("SASL authentication failed".to_owned())
    );
    assert_eq!(
        whoami(&url("127.0.0.1", v4, PASS_USER, "nope", pg_db)).await,
        Err("password authentication failed".to_owned())
    );
    // trust only for its own database (sameuser): no password asked there, no rule elsewhere.
    assert_eq!(
        whoami(&url("127.0.0.1", v4, TRUST_USER, "anything", TRUST_USER)).await,
        Err(format!("database \"{TRUST_USER}\" does not exist")),
        "trusted by the pooler, then refused by PostgreSQL for the missing database"
    );
    assert_eq!(
        whoami(&url("127.0.0.1", v4, TRUST_USER, PASSWORD, pg_db)).await,
        Err("login rejected".to_owned())
    );
    // ::1: rejected whoever it is.
    for user in [MD5_USER, SCRAM_USER, TRUST_USER] {
        assert_eq!(
            whoami(&url("::1", v6, user, PASSWORD, pg_db)).await,
            Err("login rejected".to_owned()),
            "{user} over ::1"
        );
    }

    // The unix socket, with psql: trust, reject, and peer (the OS user must be the user).
    assert_eq!(psql_unix(&pg, &dir, v4, TRUST_USER, false), TRUST_USER);
    let refused = psql_unix(&pg, &dir, v4, MD5_USER, false);
    assert!(refused.contains("login rejected"), "{refused}");
    let peer = psql_unix(&pg, &dir, v4, PASS_USER, false);
    assert!(peer.contains("unix socket login rejected"), "{peer}");
    if nix::unistd::geteuid().is_root() {
        // Running as the postgres OS user, psql logs in as `postgres` by peer, no password.
        assert_eq!(psql_unix(&pg, &dir, v4, "postgres", true), "postgres");
    }

    // RELOAD re-reads the file: ::1 opens for md5_user.
    std::fs::write(
        &hba,
        RULES.replace(
            "host    all        all                  ::1/128       reject",
            "host    all        md5_user             ::1/128       md5",
        ),
    )
    .unwrap();
    let console = support::connect(&url("127.0.0.1", v4, ADMIN_USER, PASSWORD, "pgbouncer"))
        .await
        .unwrap();
    console.simple_query("RELOAD").await.unwrap();
    assert_eq!(
        whoami(&url("::1", v6, MD5_USER, PASSWORD, pg_db)).await,
        Ok(MD5_USER.to_owned())
    );
    assert_eq!(
        whoami(&url("::1", v6, SCRAM_USER, PASSWORD, pg_db)).await,
        Err("login rejected".to_owned()),
        "no rule for scram_user over ::1 any more"
    );
    // The pooler kept serving through all of it.
    assert_eq!(
        whoami(&url("127.0.0.1", v4, SCRAM_USER, PASSWORD, pg_db)).await,
        Ok(SCRAM_USER.to_owned())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_with_a_map_lets_in_whom_auth_ident_file_names() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .expect("the test's OS user has a name")
        .name;
    let dir = unique_dir("bouncectl-ident");
    let (hba, ident) = (dir.join("hba.conf"), dir.join("ident.conf"));
    std::fs::write(
        &hba,
        "host  pgbouncer  postgres    127.0.0.1/32  md5\n\
         local all        md5_user                  peer  map=ops\n\
         local all        pass_user                 peer  map=ops\n\
         local all        all                       reject\n",
    )
    .unwrap();
    std::fs::write(
        &ident,
        format!("# MAP  SYSTEM-USER  DATABASE-USER\nops  {me}  md5_user\nops  someone-else  all\n"),
    )
    .unwrap();
    let settings = format!(
        "auth_type = hba\nauth_hba_file = {}\nauth_ident_file = {}\nunix_socket_dir = {}\n",
        hba.display(),
        ident.display(),
        dir.display()
    );
    let bouncer = TestBouncer::start(&pg, &settings).await;
    let port = bouncer.port;

    // The map, not the name: we are not md5_user, yet the map lets us in as it.
    assert_eq!(psql_unix(&pg, &dir, port, MD5_USER, false), MD5_USER);
    let refused = psql_unix(&pg, &dir, port, PASS_USER, false);
    assert!(refused.contains("unix socket login rejected"), "{refused}");

    // RELOAD re-reads the ident file: `all` opens every user of the rule to us.
    std::fs::write(&ident, format!("ops  {me}  all\n")).unwrap();
    let console = support::connect(&url("127.0.0.1", port, ADMIN_USER, PASSWORD, "pgbouncer"))
        .await
        .unwrap();
    console.simple_query("RELOAD").await.unwrap();
    assert_eq!(psql_unix(&pg, &dir, port, PASS_USER, false), PASS_USER);

    // A file PgBouncer would not read keeps the maps in force.
    std::fs::write(&ident, format!("ops  /^{me}$  all\n")).unwrap();
    let failed = console.simple_query("RELOAD").await.unwrap_err();
    let message = failed.as_db_error().map(|e| e.message().to_owned());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("regular expressions")),
        "{failed:?}"
    );
    assert_eq!(psql_unix(&pg, &dir, port, PASS_USER, false), PASS_USER);
    let _ = std::fs::remove_dir_all(&dir);
}
