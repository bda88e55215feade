//! Consequentialist updates of dense layers over mini-batches (Paeedeh and
//! Ghiasi-Shirazi): each sample's output moves by the amount its own
//! gradient asks for, without the interference of the other samples.

use std::collections::HashMap;

use ndarray::{Array2, ArrayD, Axis};

use super::{Optimizer, ParamState};
use crate::element::Element;
use crate::ops::solve::{factor, solve_factored};
use crate::param::Param;
use crate::parameters::Parameters;
use crate::var::Tap;

/// The regulariser `ε` added to the batch's Gram matrix `A·Aᵀ` before it
/// is inverted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Damping<A> {
    /// `ε` itself (0 only when `A·Aᵀ` is known to be invertible: a
    /// batch no larger than the layer's width, with independent inputs).
    Fixed(A),
    /// `ε = c · tr(A·Aᵀ) / B`: `c` times the mean squared input norm, so
    /// that the damping follows the inputs' scale (the default, `c` =
    /// 1e-3). `A·Aᵀ` is singular when the batch exceeds the layer's width,
    /// and with always-zero inputs (digits' blank pixels, ReLU zeros).
    RelativeToTrace(A),
}

/// How the recorded output gradients relate to the per-sample gradients
/// `δ_b = ∂ℓ_b/∂z_b` the rule is written with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossScale<A> {
    /// The loss is the batch's mean: each recorded row is `δ_b / B`, with
    /// `B` the number of rows recorded (the default; right for a layer
    /// used once per step).
    Mean,
    /// The loss is the batch's sum: the recorded rows are the `δ_b`.
    Sum,
    /// The recorded rows are `δ_b / s` for this `s` (a layer used several
    /// times per step, such as a recurrent weight over `T` steps of a
    /// batch of `B`: `s = B`).
    Factor(A),
}

/// One dense layer whose update is consequentialist.
struct Layer<A: Element> {
    weight: u64,
    bias: Option<u64>,
    tap: Tap<A>,
}

/// An optimizer wrapper that replaces the gradient of registered dense
/// layers by the consequentialist direction, then lets the wrapped
/// optimizer `O` step with it.
///
/// For a layer `z = W·a + b` (`W` outputs × inputs, as
/// [`Var::linear`](crate::Var::linear) uses it) with the batch's inputs
/// `A` (B × n, one sample per row, a column of ones appended for the bias)
/// and per-sample output gradients `Δ` (B × m), SGD's step is
/// `−(μ/B)·Δᵀ·A` and the consequentialist step is
/// `−μ·Δᵀ·(A·Aᵀ + εI)⁻¹·A`: the affine projection algorithm, the batch
/// form of normalised LMS. With `ε = 0` it moves sample `b`'s output by
/// exactly `−μ·δ_b`. The bias is the weight of the column of ones, so
/// its direction comes from the same solve (not from its own gradient).
///
/// The wrapper records `A` and `Δ` through a [`Tap`] on each registered
/// weight, and hands the wrapped optimizer the direction
/// `Δᵀ·(A·Aᵀ + εI)⁻¹·A` (and its bias part) in place of the gradient; the
/// optimizer's own learning rate plays `μ`. Every other parameter is
/// updated with its gradient as usual. How it combines with each
/// optimizer's state:
///
/// - [`Sgd`](super::Sgd) without momentum: the paper's rule exactly.
/// - SGD with momentum or Nesterov: the momentum buffer accumulates the
///   consequentialist directions (the paper's "consequentialist
///   momentum"); Nesterov looks ahead along them.
/// - [`RmsProp`](super::RmsProp), [`Adam`](super::Adam),
///   [`AdamW`](super::AdamW), [`Adagrad`](super::Adagrad): their running
///   averages are of the directions, so the per-coordinate scaling is
///   applied on top of the projection (and weight decay, where the
///   optimizer adds it, is added to the direction).
///
/// A registered weight's gradient from products its tap does not record
/// (a use outside `linear` or a matrix-times-vector `matmul`) is not part
/// of the direction.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::optim::{Consequential, Damping, LossScale, Optimizer, Sgd};
/// use ndarray::array;
///
/// // A linear layer z = W·x + b, two samples, error e = z − t.
/// let mut model = vec![Param::new(array![[0.5f64, -1.0, 2.0]]), Param::new(array![0.1f64])];
/// let x = Var::constant(array![[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]);
/// let t = Var::constant(array![[1.0], [-1.0]]);
/// let mut optimizer = Consequential::new(Sgd::new(0.5))
///     .damping(Damping::Fixed(0.0))
///     .loss_scale(LossScale::Sum);
/// optimizer.layer(&model[0], Some(&model[1]));
///
/// let outputs = |model: &Vec<Param<f64>>| -> Vec<f64> {
///     let (w, b) = (model[0].array(), model[1].array()[0]);
///     x.array().outer_iter().map(|row| row.iter().zip(w.iter()).map(|(a, w)| a * w).sum::<f64>() + b).collect()
/// };
/// let before = outputs(&model);
/// // The loss Σ_b ½(z_b − t_b)²: δ_b = z_b − t_b.
/// lazy(|k: &mut dyn FnMut(Var<f64>)| {
///     x.linear(&model[0]).bind(|y| (y + &model[1]).bind(|z| (z - &t).bind(|e| {
///         e.square().bind(|s| s.sum().bind(|l| (l * 0.5).bind(&mut *k)))
///     })))
/// })
/// .backward();
/// optimizer.step(&mut model);
/// // Each output moved half way to its target: −μ·δ_b.
/// let after = outputs(&model);
/// let targets = [1.0, -1.0];
/// for b in 0..2 {
///     let wanted = before[b] - 0.5 * (before[b] - targets[b]);
///     assert!((after[b] - wanted).abs() < 1e-12);
/// }
/// ```
pub struct Consequential<O, A: Element = f32> {
    inner: O,
    damping: Damping<A>,
    scale: LossScale<A>,
    layers: Vec<Layer<A>>,
    /// The directions of this step, by parameter, until they are used.
    directions: HashMap<u64, ArrayD<A>>,
}

impl<O: Optimizer<A>, A: Element> Consequential<O, A> {
    /// Wraps `inner`, with `ε = 1e-3 · tr(A·Aᵀ)/B` and a batch-mean loss;
    /// register the dense layers with [`layer`](Consequential::layer).
    pub fn new(inner: O) -> Self {
        Consequential {
            inner,
            damping: Damping::RelativeToTrace(A::from_f64_lossy(1e-3)),
            scale: LossScale::Mean,
            layers: Vec::new(),
            directions: HashMap::new(),
        }
    }

    /// Sets the regulariser `ε` (see [`Damping`]).
    ///
    /// # Panics
    /// When the value is negative or NaN.
    pub fn damping(mut self, damping: Damping<A>) -> Self {
        let (Damping::Fixed(value) | Damping::RelativeToTrace(value)) = damping;
        super::check_non_negative("Consequential", "damping", value);
        self.damping = damping;
        self
    }

    /// Says how the recorded output gradients relate to the per-sample
    /// ones (see [`LossScale`]; a batch mean by default).
    pub fn loss_scale(mut self, scale: LossScale<A>) -> Self {
        self.scale = scale;
        self
    }

    /// Registers a dense layer: its `weight` (outputs × inputs, used
    /// through [`Var::linear`](crate::Var::linear) or as the matrix of a
    /// matrix-times-vector product) and its `bias`, if it has one. The
    /// weight is tapped from now on.
    pub fn layer(&mut self, weight: &Param<A>, bias: Option<&Param<A>>) -> &mut Self {
        self.layers.push(Layer {
            weight: weight.id(),
            bias: bias.map(Param::id),
            tap: weight.tap(),
        });
        self
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// The wrapped optimizer, to change its settings.
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }

    /// Computes this step's direction of every registered layer whose tap
    /// recorded products.
    fn prepare(&mut self) {
        self.directions.clear();
        for layer in &self.layers {
            let Some((inputs, deltas)) = layer.tap.take() else {
                continue;
            };
            let (weight, bias) = consequential_direction(
                &inputs,
                &deltas,
                self.damping,
                self.scale,
                layer.bias.is_some(),
            );
            self.directions.insert(layer.weight, weight.into_dyn());
            if let (Some(id), Some(bias)) = (layer.bias, bias) {
                self.directions.insert(id, bias.into_dyn());
            }
        }
    }
}

/// The direction `Xᵀ·A` (outputs × inputs) and, with a bias, `Xᵀ·1`,
/// where `X = (A'·A'ᵀ + εI)⁻¹·δ`, `A'` the inputs with a column of ones
/// when there is a bias, and `δ` the per-sample gradients.
fn consequential_direction<A: Element>(
    inputs: &Array2<A>,
    deltas: &Array2<A>,
    damping: Damping<A>,
    scale: LossScale<A>,
    bias: bool,
) -> (Array2<A>, Option<ndarray::Array1<A>>) {
    let rows = inputs.nrows();
    let mut gram = inputs.dot(&inputs.t());
    if bias {
        gram.mapv_inplace(|g| g + A::one());
    }
    let epsilon = match damping {
        Damping::Fixed(e) => e,
        Damping::RelativeToTrace(c) => {
            c * gram.diag().iter().fold(A::zero(), |s, &g| s + g) / A::from_f64_lossy(rows as f64)
        }
    };
    gram.diag_mut().mapv_inplace(|g| g + epsilon);
    let per_sample = match scale {
        LossScale::Mean => A::from_f64_lossy(rows as f64),
        LossScale::Sum => A::one(),
        LossScale::Factor(s) => s,
    };
    let mut solved = deltas.mapv(|d| d * per_sample);
    let l = factor("Consequential (A·Aᵀ + εI)", gram.view());
    solve_factored(l.view(), solved.view_mut());
    let weight = solved.t().dot(inputs);
    let bias = bias.then(|| solved.sum_axis(Axis(0)));
    (weight, bias)
}

impl<O: Optimizer<A>, A: Element> Optimizer<A> for Consequential<O, A> {
    /// Updates `value` with this step's consequentialist direction when
    /// it has one, else with `grad`.
    fn update(&mut self, id: u64, value: &mut ArrayD<A>, grad: &mut ArrayD<A>) {
        match self.directions.remove(&id) {
            Some(mut direction) => {
                if direction.shape() != value.shape() {
                    crate::ops::shape_mismatch(
                        "Consequential",
                        value.shape(),
                        direction.shape(),
                        "a registered weight must be outputs × inputs, its bias of the outputs' length",
                    );
                }
                self.inner.update(id, value, &mut direction)
            }
            None => {
                // A frozen weight records nothing, but then it takes no
                // step either: a weight here was used, and not seen.
                if let Some(k) = self.layers.iter().position(|l| l.weight == id) {
                    panic!(
                        "Consequential: registered layer {k} has a gradient, but its weight's tap \
                         recorded no products: the weight was used through an operation taps do \
                         not see (such as `x.matmul(&w)`); use `x.linear(&w)` (w as outputs × \
                         inputs) or the matrix-times-vector `w.matmul(&x)`"
                    );
                }
                self.inner.update(id, value, grad)
            }
        }
    }

    fn step(&mut self, model: &mut dyn Parameters<A>) {
        self.prepare();
        model.visit_mut(&mut |_, param: &mut Param<A>| super::step_param(self, param));
        self.directions.clear();
    }

    fn learning_rate(&self) -> A {
        self.inner.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: A) {
        self.inner.set_learning_rate(lr);
    }

    fn param_state(&self, id: u64) -> Option<ParamState<A>> {
        self.inner.param_state(id)
    }

    fn set_param_state(&mut self, id: u64, state: ParamState<A>) -> Result<(), String> {
        self.inner.set_param_state(id, state)
    }
}
