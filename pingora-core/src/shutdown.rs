//! Telling running tasks that the server is shutting down, and counting what is still in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Accepting and serving.
    Running,
    /// No longer accepting; in-flight requests finish, and each keep-alive connection
    /// is closed after its next response.
    Draining,
    /// The drain is over: idle connections close now.
    Closing,
}

/// A task's view of the server phase.
#[derive(Debug, Clone)]
pub struct ShutdownWatch {
    rx: watch::Receiver<Phase>,
}

impl ShutdownWatch {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.rx.borrow()
    }

    /// Whether the server has begun shutting down.
    pub fn is_draining(&self) -> bool {
        self.phase() >= Phase::Draining
    }

    /// Waits until the phase is at least `phase`. Cancel-safe.
    pub async fn reached(&mut self, phase: Phase) {
        // An error means the controller is gone, which only happens at exit.
        let _ = self.rx.wait_for(|p| *p >= phase).await;
    }
}

/// The owner's side: moves the phase forward and counts live connections.
#[derive(Debug, Clone)]
pub struct ShutdownController {
    tx: Arc<watch::Sender<Phase>>,
    accepting: Arc<watch::Sender<bool>>,
    handed_over: Arc<std::sync::atomic::AtomicBool>,
    live: Arc<LiveCount>,
}

#[derive(Debug, Default)]
struct LiveCount {
    n: AtomicUsize,
    zero: Notify,
}

impl Default for ShutdownController {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownController {
    /// A controller in the `Running` phase with no live connections.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(Phase::Running);
        let (accepting, _) = watch::channel(true);
        ShutdownController {
            tx: Arc::new(tx),
            accepting: Arc::new(accepting),
            handed_over: Arc::default(),
            live: Arc::new(LiveCount::default()),
        }
    }

    /// Records that a new instance took the listeners and serves: from then on this
    /// instance only drains (a grace period may still accept on TCP, but a socket that
    /// must have one reader, such as QUIC's UDP socket, stays with the new instance).
    pub fn set_handed_over(&self) {
        self.handed_over
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether [`ShutdownController::set_handed_over`] was called.
    pub fn handed_over(&self) -> bool {
        self.handed_over.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A watch for tasks.
    pub fn watch(&self) -> ShutdownWatch {
        ShutdownWatch {
            rx: self.tx.subscribe(),
        }
    }

    /// Pauses (false) or resumes (true) accepting new connections while `Running`:
    /// used while a new instance that took the listeners starts up, so that this one can
    /// go on if it never does.
    pub fn set_accepting(&self, accepting: bool) {
        self.accepting.send_replace(accepting);
    }

    /// A gate for accept loops, following [`ShutdownController::set_accepting`].
    pub fn accept_gate(&self) -> AcceptGate {
        AcceptGate {
            rx: self.accepting.subscribe(),
        }
    }

    /// Moves to `phase` (never backwards).
    pub fn advance(&self, phase: Phase) {
        self.tx.send_if_modified(|p| {
            if phase > *p {
                *p = phase;
                true
            } else {
                false
            }
        });
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.tx.borrow()
    }

    /// Counts one live connection until the guard is dropped.
    pub fn track(&self) -> LiveGuard {
        self.live.n.fetch_add(1, Ordering::AcqRel);
        LiveGuard {
            live: self.live.clone(),
        }
    }

    /// How many connections are live.
    pub fn live(&self) -> usize {
        self.live.n.load(Ordering::Acquire)
    }

    /// Waits until no connection is live or `timeout` passes; true when none is left.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.live.zero.notified();
            if self.live() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.live() == 0;
            }
        }
    }
}

/// Keeps a connection counted as live while it exists.
#[derive(Debug)]
pub struct LiveGuard {
    live: Arc<LiveCount>,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.live.n.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.live.zero.notify_waiters();
        }
    }
}

/// An accept loop's view of whether it should accept now.
#[derive(Debug, Clone)]
pub struct AcceptGate {
    rx: watch::Receiver<bool>,
}

impl AcceptGate {
    /// Waits until accepting is paused. Cancel-safe.
    pub async fn paused(&mut self) {
        let _ = self.rx.wait_for(|a| !*a).await;
    }

    /// Waits until accepting is allowed. Cancel-safe.
    pub async fn resumed(&mut self) {
        let _ = self.rx.wait_for(|a| *a).await;
    }

    /// Waits until accepting is paused or resumed, and says whether it is allowed now.
    /// Unlike [`AcceptGate::paused`], it does not miss a pause that a resume followed
    /// before this task ran (a hand-over, then a grace period). Cancel-safe.
    pub async fn changed(&mut self) -> bool {
        if self.rx.changed().await.is_err() {
            // The controller is gone: nothing will change again.
            std::future::pending::<()>().await;
        }
        *self.rx.borrow_and_update()
    }
}
