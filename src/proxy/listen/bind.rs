//! Binding the listening sockets: each `listen_addr` (`*` is 0.0.0.0 and ::) with its TCP
//! options, and the unix socket `.s.PGSQL.<port>` in `unix_socket_dir` with its mode and group.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use tokio::net::{TcpListener, UnixListener};

use crate::config::{Config, Key};
use crate::net::TcpTuning;

/// The bound sockets.
pub struct Listeners {
    pub(super) tcp: Vec<TcpListener>,
    /// The TCP options the listeners carry, and so every connection they accept.
    pub(super) tuning: TcpTuning,
    /// `listen_backlog` as the listeners were given it.
    pub(super) backlog: u32,
    pub(super) unix: Option<(UnixListener, PathBuf)>,
}

/// Why listening failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct ListenError {
    /// The address or path.
    pub addr: String,
    /// The OS error.
    pub source: std::io::Error,
}

impl Listeners {
    /// Binds every address of the config; `port` overrides `listen_port` (0 picks a free one).
    pub async fn bind(config: &Config, port: Option<u16>) -> Result<Self, ListenError> {
        let s = &config.pgbouncer;
        let port = port.unwrap_or_else(|| s.listen_port());
        let mut tcp = Vec::new();
        for addr in s.listen_addrs() {
            let hosts: Vec<String> = match addr.trim() {
                "" => continue,
                "*" => vec!["0.0.0.0".into(), "::".into()],
                a => vec![a.to_owned()],
            };
            for host in hosts {
                let target = format!("{}:{port}", bracket(&host));
                let listener = listen_tcp(&target, s).await.map_err(|source| ListenError {
                    addr: target.clone(),
                    source,
                })?;
                tcp.push(listener);
            }
        }
        let dir = s.text(Key::UnixSocketDir).unwrap_or_default();
        let unix = if dir.is_empty() {
            None
        } else {
            let port = tcp
                .first()
                .and_then(|l| l.local_addr().ok())
                .map_or(port, |a| a.port());
            let path = PathBuf::from(dir).join(format!(".s.PGSQL.{port}"));
            // A socket file left by a crashed run would make bind fail.
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).map_err(|source| ListenError {
                addr: path.display().to_string(),
                source,
            })?;
            // `unix_socket_mode` (0777 by default, as PgBouncer): the umask would keep other OS
            // users, such as those `peer` rules admit, from connecting.
            let mode = u32::try_from(s.int(Key::UnixSocketMode)).unwrap_or(0o777);
            let failed = |source| ListenError {
                addr: path.display().to_string(),
                source,
            };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(failed)?;
            if let Some(group) = s.text(Key::UnixSocketGroup) {
                chgrp(&path, group).map_err(failed)?;
            }
            Some((listener, path))
        };
        Ok(Listeners {
            tcp,
            tuning: TcpTuning::from_settings(s),
            backlog: backlog(s),
            unix,
        })
    }

    /// The TCP addresses actually bound.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// `unix_socket_group`: hands the socket file to a group (by name, as PgBouncer), so that with
/// a `unix_socket_mode` such as 0770 its members may connect.
fn chgrp(path: &std::path::Path, group: &str) -> std::io::Result<()> {
    let found = nix::unistd::Group::from_name(group).map_err(std::io::Error::from)?;
    let Some(group) = found else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("unix_socket_group: no such group: {group}"),
        ));
    };
    nix::unistd::chown(path, None, Some(group.gid)).map_err(std::io::Error::from)
}

/// Listens on the first address `target` resolves to that binds, with `listen_backlog`,
/// `tcp_socket_buffer` and, when `so_reuseport`, SO_REUSEPORT (several poolers on one port, for
/// a restart without a gap).
async fn listen_tcp(target: &str, s: &crate::config::Settings) -> std::io::Result<TcpListener> {
    let tuning = TcpTuning::from_settings(s);
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address to listen on");
    for addr in tokio::net::lookup_host(target).await? {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => {
                // IPv6 only, as PgBouncer: `*` listens on 0.0.0.0 and on ::, and a dual-stack
                // :: would claim the IPv4 port as well.
                let socket = tokio::net::TcpSocket::new_v6()?;
                nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::Ipv6V6Only, &true)
                    .map_err(std::io::Error::from)?;
                socket
            }
        };
        // As std's bind: a restart may reuse the port while old connections linger.
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(s.flag(Key::SoReuseport))?;
        // Accepted sockets inherit the options (the accept loop sets them again only after a
        // reload changed them), and the window scale they offer comes from the buffers.
        tuning.apply_buffers(&socket)?;
        tuning.apply_options(&socket)?;
        match socket.bind(addr) {
            Ok(()) => {
                let listener = socket.listen(backlog(s))?;
                if defers_accept(s) {
                    crate::net::defer_accept(&listener, true)?;
                }
                return Ok(listener);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `listen_backlog`, as `listen` takes it.
fn backlog(s: &crate::config::Settings) -> u32 {
    u32::try_from(s.int(Key::ListenBacklog)).unwrap_or(128)
}

/// `tcp_defer_accept`: PgBouncer's default (1) turns it on.
pub(super) fn defers_accept(s: &crate::config::Settings) -> bool {
    s.int(Key::TcpDeferAccept) > 0
}
