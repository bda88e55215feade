//! The five optimizers of the experiments, each plain or wrapped in the
//! consequentialist update, and the three learning rates tried for each.

use cps::optim::{Consequential, ParamState};
use cps::prelude::*;
use ndarray::ArrayD;

use crate::model::Mlp;

/// One of the optimizers compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Plain gradient descent.
    Sgd,
    /// SGD with momentum 0.9.
    Momentum,
    /// SGD with Nesterov momentum 0.9.
    Nag,
    /// RMSProp with PyTorch's defaults (α 0.99, ε 1e-8).
    RmsProp,
    /// Adam with the usual defaults (β 0.9, 0.999, ε 1e-8).
    Adam,
}

impl Kind {
    /// Every kind, in the tables' order.
    pub const ALL: [Kind; 5] = [
        Kind::Sgd,
        Kind::Momentum,
        Kind::Nag,
        Kind::RmsProp,
        Kind::Adam,
    ];

    /// The name used by `--optimizer` and in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sgd => "sgd",
            Kind::Momentum => "momentum",
            Kind::Nag => "nag",
            Kind::RmsProp => "rmsprop",
            Kind::Adam => "adam",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The three learning rates tried, low to high, spanning the kind's
    /// usual range (momentum's effective step is ten times its rate).
    /// The consequentialist variant uses the same three: there the rate
    /// is `μ`, the fraction of each sample's output error removed per
    /// step by SGD, for which 0.03..0.3 is also a sensible range.
    pub fn learning_rates(self) -> [f32; 3] {
        match self {
            Kind::Sgd => [0.03, 0.1, 0.3],
            Kind::Momentum | Kind::Nag => [0.003, 0.01, 0.03],
            Kind::RmsProp | Kind::Adam => [3e-4, 1e-3, 3e-3],
        }
    }

    /// The optimizer itself, with learning rate `lr`.
    fn build(self, lr: f32) -> Box<dyn Optimizer> {
        match self {
            Kind::Sgd => Box::new(Sgd::new(lr)),
            Kind::Momentum => Box::new(Sgd::new(lr).momentum(0.9)),
            Kind::Nag => Box::new(Sgd::new(lr).momentum(0.9).nesterov(true)),
            Kind::RmsProp => Box::new(RmsProp::new(lr)),
            Kind::Adam => Box::new(Adam::new(lr)),
        }
    }
}

/// Whether the dense layers' gradients are used as they are, or replaced
/// by the consequentialist direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Plain,
    Consequential,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Plain, Variant::Consequential];

    /// The name used in the tables (`plain`, `conseq`).
    pub fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Consequential => "conseq",
        }
    }
}

/// The optimizer `kind` at `lr`, plain or consequentialist on both of
/// `mlp`'s layers (each registered with its bias; the default damping
/// `ε = 1e-3·tr(A·Aᵀ)/B` and a batch-mean loss).
pub fn optimizer(kind: Kind, variant: Variant, lr: f32, mlp: &Mlp) -> Box<dyn Optimizer> {
    let inner = kind.build(lr);
    match variant {
        Variant::Plain => inner,
        Variant::Consequential => {
            let mut wrapped = Consequential::new(Boxed(inner));
            for layer in mlp.layers() {
                wrapped.layer(&layer.weight, Some(&layer.bias));
            }
            Box::new(wrapped)
        }
    }
}

/// A boxed optimizer as an optimizer, so that one wrapper type serves
/// all five.
struct Boxed(Box<dyn Optimizer>);

impl Optimizer for Boxed {
    fn update(&mut self, id: u64, value: &mut ArrayD<f32>, grad: &mut ArrayD<f32>) {
        self.0.update(id, value, grad);
    }

    fn step(&mut self, model: &mut dyn Parameters) {
        self.0.step(model);
    }

    fn learning_rate(&self) -> f32 {
        self.0.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.0.set_learning_rate(lr);
    }

    fn param_state(&self, id: u64) -> Option<ParamState<f32>> {
        self.0.param_state(id)
    }

    fn set_param_state(&mut self, id: u64, state: ParamState<f32>) -> Result<(), String> {
        self.0.set_param_state(id, state)
    }
}
