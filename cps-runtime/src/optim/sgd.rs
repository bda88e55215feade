//! Stochastic gradient descent, with optional momentum (heavy-ball or
//! Nesterov) and L2 weight decay.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use ndarray::{ArrayD, Zip};

use super::{Optimizer, ParamState, check_non_negative, check_shapes};
use crate::element::Element;

/// Stochastic gradient descent, as `torch.optim.SGD`.
///
/// With gradient `g`, parameter `p`, learning rate `lr`, weight decay
/// `wd`, momentum `μ`, dampening `τ`, and momentum buffer `b`:
///
/// ```text
/// g ← g + wd·p
/// b ← g                    on the parameter's first step
/// b ← μ·b + (1 − τ)·g      afterwards
/// g ← g + μ·b   (Nesterov)  or   g ← b   (heavy ball)
/// p ← p − lr·g
/// ```
///
/// With `μ = 0` (the default) this is plain `p ← p − lr·(g + wd·p)` and no
/// state is kept.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::optim::{Optimizer, Sgd};
/// use ndarray::array;
///
/// let mut w = Param::new(array![1.0f64]);
/// let mut sgd = Sgd::new(0.1).momentum(0.9);
/// for _ in 0..2 {
///     w.var().accumulate(array![1.0].into_dyn());
///     sgd.step(&mut w);
/// }
/// // b = 1, then b = 0.9 + 1 = 1.9: w = 1 - 0.1 - 0.19
/// assert!((w.value()[0] - 0.71).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct Sgd<A: Element = f32> {
    lr: A,
    momentum: A,
    dampening: A,
    nesterov: bool,
    weight_decay: A,
    momentum_buffers: HashMap<u64, ArrayD<A>>,
}

impl<A: Element> Sgd<A> {
    /// Plain gradient descent with learning rate `lr`: no momentum, no
    /// dampening, no weight decay.
    ///
    /// # Panics
    /// When `lr` is negative or NaN.
    pub fn new(lr: A) -> Self {
        check_non_negative("Sgd", "learning rate", lr);
        Sgd {
            lr,
            momentum: A::zero(),
            dampening: A::zero(),
            nesterov: false,
            weight_decay: A::zero(),
            momentum_buffers: HashMap::new(),
        }
    }

    /// Momentum factor `μ` (default 0: none). Typical: 0.9.
    ///
    /// # Panics
    /// When `momentum` is negative or NaN.
    pub fn momentum(mut self, momentum: A) -> Self {
        check_non_negative("Sgd", "momentum", momentum);
        self.momentum = momentum;
        self
    }

    /// Dampening `τ` of the momentum: the new gradient enters the buffer
    /// scaled by `1 − τ` (default 0). Not allowed with Nesterov momentum.
    ///
    /// # Panics
    /// When `dampening` is negative or NaN.
    pub fn dampening(mut self, dampening: A) -> Self {
        check_non_negative("Sgd", "dampening", dampening);
        self.dampening = dampening;
        self
    }

    /// Uses Nesterov momentum (default false): the step looks ahead along
    /// the momentum buffer. Requires a positive momentum and no dampening
    /// (checked at the first step, since the builder calls may come in any
    /// order).
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }

    /// L2 penalty `wd` added to the gradient as `wd·p` (default 0).
    ///
    /// # Panics
    /// When `weight_decay` is negative or NaN.
    pub fn weight_decay(mut self, weight_decay: A) -> Self {
        check_non_negative("Sgd", "weight decay", weight_decay);
        self.weight_decay = weight_decay;
        self
    }
}

impl<A: Element> Optimizer<A> for Sgd<A> {
    fn update(&mut self, id: u64, value: &mut ArrayD<A>, grad: &mut ArrayD<A>) {
        check_shapes("Sgd", value, grad, self.momentum_buffers.get(&id));
        let (lr, wd, mu) = (self.lr, self.weight_decay, self.momentum);
        assert!(
            !self.nesterov || (mu > A::zero() && self.dampening == A::zero()),
            "Sgd: Nesterov momentum requires momentum > 0 and dampening = 0, got momentum {} and dampening {}",
            mu,
            self.dampening
        );

        if mu == A::zero() {
            if wd == A::zero() {
                value.scaled_add(-lr, &*grad);
            } else {
                Zip::from(value)
                    .and(&*grad)
                    .for_each(|p, &g| *p -= lr * (g + wd * *p));
            }
            return;
        }

        if wd != A::zero() {
            grad.scaled_add(wd, value);
        }
        match self.momentum_buffers.entry(id) {
            Entry::Vacant(slot) => {
                if self.nesterov {
                    let buffer = slot.insert(grad.clone());
                    Zip::from(value)
                        .and(&*grad)
                        .and(&*buffer)
                        .for_each(|p, &g, &b| *p -= lr * (g + mu * b));
                } else {
                    value.scaled_add(-lr, slot.insert(grad.clone()));
                }
            }
            Entry::Occupied(slot) => {
                let buffer = slot.into_mut();
                let keep = A::one() - self.dampening;
                if self.nesterov {
                    Zip::from(value)
                        .and(&*grad)
                        .and(buffer)
                        .for_each(|p, &g, b| {
                            *b = mu * *b + keep * g;
                            *p -= lr * (g + mu * *b);
                        });
                } else {
                    Zip::from(value)
                        .and(&*grad)
                        .and(buffer)
                        .for_each(|p, &g, b| {
                            *b = mu * *b + keep * g;
                            *p -= lr * *b;
                        });
                }
            }
        }
    }

    fn learning_rate(&self) -> A {
        self.lr
    }

    fn param_state(&self, id: u64) -> Option<ParamState<A>> {
        let buffer = self.momentum_buffers.get(&id)?;
        Some(ParamState::of(0, [("momentum_buffer", Some(buffer))]))
    }

    fn set_param_state(&mut self, id: u64, state: ParamState<A>) -> Result<(), String> {
        let (_, mut optional) = state.take("Sgd", &[], &["momentum_buffer"])?;
        match optional.pop().flatten() {
            Some(buffer) => self.momentum_buffers.insert(id, buffer),
            None => self.momentum_buffers.remove(&id),
        };
        Ok(())
    }

    fn set_learning_rate(&mut self, lr: A) {
        check_non_negative("Sgd", "learning rate", lr);
        self.lr = lr;
    }
}
