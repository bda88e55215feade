//! RMSprop: gradients divided by a running root mean square of their history.

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn, Zip};

use super::{Optimizer, ParamState, check_non_negative, check_shapes, check_unit_interval};
use crate::element::Element;

/// RMSprop (Hinton, Lecture 6e of "Neural Networks for Machine Learning"),
/// as `torch.optim.RMSprop`.
///
/// With gradient `g`, parameter `p`, learning rate `lr`, smoothing
/// constant `α`, weight decay `wd`, momentum `μ`, and per-parameter
/// buffers `v` (mean square), `ḡ` (mean, when centered) and `b`
/// (momentum), all starting at zero:
///
/// ```text
/// g ← g + wd·p
/// v ← α·v + (1 − α)·g²
/// ḡ ← α·ḡ + (1 − α)·g                 (centered only)
/// d = √(v − ḡ²) + ε   (centered)   or   d = √v + ε
/// b ← μ·b + g/d,  p ← p − lr·b         (μ > 0)
/// p ← p − lr·g/d                       (μ = 0)
/// ```
///
/// Defaults (PyTorch's): `α = 0.99`, `ε = 1e-8`, `wd = 0`, `μ = 0`, not
/// centered. PyTorch's default learning rate is 0.01.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::optim::{Optimizer, RmsProp};
/// use ndarray::array;
///
/// let mut w = Param::new(array![1.0f64]);
/// let mut rmsprop = RmsProp::new(0.1).alpha(0.75).eps(0.0);
/// w.var().accumulate(array![2.0].into_dyn());
/// rmsprop.step(&mut w);
/// // v = 0.25 · 4 = 1: w = 1 − 0.1 · 2 / 1
/// assert!((w.value()[0] - 0.8).abs() < 1e-15);
/// ```
#[derive(Clone, Debug)]
pub struct RmsProp<A: Element = f32> {
    lr: A,
    alpha: A,
    eps: A,
    weight_decay: A,
    momentum: A,
    centered: bool,
    states: HashMap<u64, RmsPropState<A>>,
}

#[derive(Clone, Debug)]
struct RmsPropState<A> {
    square_avg: ArrayD<A>,
    /// Only when centered.
    grad_avg: Option<ArrayD<A>>,
    /// Only when the momentum is positive.
    momentum_buffer: Option<ArrayD<A>>,
}

impl<A: Element> RmsProp<A> {
    /// RMSprop with learning rate `lr` and the other hyperparameters at
    /// their defaults.
    ///
    /// # Panics
    /// When `lr` is negative or NaN.
    pub fn new(lr: A) -> Self {
        check_non_negative("RmsProp", "learning rate", lr);
        RmsProp {
            lr,
            alpha: A::from_f64_lossy(0.99),
            eps: A::from_f64_lossy(1e-8),
            weight_decay: A::zero(),
            momentum: A::zero(),
            centered: false,
            states: HashMap::new(),
        }
    }

    /// Smoothing constant `α` of the running averages (default 0.99).
    ///
    /// # Panics
    /// When `alpha` is outside `[0, 1)`.
    pub fn alpha(mut self, alpha: A) -> Self {
        check_unit_interval("RmsProp", "alpha", alpha);
        self.alpha = alpha;
        self
    }

    /// `ε`, added to the denominator for numerical stability (default 1e-8).
    ///
    /// # Panics
    /// When `eps` is negative or NaN.
    pub fn eps(mut self, eps: A) -> Self {
        check_non_negative("RmsProp", "eps", eps);
        self.eps = eps;
        self
    }

    /// L2 penalty `wd` added to the gradient as `wd·p` (default 0).
    ///
    /// # Panics
    /// When `weight_decay` is negative or NaN.
    pub fn weight_decay(mut self, weight_decay: A) -> Self {
        check_non_negative("RmsProp", "weight decay", weight_decay);
        self.weight_decay = weight_decay;
        self
    }

    /// Momentum factor `μ` applied to the normalised step (default 0).
    ///
    /// # Panics
    /// When `momentum` is negative or NaN.
    pub fn momentum(mut self, momentum: A) -> Self {
        check_non_negative("RmsProp", "momentum", momentum);
        self.momentum = momentum;
        self
    }

    /// Centered RMSprop (default false): normalises by an estimate of the
    /// gradient's variance, `v − ḡ²`, instead of its raw second moment.
    pub fn centered(mut self, centered: bool) -> Self {
        self.centered = centered;
        self
    }
}

impl<A: Element> Optimizer<A> for RmsProp<A> {
    fn update(&mut self, id: u64, value: &mut ArrayD<A>, grad: &mut ArrayD<A>) {
        check_shapes(
            "RmsProp",
            value,
            grad,
            self.states.get(&id).map(|s| &s.square_avg),
        );
        let (lr, alpha, eps, wd, mu) = (
            self.lr,
            self.alpha,
            self.eps,
            self.weight_decay,
            self.momentum,
        );
        let (centered, with_momentum) = (self.centered, mu > A::zero());
        let state = self.states.entry(id).or_insert_with(|| {
            let zeros = || ArrayD::zeros(IxDyn(value.shape()));
            RmsPropState {
                square_avg: zeros(),
                grad_avg: centered.then(zeros),
                momentum_buffer: with_momentum.then(zeros),
            }
        });
        // The options may have been changed between steps (e.g. momentum
        // switched on): give the parameter the buffers it now needs.
        if centered && state.grad_avg.is_none() {
            state.grad_avg = Some(ArrayD::zeros(IxDyn(value.shape())));
        }
        if with_momentum && state.momentum_buffer.is_none() {
            state.momentum_buffer = Some(ArrayD::zeros(IxDyn(value.shape())));
        }

        let rest = A::one() - alpha;
        // The new mean square and the normalised gradient g/d for one
        // element; `mean` is ḡ when centered.
        let normalise = |g: A, v: &mut A, mean: Option<&mut A>| -> A {
            *v = alpha * *v + rest * g * g;
            let variance = match mean {
                Some(m) => {
                    *m = alpha * *m + rest * g;
                    *v - *m * *m
                }
                None => *v,
            };
            g / (variance.sqrt() + eps)
        };
        let zip = Zip::from(value).and(&*grad).and(&mut state.square_avg);
        match (
            state.grad_avg.as_mut().filter(|_| centered),
            state.momentum_buffer.as_mut().filter(|_| with_momentum),
        ) {
            (None, None) => zip.for_each(|p, &g, v| {
                let g = g + wd * *p;
                *p -= lr * normalise(g, v, None);
            }),
            (Some(mean), None) => zip.and(mean).for_each(|p, &g, v, m| {
                let g = g + wd * *p;
                *p -= lr * normalise(g, v, Some(m));
            }),
            (None, Some(buffer)) => zip.and(buffer).for_each(|p, &g, v, b| {
                let g = g + wd * *p;
                *b = mu * *b + normalise(g, v, None);
                *p -= lr * *b;
            }),
            (Some(mean), Some(buffer)) => zip.and(mean).and(buffer).for_each(|p, &g, v, m, b| {
                let g = g + wd * *p;
                *b = mu * *b + normalise(g, v, Some(m));
                *p -= lr * *b;
            }),
        }
    }

    fn learning_rate(&self) -> A {
        self.lr
    }

    fn param_state(&self, id: u64) -> Option<ParamState<A>> {
        let state = self.states.get(&id)?;
        Some(ParamState::of(
            0,
            [
                ("square_avg", Some(&state.square_avg)),
                ("grad_avg", state.grad_avg.as_ref()),
                ("momentum_buffer", state.momentum_buffer.as_ref()),
            ],
        ))
    }

    fn set_param_state(&mut self, id: u64, state: ParamState<A>) -> Result<(), String> {
        let (mut required, mut optional) =
            state.take("RmsProp", &["square_avg"], &["grad_avg", "momentum_buffer"])?;
        let momentum_buffer = optional.pop().flatten();
        let grad_avg = optional.pop().flatten();
        let square_avg = required.pop().expect("one buffer asked for");
        self.states.insert(
            id,
            RmsPropState {
                square_avg,
                grad_avg,
                momentum_buffer,
            },
        );
        Ok(())
    }

    fn set_learning_rate(&mut self, lr: A) {
        check_non_negative("RmsProp", "learning rate", lr);
        self.lr = lr;
    }
}
