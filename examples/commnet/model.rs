//! CommNet (Sukhbaatar, Szlam and Fergus, NeurIPS 2016) as in the paper's
//! code for the levers: every agent starts from its identity's embedding
//! `h⁰`, then each of `K` communication steps computes, per agent,
//! `c_j = (Σ_k h_k − h_j) / (J − 1)` over the agent's game and
//! `h_j ← f([h⁰_j, h_j, c_j])`, where `f` is two ReLU layers and a linear
//! one (`3H → 3H → 3H → H`), with weights of its own per step. A first
//! step sees `[h⁰, 0, 0]`; a linear layer on the last `h` gives the levers'
//! scores.
//!
//! The number of agents is whatever the game has: the rows of a batch are
//! the agents of its games, and each run of equal-sized games is viewed as
//! `[games, size, H]` to sum its games' states, so no game is padded and
//! nothing is masked. Without communication `c` is zero, the rest alike.

use std::cell::RefCell;

use cps::prelude::*;
use ndarray::{Array, Array2, ArrayD, ArrayView2, IxDyn};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use crate::levers::{Batch, Run, reward};

/// `y = x Wᵀ + b` on rows.
#[derive(Parameters)]
pub struct Linear<A: Element = f32> {
    /// outputs × inputs.
    pub weight: Param<A>,
    pub bias: Param<A>,
}

impl<A: Element> Linear<A> {
    /// Uniform in `±1/√inputs`, as Torch initialises its layers.
    pub fn new(inputs: usize, outputs: usize, rng: &mut impl Rng) -> Self {
        let bound = 1.0 / (inputs as f64).sqrt();
        let mut uniform = |shape: &[usize]| {
            Param::new(ArrayD::from_shape_simple_fn(IxDyn(shape), || {
                A::from_f64_lossy(rng.random_range(-bound..bound))
            }))
        };
        Linear {
            weight: uniform(&[outputs, inputs]),
            bias: uniform(&[outputs]),
        }
    }
}

/// One communication step's `f`: `[h⁰, h, c]` (3H) → 3H → 3H → H, a ReLU
/// after each of the first two layers.
#[derive(Parameters)]
pub struct Step<A: Element = f32> {
    pub first: Linear<A>,
    pub second: Linear<A>,
    pub out: Linear<A>,
}

impl<A: Element> Step<A> {
    fn new(hidden: usize, rng: &mut impl Rng) -> Self {
        Step {
            first: Linear::new(3 * hidden, 3 * hidden, rng),
            second: Linear::new(3 * hidden, 3 * hidden, rng),
            out: Linear::new(3 * hidden, hidden, rng),
        }
    }
}

/// The model: the pool's embeddings, `K + 1` steps, the policy's layer.
#[derive(Parameters)]
pub struct CommNet<A: Element = f32> {
    /// `[pool, H]`: row `i` is `h⁰` of agent `i`.
    pub identity: Param<A>,
    /// The first step (on `[h⁰, 0, 0]`), then one per communication.
    pub steps: Vec<Step<A>>,
    /// `H →` levers of the largest game; a game of `J` agents uses the
    /// first `J` scores.
    pub policy: Linear<A>,
    /// Whether the agents hear each other (off: `c = 0`).
    #[parameters(skip)]
    pub communicate: bool,
}

impl<A: Element> CommNet<A> {
    /// A model of a `pool` of agents, `hidden` units, `communications`
    /// steps and at most `levers` levers; the embeddings N(0, 1) as
    /// Torch's lookup table.
    pub fn new(
        pool: usize,
        hidden: usize,
        communications: usize,
        levers: usize,
        communicate: bool,
        rng: &mut impl Rng,
    ) -> Self {
        let identity = Array::from_shape_simple_fn((pool, hidden), || {
            let z: f64 = StandardNormal.sample(&mut *rng);
            A::from_f64_lossy(z)
        });
        CommNet {
            identity: Param::new(identity),
            steps: (0..=communications)
                .map(|_| Step::new(hidden, rng))
                .collect(),
            policy: Linear::new(hidden, levers, rng),
            communicate,
        }
    }
}

#[differentiable]
pub(crate) fn linear<A: Element>(layer: &Linear<A>, x: &Var<A>) -> Var<A> {
    x.linear(&layer.weight) + &layer.bias
}

#[differentiable]
pub(crate) fn step<A: Element>(s: &Step<A>, x: &Var<A>) -> Var<A> {
    let a = linear(&s.first, x).relu();
    let b = linear(&s.second, &a).relu();
    linear(&s.out, &b)
}

/// `c_j`, the mean of the other agents' states in agent `j`'s game, for
/// the rows `h` of the agents of `runs`.
#[differentiable]
pub fn mean_of_others<A: Element>(h: &Var<A>, runs: &[Run]) -> Var<A> {
    let width = h.shape()[1];
    let rows: Vec<usize> = runs.iter().map(Run::rows).collect();
    let parts = h.split(0, &rows);
    let mut means = Vec::with_capacity(runs.len());
    for (part, run) in parts.iter().zip(runs) {
        let games = part.reshape(&[run.games, run.size, width]);
        let total = games.sum_axis_keepdim(1);
        let others = (total - &games) * (1.0 / (run.size - 1) as f64);
        means.push(others.reshape(&[run.rows(), width]));
    }
    concat(&means, 0)
}

/// Every agent's scores for the levers `[agents, levers]` (a game of `J`
/// agents reads the first `J` columns of its rows).
#[differentiable]
pub fn scores<A: Element>(m: &CommNet<A>, batch: &Batch) -> Var<A> {
    let h0 = m.identity.rows(&batch.ids);
    let zeros = Var::constant(Array2::<A>::zeros((batch.agents(), h0.shape()[1])));
    let start = concat(&[&h0, &zeros, &zeros], 1);
    let mut h = step(&m.steps[0], &start);
    for s in &m.steps[1..] {
        let c = if m.communicate {
            mean_of_others(&h, &batch.runs)
        } else {
            zeros.clone()
        };
        let input = concat(&[&h0, &h, &c], 1);
        h = step(s, &input);
    }
    linear(&m.policy, &h)
}

/// The summed cross-entropy of every agent's choice against the rank of
/// its identity among its game's (the lever that makes all distinct).
#[differentiable]
pub fn supervised_loss<A: Element>(m: &CommNet<A>, batch: &Batch) -> Var<A> {
    let all = scores(m, batch);
    let parts = all.split(0, &batch.run_rows());
    let mut total = Var::scalar(A::from_f64_lossy(0.0));
    for (part, run) in parts.iter().zip(&batch.runs) {
        let levers = part.narrow(1, 0, run.size);
        total = total + levers.cross_entropy(&batch.ranks[run.range()]);
    }
    total
}

/// What one REINFORCE pass drew: each game's reward, in the batch's
/// order.
#[derive(Default)]
pub struct Played {
    pub rewards: Vec<f64>,
}

/// REINFORCE: every agent draws a lever from its policy, each game pays
/// its reward `R`, and the loss is `−Σ_games (R − baseline) Σ_agents log
/// π(lever)`, whose gradient estimates that of the expected reward
/// (times −1). The draws and rewards are left in `played`.
#[differentiable]
pub fn reinforce_loss<A: Element>(
    m: &CommNet<A>,
    batch: &Batch,
    baseline: f64,
    rng: &RefCell<StdRng>,
    played: &RefCell<Played>,
) -> Var<A> {
    let all = scores(m, batch);
    let parts = all.split(0, &batch.run_rows());
    let mut total = Var::scalar(A::from_f64_lossy(0.0));
    for (part, run) in parts.iter().zip(&batch.runs) {
        let log_p = part.narrow(1, 0, run.size).log_softmax();
        let levers = draw(&log_p, rng);
        let advantage = play(&levers, run, baseline, played);
        let chosen = log_p.gather(1, &column(&levers));
        total = total - (chosen * &advantage).sum();
    }
    total
}

/// A lever per row of log-probabilities.
fn draw<A: Element>(log_p: &Var<A>, rng: &RefCell<StdRng>) -> Vec<usize> {
    let rng = &mut *rng.borrow_mut();
    let rows: ArrayView2<A> = log_p
        .array()
        .view()
        .into_dimensionality()
        .expect("a matrix");
    rows.outer_iter()
        .map(|row| {
            let mut u: f64 = rng.random();
            for (lever, &lp) in row.iter().enumerate() {
                u -= lp.to_f64_lossless().exp();
                if u < 0.0 {
                    return lever;
                }
            }
            row.len() - 1
        })
        .collect()
}

/// Records the run's rewards; each agent's advantage
/// `R − baseline` as a column.
fn play<A: Element>(
    levers: &[usize],
    run: &Run,
    baseline: f64,
    played: &RefCell<Played>,
) -> Var<A> {
    let mut played = played.borrow_mut();
    let mut advantage = Vec::with_capacity(levers.len());
    for game in levers.chunks(run.size) {
        let r = reward(game);
        played.rewards.push(r);
        advantage.extend(std::iter::repeat_n(
            A::from_f64_lossy(r - baseline),
            run.size,
        ));
    }
    Var::constant(Array2::from_shape_vec((levers.len(), 1), advantage).expect("one per agent"))
}

fn column(levers: &[usize]) -> Array2<usize> {
    Array2::from_shape_vec((levers.len(), 1), levers.to_vec()).expect("one per agent")
}

/// Each agent's most likely lever, by the scores `scores` of `batch`.
pub fn greedy<A: Element>(scores: &Var<A>, batch: &Batch) -> Vec<usize> {
    let rows = scores.array();
    let mut levers = Vec::with_capacity(batch.agents());
    for run in &batch.runs {
        for row in run.range() {
            let mut best = 0;
            for lever in 1..run.size {
                if rows[[row, lever]] > rows[[row, best]] {
                    best = lever;
                }
            }
            levers.push(best);
        }
    }
    levers
}
