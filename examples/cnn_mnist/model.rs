//! The network of PyTorch's classic MNIST example (the one Lantern's
//! evaluation trains), written as one differentiable function.
//!
//! ```text
//! conv1  1 → 10 channels, 5×5     28×28 → 24×24
//! max-pool 2, relu                      → 12×12
//! conv2  10 → 20 channels, 5×5          → 8×8
//! max-pool 2, relu                      → 4×4 (320 values)
//! fc1    320 → 50, relu, dropout 0.5 (training only)
//! fc2    50 → 10, log-softmax; the loss is the mean negative log-likelihood
//! ```
//!
//! The parameters are named as in PyTorch's `state_dict` (`conv1.weight`,
//! `fc2.bias`, …) with the same shapes, so a file the reference writes
//! (`--save-init`) loads as it is, and a file saved here loads into it.

use cps::prelude::*;
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The probability with which dropout zeroes a unit of `fc1`'s output.
pub const DROPOUT: f32 = 0.5;

/// A layer's weight and bias.
#[derive(Parameters)]
pub struct Layer {
    /// A convolution's (out, in, kh, kw), or a linear layer's (out, in).
    pub weight: Param,
    /// One per output channel or unit.
    pub bias: Param,
}

impl Layer {
    /// PyTorch's default initialisation of `Conv2d` and `Linear`: the
    /// weight and bias uniform in `±1/√fan_in` (its Kaiming-uniform with
    /// `a = √5` comes to that bound), `fan_in` being the product of the
    /// weight's dimensions after the first.
    fn uniform(weight_shape: &[usize], rng: &mut StdRng) -> Self {
        let fan_in: usize = weight_shape[1..].iter().product();
        let bound = 1.0 / (fan_in as f32).sqrt();
        let mut draw = |shape: &[usize]| {
            Param::new(ArrayD::from_shape_simple_fn(IxDyn(shape), || {
                rng.random_range(-bound..bound)
            }))
        };
        let weight = draw(weight_shape);
        let bias = draw(&weight_shape[..1]);
        Layer { weight, bias }
    }
}

/// The four layers' parameters.
#[derive(Parameters)]
pub struct Net {
    /// 1 → 10 channels, 5×5.
    pub conv1: Layer,
    /// 10 → 20 channels, 5×5.
    pub conv2: Layer,
    /// 320 → 50.
    pub fc1: Layer,
    /// 50 → 10.
    pub fc2: Layer,
}

impl Net {
    /// A network initialised as PyTorch initialises its layers, from our
    /// own generator seeded with `seed` (so not PyTorch's numbers: for
    /// those, load the reference's `--save-init` file).
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        Net {
            conv1: Layer::uniform(&[10, 1, 5, 5], &mut rng),
            conv2: Layer::uniform(&[20, 10, 5, 5], &mut rng),
            fc1: Layer::uniform(&[50, 320], &mut rng),
            fc2: Layer::uniform(&[10, 50], &mut rng),
        }
    }
}

/// The log-probabilities of the ten digits for a batch of images (N, 1,
/// 28, 28): (N, 10). With `dropout` (a seed), `fc1`'s output goes through
/// dropout with a mask drawn from that seed; without, the network is
/// deterministic (evaluation, or training without dropout).
#[differentiable]
pub fn log_probabilities(net: &Net, images: &Var, dropout: Option<u64>) -> Var {
    let pool = Pool2dOptions::new(2);
    let conv = Conv2dOptions::default();
    let x = images
        .conv2d(&net.conv1.weight, Some(net.conv1.bias.var()), conv)
        .max_pool2d(pool)
        .relu();
    let x = x
        .conv2d(&net.conv2.weight, Some(net.conv2.bias.var()), conv)
        .max_pool2d(pool)
        .relu();
    let x = (x.flatten(1, -1).linear(&net.fc1.weight) + &net.fc1.bias).relu();
    let x = match dropout {
        Some(seed) => x.dropout(DROPOUT, &mut StdRng::seed_from_u64(seed)),
        None => x,
    };
    (x.linear(&net.fc2.weight) + &net.fc2.bias).log_softmax()
}

/// The mean negative log-likelihood of a batch's labels.
#[differentiable]
pub fn batch_loss(net: &Net, images: &Var, labels: &[usize], dropout: Option<u64>) -> Var {
    log_probabilities(net, images, dropout).nll_loss(labels)
}

/// One step of SGD on one batch; returns the batch's loss (computed before
/// the update).
pub fn train_step(
    net: &mut Net,
    optimizer: &mut Sgd,
    images: &Var,
    labels: &[usize],
    dropout: Option<u64>,
) -> f32 {
    let loss = batch_loss(net, images, labels, dropout).backward();
    optimizer.step(net);
    loss
}

/// The predicted digit of each image, forward only (no dropout).
pub fn predict(net: &Net, images: &Var) -> Vec<usize> {
    log_probabilities(net, images, None)
        .eval()
        .argmax_axis(1)
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_shapes_are_pytorchs() {
        let net = Net::new(0);
        let mut seen = Vec::new();
        net.visit(&mut |name, p| seen.push((name.to_string(), p.shape().to_vec())));
        let expected = [
            ("conv1.weight", vec![10, 1, 5, 5]),
            ("conv1.bias", vec![10]),
            ("conv2.weight", vec![20, 10, 5, 5]),
            ("conv2.bias", vec![20]),
            ("fc1.weight", vec![50, 320]),
            ("fc1.bias", vec![50]),
            ("fc2.weight", vec![10, 50]),
            ("fc2.bias", vec![10]),
        ];
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(n, s)| (n.to_string(), s))
            .collect();
        assert_eq!(seen, expected);
        let bound = 1.0 / 320f32.sqrt();
        assert!(net.fc1.weight.value().iter().all(|v| v.abs() <= bound));
    }
}
