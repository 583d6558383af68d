//! A persistent pool of worker threads for the CPU executor.
//!
//! A computation with `n` tasks runs task 0 on the calling thread and task
//! `t` on worker `t - 1`. Jobs are handed to every worker under one lock, so
//! all workers see concurrent computations in the same order and the
//! barriers inside a computation cannot deadlock. Workers live as long as
//! the pool, so their thread-local scratch memory (GEMM packing buffers) is
//! allocated once, not per computation.
//!
//! Tasks meet at a [`SpinBarrier`] between kernels: a kernel of a small
//! model takes microseconds, and a barrier that puts threads to sleep
//! (futex wait and wake-up) would cost as much again per kernel.

use std::hint::spin_loop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Spins before a waiting task starts yielding its core to other threads:
/// about 10-50 microseconds, longer than most kernels' imbalance.
const SPINS_BEFORE_YIELD: u32 = 1 << 14;

/// A reusable barrier for `n` tasks that waits by spinning, then by
/// yielding (never sleeping on a futex). Everything a task wrote before
/// [`SpinBarrier::wait`] is visible to every task after it returns. A
/// barrier [`SpinBarrier::break_open`] (a task panicked and will not
/// arrive) lets every wait return at once.
pub struct SpinBarrier {
    n: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    broken: AtomicBool,
}

impl SpinBarrier {
    pub fn new(n: usize) -> Self {
        SpinBarrier { n, arrived: AtomicUsize::new(0), generation: AtomicUsize::new(0), broken: AtomicBool::new(false) }
    }

    /// Releases every waiting task now and every later wait at once.
    fn break_open(&self) {
        self.broken.store(true, Ordering::Release);
    }

    /// Returns once all `n` tasks have called `wait` in this round.
    pub fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            // Last to arrive: reset for the next round, then release the
            // others (they only arrive again after seeing the new generation).
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation && !self.broken.load(Ordering::Acquire) {
            if spins < SPINS_BEFORE_YIELD {
                spins += 1;
                spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// A unit of work: run task `t` of a computation.
type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct Pool {
    senders: Mutex<Vec<Sender<Job>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool for computations of up to `threads` tasks (`threads - 1` workers).
    pub fn new(threads: usize) -> Self {
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for i in 1..threads.max(1) {
            let (tx, rx) = channel::<Job>();
            senders.push(tx);
            let worker = std::thread::Builder::new()
                .name(format!("kiln-worker-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
                .expect("spawning a worker thread");
            workers.push(worker);
        }
        Pool { senders: Mutex::new(senders), workers }
    }

    /// The number of tasks a computation can run at once.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `task(t)` for every `t` in `0..self.threads()`, `t = 0` on the
    /// calling thread, and returns when all have finished. `task` receives
    /// a barrier shared by all tasks. A task that panics breaks the barrier
    /// open (the others run on without waiting for it) and makes the run
    /// an error with the panic's message; the workers survive, so the pool
    /// stays usable.
    pub fn run(&self, task: &(dyn Fn(usize, &SpinBarrier) + Sync)) -> Result<(), String> {
        let n = self.threads();
        let barrier = Arc::new(SpinBarrier::new(n));
        let failure: Arc<Mutex<Option<String>>> = Arc::default();
        let outcome = |failure: &Mutex<Option<String>>| match failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(message) => Err(message),
            None => Ok(()),
        };
        if n == 1 {
            guarded(task, 0, &barrier, &failure);
            return outcome(&failure);
        }
        // SAFETY: the borrowed `task` outlives every job: each job ends by
        // waiting on `done`, and this function does not return before it
        // has waited on `done` too, so no job touches `task` afterwards.
        let task: &'static (dyn Fn(usize, &SpinBarrier) + Sync) = unsafe { std::mem::transmute(task) };
        let done = Arc::new(SpinBarrier::new(n));
        {
            let senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
            for (i, tx) in senders.iter().enumerate() {
                let (barrier, done, failure) = (Arc::clone(&barrier), Arc::clone(&done), Arc::clone(&failure));
                let job: Job = Box::new(move || {
                    guarded(task, i + 1, &barrier, &failure);
                    done.wait();
                });
                if tx.send(job).is_err() {
                    unreachable!("workers only stop when the pool is dropped");
                }
            }
        }
        guarded(task, 0, &barrier, &failure);
        done.wait();
        outcome(&failure)
    }
}

/// Runs task `t`; a panic breaks the barrier open and is recorded in
/// `failure` (the first one wins) instead of unwinding further.
fn guarded(task: &(dyn Fn(usize, &SpinBarrier) + Sync), t: usize, barrier: &SpinBarrier, failure: &Mutex<Option<String>>) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| task(t, barrier))) {
        barrier.break_open();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_string());
        failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(format!("task {t}: {message}"));
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.senders.lock().unwrap_or_else(|p| p.into_inner()).clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every round, each task adds to a shared counter, meets the others,
    /// and checks it sees every task's addition of that round.
    #[test]
    fn spin_barrier_separates_rounds() {
        const TASKS: usize = 4;
        const ROUNDS: usize = 2000;
        let pool = Pool::new(TASKS);
        let counter = AtomicUsize::new(0);
        let failures = AtomicUsize::new(0);
        let result = pool.run(&|_, barrier| {
            for round in 1..=ROUNDS {
                counter.fetch_add(1, Ordering::Relaxed);
                barrier.wait();
                if counter.load(Ordering::Relaxed) != round * TASKS {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                barrier.wait();
            }
        });
        result.unwrap();
        assert_eq!(counter.load(Ordering::Relaxed), ROUNDS * TASKS);
        assert_eq!(failures.load(Ordering::Relaxed), 0);
    }

    /// A panicking task makes the run an error (no hang at the barriers
    /// the others wait on), and the pool runs the next computation.
    #[test]
    fn a_panicking_task_is_an_error_and_the_pool_goes_on() {
        let pool = Pool::new(3);
        let e = pool
            .run(&|task, barrier| {
                for round in 0..100 {
                    if task == 1 && round == 5 {
                        panic!("kernel bug");
                    }
                    barrier.wait();
                }
            })
            .unwrap_err();
        assert_eq!(e, "task 1: kernel bug");
        let ran = AtomicUsize::new(0);
        pool.run(&|_, barrier| {
            ran.fetch_add(1, Ordering::Relaxed);
            barrier.wait();
        })
        .unwrap();
        assert_eq!(ran.load(Ordering::Relaxed), 3);
    }
}
