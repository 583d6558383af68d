//! Asynchronous execution: a computation runs on its own thread and its
//! result is a [`Future`], usable from any executor (or `block_on`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use kiln_ir::Tensor;

use crate::RuntimeError;

type Outputs = Result<Vec<(String, Tensor)>, RuntimeError>;

#[derive(Default)]
struct Slot {
    result: Option<Outputs>,
    waker: Option<Waker>,
}

/// The pending result of [`crate::Context::dispatch`].
pub struct Dispatch {
    slot: Arc<Mutex<Slot>>,
}

impl Dispatch {
    /// Runs `work` on a new thread.
    pub(crate) fn spawn(work: impl FnOnce() -> Outputs + Send + 'static) -> Self {
        let slot = Arc::new(Mutex::new(Slot::default()));
        let done = Arc::clone(&slot);
        std::thread::spawn(move || {
            let result = work();
            let waker = {
                let mut s = done.lock().unwrap_or_else(|p| p.into_inner());
                s.result = Some(result);
                s.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        });
        Dispatch { slot }
    }
}

impl Future for Dispatch {
    type Output = Outputs;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Outputs> {
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

/// Wakes a thread blocked in [`block_on`].
struct Signal {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        *self.woken.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_one();
    }
}

/// Drives a future to completion on the calling thread.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let signal = Arc::new(Signal { woken: Mutex::new(false), cv: Condvar::new() });
    let waker = Waker::from(Arc::clone(&signal));
    let mut cx = TaskContext::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        let mut woken = signal.woken.lock().unwrap_or_else(|p| p.into_inner());
        while !*woken {
            woken = signal.cv.wait(woken).unwrap_or_else(|p| p.into_inner());
        }
        *woken = false;
    }
}
