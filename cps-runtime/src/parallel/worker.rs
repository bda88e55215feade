//! [`Worker`]: one worker's part in data-parallel training.

use std::ops::Range;

use ndarray::ArrayD;

use crate::element::Element;
use crate::execution::workers::{Communicator, share_of};
use crate::flat::{slice, slice_mut};
use crate::memory;
use crate::parameters::Parameters;

/// One worker of a data-parallel group: it trains the same model as the
/// others on its share of each batch, and before every optimizer step the
/// gradients of all workers are summed, so that every worker takes the
/// same step as one worker would on the whole batch.
///
/// The group is a [`Communicator`]: threads of this process
/// ([`ThreadGroup`](crate::workers::ThreadGroup), see
/// [`on_threads`](super::on_threads)), the processes of an MPI job
/// (`MpiWorld`, feature `mpi`), or a worker [`Alone`](crate::workers::Alone),
/// for which every collective costs nothing. A training loop written
/// against `Worker<C>` runs unchanged on any of them:
///
/// ```
/// use cps_runtime::parallel::Worker;
/// use cps_runtime::workers::{Alone, Communicator};
/// use cps_runtime::optim::{Optimizer, Sgd};
/// use cps_runtime::*;
/// use ndarray::array;
///
/// /// One epoch of least squares on `(x, y)` pairs, batches of `batch`.
/// fn epoch<C: Communicator<f64>>(
///     worker: &mut Worker<C, f64>,
///     w: &mut Param<f64>,
///     sgd: &mut Sgd<f64>,
///     data: &[(f64, f64)],
///     batch: usize,
/// ) {
///     for batch in data.chunks(batch) {
///         let scale = 1.0 / batch.len() as f64;
///         for &(x, y) in worker.share(batch) {
///             let w = &*w;
///             lazy(move |k: &mut dyn FnMut(Var<f64>)| {
///                 (w.var() * x).bind(|p| {
///                     (&p - y).bind(|e| e.square().bind(|s| (&s * scale).bind(&mut *k)))
///                 })
///             })
///             .backward();
///         }
///         worker.all_reduce_gradients(&*w);
///         sgd.step(w);
///     }
/// }
///
/// let mut w = Param::new(array![0.0f64]);
/// let mut sgd = Sgd::new(0.1);
/// let data: Vec<(f64, f64)> = (0..8).map(|i| (i as f64 / 8.0, 3.0 * i as f64 / 8.0)).collect();
/// let mut worker = Worker::new(Alone);
/// for _ in 0..200 {
///     epoch(&mut worker, &mut w, &mut sgd, &data, 4);
/// }
/// assert!((w.array()[0] - 3.0).abs() < 1e-3);
/// ```
pub struct Worker<C, A: Element = f32> {
    group: C,
    /// Every trainable parameter's gradient end to end, one flag per
    /// parameter (1 where this worker has a gradient for it), then the
    /// values summed along (a step's loss): the buffer summed across
    /// workers, kept between steps.
    flat: Vec<A>,
}

impl<C: Communicator<A>, A: Element> Worker<C, A> {
    /// The worker that `group` makes this thread or process.
    pub fn new(group: C) -> Self {
        Worker {
            group,
            flat: Vec::new(),
        }
    }

    /// This worker's number in its group, from 0.
    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    /// The number of workers in the group.
    pub fn size(&self) -> usize {
        self.group.size()
    }

    /// Whether this is worker 0, the one that reports, evaluates and writes
    /// files for the group.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// The group, for collectives of one's own.
    pub fn group(&mut self) -> &mut C {
        &mut self.group
    }

    /// The indices of a batch of `len` examples that this worker takes:
    /// contiguous, in rank order, the shares differing by at most one.
    pub fn share_range(&self, len: usize) -> Range<usize> {
        share_of(len, self.rank(), self.size())
    }

    /// This worker's part of `batch` (see [`Worker::share_range`]).
    pub fn share<'a, T>(&self, batch: &'a [T]) -> &'a [T] {
        &batch[self.share_range(batch.len())]
    }

    /// The items of a batch this worker takes when they cost unequal work
    /// (`costs[i]`, say a tree's node count), in increasing order: the
    /// costliest item first, each to the worker with the least work so far
    /// (the lowest rank among equals), so that no worker waits long for
    /// another at the sum. Every worker computes the same assignment.
    ///
    /// ```
    /// use cps_runtime::parallel::Worker;
    /// use cps_runtime::workers::ThreadGroup;
    ///
    /// let costs = [9, 1, 1, 1, 8, 2];
    /// let shares: Vec<Vec<usize>> = ThreadGroup::<f32>::new(2)
    ///     .into_iter()
    ///     .map(|member| Worker::new(member).balanced_share(&costs))
    ///     .collect();
    /// assert_eq!(shares, [vec![0, 1, 2], vec![3, 4, 5]]);
    /// ```
    pub fn balanced_share(&self, costs: &[usize]) -> Vec<usize> {
        let (rank, size) = (self.rank(), self.size());
        if size == 1 {
            return (0..costs.len()).collect();
        }
        let mut order: Vec<usize> = (0..costs.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(costs[i]), i));
        let mut loads = vec![0usize; size];
        let mut mine = Vec::new();
        for i in order {
            let least = (0..size)
                .min_by_key(|&w| (loads[w], w))
                .expect("a group has a worker");
            loads[least] += costs[i];
            if least == rank {
                mine.push(i);
            }
        }
        mine.sort_unstable();
        mine
    }

    /// `value` summed over the workers (a loss, a count of correct
    /// answers), the same on every worker.
    pub fn sum(&mut self, value: A) -> A {
        let mut values = [value];
        self.group.all_reduce_sum(&mut values);
        values[0]
    }

    /// Gives every worker's model worker 0's parameter values (trainable
    /// or not), so that all start from the same point.
    ///
    /// # Panics
    /// When the workers' models differ in their number of parameters or
    /// of numbers in each, naming the first that differs.
    pub fn broadcast_parameters(&mut self, model: &mut dyn Parameters<A>) {
        if self.size() == 1 {
            return;
        }
        self.check_same_layout(model);
        self.flat.clear();
        model.visit(&mut |_, p| push_all(&mut self.flat, p.array()));
        self.group.broadcast(&mut self.flat);
        let mut next = 0;
        model.visit_mut(&mut |_, p| {
            let values = &self.flat[next..next + p.len()];
            next += p.len();
            p.update_value(|value| copy_into(value, values));
        });
    }

    /// Replaces each trainable parameter's gradient with the sum of all
    /// workers' gradients of it; call it after the backward passes of a
    /// step and before the optimizer's step. A parameter no worker has a
    /// gradient for keeps none, as it would with one worker.
    ///
    /// With one worker it does nothing; otherwise it moves each gradient
    /// through one buffer and one all-reduce.
    pub fn all_reduce_gradients(&mut self, model: &dyn Parameters<A>) {
        self.all_reduce_gradients_with(model, &mut []);
    }

    /// [`Worker::all_reduce_gradients`], summing `extra` (a step's loss, a
    /// count) in the same collective: across machines every collective
    /// costs a network latency per step of the ring, whatever its size.
    ///
    /// ```
    /// use cps_runtime::parallel::Worker;
    /// use cps_runtime::workers::Alone;
    /// use cps_runtime::Param;
    /// use ndarray::array;
    ///
    /// let w = Param::new(array![1.0f32]);
    /// let mut loss = [0.25f32];
    /// Worker::new(Alone).all_reduce_gradients_with(&w, &mut loss);
    /// assert_eq!(loss, [0.25]);
    /// ```
    pub fn all_reduce_gradients_with(&mut self, model: &dyn Parameters<A>, extra: &mut [A]) {
        if self.size() == 1 {
            return;
        }
        let mut flags = Vec::new();
        self.flat.clear();
        model.visit(&mut |_, p| {
            if !p.is_trainable() {
                return;
            }
            match p.var().grad_ref() {
                Some(grad) => {
                    push_all(&mut self.flat, &grad);
                    flags.push(A::one());
                }
                None => {
                    self.flat.resize(self.flat.len() + p.len(), A::zero());
                    flags.push(A::zero());
                }
            }
        });
        self.flat.extend_from_slice(&flags);
        self.flat.extend_from_slice(extra);
        self.group.all_reduce_sum(&mut self.flat);
        let (rest, sums_of_extra) = self.flat.split_at(self.flat.len() - extra.len());
        extra.copy_from_slice(sums_of_extra);
        let (sums, flags) = rest.split_at(rest.len() - flags.len());
        let (mut next, mut flags) = (0, flags.iter());
        model.visit(&mut |_, p| {
            if !p.is_trainable() {
                return;
            }
            let sum = &sums[next..next + p.len()];
            next += p.len();
            let anyone = *flags.next().expect("one flag per trainable parameter") > A::zero();
            let buffer = p.take_grad();
            if !anyone {
                if let Some(buffer) = buffer {
                    memory::recycle(buffer);
                }
                return;
            }
            let mut buffer = buffer.unwrap_or_else(|| memory::scratch(ndarray::IxDyn(p.shape())));
            copy_into(&mut buffer, sum);
            p.var().accumulate(buffer);
        });
    }

    /// Checks that every worker's model has worker 0's number of
    /// parameters and of numbers in each.
    fn check_same_layout(&mut self, model: &dyn Parameters<A>) {
        let mut lengths = Vec::new();
        let mut names = Vec::new();
        model.visit(&mut |name, p| {
            lengths.push(p.len());
            names.push(name.to_string());
        });
        let total: usize = lengths.iter().sum();
        let mut summary = exact_digits(&[lengths.len(), total]);
        let mine = summary.clone();
        self.group.broadcast(&mut summary);
        let root = read_digits(&summary);
        // Equal counts: the lengths below name the parameter that differs.
        assert!(
            summary[..3] == mine[..3],
            "Worker::broadcast_parameters: worker {}'s model has {} parameters ({} numbers), \
             worker 0's has {} ({}): build every worker's model the same way",
            self.rank(),
            lengths.len(),
            total,
            root[0],
            root[1]
        );
        let mut each = exact_digits(&lengths);
        let mine = each.clone();
        self.group.broadcast(&mut each);
        if let Some(k) =
            (0..lengths.len()).find(|&k| each[3 * k..3 * k + 3] != mine[3 * k..3 * k + 3])
        {
            panic!(
                "Worker::broadcast_parameters: worker {}'s parameter `{}` (number {k}) has {} \
                 numbers, worker 0's has {}: build every worker's model the same way",
                self.rank(),
                names[k],
                lengths[k],
                read_digits(&each[3 * k..3 * k + 3])[0]
            );
        }
    }
}

impl<C: Communicator<A> + std::fmt::Debug, A: Element> std::fmt::Debug for Worker<C, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("group", &self.group)
            .finish()
    }
}

/// Appends `array`'s elements in logical order.
fn push_all<A: Element>(flat: &mut Vec<A>, array: &ArrayD<A>) {
    match slice(array) {
        Some(values) => flat.extend_from_slice(values),
        None => flat.extend(array.iter().copied()),
    }
}

/// Overwrites `array`'s elements, in logical order, with `values`.
fn copy_into<A: Element>(array: &mut ArrayD<A>, values: &[A]) {
    match slice_mut(array) {
        Some(slots) => slots.copy_from_slice(values),
        None => array.iter_mut().zip(values).for_each(|(a, &v)| *a = v),
    }
}

/// Each count as three base-2¹⁶ digits, which every element type holds
/// exactly (an `f32` holds integers up to 2²⁴).
fn exact_digits<A: Element>(counts: &[usize]) -> Vec<A> {
    counts
        .iter()
        .flat_map(|&n| [n & 0xffff, (n >> 16) & 0xffff, n >> 32])
        .map(|digit| A::from_f64_lossy(digit as f64))
        .collect()
}

/// The counts [`exact_digits`] wrote.
fn read_digits<A: Element>(digits: &[A]) -> Vec<usize> {
    digits
        .chunks(3)
        .map(|d| {
            let digit = |x: A| x.to_f64_lossless() as usize;
            digit(d[0]) | digit(d[1]) << 16 | digit(d[2]) << 32
        })
        .collect()
}
