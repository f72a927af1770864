//! Socket settings as the kernel holds them: `tcp_keepalive` and its timings on the sockets the
//! pooler accepts and opens (read from /proc, as `ss -o` does), before and after a reload,
//! `tcp_defer_accept` on its listening socket, `unix_socket_group` on the socket file, what
//! happens when an address or the socket file is taken, and the open-file limit.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::time::Duration;

use crate::support::binary::Binary;
use crate::support::postgres::{MD5_USER, TempPostgres, free_port};
use crate::support::{self, stderr};

/// An IPv4 TCP socket, a row of /proc/PID/net/tcp (the process's network namespace).
#[derive(Debug)]
struct Socket {
    local_port: u16,
    remote_port: u16,
    /// The kernel's state: "01" ESTABLISHED, "03" SYN_RECV, ...
    state: String,
    /// The kernel's timer kind: 0 none, 1 retransmit, 2 keepalive, 4 zero-window probe.
    timer: u8,
    /// Seconds until that timer fires.
    timer_secs: u64,
    inode: String,
}

/// Every IPv4 TCP socket the kernel lists for `pid`'s network namespace.
fn tcp_sockets(pid: u32) -> Vec<Socket> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap(), 16).unwrap();
    table
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            let (kind, when) = f[5].split_once(':').unwrap();
            Socket {
                local_port: port(f[1]),
                remote_port: port(f[2]),
                state: f[3].to_owned(),
                timer: u8::from_str_radix(kind, 16).unwrap(),
                // In USER_HZ ticks, 100 a second on Linux.
                timer_secs: u64::from_str_radix(when, 16).unwrap() / 100,
                inode: f[9].to_owned(),
            }
        })
        .collect()
}

/// The established IPv4 TCP sockets process `pid` holds open.
fn established(pid: u32) -> Vec<Socket> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    tcp_sockets(pid)
        .into_iter()
        .filter(|s| s.state == "01" && inodes.contains(&s.inode))
        .collect()
}

/// The keepalive timer on both of the pooler's sockets runs from `tcp_keepidle` (77 s here,
/// against the OS's 7200 s); with `tcp_keepalive = 0` the client's socket has none.
#[tokio::test]
async fn tcp_keepidle_arms_keepalive_on_client_and_server_sockets() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bin = Binary::start(
        &pg,
        pg.port(),
        "tcp_keepidle = 77\ntcp_keepintvl = 13\ntcp_keepcnt = 4\ntcp_user_timeout = 9000",
    )
    .await;
    let client = support::connect(&bin.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    assert!(support::select_one(&client).await);
    // Until the peer's delayed ACK of the last answer comes in, the kernel shows the
    // retransmit timer instead.
    let keepalive = |s: &Socket| s.timer == 2;
    let armed = |port: &dyn Fn(&Socket) -> bool| {
        established(bin.pid())
            .iter()
            .any(|s| port(s) && keepalive(s))
    };
    let both_armed = support::eventually(Duration::from_secs(5), || {
        armed(&|s| s.local_port == bin.port) && armed(&|s| s.remote_port == pg.port())
    });
    assert!(both_armed.await, "{:?}", established(bin.pid()));
    let sockets = established(bin.pid());
    let accepted = sockets.iter().find(|s| s.local_port == bin.port);
    let server = sockets.iter().find(|s| s.remote_port == pg.port());
    for (side, socket) in [("client", accepted), ("server", server)] {
        let socket = socket.unwrap_or_else(|| panic!("no {side} socket in {sockets:?}"));
        assert!(keepalive(socket), "{side}: no keepalive timer: {socket:?}");
        assert!(
            (60..=77).contains(&socket.timer_secs),
            "{side}: keepalive not from tcp_keepidle: {socket:?}"
        );
    }

    let off = Binary::start(&pg, pg.port(), "tcp_keepalive = 0").await;
    let client = support::connect(&off.url(MD5_USER, "postgres"))
        .await
        .unwrap();
    assert!(support::select_one(&client).await);
    let sockets = established(off.pid());
    let accepted = sockets.iter().find(|s| s.local_port == off.port).unwrap();
    assert!(!keepalive(accepted), "keepalive still on: {accepted:?}");
}

/// The kernel's state of the pooler's end of `client`'s connection: "03" (SYN_RECV) while
/// TCP_DEFER_ACCEPT holds it back, "01" (ESTABLISHED) once it may be accepted.
fn pooler_side_state(pid: u32, pooler_port: u16, client: &std::net::TcpStream) -> Option<String> {
    let port = client.local_addr().unwrap().port();
    tcp_sockets(pid)
        .into_iter()
        .find(|s| s.local_port == pooler_port && s.remote_port == port)
        .map(|s| s.state)
}

/// With `tcp_defer_accept` on (PgBouncer's default), the kernel holds a client that connects
/// and sends nothing (for PgBouncer's 1 second), so the pooler never sees it; its first packet
/// (an SSLRequest here) brings it in, and the pooler answers it. A reload that turns it off
/// applies from the next connection accepted: a silent client is then established at once.
#[tokio::test]
async fn tcp_defer_accept_keeps_silent_connections_out_of_the_pooler() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bin = Binary::start(&pg, pg.port(), "").await;
    let state = |client: &std::net::TcpStream| pooler_side_state(bin.pid(), bin.port, client);
    let mut client = std::net::TcpStream::connect(("127.0.0.1", bin.port)).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(state(&client).as_deref(), Some("03"), "not held back");
    ssl_request(&mut client);
    assert_eq!(state(&client).as_deref(), Some("01"));

    let ini = std::fs::read_to_string(bin.ini()).unwrap();
    std::fs::write(bin.ini(), format!("{ini}tcp_defer_accept = 0\n")).unwrap();
    assert_eq!(bin.console().await.query("RELOAD").await.error, None);
    // The console's login is the connection that applies the change.
    let _console = bin.console().await;
    let silent = std::net::TcpStream::connect(("127.0.0.1", bin.port)).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(state(&silent).as_deref(), Some("01"), "still held back");
}

/// The pooler's end of the connection from `client`, once its keepalive timer runs (until the
/// client's ACK of the pooler's last packet, the kernel shows the retransmit timer instead).
async fn keepalive_of(pid: u32, pooler_port: u16, client: &std::net::TcpStream) -> Socket {
    let port = client.local_addr().unwrap().port();
    let find = || {
        tcp_sockets(pid)
            .into_iter()
            .find(|s| s.local_port == pooler_port && s.remote_port == port && s.timer == 2)
    };
    let armed = support::eventually(Duration::from_secs(5), || find().is_some()).await;
    assert!(
        armed,
        "no keepalive timer on the pooler's end of port {port}"
    );
    find().unwrap()
}

/// An SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Sends an SSLRequest and reads the pooler's `N`: the client is then accepted and idle.
fn ssl_request(client: &mut std::net::TcpStream) {
    client.write_all(&SSL_REQUEST).unwrap();
    read_no_to_ssl(client);
}

/// Reads the `N` that answers an SSLRequest when client TLS is off.
fn read_no_to_ssl(mut client: &std::net::TcpStream) {
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = [0u8; 1];
    client.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"N");
}

/// The keepalive options live on the listening socket, which Linux copies into each connection
/// it accepts. A reload that changes them reaches the clients accepted after it, including
/// those that were already waiting in the accept queue, made from the listener's old options.
#[tokio::test]
async fn a_reload_of_tcp_keepidle_reaches_clients_queued_before_it() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bin = Binary::start(&pg, pg.port(), "tcp_keepidle = 300").await;
    let mut before = std::net::TcpStream::connect(("127.0.0.1", bin.port)).unwrap();
    ssl_request(&mut before);
    let socket = keepalive_of(bin.pid(), bin.port, &before).await;
    assert!((240..=300).contains(&socket.timer_secs), "{socket:?}");

    let ini = std::fs::read_to_string(bin.ini()).unwrap();
    let ini = ini.replace("tcp_keepidle = 300", "tcp_keepidle = 44");
    std::fs::write(bin.ini(), ini).unwrap();
    assert_eq!(bin.console().await.query("RELOAD").await.error, None);
    // Stopped, the pooler accepts nothing: both connections wait in the queue, made from the
    // listener's options of before the reload.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(bin.pid()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let mut client = std::net::TcpStream::connect(("127.0.0.1", bin.port)).unwrap();
            // The first bytes bring the connection past TCP_DEFER_ACCEPT into the queue.
            client.write_all(&SSL_REQUEST).unwrap();
            client
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    for client in &queued {
        read_no_to_ssl(client);
    }
    let mut after = std::net::TcpStream::connect(("127.0.0.1", bin.port)).unwrap();
    ssl_request(&mut after);
    for (name, client) in [
        ("first queued", &queued[0]),
        ("second queued", &queued[1]),
        ("after", &after),
    ] {
        let socket = keepalive_of(bin.pid(), bin.port, client).await;
        assert!(
            (30..=44).contains(&socket.timer_secs),
            "{name}: keepalive not from the reloaded tcp_keepidle: {socket:?}"
        );
    }
}

/// The options are set on the listening socket at the start, so a value the kernel refuses
/// stops the start with the option's name, instead of closing every client that connects.
#[test]
fn a_tcp_option_the_kernel_refuses_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("bad.ini");
    let text = format!(
        "[databases]\n* = host=127.0.0.1 port=1 user=x\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
         listen_port = {}\nunix_socket_dir =\nauth_type = any\ntcp_keepcnt = 1000\n",
        free_port()
    );
    std::fs::write(&ini, text).unwrap();
    let out = support::bouncectl(&["serve", ini.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("setsockopt/TCP_KEEPCNT failed"),
        "{}",
        stderr(&out)
    );
}

/// After a reload to a value the kernel refuses, every client is closed, as PgBouncer closes a
/// socket it cannot tune, with the listener's refusal logged once; a reload back serves again.
#[tokio::test]
async fn a_reload_to_a_refused_tcp_option_closes_clients_until_it_is_undone() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let bin = Binary::start(&pg, pg.port(), "tcp_keepcnt = 4").await;
    let good = std::fs::read_to_string(bin.ini()).unwrap();
    std::fs::write(
        bin.ini(),
        good.replace("tcp_keepcnt = 4", "tcp_keepcnt = 1000"),
    )
    .unwrap();
    assert_eq!(bin.console().await.query("RELOAD").await.error, None);
    for _ in 0..2 {
        assert!(
            !answers_ssl_request(bin.port),
            "served with a refused option"
        );
    }
    let log = bin.log();
    assert_eq!(log.matches("listening socket:").count(), 1, "{log}");
    assert!(log.contains("setsockopt/TCP_KEEPCNT failed"), "{log}");

    // By signal: the console, over TCP, is closed like every other client now.
    std::fs::write(bin.ini(), good).unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(bin.pid()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let served = support::eventually(Duration::from_secs(5), || answers_ssl_request(bin.port));
    assert!(
        served.await,
        "not served after the reload back: {}",
        bin.log()
    );
}

/// Whether the pooler on `port` answers an SSLRequest (`N`) instead of closing the connection.
fn answers_ssl_request(port: u16) -> bool {
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.write_all(&SSL_REQUEST).unwrap();
    let mut answer = [0u8; 1];
    matches!(client.read(&mut answer), Ok(1) if answer == *b"N")
}

/// `unix_socket_group` hands the socket file to the group; a group that does not exist stops
/// the start with a message naming it.
#[tokio::test]
async fn unix_socket_group_owns_the_socket_file() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // Debian's group for nobody: present on every machine these tests run on.
    let group = nix::unistd::Group::from_name("nogroup").unwrap().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = format!(
        "unix_socket_dir = {}\nunix_socket_group = nogroup\nunix_socket_mode = 0770",
        dir.path().display()
    );
    let bin = Binary::start(&pg, pg.port(), &settings).await;
    let file = dir.path().join(format!(".s.PGSQL.{}", bin.port));
    // The start counts as done once TCP answers; the unix socket is bound, given its mode and
    // handed to the group just after (seen once to lose that race on a loaded machine).
    let handed = support::eventually(Duration::from_secs(5), || {
        std::fs::metadata(&file).is_ok_and(|m| m.gid() == group.gid.as_raw())
    });
    assert!(
        handed.await,
        "{file:?} never went to nogroup: {}",
        bin.log()
    );
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o770);

    let ini = dir.path().join("bad.ini");
    let text = std::fs::read_to_string(bin.ini())
        .unwrap()
        .replace(
            &format!("listen_port = {}", bin.port),
            &format!("listen_port = {}", free_port()),
        )
        .replace(
            "unix_socket_group = nogroup",
            "unix_socket_group = no_such_group_here",
        );
    std::fs::write(&ini, text).unwrap();
    let out = support::bouncectl(&["serve", ini.to_str().unwrap()], "");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no such group: no_such_group_here"),
        "{}",
        stderr(&out)
    );
}

/// As PgBouncer: an address that cannot be bound is a warning while another one listens.
#[tokio::test]
async fn an_address_that_cannot_be_bound_is_a_warning_while_another_listens() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    // 192.0.2.1 (TEST-NET-1) is on no interface here, unless the kernel binds anything.
    if std::fs::read_to_string("/proc/sys/net/ipv4/ip_nonlocal_bind").is_ok_and(|v| v.trim() != "0")
    {
        eprintln!("SKIP: net.ipv4.ip_nonlocal_bind is on; every address binds");
        return;
    }
    let bin = Binary::start(&pg, pg.port(), "listen_addr = 127.0.0.1, 192.0.2.1").await;
    assert!(answers_ssl_request(bin.port), "{}", bin.log());
    let warned = support::eventually(Duration::from_secs(5), || {
        bin.log()
            .contains(&format!("cannot listen on 192.0.2.1:{}", bin.port))
    });
    assert!(warned.await, "{}", bin.log());
}

/// A second pooler on the same socket file stops instead of removing it from under the first,
/// as PgBouncer's "unix socket is in use, cannot continue".
#[tokio::test]
async fn a_unix_socket_in_use_stops_a_second_pooler() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let settings = format!("unix_socket_dir = {}", dir.path().display());
    let bin = Binary::start(&pg, pg.port(), &settings).await;
    let file = dir.path().join(format!(".s.PGSQL.{}", bin.port));
    let bound = support::eventually(Duration::from_secs(5), || {
        std::os::unix::net::UnixStream::connect(&file).is_ok()
    });
    assert!(bound.await, "{}", bin.log());
    let ini = dir.path().join("second.ini");
    let text = std::fs::read_to_string(bin.ini())
        .unwrap()
        .replace("listen_addr = 127.0.0.1", "listen_addr =");
    std::fs::write(&ini, text).unwrap();
    let mut second = std::process::Command::new(support::bin())
        .arg("serve")
        .arg(&ini)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stopped = support::eventually(Duration::from_secs(10), || {
        !matches!(second.try_wait(), Ok(None))
    })
    .await;
    if !stopped {
        let _ = second.kill();
    }
    let out = second.wait_with_output().unwrap();
    assert!(stopped, "the second pooler started: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unix socket is in use, cannot continue"),
        "{}",
        stderr(&out)
    );
    assert!(
        std::os::unix::net::UnixStream::connect(&file).is_ok(),
        "the first pooler lost its socket"
    );
}

/// `bouncectl serve` for `pg` under `prlimit --nofile=LIMITS`, `auth_type = any` with the
/// server user forced, logging to `bouncectl.log` in `dir`; killed on drop.
struct Limited {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Limited {
    async fn start(pg: &TempPostgres, dir: &std::path::Path, limits: &str, settings: &str) -> Self {
        let port = free_port();
        let log = dir.join("bouncectl.log");
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host=127.0.0.1 port={} user={MD5_USER} password={}\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = any\npool_mode = transaction\nlogfile = {}\n{settings}\n",
                pg.port(),
                crate::support::postgres::PASSWORD,
                log.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("prlimit")
            .arg(format!("--nofile={limits}"))
            .arg(support::bin())
            .arg("serve")
            .arg(&ini)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prlimit (util-linux) runs");
        let up = support::eventually(Duration::from_secs(10), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("listening on"))
        });
        assert!(up.await, "did not start");
        Limited { child, port, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=anyone dbname=postgres connect_timeout=10",
            self.port
        )
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A systemd unit's soft limit of 1024 would cap `max_client_conn`: below what the
/// configuration may need, the soft limit goes up to the hard one, and PgBouncer's line says so.
#[tokio::test]
async fn a_soft_open_file_limit_below_the_need_is_raised_to_the_hard_one() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = Limited::start(&pg, dir.path(), "64:4096", "max_client_conn = 300").await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", bin.child.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(open_files, ["4096", "4096"], "{limits}");
    assert!(
        bin.log()
            .contains("kernel file descriptor limit: 4096 (hard: 4096); max_client_conn: 300"),
        "{}",
        bin.log()
    );
}

/// Out of file descriptors, new clients wait in the listen queue instead of being dropped, the
/// failure is logged once (not at every retry), and they get in once descriptors free up.
#[tokio::test]
async fn out_of_file_descriptors_clients_wait_and_get_in_when_some_free_up() {
    let Some(pg) = TempPostgres::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = Limited::start(&pg, dir.path(), "48:48", "default_pool_size = 2").await;
    assert!(
        bin.log()
            .contains("the file descriptor limit (48) is below"),
        "{}",
        bin.log()
    );
    // Connect until one is left waiting: the pooler has no descriptor to accept it with.
    let mut clients = Vec::new();
    let mut waiting = None;
    for _ in 0..60 {
        let url = bin.url();
        let mut attempt = tokio::spawn(async move { support::connect(&url).await });
        match tokio::time::timeout(Duration::from_secs(2), &mut attempt).await {
            Ok(connected) => clients.push(connected.unwrap().expect("a client is served")),
            Err(_) => {
                waiting = Some(attempt);
                break;
            }
        }
    }
    let waiting = waiting.expect("the descriptors never ran out");
    assert!(clients.len() >= 10, "only {} clients got in", clients.len());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failures = bin.log().matches("accept() failed").count();
    assert!(
        (1..=2).contains(&failures),
        "logged at every retry: {}",
        bin.log()
    );
    clients.truncate(clients.len() - 3);
    let client = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting client got in")
        .unwrap()
        .unwrap();
    assert!(support::select_one(&client).await);
    for client in &clients {
        assert!(support::select_one(client).await);
    }
}
