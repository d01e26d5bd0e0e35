//! The shutdown signal (mini-redis's `shutdown.rs`): set once, seen by the accept loop and
//! by every connection waiting for a request.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Whether shutdown has begun, and a wake-up for those waiting on it.
#[derive(Debug, Default)]
pub(crate) struct Shutdown {
    begun: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    /// Starts the shutdown and wakes every waiter; later calls do nothing more.
    pub(crate) fn begin(&self) {
        self.begun.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Whether [`begin`](Self::begin) was called.
    pub(crate) fn is_begun(&self) -> bool {
        self.begun.load(Ordering::Acquire)
    }

    /// Returns once shutdown has begun (at once if it already had).
    pub(crate) async fn wait(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_begun() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::Shutdown;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_waiter_wakes_when_shutdown_begins_and_a_late_one_returns_at_once() {
        let s = std::sync::Arc::new(Shutdown::default());
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        s.begin();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the waiter wakes")
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), s.wait())
            .await
            .expect("a late waiter returns at once");
    }
}
