//! Asynchronous execution: [`crate::Context::dispatch`] hands a computation
//! to the context's dispatch thread and returns a [`Future`] of its result,
//! usable from any executor (or [`block_on`], pollster's).
//!
//! A context starts one dispatch thread, on its first `dispatch`, and runs
//! every dispatched computation there in the order of the calls; the thread
//! ends when the last clone of the context is gone and its queue is empty.
//! No thread is started per call. Queueing costs no parallelism on the cpu
//! backend: its computations share the context's worker pool, which runs
//! them one after another anyway. A computation that panics resolves its
//! future to [`RuntimeError::Panicked`] and the thread goes on with the next.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};
use std::thread::JoinHandle;

use kiln_ir::Tensor;

use crate::RuntimeError;

/// Drives a future to completion on the calling thread (the `pollster`
/// crate's).
pub use pollster::block_on;

/// What a graph dispatch resolves to: the named outputs.
pub type Outputs = Vec<(String, Tensor)>;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Slot<T> {
    result: Option<Result<T, RuntimeError>>,
    waker: Option<Waker>,
}

/// The pending result of [`crate::Context::dispatch`] (the named outputs),
/// or of a tensor operation ([`crate::Context::read_tensor`],
/// [`crate::Context::dispatch_tensors`]).
pub struct Dispatch<T = Outputs> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> Dispatch<T> {
    /// A dispatch that is already done.
    pub(crate) fn ready(result: Result<T, RuntimeError>) -> Self {
        Dispatch { slot: Arc::new(Mutex::new(Slot { result: Some(result), waker: None })) }
    }
}

impl<T> Future for Dispatch<T> {
    type Output = Result<T, RuntimeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<T, RuntimeError>> {
        let mut s = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A context's dispatch thread and its queue.
pub(crate) struct Dispatcher {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Dispatcher {
    /// Starts the thread; `None` if the system refuses a thread.
    pub(crate) fn start() -> Option<Self> {
        let (tx, rx) = channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("kiln-dispatch".to_string())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .ok()?;
        Some(Dispatcher { jobs: Some(tx), thread: Some(thread) })
    }

    /// Queues `work` on `dispatcher`'s thread, or runs it now on the calling
    /// thread where there is none (the system refused to start it).
    pub(crate) fn submit<T: Send + 'static>(
        dispatcher: Option<&Self>,
        work: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
    ) -> Dispatch<T> {
        let Some(jobs) = dispatcher.and_then(|d| d.jobs.as_ref()) else {
            return Dispatch::ready(run_caught(work));
        };
        let slot = Arc::new(Mutex::new(Slot { result: None, waker: None }));
        let done = Arc::clone(&slot);
        let job: Job = Box::new(move || {
            let result = run_caught(work);
            let waker = {
                let mut s = done.lock().unwrap_or_else(|p| p.into_inner());
                s.result = Some(result);
                s.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        });
        match jobs.send(job) {
            Ok(()) => Dispatch { slot },
            // The thread is gone (it only stops when the queue closes): run here.
            Err(returned) => {
                (returned.0)();
                Dispatch { slot }
            }
        }
    }
}

/// Runs `work`, turning a panic into an error.
fn run_caught<T>(work: impl FnOnce() -> Result<T, RuntimeError>) -> Result<T, RuntimeError> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_string());
        Err(RuntimeError::Panicked(message))
    })
}

impl Drop for Dispatcher {
    /// Closes the queue and waits for the queued computations, unless the
    /// last owner is dropped by a computation on the dispatch thread itself
    /// (the thread then ends on its own once that computation returns).
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every dispatched job runs on one thread, not the caller's, in the
    /// order of the calls.
    #[test]
    fn dispatches_share_one_thread_in_call_order() {
        let dispatcher = Dispatcher::start().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let pending: Vec<Dispatch> = (0..20)
            .map(|i| {
                let seen = Arc::clone(&seen);
                Dispatcher::submit(Some(&dispatcher), move || {
                    seen.lock().unwrap().push((i, std::thread::current().id()));
                    Ok(Vec::new())
                })
            })
            .collect();
        for d in pending {
            block_on(d).unwrap();
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), (0..20).collect::<Vec<_>>());
        let threads: BTreeSet<_> = seen.iter().map(|(_, t)| format!("{t:?}")).collect();
        assert_eq!(threads.len(), 1, "{threads:?}");
        assert_ne!(seen[0].1, std::thread::current().id());
    }

    /// A panicking computation is an error, and the thread runs the next.
    #[test]
    fn a_panic_is_an_error_and_the_thread_goes_on() {
        let dispatcher = Dispatcher::start().unwrap();
        let e = block_on(Dispatcher::submit::<Outputs>(Some(&dispatcher), || panic!("kernel bug"))).unwrap_err();
        assert_eq!(e.to_string(), "internal: a computation panicked: kernel bug");
        assert!(block_on(Dispatcher::submit::<Outputs>(Some(&dispatcher), || Ok(Vec::new()))).unwrap().is_empty());
    }

    /// Dropping the dispatcher waits for what is queued; without a
    /// dispatcher the work runs on the calling thread.
    #[test]
    fn drop_finishes_the_queue_and_no_dispatcher_runs_inline() {
        let dispatcher = Dispatcher::start().unwrap();
        let ran = Arc::new(Mutex::new(0));
        let pending: Vec<Dispatch> = (0..5)
            .map(|_| {
                let ran = Arc::clone(&ran);
                Dispatcher::submit(Some(&dispatcher), move || {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    *ran.lock().unwrap() += 1;
                    Ok(Vec::new())
                })
            })
            .collect();
        drop(dispatcher);
        assert_eq!(*ran.lock().unwrap(), 5);
        for d in pending {
            block_on(d).unwrap();
        }
        let here = std::thread::current().id();
        let d = Dispatcher::submit(None, move || {
            assert_eq!(std::thread::current().id(), here);
            Ok(())
        });
        block_on(d).unwrap();
    }
}
