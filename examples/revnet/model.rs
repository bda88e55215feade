//! A convolutional RevNet (Gomez et al., 2017) and the ResNet of the same
//! blocks, as one model run two ways.
//!
//! ```text
//! stem     conv 3×3, 1 → 2C channels, padding 1, ReLU     28×28
//! pool     average 2×2                                  → 14×14
//! stage 1  depth/2 blocks on (x1, x2), C channels each
//! pool     average 2×2                                  → 7×7
//! stage 2  depth − depth/2 blocks
//! head     global average pool, linear 2C → 10
//! ```
//!
//! A block maps `(x1, x2)` to `y1 = x1 + F(x2)`, `y2 = x2 + G(y1)`, where
//! `F` and `G` are each conv 3×3 → ReLU → conv 3×3 (C → C, padding 1). Run
//! reversibly ([`Architecture::RevNet`]) a stage is one `reversible`
//! operation, which keeps only its output and rebuilds each block's input
//! from its output in the backward pass. Run plainly
//! ([`Architecture::ResNet`]) every block is bound as ordinary operations,
//! so every activation stays alive until the backward pass reaches it.
//! The function and the parameters are the same; only the memory differs.
//! The pooling between the stages is not reversible (it changes the size),
//! so it sits between two reversible sequences, as in the paper.

use cps::prelude::*;
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How the blocks of a stage are run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// As one reversible sequence: activations rebuilt, not kept.
    RevNet,
    /// As ordinary operations: every activation kept for the backward pass.
    ResNet,
}

impl Architecture {
    /// The name printed in tables and logs.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::RevNet => "RevNet",
            Architecture::ResNet => "ResNet",
        }
    }
}

/// A convolution's weight (out, in, 3, 3) and bias (out).
#[derive(Parameters)]
pub struct Conv<A: Element = f32> {
    /// (out, in, 3, 3).
    pub weight: Param<A>,
    /// One per output channel.
    pub bias: Param<A>,
}

impl<A: Element> Conv<A> {
    /// A 3×3 convolution initialised as PyTorch's `Conv2d`: uniform in
    /// `±1/√fan_in`, scaled by `gain`.
    fn new(inputs: usize, outputs: usize, gain: f64, rng: &mut StdRng) -> Self {
        let fan_in = inputs * 9;
        Conv {
            weight: uniform(&[outputs, inputs, 3, 3], fan_in, gain, rng),
            bias: uniform(&[outputs], fan_in, gain, rng),
        }
    }
}

/// A parameter of `shape` uniform in `±gain/√fan_in`.
fn uniform<A: Element>(shape: &[usize], fan_in: usize, gain: f64, rng: &mut StdRng) -> Param<A> {
    let bound = gain / (fan_in as f64).sqrt();
    Param::new(ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        A::from_f64_lossy(rng.random_range(-bound..bound))
    }))
}

/// A residual function, `F` or `G`: conv → ReLU → conv, C → C channels.
#[derive(Parameters)]
pub struct Residual<A: Element = f32> {
    /// The first convolution.
    pub first: Conv<A>,
    /// The second convolution.
    pub second: Conv<A>,
}

/// One additive coupling block: its two residual functions.
#[derive(Parameters)]
pub struct Block<A: Element = f32> {
    /// `y1 = x1 + F(x2)`.
    pub f: Residual<A>,
    /// `y2 = x2 + G(y1)`.
    pub g: Residual<A>,
}

/// The whole network's parameters.
#[derive(Parameters)]
pub struct Net<A: Element = f32> {
    /// 1 → 2C channels.
    pub stem: Conv<A>,
    /// The blocks at 14×14.
    pub stage1: Vec<Block<A>>,
    /// The blocks at 7×7.
    pub stage2: Vec<Block<A>>,
    /// (classes, 2C), as PyTorch's `Linear`.
    pub classifier_weight: Param<A>,
    /// One per class.
    pub classifier_bias: Param<A>,
}

impl<A: Element> Net<A> {
    /// A network of `depth` blocks of half-width `half` (C) for `classes`
    /// classes, drawn from `seed`. The second convolution of each residual
    /// function starts scaled down by `1/√depth`, so that the sum of many
    /// residuals starts near the identity and deep networks start stable.
    pub fn new(depth: usize, half: usize, classes: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let damp = 1.0 / (depth.max(1) as f64).sqrt();
        let residual = |rng: &mut StdRng| Residual {
            first: Conv::new(half, half, 1.0, rng),
            second: Conv::new(half, half, damp, rng),
        };
        let blocks = |count: usize, rng: &mut StdRng| -> Vec<Block<A>> {
            (0..count)
                .map(|_| Block {
                    f: residual(rng),
                    g: residual(rng),
                })
                .collect()
        };
        let stem = Conv::new(1, 2 * half, 1.0, &mut rng);
        let stage1 = blocks(depth / 2, &mut rng);
        let stage2 = blocks(depth - depth / 2, &mut rng);
        Net {
            stem,
            stage1,
            stage2,
            classifier_weight: uniform(&[classes, 2 * half], 2 * half, 1.0, &mut rng),
            classifier_bias: uniform(&[classes], 2 * half, 1.0, &mut rng),
        }
    }
}

/// `F(x)` or `G(x)`: conv → ReLU → conv.
#[differentiable]
pub fn residual<A: Element>(r: &Residual<A>, x: &Var<A>) -> Var<A> {
    let same = Conv2dOptions::default().with_padding(1);
    x.conv2d(&r.first.weight, Some(r.first.bias.var()), same)
        .relu()
        .conv2d(&r.second.weight, Some(r.second.bias.var()), same)
}

/// The blocks applied the ordinary way: every `F`, `G` and sum is bound, so
/// its result is kept until the backward pass.
#[differentiable]
pub fn plain_stage<A: Element>(blocks: &[Block<A>], x1: &Var<A>, x2: &Var<A>) -> (Var<A>, Var<A>) {
    let mut a = x1.clone();
    let mut b = x2.clone();
    for block in blocks {
        let f = residual(&block.f, &b);
        a = &a + &f;
        let g = residual(&block.g, &a);
        b = &b + &g;
    }
    (a, b)
}

/// The blocks as one reversible sequence: only the output is kept.
pub fn reversible_stage<'a, A: Element>(
    blocks: &'a [Block<A>],
    x1: &Var<A>,
    x2: &Var<A>,
) -> impl Computation<Output = (Var<A>, Var<A>)> + 'a {
    reversible(
        x1,
        x2,
        blocks,
        |block: &'a Block<A>, x| residual_owned(&block.f, x),
        |block: &'a Block<A>, x| residual_owned(&block.g, x),
    )
}

/// [`residual`] of a value the computation owns, as `reversible` hands
/// each block's input by value.
fn residual_owned<A: Element>(
    r: &Residual<A>,
    x: Var<A>,
) -> impl Computation<Output = Var<A>> + '_ {
    lazy(move |k: &mut dyn FnMut(Var<A>)| residual(r, &x).bind(k))
}

/// A stage of blocks on the halves `(x1, x2)`, run as `architecture` says.
#[differentiable]
pub fn stage<A: Element>(
    blocks: &[Block<A>],
    x1: &Var<A>,
    x2: &Var<A>,
    architecture: Architecture,
) -> (Var<A>, Var<A>) {
    match architecture {
        Architecture::RevNet => reversible_stage(blocks, x1, x2),
        Architecture::ResNet => plain_stage(blocks, x1, x2),
    }
}

/// The stage's halves joined along the channels and pooled 2×2, then split
/// again.
#[differentiable]
pub fn pool_halves<A: Element>(x1: &Var<A>, x2: &Var<A>) -> (Var<A>, Var<A>) {
    let half = x1.shape()[1];
    let pooled = concat(&[x1, x2], 1).avg_pool2d(Pool2dOptions::new(2));
    (pooled.slice(1, 0, half), pooled.slice(1, half, 2 * half))
}

/// The logits (N, classes) of a batch of images (N, 1, H, W).
#[differentiable]
pub fn logits<A: Element>(net: &Net<A>, images: &Var<A>, architecture: Architecture) -> Var<A> {
    let half = net.stem.bias.var().shape()[0] / 2;
    let same = Conv2dOptions::default().with_padding(1);
    let x = images
        .conv2d(&net.stem.weight, Some(net.stem.bias.var()), same)
        .relu()
        .avg_pool2d(Pool2dOptions::new(2));
    let x1 = x.slice(1, 0, half);
    let x2 = x.slice(1, half, 2 * half);
    let (y1, y2) = stage(&net.stage1, &x1, &x2, architecture);
    let (x1, x2) = pool_halves(&y1, &y2);
    let (y1, y2) = stage(&net.stage2, &x1, &x2, architecture);
    let features = concat(&[&y1, &y2], 1).flatten(2, -1).mean_axis(2);
    features.linear(&net.classifier_weight) + &net.classifier_bias
}

/// The mean cross-entropy of a batch's labels.
#[differentiable]
pub fn batch_loss<A: Element>(
    net: &Net<A>,
    images: &Var<A>,
    labels: &[usize],
    architecture: Architecture,
) -> Var<A> {
    logits(net, images, architecture).cross_entropy_mean(labels)
}

/// One training step's loss and the bytes of results alive at the end of
/// its forward pass (when the loss is computed, before any backward step).
pub struct Measured {
    /// The batch's mean cross-entropy.
    pub loss: f64,
    /// `live_result_bytes()` at the loss, above what was live before.
    pub forward_bytes: usize,
}

/// Runs the loss forward and backward (the gradients land on the
/// parameters), noting the live result bytes when the loss is reached.
pub fn loss_and_gradients<A: Element>(
    net: &Net<A>,
    images: &Var<A>,
    labels: &[usize],
    architecture: Architecture,
) -> Measured {
    let before = live_result_bytes();
    let mut forward_bytes = 0;
    let loss = lazy(|k: &mut dyn FnMut(Var<A>)| {
        batch_loss(net, images, labels, architecture).bind(|loss: Var<A>| {
            forward_bytes = live_result_bytes().saturating_sub(before);
            k(loss)
        })
    })
    .backward();
    Measured {
        loss: loss.to_f64_lossless(),
        forward_bytes,
    }
}
