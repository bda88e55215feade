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

/// Where the dropout masks of a run of consecutive images of a batch come
/// from: the step's seed, and the index in the whole batch of the run's
/// first image. Each image's mask is drawn from a generator of its own,
/// seeded with the step's seed and the image's index, so that the masks do
/// not depend on how the batch is split between workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropout {
    /// The step's seed.
    pub seed: u64,
    /// The index in the batch of the first image.
    pub first: usize,
}

impl Dropout {
    /// The masks of a whole batch, drawn from `seed`.
    #[cfg(test)]
    pub fn whole_batch(seed: u64) -> Self {
        Dropout { seed, first: 0 }
    }

    /// The inverted-dropout mask of `shape` (images, units): each unit is
    /// kept with probability `1 - DROPOUT`, kept ones scaled by `1 / (1 -
    /// DROPOUT)`, dropped ones 0. Row `r` is image `first + r`'s, drawn
    /// unit by unit from its own generator (see [`image_seed`]).
    pub fn mask(&self, shape: &[usize]) -> Var {
        let &[images, units] = shape else {
            panic!("Dropout::mask: expected (images, units), got {shape:?}");
        };
        let scale = 1.0 / (1.0 - DROPOUT);
        let mut values = Vec::with_capacity(images * units);
        for image in self.first..self.first + images {
            let mut rng = StdRng::seed_from_u64(image_seed(self.seed, image));
            values.extend((0..units).map(|_| {
                if rng.random_bool(f64::from(1.0 - DROPOUT)) {
                    scale
                } else {
                    0.0
                }
            }));
        }
        Var::constant(
            ArrayD::from_shape_vec(IxDyn(shape), values).expect("as many values as the shape"),
        )
    }
}

/// The seed of the dropout mask of image `image` of a step seeded with
/// `seed`: the two mixed (SplitMix64's finaliser), so that neighbouring
/// images, and the same image in different steps, get unrelated streams.
pub fn image_seed(seed: u64, image: usize) -> u64 {
    let mut z = (seed ^ (image as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The log-probabilities of the ten digits for a batch of images (N, 1,
/// 28, 28): (N, 10). With `dropout`, `fc1`'s output goes through dropout
/// with the masks it draws; without, the network is deterministic
/// (evaluation, or training without dropout).
#[differentiable]
pub fn log_probabilities(net: &Net, images: &Var, dropout: Option<Dropout>) -> Var {
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
        // fc1's output is (images, fc1's units).
        Some(dropout) => x * dropout.mask(&[images.shape()[0], net.fc1.bias.len()]),
        None => x,
    };
    (x.linear(&net.fc2.weight) + &net.fc2.bias).log_softmax()
}

/// The mean negative log-likelihood of a batch's labels.
#[differentiable]
pub fn batch_loss(net: &Net, images: &Var, labels: &[usize], dropout: Option<Dropout>) -> Var {
    log_probabilities(net, images, dropout).nll_loss(labels)
}

/// [`batch_loss`] of a worker's share of a batch, times `weight` (the
/// share's fraction of the batch), so that the workers' losses, and their
/// gradients, add up to the whole batch's.
#[differentiable]
pub fn share_loss(
    net: &Net,
    images: &Var,
    labels: &[usize],
    dropout: Option<Dropout>,
    weight: f32,
) -> Var {
    batch_loss(net, images, labels, dropout) * weight
}

/// One step of SGD on one batch, on one thread, without the workers'
/// machinery: what the tests hold the training loop to. Returns the
/// batch's loss (computed before the update). With `dropout` (the step's
/// seed), the masks are [`Dropout::whole_batch`]'s.
#[cfg(test)]
pub fn train_step(
    net: &mut Net,
    optimizer: &mut Sgd,
    images: &Var,
    labels: &[usize],
    dropout: Option<u64>,
) -> f32 {
    let dropout = dropout.map(Dropout::whole_batch);
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

    #[test]
    fn each_images_mask_is_its_own_whatever_the_split() {
        let seed = 17;
        let whole = Dropout::whole_batch(seed).mask(&[10, 50]);
        let (head, tail) = (
            Dropout { seed, first: 0 }.mask(&[3, 50]),
            Dropout { seed, first: 3 }.mask(&[7, 50]),
        );
        let whole = whole.array();
        assert_eq!(whole.slice(ndarray::s![..3, ..]).into_dyn(), head.array());
        assert_eq!(whole.slice(ndarray::s![3.., ..]).into_dyn(), tail.array());
        // Another step's masks are others.
        assert_ne!(
            Dropout::whole_batch(seed + 1).mask(&[10, 50]).array(),
            whole
        );
    }

    #[test]
    fn the_mask_is_inverted_dropout_at_one_half() {
        let mask = Dropout::whole_batch(3).mask(&[400, 50]);
        let mask = mask.array();
        assert!(mask.iter().all(|&m| m == 0.0 || m == 2.0));
        // 20,000 draws: the kept fraction's standard deviation is 0.0035,
        // so a fair mask is within 0.01 of one half (and the seed is fixed).
        let kept = mask.iter().filter(|&&m| m > 0.0).count() as f64 / mask.len() as f64;
        assert!((kept - 0.5).abs() < 0.01, "kept {kept}");
        // Neighbouring images' rows are not copies of each other.
        let rows: Vec<_> = mask.outer_iter().collect();
        assert!(rows.windows(2).all(|pair| pair[0] != pair[1]));
    }
}
