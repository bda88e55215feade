//! Products of a matrix by a vector batched across the sides of a
//! [`join`](fn@crate::join): where each waits, and how a batch runs.
//!
//! A side of a join runs as a coroutine (see `join/sides.rs`). A product
//! of a large matrix by a vector inside a side does not run at once: it is
//! queued here and the side gives control back to its join ([`block`]).
//! When every side is waiting, the join runs the queue ([`run_all`]): the
//! products with the same matrix run as one batch, reading the matrix
//! once, each with the same bits as a product computed alone.

use std::cell::{Cell, RefCell};

use corosensei::Yielder;

use super::stack::{self, Bounds};
use crate::element::Element;
use crate::kernels;

/// Why a side gave control back to its join.
pub(crate) enum Event {
    /// It waits for a batch of products.
    Blocked,
    /// Its forward pass is done: its result is in its slot.
    Ready,
}

/// What a side yields through.
pub(crate) type SideYielder = Yielder<(), Event>;

/// The default of [`set_batch_threshold`]: a matrix of fewer elements
/// (64 KiB of `f32`) is about the size of an L1 cache, so reading it again
/// costs less than suspending a side for a batch.
pub const DEFAULT_BATCH_THRESHOLD: usize = 16 * 1024;

thread_local! {
    static BATCH_THRESHOLD: Cell<usize> = const { Cell::new(DEFAULT_BATCH_THRESHOLD) };
    /// The yielder of the side running on this thread, if any.
    static CURRENT: Cell<Option<*const SideYielder>> = const { Cell::new(None) };
}

/// Sets, for the calling thread, the smallest matrix (in elements) whose
/// products with a vector wait in a side of a [`join`](fn@crate::join) for
/// the other products with it; smaller ones are multiplied at once. The
/// default is [`DEFAULT_BATCH_THRESHOLD`]; `1` batches every product,
/// `usize::MAX` none. Returns the previous threshold.
///
/// ```
/// use cps_runtime::join::{DEFAULT_BATCH_THRESHOLD, set_batch_threshold};
///
/// let before = set_batch_threshold(1);
/// assert_eq!(before, DEFAULT_BATCH_THRESHOLD);
/// assert_eq!(set_batch_threshold(before), 1);
/// ```
pub fn set_batch_threshold(elements: usize) -> usize {
    BATCH_THRESHOLD.with(|threshold| threshold.replace(elements))
}

/// Whether a product with a matrix of `elements` elements of `A`,
/// computed here, waits for a batch: in a side of a join, for a matrix of
/// at least the thread's [threshold](set_batch_threshold), of an element
/// type with a queue (`f32`, `f64`; [`Dual`](crate::element::Dual)
/// products run at once).
#[inline]
pub(crate) fn batches<A: Element>(elements: usize) -> bool {
    elements > 0
        && elements >= BATCH_THRESHOLD.with(Cell::get)
        && inside()
        && crate::memory::keeps_state::<A>()
}

/// Whether the running code is a side of a join.
#[inline]
pub(crate) fn inside() -> bool {
    CURRENT.with(Cell::get).is_some()
}

/// What identifies the stack running now: the side (if any) and the
/// bounds [`stack::grow`] measures against. Saved across every switch.
#[derive(Clone, Copy)]
pub(crate) struct Running {
    side: Option<*const SideYielder>,
    bounds: Bounds,
}

impl Running {
    /// What runs now.
    pub(crate) fn now() -> Self {
        Running {
            side: CURRENT.with(Cell::get),
            bounds: stack::bounds(),
        }
    }

    /// What runs at the start of a side: its yielder, and its stack's
    /// bounds (lowest and highest address).
    pub(crate) fn side(yielder: &SideYielder, bounds: (usize, usize)) -> Self {
        Running {
            side: Some(yielder as *const _),
            bounds,
        }
    }

    /// Makes this what runs.
    pub(crate) fn restore(self) {
        CURRENT.with(|current| current.set(self.side));
        stack::set_bounds(self.bounds);
    }
}

/// Gives control back to the running side's join, and resumes here when
/// the join says so.
pub(crate) fn suspend(event: Event) {
    let running = Running::now();
    let yielder = running.side.expect("suspended outside a side of a join");
    // SAFETY: `yielder` is the running side's own yielder (set when it
    // started, restored after every switch), valid while it runs.
    unsafe { (*yielder).suspend(event) };
    running.restore();
}

/// Waits, in a side, until the batch of the product just queued has run.
pub(crate) fn block() {
    suspend(Event::Blocked);
}

/// One waiting product: `y = M·x`, or `y = Mᵀ·x` when `transposed` (`M`
/// row-major). The slices belong to a suspended side, which resumes only
/// once the product is written.
struct Request<A> {
    transposed: bool,
    m: *const A,
    m_len: usize,
    x: *const A,
    x_len: usize,
    y: *mut A,
    y_len: usize,
}

thread_local! {
    static F32: RefCell<Vec<Request<f32>>> = const { RefCell::new(Vec::new()) };
    static F64: RefCell<Vec<Request<f64>>> = const { RefCell::new(Vec::new()) };
}

#[cfg(test)]
thread_local! {
    /// Every batch run on this thread: whether transposed, and its size.
    static BATCHES: RefCell<Vec<(bool, usize)>> = const { RefCell::new(Vec::new()) };
}

/// The batches run on this thread since the last call: whether each was
/// transposed, and how many products it held.
#[cfg(test)]
pub(crate) fn take_batches() -> Vec<(bool, usize)> {
    BATCHES.with(|b| std::mem::take(&mut *b.borrow_mut()))
}

/// Runs `f` on this thread's queue for `A`.
fn with<A: Element, R>(f: impl FnOnce(&mut Vec<Request<A>>) -> R) -> R {
    crate::memory::per_element::<A, _, _, _, R>(&F32, &F64, f)
        .expect("the thread's queue of products is free")
}

/// Writes `y = M·x` (`transposed`: `y = Mᵀ·x`) for a `y.len() × x.len()`
/// (`transposed`: `x.len() × y.len()`) row-major `M`, once the running
/// side's batch has run: the side waits until then. Only where
/// [`batches`] says so.
#[inline]
pub(crate) fn batched_product<A: Element>(transposed: bool, m: &[A], x: &[A], y: &mut [A]) {
    debug_assert!(batches::<A>(m.len()) && m.len() == x.len() * y.len());
    let request = Request {
        transposed,
        m: m.as_ptr(),
        m_len: m.len(),
        x: x.as_ptr(),
        x_len: x.len(),
        y: y.as_mut_ptr(),
        y_len: y.len(),
    };
    with(|queue: &mut Vec<Request<A>>| queue.push(request));
    // A side dropped while it waits (another side panicked) unwinds from
    // here: its request must not outlive the slices it points into.
    let withdraw = Withdraw(y.as_mut_ptr());
    block();
    std::mem::forget(withdraw);
}

/// Takes a waiting request (identified by its output) off the queue when
/// dropped: only while its side unwinds, since a batch takes the request
/// off before the side resumes.
struct Withdraw<A: Element>(*mut A);

impl<A: Element> Drop for Withdraw<A> {
    fn drop(&mut self) {
        let y = self.0;
        with(|queue: &mut Vec<Request<A>>| queue.retain(|r| r.y != y));
    }
}

/// How many products wait on this thread.
#[cfg(test)]
pub(crate) fn waiting<A: Element>() -> usize {
    with(|queue: &mut Vec<Request<A>>| queue.len())
}

/// Runs every waiting product, those with the same matrix (address and
/// shape) and direction as one batch.
pub(crate) fn run_all() {
    run::<f32>();
    run::<f64>();
}

fn run<A: Element>() {
    let mut requests = with(std::mem::take::<Vec<Request<A>>>);
    if requests.is_empty() {
        return;
    }
    // Stable: within a batch, the products keep the order they came in.
    requests.sort_by_key(|r| (r.m as usize, r.m_len, r.x_len, r.transposed));
    for batch in requests.chunk_by(|a, b| {
        (a.m, a.m_len, a.x_len, a.transposed) == (b.m, b.m_len, b.x_len, b.transposed)
    }) {
        let first = &batch[0];
        #[cfg(test)]
        BATCHES.with(|b| b.borrow_mut().push((first.transposed, batch.len())));
        // SAFETY: every pointer comes from a slice of a side suspended in
        // `product` until this batch has run, so each is valid for its
        // length; the outputs are distinct `&mut` slices of distinct
        // requests (a side waits for one product at a time), and no output
        // overlaps a matrix or an input (they were borrowed apart).
        let (m, xs, mut ys) = unsafe {
            let m = std::slice::from_raw_parts(first.m, first.m_len);
            let xs: Vec<&[A]> = batch
                .iter()
                .map(|r| std::slice::from_raw_parts(r.x, r.x_len))
                .collect();
            let ys: Vec<&mut [A]> = batch
                .iter()
                .map(|r| std::slice::from_raw_parts_mut(r.y, r.y_len))
                .collect();
            (m, xs, ys)
        };
        if first.transposed {
            for y in ys.iter_mut() {
                y.fill(A::zero());
            }
            kernels::add_mat_t_vec_batch(A::one(), m, &xs, &mut ys);
        } else {
            kernels::mat_vec_batch(A::one(), m, &xs, A::zero(), &mut ys);
        }
    }
    // The queue's allocation serves the next batches.
    requests.clear();
    with(|queue: &mut Vec<Request<A>>| {
        if queue.is_empty() {
            *queue = requests;
        }
    });
}
