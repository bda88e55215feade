//! The neuron and its spike trains: a leaky integrate-and-fire neuron with
//! a first-order synaptic current in 1 ms ticks, the simulation of a layer
//! of them (event-driven over the input spikes), and the spike-train-level
//! post-synaptic potential `e_{i|j}` computed from the kept spike times.
//!
//! # The discrete neuron
//!
//! With `α = e^{-1/τm}`, `β = e^{-1/τs}` and `c = 1 / (1 − τs/τm)`, each
//! tick `t` of neuron `i` does, in this order:
//!
//! ```text
//! v ← α v + c (α − β) I          membrane, driven by last tick's current
//! refractory? v ← 0              (held at 0 for `refractory` ticks after a spike)
//! else v ≥ ν? spike at t, v ← 0
//! I ← β I + Σ_j w_ij s_j(t)      first-order synaptic current, input spikes of tick t
//! ```
//!
//! Without resets this makes one input spike at `t_p` add exactly
//! `w ε(t − t_p)` to `v`, with the paper's kernel sampled at whole ticks,
//! `ε(s) = (e^{-s/τm} − e^{-s/τs}) / (1 − τs/τm)` (the recurrence
//! `ε(n+1) = α ε(n) + c (α − β) β^n` holds exactly). A reset at tick `r`
//! (the last tick the neuron is held at 0) zeroes the membrane but not the
//! synaptic current, so afterwards an earlier input spike contributes
//! `β^{r − t_p} ε(t − r)`: the paper's `ε(s, t) = e^{-max(t−s, 0)/τs}
//! ε(min(s, t))`, `s` the time since the reset and `t` since the input
//! spike.
//!
//! # The S-PSP
//!
//! `e_{i|j} = Σ_k Σ_{t_p} ε(t_k − r_k, t_k − t_p)`, summed over the firing
//! ticks `t_k` of `i` (with `r_k` the reset before `t_k`) and the spikes of
//! `j` before them. With `D_j(t) = Σ_{t_p ≤ t} ε(t − t_p)`, the PSP of `j`
//! as if `i` never reset, the membrane's linearity gives
//! `e_{i|j} = Σ_k [D_j(t_k) − α^{t_k − r_k} D_j(r_k)]` (no second term
//! before the first spike): one table of `D` per sample and input, and two
//! rows of it per output spike. Then `Σ_j w_ij e_{i|j} = Σ_k v_i(t_k)`, the
//! membrane at the firing ticks, and since `v_i(t_k) ≥ ν` just crosses the
//! threshold, `a_i ≈ (1/ν) Σ_j w_ij e_{i|j}` up to the overshoot.

use cps::prelude::*;
use ndarray::ArrayView2;

/// The constants of one layer's neurons.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neuron {
    /// Membrane time constant τm, in ticks (ms).
    pub tau_m: f64,
    /// Synaptic time constant τs, in ticks.
    pub tau_s: f64,
    /// Firing threshold ν (the resting and reset potential is 0).
    pub threshold: f64,
    /// Ticks the membrane is held at 0 after a spike.
    pub refractory: usize,
}

impl Neuron {
    /// `e^{-1/τm}`: the membrane's decay per tick.
    pub fn alpha(&self) -> f64 {
        (-1.0 / self.tau_m).exp()
    }

    /// `e^{-1/τs}`: the synaptic current's decay per tick.
    pub fn beta(&self) -> f64 {
        (-1.0 / self.tau_s).exp()
    }

    /// `ε(1) = c (α − β)`: how much of the current enters the membrane per tick.
    pub fn gain(&self) -> f64 {
        (self.alpha() - self.beta()) / (1.0 - self.tau_s / self.tau_m)
    }

    /// The PSP kernel `ε(s) = (e^{-s/τm} − e^{-s/τs}) / (1 − τs/τm)`.
    #[cfg(test)]
    pub fn kernel(&self, s: f64) -> f64 {
        if s <= 0.0 {
            return 0.0;
        }
        ((-s / self.tau_m).exp() - (-s / self.tau_s).exp()) / (1.0 - self.tau_s / self.tau_m)
    }
}

/// Spike times of a batch of samples, neuron by neuron (ticks in
/// increasing order), in one flat array.
#[derive(Clone, Debug, PartialEq)]
pub struct Trains {
    /// Samples.
    pub batch: usize,
    /// Neurons per sample.
    pub neurons: usize,
    /// Ticks per sample (T).
    pub ticks: usize,
    /// Where the train of (sample b, neuron n) starts: index `b * neurons + n`.
    offsets: Vec<u32>,
    times: Vec<u16>,
}

impl Trains {
    /// Trains from per-(sample, neuron) lists of ticks, `lists[b][n]`.
    #[cfg(test)]
    pub fn from_lists(ticks: usize, lists: &[Vec<Vec<u16>>]) -> Self {
        let mut builder = TrainsBuilder::new(lists.first().map_or(0, Vec::len), ticks);
        for sample in lists {
            for train in sample {
                builder.push_train(train);
            }
        }
        builder.finish()
    }

    /// The spike ticks of neuron `n` of sample `b`.
    #[inline]
    pub fn of(&self, b: usize, n: usize) -> &[u16] {
        let i = b * self.neurons + n;
        &self.times[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// The firing counts, (batch, neurons).
    pub fn counts<A: Element>(&self) -> ndarray::Array2<A> {
        ndarray::Array2::from_shape_fn((self.batch, self.neurons), |(b, n)| {
            A::from_usize(self.of(b, n).len()).expect("a count fits")
        })
    }

    /// Every spike of sample `b` sorted by tick: `offsets[t]..offsets[t+1]`
    /// index the neurons firing at tick `t`.
    pub fn by_tick(&self, b: usize, offsets: &mut Vec<u32>, neurons: &mut Vec<u32>) {
        offsets.clear();
        offsets.resize(self.ticks + 1, 0);
        for n in 0..self.neurons {
            for &t in self.of(b, n) {
                offsets[t as usize + 1] += 1;
            }
        }
        for t in 0..self.ticks {
            offsets[t + 1] += offsets[t];
        }
        neurons.clear();
        neurons.resize(offsets[self.ticks] as usize, 0);
        let mut next: Vec<u32> = offsets[..self.ticks].to_vec();
        for n in 0..self.neurons {
            for &t in self.of(b, n) {
                let slot = &mut next[t as usize];
                neurons[*slot as usize] = n as u32;
                *slot += 1;
            }
        }
    }
}

/// Builds [`Trains`] train by train, in (sample, neuron) order.
pub struct TrainsBuilder {
    neurons: usize,
    ticks: usize,
    offsets: Vec<u32>,
    times: Vec<u16>,
}

impl TrainsBuilder {
    /// An empty batch of trains of `neurons` neurons over `ticks` ticks.
    pub fn new(neurons: usize, ticks: usize) -> Self {
        assert!(ticks <= usize::from(u16::MAX), "at most 65535 ticks");
        TrainsBuilder {
            neurons,
            ticks,
            offsets: vec![0],
            times: Vec::new(),
        }
    }

    /// Appends the next neuron's train.
    pub fn push_train(&mut self, ticks: &[u16]) {
        debug_assert!(ticks.windows(2).all(|w| w[0] < w[1]));
        self.times.extend_from_slice(ticks);
        self.offsets.push(self.times.len() as u32);
    }

    /// The trains pushed so far.
    pub fn finish(self) -> Trains {
        let trains = self.offsets.len() - 1;
        assert!(
            self.neurons == 0 && trains == 0 || trains.is_multiple_of(self.neurons.max(1)),
            "whole samples of trains"
        );
        Trains {
            batch: trains.checked_div(self.neurons).unwrap_or(0),
            neurons: self.neurons,
            ticks: self.ticks,
            offsets: self.offsets,
            times: self.times,
        }
    }
}

/// What a layer's forward pass leaves for its backward pass beside the
/// output trains: for each (sample, neuron) the tick at which the membrane
/// came closest to the threshold (meaningful for neurons that never fired).
pub struct Simulated<A> {
    /// The output spike trains.
    pub trains: Trains,
    /// The firing counts, (batch, neurons).
    pub counts: ndarray::Array2<A>,
    /// Per (sample, neuron): the tick of the highest membrane potential.
    pub closest: Vec<u16>,
}

/// Simulates a layer of `weight.nrows()` neurons driven through `weight`
/// (outputs × inputs) by the spike trains `input`, sample by sample.
pub fn simulate<A: Element>(
    input: &Trains,
    weight: ArrayView2<'_, A>,
    neuron: &Neuron,
) -> Simulated<A> {
    let (outputs, inputs) = weight.dim();
    assert_eq!(inputs, input.neurons, "the weight's columns are the inputs");
    let ticks = input.ticks;
    // Input rows contiguous: an input spike adds one row to the currents.
    let transposed: Vec<A> = weight.t().iter().copied().collect();
    let (alpha, beta, gain) = (
        A::from_f64_lossy(neuron.alpha()),
        A::from_f64_lossy(neuron.beta()),
        A::from_f64_lossy(neuron.gain()),
    );
    let threshold = A::from_f64_lossy(neuron.threshold);
    let refractory = neuron.refractory as u16;
    let mut builder = TrainsBuilder::new(outputs, ticks);
    let mut closest = Vec::with_capacity(input.batch * outputs);
    let (mut tick_offsets, mut spiking) = (Vec::new(), Vec::new());
    let (mut v, mut current) = (vec![A::zero(); outputs], vec![A::zero(); outputs]);
    let mut held = vec![0u16; outputs];
    let mut highest = vec![(A::neg_infinity(), 0u16); outputs];
    let mut fired: Vec<Vec<u16>> = vec![Vec::new(); outputs];
    for b in 0..input.batch {
        input.by_tick(b, &mut tick_offsets, &mut spiking);
        v.fill(A::zero());
        current.fill(A::zero());
        held.fill(0);
        highest.fill((A::neg_infinity(), 0));
        fired.iter_mut().for_each(Vec::clear);
        for t in 0..ticks {
            let tick = t as u16;
            for o in 0..outputs {
                let mut u = alpha * v[o] + gain * current[o];
                current[o] *= beta;
                if held[o] > 0 {
                    u = A::zero();
                    held[o] -= 1;
                } else if u >= threshold {
                    fired[o].push(tick);
                    u = A::zero();
                    held[o] = refractory;
                } else if u > highest[o].0 {
                    highest[o] = (u, tick);
                }
                v[o] = u;
            }
            for &j in &spiking[tick_offsets[t] as usize..tick_offsets[t + 1] as usize] {
                let row = &transposed[j as usize * outputs..(j as usize + 1) * outputs];
                for (c, &w) in current.iter_mut().zip(row) {
                    *c += w;
                }
            }
        }
        for o in 0..outputs {
            builder.push_train(&fired[o]);
            closest.push(highest[o].1);
        }
    }
    let trains = builder.finish();
    let counts = trains.counts();
    Simulated {
        trains,
        counts,
        closest,
    }
}

/// The unreset PSP table of one sample: `D_j(t)` for the inputs that fire
/// at least once (`active`), one row of `active.len()` values per tick.
pub struct PspTable<A> {
    /// The inputs with at least one spike, in increasing order.
    pub active: Vec<usize>,
    /// `rows[t * active.len() + a] = D_{active[a]}(t)`.
    pub rows: Vec<A>,
}

impl<A: Element> PspTable<A> {
    /// The table of sample `b` of `input`.
    pub fn new(input: &Trains, b: usize, neuron: &Neuron) -> Self {
        let active: Vec<usize> = (0..input.neurons)
            .filter(|&j| !input.of(b, j).is_empty())
            .collect();
        let width = active.len();
        let (alpha, beta, gain) = (
            A::from_f64_lossy(neuron.alpha()),
            A::from_f64_lossy(neuron.beta()),
            A::from_f64_lossy(neuron.gain()),
        );
        let mut rows = vec![A::zero(); input.ticks * width];
        let mut column = vec![usize::MAX; input.neurons];
        for (a, &j) in active.iter().enumerate() {
            column[j] = a;
        }
        let (mut tick_offsets, mut spiking) = (Vec::new(), Vec::new());
        input.by_tick(b, &mut tick_offsets, &mut spiking);
        let (mut u, mut y) = (vec![A::zero(); width], vec![A::zero(); width]);
        for t in 0..input.ticks {
            for a in 0..width {
                u[a] = alpha * u[a] + gain * y[a];
                y[a] *= beta;
            }
            for &j in &spiking[tick_offsets[t] as usize..tick_offsets[t + 1] as usize] {
                y[column[j as usize]] += A::one();
            }
            rows[t * width..(t + 1) * width].copy_from_slice(&u);
        }
        PspTable { active, rows }
    }

    /// `D(t)` of every active input.
    #[inline]
    pub fn row(&self, t: usize) -> &[A] {
        let width = self.active.len();
        &self.rows[t * width..(t + 1) * width]
    }

    /// Writes into `e` (one value per active input) the S-PSP `e_{i|j}` of
    /// a neuron firing at `fired`: `Σ_k D(t_k) − α^{t_k − r_k} D(r_k)`.
    pub fn spsp(&self, fired: &[u16], neuron: &Neuron, e: &mut [A]) {
        e.fill(A::zero());
        let alpha = neuron.alpha();
        let mut reset: Option<usize> = None;
        for &t in fired {
            let t = usize::from(t);
            for (e, &d) in e.iter_mut().zip(self.row(t)) {
                *e += d;
            }
            if let Some(r) = reset {
                let decay = A::from_f64_lossy(alpha.powi((t - r) as i32));
                for (e, &d) in e.iter_mut().zip(self.row(r)) {
                    *e -= decay * d;
                }
            }
            reset = Some(t + neuron.refractory);
        }
    }
}
