//! Execution: the one place that decides where work runs. Operations ask
//! here; the kernels below compute on the slices they are given.
//!
//! - [`products`]: which kernel a dense product runs on, and whether its
//!   rows are split with the second core;
//! - [`second_core`]: the opt-in partner thread that takes half of each
//!   large product's rows;
//! - `batch`: products of a matrix by a vector waiting, in the sides of a
//!   [`join`](fn@crate::join), to run as one batch;
//! - [`stack`]: the stack segments deep recursion runs on;
//! - [`workers`]: the groups data-parallel training runs in (threads, MPI
//!   processes) and their collectives.

pub(crate) mod products;
pub mod second_core;
pub mod stack;
pub mod workers;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod batch;

/// Without the stack switching a [`join`](fn@crate::join) needs, its sides
/// run one after the other, and no product waits for a batch.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) mod batch {
    /// Never: there are no sides to wait in.
    #[inline]
    pub(crate) fn batches(_elements: usize) -> bool {
        false
    }

    /// Not reached: [`batches`] is always false.
    pub(crate) fn batched_product<A>(_transposed: bool, _m: &[A], _x: &[A], _y: &mut [A]) {
        unreachable!("no product waits for a batch on this target")
    }
}
