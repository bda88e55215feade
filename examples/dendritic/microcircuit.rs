//! The dendritic cortical microcircuit of Sacramento, Costa, Bengio and
//! Senn (NeurIPS 2018), simulated in continuous time by Euler steps, for
//! one hidden layer: input rates `r₀`, hidden pyramidal neurons with
//! basal and apical dendrites (`u₁`), the hidden layer's interneurons
//! (`uᴵ`, one per output neuron), and output pyramidal neurons (`u₂`,
//! basal dendrite only) that a target may nudge.
//!
//! Somatic potentials (capacitance `C`, time in ms):
//!
//! ```text
//! C du₁/dt = −g_lk u₁ + g_B (v_B,1 − u₁) + g_A (v_A,1 − u₁) + σξ
//!            v_B,1 = W₁ r₀              (basal: bottom-up)
//!            v_A,1 = B r₂ + W_PI rᴵ     (apical: top-down and interneurons)
//! C du₂/dt = −g_lk u₂ + g_B (v_B,2 − u₂) + g_som (u_trgt − u₂) + σξ
//!            v_B,2 = W₂ r₁              (the last term only with a target)
//! C duᴵ/dt = −g_lk uᴵ + g_D (vᴵ − uᴵ) + g_som (u₂ − uᴵ) + σξ
//!            vᴵ = W_IP r₁               (nudged by the layer above)
//! ```
//!
//! with rates `r = φ(u)`. The paper writes the two nudging currents as
//! excitatory and inhibitory conductances whose reversal potentials make
//! them sum to `g_som (u_target − u)`; the sum is what is simulated.
//!
//! Plasticity (dendritic predictions of somatic activity):
//!
//! ```text
//! dW₁/dt   = η₁   (φ(u₁) − φ(v̂_B,1)) r₀ᵀ,  v̂_B,1 = g_B / (g_lk + g_B + g_A) v_B,1
//! dW₂/dt   = η₂   (φ(u₂) − φ(v̂_B,2)) r₁ᵀ,  v̂_B,2 = g_B / (g_lk + g_B) v_B,2
//! dW_IP/dt = η_IP (φ(uᴵ) − φ(v̂ᴵ)) r₁ᵀ,     v̂ᴵ    = g_D / (g_lk + g_D) vᴵ
//! dW_PI/dt = η_PI (v_rest − v_A,1) rᴵᵀ,     v_rest = 0
//! ```
//!
//! With `τ_w` > 0 (`Constants::tau_w`) each update first passes through a
//! low-pass filter, `τ_w dΔ/dt = −Δ + (error) rᵀ` and `dW/dt = η Δ`; by
//! default `τ_w` is 0 and the updates are applied as they come.
//!
//! The top-down weights `B` are either tied to `W₂ᵀ` (copied after every
//! step, so they follow `W₂` as it learns) or random and fixed.
//!
//! Everything is `f64`, in flat row-major buffers: the network is 30-20-10
//! and a presentation is a thousand steps, so the simulation is plain
//! loops, and the exact gradient it is compared with is `cps`'s
//! (`rate_model.rs`).

use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

/// The paper's constants (see `main.rs` for where each comes from).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Constants {
    /// Membrane capacitance `C` (time unit: ms).
    pub capacitance: f64,
    /// Leak conductance `g_lk`.
    pub g_lk: f64,
    /// Basal dendrite to soma, pyramidal neurons: `g_B`.
    pub g_b: f64,
    /// Apical dendrite to soma, hidden pyramidal neurons: `g_A`.
    pub g_a: f64,
    /// Dendrite to soma, interneurons: `g_D`.
    pub g_d: f64,
    /// Somatic nudging: the target on output neurons, the layer above on
    /// interneurons: `g_som`.
    pub g_som: f64,
    /// The Euler step (ms).
    pub dt: f64,
    /// Time constant of the low-pass filter on input rates and targets (ms).
    pub tau_input: f64,
    /// Intensity of the white noise on every somatic potential (per √ms).
    pub noise: f64,
    /// Time constant of the low-pass filter through which every plastic
    /// pathway's update reaches its weights (ms); 0 applies each step's
    /// update as it comes.
    pub tau_w: f64,
}

impl Constants {
    /// The constants of the teacher-student experiment.
    pub const PAPER: Constants = Constants {
        capacitance: 1.0,
        g_lk: 0.1,
        g_b: 1.0,
        g_a: 0.8,
        g_d: 1.0,
        g_som: 0.8,
        dt: 0.1,
        tau_input: 3.0,
        noise: 0.1,
        tau_w: 0.0,
    };

    /// The hidden layer's dendritic prediction factor `g_B / (g_lk + g_B + g_A)`.
    pub fn hidden_attenuation(&self) -> f64 {
        self.g_b / (self.g_lk + self.g_b + self.g_a)
    }

    /// The output layer's `g_B / (g_lk + g_B)`.
    pub fn output_attenuation(&self) -> f64 {
        self.g_b / (self.g_lk + self.g_b)
    }

    /// The interneurons' `g_D / (g_lk + g_D)`.
    pub fn interneuron_attenuation(&self) -> f64 {
        self.g_d / (self.g_lk + self.g_d)
    }
}

/// The learning rates (per ms) of the four plastic pathways.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    /// `η₁`: input to hidden pyramidal neurons.
    pub forward_hidden: f64,
    /// `η₂`: hidden to output pyramidal neurons.
    pub forward_output: f64,
    /// `η_IP`: hidden pyramidal neurons to interneurons.
    pub inter_from_pyramidal: f64,
    /// `η_PI`: interneurons to hidden pyramidal neurons' apical dendrites.
    pub pyramidal_from_inter: f64,
}

impl Rates {
    /// Phase 1, no targets: only the interneuron circuit learns.
    pub const SELF_PREDICTION: Rates = Rates {
        forward_hidden: 0.0,
        forward_output: 0.0,
        inter_from_pyramidal: 0.0002375,
        pyramidal_from_inter: 0.0005,
    };

    /// Phase 2, targets from the teacher: everything learns.
    pub const TARGETS: Rates = Rates {
        forward_hidden: 0.0011875,
        forward_output: 0.0005,
        inter_from_pyramidal: 0.0011875,
        pyramidal_from_inter: 0.0005,
    };

    /// No plasticity.
    pub const FROZEN: Rates = Rates {
        forward_hidden: 0.0,
        forward_output: 0.0,
        inter_from_pyramidal: 0.0,
        pyramidal_from_inter: 0.0,
    };
}

/// The rate function `φ(u) = ln(1 + eᵘ)` (the soft rectifier), computed
/// so that it neither overflows nor loses small values.
pub fn phi(u: f64) -> f64 {
    (-u.abs()).exp().ln_1p() + u.max(0.0)
}

/// A matrix, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Matrix {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Entries uniform in `±scale`.
    pub fn uniform(rows: usize, cols: usize, scale: f64, rng: &mut StdRng) -> Self {
        Matrix {
            rows,
            cols,
            data: (0..rows * cols)
                .map(|_| rng.random_range(-scale..scale))
                .collect(),
        }
    }

    pub fn transpose(&self) -> Matrix {
        let mut t = Matrix::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                t.data[j * self.rows + i] = self.data[i * self.cols + j];
            }
        }
        t
    }

    /// `out = self · x`.
    pub fn apply(&self, x: &[f64], out: &mut [f64]) {
        debug_assert_eq!((x.len(), out.len()), (self.cols, self.rows));
        for (o, row) in out.iter_mut().zip(self.data.chunks_exact(self.cols)) {
            *o = row.iter().zip(x).map(|(w, x)| w * x).sum();
        }
    }

    /// `out += self · x`.
    pub fn apply_add(&self, x: &[f64], out: &mut [f64]) {
        for (o, row) in out.iter_mut().zip(self.data.chunks_exact(self.cols)) {
            *o += row.iter().zip(x).map(|(w, x)| w * x).sum::<f64>();
        }
    }

    /// `self += scale · post preᵀ`.
    pub fn add_outer(&mut self, scale: f64, post: &[f64], pre: &[f64]) {
        for (row, &p) in self.data.chunks_exact_mut(self.cols).zip(post) {
            let s = scale * p;
            for (w, &r) in row.iter_mut().zip(pre) {
                *w += s * r;
            }
        }
    }
}

/// One compartment's Euler step: `u + dt/C · (Σ gᵢ (Eᵢ − u))` for the
/// pairs `(gᵢ, Eᵢ)` of `drives` (the leak is the pair `(g_lk, 0)`).
pub fn euler_step(u: f64, drives: &[(f64, f64)], dt: f64, capacitance: f64) -> f64 {
    let current: f64 = drives.iter().map(|&(g, e)| g * (e - u)).sum();
    u + dt / capacitance * current
}

/// Adds `scale · post preᵀ` into `w` (and into `changes`), or, if `filter`
/// (`dt / τ_w`) is not 0, moves `filtered` that fraction of the way towards
/// `post preᵀ` and adds `scale · filtered`.
pub fn learn(
    w: &mut Matrix,
    filtered: &mut Matrix,
    changes: Option<&mut Matrix>,
    scale: f64,
    filter: f64,
    post: &[f64],
    pre: &[f64],
) {
    if filter == 0.0 {
        w.add_outer(scale, post, pre);
        if let Some(changes) = changes {
            changes.add_outer(scale, post, pre);
        }
        return;
    }
    filtered.data.iter_mut().for_each(|d| *d *= 1.0 - filter);
    filtered.add_outer(filter, post, pre);
    for (w, d) in w.data.iter_mut().zip(&filtered.data) {
        *w += scale * d;
    }
    if let Some(changes) = changes {
        for (c, d) in changes.data.iter_mut().zip(&filtered.data) {
            *c += scale * d;
        }
    }
}

/// Where the top-down weights come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopDown {
    /// `B = W₂ᵀ` at every step.
    Tied,
    /// `B` random and fixed.
    Random,
}

impl TopDown {
    pub fn name(self) -> &'static str {
        match self {
            TopDown::Tied => "tied",
            TopDown::Random => "random",
        }
    }
}

/// The weights of the circuit.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    /// Hidden × input.
    pub w1: Matrix,
    /// Output × hidden.
    pub w2: Matrix,
    /// Hidden × output: top-down onto apical dendrites.
    pub b: Matrix,
    /// Interneurons × hidden.
    pub w_ip: Matrix,
    /// Hidden × interneurons: onto apical dendrites.
    pub w_pi: Matrix,
}

impl Weights {
    /// Every weight uniform in `±scale`, drawn from `rng` (`B` too, which
    /// `Tied` then overwrites).
    pub fn random(sizes: [usize; 3], scale: f64, top_down: TopDown, rng: &mut StdRng) -> Self {
        let [n0, n1, n2] = sizes;
        let w1 = Matrix::uniform(n1, n0, scale, rng);
        let w2 = Matrix::uniform(n2, n1, scale, rng);
        let mut b = Matrix::uniform(n1, n2, scale, rng);
        let w_ip = Matrix::uniform(n2, n1, scale, rng);
        let w_pi = Matrix::uniform(n1, n2, scale, rng);
        if top_down == TopDown::Tied {
            b = w2.transpose();
        }
        Weights {
            w1,
            w2,
            b,
            w_ip,
            w_pi,
        }
    }

    /// The self-predicting state, set by hand: the interneurons' weights
    /// copy the output layer's (scaled so that their dendritic prediction
    /// equals the output neurons'), and the lateral weights cancel `B`.
    pub fn make_self_predicting(&mut self, k: &Constants) {
        let scale = k.output_attenuation() / k.interneuron_attenuation();
        self.w_ip = self.w2.clone();
        self.w_ip.data.iter_mut().for_each(|w| *w *= scale);
        self.w_pi = self.b.clone();
        self.w_pi.data.iter_mut().for_each(|w| *w = -*w);
    }
}

/// The somatic potentials and filtered inputs of the circuit.
#[derive(Clone, Debug)]
pub struct Circuit {
    pub k: Constants,
    pub top_down: TopDown,
    pub weights: Weights,
    /// Low-pass filtered input rates.
    pub r0: Vec<f64>,
    /// Low-pass filtered target potentials.
    pub target: Vec<f64>,
    pub u1: Vec<f64>,
    pub u2: Vec<f64>,
    pub ui: Vec<f64>,
    /// The apical potentials of the last step.
    pub v_a: Vec<f64>,
    // Buffers, so that a step allocates nothing.
    r1: Vec<f64>,
    r2: Vec<f64>,
    ri: Vec<f64>,
    v_b1: Vec<f64>,
    v_b2: Vec<f64>,
    v_i: Vec<f64>,
    e1: Vec<f64>,
    e2: Vec<f64>,
    ei: Vec<f64>,
    /// The low-pass filtered updates (`τ_w`) of `W₁`, `W₂`, `W_IP`, `W_PI`.
    filtered: [Matrix; 4],
}

/// The forward weights' changes summed over some steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Changes {
    pub w1: Matrix,
    pub w2: Matrix,
}

impl Changes {
    pub fn zeros(weights: &Weights) -> Self {
        Changes {
            w1: Matrix::zeros(weights.w1.rows, weights.w1.cols),
            w2: Matrix::zeros(weights.w2.rows, weights.w2.cols),
        }
    }
}

impl Circuit {
    /// A circuit at rest (every potential and rate filter at 0).
    pub fn new(k: Constants, top_down: TopDown, weights: Weights) -> Self {
        let (n0, n1, n2) = (weights.w1.cols, weights.w1.rows, weights.w2.rows);
        let z = |n| vec![0.0; n];
        Circuit {
            k,
            top_down,
            weights,
            r0: z(n0),
            target: z(n2),
            u1: z(n1),
            u2: z(n2),
            ui: z(n2),
            v_a: z(n1),
            r1: z(n1),
            r2: z(n2),
            ri: z(n2),
            v_b1: z(n1),
            v_b2: z(n2),
            v_i: z(n2),
            e1: z(n1),
            e2: z(n2),
            ei: z(n2),
            filtered: [
                Matrix::zeros(n1, n0),
                Matrix::zeros(n2, n1),
                Matrix::zeros(n2, n1),
                Matrix::zeros(n1, n2),
            ],
        }
    }

    /// One Euler step of `k.dt` with input rates `x` and, if given, the
    /// target `target` (both reach the circuit through the low-pass
    /// filter), learning at `rates`; the forward weights' changes are
    /// added into `changes`. `rng` draws the noise (none if `k.noise` is 0).
    pub fn step(
        &mut self,
        x: &[f64],
        target: Option<&[f64]>,
        rates: &Rates,
        changes: &mut Changes,
        rng: &mut StdRng,
    ) {
        let k = self.k;
        let dt = k.dt;
        let filter = dt / k.tau_input;
        for (r, &x) in self.r0.iter_mut().zip(x) {
            *r += filter * (x - *r);
        }
        if let Some(target) = target {
            for (t, &x) in self.target.iter_mut().zip(target) {
                *t += filter * (x - *t);
            }
        }
        let w = &mut self.weights;
        for (r, &u) in self.r1.iter_mut().zip(&self.u1) {
            *r = phi(u);
        }
        for (r, &u) in self.r2.iter_mut().zip(&self.u2) {
            *r = phi(u);
        }
        for (r, &u) in self.ri.iter_mut().zip(&self.ui) {
            *r = phi(u);
        }
        w.w1.apply(&self.r0, &mut self.v_b1);
        w.b.apply(&self.r2, &mut self.v_a);
        w.w_pi.apply_add(&self.ri, &mut self.v_a);
        w.w2.apply(&self.r1, &mut self.v_b2);
        w.w_ip.apply(&self.r1, &mut self.v_i);

        // Plasticity, from the potentials at the start of the step.
        let (a1, a2, ai) = (
            k.hidden_attenuation(),
            k.output_attenuation(),
            k.interneuron_attenuation(),
        );
        for i in 0..self.u1.len() {
            self.e1[i] = self.r1[i] - phi(a1 * self.v_b1[i]);
        }
        for i in 0..self.u2.len() {
            self.e2[i] = self.r2[i] - phi(a2 * self.v_b2[i]);
            self.ei[i] = self.ri[i] - phi(ai * self.v_i[i]);
        }
        let filter = if k.tau_w > 0.0 { dt / k.tau_w } else { 0.0 };
        let [f1, f2, f_ip, f_pi] = &mut self.filtered;
        if rates.forward_hidden != 0.0 {
            let s = dt * rates.forward_hidden;
            learn(
                &mut w.w1,
                f1,
                Some(&mut changes.w1),
                s,
                filter,
                &self.e1,
                &self.r0,
            );
        }
        if rates.forward_output != 0.0 {
            let s = dt * rates.forward_output;
            learn(
                &mut w.w2,
                f2,
                Some(&mut changes.w2),
                s,
                filter,
                &self.e2,
                &self.r1,
            );
        }
        if rates.inter_from_pyramidal != 0.0 {
            let s = dt * rates.inter_from_pyramidal;
            learn(&mut w.w_ip, f_ip, None, s, filter, &self.ei, &self.r1);
        }
        if rates.pyramidal_from_inter != 0.0 {
            // v_rest − v_A with v_rest = 0: the sign goes into the rate.
            let s = -dt * rates.pyramidal_from_inter;
            learn(&mut w.w_pi, f_pi, None, s, filter, &self.v_a, &self.ri);
        }
        if self.top_down == TopDown::Tied && rates.forward_output != 0.0 {
            let (rows, cols) = (w.w2.rows, w.w2.cols);
            for i in 0..rows {
                for j in 0..cols {
                    w.b.data[j * rows + i] = w.w2.data[i * cols + j];
                }
            }
        }

        // Potentials.
        let noise = k.noise * dt.sqrt();
        let mut kick = || {
            if noise == 0.0 {
                0.0
            } else {
                let z: f64 = StandardNormal.sample(rng);
                noise * z
            }
        };
        let leak = (k.g_lk, 0.0);
        for i in 0..self.u1.len() {
            let drives = [leak, (k.g_b, self.v_b1[i]), (k.g_a, self.v_a[i])];
            self.u1[i] = euler_step(self.u1[i], &drives, dt, k.capacitance) + kick();
        }
        for i in 0..self.u2.len() {
            let u2 = self.u2[i];
            let basal = (k.g_b, self.v_b2[i]);
            let nudged = match target {
                Some(_) => euler_step(
                    u2,
                    &[leak, basal, (k.g_som, self.target[i])],
                    dt,
                    k.capacitance,
                ),
                None => euler_step(u2, &[leak, basal], dt, k.capacitance),
            };
            let drives = [leak, (k.g_d, self.v_i[i]), (k.g_som, u2)];
            self.ui[i] = euler_step(self.ui[i], &drives, dt, k.capacitance) + kick();
            self.u2[i] = nudged + kick();
        }
    }

    /// Presents `x` (and `target`) for `duration` ms; the forward weights'
    /// changes are added into `changes`. Returns two sizes of the apical
    /// potentials: their root mean square over units and steps, and the
    /// root mean square over units of their mean over the steps.
    pub fn present(
        &mut self,
        x: &[f64],
        target: Option<&[f64]>,
        duration: f64,
        rates: &Rates,
        changes: &mut Changes,
        rng: &mut StdRng,
    ) -> (f64, f64) {
        let steps = (duration / self.k.dt).round() as usize;
        let mut squares = 0.0;
        let mut sum = vec![0.0; self.v_a.len()];
        for _ in 0..steps {
            self.step(x, target, rates, changes, rng);
            for (s, v) in sum.iter_mut().zip(&self.v_a) {
                squares += v * v;
                *s += v;
            }
        }
        let n = (steps.max(1) * self.v_a.len()) as f64;
        let mean_squares: f64 = sum.iter().map(|s| s * s).sum::<f64>() / steps.max(1).pow(2) as f64;
        (
            (squares / n).sqrt(),
            (mean_squares / self.v_a.len() as f64).sqrt(),
        )
    }

    /// Starts the filters at `x` and `target` and every potential at the
    /// fixed point of the circuit without noise, as if `x` had been shown
    /// for a long time; the fixed point is found by iterating the steps
    /// without plasticity or noise.
    pub fn settle(&mut self, x: &[f64], target: Option<&[f64]>, duration: f64) {
        self.r0.copy_from_slice(x);
        if let Some(target) = target {
            self.target.copy_from_slice(target);
        }
        let noise = self.k.noise;
        self.k.noise = 0.0;
        let mut changes = Changes::zeros(&self.weights);
        let mut rng = rand::SeedableRng::seed_from_u64(0);
        self.present(x, target, duration, &Rates::FROZEN, &mut changes, &mut rng);
        self.k.noise = noise;
    }
}
