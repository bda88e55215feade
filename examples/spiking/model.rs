//! The network: spiking layers in a row, each one custom operation, and
//! the paper's loss on the output firing counts, written with ordinary
//! operations.

use std::cell::RefCell;

use cps::prelude::*;
use ndarray::{Array2, ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::layer::{ResetTerm, Spikes, spiking};
use crate::neuron::Neuron;

/// One fully connected spiking layer.
#[derive(Parameters)]
pub struct SpikingLayer {
    /// neurons × inputs.
    pub weight: Param,
    /// The constants of the layer's neurons.
    #[parameters(skip)]
    pub neuron: Neuron,
}

/// Spiking layers, input to output.
#[derive(Parameters)]
pub struct Net {
    /// Input to output.
    pub layers: Vec<SpikingLayer>,
    /// Whether the backward rule includes the neurons' own resets.
    #[parameters(skip)]
    pub reset: ResetTerm,
}

impl Net {
    /// Layers of the given widths (`sizes[0]` inputs), weights uniform in
    /// `±init`; the hidden layers' neurons are `hidden`, the last layer's
    /// `output`.
    pub fn new(sizes: &[usize], hidden: Neuron, output: Neuron, init: f32, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(k, pair)| SpikingLayer {
                weight: Param::new(ArrayD::from_shape_simple_fn(
                    IxDyn(&[pair[1], pair[0]]),
                    || rng.random_range(-init..init),
                )),
                neuron: if k + 2 == sizes.len() { output } else { hidden },
            })
            .collect();
        Net {
            layers,
            reset: ResetTerm::On,
        }
    }
}

/// The output layer's spikes for a batch of input trains.
#[differentiable]
pub fn forward(net: &Net, input: &Spikes) -> Spikes {
    let mut x = input.clone();
    for layer in &net.layers {
        x = spiking(&x, &layer.weight, layer.neuron, net.reset);
    }
    x
}

/// The desired output counts: `desired` for the right class, `undesired`
/// for the others; an error within `margin` of its target counts as none.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Targets {
    /// The right class's target count.
    pub desired: f32,
    /// The other classes' target count.
    pub undesired: f32,
    /// Errors of at most this many spikes count as none.
    pub margin: f32,
}

impl Targets {
    /// The target counts of `labels` and the mask of the counts that miss
    /// theirs by more than the margin, as constants.
    pub fn for_counts(&self, counts: &ArrayD<f32>, labels: &[usize]) -> (Var, Var) {
        let classes = counts.shape()[1];
        let goal = Array2::from_shape_fn((labels.len(), classes), |(b, c)| {
            if c == labels[b] {
                self.desired
            } else {
                self.undesired
            }
        });
        let mask = Array2::from_shape_fn((labels.len(), classes), |(b, c)| {
            let miss = (counts[[b, c]] - goal[[b, c]]).abs();
            if miss > self.margin { 1.0 } else { 0.0 }
        });
        (Var::constant(goal), Var::constant(mask))
    }
}

/// The paper's loss, `E = ½ ‖o − y‖²` on the output counts (without the
/// errors within the margin), averaged over the batch; the batch's
/// predictions go to `predicted` on the way.
#[differentiable]
pub fn batch_loss(
    net: &Net,
    input: &Spikes,
    labels: &[usize],
    targets: &Targets,
    predicted: &RefCell<Vec<usize>>,
) -> Var {
    let out = forward(net, input);
    *predicted.borrow_mut() = most_spikes(out.counts.array());
    let (goal, mask) = targets.for_counts(out.counts.array(), labels);
    let miss = (&out.counts - &goal) * &mask;
    miss.square().sum() * (0.5 / labels.len() as f32)
}

/// The predicted class of each sample: the output neuron that fired most
/// (the lowest index among equals).
pub fn predict(net: &Net, input: &Spikes) -> Vec<usize> {
    most_spikes(forward(net, input).eval().counts.array())
}

/// The index of the largest count of each row (the lowest among equals).
fn most_spikes(counts: &ArrayD<f32>) -> Vec<usize> {
    counts
        .outer_iter()
        .map(|row| {
            let mut best = 0;
            for (c, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = c;
                }
            }
            best
        })
        .collect()
}
