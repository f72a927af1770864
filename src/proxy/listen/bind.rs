//! Binding the listening sockets: each `listen_addr` (`*` is 0.0.0.0 and ::) with its TCP
//! options, kept in step with reloads ([`ListenerOptions`]), and the unix socket
//! `.s.PGSQL.<port>` in `unix_socket_dir` with its mode and group.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream, UnixListener};

use crate::config::{Config, Key, Settings};
use crate::net::TcpTuning;

/// The bound sockets.
pub struct Listeners {
    pub(super) tcp: Vec<TcpListener>,
    /// What every TCP listener was given.
    pub(super) options: ListenerOptions,
    pub(super) unix: Option<(UnixListener, PathBuf)>,
}

/// The options a TCP listener carries, kept in step with reloads by its accept loop:
/// TCP_DEFER_ACCEPT, and the TCP options Linux copies from it into every connection it
/// accepts (so they are set on the listener, not on each client).
#[derive(Clone)]
pub(super) struct ListenerOptions {
    /// The config last checked; a reload makes a new one. None until the first connection.
    seen: Option<Arc<Config>>,
    /// `tcp_defer_accept` as set.
    defer: bool,
    /// The options the listener carries; unknown after the kernel refused one of them (those
    /// set before it stay set).
    tuning: Option<TcpTuning>,
    /// Connections still to be tuned one by one after the listener took new options: those
    /// already in the accept queue then, made with the old ones.
    queued_before_change: u32,
    /// `listen_backlog` as `listen` was given it; the accept queue holds at most one more.
    backlog: u32,
}

impl ListenerOptions {
    fn new(s: &Settings) -> Self {
        ListenerOptions {
            seen: None,
            defer: defers_accept(s),
            tuning: Some(TcpTuning::from_settings(s)),
            queued_before_change: 0,
            backlog: backlog(s),
        }
    }

    /// Brings `listener` in step with `config`, and gives `stream`, just accepted from it, the
    /// TCP options it did not inherit: system calls only after a reload changed them.
    pub(super) fn on_accept(
        &mut self,
        listener: &TcpListener,
        stream: &TcpStream,
        config: &Arc<Config>,
    ) -> std::io::Result<()> {
        let reloaded = !self.seen.as_ref().is_some_and(|c| Arc::ptr_eq(c, config));
        if reloaded {
            self.seen = Some(Arc::clone(config));
            // Applies from the connection after this one (every PostgreSQL client speaks first).
            let defer = defers_accept(&config.pgbouncer);
            if defer != self.defer {
                self.defer = defer;
                if let Err(e) = crate::net::defer_accept(listener, defer) {
                    tracing::warn!("{e}");
                }
            }
        }
        if reloaded || self.tuning.is_none() {
            let wanted = TcpTuning::from_settings(&config.pgbouncer);
            if self.tuning != Some(wanted) {
                match wanted.retune(listener) {
                    Ok(()) => {
                        self.tuning = Some(wanted);
                        self.queued_before_change = self.backlog.saturating_add(1);
                    }
                    // Then every connection is tuned on its own until the listener takes them;
                    // said once, not at each connection that tries the listener again.
                    Err(e) => {
                        if self.tuning.take().is_some() {
                            tracing::warn!("listening socket: {e}");
                        }
                    }
                }
                return wanted.retune(stream);
            }
        }
        match self.tuning {
            Some(tuning) if self.queued_before_change > 0 => {
                self.queued_before_change -= 1;
                tuning.retune(stream)
            }
            _ => Ok(()),
        }
    }
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
        let options = ListenerOptions::new(s);
        let mut tcp = Vec::new();
        let mut refused = Vec::new();
        for addr in s.listen_addrs() {
            let hosts: Vec<String> = match addr.trim() {
                "" => continue,
                "*" => vec!["0.0.0.0".into(), "::".into()],
                a => vec![a.to_owned()],
            };
            for host in hosts {
                let target = format!("{}:{port}", bracket(&host));
                let failed = |source| ListenError {
                    addr: target.clone(),
                    source,
                };
                // A name that does not resolve is a mistake in the file, not a missing interface.
                let addrs = tokio::net::lookup_host(&target).await.map_err(failed)?;
                match listen_tcp(addrs, s, &options) {
                    Ok(listener) => tcp.push(listener),
                    Err(source) => refused.push(failed(source)),
                }
            }
        }
        // As PgBouncer: an address that cannot be bound (no IPv6 for `*`'s `::`, an interface
        // not up yet) is a warning while another one listens.
        if tcp.is_empty() {
            if let Some(first) = refused.into_iter().next() {
                return Err(first);
            }
        } else {
            for e in refused {
                tracing::warn!("{e}");
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
            // A socket file left by a crashed run would make bind fail; one that still answers
            // is another pooler's, which removing would cut off (PgBouncer refuses too).
            if in_use(&path).await {
                return Err(ListenError {
                    addr: path.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        "unix socket is in use, cannot continue",
                    ),
                });
            }
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
        Ok(Listeners { tcp, options, unix })
    }

    /// The TCP addresses actually bound.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }
}

/// Whether something listens on the unix socket at `path`. A listener too busy to take the
/// connection within a second counts as there.
async fn in_use(path: &std::path::Path) -> bool {
    let connect = tokio::net::UnixStream::connect(path);
    match tokio::time::timeout(std::time::Duration::from_secs(1), connect).await {
        Ok(connected) => connected.is_ok(),
        Err(_elapsed) => true,
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
fn listen_tcp(
    addrs: impl Iterator<Item = SocketAddr>,
    s: &Settings,
    options: &ListenerOptions,
) -> std::io::Result<TcpListener> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address to listen on");
    for addr in addrs {
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
        if let Some(tuning) = options.tuning {
            tuning.apply(&socket)?;
        }
        match socket.bind(addr) {
            Ok(()) => {
                let listener = socket.listen(options.backlog)?;
                if options.defer {
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
fn backlog(s: &Settings) -> u32 {
    u32::try_from(s.int(Key::ListenBacklog)).unwrap_or(128)
}

/// `tcp_defer_accept`: PgBouncer's default (1) turns it on.
fn defers_accept(s: &Settings) -> bool {
    s.int(Key::TcpDeferAccept) > 0
}
