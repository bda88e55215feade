//! Normalisation layers (`layer_norm`, `batch_norm`) and channel dropout
//! (`dropout2d`).
//!
//! Both norms subtract a mean and divide by a standard deviation over a
//! group of elements (a row of the last axes for the layer norm, a channel
//! across the batch for the batch norm), then scale and shift by an
//! optional affine weight and bias. With `x̂ = (x - mean)·r`, `r = 1 /
//! sqrt(var + eps)` and `ĝ = g·weight`, the input's gradient over a group
//! of `m` elements whose statistics were computed from it is
//! `r·(ĝ - mean(ĝ) - x̂·mean(ĝ·x̂))`; the weight's is `Σ g·x̂` and the
//! bias's `Σ g`. Only the per-group mean and `r` are kept for the backward
//! step; `x̂` is recomputed from the input.

use ndarray::{Array1, ArrayD};
use rand::Rng;
use rand::distr::{Bernoulli, Distribution};

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::memory;
use crate::ops::conv::{accumulate_flat, row_major, standard};
use crate::ops::shape_mismatch;
use crate::var::Var;

/// The running statistics of a batch norm, kept by the caller between
/// steps: the per-channel `mean` and `var` (unbiased) that
/// [`batch_norm`](Var::batch_norm) updates in training and
/// [`batch_norm_eval`](Var::batch_norm_eval) normalises with, the
/// `momentum` of the update (`running = (1 - momentum)·running +
/// momentum·batch`) and the `eps` added to the variance. [`new`](Self::new)
/// starts as PyTorch does: mean 0, variance 1, momentum 0.1, eps 1e-5.
///
/// ```
/// use cps_runtime::ops::norm::BatchNormStats;
///
/// let stats = BatchNormStats::<f32>::new(3);
/// assert_eq!(stats.var.to_vec(), vec![1.0, 1.0, 1.0]);
/// assert_eq!(stats.momentum, 0.1);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormStats<A: Element> {
    /// The running mean of each channel.
    pub mean: Array1<A>,
    /// The running unbiased variance of each channel.
    pub var: Array1<A>,
    /// The weight of each batch in the running statistics, in `[0, 1]`.
    pub momentum: A,
    /// Added to the variance before its square root.
    pub eps: A,
}

impl<A: Element> BatchNormStats<A> {
    /// Statistics of `channels` channels: mean 0, variance 1, momentum
    /// 0.1, eps 1e-5.
    pub fn new(channels: usize) -> Self {
        BatchNormStats {
            mean: Array1::zeros(channels),
            var: Array1::ones(channels),
            momentum: A::from_f64_lossy(0.1),
            eps: A::from_f64_lossy(1e-5),
        }
    }
}

/// `Σ values`.
fn sum<A: Element>(values: impl Iterator<Item = A>) -> A {
    values.fold(A::zero(), |acc, v| acc + v)
}

/// Checks that an affine `weight` or `bias` (named `what`) has `shape`.
#[track_caller]
fn check_affine<A: Element>(
    op: &str,
    what: &str,
    param: Option<&Var<A>>,
    shape: &[usize],
    input: &[usize],
) {
    if let Some(param) = param
        && param.shape() != shape
    {
        shape_mismatch(
            op,
            input,
            param.shape(),
            &format!("the {what} must have the normalised shape {shape:?}"),
        );
    }
}

/// The per-group statistics of a normalisation and how they were found.
struct Groups<A> {
    /// The mean subtracted from each group.
    mean: Vec<A>,
    /// `1 / sqrt(var + eps)` of each group.
    scale: Vec<A>,
    /// Whether the statistics are the groups' own (training): then the
    /// input's gradient goes through them too.
    own: bool,
}

/// How the elements of a tensor fall into groups and affine parameters:
/// `outer` blocks of `groups` groups of `inner` contiguous elements (a
/// layer norm: one block, each row a group, `inner` = the row; a batch
/// norm: `outer` = the batch, a group per channel, `inner` = the
/// positions). The affine parameter of an element is indexed by its group
/// (batch norm) or by its position within the group (layer norm).
#[derive(Clone, Copy)]
struct Layout {
    outer: usize,
    groups: usize,
    inner: usize,
    /// The weight and bias are per element of a group, not per group.
    per_element: bool,
}

impl Layout {
    /// The elements of each group, over the blocks.
    fn count(&self) -> usize {
        self.outer * self.inner
    }

    /// Calls `f(group, run)` on every contiguous run of a group's
    /// elements in `values`, in order.
    fn runs<A>(&self, values: &[A], mut f: impl FnMut(usize, &[A])) {
        self.paired_runs(values, values, |group, run, _| f(group, run));
    }

    /// Calls `f(group, run of a, run of b)` on the matching runs of two
    /// tensors of the same layout.
    fn paired_runs<A, B>(&self, a: &[A], b: &[B], mut f: impl FnMut(usize, &[A], &[B])) {
        if self.groups * self.inner == 0 {
            return;
        }
        let block = self.groups * self.inner;
        for (a, b) in a.chunks_exact(block).zip(b.chunks_exact(block)) {
            let runs = a.chunks_exact(self.inner).zip(b.chunks_exact(self.inner));
            for (group, (a, b)) in runs.enumerate() {
                f(group, a, b);
            }
        }
    }
}

/// The mean and biased variance of each group of `values`.
fn statistics<A: Element>(values: &[A], layout: Layout) -> (Vec<A>, Vec<A>) {
    let count = A::from_usize(layout.count()).expect("a count fits a float");
    let mut mean = vec![A::zero(); layout.groups];
    layout.runs(values, |g, run| mean[g] += sum(run.iter().copied()));
    mean.iter_mut().for_each(|m| *m /= count);
    let mut var = vec![A::zero(); layout.groups];
    layout.runs(values, |g, run| {
        let m = mean[g];
        var[g] += sum(run.iter().map(|&v| (v - m) * (v - m)));
    });
    var.iter_mut().for_each(|v| *v /= count);
    (mean, var)
}

/// The normalisation of `x` by `stats`, then the affine map: the forward
/// value and the backward step (see the module documentation).
fn normalise<A: Element>(
    op: &'static str,
    x: &Var<A>,
    weight: Option<&Var<A>>,
    bias: Option<&Var<A>>,
    layout: Layout,
    stats: Groups<A>,
) -> Pending<A, impl BackwardStep<A> + use<A>> {
    let input = row_major(x.array());
    let weights = weight.map(|w| row_major(w.array()).into_owned());
    let biases = bias.map(|b| row_major(b.array()).into_owned());
    // The affine parameter index of element `i` of a run of group `g`.
    let param = move |g: usize, i: usize| if layout.per_element { i } else { g };
    let mut value = memory::scratch(x.array().raw_dim());
    let out = value.as_slice_mut().expect("a new buffer is standard");
    let mut at = 0;
    layout.runs(&input, |g, run| {
        let (m, r) = (stats.mean[g], stats.scale[g]);
        for (i, &v) in run.iter().enumerate() {
            let mut y = (v - m) * r;
            if let Some(w) = &weights {
                y *= w[param(g, i)];
            }
            if let Some(b) = &biases {
                y += b[param(g, i)];
            }
            out[at] = y;
            at += 1;
        }
    });
    let requires_grad = x.requires_grad()
        || weight.is_some_and(Var::requires_grad)
        || bias.is_some_and(Var::requires_grad);
    let (x, weight, bias) = (x.clone(), weight.cloned(), bias.cloned());
    Pending::new(
        op,
        value,
        requires_grad,
        move |_: &ArrayD<A>, grad: ArrayD<A>| {
            let grad = standard(grad);
            let grads = grad.as_slice().expect("standard layout");
            let input = row_major(x.array());
            let x_hat = |g: usize, v: A| (v - stats.mean[g]) * stats.scale[g];
            if let Some(bias) = bias.as_ref().filter(|b| b.requires_grad()) {
                accumulate_flat(bias, |gb| {
                    layout.runs(grads, |g, run| {
                        for (i, &d) in run.iter().enumerate() {
                            gb[param(g, i)] += d;
                        }
                    });
                });
            }
            if let Some(weight) = weight.as_ref().filter(|w| w.requires_grad()) {
                accumulate_flat(weight, |gw| {
                    layout.paired_runs(grads, &input, |g, run, xs| {
                        for (i, (&d, &v)) in run.iter().zip(xs).enumerate() {
                            gw[param(g, i)] += d * x_hat(g, v);
                        }
                    });
                });
            }
            if x.requires_grad() {
                let weights = weight.as_ref().map(|w| row_major(w.array()).into_owned());
                // ĝ = g·weight, element by element.
                let g_hat = |g: usize, i: usize, d: A| match &weights {
                    Some(w) => d * w[param(g, i)],
                    None => d,
                };
                // Per group: mean(ĝ) and mean(ĝ·x̂), when the statistics are
                // the input's own.
                let count = A::from_usize(layout.count()).expect("a count fits a float");
                let mut mean_g = vec![A::zero(); layout.groups];
                let mut mean_gx = vec![A::zero(); layout.groups];
                if stats.own {
                    layout.paired_runs(grads, &input, |g, run, xs| {
                        for (i, (&d, &v)) in run.iter().zip(xs).enumerate() {
                            let gh = g_hat(g, i, d);
                            mean_g[g] += gh;
                            mean_gx[g] += gh * x_hat(g, v);
                        }
                    });
                    mean_g.iter_mut().for_each(|m| *m /= count);
                    mean_gx.iter_mut().for_each(|m| *m /= count);
                }
                accumulate_flat(&x, |gx| {
                    let mut at = 0;
                    layout.paired_runs(grads, &input, |g, run, xs| {
                        for (i, (&d, &v)) in run.iter().zip(xs).enumerate() {
                            let gh = g_hat(g, i, d) - mean_g[g] - x_hat(g, v) * mean_gx[g];
                            gx[at] += stats.scale[g] * gh;
                            at += 1;
                        }
                    });
                });
            }
            memory::recycle(grad);
        },
    )
}

/// `1 / sqrt(var + eps)` of each variance.
fn reciprocal_deviations<A: Element>(var: impl Iterator<Item = A>, eps: A) -> Vec<A> {
    var.map(|v| (v + eps).sqrt().recip()).collect()
}

/// The layout of a batch norm's input (N, C, ...), checked.
#[track_caller]
fn channels<A: Element>(op: &str, x: &Var<A>, stats: &BatchNormStats<A>) -> Layout {
    let shape = x.shape();
    if shape.len() < 2 {
        panic!("{op}: expected an input (N, C, ...) of rank at least 2, got shape {shape:?}");
    }
    let channels = shape[1];
    if stats.mean.len() != channels || stats.var.len() != channels {
        shape_mismatch(
            op,
            shape,
            &[stats.mean.len()],
            &format!(
                "the running statistics must have one entry per channel ({channels}), got {} \
                 means and {} variances",
                stats.mean.len(),
                stats.var.len()
            ),
        );
    }
    Layout {
        outer: shape[0],
        groups: channels,
        inner: shape[2..].iter().product(),
        per_element: false,
    }
}

impl<A: Element> Var<A> {
    /// Layer normalisation over the last `axes` axes: each group of
    /// elements that share the leading indices is shifted to mean 0 and
    /// scaled to variance 1 (the biased variance, plus `eps`), then
    /// multiplied by `weight` and shifted by `bias` when given (each of
    /// the normalised shape, the last `axes` axes of the input).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f64, 3.0], [10.0, 10.0]]);
    /// let gain = Var::constant(array![2.0f64, 2.0]);
    /// let y = x.layer_norm(1, Some(&gain), None, 0.0);
    /// // Row 0: mean 2, deviation 1; row 1 is constant (0/0 with eps = 0).
    /// assert_eq!((y.array()[[0, 0]], y.array()[[0, 1]]), (-2.0, 2.0));
    /// assert!(y.array()[[1, 0]].is_nan());
    /// ```
    ///
    /// # Panics
    /// When `axes` is 0 or more than the rank, when the normalised shape
    /// is empty, or when the weight or the bias does not have the
    /// normalised shape.
    #[track_caller]
    pub fn layer_norm(
        &self,
        axes: usize,
        weight: Option<&Var<A>>,
        bias: Option<&Var<A>>,
        eps: A,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let op = "layer_norm";
        let shape = self.shape();
        assert!(
            (1..=shape.len()).contains(&axes),
            "layer_norm: normalises over the last 1 to {} axes of shape {shape:?}, got {axes}",
            shape.len()
        );
        let normalised = &shape[shape.len() - axes..];
        let inner: usize = normalised.iter().product();
        assert!(
            inner > 0,
            "layer_norm: the normalised shape {normalised:?} is empty (input shape {shape:?})"
        );
        check_affine(op, "weight", weight, normalised, shape);
        check_affine(op, "bias", bias, normalised, shape);
        let layout = Layout {
            outer: 1,
            groups: self.len() / inner,
            inner,
            per_element: true,
        };
        let (mean, var) = statistics(&row_major(self.array()), layout);
        let stats = Groups {
            mean,
            scale: reciprocal_deviations(var.into_iter(), eps),
            own: true,
        };
        normalise(op, self, weight, bias, layout, stats)
    }

    /// Batch normalisation in training, over an input (N, C, ...): each
    /// channel is shifted to mean 0 and scaled to variance 1 with the
    /// batch's own statistics (over N and the positions; the biased
    /// variance, plus `stats.eps`), then multiplied by `weight` and
    /// shifted by `bias` (vectors of C) when given. The running
    /// statistics are updated here: `mean ← (1 - momentum)·mean +
    /// momentum·batch mean`, likewise `var` with the batch's unbiased
    /// variance. For inference, use [`batch_norm_eval`](Var::batch_norm_eval).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use cps_runtime::ops::norm::BatchNormStats;
    /// use ndarray::array;
    ///
    /// // Two examples, one channel: values 1 and 3.
    /// let x = Var::constant(array![[1.0f64], [3.0]]);
    /// let mut stats = BatchNormStats::new(1);
    /// stats.eps = 0.0;
    /// let y = x.batch_norm(None, None, &mut stats);
    /// assert_eq!(y.array(), &array![[-1.0], [1.0]].into_dyn());
    /// // Running mean 0.9·0 + 0.1·2; variance 0.9·1 + 0.1·2 (unbiased).
    /// assert!((stats.mean[0] - 0.2).abs() < 1e-15 && (stats.var[0] - 1.1).abs() < 1e-15);
    /// ```
    ///
    /// # Panics
    /// When the input's rank is below 2, when a channel has fewer than 2
    /// elements in the batch, or when the weight, the bias or the running
    /// statistics do not have one entry per channel.
    #[track_caller]
    pub fn batch_norm(
        &self,
        weight: Option<&Var<A>>,
        bias: Option<&Var<A>>,
        stats: &mut BatchNormStats<A>,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let op = "batch_norm";
        let layout = channels(op, self, stats);
        check_affine(op, "weight", weight, &[layout.groups], self.shape());
        check_affine(op, "bias", bias, &[layout.groups], self.shape());
        let count = layout.count();
        assert!(
            count >= 2,
            "batch_norm: training needs more than one value per channel, got shape {:?}",
            self.shape()
        );
        let (mean, var) = statistics(&row_major(self.array()), layout);
        let keep = A::one() - stats.momentum;
        let unbiased = A::from_usize(count).expect("a count fits a float")
            / A::from_usize(count - 1).expect("a count fits a float");
        for c in 0..layout.groups {
            stats.mean[c] = keep * stats.mean[c] + stats.momentum * mean[c];
            stats.var[c] = keep * stats.var[c] + stats.momentum * var[c] * unbiased;
        }
        let groups = Groups {
            mean,
            scale: reciprocal_deviations(var.into_iter(), stats.eps),
            own: true,
        };
        normalise(op, self, weight, bias, layout, groups)
    }

    /// Batch normalisation for inference, over an input (N, C, ...): each
    /// channel is normalised with the running statistics (`(x - mean) /
    /// sqrt(var + eps)`), then multiplied by `weight` and shifted by
    /// `bias` when given. The statistics are not changed, and the input's
    /// gradient does not go through them (they are constants).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use cps_runtime::ops::norm::BatchNormStats;
    /// use ndarray::array;
    ///
    /// let mut stats = BatchNormStats::new(1);
    /// stats.mean[0] = 1.0;
    /// stats.var[0] = 4.0;
    /// stats.eps = 0.0;
    /// let x = Var::constant(array![[5.0f64]]);
    /// assert_eq!(x.batch_norm_eval(None, None, &stats).array()[[0, 0]], 2.0);
    /// ```
    ///
    /// # Panics
    /// When the input's rank is below 2, or when the weight, the bias or
    /// the statistics do not have one entry per channel.
    #[track_caller]
    pub fn batch_norm_eval(
        &self,
        weight: Option<&Var<A>>,
        bias: Option<&Var<A>>,
        stats: &BatchNormStats<A>,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let op = "batch_norm_eval";
        let layout = channels(op, self, stats);
        check_affine(op, "weight", weight, &[layout.groups], self.shape());
        check_affine(op, "bias", bias, &[layout.groups], self.shape());
        let groups = Groups {
            mean: stats.mean.to_vec(),
            scale: reciprocal_deviations(stats.var.iter().copied(), stats.eps),
            own: false,
        };
        normalise(op, self, weight, bias, layout, groups)
    }

    /// Channel dropout over an input (N, C, ...): each channel of each
    /// example (all its positions at once) is zeroed with probability `p`,
    /// and the kept ones are scaled by `1 / (1 - p)`. As
    /// [`dropout`](Var::dropout), the mask is drawn from `rng` when the
    /// operation runs, one draw per (example, channel) in row-major order,
    /// so a seeded generator reproduces it; `p = 0` is the identity and
    /// draws nothing.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::{ArrayD, IxDyn};
    /// use rand::SeedableRng;
    ///
    /// let x = Var::constant(ArrayD::<f64>::ones(IxDyn(&[2, 8, 3, 3])));
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    /// let y = lazy(|k: &mut dyn FnMut(Var<f64>)| x.dropout2d(0.5, &mut rng).bind(|y| k(y))).eval();
    /// // Every channel is all zeros or all twos.
    /// for channel in y.array().exact_chunks(IxDyn(&[1, 1, 3, 3])) {
    ///     assert!(channel.iter().all(|&v| v == 0.0) || channel.iter().all(|&v| v == 2.0));
    /// }
    /// ```
    ///
    /// # Panics
    /// When `p` is not in `[0, 1)`, or when the input's rank is below 2.
    #[track_caller]
    pub fn dropout2d<R: Rng + ?Sized>(
        &self,
        p: A,
        rng: &mut R,
    ) -> Pending<A, impl BackwardStep<A> + use<A, R>> {
        let shape = self.shape();
        let drop = p.to_f64_lossless();
        if !(0.0..1.0).contains(&drop) {
            panic!(
                "dropout2d: the drop probability p must be in [0, 1), got {p} (input shape \
                 {shape:?})"
            );
        }
        if shape.len() < 2 {
            panic!(
                "dropout2d: expected an input (N, C, ...) of rank at least 2, got shape {shape:?}"
            );
        }
        let channels = shape[0] * shape[1];
        let positions: usize = shape[2..].iter().product();
        // `None` when p = 0: nothing is dropped, so no mask is drawn or kept.
        let mask: Option<Vec<bool>> = (drop > 0.0).then(|| {
            let keep = Bernoulli::new(1.0 - drop).expect("1 - p is a probability");
            (0..channels).map(|_| keep.sample(rng)).collect()
        });
        let scale = (A::one() - p).recip();
        let value = match &mask {
            Some(mask) => {
                let input = row_major(self.array());
                let mut value = memory::scratch(self.array().raw_dim());
                let out = value.as_slice_mut().expect("a new buffer is standard");
                if positions > 0 {
                    for (c, (out, x)) in out
                        .chunks_exact_mut(positions)
                        .zip(input.chunks_exact(positions))
                        .enumerate()
                    {
                        let kept = mask[c];
                        out.iter_mut()
                            .zip(x)
                            .for_each(|(o, &v)| *o = if kept { v * scale } else { A::zero() });
                    }
                }
                value
            }
            None => self.array().clone(),
        };
        let x = self.clone();
        Pending::new(
            "dropout2d",
            value,
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                let mut grad = standard(grad);
                if let Some(mask) = mask
                    && positions > 0
                {
                    let grads = grad.as_slice_mut().expect("standard layout");
                    for (c, g) in grads.chunks_exact_mut(positions).enumerate() {
                        let kept = mask[c];
                        g.iter_mut()
                            .for_each(|g| *g = if kept { *g * scale } else { A::zero() });
                    }
                }
                x.accumulate(grad);
            },
        )
    }
}
