//! TCP socket options from `[pgbouncer]`: keepalive (`tcp_keepalive`, `tcp_keepidle`,
//! `tcp_keepintvl`, `tcp_keepcnt`), `tcp_user_timeout`, `tcp_socket_buffer`, and TCP_NODELAY;
//! on listening sockets, `tcp_defer_accept`.
//!
//! PgBouncer applies the same set (its `tune_socket`) to every TCP socket it accepts or
//! connects; a socket it cannot tune is closed. Unix sockets take none of them. The pooler sets
//! them on its listening sockets instead, which Linux copies into every connection accepted, and
//! on an accepted socket only after a reload changed them.

use std::os::fd::AsFd;

use nix::sys::socket::{setsockopt, sockopt};
use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};

use crate::config::{Key, Settings};

// TCP_DEFER_ACCEPT, which nix does not declare: its own macro declares it, the way nix declares
// TCP_KEEPIDLE and the rest (an integer option at IPPROTO_TCP). The setsockopt call, and its
// unsafe block, are nix's; std's `set_deferaccept` is still unstable.
sockopt_impl!(
    /// TCP_DEFER_ACCEPT: seconds the kernel holds a connection until its first bytes arrive.
    TcpDeferAccept,
    Both,
    libc::IPPROTO_TCP,
    libc::TCP_DEFER_ACCEPT,
    u32
);

/// Sets TCP_DEFER_ACCEPT on a listening socket, as PgBouncer's `tune_accept`: 1 second when
/// `on` (the kernel keeps the connection out of `accept` until the client has sent its first
/// packet, for up to one SYN-ACK retransmission), none when off.
///
/// Why: a client's startup or SSLRequest packet is then there to read when the connection is
/// accepted, so its task reads it at once instead of parking and being woken for it.
pub fn defer_accept(listener: &impl AsFd, on: bool) -> std::io::Result<()> {
    set(listener, TcpDeferAccept, &u32::from(on), "TCP_DEFER_ACCEPT")
}

/// The TCP options in force; zero means the OS default, as in PgBouncer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpTuning {
    /// `tcp_keepalive`: SO_KEEPALIVE on.
    pub keepalive: bool,
    /// `tcp_keepidle`: seconds idle before the first probe.
    pub keepidle: u32,
    /// `tcp_keepintvl`: seconds between probes.
    pub keepintvl: u32,
    /// `tcp_keepcnt`: unanswered probes before the connection is dropped.
    pub keepcnt: u32,
    /// `tcp_user_timeout`: milliseconds sent data may stay unacknowledged.
    pub user_timeout: u32,
    /// `tcp_socket_buffer`: SO_SNDBUF and SO_RCVBUF, in bytes.
    pub socket_buffer: u32,
}

impl Default for TcpTuning {
    /// PgBouncer's defaults: keepalive on with the OS's timings, nothing else.
    fn default() -> Self {
        TcpTuning {
            keepalive: true,
            keepidle: 0,
            keepintvl: 0,
            keepcnt: 0,
            user_timeout: 0,
            socket_buffer: 0,
        }
    }
}

impl TcpTuning {
    /// The options `settings` name.
    pub fn from_settings(settings: &Settings) -> Self {
        let int = |key| u32::try_from(settings.int(key)).unwrap_or(u32::MAX);
        TcpTuning {
            keepalive: settings.flag(Key::TcpKeepalive),
            keepidle: int(Key::TcpKeepidle),
            keepintvl: int(Key::TcpKeepintvl),
            keepcnt: int(Key::TcpKeepcnt),
            user_timeout: int(Key::TcpUserTimeout),
            socket_buffer: int(Key::TcpSocketBuffer),
        }
    }

    /// Sets every option on an accepted socket.
    pub fn apply(&self, socket: &impl AsFd) -> std::io::Result<()> {
        self.apply_buffers(socket)?;
        self.apply_options(socket)
    }

    /// Sets all but the buffer sizes, on a fresh socket. Keepalive off and zeroed timings are
    /// left as the socket came (the kernel's defaults), which saves system calls.
    pub fn apply_options(&self, socket: &impl AsFd) -> std::io::Result<()> {
        self.set_options(socket, false)
    }

    /// Sets every option to this tuning's value, turning keepalive off and putting zeroed
    /// timings back to the kernel's defaults (its `net.ipv4.tcp_keepalive_*` settings): for a
    /// socket that holds an earlier tuning's options, such as a listener after a reload. Buffer
    /// sizes cannot go back to the kernel's autotuning once set, so a zero leaves them.
    pub fn retune(&self, socket: &impl AsFd) -> std::io::Result<()> {
        self.apply_buffers(socket)?;
        self.set_options(socket, true)
    }

    /// Sets the options; with `every`, also those at the kernel's defaults.
    fn set_options(&self, socket: &impl AsFd, every: bool) -> std::io::Result<()> {
        if self.keepalive || every {
            set(socket, sockopt::KeepAlive, &self.keepalive, "SO_KEEPALIVE")?;
            let timings = [
                (self.keepidle, "tcp_keepalive_time"),
                (self.keepintvl, "tcp_keepalive_intvl"),
                (self.keepcnt, "tcp_keepalive_probes"),
            ];
            let [idle, interval, count] = timings.map(|(value, sysctl)| match value {
                0 if every => kernel_default(sysctl).map(Some),
                0 => Ok(None),
                n => Ok(Some(n)),
            });
            if let Some(idle) = idle? {
                set(socket, sockopt::TcpKeepIdle, &idle, "TCP_KEEPIDLE")?;
            }
            if let Some(interval) = interval? {
                set(socket, sockopt::TcpKeepInterval, &interval, "TCP_KEEPINTVL")?;
            }
            if let Some(count) = count? {
                set(socket, sockopt::TcpKeepCount, &count, "TCP_KEEPCNT")?;
            }
        }
        // Zero is the kernel's own "no user timeout".
        if self.user_timeout > 0 || every {
            let timeout = self.user_timeout;
            set(
                socket,
                sockopt::TcpUserTimeout,
                &timeout,
                "TCP_USER_TIMEOUT",
            )?;
        }
        // Small request/response messages: Nagle would add 40 ms stalls.
        set(socket, sockopt::TcpNoDelay, &true, "TCP_NODELAY")
    }

    /// Sets only the buffer sizes: on a socket before `listen` or `connect`, where the receive
    /// buffer still decides the TCP window scale offered in the handshake.
    pub fn apply_buffers(&self, socket: &impl AsFd) -> std::io::Result<()> {
        if self.socket_buffer > 0 {
            let size = self.socket_buffer as usize;
            set(socket, sockopt::SndBuf, &size, "SO_SNDBUF")?;
            set(socket, sockopt::RcvBuf, &size, "SO_RCVBUF")?;
        }
        Ok(())
    }
}

/// The kernel's default for a keepalive timing: `/proc/sys/net/ipv4/<name>`, for the network
/// namespace the process runs in.
fn kernel_default(name: &str) -> std::io::Result<u32> {
    let path = format!("/proc/sys/net/ipv4/{name}");
    let text = std::fs::read_to_string(&path)?;
    text.trim().parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{path}: not a number: {}", text.trim()),
        )
    })
}

/// One setsockopt; the error names the option, as PgBouncer's warning does.
fn set<O: nix::sys::socket::SetSockOpt>(
    socket: &impl AsFd,
    option: O,
    value: &O::Val,
    name: &str,
) -> std::io::Result<()> {
    setsockopt(socket, option, value).map_err(|errno| {
        let e = std::io::Error::from(errno);
        std::io::Error::new(e.kind(), format!("setsockopt/{name} failed: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, NoEnv};
    use nix::sys::socket::getsockopt;
    use std::net::{TcpListener, TcpStream};

    fn parse(settings: &str) -> Config {
        let text = format!("[databases]\n[pgbouncer]\nauth_type = passthrough\n{settings}");
        Config::parse_str(&text, "t.ini", &NoEnv).unwrap()
    }

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        (client, accepted)
    }

    #[test]
    fn defaults_turn_keepalive_and_nodelay_on_and_leave_the_rest() {
        let (_client, socket) = pair();
        let untouched = getsockopt(&socket, sockopt::TcpKeepIdle).unwrap();
        TcpTuning::default().apply(&socket).unwrap();
        assert!(getsockopt(&socket, sockopt::KeepAlive).unwrap());
        assert!(getsockopt(&socket, sockopt::TcpNoDelay).unwrap());
        assert_eq!(
            getsockopt(&socket, sockopt::TcpKeepIdle).unwrap(),
            untouched
        );
        assert_eq!(getsockopt(&socket, sockopt::TcpUserTimeout).unwrap(), 0);
    }

    /// Every option away from the kernel's defaults, but the buffers.
    const TUNED: TcpTuning = TcpTuning {
        keepalive: true,
        keepidle: 77,
        keepintvl: 13,
        keepcnt: 4,
        user_timeout: 7000,
        socket_buffer: 0,
    };

    fn assert_tuned(socket: &impl AsFd) {
        assert!(getsockopt(socket, sockopt::KeepAlive).unwrap());
        assert!(getsockopt(socket, sockopt::TcpNoDelay).unwrap());
        assert_eq!(getsockopt(socket, sockopt::TcpKeepIdle).unwrap(), 77);
        assert_eq!(getsockopt(socket, sockopt::TcpKeepInterval).unwrap(), 13);
        assert_eq!(getsockopt(socket, sockopt::TcpKeepCount).unwrap(), 4);
        assert_eq!(getsockopt(socket, sockopt::TcpUserTimeout).unwrap(), 7000);
    }

    #[test]
    fn every_setting_reaches_the_socket() {
        let (_client, socket) = pair();
        let tuning = TcpTuning {
            socket_buffer: 65536,
            ..TUNED
        };
        tuning.apply(&socket).unwrap();
        assert_tuned(&socket);
        // Linux doubles the size asked for (bookkeeping overhead), and reports the double.
        assert_eq!(getsockopt(&socket, sockopt::SndBuf).unwrap(), 2 * 65536);
        assert_eq!(getsockopt(&socket, sockopt::RcvBuf).unwrap(), 2 * 65536);
    }

    #[test]
    fn defer_accept_holds_a_connection_back_until_its_first_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        defer_accept(&listener, true).unwrap();
        // The kernel rounds the 1 second up to whole SYN-ACK retransmission periods.
        assert!(getsockopt(&listener, TcpDeferAccept).unwrap() > 0);
        listener.set_nonblocking(true).unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let held = listener.accept().map(|_| ()).map_err(|e| e.kind());
        assert_eq!(held, Err(std::io::ErrorKind::WouldBlock));
        std::io::Write::write_all(&mut client, b"x").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while listener.accept().is_err() {
            assert!(std::time::Instant::now() < deadline, "never accepted");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        defer_accept(&listener, false).unwrap();
        assert_eq!(getsockopt(&listener, TcpDeferAccept).unwrap(), 0);
    }

    /// The accept loop relies on this: Linux copies a listener's options into every connection
    /// it accepts, so the pooler sets them once on the listener instead of on each client.
    #[test]
    fn accepted_sockets_inherit_the_listeners_options() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        TUNED.apply_options(&listener).unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert_tuned(&accepted);
    }

    #[test]
    fn retune_puts_earlier_options_back_to_the_kernels_defaults() {
        let (_client, socket) = pair();
        TUNED.apply(&socket).unwrap();
        assert_tuned(&socket);
        let off = TcpTuning {
            keepalive: false,
            ..TcpTuning::default()
        };
        off.retune(&socket).unwrap();
        assert!(!getsockopt(&socket, sockopt::KeepAlive).unwrap());
        assert!(getsockopt(&socket, sockopt::TcpNoDelay).unwrap());
        for (option, sysctl) in [
            (
                getsockopt(&socket, sockopt::TcpKeepIdle),
                "tcp_keepalive_time",
            ),
            (
                getsockopt(&socket, sockopt::TcpKeepInterval),
                "tcp_keepalive_intvl",
            ),
            (
                getsockopt(&socket, sockopt::TcpKeepCount),
                "tcp_keepalive_probes",
            ),
        ] {
            assert_eq!(option.unwrap(), kernel_default(sysctl).unwrap(), "{sysctl}");
        }
        assert_eq!(getsockopt(&socket, sockopt::TcpUserTimeout).unwrap(), 0);
        TcpTuning {
            keepidle: 55,
            ..TcpTuning::default()
        }
        .retune(&socket)
        .unwrap();
        assert!(getsockopt(&socket, sockopt::KeepAlive).unwrap());
        assert_eq!(getsockopt(&socket, sockopt::TcpKeepIdle).unwrap(), 55);
    }

    #[test]
    fn keepalive_off_leaves_its_timings_alone() {
        let (_client, socket) = pair();
        let tuning = TcpTuning {
            keepalive: false,
            keepidle: 77,
            ..TcpTuning::default()
        };
        tuning.apply(&socket).unwrap();
        assert!(!getsockopt(&socket, sockopt::KeepAlive).unwrap());
        assert_ne!(getsockopt(&socket, sockopt::TcpKeepIdle).unwrap(), 77);
    }

    #[test]
    fn a_value_the_kernel_refuses_names_the_option() {
        let (_client, socket) = pair();
        // Linux takes at most 127 probes.
        let tuning = TcpTuning {
            keepcnt: 1000,
            ..TcpTuning::default()
        };
        let e = tuning.apply(&socket).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(
            e.to_string().starts_with("setsockopt/TCP_KEEPCNT failed"),
            "{e}"
        );
    }

    #[test]
    fn settings_map_to_the_tuning() {
        let config = parse(
            "tcp_keepalive = 0\ntcp_keepidle = 5\ntcp_keepintvl = 6\n\
             tcp_keepcnt = 7\ntcp_user_timeout = 8\ntcp_socket_buffer = 9\n",
        );
        let tuning = TcpTuning::from_settings(&config.pgbouncer);
        let expected = TcpTuning {
            keepalive: false,
            keepidle: 5,
            keepintvl: 6,
            keepcnt: 7,
            user_timeout: 8,
            socket_buffer: 9,
        };
        assert_eq!(tuning, expected);
        let defaults = parse("");
        assert_eq!(
            TcpTuning::from_settings(&defaults.pgbouncer),
            TcpTuning::default()
        );
    }
}
