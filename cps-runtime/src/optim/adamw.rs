//! AdamW: Adam with weight decay decoupled from the gradient.

use ndarray::ArrayD;

use super::adam::AdamCore;
use super::{Optimizer, ParamState, check_non_negative};
use crate::element::Element;

/// AdamW (Loshchilov and Hutter, 2019), as `torch.optim.AdamW`.
///
/// The parameter first shrinks towards zero, then takes the Adam step on
/// the raw gradient (see [`Adam`](super::Adam) for `m`, `v` and the bias
/// corrections):
///
/// ```text
/// p ← p − lr·wd·p
/// m ← β₁·m + (1 − β₁)·g
/// v ← β₂·v + (1 − β₂)·g²
/// p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
/// ```
///
/// Unlike Adam's L2 penalty, the decay is not divided by `√v`, so every
/// weight decays at the same rate whatever its gradient history.
///
/// Defaults (PyTorch's): `wd = 0.01`, `β = (0.9, 0.999)`, `ε = 1e-8`, no
/// AMSGrad. PyTorch's default learning rate is 1e-3.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::optim::{AdamW, Optimizer};
/// use ndarray::array;
///
/// let mut w = Param::new(array![2.0f64]);
/// let mut adamw = AdamW::new(0.1).weight_decay(0.5).eps(0.0);
/// w.var().accumulate(array![4.0].into_dyn());
/// adamw.step(&mut w);
/// // Decay: 2 · (1 − 0.05) = 1.9; then the first Adam step moves by lr.
/// assert!((w.value()[0] - 1.8).abs() < 1e-15);
/// ```
#[derive(Clone, Debug)]
pub struct AdamW<A: Element = f32> {
    core: AdamCore<A>,
    weight_decay: A,
}

impl<A: Element> AdamW<A> {
    /// AdamW with learning rate `lr` and the other hyperparameters at their
    /// defaults (weight decay 0.01).
    ///
    /// # Panics
    /// When `lr` is negative or NaN.
    pub fn new(lr: A) -> Self {
        AdamW {
            core: AdamCore::new("AdamW", lr),
            weight_decay: A::from_f64_lossy(0.01),
        }
    }

    /// Decay rates `β₁, β₂` of the first and second moment estimates
    /// (default 0.9, 0.999).
    ///
    /// # Panics
    /// When either is outside `[0, 1)`.
    pub fn betas(mut self, beta1: A, beta2: A) -> Self {
        self.core.set_betas("AdamW", beta1, beta2);
        self
    }

    /// `ε`, added to the denominator for numerical stability (default 1e-8).
    ///
    /// # Panics
    /// When `eps` is negative or NaN.
    pub fn eps(mut self, eps: A) -> Self {
        self.core.set_eps("AdamW", eps);
        self
    }

    /// Decoupled weight decay `wd` (default 0.01): each step first
    /// multiplies the parameter by `1 − lr·wd`.
    ///
    /// # Panics
    /// When `weight_decay` is negative or NaN.
    pub fn weight_decay(mut self, weight_decay: A) -> Self {
        check_non_negative("AdamW", "weight decay", weight_decay);
        self.weight_decay = weight_decay;
        self
    }

    /// Uses the AMSGrad variant (default false): the denominator uses the
    /// largest second moment seen so far.
    pub fn amsgrad(mut self, amsgrad: bool) -> Self {
        self.core.set_amsgrad(amsgrad);
        self
    }
}

impl<A: Element> Optimizer<A> for AdamW<A> {
    fn update(&mut self, id: u64, value: &mut ArrayD<A>, grad: &mut ArrayD<A>) {
        let shrink = A::one() - self.core.lr * self.weight_decay;
        self.core
            .update("AdamW", id, value, grad, A::zero(), shrink);
    }

    fn learning_rate(&self) -> A {
        self.core.lr
    }

    fn param_state(&self, id: u64) -> Option<ParamState<A>> {
        self.core.param_state(id)
    }

    fn set_param_state(&mut self, id: u64, state: ParamState<A>) -> Result<(), String> {
        self.core.set_param_state("AdamW", id, state)
    }

    fn set_learning_rate(&mut self, lr: A) {
        self.core.set_lr("AdamW", lr);
    }
}
