//! Named leases on top of a [`Storage`]'s lease primitives.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rand::Rng;
use tokio::{sync::oneshot, task::JoinHandle, time::Instant};

use crate::{Key, Storage, StorageError};

/// The shortest ttl accepted; shorter ones are raised to it so that the
/// refresh task (every ttl/3) does not spin.
pub const MIN_LEASE_TTL: Duration = Duration::from_millis(150);

/// Lease operations for any shared [`Storage`]: `Arc<MemoryStorage>`,
/// `Arc<dyn Storage>`, …
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::{sync::Arc, time::Duration};
/// use cert_store::{Key, Leases, MemoryStorage};
///
/// let store = Arc::new(MemoryStorage::new());
/// let name = Key::new("issue/shop.example.com").unwrap();
/// let guard = store.lock(&name, Duration::from_secs(30)).await.unwrap();
/// // Another holder cannot take it while the guard lives.
/// assert!(store.try_lock(&name, Duration::from_secs(30)).await.unwrap().is_none());
/// drop(guard); // released in the background; `guard.release().await` waits for it
/// # });
/// ```
pub trait Leases {
    /// Waits until the lease `name` is free, takes it for `ttl`, and returns a
    /// guard that renews it every `ttl / 3` until dropped or released.
    fn lock(
        &self,
        name: &Key,
        ttl: Duration,
    ) -> impl Future<Output = Result<LeaseGuard, StorageError>> + Send;

    /// Like [`lock`](Leases::lock) but gives up after `timeout` with
    /// [`StorageError::LeaseTimeout`].
    fn lock_timeout(
        &self,
        name: &Key,
        ttl: Duration,
        timeout: Duration,
    ) -> impl Future<Output = Result<LeaseGuard, StorageError>> + Send;

    /// Takes the lease if it is free right now; `None` if another holds it.
    fn try_lock(
        &self,
        name: &Key,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<LeaseGuard>, StorageError>> + Send;
}

impl<S: Storage + ?Sized> Leases for Arc<S> {
    async fn lock(&self, name: &Key, ttl: Duration) -> Result<LeaseGuard, StorageError> {
        acquire(self, name, ttl, None).await
    }

    async fn lock_timeout(
        &self,
        name: &Key,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<LeaseGuard, StorageError> {
        acquire(self, name, ttl, Some(Instant::now() + timeout)).await
    }

    async fn try_lock(&self, name: &Key, ttl: Duration) -> Result<Option<LeaseGuard>, StorageError> {
        let ttl = ttl.max(MIN_LEASE_TTL);
        let holder = new_holder_id();
        if self.try_acquire_lease(name, &holder, ttl).await? {
            Ok(Some(LeaseGuard::start(Arc::clone(self), name.clone(), holder, ttl)))
        } else {
            Ok(None)
        }
    }
}

async fn acquire<S: Storage + ?Sized>(
    storage: &Arc<S>,
    name: &Key,
    ttl: Duration,
    deadline: Option<Instant>,
) -> Result<LeaseGuard, StorageError> {
    let ttl = ttl.max(MIN_LEASE_TTL);
    let holder = new_holder_id();
    let mut wait = Duration::from_millis(5);
    loop {
        if storage.try_acquire_lease(name, &holder, ttl).await? {
            return Ok(LeaseGuard::start(Arc::clone(storage), name.clone(), holder, ttl));
        }
        let jittered = wait.mul_f64(rand::rng().random_range(0.5..1.5));
        if let Some(deadline) = deadline
            && Instant::now() + jittered >= deadline
        {
            return Err(StorageError::LeaseTimeout { name: name.to_string() });
        }
        tokio::time::sleep(jittered).await;
        wait = (wait * 2).min(Duration::from_millis(250));
    }
}

fn new_holder_id() -> String {
    hex::encode(rand::rng().random::<[u8; 16]>())
}

/// Proof that a lease is held. Renews the lease in the background every
/// `ttl / 3`; releases it when dropped (in the background) or on
/// [`release`](LeaseGuard::release) (awaited).
#[must_use = "the lease is released as soon as the guard is dropped"]
pub struct LeaseGuard {
    name: Key,
    held: Arc<AtomicBool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("name", &self.name)
            .field("held", &self.is_held())
            .finish_non_exhaustive()
    }
}

impl LeaseGuard {
    fn start<S: Storage + ?Sized>(storage: Arc<S>, name: Key, holder: String, ttl: Duration) -> Self {
        let held = Arc::new(AtomicBool::new(true));
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let task_held = Arc::clone(&held);
        let task_name = name.clone();
        let task = tokio::spawn(async move {
            let period = ttl / 3;
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    () = tokio::time::sleep(period) => {
                        match storage.renew_lease(&task_name, &holder, ttl).await {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::warn!(lease = %task_name, "lease lost: another holder took it after it expired");
                                task_held.store(false, Ordering::SeqCst);
                                return;
                            }
                            Err(err) => {
                                tracing::warn!(lease = %task_name, error = %err, "lease renewal failed; retrying");
                            }
                        }
                    }
                }
            }
            task_held.store(false, Ordering::SeqCst);
            if let Err(err) = storage.release_lease(&task_name, &holder).await {
                tracing::warn!(lease = %task_name, error = %err, "lease release failed; it will expire");
            }
        });
        Self { name, held, stop: Some(stop_tx), task: Some(task) }
    }

    /// The lease's name.
    #[must_use]
    pub fn name(&self) -> &Key {
        &self.name
    }

    /// Whether the lease is still ours. It turns `false` if a renewal found
    /// that another holder took the lease (this process stalled past the ttl);
    /// long jobs should check it before committing their result.
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// Releases the lease and waits until the backend has freed it.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The refresh task sees the signal and releases the lease.
            let _ = stop.send(());
        }
    }
}
