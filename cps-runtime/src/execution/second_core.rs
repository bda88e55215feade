//! An opt-in second core for the large matrix kernels, with the same
//! training trajectory as one core.
//!
//! A model that trains one tree (or one sequence) per step cannot batch
//! its matrix products, and each product streams its weight matrix from
//! memory. With [`SecondCore::start`], the matrix kernels run on the
//! calling thread split their rows with a partner thread: the partner
//! always takes the first half of every matrix's rows and the caller the
//! second, so each core keeps re-reading the same half, which on a machine
//! with a private L2 cache per core can stay in that cache.
//!
//! Unlike data-parallel training, nothing about the optimisation changes:
//! each row of a product is computed exactly as before, and only the
//! gradient of a product's input (`Mᵀ·g`) adds its two halves' partial
//! sums in a different order (a rounding-level difference).
//!
//! The partner spins while it expects work (for `SPIN_BEFORE_SLEEP` after
//! its last job) and then sleeps, so it costs a core only while training
//! runs (see `docs/performance.md`).

use std::any::Any;
use std::cell::Cell;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the partner spins after a job before it sleeps: a job posted
/// while it spins needs no wake-up.
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(200);

/// Products smaller than this many matrix elements stay on one core: the
/// hand-off to the partner has a fixed cost, which the half of a smaller
/// product does not repay (see `docs/performance.md`).
pub(crate) const MIN_SPLIT_ELEMENTS: usize = 16 * 1024;

/// A job handed to the partner: a pointer to the caller's `&mut dyn
/// FnMut()`, valid until the caller sees the job finished.
type Job<'a> = &'a mut (dyn FnMut() + Send + 'a);

/// State shared by the caller and its partner.
struct Shared {
    /// Jobs posted so far; the partner runs job `n` when this reaches `n`.
    posted: AtomicU64,
    /// Jobs finished so far.
    finished: AtomicU64,
    /// The current job: a `*mut Job`, written before `posted` moves.
    job: AtomicPtr<()>,
    /// A panic of the partner's half, handed back to the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Set while the partner is (about to be) parked.
    sleeping: AtomicBool,
    /// Set when the partner should exit.
    stop: AtomicBool,
}

struct Partner {
    shared: Arc<Shared>,
    thread: JoinHandle<()>,
}

thread_local! {
    /// This thread's partner, while a [`SecondCore`] guard lives.
    static PARTNER: Cell<Option<&'static Partner>> = const { Cell::new(None) };
    /// True while this thread waits for a job of its partner (a kernel
    /// inside the caller's half then runs alone).
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// While this guard lives, large matrix kernels on the current thread
/// split their rows with a partner thread on another core (see the
/// [module documentation](self)). Dropping it stops the partner.
///
/// ```
/// use cps_runtime::SecondCore;
///
/// let _second_core = SecondCore::start();
/// // ... train as usual on this thread ...
/// ```
///
/// Starting it again on a thread that already has a partner does nothing
/// (the inner guard leaves the partner to the outer one).
#[must_use = "the partner stops when the guard is dropped"]
pub struct SecondCore {
    partner: Option<&'static Partner>,
    /// The partner belongs to the thread that started it.
    _not_send: PhantomData<*const ()>,
}

impl SecondCore {
    /// Starts a partner thread for the current thread's matrix kernels.
    pub fn start() -> SecondCore {
        if PARTNER.with(Cell::get).is_some() {
            return SecondCore {
                partner: None,
                _not_send: PhantomData,
            };
        }
        let shared = Arc::new(Shared {
            posted: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            panic: Mutex::new(None),
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("cps-second-core".into())
                .spawn(move || partner_loop(&shared))
                .expect("cps: could not start the second-core thread")
        };
        // Leaked for the guard's lifetime and reclaimed in `drop`: the
        // thread-local needs a `'static` reference.
        let partner: &'static Partner = Box::leak(Box::new(Partner { shared, thread }));
        PARTNER.with(|p| p.set(Some(partner)));
        SecondCore {
            partner: Some(partner),
            _not_send: PhantomData,
        }
    }

    /// Whether kernels on the current thread currently use a partner.
    pub fn is_active() -> bool {
        PARTNER.with(Cell::get).is_some()
    }
}

impl Drop for SecondCore {
    fn drop(&mut self) {
        let Some(partner) = self.partner.take() else {
            return;
        };
        PARTNER.with(|p| p.set(None));
        partner.shared.stop.store(true, Ordering::SeqCst);
        partner.thread.thread().unpark();
        // SAFETY: `partner` came from `Box::leak` in `start`, and the
        // thread-local no longer hands it out; no job is in flight (jobs
        // are waited for before `split_with_partner` returns).
        let partner = unsafe { Box::from_raw(partner as *const Partner as *mut Partner) };
        let Partner { thread, .. } = *partner;
        // The partner's loop never panics (jobs' panics are caught).
        let _ = thread.join();
    }
}

fn partner_loop(shared: &Shared) {
    let mut seen = 0u64;
    loop {
        let mut idle_since = Instant::now();
        let mut spins = 0u32;
        while shared.posted.load(Ordering::SeqCst) == seen {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && idle_since.elapsed() > SPIN_BEFORE_SLEEP {
                shared.sleeping.store(true, Ordering::SeqCst);
                // Re-check after announcing sleep: the caller reads
                // `sleeping` after posting, so one of the two sees the
                // other (and an unpark before park makes park return).
                if shared.posted.load(Ordering::SeqCst) == seen
                    && !shared.stop.load(Ordering::SeqCst)
                {
                    thread::park();
                }
                shared.sleeping.store(false, Ordering::SeqCst);
                idle_since = Instant::now();
            }
        }
        seen += 1;
        let job = shared.job.load(Ordering::Acquire) as *mut Job<'static>;
        // SAFETY: the caller stored a pointer to a live `Job` before
        // posting job `seen`, and keeps it alive (and does not touch it)
        // until it sees `finished == seen`, which is stored below after
        // the last use. Jobs run one at a time.
        let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { (*job)() }));
        if let Err(payload) = outcome {
            *shared.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload);
        }
        shared.finished.store(seen, Ordering::Release);
    }
}

/// Runs `first` on the partner (when this thread has one and it is free)
/// and `second` on the current thread, and returns when both are done.
/// Without a partner both run here, `first` first. A panic in either is
/// resumed here after both have finished.
pub(crate) fn split_with_partner<F, S, R>(first: F, second: S) -> R
where
    F: FnOnce() + Send,
    S: FnOnce() -> R,
{
    let partner = PARTNER.with(Cell::get);
    let Some(partner) = partner.filter(|_| !BUSY.with(Cell::get)) else {
        first();
        return second();
    };
    let shared = &*partner.shared;
    let mut first = Some(first);
    let mut run_first = move || {
        if let Some(first) = first.take() {
            first();
        }
    };
    let mut job: Job<'_> = &mut run_first;
    shared
        .job
        .store(&mut job as *mut Job<'_> as *mut (), Ordering::Release);
    let ticket = shared.posted.fetch_add(1, Ordering::SeqCst) + 1;
    if shared.sleeping.load(Ordering::SeqCst) {
        partner.thread.thread().unpark();
    }

    /// Waits for the partner's job, also when `second` unwinds: the job
    /// borrows this stack frame.
    struct WaitForPartner<'s>(&'s Shared, u64);
    impl Drop for WaitForPartner<'_> {
        fn drop(&mut self) {
            while self.0.finished.load(Ordering::Acquire) < self.1 {
                std::hint::spin_loop();
            }
            BUSY.with(|b| b.set(false));
        }
    }
    BUSY.with(|b| b.set(true));
    let wait = WaitForPartner(shared, ticket);
    let result = second();
    drop(wait);
    let panic = shared
        .panic
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(payload) = panic {
        resume_unwind(payload);
    }
    result
}

/// Where a product of `rows` rows and `elements` matrix elements splits:
/// `Some(rows the partner takes)` when it is large enough to share.
pub(crate) fn split_point(rows: usize, elements: usize) -> Option<usize> {
    (rows >= 2 && elements >= MIN_SPLIT_ELEMENTS && SecondCore::is_active()).then_some(rows / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_runs_both_halves_with_and_without_a_partner() {
        for with_partner in [false, true] {
            let _core = with_partner.then(SecondCore::start);
            assert_eq!(SecondCore::is_active(), with_partner);
            let (mut left, mut right) = (vec![0u64; 1000], vec![0u64; 1000]);
            for round in 0..200u64 {
                let sum = split_with_partner(
                    || left.iter_mut().for_each(|v| *v += round),
                    || {
                        right.iter_mut().for_each(|v| *v += 2 * round);
                        round
                    },
                );
                assert_eq!(sum, round);
            }
            let total = 199 * 200 / 2;
            assert!(left.iter().all(|&v| v == total));
            assert!(right.iter().all(|&v| v == 2 * total));
        }
        assert!(!SecondCore::is_active());
    }

    #[test]
    fn a_panic_of_the_partner_reaches_the_caller_after_both_halves() {
        let _core = SecondCore::start();
        let done = AtomicBool::new(false);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            split_with_partner(
                || panic!("partner half failed"),
                || done.store(true, Ordering::SeqCst),
            )
        }));
        let payload = outcome.expect_err("the partner's panic is resumed");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"partner half failed"));
        assert!(done.load(Ordering::SeqCst));
        // The partner still works afterwards.
        let mut x = 0;
        split_with_partner(|| {}, || x = 1);
        assert_eq!(x, 1);
    }

    #[test]
    fn a_panic_of_the_caller_waits_for_the_partner() {
        let _core = SecondCore::start();
        let partner_done = AtomicBool::new(false);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            split_with_partner(
                || {
                    thread::sleep(Duration::from_millis(20));
                    partner_done.store(true, Ordering::SeqCst);
                },
                || panic!("caller half failed"),
            )
        }));
        assert!(outcome.is_err());
        assert!(partner_done.load(Ordering::SeqCst));
    }

    #[test]
    fn the_partner_wakes_after_sleeping_and_nested_starts_share_it() {
        let outer = SecondCore::start();
        thread::sleep(Duration::from_millis(5)); // past the spin phase
        let inner = SecondCore::start();
        let mut hit = false;
        split_with_partner(|| thread::sleep(Duration::from_millis(1)), || hit = true);
        drop(inner);
        assert!(SecondCore::is_active() && hit);
        drop(outer);
        assert!(!SecondCore::is_active());
    }
}
