//! Relay: an in-process TCP relay to put between the pooler and PostgreSQL, switchable at runtime
//! between passing, delaying, cutting and black-holing traffic (what toxiproxy would do, without
//! an external tool).
//!
//! A connection that has once been black-holed stays dead even after the relay passes again: its
//! bytes were thrown away, so the stream could never be resumed — as after a firewall or NAT lost
//! its state. Only new connections see the healed network. Dropping the relay closes everything.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the relay does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything at once.
    Pass,
    /// Forward each chunk after this delay.
    Delay(Duration),
    /// Accept and keep sockets, forward nothing, answer nothing.
    BlackHole,
    /// Close every connection (both sides) and every new one at once.
    Cut,
}

/// A running relay on 127.0.0.1; stops (closing every socket) on drop.
pub struct Relay {
    port: u16,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

impl Relay {
    /// Starts relaying a free loopback port to 127.0.0.1:`target` in [`Mode::Pass`]; needs a
    /// tokio runtime.
    pub async fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, rx) = watch::channel(Mode::Pass);
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        tokio::spawn(accept_loop(
            listener,
            target,
            rx,
            Arc::clone(&accepted),
            Arc::clone(&open),
        ));
        Relay {
            port,
            mode,
            accepted,
            open,
        }
    }

    /// The port to point the pooler at.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Switches every connection, existing and new, to `mode`.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections open now (relayed or held in the black hole).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// Counts a connection as open while alive.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: u16,
    mut mode: watch::Receiver<Mode>,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
) {
    loop {
        let socket = tokio::select! {
            r = listener.accept() => match r {
                Ok((socket, _)) => socket,
                Err(_) => continue,
            },
            r = mode.changed() => if r.is_err() { return } else { continue },
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        open.fetch_add(1, Ordering::Relaxed);
        let guard = OpenGuard(Arc::clone(&open));
        let rx = mode.clone();
        tokio::spawn(async move {
            let _guard = guard;
            connection(socket, target, rx).await;
        });
    }
}

async fn connection(client: TcpStream, target: u16, mode: watch::Receiver<Mode>) {
    let current = *mode.borrow();
    let upstream = match current {
        Mode::Cut => return,
        Mode::BlackHole => None,
        Mode::Pass | Mode::Delay(_) => TcpStream::connect(("127.0.0.1", target)).await.ok(),
    };
    let Some(upstream) = upstream else {
        if current == Mode::BlackHole {
            hold(client, mode).await;
        }
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let frozen = Arc::new(AtomicBool::new(false));
    let (cr, cw) = client.into_split();
    let (ur, uw) = upstream.into_split();
    // The first direction to end (EOF, error, cut) closes both sockets.
    tokio::select! {
        () = direction(cr, uw, mode.clone(), Arc::clone(&frozen)) => {}
        () = direction(ur, cw, mode, frozen) => {}
    }
}

/// A black-holed connection that never had an upstream: read and discard until cut.
async fn hold(mut socket: TcpStream, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            n = socket.read(&mut buf) => if !matches!(n, Ok(1..)) { return },
            r = mode.changed() => if r.is_err() || *mode.borrow() == Mode::Cut { return },
        }
    }
}

async fn direction(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            n = from.read(&mut buf) => {
                let Ok(n @ 1..) = n else { return };
                let now = *mode.borrow();
                match now {
                    Mode::Cut => return,
                    Mode::BlackHole => frozen.store(true, Ordering::Relaxed),
                    Mode::Pass | Mode::Delay(_) => {}
                }
                if frozen.load(Ordering::Relaxed) {
                    continue;
                }
                if let Mode::Delay(d) = now {
                    tokio::time::sleep(d).await;
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            r = mode.changed() => {
                if r.is_err() {
                    return;
                }
                match *mode.borrow() {
                    Mode::Cut => return,
                    Mode::BlackHole => frozen.store(true, Ordering::Relaxed),
                    Mode::Pass | Mode::Delay(_) => {}
                }
            }
        }
    }
}
