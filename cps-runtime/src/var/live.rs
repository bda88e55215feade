//! The bytes of results alive on this thread, counted as they are made and
//! given back: what a computation holds at the end of its forward pass.

use std::cell::Cell;

use crate::element::Element;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
}

/// A result of `len` elements was made.
#[inline(always)]
pub(super) fn made<A: Element>(len: usize) {
    LIVE.with(|live| live.set(live.get() + len * size_of::<A>()));
}

/// A result of `len` elements went (its last handle was dropped).
#[inline(always)]
pub(super) fn released<A: Element>(len: usize) {
    LIVE.with(|live| live.set(live.get().saturating_sub(len * size_of::<A>())));
}

/// The bytes of the values of operations' results alive on this thread:
/// results whose operation has not yet run its backward step, and any kept
/// beyond it (in a list, say). Constants and parameters are not counted.
/// Read at the end of a forward pass (in the innermost continuation), it
/// is the memory the computation keeps for its backward pass.
///
/// ```
/// use cps_runtime::*;
/// use ndarray::Array1;
///
/// let x = Var::constant(Array1::<f32>::zeros(1000));
/// let before = live_result_bytes();
/// x.tanh().bind(|t| {
///     t.exp().bind(|_| assert_eq!(live_result_bytes() - before, 2 * 4000));
/// });
/// assert_eq!(live_result_bytes(), before);
/// ```
pub fn live_result_bytes() -> usize {
    LIVE.with(Cell::get)
}
