//! How a relay waits: what it polls, and which socket woke it.
//!
//! Each plain socket is read under its own waker, which marks the socket before it wakes the
//! session's task. tokio keeps a socket's waker until the socket fires, so a socket whose last
//! read returned Pending, with its mark clear, will still wake the task when it has something:
//! a wake-up polls only the socket that has news. Polling the other one as well registered the
//! same waker again, which was about half of a relay's socket polls.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use bytes::BytesMut;
use tokio::io::AsyncRead;
use tokio::time::Sleep;

use crate::pool::server::ServerData;
use crate::registry::ClientInfo;

const READ_CHUNK: usize = 16 * 1024;

/// A server's buffer offers every read at least this much room.
const SERVER_READ_ROOM: usize = READ_CHUNK / 4;

/// A client's buffer (1 KB from its login) takes a chunk only once less than this is free: a
/// client of small queries, or one that leaves after a few, never needs more.
const CLIENT_READ_ROOM: usize = 512;

/// An empty client buffer larger than this (a big message or a burst grew it) goes back to its
/// login size ([`crate::conn::READ_CAPACITY`]): an idle client keeps 1 KB, not the most it ever
/// sent, as PgBouncer frees an empty buffer.
const CLIENT_KEEP: usize = 4 * 1024;

/// A socket's waker: marks, then wakes the session's task.
struct Mark {
    set: AtomicBool,
    task: Waker,
}

impl Wake for Mark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.set.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

/// One socket's waker and its mark.
struct SocketWaker {
    mark: Arc<Mark>,
    waker: Waker,
}

impl SocketWaker {
    fn new(task: &Waker) -> Self {
        let mark = Arc::new(Mark {
            set: AtomicBool::new(false),
            task: task.clone(),
        });
        let waker = Waker::from(Arc::clone(&mark));
        SocketWaker { mark, waker }
    }

    /// Whether the socket must be polled: it is not `armed` (its last poll with this waker did
    /// not return Pending), or its waker fired since. Clears the mark either way.
    fn due(&self, armed: bool) -> bool {
        let fired = self.mark.set.swap(false, Ordering::Acquire);
        !armed || fired
    }
}

/// The two sockets' wakers of one session, made at its first relay wait.
pub(super) struct SocketWakers {
    server: SocketWaker,
    client: SocketWaker,
}

impl SocketWakers {
    /// Wakers for the task behind `task`.
    pub(super) fn new(task: &Waker) -> Self {
        SocketWakers {
            server: SocketWaker::new(task),
            client: SocketWaker::new(task),
        }
    }

    /// Whether these wake the task behind `task` (a session's task never changes; checked
    /// all the same, as a compare).
    pub(super) fn serve(&self, task: &Waker) -> bool {
        self.client.mark.task.will_wake(task)
    }
}

/// Per link: which socket's last read returned Pending under its own waker, so that only a
/// mark sends the relay back to it. A new link starts with neither: the client socket was
/// read with the task's own waker while no server was linked, and the server by whoever
/// held it before.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Armed {
    pub server: bool,
    pub client: bool,
}

/// What a linked wait knows of its sockets' wakers: whether it uses them (`on`), the session's
/// wakers, and the link's [`Armed`].
pub(super) struct Marks<'a> {
    pub on: bool,
    pub wakers: &'a mut Option<SocketWakers>,
    pub armed: &'a mut Armed,
}

/// One poll of a linked wait: the server first (its replies are what the client waits for),
/// then the client, then the timer and KILL. With `marks` on, each socket is polled only when
/// its own waker fired or its last poll did not leave that waker registered.
pub(super) fn poll_linked<S: AsyncRead + Unpin>(
    server: &mut ServerData,
    client: &mut S,
    cbuf: &mut BytesMut,
    marks: &mut Marks<'_>,
    timer: Pin<&mut Option<Sleep>>,
    entry: Option<&ClientInfo>,
    cx: &mut Context<'_>,
) -> Poll<Woke> {
    let armed = &mut *marks.armed;
    let (server_waker, client_waker) = match marks.on {
        true => {
            let w = wakers_for(marks.wakers, armed, cx.waker());
            (Some(&w.server), Some(&w.client))
        }
        false => (None, None),
    };
    let read = poll_socket(server_waker, &mut armed.server, cx, |scx| {
        poll_read_more(&mut server.stream, &mut server.buf, SERVER_READ_ROOM, scx)
    });
    if let Some(Poll::Ready(n)) = read {
        return Poll::Ready(Woke::Server(n));
    }
    let read = poll_socket(client_waker, &mut armed.client, cx, |ccx| {
        poll_client_read(client, cbuf, ccx)
    });
    if let Some(Poll::Ready(n)) = read {
        return Poll::Ready(Woke::Client(n));
    }
    poll_waits(timer, entry, || false, cx)
}

/// Reads one socket with `read`: under its own `waker`, unless that is `armed` and has not
/// fired (then `None`), or under the task's when it has none. Notes whether it is armed now.
#[inline]
fn poll_socket<T>(
    waker: Option<&SocketWaker>,
    armed: &mut bool,
    cx: &mut Context<'_>,
    read: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Option<Poll<T>> {
    let polled = match waker {
        Some(w) if !w.due(*armed) => return None,
        Some(w) => read(&mut Context::from_waker(&w.waker)),
        None => read(cx),
    };
    *armed = polled.is_pending();
    Some(polled)
}

/// What ended a relay wait.
pub(super) enum Woke {
    /// The server's socket: bytes read (0 at EOF) or its error.
    Server(std::io::Result<usize>),
    /// The client's socket, likewise.
    Client(std::io::Result<usize>),
    /// The wait's timer fired.
    Deadline,
    /// The admin console killed the client (`true`), or a shutdown closes idle clients.
    Interrupted(bool),
}

/// Polls what every relay wait watches besides the server: the client's socket, the wait's
/// timer, and KILL (or `give_up`, as [`ClientInfo::poll_killed_or`]).
pub(super) fn poll_client_side<S: AsyncRead + Unpin>(
    client: &mut S,
    cbuf: &mut BytesMut,
    timer: Pin<&mut Option<Sleep>>,
    entry: Option<&ClientInfo>,
    give_up: impl Fn() -> bool,
    cx: &mut Context<'_>,
) -> Poll<Woke> {
    if let Poll::Ready(n) = poll_client_read(client, cbuf, cx) {
        return Poll::Ready(Woke::Client(n));
    }
    poll_waits(timer, entry, give_up, cx)
}

/// The session's socket wakers, made anew (with nothing armed) for a task they do not wake.
#[inline]
fn wakers_for<'a>(
    wakers: &'a mut Option<SocketWakers>,
    armed: &mut Armed,
    task: &Waker,
) -> &'a SocketWakers {
    if wakers.as_ref().is_some_and(|w| w.serve(task)) {
        if let Some(w) = wakers {
            return w;
        }
    }
    *armed = Armed::default();
    wakers.insert(SocketWakers::new(task))
}

/// Reads what the client sent into `cbuf`, first taking back the room of a buffer it emptied.
fn poll_client_read<S: AsyncRead + Unpin>(
    client: &mut S,
    cbuf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    if cbuf.is_empty() {
        if cbuf.capacity() > CLIENT_KEEP {
            *cbuf = BytesMut::with_capacity(crate::conn::READ_CAPACITY);
        } else {
            // Back to the start of its allocation (nothing to copy), instead of a new chunk
            // once the consumed bytes have used up the room.
            cbuf.reserve(CLIENT_READ_ROOM);
        }
    }
    poll_read_more(client, cbuf, CLIENT_READ_ROOM, cx)
}

/// Polls the wait's timer and KILL (or `give_up`).
fn poll_waits(
    timer: Pin<&mut Option<Sleep>>,
    entry: Option<&ClientInfo>,
    give_up: impl Fn() -> bool,
    cx: &mut Context<'_>,
) -> Poll<Woke> {
    if let Some(t) = timer.as_pin_mut() {
        if t.poll(cx).is_ready() {
            return Poll::Ready(Woke::Deadline);
        }
    }
    match entry {
        Some(e) => e.poll_killed_or(cx, give_up).map(Woke::Interrupted),
        None => Poll::Pending,
    }
}

/// Reads what `r` has into `buf`, making room for a chunk when less than `least_room` is left.
fn poll_read_more<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    least_room: usize,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    if buf.capacity() - buf.len() < least_room {
        buf.reserve(READ_CHUNK);
    }
    tokio_util::io::poll_read_buf(Pin::new(r), cx, buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_socket_is_polled_until_armed_then_only_when_its_waker_fired() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(Arc::clone(&count));
        let wakers = SocketWakers::new(&task);
        assert!(wakers.serve(&task));
        assert!(wakers.server.due(false), "not armed: polled");
        assert!(!wakers.server.due(true), "armed, no wake: skipped");
        assert!(wakers.client.due(false), "not armed: polled");
        wakers.client.waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::Relaxed), 1, "the task is woken");
        assert!(
            !wakers.server.due(true),
            "the client's wake is not the server's"
        );
        assert!(wakers.client.due(true), "fired: polled");
        assert!(!wakers.client.due(true), "the mark is cleared by the look");
    }
}
