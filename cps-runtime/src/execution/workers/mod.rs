//! Workers: the groups that data-parallel training runs in, and the two
//! collective operations it needs of them. Every worker of a group calls
//! the same operations in the same order with buffers of the same length
//! (the same model); what each contributes is summed, or rank 0's value is
//! copied to all.
//!
//! - [`Alone`]: a group of one, where both operations do nothing;
//! - [`ThreadGroup`]: threads of one process, summing through shared
//!   memory;
//! - `MpiWorld` (feature `mpi`): the processes of an MPI job, on one
//!   machine or many.
//!
//! Nothing here knows of values or models: the collectives work on slices
//! of numbers (`crate::parallel` flattens a model's gradients into one).

use crate::element::Element;

#[cfg(feature = "mpi")]
mod mpi;
mod rendezvous;
mod threads;

#[cfg(feature = "mpi")]
pub use mpi::MpiWorld;
pub use threads::ThreadGroup;

/// A group of workers that can sum buffers across its members and copy
/// rank 0's buffer to all of them.
///
/// Every member must call the collectives in the same order with buffers
/// of the same length; a [`ThreadGroup`] panics with both lengths when
/// they differ, and no member waits forever for one that has panicked or
/// left.
pub trait Communicator<A: Element> {
    /// This worker's number, from 0 (the root) to `size() - 1`.
    fn rank(&self) -> usize;

    /// The number of workers in the group.
    fn size(&self) -> usize;

    /// Replaces `values`, on every worker, with the elementwise sum of all
    /// workers' `values`. The result is the same, bit for bit, on every
    /// worker.
    fn all_reduce_sum(&mut self, values: &mut [A]);

    /// Replaces `values`, on every worker, with rank 0's.
    fn broadcast(&mut self, values: &mut [A]);
}

/// A group of one worker: sums and broadcasts leave the values as they are.
///
/// ```
/// use cps_runtime::workers::{Alone, Communicator};
///
/// let mut values = [1.0f32, 2.0];
/// Alone.all_reduce_sum(&mut values);
/// assert_eq!(values, [1.0, 2.0]);
/// assert_eq!(<Alone as Communicator<f32>>::size(&Alone), 1);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Alone;

impl<A: Element> Communicator<A> for Alone {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&mut self, _values: &mut [A]) {}
    fn broadcast(&mut self, _values: &mut [A]) {}
}

/// The part of `len` items that worker `rank` of `size` takes: contiguous,
/// in rank order, the sizes differing by at most one.
///
/// ```
/// use cps_runtime::workers::share_of;
///
/// assert_eq!(share_of(10, 0, 3), 0..3);
/// assert_eq!(share_of(10, 1, 3), 3..6);
/// assert_eq!(share_of(10, 2, 3), 6..10);
/// ```
pub fn share_of(len: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    assert!(
        rank < size,
        "share_of: rank {rank} is not in a group of {size}"
    );
    len * rank / size..len * (rank + 1) / size
}

/// A group lent out: a [`Worker`](crate::parallel::Worker) can borrow the
/// process's MPI world for one training run and hand it back.
impl<A: Element, C: Communicator<A> + ?Sized> Communicator<A> for &mut C {
    fn rank(&self) -> usize {
        (**self).rank()
    }
    fn size(&self) -> usize {
        (**self).size()
    }
    fn all_reduce_sum(&mut self, values: &mut [A]) {
        (**self).all_reduce_sum(values)
    }
    fn broadcast(&mut self, values: &mut [A]) {
        (**self).broadcast(values)
    }
}
