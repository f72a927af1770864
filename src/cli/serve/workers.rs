//! Worker threads that sleep until the load needs them.
//!
//! The runtime has a worker per core, but while one worker keeps up, the others cost CPU
//! without adding throughput: every batch of ready sockets wakes a second worker to steal half
//! of it, and each wake is a futex call, a context switch and one more `epoll_wait`. On a
//! two-core machine shared with PostgreSQL, two workers used 15-33% more CPU per transaction
//! than one at the same TPS (bench/results/poolbench-2026-11-27.txt).
//!
//! So all but one worker start dormant: a task blocks its worker's thread on a condvar, which
//! takes that worker out of tokio's work stealing and wake-ups. (Sleepers come through the
//! runtime's shared queue, which a worker reads between tasks or when its own queue is empty;
//! tasks left in a dormant worker's queue are stolen by the awake ones, which search the other
//! queues before they park.) A monitor thread samples the process's CPU time every
//! 100 ms: when the awake workers are busier than [`WAKE_AT`] (75%), a dormant one wakes; after a
//! second in which one worker fewer would be under 50% busy, one goes back to sleep.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Busy share of the awake workers above which another one wakes, by default.
pub const WAKE_AT: f64 = 0.75;
/// Busy share that one worker fewer would have, under which one goes back to sleep, as a
/// share of the wake threshold: the gap keeps a load near it from waking and putting one to
/// sleep by turns.
const SLEEP_UNDER: f64 = 2.0 / 3.0;
/// How often the load is sampled.
const SAMPLE: Duration = Duration::from_millis(100);
/// Calm samples in a row before a worker goes back to sleep.
const CALM_SAMPLES: u32 = 10;

/// The dormant workers and the thread that wakes them; dropping it wakes them all for good,
/// which the runtime needs before it can shut down.
pub struct Workers {
    shared: Arc<Shared>,
    monitor: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// Dormant workers wait on it; the monitor too, between samples.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Sleeper tasks spawned and not yet told to wake (some may not have started).
    sleepers: usize,
    /// Wake-ups granted and not yet taken by a sleeper.
    wakes: usize,
    /// The pooler is stopping: every sleeper returns, none blocks again.
    closing: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts one more worker to sleep: the sleeper goes through the runtime's shared queue, so an
    /// idle worker takes it.
    fn put_to_sleep(self: &Arc<Self>, runtime: &tokio::runtime::Handle) {
        self.lock().sleepers += 1;
        let shared = Arc::clone(self);
        runtime.spawn(async move { shared.sleep_here() });
    }

    /// The sleeper task's body: blocks the worker thread that runs it until a wake is granted.
    fn sleep_here(&self) {
        let mut state = self.lock();
        while state.wakes == 0 && !state.closing {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.wakes = state.wakes.saturating_sub(1);
    }

    /// Wakes one dormant worker, if there is one.
    fn wake_one(&self) {
        let mut state = self.lock();
        if state.sleepers > 0 {
            state.sleepers -= 1;
            state.wakes += 1;
            self.changed.notify_all();
        }
    }
}

impl Workers {
    /// Puts all but one of the runtime's `workers` to sleep, and starts the monitor that wakes
    /// them. With one worker there is nothing to do.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        workers: usize,
        wake_at: f64,
    ) -> std::io::Result<Self> {
        // Built first: if the monitor cannot start, dropping this wakes the sleepers again.
        let mut this = Workers {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
            }),
            monitor: None,
        };
        if workers < 2 {
            return Ok(this);
        }
        for _ in 1..workers {
            this.shared.put_to_sleep(runtime);
        }
        let shared = Arc::clone(&this.shared);
        let runtime = runtime.clone();
        let monitor = std::thread::Builder::new()
            .name("bouncectl-workers".into())
            .spawn(move || monitor(&shared, &runtime, workers, wake_at))?;
        this.monitor = Some(monitor);
        Ok(this)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.changed.notify_all();
        if let Some(monitor) = self.monitor.take() {
            let _ = monitor.join();
        }
    }
}

/// Samples the load until closing; wakes and puts workers to sleep as [`decide`] says.
fn monitor(shared: &Arc<Shared>, runtime: &tokio::runtime::Handle, workers: usize, wake_at: f64) {
    let mut last = (Instant::now(), cpu_time());
    let mut calm = 0;
    loop {
        {
            let state = shared.lock();
            let (state, _) = shared
                .changed
                .wait_timeout_while(state, SAMPLE, |s| !s.closing)
                .unwrap_or_else(PoisonError::into_inner);
            if state.closing {
                return;
            }
        }
        let now = (Instant::now(), cpu_time());
        let elapsed = now.0.duration_since(last.0).as_secs_f64();
        let load = now.1.saturating_sub(last.1).as_secs_f64() / elapsed.max(f64::EPSILON);
        last = now;
        let awake = workers - shared.lock().sleepers;
        let awake = match decide(load, wake_at, (awake, workers), &mut calm) {
            Some(Change::Wake) => {
                shared.wake_one();
                awake + 1
            }
            Some(Change::Sleep) => {
                shared.put_to_sleep(runtime);
                awake - 1
            }
            None => continue,
        };
        tracing::debug!("{load:.2} cores busy: {awake} of {workers} workers awake now");
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Change {
    Wake,
    Sleep,
}

/// What to do after a sample in which the process used `load` cores with `awake` of `workers`
/// awake; `calm` counts the samples in a row that would have let one sleep.
fn decide(
    load: f64,
    wake_at: f64,
    (awake, workers): (usize, usize),
    calm: &mut u32,
) -> Option<Change> {
    let awake_f = awake as f64;
    if load > wake_at * awake_f && awake < workers {
        *calm = 0;
        return Some(Change::Wake);
    }
    if awake > 1 && load < SLEEP_UNDER * wake_at * (awake_f - 1.0) {
        *calm += 1;
        if *calm >= CALM_SAMPLES {
            *calm = 0;
            return Some(Change::Sleep);
        }
    } else {
        *calm = 0;
    }
    None
}

/// The process's CPU time so far, user and system, all threads.
fn cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(Duration::ZERO, |usage| {
        let tv = |t: nix::sys::time::TimeVal| {
            Duration::new(
                u64::try_from(t.tv_sec()).unwrap_or(0),
                u32::try_from(t.tv_usec()).unwrap_or(0) * 1000,
            )
        };
        tv(usage.user_time()) + tv(usage.system_time())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(loads: &[f64], awake: usize, workers: usize) -> Vec<Option<Change>> {
        let mut calm = 0;
        loads
            .iter()
            .map(|&load| decide(load, WAKE_AT, (awake, workers), &mut calm))
            .collect()
    }

    #[test]
    fn a_busy_worker_wakes_another_until_all_are_awake() {
        assert_eq!(run(&[0.8], 1, 4), [Some(Change::Wake)]);
        assert_eq!(run(&[2.5], 3, 4), [Some(Change::Wake)]);
        assert_eq!(run(&[4.0], 4, 4), [None]);
        assert_eq!(run(&[0.7], 1, 4), [None]);
    }

    #[test]
    fn a_worker_sleeps_after_a_second_of_calm_and_never_the_last() {
        let calm_second = [0.3; CALM_SAMPLES as usize];
        let decided = run(&calm_second, 2, 2);
        assert_eq!(decided.last(), Some(&Some(Change::Sleep)));
        assert!(decided[..decided.len() - 1].iter().all(Option::is_none));
        assert!(run(&[0.0; 30], 1, 2).iter().all(Option::is_none));
    }

    #[test]
    fn one_busy_sample_restarts_the_calm_count() {
        let mut loads = vec![0.3; CALM_SAMPLES as usize - 1];
        loads.push(0.6);
        loads.extend([0.3; CALM_SAMPLES as usize - 1]);
        assert!(run(&loads, 2, 2).iter().all(Option::is_none));
    }

    #[test]
    fn a_load_between_the_thresholds_changes_nothing() {
        // 0.6 cores: too little to wake a second worker, too much to put it back to sleep.
        assert!(run(&[0.6; 30], 1, 2).iter().all(Option::is_none));
        assert!(run(&[0.6; 30], 2, 2).iter().all(Option::is_none));
    }

    #[test]
    fn sleepers_block_until_woken_and_all_go_when_closing() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(3)
            .build()
            .unwrap();
        let workers = Workers::start(runtime.handle(), 3, 2.0).unwrap();
        let state = || {
            let s = workers.shared.lock();
            (s.sleepers, s.wakes)
        };
        assert_eq!(state(), (2, 0));
        // One worker is left: tasks still run.
        assert_eq!(runtime.block_on(runtime.spawn(async { 7 })).unwrap(), 7);
        workers.shared.wake_one();
        assert_eq!(workers.shared.lock().sleepers, 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        while workers.shared.lock().wakes > 0 {
            assert!(Instant::now() < deadline, "the woken sleeper never ran");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Dropping a runtime waits for every worker: forever, if one were still blocked.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(workers);
            drop(runtime);
            let _ = done.send(());
        });
        assert!(finished.recv_timeout(Duration::from_secs(5)).is_ok());
    }
}
