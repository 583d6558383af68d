//! A persistent pool of worker threads for the CPU executor.
//!
//! A computation with `n` tasks runs task 0 on the calling thread and task
//! `t` on worker `t - 1`. Jobs are handed to every worker under one lock, so
//! all workers see concurrent computations in the same order and the
//! barriers inside a computation cannot deadlock. Workers live as long as
//! the pool, so their thread-local scratch memory (GEMM packing buffers) is
//! allocated once, not per computation.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;

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
    /// a barrier shared by all tasks.
    pub fn run(&self, task: &(dyn Fn(usize, &Barrier) + Sync)) {
        let n = self.threads();
        let barrier = Arc::new(Barrier::new(n));
        if n == 1 {
            task(0, &barrier);
            return;
        }
        // SAFETY: the borrowed `task` outlives every job: each job ends by
        // waiting on `done`, and this function does not return before it
        // has waited on `done` too, so no job touches `task` afterwards.
        let task: &'static (dyn Fn(usize, &Barrier) + Sync) = unsafe { std::mem::transmute(task) };
        let done = Arc::new(Barrier::new(n));
        {
            let senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
            for (i, tx) in senders.iter().enumerate() {
                let (barrier, done) = (Arc::clone(&barrier), Arc::clone(&done));
                let job: Job = Box::new(move || {
                    task(i + 1, &barrier);
                    done.wait();
                });
                if tx.send(job).is_err() {
                    unreachable!("workers only stop when the pool is dropped");
                }
            }
        }
        task(0, &barrier);
        done.wait();
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
