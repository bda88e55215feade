//! A spiking layer as one custom operation: the forward pass simulates the
//! layer and keeps the spike times; what the rest of the computation sees
//! is the firing counts `a` (a `Var`, batch × neurons) beside the trains
//! (the next spiking layer needs the trains themselves). The backward pass
//! receives `∂L/∂a_i`, applies the S-PSP rule of HM2-BP, adds `∂L/∂w_ij`
//! into the weight and hands `∂L/∂a_j` to the input counts, from where
//! the ordinary continuation carries it on.
//!
//! # The backward rule
//!
//! The macro level: `a_i ≈ (1/ν) Σ_j w_ij e_{i|j}`. The micro level: the
//! S-PSP `e_{i|j}` depends on both firing counts, `e_{i|j}(a_i, a_j)`. With
//! the decoupled S-PSP model (each presynaptic spike contributes alike, so
//! `∂e_{i|j}/∂a_j ≈ e_{i|j}/a_j`; the same ratio for the neuron's own
//! count, `∂e_{i|j}/∂a_i ≈ e_{i|j}/a_i`, as the reference code takes it)
//! and one substitution of the first-order `∂a_i/∂w_ij ≈ e_{i|j}/ν` into
//! the term of the neuron's own resets:
//!
//! ```text
//! ∂a_i/∂w_ij = (1/ν) [e_{i|j} + Σ_l w_il ∂e_{i|l}/∂a_i · ∂a_i/∂w_ij]
//!            ≈ (e_{i|j}/ν) (1 + ρ_i),      ρ_i = Σ_l w_il e_{i|l} / (ν a_i)
//! ∂a_i/∂a_j  ≈ (w_ij/ν) (e_{i|j}/a_j) (1 + ρ_i)
//! ```
//!
//! `ρ_i` is the mean membrane potential at `i`'s firing ticks over `ν`
//! (1 plus the overshoot). So, per sample, with `δ_i = ∂L/∂a_i`:
//! `∂L/∂w_ij += δ_i (1 + ρ_i) e_{i|j} / ν` and
//! `∂L/∂a_j += Σ_i δ_i (1 + ρ_i) w_ij e_{i|j} / (ν a_j)`.
//! [`ResetTerm::Off`] drops the `(1 + ρ_i)`: the exact gradient of the
//! macro-level function with every spike time held (the unit tests check
//! that one against finite differences).
//!
//! Two cases the ratios leave undefined get a stated choice:
//! - a silent neuron (`a_i = 0`) takes `e_{i|j} = D_j(t*)`, the unreset PSP
//!   of each input at the tick `t*` its membrane came closest to the
//!   threshold: the first spike appears once `Σ_j w_ij D_j(t*)` reaches
//!   `ν`, so `∂a_i/∂w_ij ≈ D_j(t*)/ν` (and `ρ_i` is taken as 0);
//! - a silent input (`a_j = 0`) takes for `e_{i|j}/a_j` the mean of
//!   `e_{i|l}/a_l` over `i`'s active inputs, the S-PSP one presynaptic spike
//!   brings on average.

use std::rc::Rc;

use cps::prelude::*;
use ndarray::{Array2, ArrayD, Ix2};

use crate::neuron::{Neuron, PspTable, Trains, simulate};

/// Whether the backward pass includes the dependence of `e_{i|j}` on the
/// neuron's own count (its resets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTerm {
    /// The paper's rule: the factor `1 + ρ_i`.
    On,
    /// Spike times and S-PSPs held fixed: `∂a_i/∂w_ij = e_{i|j}/ν`.
    Off,
}

/// A layer's output as the rest of the network sees it: the firing counts
/// (differentiable) and the spike trains (for the next spiking layer).
#[derive(Clone)]
pub struct Spikes<A: Element = f32> {
    /// (batch, neurons).
    pub counts: Var<A>,
    /// The spike times behind the counts.
    pub trains: Rc<Trains>,
}

impl<A: Element> Spikes<A> {
    /// Input spike trains, as constants: their counts need no gradient.
    pub fn input(trains: Trains) -> Self {
        Spikes {
            counts: Var::constant(trains.counts::<A>()),
            trains: Rc::new(trains),
        }
    }
}

/// A forward-only evaluation hands the spikes out with their counts detached.
impl<A: Element> Detach for Spikes<A> {
    fn detached(self) -> Self {
        Spikes {
            counts: self.counts.detached(),
            trains: self.trains,
        }
    }
}

/// The computation a spiking layer returns: it hands [`Spikes`] on.
#[must_use = "a layer's result does nothing until it is bound to a continuation"]
pub struct SpikingOp<A: Element, B> {
    pending: Pending<A, B>,
    trains: Rc<Trains>,
}

impl<A: Element, B: BackwardStep<A>> Computation for SpikingOp<A, B> {
    type Output = Spikes<A>;

    fn bind<K: FnOnce(Spikes<A>)>(self, k: K) {
        let trains = self.trains;
        self.pending
            .bind(move |counts| k(Spikes { counts, trains }));
    }
}

/// A spiking layer: `weight` (neurons × inputs) driven by `input`'s trains.
pub fn spiking<A: Element>(
    input: &Spikes<A>,
    weight: &Param<A>,
    neuron: Neuron,
    reset: ResetTerm,
) -> SpikingOp<A, impl BackwardStep<A> + use<A>> {
    let w = weight
        .var()
        .array()
        .view()
        .into_dimensionality::<Ix2>()
        .expect("a spiking layer's weight is a matrix");
    let sim = simulate(&input.trains, w, &neuron);
    let trains = Rc::new(sim.trains);
    let (in_trains, out_trains) = (input.trains.clone(), trains.clone());
    let (in_counts, weight) = (input.counts.clone(), weight.var().clone());
    let closest = sim.closest;
    let requires_grad = in_counts.requires_grad() || weight.requires_grad();
    let pending = Pending::new(
        "spiking",
        sim.counts.into_dyn(),
        requires_grad,
        move |_: &ArrayD<A>, grad: ArrayD<A>| {
            let grad = grad.into_dimensionality::<Ix2>().expect("(batch, neurons)");
            let grads = s_psp_backward(
                &in_trains,
                &out_trains,
                &closest,
                &weight,
                &in_counts,
                &grad,
                &neuron,
                reset,
            );
            if let Some(dw) = grads.weight {
                weight.accumulate(dw.into_dyn());
            }
            if let Some(da) = grads.input {
                in_counts.accumulate(da.into_dyn());
            }
        },
    );
    SpikingOp { pending, trains }
}

/// The gradients a layer's backward step hands on.
pub struct LayerGrads<A> {
    /// `∂L/∂w`, when the weight takes one.
    pub weight: Option<Array2<A>>,
    /// `∂L/∂a_j` of the input counts, when they take one.
    pub input: Option<Array2<A>>,
}

/// The S-PSP rule (see the module documentation), sample by sample.
#[allow(clippy::too_many_arguments)]
pub fn s_psp_backward<A: Element>(
    input: &Trains,
    output: &Trains,
    closest: &[u16],
    weight: &Var<A>,
    in_counts: &Var<A>,
    grad: &Array2<A>,
    neuron: &Neuron,
    reset: ResetTerm,
) -> LayerGrads<A> {
    let w = weight
        .array()
        .view()
        .into_dimensionality::<Ix2>()
        .expect("a matrix");
    let a_in = in_counts
        .array()
        .view()
        .into_dimensionality::<Ix2>()
        .expect("(batch, inputs)");
    let (outputs, inputs) = w.dim();
    let want_w = weight.requires_grad();
    let want_a = in_counts.requires_grad();
    let mut dw = Array2::<A>::zeros((outputs, inputs));
    let mut da = Array2::<A>::zeros((input.batch, inputs));
    let nu = A::from_f64_lossy(neuron.threshold);
    let mut e = Vec::new();
    let mut ratio = Vec::new();
    for b in 0..input.batch {
        let table = PspTable::<A>::new(input, b, neuron);
        let width = table.active.len();
        e.resize(width, A::zero());
        // e_{i|j}/a_j needs a_j of the active inputs (each fired, so a_j ≥ 1).
        ratio.clear();
        ratio.extend(
            table
                .active
                .iter()
                .map(|&j| A::one() / a_in[[b, j]].max(A::one())),
        );
        for i in 0..outputs {
            let delta = grad[[b, i]];
            if delta == A::zero() {
                continue;
            }
            let fired = output.of(b, i);
            if fired.is_empty() {
                e.copy_from_slice(table.row(usize::from(closest[b * outputs + i])));
            } else {
                table.spsp(fired, neuron, &mut e);
            }
            let row = w.row(i);
            let factor = match reset {
                ResetTerm::On if !fired.is_empty() => {
                    let drive: A = table.active.iter().zip(&e).map(|(&j, &e)| row[j] * e).sum();
                    let count = A::from_usize(fired.len()).expect("a count");
                    A::one() + drive / (nu * count)
                }
                _ => A::one(),
            };
            let coef = delta * factor / nu;
            if want_w {
                let mut dw_row = dw.row_mut(i);
                for (&j, &e) in table.active.iter().zip(&e) {
                    dw_row[j] += coef * e;
                }
            }
            if want_a {
                let mut da_row = da.row_mut(b);
                let mut per_spike = A::zero();
                for ((&j, &e), &r) in table.active.iter().zip(&e).zip(&ratio) {
                    da_row[j] += coef * row[j] * e * r;
                    per_spike += e * r;
                }
                if width > 0 && width < inputs {
                    let mean = per_spike / A::from_usize(width).expect("a width");
                    for j in 0..inputs {
                        if input.of(b, j).is_empty() {
                            da_row[j] += coef * row[j] * mean;
                        }
                    }
                }
            }
        }
    }
    LayerGrads {
        weight: want_w.then_some(dw),
        input: want_a.then_some(da),
    }
}
