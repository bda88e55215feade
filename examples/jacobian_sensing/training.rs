//! Training through a black box: an MLP whose middle layer is a frozen
//! random map `tanh(W z + b)` of R³² that the model may only call, while
//! the layers around it train through the `Jᵀg` that random sensing
//! estimates; beside the same model trained with exact gradients, with
//! and without corrupted calls.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use cps::ops::blackbox::{
    CallCounter, CorruptedCalls, Decoder, JacobianEstimator, L1, LeastSquares, MeasurementCount,
    RandomSensing,
};
use cps::prelude::*;
use ndarray::{Array1, Array2, ArrayD, Ix2};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::data::{DataSet, Examples};
use crate::table::Table;

/// The width of the hidden layers (and of the black box).
const HIDDEN: usize = 32;

/// Examples per step.
const BATCH: usize = 32;

/// Calls per batch, per input of the black box: with 3n, L1 decoding
/// outvotes up to about a third of the calls wrong, so that the batches
/// in which chance corrupts more than the tenth asked for still decode
/// (with 2n, one batch in a few dozen would not, and one gradient of the
/// order of the garbage derails training).
const PER_UNKNOWN: f64 = 3.0;

/// The fraction of corrupted calls in the faulty runs.
const FAULTY: f64 = 0.1;

/// The trained layers: features → tanh → [black box] → logits.
#[derive(Parameters)]
struct Mlp {
    w1: Param<f64>,
    b1: Param<f64>,
    w2: Param<f64>,
    b2: Param<f64>,
}

impl Mlp {
    /// Weights drawn with variance 1 / fan-in, biases zero.
    fn new(features: usize, classes: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        Mlp {
            w1: Param::new(gaussian(&mut rng, HIDDEN, features)),
            b1: Param::new(Array1::<f64>::zeros(HIDDEN)),
            w2: Param::new(gaussian(&mut rng, classes, HIDDEN)),
            b2: Param::new(Array1::<f64>::zeros(classes)),
        }
    }
}

fn gaussian(rng: &mut StdRng, rows: usize, cols: usize) -> Array2<f64> {
    let scale = 1.0 / (cols as f64).sqrt();
    Array2::from_shape_simple_fn((rows, cols), || {
        scale * rng.sample::<f64, _>(StandardNormal)
    })
}

/// The frozen middle layer `z ↦ tanh(z Wᵀ + b)`, row by row.
struct Frozen {
    w: Array2<f64>,
    b: Array1<f64>,
    /// The same, as constants of `cps` for the exact run.
    w_var: Var<f64>,
    b_var: Var<f64>,
    calls: CallCounter,
}

impl Frozen {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        // Gain 1.5: a layer that mixes, not one near the identity.
        let w = gaussian(&mut rng, HIDDEN, HIDDEN) * 1.5;
        let b = Array1::from_shape_simple_fn(HIDDEN, || 0.1 * rng.sample::<f64, _>(StandardNormal));
        Frozen {
            w_var: Var::constant(w.clone()),
            b_var: Var::constant(b.clone()),
            w,
            b,
            calls: CallCounter::new(),
        }
    }

    /// The layer as a black box: plain ndarray on a batch, its calls
    /// counted.
    fn function(&self) -> impl Fn(&ArrayD<f64>) -> ArrayD<f64> + '_ {
        self.calls.wrap(move |z: &ArrayD<f64>| {
            let z = z
                .view()
                .into_dimensionality::<Ix2>()
                .expect("a batch of rows");
            (z.dot(&self.w.t()) + &self.b).mapv(f64::tanh).into_dyn()
        })
    }
}

/// How the gradient crosses the middle layer.
enum Middle {
    /// `cps` differentiates the layer.
    Exact,
    /// The layer is a black box whose `Jᵀg` this estimator makes.
    BlackBox(Rc<RefCell<dyn JacobianEstimator<f64>>>),
}

#[differentiable]
fn middle_layer(frozen: &Frozen, middle: &Middle, h: &Var<f64>) -> Var<f64> {
    match middle {
        Middle::Exact => (h.linear(&frozen.w_var) + &frozen.b_var).tanh(),
        Middle::BlackBox(estimator) => h.black_box(frozen.function(), Rc::clone(estimator)),
    }
}

#[differentiable]
fn logits(m: &Mlp, frozen: &Frozen, middle: &Middle, x: &Var<f64>) -> Var<f64> {
    let h = (x.linear(&m.w1) + &m.b1).tanh();
    let z = middle_layer(frozen, middle, &h);
    z.linear(&m.w2) + &m.b2
}

#[differentiable]
fn batch_loss(
    m: &Mlp,
    frozen: &Frozen,
    middle: &Middle,
    x: &Var<f64>,
    labels: &[usize],
) -> Var<f64> {
    logits(m, frozen, middle, x).cross_entropy_mean(labels)
}

/// The fraction of `examples` classified right.
fn accuracy(m: &Mlp, frozen: &Frozen, examples: &Examples) -> f64 {
    let x = Var::constant(examples.features.clone());
    let predicted = logits(m, frozen, &Middle::Exact, &x).eval().argmax_axis(1);
    let right = predicted
        .iter()
        .zip(&examples.labels)
        .filter(|(p, l)| p == l)
        .count();
    right as f64 / examples.len().max(1) as f64
}

/// One training run's result.
struct Run {
    accuracy: f64,
    /// All calls of the black box, the forward passes' included.
    calls: usize,
    /// The calls made to estimate gradients, and how many were corrupted.
    sensed: usize,
    corrupted: usize,
    seconds: f64,
}

/// Trains a fresh model (the same initial parameters and batch order
/// every run) with the middle layer's gradient from `middle`.
fn train(data: &DataSet, epochs: usize, seed: u64, middle: &Middle, frozen: &Frozen) -> (f64, f64) {
    let mut model = Mlp::new(data.train.features.ncols(), data.classes, seed);
    let mut optimizer = Adam::<f64>::new(0.01);
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(1));
    let start = Instant::now();
    for _ in 0..epochs {
        order.shuffle(&mut rng);
        for indices in order.chunks(BATCH) {
            let (features, labels) = data.train.select(indices);
            let x = Var::constant(features);
            batch_loss(&model, frozen, middle, &x, &labels).backward();
            optimizer.step(&mut model);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    (accuracy(&model, frozen, &data.test), seconds)
}

/// A black-box run: random sensing with `decoder` on independent rows,
/// twice as many calls as the layer has inputs, `fraction` of them
/// corrupted.
fn black_box_run(
    data: &DataSet,
    epochs: usize,
    seed: u64,
    decoder: Box<dyn Decoder>,
    fraction: f64,
) -> Run {
    let frozen = Frozen::new(seed);
    let sensing = RandomSensing::new(decoder, seed)
        .with_measurements(MeasurementCount::PerUnknown(PER_UNKNOWN))
        .with_independent_rows();
    let faulty = Rc::new(RefCell::new(CorruptedCalls::new(sensing, fraction, seed)));
    let middle = Middle::BlackBox(faulty.clone());
    let (accuracy, seconds) = train(data, epochs, seed, &middle, &frozen);
    let (corrupted, sensed) = (faulty.borrow().corrupted(), faulty.borrow().calls());
    Run {
        accuracy,
        calls: frozen.calls.calls(),
        sensed,
        corrupted,
        seconds,
    }
}

/// Runs the experiment and prints its table.
pub fn run(data: &DataSet, epochs: usize, seed: u64) {
    report!(
        "## Training through a black box: {}, {} training and {} test examples; features → 32 tanh → \
         black box (frozen tanh(Wz + b), 32 → 32) → {} classes; Adam, batches of {BATCH}, {epochs} epochs; \
         sensing: {} calls per batch ({PER_UNKNOWN}n, rows independent)",
        data.name,
        data.train.len(),
        data.test.len(),
        data.classes,
        (PER_UNKNOWN * HIDDEN as f64) as usize
    );
    let frozen = Frozen::new(seed);
    let (exact, seconds) = train(data, epochs, seed, &Middle::Exact, &frozen);
    let mut table = Table::new(&[
        "gradient through the black box",
        "garbage calls",
        "test accuracy",
        "vs exact",
        "black-box calls (all)",
        "time (s)",
    ]);
    table.row(vec![
        "exact (cps differentiates the layer)".into(),
        "—".into(),
        format!("{:.2}%", 100.0 * exact),
        "—".into(),
        "—".into(),
        format!("{seconds:.1}"),
    ]);
    for (robust, fraction) in [(false, 0.0), (true, 0.0), (false, FAULTY), (true, FAULTY)] {
        let (name, decoder): (&str, Box<dyn Decoder>) = if robust {
            ("L1", Box::new(L1::default()))
        } else {
            ("least squares", Box::new(LeastSquares))
        };
        let run = black_box_run(data, epochs, seed, decoder, fraction);
        table.row(vec![
            format!("random sensing, {name}"),
            format!(
                "{:.0}% ({} of {})",
                100.0 * fraction,
                run.corrupted,
                run.sensed
            ),
            format!("{:.2}%", 100.0 * run.accuracy),
            format!("{:+.2} points", 100.0 * (run.accuracy - exact)),
            run.calls.to_string(),
            format!("{:.1}", run.seconds),
        ]);
    }
    table.print();
}
