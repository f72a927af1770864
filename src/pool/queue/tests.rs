use super::*;

fn limits(pool_size: usize) -> Limits {
    Limits {
        pool_size,
        reserve_size: 0,
        reserve_timeout: Duration::from_secs(5),
        wait_timeout: Some(Duration::from_secs(10)),
        round_robin: false,
    }
}

async fn open(q: &Arc<Queue<u32>>) -> Slot<u32> {
    match q.checkout().await.unwrap() {
        Lease::Open(slot) => slot,
        Lease::Ready(c) => panic!("expected a slot, got conn {c}"),
    }
}

#[tokio::test(start_paused = true)]
async fn opens_up_to_pool_size_then_queues_fifo() {
    let q = Queue::new(limits(2), vec![]);
    open(&q).await.fill();
    open(&q).await.fill();
    assert_eq!(q.counts().open, 2);
    let first = tokio::spawn({
        let q = Arc::clone(&q);
        async move { q.checkout().await }
    });
    tokio::task::yield_now().await;
    let second = tokio::spawn({
        let q = Arc::clone(&q);
        async move { q.checkout().await }
    });
    tokio::task::yield_now().await;
    assert_eq!(q.counts().waiting, 2);
    q.checkin(7);
    q.checkin(8);
    assert!(matches!(first.await.unwrap(), Ok(Lease::Ready(7))));
    assert!(matches!(second.await.unwrap(), Ok(Lease::Ready(8))));
}

#[tokio::test(start_paused = true)]
async fn idle_connections_are_reused_lifo() {
    let q = Queue::new(limits(2), vec![]);
    open(&q).await.fill();
    open(&q).await.fill();
    q.checkin(1);
    q.checkin(2);
    assert!(matches!(q.checkout().await, Ok(Lease::Ready(2))));
    assert_eq!(q.counts().idle, 1);
}

#[tokio::test(start_paused = true)]
async fn server_round_robin_reuses_the_longest_idle_first() {
    let q = Queue::new(limits(3), vec![]);
    q.set_limits(Limits {
        round_robin: true,
        ..limits(3)
    });
    for _ in 0..3 {
        open(&q).await.fill();
    }
    for conn in [1, 2, 3] {
        q.checkin(conn);
    }
    // Each comes back to the end of the line: 1, 2, 3, then 1 again.
    for want in [1, 2, 3, 1] {
        let Ok(Lease::Ready(got)) = q.checkout().await else {
            panic!("no idle connection");
        };
        assert_eq!(got, want);
        q.checkin(got);
    }
    assert!(matches!(q.try_take_idle(|_| true), Some(2)));
}

#[tokio::test(start_paused = true)]
async fn waiting_longer_than_query_wait_timeout_fails() {
    let q = Queue::new(limits(1), vec![]);
    open(&q).await.fill();
    let started = Instant::now();
    assert_eq!(q.checkout().await.unwrap_err(), CheckoutError::WaitTimeout);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(q.counts().waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn reserve_pool_opens_after_reserve_timeout() {
    let mut l = limits(1);
    l.reserve_size = 1;
    let q = Queue::new(l, vec![]);
    open(&q).await.fill();
    let started = Instant::now();
    open(&q).await.fill();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(q.counts().open, 2);
    // The reserve is used up: the next client times out.
    assert_eq!(q.checkout().await.unwrap_err(), CheckoutError::WaitTimeout);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_slot_lets_a_waiter_open() {
    let q = Queue::new(limits(1), vec![]);
    let slot = open(&q).await;
    let waiter = tokio::spawn({
        let q = Arc::clone(&q);
        async move { q.checkout().await }
    });
    tokio::task::yield_now().await;
    drop(slot); // the connect failed
    assert!(matches!(waiter.await.unwrap(), Ok(Lease::Open(_))));
}

#[tokio::test(start_paused = true)]
async fn shared_cap_limits_pools_of_one_database() {
    let cap = SharedCap::new(1);
    let a: Arc<Queue<u32>> = Queue::new(limits(5), vec![Arc::clone(&cap)]);
    let b: Arc<Queue<u32>> = Queue::new(limits(5), vec![Arc::clone(&cap)]);
    open(&a).await.fill();
    let waiter = tokio::spawn({
        let b = Arc::clone(&b);
        async move { b.checkout().await }
    });
    tokio::task::yield_now().await;
    assert_eq!(b.counts().waiting, 1);
    a.discard();
    let Ok(Lease::Open(slot)) = waiter.await.unwrap() else {
        panic!("the waiter should get a slot once the other pool freed one");
    };
    assert_eq!(cap.open(), 1);
    drop(slot);
    assert_eq!(cap.open(), 0);
}

#[tokio::test(start_paused = true)]
async fn shrinking_the_pool_closes_returning_connections() {
    let q = Queue::new(limits(2), vec![]);
    open(&q).await.fill();
    open(&q).await.fill();
    q.set_limits(limits(1));
    // Given back to be closed by the caller, which frees the slot; it is not dropped here.
    assert_eq!(q.checkin_at(1, Instant::now()), Err((1, Refusal::OverSize)));
    assert_eq!(q.counts().open, 2);
    q.discard();
    assert_eq!(
        q.counts(),
        Counts {
            idle: 0,
            open: 1,
            waiting: 0,
            max_wait: Duration::ZERO
        }
    );
}

#[tokio::test(start_paused = true)]
async fn closing_fails_waiters_and_returns_idle() {
    let q = Queue::new(limits(1), vec![]);
    open(&q).await.fill();
    q.checkin(3);
    assert_eq!(q.close(), vec![3]);
    assert_eq!(q.checkout().await.unwrap_err(), CheckoutError::Closed);
}

#[tokio::test(start_paused = true)]
async fn paused_checkouts_wait_for_resume_or_time_out() {
    let q = Queue::new(limits(2), vec![]);
    open(&q).await.fill();
    q.checkin(1);
    q.set_paused(true);
    let waiting = tokio::spawn({
        let q = Arc::clone(&q);
        async move { q.checkout().await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished(), "a paused pool hands out nothing");
    q.set_paused(false);
    assert!(matches!(waiting.await.unwrap(), Ok(Lease::Ready(1))));

    q.set_paused(true);
    let started = Instant::now();
    let timed_out = q.checkout().await;
    assert_eq!(timed_out.err(), Some(CheckoutError::WaitTimeout));
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn each_waiter_times_out_at_its_own_deadline_and_the_sweeper_restarts() {
    let q = Queue::new(limits(1), vec![]);
    open(&q).await.fill();
    let started = Instant::now();
    let waiter = || {
        let q = Arc::clone(&q);
        tokio::spawn(async move {
            let e = q.checkout().await.err();
            (e, started.elapsed())
        })
    };
    let first = waiter();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = waiter();
    let timed_out = Some(CheckoutError::WaitTimeout);
    assert_eq!(first.await.unwrap(), (timed_out, Duration::from_secs(10)));
    assert_eq!(second.await.unwrap(), (timed_out, Duration::from_secs(13)));
    assert_eq!(q.counts().waiting, 0);
    // Nobody waited for a while: the sweeper ended, and the next waiter starts another.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let again = Instant::now();
    assert_eq!(q.checkout().await.unwrap_err(), CheckoutError::WaitTimeout);
    assert_eq!(again.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_wait_timeout_turned_on_by_reload_reaches_those_already_waiting() {
    let mut l = limits(1);
    l.wait_timeout = None;
    let q = Queue::new(l, vec![]);
    open(&q).await.fill();
    let waiting = tokio::spawn({
        let q = Arc::clone(&q);
        async move { q.checkout().await.err() }
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!waiting.is_finished(), "no timeout yet");
    let reloaded = Instant::now();
    q.set_limits(limits(1));
    let failed = tokio::time::timeout(Duration::from_secs(1), waiting).await;
    assert_eq!(
        failed.expect("still waiting after the reload").unwrap(),
        Some(CheckoutError::WaitTimeout)
    );
    // It had waited 60 s already, past the new 10 s: it fails at once.
    assert_eq!(reloaded.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn growing_the_pool_lets_waiters_open_connections_at_once() {
    let cap = SharedCap::new(2);
    let q = Queue::new(limits(1), vec![Arc::clone(&cap)]);
    open(&q).await.fill();
    let mut waiters = Vec::new();
    for _ in 0..3 {
        waiters.push(tokio::spawn({
            let q = Arc::clone(&q);
            async move { q.checkout().await }
        }));
        tokio::task::yield_now().await;
    }
    assert_eq!(q.counts().waiting, 3);
    // The pool may now have 4, but the database's cap (2) lets only one more open.
    q.set_limits(limits(4));
    let first = waiters.remove(0).await.unwrap();
    assert!(matches!(first, Ok(Lease::Open(_))), "{first:?}");
    assert_eq!((q.counts().open, q.counts().waiting, cap.open()), (2, 2, 2));
}

#[tokio::test(start_paused = true)]
async fn a_reserve_try_for_a_waiter_already_served_takes_no_cap() {
    let cap = SharedCap::new(3);
    let with_reserve = Limits {
        reserve_size: 1,
        ..limits(1)
    };
    let q = Queue::new(with_reserve, vec![Arc::clone(&cap)]);
    open(&q).await.fill();
    // No waiter has this id (its grant came first): the reserve has room, but nothing is taken.
    assert_eq!(q.try_reserve(12345).map(|_| ()), None);
    assert_eq!(cap.open(), 1);
}

#[tokio::test(start_paused = true)]
async fn held_opens_queue_clients_for_a_released_connection_until_the_hold_ends() {
    let q = Queue::new(limits(3), vec![]);
    open(&q).await.fill();
    q.hold_opens(Instant::now() + Duration::from_secs(1));
    let waiter = |q: &Arc<Queue<u32>>| {
        let q = Arc::clone(q);
        tokio::spawn(async move { q.checkout().await })
    };
    let first = waiter(&q);
    let second = waiter(&q);
    tokio::task::yield_now().await;
    assert_eq!(
        q.counts().waiting,
        2,
        "room in the pool, but opens are held"
    );
    q.checkin(7);
    assert!(matches!(first.await.unwrap(), Ok(Lease::Ready(7))));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        matches!(second.await.unwrap(), Ok(Lease::Open(_))),
        "the hold ended"
    );
}

/// A bare queue as a cap sees a pool.
struct Member(Arc<Queue<u32>>);
impl CapMember for Member {
    fn oldest_idle(&self) -> Option<Instant> {
        self.0.oldest_idle()
    }
    fn wants_room(&self) -> bool {
        self.0.wants_room()
    }
    fn evict_oldest_idle(&self) -> bool {
        let gone = self.0.take_oldest_idle();
        if gone.is_some() {
            self.0.discard();
        }
        gone.is_some()
    }
}

/// Two pools of size 2 under one cap of `max`, both its members (keep the members alive).
type UnderCap = (Arc<Queue<u32>>, Arc<Queue<u32>>, Vec<Arc<dyn CapMember>>);

fn two_pools_under(max: usize) -> UnderCap {
    let cap = SharedCap::new(max);
    let a: Arc<Queue<u32>> = Queue::new(limits(2), vec![Arc::clone(&cap)]);
    let b: Arc<Queue<u32>> = Queue::new(limits(2), vec![Arc::clone(&cap)]);
    let members: Vec<Arc<dyn CapMember>> = vec![
        Arc::new(Member(Arc::clone(&a))),
        Arc::new(Member(Arc::clone(&b))),
    ];
    for m in &members {
        cap.join(Arc::downgrade(m));
    }
    (a, b, members)
}

#[tokio::test(start_paused = true)]
async fn a_full_cap_closes_the_longest_idle_connection_of_another_pool() {
    let (a, b, _members) = two_pools_under(2);
    open(&a).await.fill();
    open(&a).await.fill();
    a.checkin(1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    a.checkin(2);
    assert!(matches!(b.checkout().await, Ok(Lease::Open(_))));
    assert_eq!(a.counts().idle, 1);
    assert!(
        matches!(a.checkout().await, Ok(Lease::Ready(2))),
        "1 idled longest"
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_coming_back_is_refused_while_another_pool_waits_for_its_place() {
    let (a, b, _members) = two_pools_under(1);
    open(&a).await.fill();
    let waiting = tokio::spawn({
        let b = Arc::clone(&b);
        async move { b.checkout().await }
    });
    tokio::task::yield_now().await;
    assert_eq!(b.counts().waiting, 1);
    match a.checkin_at(7, Instant::now()) {
        Err((7, Refusal::Wanted)) => a.discard(),
        other => panic!("kept: {other:?}"),
    }
    // (The slot is dropped unfilled, giving the place back.)
    assert!(matches!(waiting.await.unwrap(), Ok(Lease::Open(_))));
    // Nobody waits now: the next one coming back stays idle.
    open(&a).await.fill();
    assert!(a.checkin_at(8, Instant::now()).is_ok());
    assert_eq!(a.counts().idle, 1);
}

#[tokio::test(start_paused = true)]
async fn a_connection_coming_back_is_kept_when_the_waiting_pool_could_not_use_its_place() {
    let (a, b, _members) = two_pools_under(2);
    open(&a).await.fill();
    open(&b).await.fill();
    let _waiting = tokio::spawn({
        let b = Arc::clone(&b);
        async move { b.checkout().await }
    });
    tokio::task::yield_now().await;
    assert_eq!(b.counts().waiting, 1, "held back by the cap");
    // Now its own pool's size holds it back: a freed place would go unused.
    b.set_limits(limits(1));
    assert!(a.checkin_at(7, Instant::now()).is_ok());
    assert_eq!(a.counts().idle, 1);
}
