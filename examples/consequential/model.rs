//! The multilayer perceptron of the experiments: `inputs → hidden → 10`,
//! a ReLU between the two dense layers, the mean cross-entropy as loss.

use cps::prelude::*;
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::Examples;

/// `z = x·Wᵀ + b` on a batch of rows.
#[derive(Parameters)]
pub struct Dense {
    /// outputs × inputs, as `Var::linear` and the consequentialist
    /// wrapper take it.
    pub weight: Param,
    /// One per output.
    pub bias: Param,
}

impl Dense {
    /// PyTorch's default initialisation of `Linear`: weight and bias
    /// uniform in `±1/√inputs`.
    fn new(inputs: usize, outputs: usize, rng: &mut StdRng) -> Self {
        let bound = 1.0 / (inputs as f32).sqrt();
        let mut draw = |shape: &[usize]| {
            Param::new(ArrayD::from_shape_simple_fn(IxDyn(shape), || {
                rng.random_range(-bound..bound)
            }))
        };
        let weight = draw(&[outputs, inputs]);
        let bias = draw(&[outputs]);
        Dense { weight, bias }
    }
}

/// Two dense layers with a ReLU between them.
#[derive(Parameters)]
pub struct Mlp {
    pub hidden: Dense,
    pub output: Dense,
}

impl Mlp {
    /// `inputs → hidden → classes`, initialised from `seed`.
    pub fn new(inputs: usize, hidden: usize, classes: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let hidden_layer = Dense::new(inputs, hidden, &mut rng);
        let output = Dense::new(hidden, classes, &mut rng);
        Mlp {
            hidden: hidden_layer,
            output,
        }
    }

    /// The dense layers, first to last.
    pub fn layers(&self) -> [&Dense; 2] {
        [&self.hidden, &self.output]
    }
}

/// The class scores (logits) of a batch of rows.
#[differentiable]
pub fn logits(mlp: &Mlp, x: &Var) -> Var {
    let h = (x.linear(&mlp.hidden.weight) + &mlp.hidden.bias).relu();
    h.linear(&mlp.output.weight) + &mlp.output.bias
}

/// The batch's mean cross-entropy.
#[differentiable]
pub fn batch_loss(mlp: &Mlp, x: &Var, labels: &[usize]) -> Var {
    logits(mlp, x).cross_entropy_mean(labels)
}

/// One step of `optimizer` on one batch; returns the batch's loss before
/// the step.
pub fn train_step(mlp: &mut Mlp, optimizer: &mut dyn Optimizer, x: &Var, labels: &[usize]) -> f32 {
    let loss = batch_loss(mlp, x, labels).backward();
    optimizer.step(mlp);
    loss
}

/// The mean cross-entropy over all `examples` and the fraction classified
/// right, forward only, in batches of 1,000.
pub fn evaluate(mlp: &Mlp, examples: &Examples) -> (f64, f64) {
    let all: Vec<usize> = (0..examples.len()).collect();
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for indices in all.chunks(1000) {
        let (x, labels) = examples.batch(indices);
        let scores = logits(mlp, &x).eval();
        for (row, &label) in scores.array().outer_iter().zip(&labels) {
            let (nll, best) = nll_and_argmax(row.iter().map(|&s| f64::from(s)), label);
            loss += nll;
            correct += usize::from(best == label);
        }
    }
    let n = examples.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

/// `−log softmax(scores)[label]` and the index of the largest score.
fn nll_and_argmax(scores: impl Iterator<Item = f64> + Clone, label: usize) -> (f64, usize) {
    let (best, top) = scores
        .clone()
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |(i, m), (j, s)| if s > m { (j, s) } else { (i, m) },
        );
    let log_sum = top + scores.clone().map(|s| (s - top).exp()).sum::<f64>().ln();
    let picked = scores
        .clone()
        .nth(label)
        .expect("a label below the number of classes");
    (log_sum - picked, best)
}
