//! Adam: momentum on the gradient, normalised by a running second moment.
//! The update shared with [`AdamW`](super::AdamW) lives here too.

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn, Zip};

use super::{Optimizer, ParamState, check_non_negative, check_shapes, check_unit_interval};
use crate::element::Element;

/// Adam (Kingma and Ba, 2015), as `torch.optim.Adam`.
///
/// With gradient `g`, parameter `p`, learning rate `lr`, betas `β₁, β₂`,
/// weight decay `wd` (an L2 penalty: see [`AdamW`](super::AdamW) for the
/// decoupled kind), the parameter's step count `t` (from 1), and moments
/// `m`, `v` starting at zero:
///
/// ```text
/// g ← g + wd·p
/// m ← β₁·m + (1 − β₁)·g
/// v ← β₂·v + (1 − β₂)·g²
/// v̂ ← max(v̂, v)                     (AMSGrad only; v̂ starts at zero)
/// p ← p − lr/(1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)    (v̂ = v without AMSGrad)
/// ```
///
/// Defaults (PyTorch's): `β = (0.9, 0.999)`, `ε = 1e-8`, `wd = 0`, no
/// AMSGrad. PyTorch's default learning rate is 1e-3.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::optim::{Adam, Optimizer};
/// use ndarray::array;
///
/// let mut w = Param::new(array![1.0f64, 1.0]);
/// let mut adam = Adam::new(0.01).betas(0.9, 0.999).eps(0.0);
/// w.var().accumulate(array![3.0, -0.5].into_dyn());
/// adam.step(&mut w);
/// // Bias correction makes the first step exactly lr·sign(g).
/// assert!((w.value()[0] - 0.99).abs() < 1e-15);
/// assert!((w.value()[1] - 1.01).abs() < 1e-15);
/// ```
#[derive(Clone, Debug)]
pub struct Adam<A: Element = f32> {
    core: AdamCore<A>,
    weight_decay: A,
}

/// The hyperparameters and state Adam and AdamW share, and their update.
#[derive(Clone, Debug)]
pub(super) struct AdamCore<A: Element> {
    pub(super) lr: A,
    beta1: A,
    beta2: A,
    eps: A,
    amsgrad: bool,
    states: HashMap<u64, AdamState<A>>,
}

#[derive(Clone, Debug)]
struct AdamState<A> {
    step: u64,
    exp_avg: ArrayD<A>,
    exp_avg_sq: ArrayD<A>,
    /// Only with AMSGrad.
    max_exp_avg_sq: Option<ArrayD<A>>,
}

impl<A: Element> AdamCore<A> {
    pub(super) fn new(optimizer: &str, lr: A) -> Self {
        check_non_negative(optimizer, "learning rate", lr);
        AdamCore {
            lr,
            beta1: A::from_f64_lossy(0.9),
            beta2: A::from_f64_lossy(0.999),
            eps: A::from_f64_lossy(1e-8),
            amsgrad: false,
            states: HashMap::new(),
        }
    }

    pub(super) fn set_lr(&mut self, optimizer: &str, lr: A) {
        check_non_negative(optimizer, "learning rate", lr);
        self.lr = lr;
    }

    pub(super) fn set_betas(&mut self, optimizer: &str, beta1: A, beta2: A) {
        check_unit_interval(optimizer, "beta1", beta1);
        check_unit_interval(optimizer, "beta2", beta2);
        self.beta1 = beta1;
        self.beta2 = beta2;
    }

    pub(super) fn set_eps(&mut self, optimizer: &str, eps: A) {
        check_non_negative(optimizer, "eps", eps);
        self.eps = eps;
    }

    /// The state of `id`, for [`Optimizer::param_state`].
    pub(super) fn param_state(&self, id: u64) -> Option<ParamState<A>> {
        let state = self.states.get(&id)?;
        Some(ParamState::of(
            state.step,
            [
                ("exp_avg", Some(&state.exp_avg)),
                ("exp_avg_sq", Some(&state.exp_avg_sq)),
                ("max_exp_avg_sq", state.max_exp_avg_sq.as_ref()),
            ],
        ))
    }

    /// Sets the state of `id`, for [`Optimizer::set_param_state`].
    pub(super) fn set_param_state(
        &mut self,
        optimizer: &str,
        id: u64,
        state: ParamState<A>,
    ) -> Result<(), String> {
        let step = state.step;
        let (mut required, mut optional) =
            state.take(optimizer, &["exp_avg", "exp_avg_sq"], &["max_exp_avg_sq"])?;
        let exp_avg_sq = required.pop().expect("two buffers asked for");
        let exp_avg = required.pop().expect("two buffers asked for");
        self.states.insert(
            id,
            AdamState {
                step,
                exp_avg,
                exp_avg_sq,
                max_exp_avg_sq: optional.pop().flatten(),
            },
        );
        Ok(())
    }

    pub(super) fn set_amsgrad(&mut self, amsgrad: bool) {
        self.amsgrad = amsgrad;
    }

    /// One Adam step on `value`, where each element's gradient is first
    /// replaced by `g + l2·p` and each element is first multiplied by
    /// `shrink` (Adam: `l2 = wd, shrink = 1`; AdamW: `l2 = 0,
    /// shrink = 1 − lr·wd`).
    pub(super) fn update(
        &mut self,
        optimizer: &str,
        id: u64,
        value: &mut ArrayD<A>,
        grad: &mut ArrayD<A>,
        l2: A,
        shrink: A,
    ) {
        check_shapes(
            optimizer,
            value,
            grad,
            self.states.get(&id).map(|s| &s.exp_avg),
        );
        let zeros = || ArrayD::zeros(IxDyn(value.shape()));
        let state = self.states.entry(id).or_insert_with(|| AdamState {
            step: 0,
            exp_avg: zeros(),
            exp_avg_sq: zeros(),
            max_exp_avg_sq: None,
        });
        if self.amsgrad && state.max_exp_avg_sq.is_none() {
            state.max_exp_avg_sq = Some(zeros());
        }
        state.step += 1;

        // The bias corrections are computed in f64 (as PyTorch does in
        // Python floats): β₂ᵗ in f32 loses most of 1 − β₂ᵗ early on.
        let t = i32::try_from(state.step).unwrap_or(i32::MAX);
        let bias1 = 1.0 - self.beta1.to_f64_lossless().powi(t);
        let bias2 = 1.0 - self.beta2.to_f64_lossless().powi(t);
        let step_size = A::from_f64_lossy(self.lr.to_f64_lossless() / bias1);
        let bias2_sqrt = A::from_f64_lossy(bias2.sqrt());

        let (beta1, beta2, eps) = (self.beta1, self.beta2, self.eps);
        let (rest1, rest2) = (A::one() - beta1, A::one() - beta2);
        let zip = Zip::from(value)
            .and(&*grad)
            .and(&mut state.exp_avg)
            .and(&mut state.exp_avg_sq);
        match state.max_exp_avg_sq.as_mut().filter(|_| self.amsgrad) {
            None => zip.for_each(|p, &g, m, v| {
                let g = g + l2 * *p;
                *p *= shrink;
                *m = beta1 * *m + rest1 * g;
                *v = beta2 * *v + rest2 * g * g;
                *p -= step_size * *m / (v.sqrt() / bias2_sqrt + eps);
            }),
            Some(max) => zip.and(max).for_each(|p, &g, m, v, v_max| {
                let g = g + l2 * *p;
                *p *= shrink;
                *m = beta1 * *m + rest1 * g;
                *v = beta2 * *v + rest2 * g * g;
                *v_max = v_max.max(*v);
                *p -= step_size * *m / (v_max.sqrt() / bias2_sqrt + eps);
            }),
        }
    }
}

impl<A: Element> Adam<A> {
    /// Adam with learning rate `lr` and the other hyperparameters at their
    /// defaults.
    ///
    /// # Panics
    /// When `lr` is negative or NaN.
    pub fn new(lr: A) -> Self {
        Adam {
            core: AdamCore::new("Adam", lr),
            weight_decay: A::zero(),
        }
    }

    /// Decay rates `β₁, β₂` of the first and second moment estimates
    /// (default 0.9, 0.999).
    ///
    /// # Panics
    /// When either is outside `[0, 1)`.
    pub fn betas(mut self, beta1: A, beta2: A) -> Self {
        self.core.set_betas("Adam", beta1, beta2);
        self
    }

    /// `ε`, added to the denominator for numerical stability (default 1e-8).
    ///
    /// # Panics
    /// When `eps` is negative or NaN.
    pub fn eps(mut self, eps: A) -> Self {
        self.core.set_eps("Adam", eps);
        self
    }

    /// L2 penalty `wd` added to the gradient as `wd·p` (default 0). With
    /// Adam this penalty is normalised along with the gradient; for
    /// weight decay that is not, use [`AdamW`](super::AdamW).
    ///
    /// # Panics
    /// When `weight_decay` is negative or NaN.
    pub fn weight_decay(mut self, weight_decay: A) -> Self {
        check_non_negative("Adam", "weight decay", weight_decay);
        self.weight_decay = weight_decay;
        self
    }

    /// Uses the AMSGrad variant (Reddi et al., 2018; default false): the
    /// denominator uses the largest second moment seen so far.
    pub fn amsgrad(mut self, amsgrad: bool) -> Self {
        self.core.set_amsgrad(amsgrad);
        self
    }
}

impl<A: Element> Optimizer<A> for Adam<A> {
    fn update(&mut self, id: u64, value: &mut ArrayD<A>, grad: &mut ArrayD<A>) {
        self.core
            .update("Adam", id, value, grad, self.weight_decay, A::one());
    }

    fn learning_rate(&self) -> A {
        self.core.lr
    }

    fn param_state(&self, id: u64) -> Option<ParamState<A>> {
        self.core.param_state(id)
    }

    fn set_param_state(&mut self, id: u64, state: ParamState<A>) -> Result<(), String> {
        self.core.set_param_state("Adam", id, state)
    }

    fn set_learning_rate(&mut self, lr: A) {
        self.core.set_lr("Adam", lr);
    }
}
