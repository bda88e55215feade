//! The training loop: every iteration, the next window of each stream of
//! the batch, its loss back-propagated through the window only (truncated
//! backpropagation through time), then min-char-rnn's update.
//!
//! The streams of a batch are split among the workers of a data-parallel
//! group, each keeping the states of its own streams; their gradients are
//! summed before the clipping and the update, so that every worker takes
//! the step one worker would take on the whole batch. One loop serves
//! threads and MPI processes alike (any [`Communicator`]).

use std::ops::Range;

use cps::parallel::Worker;
use cps::prelude::*;
use cps::workers::Communicator;
use ndarray::{Array2, ArrayD, Axis, Slice};

use crate::model::{CharModel, State, window_loss};
use crate::text::{Streams, Text};

/// Each gradient element is clipped to `[−CLIP, CLIP]` before the update.
pub const CLIP: f64 = 5.0;

/// min-char-rnn's Adagrad: `m += g²`, `p −= lr · g / √(m + 1e-8)` (ε under
/// the root, unlike PyTorch's).
pub fn optimizer<A: Element>(learning_rate: A) -> Adagrad<A> {
    Adagrad::new(learning_rate)
        .eps(A::from_f64_lossy(1e-8))
        .eps_inside_root()
}

/// Every stream's state as plain arrays `[B, H]`, a row per stream in
/// order: what a checkpoint keeps, and what the threads of a group can
/// share (a [`Var`] stays on its thread).
#[derive(Clone, Debug, PartialEq)]
pub struct Carried<A: Element = f32> {
    pub h: ArrayD<A>,
    pub c: ArrayD<A>,
}

impl<A: Element> Carried<A> {
    /// The state of the streams `rows`, to compute with.
    pub fn rows(&self, rows: Range<usize>) -> State<A> {
        let take = |all: &ArrayD<A>| {
            Var::constant(
                all.slice_axis(Axis(0), Slice::from(rows.clone()))
                    .to_owned(),
            )
        };
        State {
            h: take(&self.h),
            c: take(&self.c),
        }
    }

    /// The number of streams.
    pub fn streams(&self) -> usize {
        self.h.shape()[0]
    }
}

/// What a run reads, which iterations it trains and when it reports.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The streams of the text, as many as the batch has.
    pub streams: Streams,
    /// The iterations, numbered from 0 (a resumed run starts after the
    /// ones done).
    pub iterations: Range<usize>,
    /// Every `report_every`-th iteration, and the last, gathers every
    /// stream's state (see [`Iteration::states`]).
    pub report_every: usize,
}

/// What an iteration leaves, for the records and reports of worker 0.
pub struct Iteration<'a, A: Element> {
    /// Its number, from 1.
    pub number: usize,
    /// The mean over the batch's streams of their window's loss (each
    /// summed over the window's characters), before the update; the same
    /// on every worker.
    pub loss: A,
    pub model: &'a CharModel<A>,
    pub optimizer: &'a Adagrad<A>,
    /// On iterations that report: every stream's state after it, gathered
    /// from all workers (the same on each).
    pub states: Option<Carried<A>>,
    /// Stream 0's last character of the window, which a sample from its
    /// state continues.
    pub last: usize,
}

/// Trains `model` with `optimizer` on this worker's share of the streams
/// of `text` for the iterations of `plan`, from the states `resumed` (every
/// stream's; none: zeros), calling `after` after every iteration. Stops at
/// the first error `after` returns.
///
/// Every worker of the group runs it with the same arguments (`after`
/// aside), since each iteration makes the same collective calls.
pub fn train<C, A, E>(
    worker: &mut Worker<C, A>,
    model: &mut CharModel<A>,
    optimizer: &mut Adagrad<A>,
    text: &Text,
    plan: &Plan,
    resumed: Option<&Carried<A>>,
    mut after: impl FnMut(Iteration<'_, A>) -> Result<(), E>,
) -> Result<(), E>
where
    C: Communicator<A>,
    A: Element,
{
    let streams = &plan.streams;
    let share = worker.share_range(streams.count());
    let hidden = model.hidden();
    let mut state = match resumed {
        Some(states) => states.rows(share.clone()),
        None => State::zeros(share.len(), hidden),
    };
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for (i, window) in streams
        .windows()
        .enumerate()
        .take(plan.iterations.end)
        .skip(plan.iterations.start)
    {
        if window.reset {
            state = State::zeros(share.len(), hidden);
        }
        streams.read(text, window.start, share.clone(), &mut inputs, &mut targets);
        let (loss, next) = step(
            worker,
            model,
            optimizer,
            (&inputs, &targets),
            &state,
            streams.count(),
        );
        state = next;
        let number = i + 1;
        let reports = number % plan.report_every == 0 || number == plan.iterations.end;
        let states = reports.then(|| gather(worker, &state, share.clone(), streams.count()));
        after(Iteration {
            number,
            loss,
            model,
            optimizer,
            states,
            last: streams.last_target(text, window.start),
        })?;
    }
    Ok(())
}

/// One iteration of a worker on the windows `inputs` → `targets` of its
/// streams (laid out as [`Streams::read`] lays them out) from their states
/// `start`, in a batch of `batch` streams: returns the batch's mean loss
/// (before the update) and the streams' last states, detached, to start
/// their next windows from.
pub fn step<C, A>(
    worker: &mut Worker<C, A>,
    model: &mut CharModel<A>,
    optimizer: &mut Adagrad<A>,
    (inputs, targets): (&[usize], &[usize]),
    start: &State<A>,
    batch: usize,
) -> (A, State<A>)
where
    C: Communicator<A>,
    A: Element,
{
    let mut end = None;
    // The loss is back-propagated; the last states leave as constants, so
    // the next windows' gradients stop at their start.
    let loss = lazy(|k: &mut dyn FnMut(Var<A>)| {
        window_loss(model, inputs, targets, start).bind(|(loss, last)| {
            end = Some(last.detached());
            // This worker's part of the batch's mean: the workers'
            // gradients add up to the mean's. One stream is the mean
            // itself, with not even a division by one to round.
            if batch == 1 {
                k(loss);
            } else {
                (&loss / batch as f64).bind(&mut *k);
            }
        })
    })
    .backward();
    worker.all_reduce_gradients(model);
    clip_grad_value(model, A::from_f64_lossy(CLIP));
    optimizer.step(model);
    (worker.sum(loss), end.expect("the window's computation ran"))
}

/// Every stream's state, from `state`, the rows of the streams `share`
/// that this worker holds: each worker fills its own rows of buffers
/// otherwise zero, and their sum across workers is every row as its
/// worker holds it (adding zeros changes no number).
fn gather<C, A>(
    worker: &mut Worker<C, A>,
    state: &State<A>,
    share: Range<usize>,
    count: usize,
) -> Carried<A>
where
    C: Communicator<A>,
    A: Element,
{
    let hidden = state.h.shape()[1];
    let mut all = vec![A::zero(); 2 * count * hidden];
    let (h, c) = all.split_at_mut(count * hidden);
    let mine = share.start * hidden..share.end * hidden;
    for (rows, part) in [(h, &state.h), (c, &state.c)] {
        rows[mine.clone()]
            .iter_mut()
            .zip(part.array().iter())
            .for_each(|(row, &value)| *row = value);
    }
    worker.group().all_reduce_sum(&mut all);
    let (h, c) = all.split_at(count * hidden);
    let matrix = |values: &[A]| {
        Array2::from_shape_vec((count, hidden), values.to_vec())
            .expect("a row per stream")
            .into_dyn()
    };
    Carried {
        h: matrix(h),
        c: matrix(c),
    }
}

/// The reference's iteration: one stream, one worker. [`train`] with a
/// batch of one stream on one worker computes the same numbers, bit for
/// bit (the tests compare them).
#[cfg(test)]
pub fn train_step<A: Element>(
    model: &mut CharModel<A>,
    optimizer: &mut Adagrad<A>,
    inputs: &[usize],
    targets: &[usize],
    start: &State<A>,
) -> (A, State<A>) {
    let mut end = None;
    // The loss is back-propagated; the last state leaves as a constant, so
    // the next window's gradients stop at its start.
    let loss = lazy(|k: &mut dyn FnMut(Var<A>)| {
        window_loss(model, inputs, targets, start).bind(|(loss, last)| {
            end = Some(last.detached());
            k(loss);
        })
    })
    .backward();
    clip_grad_value(model, A::from_f64_lossy(CLIP));
    optimizer.step(model);
    (loss, end.expect("the window's computation ran"))
}
