//! The training loop, written once for any group of workers (threads of
//! this process, the processes of an MPI job, or one worker alone): every
//! worker takes its share of each batch, the workers' gradients are summed,
//! and every worker takes the same SGD step, the one a single worker takes
//! on the whole batch (up to the order in which the sums are added).

use std::ops::RangeInclusive;

use cps::parallel::Worker;
use cps::prelude::*;
use cps::workers::Communicator;

use crate::cli::Options;
use crate::common::training::step_seed;
use crate::data::Examples;
use crate::model::{self, Dropout, Net};

/// What worker 0 does around the steps that every worker takes: keep the
/// record of the losses, show progress, write checkpoints, test.
pub trait Lead {
    /// Epoch `epoch`, of `batches` steps, begins.
    fn epoch_starts(&mut self, epoch: usize, batches: usize);

    /// A step ended; `loss` is its batch's mean loss (before the update).
    fn step_done(&mut self, loss: f32);

    /// Epoch `epoch` ended; `net` and `optimizer` are as it left them.
    fn epoch_done(&mut self, epoch: usize, net: &Net, optimizer: &Sgd) -> Result<(), String>;
}

/// Trains `net` for `epochs` (numbered from 1: each epoch's dropout masks
/// come from its number) on `data` as `options` say (batch, dropout,
/// seed), this worker taking its share of every batch. Every worker of the
/// group calls it with the same arguments; worker 0 passes its `lead`.
///
/// # Errors
/// What `lead` returns (a checkpoint that could not be written).
pub fn train<C: Communicator<f32>>(
    worker: &mut Worker<C>,
    net: &mut Net,
    optimizer: &mut Sgd,
    data: &Examples,
    options: &Options,
    epochs: RangeInclusive<usize>,
    mut lead: Option<&mut dyn Lead>,
) -> Result<(), String> {
    let batches = data.len().div_ceil(options.batch);
    for epoch in epochs {
        if let Some(lead) = lead.as_deref_mut() {
            lead.epoch_starts(epoch, batches);
        }
        for (step, batch) in data.batches(options.batch).enumerate() {
            // Each step's masks come from its own seed, so that a resumed
            // run draws the same ones.
            let dropout = (!options.no_dropout).then(|| step_seed(options.seed, epoch, step));
            let loss = sgd_step(worker, net, optimizer, data, batch, dropout);
            if let Some(lead) = lead.as_deref_mut() {
                lead.step_done(loss);
            }
        }
        if let Some(lead) = lead.as_deref_mut() {
            lead.epoch_done(epoch, net, optimizer)?;
        }
    }
    Ok(())
}

/// One step of SGD on the batch of `data`'s images `from..to`, with the
/// step's dropout seed: this worker's share forward and backward, the
/// gradients summed over the workers, the update. Returns the batch's mean
/// loss, the same on every worker.
pub fn sgd_step<C: Communicator<f32>>(
    worker: &mut Worker<C>,
    net: &mut Net,
    optimizer: &mut Sgd,
    data: &Examples,
    batch: (usize, usize),
    dropout: Option<u64>,
) -> f32 {
    let mut loss = [share_backward(worker, net, data, batch, dropout)];
    // The loss is summed with the gradients, in one collective.
    worker.all_reduce_gradients_with(&*net, &mut loss);
    optimizer.step(net);
    loss[0]
}

/// The forward and backward pass of this worker's share of the batch
/// `from..to`: its loss weighted by the share's fraction of the batch, so
/// that the workers' losses and gradients add up to the batch's mean loss
/// and its gradient. Leaves the gradients on `net` and returns the weighted
/// loss (0, and no gradient, for an empty share: a batch smaller than the
/// group).
pub fn share_backward<C: Communicator<f32>>(
    worker: &Worker<C>,
    net: &Net,
    data: &Examples,
    (from, to): (usize, usize),
    dropout: Option<u64>,
) -> f32 {
    let len = to - from;
    let share = worker.share_range(len);
    if share.is_empty() {
        return 0.0;
    }
    let (images, labels) = data.batch(from + share.start, from + share.end);
    let weight = share.len() as f32 / len as f32;
    // The masks of the share's images are the ones they would have in the
    // whole batch.
    let dropout = dropout.map(|seed| Dropout {
        seed,
        first: share.start,
    });
    model::share_loss(net, &images, labels, dropout, weight).backward()
}
