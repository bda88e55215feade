//! Adagrad: per-coordinate learning rates from the sum of squared gradients.

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn, Zip};

use super::{Optimizer, ParamState, check_non_negative, check_shapes};
use crate::element::Element;
use crate::execution::second_core;
use crate::kernels::simd::vectorized;
use crate::memory;
use crate::param::Param;
use crate::parameters::Parameters;

/// Adagrad (Duchi et al., 2011), as `torch.optim.Adagrad`.
///
/// With gradient `g`, parameter `p`, learning rate `lr`, learning-rate
/// decay `η`, weight decay `wd`, the parameter's step count `t` (from 1)
/// and its accumulator `s` (starting at the initial accumulator value):
///
/// ```text
/// lr_t = lr / (1 + (t − 1)·η)
/// g ← g + wd·p
/// s ← s + g²
/// p ← p − lr_t · g / (√s + ε)
/// ```
///
/// Defaults: `η = 0`, `wd = 0`, initial accumulator 0, `ε = 1e-10`.
/// With [`eps_inside_root`](Adagrad::eps_inside_root), the last line is
/// `p ← p − lr_t · g / √(s + ε)`, the rule of Karpathy's min-char-rnn.
///
/// [`step`](Optimizer::step) updates an `f32` weight matrix whose gradient
/// comes from products deferred by the backward pass (a weight used one
/// vector at a time, node by node) as that gradient is computed, tile by
/// tile, on processors with AVX2 (sixteen lanes wide with AVX-512): the
/// gradient is never stored, and the update's square roots and divisions
/// partly overlap the product's multiply-adds. The results are the same
/// bits as the plain update.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::optim::{Adagrad, Optimizer};
/// use ndarray::array;
///
/// let mut w = Param::new(array![1.0f64]);
/// let mut adagrad = Adagrad::new(0.5).eps(0.0);
/// w.var().accumulate(array![2.0].into_dyn());
/// adagrad.step(&mut w);
/// // s = 4: w = 1 − 0.5 · 2 / 2
/// assert_eq!(w.value()[0], 0.5);
/// ```
#[derive(Clone, Debug)]
pub struct Adagrad<A: Element = f32> {
    lr: A,
    lr_decay: A,
    weight_decay: A,
    initial_accumulator_value: A,
    eps: A,
    eps_inside_root: bool,
    states: HashMap<u64, AdagradState<A>>,
}

#[derive(Clone, Debug)]
struct AdagradState<A> {
    step: u64,
    sum: ArrayD<A>,
}

impl<A: Element> Adagrad<A> {
    /// Adagrad with learning rate `lr` (PyTorch's default is 0.01) and the
    /// other hyperparameters at their defaults.
    ///
    /// # Panics
    /// When `lr` is negative or NaN.
    pub fn new(lr: A) -> Self {
        check_non_negative("Adagrad", "learning rate", lr);
        Adagrad {
            lr,
            lr_decay: A::zero(),
            weight_decay: A::zero(),
            initial_accumulator_value: A::zero(),
            eps: A::from_f64_lossy(1e-10),
            eps_inside_root: false,
            states: HashMap::new(),
        }
    }

    /// Learning-rate decay `η` (default 0): the `t`-th step of a parameter
    /// uses `lr / (1 + (t − 1)·η)`.
    ///
    /// # Panics
    /// When `lr_decay` is negative or NaN.
    pub fn lr_decay(mut self, lr_decay: A) -> Self {
        check_non_negative("Adagrad", "learning-rate decay", lr_decay);
        self.lr_decay = lr_decay;
        self
    }

    /// L2 penalty `wd` added to the gradient as `wd·p` (default 0).
    ///
    /// # Panics
    /// When `weight_decay` is negative or NaN.
    pub fn weight_decay(mut self, weight_decay: A) -> Self {
        check_non_negative("Adagrad", "weight decay", weight_decay);
        self.weight_decay = weight_decay;
        self
    }

    /// The value every accumulator starts from (default 0). A positive
    /// value damps the first steps, which otherwise move each coordinate
    /// by about `lr`.
    ///
    /// # Panics
    /// When `value` is negative or NaN.
    pub fn initial_accumulator_value(mut self, value: A) -> Self {
        check_non_negative("Adagrad", "initial accumulator value", value);
        self.initial_accumulator_value = value;
        self
    }

    /// `ε`, added to the denominator for numerical stability (default 1e-10).
    ///
    /// # Panics
    /// When `eps` is negative or NaN.
    pub fn eps(mut self, eps: A) -> Self {
        check_non_negative("Adagrad", "eps", eps);
        self.eps = eps;
        self
    }

    /// Adds `ε` under the square root, `p ← p − lr_t · g / √(s + ε)`,
    /// instead of PyTorch's `√s + ε`: the update of Karpathy's
    /// min-char-rnn and of the character models of Lantern's evaluation
    /// (with `ε = 1e-8`, after clipping the gradients to `[−5, 5]` with
    /// [`clip_grad_value`](crate::optim::clip_grad_value)).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use cps_runtime::optim::{Adagrad, Optimizer};
    /// use ndarray::array;
    ///
    /// let mut w = Param::new(array![1.0f64]);
    /// let mut adagrad = Adagrad::new(0.5).eps(5.0).eps_inside_root();
    /// w.var().accumulate(array![2.0].into_dyn());
    /// adagrad.step(&mut w);
    /// // s = 4: w = 1 − 0.5 · 2 / √(4 + 5)
    /// assert!((w.value()[0] - (1.0 - 1.0 / 3.0)).abs() < 1e-15);
    /// ```
    pub fn eps_inside_root(mut self) -> Self {
        self.eps_inside_root = true;
        self
    }
}

impl<A: Element> Adagrad<A> {
    /// The state kept under `id` (created for a value of `shape`), one
    /// step on, and this step's learning rate.
    fn advance(&mut self, id: u64, shape: &[usize]) -> (&mut AdagradState<A>, A) {
        let initial = self.initial_accumulator_value;
        let state = self.states.entry(id).or_insert_with(|| AdagradState {
            step: 0,
            sum: ArrayD::from_elem(IxDyn(shape), initial),
        });
        state.step += 1;
        // The step count is exact in f64 long past any real training run.
        let decay = A::from_f64_lossy((state.step - 1) as f64);
        let lr = self.lr / (A::one() + decay * self.lr_decay);
        (state, lr)
    }

    /// [`Optimizer::step`] on a matrix whose gradient is mostly deferred
    /// products (a weight used node by node): the update is applied as the
    /// product is computed, tile by tile, so that the divisions and square
    /// roots run beside the multiply-adds and the gradient is never
    /// stored. The same bits as the product followed by
    /// [`update`](Optimizer::update). Returns `false`, touching nothing,
    /// when the parameter has no deferred products or no kernel fits (then
    /// the plain step applies), or when the second core would split the
    /// work.
    fn step_from_deferred_rows(&mut self, param: &mut Param<A>) -> bool {
        let k = param.var().deferred_rows();
        let &[rows, cols] = param.shape() else {
            return false;
        };
        let shape = [rows, cols];
        // Where the plain step's product would run the same tiles, so that
        // both give the same bits.
        let fits = param.is_trainable()
            && !self.eps_inside_root
            && fused::fits::<A>(k)
            && crate::execution::products::deferred_product_uses_tiles(rows, cols, k)
            && param.array().is_standard_layout()
            && param
                .var()
                .grad_buffer()
                .is_none_or(|g| g.shape() == shape && g.is_standard_layout())
            && self
                .states
                .get(&param.id())
                .is_none_or(|s| s.sum.shape() == shape && s.sum.is_standard_layout());
        if !fits {
            return false;
        }
        let Some((us, vs)) = param.var().take_deferred_rows() else {
            return false;
        };
        let dense = param.var().take_grad_buffer();
        let id = param.id();
        let (wd, eps) = (self.weight_decay, self.eps);
        let (state, lr) = self.advance(id, &shape);
        param.update_value(|value| {
            let done = fused::step_from_products(
                us.view(),
                vs.view(),
                dense.as_ref().and_then(|d| d.as_slice()),
                value.as_slice_mut().expect("a standard-layout value"),
                state.sum.as_slice_mut().expect("a standard-layout sum"),
                [lr, wd, eps],
            );
            assert!(done, "Adagrad: the fused kernel declined a fitting product");
        });
        memory::recycle(us.into_dyn());
        memory::recycle(vs.into_dyn());
        if let Some(dense) = dense {
            param.give_back_grad(dense);
        }
        true
    }
}

impl<A: Element> Optimizer<A> for Adagrad<A> {
    /// As the provided method, but a matrix whose gradient comes from
    /// deferred products is updated as the product is computed (see
    /// `step_from_deferred_rows`): the same values, faster.
    fn step(&mut self, model: &mut dyn Parameters<A>) {
        model.visit_mut(&mut |_, param: &mut Param<A>| {
            if !self.step_from_deferred_rows(param) {
                super::step_param(self, param);
            }
        });
    }

    fn update(&mut self, id: u64, value: &mut ArrayD<A>, grad: &mut ArrayD<A>) {
        check_shapes("Adagrad", value, grad, self.states.get(&id).map(|s| &s.sum));
        let (wd, eps, inside) = (self.weight_decay, self.eps, self.eps_inside_root);
        let (state, lr) = self.advance(id, value.shape());
        let update = |p: &mut A, g: A, s: &mut A| {
            let g = g + wd * *p;
            *s += g * g;
            let root = if inside {
                (*s + eps).sqrt()
            } else {
                s.sqrt() + eps
            };
            *p -= lr * g / root;
        };
        // Split like the matrix kernels' rows when on a second core.
        let rows = value.shape().first().copied().unwrap_or(1).max(1);
        match (
            value.as_slice_mut(),
            grad.as_slice(),
            state.sum.as_slice_mut(),
        ) {
            // The common case, a loop the compiler vectorises.
            (Some(values), Some(grads), Some(sums)) => {
                let run = |values: &mut [A], grads: &[A], sums: &mut [A]| {
                    vectorized(|| {
                        for ((p, &g), s) in values.iter_mut().zip(grads).zip(sums) {
                            update(p, g, s);
                        }
                    })
                };
                match second_core::split_point(rows, values.len()) {
                    Some(half) => {
                        let at = half * (values.len() / rows);
                        let (v0, v1) = values.split_at_mut(at);
                        let (g0, g1) = grads.split_at(at);
                        let (s0, s1) = sums.split_at_mut(at);
                        second_core::split_with_partner(|| run(v0, g0, s0), || run(v1, g1, s1));
                    }
                    None => run(values, grads, sums),
                }
            }
            _ => Zip::from(value)
                .and(&*grad)
                .and(&mut state.sum)
                .for_each(|p, &g, s| update(p, g, s)),
        }
    }

    fn learning_rate(&self) -> A {
        self.lr
    }

    fn param_state(&self, id: u64) -> Option<ParamState<A>> {
        let state = self.states.get(&id)?;
        Some(ParamState::of(state.step, [("sum", Some(&state.sum))]))
    }

    fn set_param_state(&mut self, id: u64, state: ParamState<A>) -> Result<(), String> {
        let step = state.step;
        let (mut required, _) = state.take("Adagrad", &["sum"], &[])?;
        let sum = required.pop().expect("one buffer asked for");
        self.states.insert(id, AdagradState { step, sum });
        Ok(())
    }

    fn set_learning_rate(&mut self, lr: A) {
        check_non_negative("Adagrad", "learning rate", lr);
        self.lr = lr;
    }
}

mod fused;

#[cfg(test)]
#[path = "adagrad/fused_tests.rs"]
mod fused_tests;
