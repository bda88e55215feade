//! The S-PSP against a hand computation, the count approximation against
//! simulated counts, and the backward rule against finite differences of
//! the macro-level function it differentiates (f64).

use cps::prelude::*;
use ndarray::{Array2, Ix2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::layer::{ResetTerm, Spikes, spiking};
use crate::neuron::{Neuron, PspTable, Trains, simulate};

const NEURON: Neuron = Neuron {
    tau_m: 64.0,
    tau_s: 8.0,
    threshold: 20.0,
    refractory: 2,
};

/// The paper's `ε(s, t)`: a PSP `t` after the input spike, `s` after the
/// last reset.
fn eps(s: f64, t: f64) -> f64 {
    (-(t - s).max(0.0) / NEURON.tau_s).exp() * NEURON.kernel(s.min(t))
}

/// Random input trains: each input fires with its own probability per tick.
fn random_trains(batch: usize, inputs: usize, ticks: usize, rate: f64, rng: &mut StdRng) -> Trains {
    let lists: Vec<Vec<Vec<u16>>> = (0..batch)
        .map(|_| {
            (0..inputs)
                .map(|_| {
                    let p = rate * rng.random::<f64>();
                    (0..ticks as u16)
                        .filter(|_| rng.random::<f64>() < p)
                        .collect()
                })
                .collect()
        })
        .collect();
    Trains::from_lists(ticks, &lists)
}

fn uniform(rows: usize, cols: usize, low: f64, high: f64, rng: &mut StdRng) -> Array2<f64> {
    Array2::from_shape_simple_fn((rows, cols), || rng.random_range(low..high))
}

#[test]
fn s_psp_of_hand_built_trains() {
    // Output neuron fires at 10 and 20; refractory 2, so the reset before
    // the second spike is at 12 (s = 8 there).
    let input = Trains::from_lists(30, &[vec![vec![2, 5], vec![11, 15], vec![25]]]);
    let table = PspTable::<f64>::new(&input, 0, &NEURON);
    let mut e = vec![0.0; 3];
    table.spsp(&[10, 20], &NEURON, &mut e);
    let expected = [
        // input 0: both spikes before the first firing, then both carried
        // over the reset at 12 as synaptic current only.
        eps(10.0, 8.0) + eps(10.0, 5.0) + eps(8.0, 18.0) + eps(8.0, 15.0),
        // input 1: 11 falls in the refractory period (before the reset),
        // 15 after it.
        eps(8.0, 9.0) + eps(8.0, 5.0),
        // input 2: after the last firing.
        0.0,
    ];
    for (got, want) in e.iter().zip(expected) {
        assert!((got - want).abs() < 1e-12, "e = {got}, by hand {want}");
    }
    // The spike before the reset: e^{-(12-2)/τs} ε(8), written out.
    let carried =
        (-10.0f64 / 8.0).exp() * ((-8.0f64 / 64.0).exp() - (-1.0f64).exp()) / (1.0 - 8.0 / 64.0);
    assert!((eps(8.0, 18.0) - carried).abs() < 1e-15);
}

#[test]
fn counts_are_approximated_within_one_spike() {
    let mut rng = StdRng::seed_from_u64(3);
    let (inputs, outputs, ticks) = (100, 20, 200);
    let input = random_trains(100, inputs, ticks, 0.2, &mut rng);
    let weight = uniform(outputs, inputs, -0.5, 0.8, &mut rng);
    let sim = simulate::<f64>(&input, weight.view(), &NEURON);
    let (mut error, mut spikes) = (0.0, 0.0);
    let mut e = Vec::new();
    for b in 0..input.batch {
        let table = PspTable::<f64>::new(&input, b, &NEURON);
        e.resize(table.active.len(), 0.0);
        for i in 0..outputs {
            table.spsp(sim.trains.of(b, i), &NEURON, &mut e);
            let drive: f64 = table
                .active
                .iter()
                .zip(&e)
                .map(|(&j, &e)| weight[[i, j]] * e)
                .sum();
            let approximated = drive / NEURON.threshold;
            error += (approximated - sim.counts[[b, i]]).abs();
            spikes += sim.counts[[b, i]];
        }
    }
    let cases = (input.batch * outputs) as f64;
    assert!(
        spikes / cases > 5.0,
        "the neurons fire: {} spikes each",
        spikes / cases
    );
    assert!(
        error / cases < 1.0,
        "mean |a - (1/ν) Σ w e| = {}",
        error / cases
    );
}

/// A two-layer network's spikes and the gradients of `Σ c ⊙ a₂` by the
/// backward rule.
struct TwoLayers {
    input: Trains,
    w1: Array2<f64>,
    w2: Array2<f64>,
    c: Array2<f64>,
}

impl TwoLayers {
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(11);
        let mut w1 = uniform(8, 12, -0.5, 2.0, &mut rng);
        // A hidden neuron that never fires: silent inputs to the output layer.
        w1.row_mut(7).fill(-0.5);
        TwoLayers {
            input: random_trains(3, 12, 80, 0.4, &mut rng),
            w1,
            w2: uniform(4, 8, -1.0, 5.0, &mut rng),
            c: uniform(3, 4, -1.0, 1.0, &mut rng),
        }
    }

    fn gradients(&self, reset: ResetTerm) -> (Array2<f64>, Array2<f64>) {
        let (w1, w2) = (Param::new(self.w1.clone()), Param::new(self.w2.clone()));
        let input = Spikes::<f64>::input(self.input.clone());
        let c = Var::constant(self.c.clone());
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            spiking(&input, &w1, NEURON, reset).bind(|h| {
                spiking(&h, &w2, NEURON, reset)
                    .bind(|o| (&o.counts * &c).bind(|p| p.sum().bind(&mut *k)))
            })
        })
        .backward();
        let matrix = |p: &Param<f64>| p.grad().into_dimensionality::<Ix2>().unwrap();
        (matrix(&w1), matrix(&w2))
    }
}

/// The S-PSPs the backward rule uses for one layer: `e[b][i][j]` (the
/// closest-tick PSP for a silent neuron).
fn s_psps(input: &Trains, output: &Trains, closest: &[u16]) -> Vec<Array2<f64>> {
    (0..input.batch)
        .map(|b| {
            let table = PspTable::<f64>::new(input, b, &NEURON);
            let mut all = Array2::zeros((output.neurons, input.neurons));
            let mut e = vec![0.0; table.active.len()];
            for i in 0..output.neurons {
                let fired = output.of(b, i);
                if fired.is_empty() {
                    e.copy_from_slice(table.row(usize::from(closest[b * output.neurons + i])));
                } else {
                    table.spsp(fired, &NEURON, &mut e);
                }
                for (&j, &e) in table.active.iter().zip(&e) {
                    all[[i, j]] = e;
                }
            }
            all
        })
        .collect()
}

#[test]
fn gradient_of_the_macro_level_function() {
    let net = TwoLayers::new();
    let hidden = simulate::<f64>(&net.input, net.w1.view(), &NEURON);
    let output = simulate::<f64>(&hidden.trains, net.w2.view(), &NEURON);
    assert!(output.counts.sum() > 0.0, "the output layer fires");
    assert!(
        hidden.counts.column(7).sum() == 0.0,
        "a hidden neuron is silent"
    );
    let e1 = s_psps(&net.input, &hidden.trains, &hidden.closest);
    let e2 = s_psps(&hidden.trains, &output.trains, &output.closest);
    let nu = NEURON.threshold;
    let a1_0 = hidden.counts.clone();
    // The macro level with every spike time held: a₁ = (1/ν) Σ w₁ e₁,
    // anchored at the simulated counts; e₂ linear in a₁ (e/a_j per spike,
    // the mean of that over the active inputs for a silent one).
    let macro_loss = |w1: &Array2<f64>, w2: &Array2<f64>| -> f64 {
        let mut loss = 0.0;
        for b in 0..net.input.batch {
            let drive = |w: &Array2<f64>, j: usize| (&w.row(j) * &e1[b].row(j)).sum() / nu;
            let a1: Vec<f64> = (0..w1.nrows())
                .map(|j| a1_0[[b, j]] + drive(w1, j) - drive(&net.w1, j))
                .collect();
            for i in 0..w2.nrows() {
                let active: Vec<usize> = (0..a1.len()).filter(|&j| a1_0[[b, j]] > 0.0).collect();
                let mean = active
                    .iter()
                    .map(|&j| e2[b][[i, j]] / a1_0[[b, j]])
                    .sum::<f64>()
                    / active.len().max(1) as f64;
                let a2: f64 = (0..a1.len())
                    .map(|j| {
                        let per_spike = if a1_0[[b, j]] > 0.0 {
                            e2[b][[i, j]] / a1_0[[b, j]]
                        } else {
                            mean
                        };
                        w2[[i, j]] * per_spike * a1[j]
                    })
                    .sum::<f64>()
                    / nu;
                loss += net.c[[b, i]] * a2;
            }
        }
        loss
    };
    let (g1, g2) = net.gradients(ResetTerm::Off);
    let h = 1e-6;
    let check = |which: usize, analytic: &Array2<f64>| {
        for ((r, c), &want) in analytic.indexed_iter() {
            let (mut w1p, mut w2p) = (net.w1.clone(), net.w2.clone());
            let (mut w1m, mut w2m) = (net.w1.clone(), net.w2.clone());
            if which == 1 {
                w1p[[r, c]] += h;
                w1m[[r, c]] -= h;
            } else {
                w2p[[r, c]] += h;
                w2m[[r, c]] -= h;
            }
            let numeric = (macro_loss(&w1p, &w2p) - macro_loss(&w1m, &w2m)) / (2.0 * h);
            assert!(
                (numeric - want).abs() < 1e-6 * (1.0 + want.abs()),
                "w{which}[{r}, {c}]: backward {want}, finite differences {numeric}"
            );
        }
    };
    check(1, &g1);
    check(2, &g2);
    assert!(g1.iter().any(|&g| g != 0.0), "the first layer learns");

    // The resets' term scales each output neuron's row by 1 + ρ_i (summed
    // over the batch), ρ_i = Σ_j w_ij e_ij / (ν a_i).
    let (_, g2_reset) = net.gradients(ResetTerm::On);
    for i in 0..net.w2.nrows() {
        for j in 0..net.w2.ncols() {
            let want: f64 = (0..net.input.batch)
                .map(|b| {
                    let count = output.counts[[b, i]];
                    let rho = if count > 0.0 {
                        (&net.w2.row(i) * &e2[b].row(i)).sum() / (nu * count)
                    } else {
                        0.0
                    };
                    net.c[[b, i]] * (1.0 + rho) * e2[b][[i, j]] / nu
                })
                .sum();
            assert!((g2_reset[[i, j]] - want).abs() < 1e-9 * (1.0 + want.abs()));
        }
    }
}
