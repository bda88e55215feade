//! The character-level vanilla RNN and LSTM of Lantern's evaluation, in
//! the style of Karpathy's min-char-rnn: each a plain `for` loop over a
//! window of characters inside one differentiable function.
//!
//! The weights keep the reference's `[out, in]` layout (applied with
//! [`Var::linear`], which is `W·h` for a row `h`), except the input
//! weights: the reference multiplies `W_x` by a one-hot vector, which picks
//! a column, so ours store `W_xᵀ`, one row per character, and gather rows
//! (the same numbers and gradients, without multiplying by zeros).
//! States are matrices `[S, H]`, a row per stream of text: the `S` streams
//! read side by side (`--batch`) go through each step together, their
//! characters the rows of one matrix.

use cps::prelude::*;
use ndarray::{Array, Array2};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// The vanilla RNN: `h_t = tanh(W_xh x_t + W_hh h_{t−1} + b_h)`,
/// `y_t = W_hy h_t + b_y`.
#[derive(Parameters)]
pub struct Rnn<A: Element = f32> {
    /// `W_xhᵀ`, `[V, H]`: row `x` is the input term of character `x`.
    pub wxh: Param<A>,
    /// `W_hh`, `[H, H]`.
    pub whh: Param<A>,
    /// `b_h`, `[H]`.
    pub bh: Param<A>,
    /// `W_hy`, `[V, H]`.
    pub why: Param<A>,
    /// `b_y`, `[V]`.
    pub by: Param<A>,
}

/// The LSTM: `[i; f; o; g] = W_x x_t + W_h h_{t−1} + b` (in that order),
/// `c_t = σ(f) c_{t−1} + σ(i) tanh(g)`, `h_t = σ(o) tanh(c_t)`,
/// `y_t = W_hy h_t + b_y`.
#[derive(Parameters)]
pub struct Lstm<A: Element = f32> {
    /// `W_xᵀ`, `[V, 4H]`: row `x` is the gates' input term of character `x`.
    pub wx: Param<A>,
    /// `W_h`, `[4H, H]`.
    pub wh: Param<A>,
    /// `b`, `[4H]`.
    pub b: Param<A>,
    /// `W_hy`, `[V, H]`.
    pub why: Param<A>,
    /// `b_y`, `[V]`.
    pub by: Param<A>,
}

/// Which of the two models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    Rnn,
    Lstm,
}

impl Cell {
    /// The name the command line and the reference use.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Rnn => "rnn",
            Cell::Lstm => "lstm",
        }
    }
}

/// Either model, as the command line chooses.
pub enum CharModel<A: Element = f32> {
    Rnn(Rnn<A>),
    Lstm(Lstm<A>),
}

/// The state carried from one window to the next, `[S, H]` with a row per
/// stream: the hidden state `h` and the LSTM's cell state `c` (the RNN has
/// none and leaves `c` at zero).
#[derive(Clone)]
pub struct State<A: Element = f32> {
    pub h: Var<A>,
    pub c: Var<A>,
}

impl<A: Element> State<A> {
    /// The state of one stream at the start of the text: zeros.
    #[cfg(test)]
    pub fn zero(hidden: usize) -> Self {
        Self::zeros(1, hidden)
    }

    /// The states of `streams` streams at the start of their text: zeros.
    pub fn zeros(streams: usize, hidden: usize) -> Self {
        let zeros = || Var::constant(Array2::<A>::zeros((streams, hidden)));
        State {
            h: zeros(),
            c: zeros(),
        }
    }

    /// The number of streams, one row each.
    pub fn streams(&self) -> usize {
        self.h.shape()[0]
    }
}

impl<A: Element> Detach for State<A> {
    fn detached(self) -> Self {
        State {
            h: self.h.detach(),
            c: self.c.detach(),
        }
    }
}

/// A weight matrix drawn as the reference draws its own: N(0, 1) · 0.01.
fn small<A: Element>(shape: [usize; 2], rng: &mut impl Rng) -> Param<A> {
    Param::new(Array::from_shape_fn(shape, |_| {
        let z: f64 = StandardNormal.sample(rng);
        A::from_f64_lossy(z * 0.01)
    }))
}

fn zeros<A: Element>(length: usize) -> Param<A> {
    Param::new(Array::<A, _>::zeros(length))
}

impl<A: Element> CharModel<A> {
    /// A model initialised as the reference does it, with our own random
    /// stream: weight matrices N(0, 1) · 0.01, biases zero.
    pub fn new(cell: Cell, vocabulary: usize, hidden: usize, rng: &mut impl Rng) -> Self {
        let (v, h) = (vocabulary, hidden);
        match cell {
            Cell::Rnn => CharModel::Rnn(Rnn {
                wxh: small([v, h], rng),
                whh: small([h, h], rng),
                bh: zeros(h),
                why: small([v, h], rng),
                by: zeros(v),
            }),
            Cell::Lstm => CharModel::Lstm(Lstm {
                wx: small([v, 4 * h], rng),
                wh: small([4 * h, h], rng),
                b: zeros(4 * h),
                why: small([v, h], rng),
                by: zeros(v),
            }),
        }
    }

    /// The output layer's weight `W_hy` and bias `b_y`.
    pub fn output_layer(&self) -> (&Param<A>, &Param<A>) {
        match self {
            CharModel::Rnn(m) => (&m.why, &m.by),
            CharModel::Lstm(m) => (&m.why, &m.by),
        }
    }

    /// The size of its states, `H`.
    pub fn hidden(&self) -> usize {
        self.output_layer().0.shape()[1]
    }

    /// Which model this is.
    pub fn cell(&self) -> Cell {
        match self {
            CharModel::Rnn(_) => Cell::Rnn,
            CharModel::Lstm(_) => Cell::Lstm,
        }
    }
}

impl<A: Element> Parameters<A> for CharModel<A> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Param<A>)) {
        match self {
            CharModel::Rnn(m) => m.visit(f),
            CharModel::Lstm(m) => m.visit(f),
        }
    }

    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param<A>)) {
        match self {
            CharModel::Rnn(m) => m.visit_mut(f),
            CharModel::Lstm(m) => m.visit_mut(f),
        }
    }
}

/// One RNN step: `x` is the input term `W_xh x_t + b_h` of the step.
#[differentiable]
pub fn rnn_cell<A: Element>(m: &Rnn<A>, x: &Var<A>, h: &Var<A>) -> Var<A> {
    (h.linear(&m.whh) + x).tanh()
}

/// One LSTM step: `x` is the gates' input term `W_x x_t + b` of the step.
#[differentiable]
pub fn lstm_cell<A: Element>(m: &Lstm<A>, x: &Var<A>, state: &State<A>) -> State<A> {
    let n = m.wh.shape()[1];
    let gates = (state.h.linear(&m.wh) + x).split(1, &[3 * n, n]);
    // i, f and o are sigmoids, g a tanh: one vectorised call for the three.
    let ifo = gates[0].sigmoid().split(1, &[n, n, n]);
    let g = gates[1].tanh();
    let c = &ifo[1] * &state.c + &ifo[0] * g;
    let h = &ifo[2] * c.tanh();
    State { h, c }
}

/// The RNN over a window of the streams of `start`: the summed
/// cross-entropy of each next character, and the last state.
///
/// `inputs` and `targets` are step by step, each step's characters of
/// every stream in the order of `start`'s rows (with one stream: the
/// window's characters).
#[differentiable]
pub fn rnn_window<A: Element>(
    m: &Rnn<A>,
    inputs: &[usize],
    targets: &[usize],
    start: &State<A>,
) -> (Var<A>, State<A>) {
    let steps = inputs.len() / start.streams();
    // Every step's input term at once: a gather and one broadcast add,
    // then one block of rows `[streams, H]` per step.
    let xs = (m.wxh.rows(inputs) + &m.bh).chunk(0, steps);
    let mut h = start.h.clone();
    let mut hs = Vec::with_capacity(steps);
    for x in &xs {
        h = rnn_cell(m, x, &h);
        hs.push(h.clone());
    }
    // The output layer on every step's state at once.
    let logits = concat(&hs, 0).linear(&m.why) + &m.by;
    let loss = logits.cross_entropy(targets);
    let c = start.c.clone();
    (loss, State { h, c })
}

/// The LSTM over a window of the streams of `start`: the summed
/// cross-entropy of each next character, and the last state (`inputs` and
/// `targets` as for [`rnn_window`]).
#[differentiable]
pub fn lstm_window<A: Element>(
    m: &Lstm<A>,
    inputs: &[usize],
    targets: &[usize],
    start: &State<A>,
) -> (Var<A>, State<A>) {
    let steps = inputs.len() / start.streams();
    let xs = (m.wx.rows(inputs) + &m.b).chunk(0, steps);
    let mut state = start.clone();
    let mut hs = Vec::with_capacity(steps);
    for x in &xs {
        state = lstm_cell(m, x, &state);
        hs.push(state.h.clone());
    }
    let logits = concat(&hs, 0).linear(&m.why) + &m.by;
    let loss = logits.cross_entropy(targets);
    (loss, state)
}

/// Either model over a window (see [`rnn_window`], [`lstm_window`]).
#[differentiable]
pub fn window_loss<A: Element>(
    m: &CharModel<A>,
    inputs: &[usize],
    targets: &[usize],
    start: &State<A>,
) -> (Var<A>, State<A>) {
    match m {
        CharModel::Rnn(rnn) => rnn_window(rnn, inputs, targets, start),
        CharModel::Lstm(lstm) => lstm_window(lstm, inputs, targets, start),
    }
}

/// One step of either model on character `x`: the next character's
/// scores `[1, V]` and the new state (for sampling).
#[differentiable]
pub fn next_scores<A: Element>(m: &CharModel<A>, x: usize, state: &State<A>) -> (Var<A>, State<A>) {
    let next = match m {
        CharModel::Rnn(rnn) => {
            let input = rnn.wxh.rows(&[x]) + &rnn.bh;
            let h = rnn_cell(rnn, &input, &state.h);
            let c = state.c.clone();
            State { h, c }
        }
        CharModel::Lstm(lstm) => {
            let input = lstm.wx.rows(&[x]) + &lstm.b;
            lstm_cell(lstm, &input, state)
        }
    };
    let (why, by) = m.output_layer();
    let h = next.h.clone();
    let scores = h.linear(why) + by;
    (scores, next)
}
