//! Random-direction sensing: the black box called along a few random
//! directions, and `Jᵀg` (or the whole Jacobian) decoded from the
//! measurements by a [`Decoder`].

use ndarray::{Array1, Array2, ArrayD, s};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::coloured::SparseJacobian;
use super::decoders::{Decoder, LeastSquares};
use super::l1::L1;
use super::measurements::{Measurements, random_directions};
use super::sparsity::SparsityPattern;
use super::{JacobianEstimator, check_step};
use crate::element::Element;

/// How many calls (measurements) [`RandomSensing`] makes, besides the
/// forward pass's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MeasurementCount {
    /// Exactly this many.
    Fixed(usize),
    /// This many per unknown, rounded up (at least one): `1.0` for as
    /// many equations as unknowns, all least squares needs on exact
    /// measurements; `2.0` leaves L1 decoding room to outvote a minority
    /// of wrong ones.
    PerUnknown(f64),
}

impl MeasurementCount {
    /// The number of calls for `unknowns` unknowns measured `per_call`
    /// at a time.
    fn calls(self, unknowns: usize, per_call: usize) -> usize {
        match self {
            MeasurementCount::Fixed(m) => m,
            MeasurementCount::PerUnknown(ratio) => {
                let needed = unknowns as f64 / per_call.max(1) as f64;
                ((ratio * needed).ceil() as usize).max(1)
            }
        }
    }
}

/// A [`JacobianEstimator`] that perturbs the input along random unit
/// directions `δᵢ`, measures `yᵢ = gᵀ (f(x + h δᵢ) − f(x)) / h` (one
/// equation `(Jᵀg) · δᵢ = yᵢ` per call) and decodes `Jᵀg` from them with
/// its [`Decoder`]: [`LeastSquares`], or [`L1`] when some calls may return
/// garbage (Choromanski and Sindhwani, "On Blackbox Backpropagation and
/// Jacobian Sensing", NeurIPS 2017).
///
/// The strategy owns its generator, seeded at construction, so a run
/// draws the same directions every time. It makes
/// [`MeasurementCount::PerUnknown(2.0)`](MeasurementCount) calls unless
/// told otherwise (twice as many as the input has elements), besides the
/// forward pass's, whose output it reuses.
///
/// With [`with_independent_rows`](RandomSensing::with_independent_rows),
/// the function is known to map each row of its input (along the first
/// axis: a sample of a batch) to the same row of its output, independently
/// of the others. Then every call perturbs every row along its own
/// direction and measures every row's product at once: a batch costs the
/// calls of one sample.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::ops::blackbox::{CallCounter, RandomSensing};
/// use ndarray::{array, ArrayD, Ix1};
///
/// // y = tanh(M x) in a black box; the gradient of sum(y) is Mᵀ (1 − y²).
/// let m = array![[0.5f64, -1.0, 0.2], [0.3, 0.8, -0.6]];
/// let calls = CallCounter::new();
/// let f = calls.wrap(|x: &ArrayD<f64>| {
///     m.dot(&x.view().into_dimensionality::<Ix1>().unwrap()).mapv(f64::tanh).into_dyn()
/// });
/// let x = Param::new(array![0.4f64, -0.2, 0.9]);
/// lazy(|k: &mut dyn FnMut(Var<f64>)| {
///     x.black_box(&f, RandomSensing::l1(7)).bind(|y| y.sum().bind(|s| k(s)))
/// })
/// .backward();
/// let y = m.dot(&x.array().view().into_dimensionality::<Ix1>().unwrap()).mapv(f64::tanh);
/// let exact = m.t().dot(&y.mapv(|y| 1.0 - y * y));
/// assert!(x.grad().iter().zip(&exact).all(|(g, e)| (g - e).abs() < 1e-6));
/// assert_eq!(calls.calls(), 1 + 2 * 3); // the forward pass, then 2n
/// ```
#[derive(Clone, Debug)]
pub struct RandomSensing<D = L1> {
    decoder: D,
    rng: StdRng,
    count: MeasurementCount,
    step: Option<f64>,
    independent_rows: bool,
}

impl RandomSensing<LeastSquares> {
    /// Sensing with least-squares decoding from as many calls as
    /// unknowns, the directions drawn from a generator seeded with `seed`.
    pub fn least_squares(seed: u64) -> Self {
        RandomSensing::new(LeastSquares, seed).with_measurements(MeasurementCount::PerUnknown(1.0))
    }
}

impl RandomSensing<L1> {
    /// Sensing with L1 decoding from twice as many calls as unknowns, the
    /// directions drawn from a generator seeded with `seed`.
    pub fn l1(seed: u64) -> Self {
        RandomSensing::new(L1::default(), seed)
    }
}

impl<D: Decoder> RandomSensing<D> {
    /// Sensing that decodes with `decoder`, draws its directions from a
    /// generator seeded with `seed`, and makes twice as many calls as
    /// unknowns, with a relative step of the square root of the element
    /// type's machine epsilon.
    pub fn new(decoder: D, seed: u64) -> Self {
        RandomSensing {
            decoder,
            rng: StdRng::seed_from_u64(seed),
            count: MeasurementCount::PerUnknown(2.0),
            step: None,
            independent_rows: false,
        }
    }

    /// The same, making `count` calls per estimate.
    pub fn with_measurements(mut self, count: MeasurementCount) -> Self {
        self.count = count;
        self
    }

    /// The same, with the relative step `step` (see
    /// [`Measurements::take`]).
    ///
    /// # Panics
    /// When `step` is not positive and finite.
    #[track_caller]
    pub fn with_step(mut self, step: f64) -> Self {
        check_step("RandomSensing", step);
        self.step = Some(step);
        self
    }

    /// The same, for a function that maps each row of its input (along
    /// the first axis) to the same row of its output on its own, as a
    /// layer maps the samples of a batch: one call measures every row.
    pub fn with_independent_rows(mut self) -> Self {
        self.independent_rows = true;
        self
    }

    /// The decoder.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// The calls one estimate for an input of `len` elements (the whole
    /// input, or one row of it with independent rows) takes, besides the
    /// forward pass's.
    pub fn calls_for(&self, len: usize) -> usize {
        if len == 0 {
            0
        } else {
            self.count.calls(len, 1)
        }
    }

    /// Draws the directions and calls `f` along them (at `x`, where its
    /// output is `y`); the number of independent parts of the input (the
    /// rows, or 1). The calls are counted for `(unknowns, per_call)`,
    /// unknowns determined `per_call` at a time, or by default for as many
    /// unknowns as a part has elements, one equation in them per call.
    ///
    /// A dense Jacobian sees a whole direction, so unit directions keep
    /// the linear approximation's error at the step's order; a sparse one
    /// sees a few elements of each, so `per_element` directions (of length
    /// `√n`, elements of the order of 1) keep the perturbation each output
    /// sees as large as forward differences would.
    fn measure<A: Element>(
        &mut self,
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
        unknowns: Option<(usize, usize)>,
        per_element: bool,
    ) -> (Measurements, usize) {
        let parts = self.parts(x, y);
        let (unknowns, per_call) = unknowns.unwrap_or((x.len() / parts.max(1), 1));
        let calls = if unknowns == 0 {
            0
        } else {
            self.count.calls(unknowns, per_call)
        };
        let mut directions = random_directions(&mut self.rng, calls, x.len(), parts.max(1));
        if per_element {
            directions *= ((x.len() / parts.max(1)) as f64).sqrt();
        }
        let step = self.step.unwrap_or(A::epsilon().sqrt().to_f64_lossless());
        (Measurements::take(f, x, y, directions.view(), step), parts)
    }

    /// The number of independent parts of an input `x` with output `y`.
    #[track_caller]
    fn parts<A: Element>(&self, x: &ArrayD<A>, y: &ArrayD<A>) -> usize {
        if !self.independent_rows {
            return 1;
        }
        match (x.shape().first(), y.shape().first()) {
            (Some(&rows), Some(&out_rows)) if rows == out_rows => rows,
            _ => crate::ops::shape_mismatch(
                "RandomSensing",
                x.shape(),
                y.shape(),
                "with independent rows, the input and the output must have the same number of \
                 rows (the same first axis)",
            ),
        }
    }

    /// The Jacobian of `f` at `x` (where its output is `y`), outputs by
    /// inputs (`y.len() × x.len()`, both flattened in logical order),
    /// decoded column by column from
    /// [`calls_for(x.len())`](RandomSensing::calls_for) calls (per row,
    /// with independent rows, where the Jacobian is block-diagonal).
    ///
    /// ```
    /// use cps_runtime::ops::blackbox::{MeasurementCount, RandomSensing};
    /// use ndarray::{array, ArrayD};
    ///
    /// // A map of R³ to R², linearised from 3 calls (and the one at x).
    /// let f = |x: &ArrayD<f64>| array![x[0].sin() * x[1], x[2].exp()].into_dyn();
    /// let x = array![0.5, 2.0, -1.0].into_dyn();
    /// let mut sensing = RandomSensing::least_squares(1);
    /// let j = sensing.jacobian(&f, &x, &f(&x));
    /// let exact = array![[0.5f64.cos() * 2.0, 0.5f64.sin(), 0.0], [0.0, 0.0, (-1.0f64).exp()]];
    /// assert!((&j - &exact).iter().all(|e| e.abs() < 1e-6));
    /// ```
    ///
    /// # Panics
    /// When the output's first axis differs from the input's with
    /// independent rows, or as [`Measurements::take`] and the decoder.
    #[track_caller]
    pub fn jacobian<A: Element>(
        &mut self,
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
    ) -> Array2<f64> {
        let (measured, parts) = self.measure(f, x, y, None, false);
        let mut jacobian = Array2::zeros((y.len(), x.len()));
        for_each_part(x.len(), y.len(), parts, |inputs, outputs| {
            let (directions, differences) = measured.block(inputs.clone(), outputs.clone());
            let part = self.decoder.decode_columns(directions, differences);
            jacobian
                .slice_mut(s![outputs, inputs])
                .assign(&part.reversed_axes());
        });
        jacobian
    }

    /// The Jacobian of `f` at `x` (where its output is `y`), known to be
    /// zero outside `pattern` (outputs by inputs, flattened in logical
    /// order), decoded row by row (see [`Measurements::decode_sparse`]):
    /// the calls are counted for the unknowns of the pattern's longest
    /// row, so that a banded Jacobian of bandwidth `w` takes `w` calls
    /// with [`MeasurementCount::PerUnknown(1.0)`](MeasurementCount), as
    /// many as colouring, and the L1 decoder with `2.0` stays robust.
    /// Independent rows are not used here: the pattern says it all.
    ///
    /// # Panics
    /// When the pattern's shape is not outputs by inputs, or as
    /// [`Measurements::take`] and the decoder.
    #[track_caller]
    pub fn sparse_jacobian<A: Element>(
        &mut self,
        pattern: &SparsityPattern,
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
    ) -> SparseJacobian {
        let longest = pattern
            .rows_to_columns()
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0);
        let (measured, _) = self.whole(|s| s.measure(f, x, y, Some((longest, 1)), true));
        measured.decode_sparse(pattern, &self.decoder)
    }

    /// The Jacobian of `f` at `x` (where its output is `y`), known to be
    /// symmetric and zero outside `pattern` (see
    /// [`Measurements::decode_symmetric`]): the calls are counted for the
    /// unknowns on and above the diagonal, `n` equations in them per
    /// call, which suffices for patterns with few positions per row but
    /// not for dense ones (give those a
    /// [`MeasurementCount::Fixed`] of `n`).
    ///
    /// # Panics
    /// When the pattern is not square with one row per output and one
    /// column per input, or as [`Measurements::take`] and the decoder.
    #[track_caller]
    pub fn symmetric_jacobian<A: Element>(
        &mut self,
        pattern: &SparsityPattern,
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
    ) -> SparseJacobian {
        let n = x.len();
        let diagonal_and_above = (0..pattern.cols())
            .map(|c| {
                (0..pattern.rows())
                    .filter(|&r| r <= c && (pattern.contains(r, c) || pattern.contains(c, r)))
                    .count()
            })
            .sum();
        let (measured, _) = self.whole(|s| s.measure(f, x, y, Some((diagonal_and_above, n)), true));
        measured.decode_symmetric(pattern, &self.decoder)
    }

    /// `measure` with the input taken whole, rows independent or not.
    fn whole<T>(&mut self, measure: impl FnOnce(&mut Self) -> T) -> T {
        let saved = std::mem::replace(&mut self.independent_rows, false);
        let result = measure(self);
        self.independent_rows = saved;
        result
    }
}

impl<A: Element, D: Decoder> JacobianEstimator<A> for RandomSensing<D> {
    fn vjp(
        &mut self,
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
        g: &ArrayD<A>,
    ) -> ArrayD<A> {
        let (measured, parts) = self.measure(f, x, y, None, false);
        let g: Array1<f64> = g.iter().map(|v| v.to_f64_lossless()).collect();
        let mut estimate = vec![A::zero(); x.len()];
        for_each_part(x.len(), y.len(), parts, |inputs, outputs| {
            let (directions, differences) = measured.block(inputs.clone(), outputs.clone());
            let along = differences.dot(&g.slice(s![outputs]));
            let z = self.decoder.decode(directions, along.view());
            for (e, z) in estimate[inputs].iter_mut().zip(z) {
                *e = A::from_f64_lossy(z);
            }
        });
        ArrayD::from_shape_vec(x.raw_dim(), estimate).expect("one estimate per input element")
    }
}

/// Calls `part(inputs, outputs)` with the flat index ranges of each of
/// `parts` equal parts of an input of `n` and an output of `p` elements.
fn for_each_part(
    n: usize,
    p: usize,
    parts: usize,
    mut part: impl FnMut(std::ops::Range<usize>, std::ops::Range<usize>),
) {
    if parts == 0 {
        return;
    }
    let (n_part, p_part) = (n / parts, p / parts);
    for b in 0..parts {
        part(b * n_part..(b + 1) * n_part, b * p_part..(b + 1) * p_part);
    }
}
