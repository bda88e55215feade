//! Layers behind one differentiable trait, and a `Sequential` of boxed
//! layers whose forward pass is a loop over them.

use cps::prelude::*;
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Whether a forward pass trains the model (dropout drops) or evaluates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: dropout zeroes units at random, drawn from `seed` (one
    /// per step), so that a step's masks depend on the step alone and a
    /// run resumed from a checkpoint draws the same ones.
    Train {
        /// The step's seed.
        seed: u64,
    },
    /// Evaluation: every layer is deterministic.
    Eval,
}

/// A layer of a network: a differentiable map from a batch (the first
/// axis) to a batch, with its parameters.
#[differentiable]
pub trait Layer: Parameters {
    /// The layer's output for the batch `x`.
    fn forward(&self, x: &Var, mode: Mode) -> Var;
}

/// A parameter of `shape` uniform in `±1/√fan_in`: PyTorch's default for
/// the weights and biases of `Linear` and `Conv2d`.
fn uniform(shape: &[usize], fan_in: usize, rng: &mut StdRng) -> Param {
    let bound = 1.0 / (fan_in as f32).sqrt();
    Param::new(ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        rng.random_range(-bound..bound)
    }))
}

/// `y = x Wᵀ + b`, on a batch of rows.
#[derive(Parameters)]
pub struct Linear {
    /// outputs × inputs, as in PyTorch.
    weight: Param,
    bias: Param,
}

impl Linear {
    pub fn new(inputs: usize, outputs: usize, rng: &mut StdRng) -> Self {
        Linear {
            weight: uniform(&[outputs, inputs], inputs, rng),
            bias: uniform(&[outputs], inputs, rng),
        }
    }
}

#[differentiable]
impl Layer for Linear {
    fn forward(&self, x: &Var, _mode: Mode) -> Var {
        x.linear(&self.weight) + &self.bias
    }
}

/// A 2-D convolution of a batch of images (N, C, H, W).
#[derive(Parameters)]
pub struct Conv2d {
    /// filters × channels × kernel × kernel.
    weight: Param,
    bias: Param,
    #[parameters(skip)]
    options: Conv2dOptions,
}

impl Conv2d {
    /// Square `kernel`s, `padding` zeros on each side, stride 1.
    pub fn new(
        channels: usize,
        filters: usize,
        kernel: usize,
        padding: usize,
        rng: &mut StdRng,
    ) -> Self {
        let fan_in = channels * kernel * kernel;
        Conv2d {
            weight: uniform(&[filters, channels, kernel, kernel], fan_in, rng),
            bias: uniform(&[filters], fan_in, rng),
            options: Conv2dOptions::default().with_padding(padding),
        }
    }
}

#[differentiable]
impl Layer for Conv2d {
    fn forward(&self, x: &Var, _mode: Mode) -> Var {
        x.conv2d(&self.weight, Some(self.bias.var()), self.options)
    }
}

/// `max(x, 0)`.
#[derive(Parameters)]
pub struct Relu;

#[differentiable]
impl Layer for Relu {
    fn forward(&self, x: &Var, _mode: Mode) -> Var {
        x.relu()
    }
}

/// The maximum of each `kernel × kernel` window, windows side by side.
#[derive(Parameters)]
pub struct MaxPool2d {
    #[parameters(skip)]
    options: Pool2dOptions,
}

impl MaxPool2d {
    pub fn new(kernel: usize) -> Self {
        MaxPool2d {
            options: Pool2dOptions::new(kernel),
        }
    }
}

#[differentiable]
impl Layer for MaxPool2d {
    fn forward(&self, x: &Var, _mode: Mode) -> Var {
        x.max_pool2d(self.options)
    }
}

/// Each example's values as one row: (N, C, H, W) to (N, C·H·W).
#[derive(Parameters)]
pub struct Flatten;

#[differentiable]
impl Layer for Flatten {
    fn forward(&self, x: &Var, _mode: Mode) -> Var {
        x.flatten(1, -1)
    }
}

/// Inverted dropout while training, the identity while evaluating. The
/// masks come from the step's seed (`Mode::Train`) mixed with the layer's
/// own, so that two dropout layers draw different masks in one step.
#[derive(Parameters)]
pub struct Dropout {
    #[parameters(skip)]
    p: f32,
    #[parameters(skip)]
    salt: u64,
}

impl Dropout {
    pub fn new(p: f32, salt: u64) -> Self {
        Dropout { p, salt }
    }
}

#[differentiable]
impl Layer for Dropout {
    fn forward(&self, x: &Var, mode: Mode) -> Var {
        match mode {
            Mode::Train { seed } => x.dropout(self.p, &mut StdRng::seed_from_u64(seed ^ self.salt)),
            Mode::Eval => x.clone(),
        }
    }
}

/// Layers applied in turn. It is a layer itself, so it nests.
#[derive(Parameters)]
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
}

impl Sequential {
    pub fn new(layers: Vec<Box<dyn Layer>>) -> Self {
        Sequential { layers }
    }
}

#[differentiable]
impl Layer for Sequential {
    fn forward(&self, x: &Var, mode: Mode) -> Var {
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer.forward(&h, mode);
        }
        h
    }
}

/// A small CNN for single-channel `side × side` images (`side` even):
/// two 3×3 convolutions (16 and 32 filters, the size kept by padding),
/// a 2×2 max-pool, then a hidden layer of 64 with dropout.
pub fn cnn(side: usize, classes: usize, dropout: f32, seed: u64) -> Sequential {
    let mut rng = StdRng::seed_from_u64(seed);
    let pooled = 32 * (side / 2) * (side / 2);
    Sequential::new(vec![
        Box::new(Conv2d::new(1, 16, 3, 1, &mut rng)),
        Box::new(Relu),
        Box::new(Conv2d::new(16, 32, 3, 1, &mut rng)),
        Box::new(Relu),
        Box::new(MaxPool2d::new(2)),
        Box::new(Flatten),
        Box::new(Linear::new(pooled, 64, &mut rng)),
        Box::new(Relu),
        Box::new(Dropout::new(dropout, rng.random())),
        Box::new(Linear::new(64, classes, &mut rng)),
    ])
}

/// The mean cross-entropy of a training batch; `seed` draws the step's
/// dropout masks.
#[differentiable]
pub fn batch_loss(model: &Sequential, images: &Var, labels: &[usize], seed: u64) -> Var {
    model
        .forward(images, Mode::Train { seed })
        .cross_entropy_mean(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same dropout layer twice in one computation, with two seeds.
    #[differentiable]
    fn dropout_twice(layer: &Dropout, x: &Var) -> Var {
        let once = layer.forward(x, Mode::Train { seed: 1 });
        layer.forward(&once, Mode::Train { seed: 2 }).sum()
    }

    #[test]
    fn dropout_drops_only_while_training() {
        let layer = Dropout::new(0.5, 3);
        let x = Var::constant(ArrayD::<f32>::ones(ndarray::IxDyn(&[4, 8])));
        assert_eq!(layer.forward(&x, Mode::Eval).eval().array(), x.array());
        let trained = layer.forward(&x, Mode::Train { seed: 1 }).eval();
        assert!(trained.array().iter().all(|&v| v == 0.0 || v == 2.0));
        assert!(trained.array().iter().any(|&v| v == 0.0));
        let again = layer.forward(&x, Mode::Train { seed: 1 }).eval();
        assert_eq!(
            again.array(),
            trained.array(),
            "a step's masks come from its seed"
        );
        let other = layer.forward(&x, Mode::Train { seed: 9 }).eval();
        assert_ne!(other.array(), trained.array());
        let w = Param::new(ArrayD::<f32>::ones(ndarray::IxDyn(&[4, 8])));
        let total = dropout_twice(&layer, &w).backward();
        // Each element is kept twice (scaled by 4) or dropped; the gradient
        // is the same mask.
        assert!(w.grad().iter().all(|&g| g == 0.0 || g == 4.0));
        assert_eq!(total, w.grad().sum());
    }

    #[test]
    fn the_cnn_maps_images_to_class_scores() {
        let model = cnn(8, 10, 0.25, 0);
        let x = Var::constant(ArrayD::<f32>::zeros(ndarray::IxDyn(&[3, 1, 8, 8])));
        assert_eq!(model.forward(&x, Mode::Eval).eval().shape(), &[3, 10]);
        let conv = 16 * 9 + 16 + 32 * 16 * 9 + 32;
        assert_eq!(model.parameter_count(), conv + 512 * 64 + 64 + 64 * 10 + 10);
    }
}
