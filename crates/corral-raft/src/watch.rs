//! [`OrderedWatch`]: openraft's watch channel, waking its waiters in the
//! order they began to wait.
//!
//! tokio's watch channel spreads its waiters over eight queues picked at
//! random, so the tasks woken by one change run in a random order. A real
//! node does not care; a simulation must replay a seed bit for bit, so
//! corral's runtime uses this channel: one queue, first come first woken.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::rt::watch::{RecvError, SendError, Watch, WatchReceiver, WatchSender};
use openraft::rt::{OptionalSend, OptionalSync};
use tokio::sync::Notify;

/// The watch channel of [`crate::CorralRuntime`].
pub struct OrderedWatch;

struct Shared<T> {
    /// The value, and how many times it changed.
    value: RwLock<(T, u64)>,
    notify: Notify,
    senders: AtomicUsize,
    receivers: AtomicUsize,
    closed: AtomicBool,
}

impl<T> Shared<T> {
    fn read(&self) -> RwLockReadGuard<'_, (T, u64)> {
        self.value.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, (T, u64)> {
        self.value.write().unwrap_or_else(|p| p.into_inner())
    }

    fn version(&self) -> u64 {
        self.read().1
    }
}

/// The sending half.
pub struct OrderedSender<T>(Arc<Shared<T>>);

/// A receiving half: it has seen the value up to some version.
pub struct OrderedReceiver<T> {
    shared: Arc<Shared<T>>,
    seen: u64,
}

/// A borrow of the watched value.
pub struct OrderedRef<'a, T>(RwLockReadGuard<'a, (T, u64)>);

impl<T> std::ops::Deref for OrderedRef<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0 .0
    }
}

impl Watch for OrderedWatch {
    type Sender<T: OptionalSend + OptionalSync> = OrderedSender<T>;
    type Receiver<T: OptionalSend + OptionalSync> = OrderedReceiver<T>;
    type Ref<'a, T: OptionalSend + 'a> = OrderedRef<'a, T>;

    fn channel<T: OptionalSend + OptionalSync>(init: T) -> (OrderedSender<T>, OrderedReceiver<T>) {
        let shared = Arc::new(Shared {
            value: RwLock::new((init, 0)),
            notify: Notify::new(),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
            closed: AtomicBool::new(false),
        });
        let receiver = OrderedReceiver {
            shared: shared.clone(),
            seen: 0,
        };
        (OrderedSender(shared), receiver)
    }
}

impl<T> Clone for OrderedSender<T> {
    fn clone(&self) -> Self {
        self.0.senders.fetch_add(1, Ordering::SeqCst);
        OrderedSender(self.0.clone())
    }
}

impl<T> Drop for OrderedSender<T> {
    fn drop(&mut self) {
        if self.0.senders.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.closed.store(true, Ordering::SeqCst);
            self.0.notify.notify_waiters();
        }
    }
}

impl<T: OptionalSend + OptionalSync> WatchSender<OrderedWatch, T> for OrderedSender<T> {
    fn send(&self, value: T) -> Result<(), SendError<T>> {
        // As tokio's: with no receiver left, the value is handed back.
        if self.0.receivers.load(Ordering::SeqCst) == 0 {
            return Err(SendError(value));
        }
        self.send_if_modified(|current| {
            *current = value;
            true
        });
        Ok(())
    }

    fn send_if_modified<F>(&self, modify: F) -> bool
    where
        F: FnOnce(&mut T) -> bool,
    {
        let modified = {
            let mut value = self.0.write();
            let modified = modify(&mut value.0);
            value.1 += u64::from(modified);
            modified
        };
        if modified {
            self.0.notify.notify_waiters();
        }
        modified
    }

    fn borrow_watched(&self) -> OrderedRef<'_, T> {
        OrderedRef(self.0.read())
    }

    fn subscribe(&self) -> OrderedReceiver<T> {
        self.0.receivers.fetch_add(1, Ordering::SeqCst);
        OrderedReceiver {
            shared: self.0.clone(),
            seen: self.0.version(),
        }
    }
}

impl<T> Clone for OrderedReceiver<T> {
    fn clone(&self) -> Self {
        self.shared.receivers.fetch_add(1, Ordering::SeqCst);
        OrderedReceiver {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

impl<T> Drop for OrderedReceiver<T> {
    fn drop(&mut self) {
        self.shared.receivers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<T: OptionalSend + OptionalSync> WatchReceiver<OrderedWatch, T> for OrderedReceiver<T> {
    async fn changed(&mut self) -> Result<(), RecvError> {
        loop {
            // Registered before the check, so a change between the check
            // and the wait still wakes this receiver.
            let notified = self.shared.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let version = self.shared.version();
            if version != self.seen {
                self.seen = version;
                return Ok(());
            }
            if self.shared.closed.load(Ordering::SeqCst) {
                return Err(RecvError(()));
            }
            notified.await;
        }
    }

    fn borrow_watched(&self) -> OrderedRef<'_, T> {
        OrderedRef(self.shared.read())
    }

    fn borrow_and_update(&mut self) -> OrderedRef<'_, T> {
        let value = self.shared.read();
        self.seen = value.1;
        OrderedRef(value)
    }
}
