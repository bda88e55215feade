//! [`ThreadGroup`]: the threads of one process as a group of workers,
//! summing through shared memory.
//!
//! A sum is a reduce-scatter then an all-gather, as a ring all-reduce
//! does, but through memory: each member copies its buffer into its own
//! row of chunks; member `r` adds up chunk `r` of every row, in rank order,
//! and publishes it; every member then copies every published chunk. Each
//! member so moves about three times its buffer, whatever the group's
//! size, and all members add at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::rendezvous::Rendezvous;
use super::{Communicator, share_of};
use crate::element::Element;

/// One thread's membership of a group of threads (see
/// [`ThreadGroup::new`]). Moved to its thread, it is that thread's
/// [`Communicator`].
///
/// A member that panics, or is dropped while others still call
/// collectives, makes the others panic rather than wait forever.
///
/// ```
/// use cps_runtime::workers::{Communicator, ThreadGroup};
///
/// let sums: Vec<Vec<f64>> = std::thread::scope(|scope| {
///     let members = ThreadGroup::<f64>::new(3);
///     let threads: Vec<_> = members
///         .into_iter()
///         .map(|mut group| {
///             scope.spawn(move || {
///                 let rank = group.rank() as f64;
///                 let mut values = vec![rank, 10.0 * rank];
///                 group.all_reduce_sum(&mut values);
///                 values
///             })
///         })
///         .collect();
///     threads.into_iter().map(|t| t.join().unwrap()).collect()
/// });
/// assert!(sums.iter().all(|s| s == &[3.0, 30.0]));
/// ```
pub struct ThreadGroup<A: Element> {
    rank: usize,
    shared: Arc<Shared<A>>,
}

struct Shared<A> {
    rendezvous: Rendezvous,
    /// `chunks[s][c]`: chunk `c` of member `s`'s buffer; after the
    /// reduction, `chunks[c][c]` holds the sum of chunk `c`.
    chunks: Vec<Vec<RwLock<Vec<A>>>>,
    /// Each member's buffer length in the current collective.
    lengths: Vec<AtomicUsize>,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // A member that panicked broke the rendezvous: nobody reads what it
    // may have left half written.
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<A: Element> ThreadGroup<A> {
    /// A group of `size` members, one per thread: move each to the thread
    /// it serves, in rank order.
    ///
    /// # Panics
    /// When `size` is zero.
    pub fn new(size: usize) -> Vec<ThreadGroup<A>> {
        assert!(size > 0, "ThreadGroup::new: a group needs a member");
        let shared = Arc::new(Shared {
            rendezvous: Rendezvous::new(size),
            chunks: (0..size)
                .map(|_| (0..size).map(|_| RwLock::new(Vec::new())).collect())
                .collect(),
            lengths: (0..size).map(|_| AtomicUsize::new(0)).collect(),
        });
        (0..size)
            .map(|rank| ThreadGroup {
                rank,
                shared: Arc::clone(&shared),
            })
            .collect()
    }

    fn size_of_group(&self) -> usize {
        self.shared.chunks.len()
    }

    /// Publishes this member's length, waits for all, and checks that
    /// every member gave the same.
    fn agree_on_length(&self, operation: &str, len: usize) {
        self.shared.lengths[self.rank].store(len, Ordering::Relaxed);
        self.shared.rendezvous.wait();
        for (other, length) in self.shared.lengths.iter().enumerate() {
            let theirs = length.load(Ordering::Relaxed);
            assert!(
                theirs == len,
                "{operation}: worker {other} gave {theirs} values, worker {} gave {len}: \
                 every worker must hold the same model",
                self.rank
            );
        }
    }
}

/// Sees, from outside a [`ThreadGroup`], whether and why it broke up.
pub(crate) struct GroupWatcher<A: Element>(Arc<Shared<A>>);

impl<A: Element> GroupWatcher<A> {
    /// Whether the group first broke up because worker 0 left it (so that
    /// the others' panics followed from that, not from a failure).
    pub(crate) fn root_left_first(&self) -> bool {
        self.0.rendezvous.broken().as_deref() == Some(&*root_left())
    }
}

/// Why a group breaks up when a member leaves normally.
fn left(rank: usize) -> String {
    format!("worker {rank} left the group while the others still called collectives")
}

fn root_left() -> String {
    left(0)
}

impl<A: Element> ThreadGroup<A> {
    /// A watcher of this group that outlives the members.
    pub(crate) fn watcher(&self) -> GroupWatcher<A> {
        GroupWatcher(Arc::clone(&self.shared))
    }
}

impl<A: Element> Communicator<A> for ThreadGroup<A> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size_of_group()
    }

    fn all_reduce_sum(&mut self, values: &mut [A]) {
        let size = self.size_of_group();
        if size == 1 {
            return;
        }
        let (rank, shared) = (self.rank, &*self.shared);
        let len = values.len();
        let range = |chunk| share_of(len, chunk, size);
        for (chunk, slot) in shared.chunks[rank].iter().enumerate() {
            let mut slot = write(slot);
            slot.clear();
            slot.extend_from_slice(&values[range(chunk)]);
        }
        self.agree_on_length("all_reduce_sum", values.len());
        // Only this member touches column `rank` now.
        let mine = range(rank);
        let sum = &mut values[mine];
        sum.copy_from_slice(&read(&shared.chunks[0][rank]));
        for row in &shared.chunks[1..] {
            sum.iter_mut()
                .zip(read(&row[rank]).iter())
                .for_each(|(s, &x)| *s += x);
        }
        write(&shared.chunks[rank][rank]).copy_from_slice(sum);
        shared.rendezvous.wait();
        for chunk in (0..size).filter(|&c| c != rank) {
            values[range(chunk)].copy_from_slice(&read(&shared.chunks[chunk][chunk]));
        }
        // Nobody refills a row before everyone has read the sums.
        shared.rendezvous.wait();
    }

    fn broadcast(&mut self, values: &mut [A]) {
        if self.size_of_group() == 1 {
            return;
        }
        let shared = &*self.shared;
        if self.rank == 0 {
            let mut slot = write(&shared.chunks[0][0]);
            slot.clear();
            slot.extend_from_slice(values);
        }
        self.agree_on_length("broadcast", values.len());
        if self.rank != 0 {
            values.copy_from_slice(&read(&shared.chunks[0][0]));
        }
        shared.rendezvous.wait();
    }
}

impl<A: Element> Drop for ThreadGroup<A> {
    fn drop(&mut self) {
        let reason = if std::thread::panicking() {
            format!("worker {} panicked", self.rank)
        } else {
            left(self.rank)
        };
        self.shared.rendezvous.break_up(reason);
    }
}

impl<A: Element> std::fmt::Debug for ThreadGroup<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadGroup")
            .field("rank", &self.rank)
            .field("size", &self.size_of_group())
            .finish()
    }
}
