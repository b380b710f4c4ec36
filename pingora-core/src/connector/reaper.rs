//! The reaper: one background task per pool that closes idle connections when their
//! idle timeout passes or their peer closes them, without waiting for the next request
//! to look at the pool.
//!
//! # Design and cost
//!
//! Nothing per request and nothing per connection: no task, no timer, no allocation.
//!
//! - **One task per pool**, started by the first connection the pool keeps (on the
//!   runtime of whoever gives it back, so a pool built before any runtime works), and
//!   stopped when the pool is dropped. If its runtime shuts down, the next connection
//!   kept starts it again on the current one.
//! - **Readability instead of polling.** When a connection is parked, the pool
//!   registers the reaper's waker as the socket's read waker (tokio's
//!   `poll_read_ready`, see [`crate::protocols::Stream::poll_read_ready`]): no system
//!   call, the socket is already in the runtime's epoll set. An idle upstream
//!   connection turns readable only when the origin closes it (or sends something
//!   unasked), so the waker fires only then. The next request on the connection
//!   replaces it with its own. HTTP/2 connections are watched the same way through
//!   [`H2ClientConnection::poll_closed`](crate::protocols::http::v2::H2ClientConnection::poll_closed).
//! - **One timer for the whole pool.** The reaper sleeps until the earliest idle
//!   deadline it saw. A connection parked later expires later (same timeout), so
//!   parking touches no timer: the pool wakes the reaper only when a new deadline is
//!   earlier than the one it sleeps towards (the pool was empty, or peers have
//!   different timeouts). In steady traffic that is about one wake per timeout period.
//! - **A wake scans the pool**: O(idle connections), bounded by the pool size, under
//!   the pool's lock but with no system call for a connection that is not readable,
//!   and closing the dead ones after the lock is released.
//!
//! Measured (callgrind, a take-and-give-back loop over 16 loopback HTTP/1 connections,
//! as in `benches/benches/pool.rs`): 1,605 instructions per round before the reaper,
//! 1,697 with it: the waker registration and the deadline comparison, no system call,
//! no allocation. The alternative, one watcher task (and timer) per parked connection,
//! costs a task spawn (an allocation), a timer registration and a cancellation on every
//! request of a keep-alive connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Instant;

use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// A pool a reaper looks after.
pub(crate) trait Reap: Send + Sync + 'static {
    /// Drops the idle connections whose timeout passed at `now` or that can no longer
    /// be used, registers `cx`'s waker on the others, and returns when the next of
    /// them expires (`None`: no idle connection is left).
    fn reap(&self, now: Instant, cx: &mut Context<'_>) -> Option<Instant>;
}

/// The reaper's waker: wakes its task, wherever it is woken from (a socket, a pool).
struct Signal {
    notify: Notify,
    /// Whether the task is running (set before it is spawned, cleared when it ends or
    /// is dropped with its runtime).
    running: AtomicBool,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.notify.notify_one();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notify.notify_one();
    }
}

/// The handle a pool keeps on its reaper task; dropping it stops the task.
pub(crate) struct Reaper {
    signal: Arc<Signal>,
    waker: Waker,
    task: Mutex<Option<AbortHandle>>,
}

impl Reaper {
    /// A reaper whose task is not started yet (see [`Reaper::ensure_running`]).
    pub(crate) fn new() -> Self {
        let signal = Arc::new(Signal {
            notify: Notify::new(),
            running: AtomicBool::new(false),
        });
        Reaper {
            waker: Waker::from(Arc::clone(&signal)),
            signal,
            task: Mutex::new(None),
        }
    }

    /// The waker to register on parked connections: it makes the task scan the pool.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Makes the task scan the pool now.
    pub(crate) fn wake(&self) {
        self.signal.notify.notify_one();
    }

    /// Starts the task for `pool` on the current runtime unless it runs already (one
    /// atomic load then). Outside a runtime nothing happens: the pool then drops dead
    /// connections only when it is asked for one.
    pub(crate) fn ensure_running<R: Reap>(&self, pool: &Arc<R>) {
        if self.signal.running.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.signal.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let running = Running(Arc::clone(&self.signal));
        let task = runtime.spawn(run(Arc::downgrade(pool), self.waker.clone(), running));
        let mut slot = self.task.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(task.abort_handle());
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let task = self.task.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

/// Clears the running flag when the task ends, is aborted or is dropped with its
/// runtime, so that the next connection kept starts it again.
struct Running(Arc<Signal>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

/// The task: scan, then sleep until the next deadline or a wake, until the pool is gone.
async fn run<R: Reap>(pool: Weak<R>, waker: Waker, running: Running) {
    let signal = &running.0;
    loop {
        let next = {
            let Some(pool) = pool.upgrade() else { return };
            pool.reap(Instant::now(), &mut Context::from_waker(&waker))
        };
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = signal.notify.notified() => {}
                }
            }
            None => signal.notify.notified().await,
        }
    }
}
