//! The teacher-student experiment: a 30-20-10 student microcircuit first
//! learns the self-predicting state without targets (phase 1), then
//! learns a teacher's input-output map from the teacher's targets
//! (phase 2), while every presentation's local weight change is compared
//! with the exact gradient of the steady-state rate model.

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::microcircuit::{Changes, Circuit, Constants, Matrix, Rates, TopDown, Weights};
use crate::rate_model::{Loss, RateModel, angle_degrees};

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Neurons per layer: input, hidden, output.
    pub sizes: [usize; 3],
    pub constants: Constants,
    /// How long each input is shown (ms).
    pub presentation: f64,
    pub phase1_patterns: usize,
    pub phase2_patterns: usize,
    /// Fixed inputs the test error is measured on.
    pub test_patterns: usize,
    /// Phase-2 presentations between two measurements of the test error.
    pub test_every: usize,
    /// Weights (teacher's and student's) are uniform in ±this.
    pub weight_scale: f64,
    pub seed: u64,
}

/// One phase-2 presentation's angles (degrees) between the local weight
/// change and the negative gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Angles {
    /// `W₁` (input to hidden), against the matched loss's gradient.
    pub hidden: f64,
    /// `W₂` (hidden to output), against the matched loss's gradient.
    pub output: f64,
    /// `W₁` against the squared error's gradient.
    pub hidden_squared: f64,
    /// `W₂` against the squared error's gradient.
    pub output_squared: f64,
}

/// How the interneuron circuit (`W_IP`, `W_PI`) gets to the
/// self-predicting state in phase 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interneurons {
    /// Learned in phase 1 and plastic in phase 2: the microcircuit.
    Learned,
    /// Set to the self-predicting state before every phase-2
    /// presentation (`W_IP = W₂` scaled, `W_PI = −B`), and no phase 1:
    /// the assumption of the paper's theorem, which isolates the
    /// approximation from how well the circuit keeps the state.
    Held,
}

/// Phase 1's measures of one presentation's apical potentials.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Apical {
    /// The root mean square over units and steps (noise included).
    pub rms: f64,
    /// The root mean square over units of the presentation's mean
    /// (the systematic part: the noise averages out).
    pub mean: f64,
}

/// What one run (one choice of top-down weights and interneurons)
/// measured.
#[derive(Clone, Debug)]
pub struct Run {
    pub top_down: TopDown,
    pub interneurons: Interneurons,
    /// Phase 1: each presentation's apical potentials (none if held).
    pub apical: Vec<Apical>,
    /// Phase 2: (presentations done, test mean squared error).
    pub test_error: Vec<(usize, f64)>,
    /// Phase 2: each presentation's angles.
    pub angles: Vec<Angles>,
    /// After phase 2: the largest difference between the simulated
    /// circuit's output without a target (noise off, settled) and the rate
    /// model's, over a few test inputs, and the outputs' largest size.
    pub steady_state_gap: (f64, f64),
}

/// The teacher: the rate model with its own random weights.
pub struct Teacher {
    w1: Matrix,
    w2: Matrix,
}

impl Teacher {
    pub fn new(plan: &Plan) -> Self {
        let [n0, n1, n2] = plan.sizes;
        let mut rng = StdRng::seed_from_u64(plan.seed ^ 0x7eac_4e25);
        Teacher {
            w1: Matrix::uniform(n1, n0, plan.weight_scale, &mut rng),
            w2: Matrix::uniform(n2, n1, plan.weight_scale, &mut rng),
        }
    }

    /// The targets of the inputs `x` (one per column).
    pub fn targets(&self, model: &RateModel, x: &Array2<f64>) -> Array2<f64> {
        model.predict(&self.w1, &self.w2, x)
    }
}

/// An input: rates uniform in [0, 1).
fn input(n: usize, rng: &mut StdRng) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(0.0..1.0)).collect()
}

fn column(v: &[f64]) -> Array2<f64> {
    Array2::from_shape_vec((v.len(), 1), v.to_vec()).expect("a column")
}

/// The student's test mean squared error (over outputs and test inputs).
fn test_error(model: &RateModel, w: &Weights, x: &Array2<f64>, t: &Array2<f64>) -> f64 {
    let y = model.predict(&w.w1, &w.w2, x);
    (&y - t).mapv(|d| d * d).mean().unwrap_or(0.0)
}

/// Whether every weight of the circuit is still a finite number.
fn finite(weights: &Weights) -> bool {
    [
        &weights.w1,
        &weights.w2,
        &weights.b,
        &weights.w_ip,
        &weights.w_pi,
    ]
    .iter()
    .all(|m| m.data.iter().all(|v| v.is_finite()))
}

/// The error of a circuit whose weights left the finite numbers at input
/// `input` of `phase`.
fn diverged(phase: u8, input: usize, k: &Constants) -> String {
    format!(
        "the circuit diverged in phase {phase} at input {input}: a weight is no longer a \
         finite number (dt {} ms, tau_w {} ms, noise {}); --tau-w 0, the default, applies \
         the updates at every step instead of filtering them",
        k.dt, k.tau_w, k.noise
    )
}

/// Runs phase 1 (unless the interneurons are held) and phase 2 with the
/// top-down weights `top_down`.
///
/// # Errors
/// When the circuit diverges (a weight stops being a finite number).
pub fn run(plan: &Plan, top_down: TopDown, interneurons: Interneurons) -> Result<Run, String> {
    let n0 = plan.sizes[0];
    let k = plan.constants;
    let model = RateModel::new(&k);
    let teacher = Teacher::new(plan);
    // The same student (and inputs, and noise) for both choices of B.
    let mut init = StdRng::seed_from_u64(plan.seed);
    let weights = Weights::random(plan.sizes, plan.weight_scale, top_down, &mut init);
    let mut circuit = Circuit::new(k, top_down, weights);
    let mut inputs = StdRng::seed_from_u64(plan.seed ^ 0x1a97);
    let mut noise = StdRng::seed_from_u64(plan.seed ^ 0x9015e);
    let mut test_rng = StdRng::seed_from_u64(plan.seed ^ 0x7e57);
    let test_x = Array2::from_shape_fn((n0, plan.test_patterns), |_| {
        test_rng.random_range(0.0..1.0)
    });
    let test_t = teacher.targets(&model, &test_x);

    let phase1 = match interneurons {
        Interneurons::Learned => plan.phase1_patterns,
        Interneurons::Held => 0,
    };
    let mut apical = Vec::with_capacity(phase1);
    let mut changes = Changes::zeros(&circuit.weights);
    for i in 0..phase1 {
        let x = input(n0, &mut inputs);
        let (rms, mean) = circuit.present(
            &x,
            None,
            plan.presentation,
            &Rates::SELF_PREDICTION,
            &mut changes,
            &mut noise,
        );
        apical.push(Apical { rms, mean });
        if !finite(&circuit.weights) {
            return Err(diverged(1, i + 1, &k));
        }
    }

    let mut angles = Vec::with_capacity(plan.phase2_patterns);
    let mut errors = vec![(0, test_error(&model, &circuit.weights, &test_x, &test_t))];
    for p in 0..plan.phase2_patterns {
        let x = input(n0, &mut inputs);
        let t = teacher.targets(&model, &column(&x));
        let t = t.as_slice().expect("a contiguous column").to_vec();
        let w = &circuit.weights;
        let (_, g1, g2) = model.gradient(&w.w1, &w.w2, &x, &t, Loss::Matched);
        let (_, s1, s2) = model.gradient(&w.w1, &w.w2, &x, &t, Loss::Squared);
        if interneurons == Interneurons::Held {
            circuit.weights.make_self_predicting(&k);
        }
        let mut changes = Changes::zeros(&circuit.weights);
        circuit.present(
            &x,
            Some(&t),
            plan.presentation,
            &Rates::TARGETS,
            &mut changes,
            &mut noise,
        );
        if !finite(&circuit.weights) {
            return Err(diverged(2, p + 1, &k));
        }
        let descent = |g: &Matrix| g.data.iter().map(|v| -v).collect::<Vec<f64>>();
        angles.push(Angles {
            hidden: angle_degrees(&changes.w1.data, &descent(&g1)),
            output: angle_degrees(&changes.w2.data, &descent(&g2)),
            hidden_squared: angle_degrees(&changes.w1.data, &descent(&s1)),
            output_squared: angle_degrees(&changes.w2.data, &descent(&s2)),
        });
        if (p + 1) % plan.test_every == 0 || p + 1 == plan.phase2_patterns {
            errors.push((
                p + 1,
                test_error(&model, &circuit.weights, &test_x, &test_t),
            ));
        }
    }

    // The simulated circuit without a target against the rate model.
    let mut gap = 0.0f64;
    let mut size = 0.0f64;
    for j in 0..plan.test_patterns.min(5) {
        let x: Vec<f64> = test_x.column(j).to_vec();
        let mut probe = circuit.clone();
        probe.settle(&x, None, 4.0 * plan.presentation);
        let y = model.predict(&probe.weights.w1, &probe.weights.w2, &column(&x));
        for (u, y) in probe.u2.iter().zip(y.iter()) {
            gap = gap.max((u - y).abs());
            size = size.max(y.abs());
        }
    }
    Ok(Run {
        top_down,
        interneurons,
        apical,
        test_error: errors,
        angles,
        steady_state_gap: (gap, size),
    })
}

/// Summary statistics of some values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub mean: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

pub fn summarize(values: &[f64]) -> Summary {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if sorted.is_empty() {
            f64::NAN
        } else {
            sorted[((sorted.len() - 1) as f64 * q).round() as usize]
        }
    };
    Summary {
        mean: values.iter().sum::<f64>() / values.len().max(1) as f64,
        median: at(0.5),
        p90: at(0.9),
        max: at(1.0),
    }
}
