//! The network as it is trained: spikes and binary synapses taken as
//! probabilities (Esser et al., NeurIPS 2015).
//!
//! Input `i` of a core spikes with probability `xᵢ`; its synapse onto
//! neuron `j` is present with probability `pᵢⱼ ∈ [0, 1]` and has a fixed
//! sign `sᵢⱼ = ±1`. The neuron's input current `Σᵢ x̂ᵢ ĉᵢⱼ sᵢⱼ + bⱼ` (hats:
//! the Bernoulli draws) has
//!
//! ```text
//! μⱼ  = Σᵢ xᵢ pᵢⱼ sᵢⱼ + bⱼ
//! σⱼ² = Σᵢ xᵢ pᵢⱼ (1 − xᵢ pᵢⱼ) sᵢⱼ² = Σᵢ xᵢ pᵢⱼ − Σᵢ xᵢ² pᵢⱼ²      (s² = 1)
//! ```
//!
//! and the neuron fires (the current is above 0) with probability
//! `Φ(μⱼ / σⱼ)` under a Gaussian approximation, σ guarded as
//! `√(max(σ², 0) + 0.01)`. That probability is the next layer's `x`.
//! Every core's three products (`x·(p∘s)`, `x·p`, `x²·p²`) run as one
//! stack of dense matrix products, one matrix per core.
//!
//! A class's score is the mean firing probability of its output neurons;
//! the loss is the cross-entropy of those scores times `scale` (a
//! softmax temperature). After each optimizer step the probabilities are
//! projected back to `[0, 1]` and the biases to TrueNorth's leak range
//! `[−255, 255]`.

use cps::prelude::*;
use ndarray::{Array2, Array3, ArrayD};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cores::{Architecture, CLASSES, LayerShape};

/// Added to σ² so that σ > 0 where every input and synapse is certain.
pub const VARIANCE_FLOOR: f64 = 0.01;

/// The largest bias (leak) magnitude a TrueNorth neuron takes.
pub const BIAS_RANGE: f64 = 255.0;

/// One layer of cores.
#[derive(Parameters)]
pub struct CoreLayer<A: Element = f32> {
    /// The synapses' probabilities of being present, (cores, inputs,
    /// neurons), in `[0, 1]`.
    pub probability: Param<A>,
    /// Each neuron's bias, (cores, 1, neurons).
    pub bias: Param<A>,
    /// Each synapse's sign, ±1, (cores, inputs, neurons): fixed at random
    /// when the network is made (not trained, but saved with the rest).
    pub sign: Param<A>,
    /// Which outputs of the layer below each core reads.
    #[parameters(skip)]
    pub shape: LayerShape,
}

/// A network of layers of cores.
#[derive(Parameters)]
pub struct Net<A: Element = f32> {
    /// First to output.
    pub layers: Vec<CoreLayer<A>>,
    /// (output neurons, classes): `1 / n` where the output neuron votes
    /// for the class, `n` being each class's number of output neurons,
    /// so that an output's product with it is each class's mean.
    #[parameters(skip)]
    votes: Var<A>,
}

impl<A: Element> Net<A> {
    /// A network of the shape `architecture`, with probabilities uniform in
    /// `[0, 1]`, biases 0 and signs ±1 with even odds, drawn from `seed`.
    pub fn new(architecture: &Architecture, seed: u64) -> Result<Self, String> {
        let shapes = architecture.layers()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut draw = |dims: (usize, usize, usize), f: &mut dyn FnMut(&mut StdRng) -> f64| {
            Array3::from_shape_simple_fn(dims, || A::from_f64_lossy(f(&mut rng)))
        };
        let mut layers = Vec::new();
        for shape in shapes {
            let dims = (shape.cores, shape.inputs, shape.neurons);
            let probability = draw(dims, &mut |r| r.random_range(0.0..1.0));
            let sign = draw(dims, &mut |r| if r.random_bool(0.5) { 1.0 } else { -1.0 });
            let bias = draw((shape.cores, 1, shape.neurons), &mut |_| 0.0);
            let mut sign = Param::new(sign);
            sign.set_trainable(false);
            layers.push(CoreLayer {
                probability: Param::new(probability),
                bias: Param::new(bias),
                sign,
                shape,
            });
        }
        let output = &layers
            .last()
            .expect("an architecture has an output layer")
            .shape;
        let per_class = output.outputs() / CLASSES;
        let votes = Array2::from_shape_fn((output.outputs(), CLASSES), |(o, class)| {
            if (o % output.neurons) % CLASSES == class {
                A::from_f64_lossy(1.0 / per_class as f64)
            } else {
                A::zero()
            }
        });
        Ok(Net {
            layers,
            votes: Var::constant(votes),
        })
    }

    /// Projects the parameters back to where they may lie: probabilities
    /// into `[0, 1]`, biases into `[−255, 255]`.
    pub fn project(&mut self) {
        let clamp = |a: &mut ArrayD<A>, lo: f64, hi: f64| {
            let (lo, hi) = (A::from_f64_lossy(lo), A::from_f64_lossy(hi));
            a.mapv_inplace(|v| {
                if v < lo {
                    lo
                } else if v > hi {
                    hi
                } else {
                    v
                }
            });
        };
        for layer in &mut self.layers {
            clamp(layer.probability.value_mut(), 0.0, 1.0);
            clamp(layer.bias.value_mut(), -BIAS_RANGE, BIAS_RANGE);
        }
    }
}

/// The mean `μ` and variance `σ²` of every neuron's input current,
/// (cores, batch, neurons), for the cores' input probabilities `x`
/// (cores, batch, inputs).
#[differentiable]
pub fn moments<A: Element>(layer: &CoreLayer<A>, x: &Var<A>) -> (Var<A>, Var<A>) {
    let p = layer.probability.var();
    let mean = x.matmul(&(p * layer.sign.var())) + layer.bias.var();
    let variance = x.matmul(p) - x.square().matmul(&p.square());
    (mean, variance)
}

/// Every neuron's probability of firing, `Φ(μ / σ)`, (cores, batch,
/// neurons).
#[differentiable]
pub fn firing_probabilities<A: Element>(layer: &CoreLayer<A>, x: &Var<A>) -> Var<A> {
    let (mean, variance) = moments(layer, x);
    let deviation = (variance.relu() + VARIANCE_FLOOR).sqrt();
    (mean / deviation).normal_cdf()
}

/// Each core's inputs, (cores, batch, inputs), picked from the layer
/// below's outputs (batch, outputs).
#[differentiable]
pub fn core_inputs<A: Element>(below: &Var<A>, shape: &LayerShape) -> Var<A> {
    let batch = below.shape()[0];
    below
        .index_select(1, &shape.sources)
        .reshape(&[batch, shape.cores, shape.inputs])
        .permute(&[1, 0, 2])
}

/// Cores' outputs (cores, batch, neurons) as one row per example (batch,
/// cores × neurons), core after core.
#[differentiable]
fn side_by_side<A: Element>(y: &Var<A>) -> Var<A> {
    let (cores, batch, neurons) = (y.shape()[0], y.shape()[1], y.shape()[2]);
    y.permute(&[1, 0, 2]).reshape(&[batch, cores * neurons])
}

/// Each class's mean output firing probability, (batch, classes), for
/// images (batch, pixels) in `[0, 1]`.
#[differentiable]
pub fn class_scores<A: Element>(net: &Net<A>, images: &Var<A>) -> Var<A> {
    let mut x = images.clone();
    for layer in &net.layers {
        let inputs = core_inputs(&x, &layer.shape);
        let y = firing_probabilities(layer, &inputs);
        x = side_by_side(&y);
    }
    x.matmul(&net.votes)
}

/// The loss of a batch: the mean cross-entropy of the class scores times
/// `scale`.
#[differentiable]
pub fn batch_loss<A: Element>(
    net: &Net<A>,
    images: &Var<A>,
    labels: &[usize],
    scale: f64,
) -> Var<A> {
    (class_scores(net, images) * scale).cross_entropy_mean(labels)
}

/// One step of training on one batch, then the projection; returns the
/// batch's loss (before the step).
pub fn train_step(
    net: &mut Net,
    optimizer: &mut Adam,
    images: &Var,
    labels: &[usize],
    scale: f64,
) -> f32 {
    let loss = batch_loss(net, images, labels, scale).backward();
    optimizer.step(net);
    net.project();
    loss
}

/// The expected network's class scores (batch, classes), forward only.
pub fn predict_scores(net: &Net, images: &Var) -> ArrayD<f32> {
    class_scores(net, images).eval().array().clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cps::gradcheck;

    /// A network of two layers small enough for finite differences: four
    /// first-layer cores on the 3×3 patches of a 4×4 image, five neurons
    /// each, and one output core of two neurons per class.
    fn tiny() -> Architecture {
        Architecture {
            side: 4,
            patch: 3,
            stride: 1,
            first_neurons: 5,
            hidden: Vec::new(),
            output_cores: 1,
            per_class: 2,
        }
    }

    fn images(batch: usize, pixels: usize, seed: u64) -> Array2<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        Array2::from_shape_simple_fn((batch, pixels), || rng.random_range(0.05..0.95))
    }

    /// Sets every bias of `net` to a value from `f`, drawn in order.
    fn set_biases(net: &mut Net<f64>, mut f: impl FnMut() -> f64) {
        for layer in &mut net.layers {
            layer.bias.value_mut().mapv_inplace(|_| f());
        }
    }

    #[test]
    fn moments_match_a_monte_carlo_estimate() {
        // One core of 40 inputs and 3 neurons, one example.
        let architecture = Architecture {
            side: 8,
            patch: 8,
            stride: 1,
            first_neurons: 3,
            hidden: Vec::new(),
            output_cores: 1,
            per_class: 1,
        };
        let mut net = Net::<f64>::new(&architecture, 3).unwrap();
        set_biases(&mut net, || 0.7);
        let layer = &net.layers[0];
        let x = images(1, 64, 4);
        let inputs = Var::constant(x.clone().into_shape_with_order((1, 1, 64)).unwrap());
        let (mean, variance) =
            lazy(|k: &mut dyn FnMut((Var<f64>, Var<f64>))| moments(layer, &inputs).bind(k)).eval();
        let (p, s) = (layer.probability.value(), layer.sign.value());
        let mut rng = StdRng::seed_from_u64(5);
        let draws = 10_000;
        for j in 0..3 {
            let currents: Vec<f64> = (0..draws)
                .map(|_| {
                    let spikes = (0..64)
                        .filter(|&i| rng.random_bool(x[[0, i]]) && rng.random_bool(p[[0, i, j]]));
                    spikes.map(|i| s[[0, i, j]]).sum::<f64>() + 0.7
                })
                .collect();
            let m = currents.iter().sum::<f64>() / draws as f64;
            let v = currents.iter().map(|c| (c - m).powi(2)).sum::<f64>() / draws as f64;
            let (mu, var) = (mean.array()[[0, 0, j]], variance.array()[[0, 0, j]]);
            // The estimates' standard errors are about σ/100 and σ²/70.
            assert!((m - mu).abs() < 0.03 * var.sqrt() + 0.02, "μ {mu} vs {m}");
            assert!((v - var).abs() < 0.05 * var, "σ² {var} vs {v}");
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut net = Net::<f64>::new(&tiny(), 7).unwrap();
        let mut rng = StdRng::seed_from_u64(8);
        set_biases(&mut net, || rng.random_range(-1.0..1.0));
        let x = Var::constant(images(3, 16, 9));
        let labels = [1, 7, 4];
        let report = gradcheck(&mut net, |net| batch_loss(net, &x, &labels, 5.0).backward());
        assert!(report.passes(1e-6), "{report}");
        assert!(report.elements_checked > 300, "{report}");
    }

    /// The loss of [`batch_loss`] with σ treated as a constant: the same
    /// values, but gradients that miss the path through σ.
    #[differentiable]
    fn loss_with_constant_deviation(
        net: &Net<f64>,
        images: &Var<f64>,
        labels: &[usize],
    ) -> Var<f64> {
        let mut x = images.clone();
        for layer in &net.layers {
            let inputs = core_inputs(&x, &layer.shape);
            let (mean, variance) = moments(layer, &inputs);
            let deviation = Var::constant(
                variance
                    .array()
                    .mapv(|v| (v.max(0.0) + VARIANCE_FLOOR).sqrt()),
            );
            x = side_by_side(&(mean / &deviation).normal_cdf());
        }
        (x.matmul(&net.votes) * 5.0).cross_entropy_mean(labels)
    }

    #[test]
    fn finite_differences_catch_a_missing_gradient_path() {
        let mut net = Net::<f64>::new(&tiny(), 7).unwrap();
        let x = Var::constant(images(3, 16, 9));
        let labels = [1, 7, 4];
        let same = batch_loss(&net, &x, &labels, 5.0).eval().item();
        let detached = loss_with_constant_deviation(&net, &x, &labels)
            .eval()
            .item();
        assert_eq!(same, detached, "the control computes the same loss");
        let report = gradcheck(&mut net, |net| {
            loss_with_constant_deviation(net, &x, &labels).backward()
        });
        assert!(!report.passes(1e-3), "{report}");
    }

    #[test]
    fn projection_keeps_probabilities_in_the_unit_interval() {
        let mut net = Net::<f32>::new(&tiny(), 1).unwrap();
        let x = Var::constant(images(8, 16, 2).mapv(|v| v as f32));
        let labels = [0, 1, 2, 3, 4, 5, 6, 7];
        let mut optimizer = Adam::new(0.5);
        for _ in 0..5 {
            train_step(&mut net, &mut optimizer, &x, &labels, 10.0);
        }
        let mut at_bounds = 0;
        for layer in &net.layers {
            let p = layer.probability.value();
            assert!(p.iter().all(|&v| (0.0..=1.0).contains(&v)));
            at_bounds += p.iter().filter(|&&v| v == 0.0 || v == 1.0).count();
            assert!(
                layer
                    .bias
                    .value()
                    .iter()
                    .all(|b| b.abs() <= BIAS_RANGE as f32)
            );
        }
        // Steps of 0.5 push many past the bounds: the projection acted.
        assert!(at_bounds > 20, "{at_bounds} probabilities at 0 or 1");
        let signs = net.layers[0].sign.value();
        assert!(
            signs.iter().all(|&s| s == 1.0 || s == -1.0),
            "signs are not trained"
        );
    }
}
