//! [`CorralRuntime`]: openraft's tokio runtime, with a random number
//! generator that a simulation can seed, and a watch channel that wakes
//! its waiters in order ([`crate::watch::OrderedWatch`]).
//!
//! openraft draws its election timeouts and its tick phase from the
//! runtime's generator. A real node draws from the operating system's
//! entropy, as openraft's tokio runtime does. A simulation calls
//! [`seed_thread_rng`] on its one thread, so that every draw follows from
//! its seed and a run replays bit for bit. Everything else is tokio's.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use openraft::rt::{AsyncRuntime, OptionalSend};
use openraft_rt_tokio::{TokioInstant, TokioMpsc, TokioMutex, TokioOneshot, TokioRuntime};
use rand010::rngs::SmallRng;
use rand010::SeedableRng;

thread_local! {
    /// The next seed of this thread's draws, when a simulation set one.
    static SEED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Makes this thread's draws follow from `seed` (`None`: from the operating
/// system again). For a simulation, which runs on one thread.
pub fn seed_thread_rng(seed: Option<u64>) {
    SEED.with(|cell| cell.set(seed));
}

/// The next seed of a seeded thread: SplitMix64, so that consecutive
/// draws are independent.
fn next_seed(seed: u64) -> u64 {
    let z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// openraft's tokio runtime with a seedable generator.
pub struct CorralRuntime {
    inner: TokioRuntime,
}

impl std::fmt::Debug for CorralRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorralRuntime").finish()
    }
}

impl AsyncRuntime for CorralRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = tokio::time::error::Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = tokio::time::Timeout<T>;
    type ThreadLocalRng = SmallRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        match SEED.with(|cell| cell.get()) {
            Some(seed) => {
                SEED.with(|cell| cell.set(Some(next_seed(seed))));
                SmallRng::seed_from_u64(seed)
            }
            None => rand010::make_rng(),
        }
    }

    type Mpsc = TokioMpsc;
    type Watch = crate::watch::OrderedWatch;
    type Oneshot = TokioOneshot;
    type Mutex<T: OptionalSend + 'static> = TokioMutex<T>;

    fn new(threads: usize) -> Self {
        CorralRuntime {
            inner: TokioRuntime::new(threads),
        }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.inner.block_on(future)
    }
}
