//! Random tensors, drawn from a generator the caller owns (any
//! [`rand::Rng`]; a seeded one such as `StdRng::seed_from_u64` makes them
//! reproducible), and categorical sampling with a differentiable
//! log-probability of what was sampled.
//!
//! The tensors are constants: no gradient flows into a sample. Sampling
//! that should be differentiable is written with the reparameterisation
//! `mu + sigma * eps`, from a standard normal `eps` and the ordinary
//! operations, so that the gradient reaches `mu` and `sigma`:
//!
//! ```
//! use cps_runtime::*;
//! use ndarray::array;
//! use rand::SeedableRng;
//!
//! let mu = Param::new(array![0.5f64, -1.0]);
//! let sigma = Param::new(array![2.0f64, 0.1]);
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! let eps = mu.randn_like(&mut rng);
//! // loss = sum(z^2), z = mu + sigma * eps
//! let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
//!     (&sigma * &eps).bind(|s| (&mu + &s).bind(|z| z.square().bind(|q| q.sum().bind(|l| k(l)))))
//! });
//! loss.backward();
//! for i in 0..2 {
//!     let z = mu.array()[i] + sigma.array()[i] * eps.array()[i];
//!     assert!((mu.grad()[i] - 2.0 * z).abs() < 1e-12);
//!     assert!((sigma.grad()[i] - 2.0 * z * eps.array()[i]).abs() < 1e-12);
//! }
//! ```
//!
//! Elements are drawn in row-major order, one sample per element (the
//! uniform draws again in the rare case that rounding reaches its excluded
//! upper bound), in `f64` and then rounded to the element type: the same
//! seed gives the same tensor in `f32` as in `f64`, up to that rounding.

use ndarray::{ArrayD, Axis, Dimension, IxDyn};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::memory;
use crate::ops::shape_mismatch;
use crate::var::Var;

/// A constant tensor of `shape` whose elements `draw` makes in row-major
/// order.
fn drawn<A: Element>(shape: &[usize], mut draw: impl FnMut() -> A) -> Var<A> {
    let len = shape.iter().product();
    let mut data = memory::take(len);
    data.extend((0..len).map(|_| draw()));
    let value = ArrayD::from_shape_vec(IxDyn(shape), data).expect("as many elements as the shape");
    Var::constant(value)
}

/// How far from 1 a row of probabilities may sum before
/// [`Var::categorical`] takes it for a mistake (logits, say) rather than
/// rounding.
const SUM_TOLERANCE: f64 = 1e-3;

/// The probabilities seen as rows (a vector is one row).
#[track_caller]
fn probability_rows<'a, A: Element>(
    op: &str,
    probabilities: &'a ArrayD<A>,
) -> ndarray::ArrayView2<'a, A> {
    let view = match probabilities.ndim() {
        1 => probabilities.view().insert_axis(Axis(0)),
        2 => probabilities.view(),
        _ => panic!(
            "{op}: the probabilities must be a vector (one distribution) or a matrix (one \
             distribution per row), got shape {:?}",
            probabilities.shape()
        ),
    };
    view.into_dimensionality().expect("rank checked above")
}

impl<A: Element> Var<A> {
    /// A constant tensor of `shape` drawn from the normal distribution of
    /// mean `mean` and standard deviation `std`.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let x = Var::<f64>::normal(&[1000], 3.0, 0.5, &mut rng);
    /// assert_eq!(x.shape(), &[1000]);
    /// assert!((x.array().mean().unwrap() - 3.0).abs() < 0.1);
    /// assert!(!x.requires_grad());
    /// ```
    ///
    /// # Panics
    /// When `std` is negative or not finite, or `mean` is not finite.
    #[track_caller]
    pub fn normal<R: Rng + ?Sized>(shape: &[usize], mean: A, std: A, rng: &mut R) -> Var<A> {
        if !(std >= A::zero() && std.is_finite() && mean.is_finite()) {
            panic!(
                "normal: expected a finite mean and a finite, non-negative standard deviation, \
                 got mean {mean} and std {std} (shape {shape:?})"
            );
        }
        drawn(shape, || {
            let z: f64 = rng.sample(StandardNormal);
            mean + std * A::from_f64_lossy(z)
        })
    }

    /// A constant tensor of this one's shape drawn from the standard
    /// normal distribution (mean 0, standard deviation 1): the `eps` of a
    /// reparameterised sample `mu + sigma * eps` (see the [module
    /// documentation](crate::ops::random)).
    pub fn randn_like<R: Rng + ?Sized>(&self, rng: &mut R) -> Var<A> {
        Var::normal(self.shape(), A::zero(), A::one(), rng)
    }

    /// A constant tensor of `shape` drawn uniformly from `[low, high)`.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let x = Var::<f32>::uniform(&[2, 50], -1.0, 1.0, &mut rng);
    /// assert!(x.array().iter().all(|&v| (-1.0..1.0).contains(&v)));
    /// ```
    ///
    /// # Panics
    /// When `low < high` does not hold or either is not finite.
    #[track_caller]
    pub fn uniform<R: Rng + ?Sized>(shape: &[usize], low: A, high: A, rng: &mut R) -> Var<A> {
        if !(low < high && low.is_finite() && high.is_finite()) {
            panic!(
                "uniform: expected finite bounds with low < high, got low {low} and high {high} \
                 (shape {shape:?})"
            );
        }
        let width = high - low;
        drawn(shape, || {
            loop {
                let u = A::from_f64_lossy(rng.random::<f64>());
                let v = low + width * u;
                // Rounding (of u to f32, or of the sum) can reach `high`, which
                // the interval leaves out: such a draw is drawn again.
                if v < high {
                    break v;
                }
            }
        })
    }

    /// A constant tensor of zeros and ones of this one's shape, each
    /// element 1 with the probability this one holds at its position.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let p = Var::constant(array![0.0f64, 1.0, 0.5]);
    /// let b = p.bernoulli(&mut rng);
    /// assert_eq!(b.array()[0], 0.0);
    /// assert_eq!(b.array()[1], 1.0);
    /// assert!(b.array()[2] == 0.0 || b.array()[2] == 1.0);
    /// ```
    ///
    /// # Panics
    /// When an element is not a probability (in `[0, 1]`).
    #[track_caller]
    pub fn bernoulli<R: Rng + ?Sized>(&self, rng: &mut R) -> Var<A> {
        let probabilities = self.array();
        if let Some((index, p)) = probabilities
            .indexed_iter()
            .find(|&(_, &p)| !(A::zero() <= p && p <= A::one()))
        {
            panic!(
                "bernoulli: expected probabilities in [0, 1], got {p} at {:?} (shape {:?})",
                index.slice(),
                self.shape()
            );
        }
        let mut elements = probabilities.iter();
        drawn(self.shape(), || {
            let p = elements.next().expect("one probability per element");
            // A draw in [0, 1) is below p = 1 always and below p = 0 never.
            if rng.random::<f64>() < p.to_f64_lossless() {
                A::one()
            } else {
                A::zero()
            }
        })
    }

    /// Draws one class index from each row of a matrix of probabilities
    /// (rows × classes), or one from a vector: index `i` of a row with
    /// probability `p[i]`. A class of probability 0 is never drawn.
    ///
    /// Each row is sampled in proportion to its values, so the rounding in
    /// a softmax's output does not matter; but a row whose sum is not 1
    /// within 1e-3 is taken for a mistake (logits passed instead of
    /// probabilities, say). Use [`categorical_log_prob`](Var::categorical_log_prob)
    /// for the differentiable log-probability of what was drawn.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    /// use rand::SeedableRng;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let p = Var::constant(array![[0.0f64, 1.0, 0.0], [0.5, 0.0, 0.5]]);
    /// let drawn = p.categorical(&mut rng);
    /// assert_eq!(drawn.len(), 2);
    /// assert_eq!(drawn[0], 1);
    /// assert!(drawn[1] == 0 || drawn[1] == 2);
    /// ```
    ///
    /// # Panics
    /// When the tensor is neither a vector nor a matrix, has no classes,
    /// holds a negative or non-finite value, or has a row whose sum is not 1.
    #[track_caller]
    pub fn categorical<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<usize> {
        let rows = probability_rows("categorical", self.array());
        if rows.ncols() == 0 {
            panic!(
                "categorical: expected at least one class, got shape {:?}",
                self.shape()
            );
        }
        let mut indices = Vec::with_capacity(rows.nrows());
        for (r, row) in rows.rows().into_iter().enumerate() {
            if let Some((i, p)) = row
                .iter()
                .enumerate()
                .find(|&(_, &p)| !(p >= A::zero() && p.is_finite()))
            {
                panic!(
                    "categorical: expected non-negative finite probabilities, got {p} at row {r}, \
                     class {i} (shape {:?})",
                    self.shape()
                );
            }
            let total: f64 = row.iter().map(|p| p.to_f64_lossless()).sum();
            if (total - 1.0).abs() > SUM_TOLERANCE {
                panic!(
                    "categorical: expected each row of probabilities to sum to 1, row {r} sums to \
                     {total} (shape {:?}; pass probabilities, e.g. a softmax, not logits)",
                    self.shape()
                );
            }
            let target = rng.random::<f64>() * total;
            let mut cumulative = 0.0;
            let mut last_possible = 0;
            let mut choice = None;
            for (i, p) in row.iter().enumerate() {
                let p = p.to_f64_lossless();
                if p > 0.0 {
                    last_possible = i;
                }
                cumulative += p;
                if target < cumulative {
                    choice = Some(i);
                    break;
                }
            }
            // `target` can round up to the total itself: the last class
            // that can be drawn takes it.
            indices.push(choice.unwrap_or(last_possible));
        }
        indices
    }

    /// The log-probability `ln p[r, indices[r]]` of one class per row of a
    /// matrix of probabilities (a vector of them, one per row), or of one
    /// class of a vector (a zero-dimensional result); the gradient flows
    /// into the probabilities, `g / p` at each chosen element.
    ///
    /// With [`categorical`](Var::categorical), this is the score-function
    /// (REINFORCE) estimator: the gradient of `sum(reward * log p)` over
    /// drawn classes estimates that of the expected reward. The
    /// probabilities are not checked to sum to 1. When they come from a
    /// softmax of logits, `-logits.cross_entropy(..)` is the same sum of
    /// log-probabilities computed more stably.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    /// use rand::SeedableRng;
    ///
    /// // REINFORCE: raise the probability of the classes that were rewarded.
    /// let logits = Param::new(array![[0.0f64, 0.0, 0.0], [1.0, 0.0, -1.0]]);
    /// let reward = Var::constant(array![1.0f64, -1.0]);
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
    ///     logits.softmax().bind(|p| {
    ///         let drawn = p.categorical(&mut rng);
    ///         p.categorical_log_prob(&drawn).bind(|log_p| {
    ///             (&log_p * &reward).bind(|s| s.sum().bind(|s| (-s).bind(|l| k(l))))
    ///         })
    ///     })
    /// });
    /// loss.backward();
    /// assert_eq!(logits.grad().shape(), &[2, 3]);
    /// // Each row's logits gradient sums to 0 (softmax is shift-invariant).
    /// assert!(logits.grad().sum_axis(ndarray::Axis(1)).iter().all(|s| s.abs() < 1e-12));
    /// ```
    ///
    /// # Panics
    /// When the tensor is neither a vector nor a matrix, when there is not
    /// one index per row (exactly one for a vector), or when an index is
    /// not below the number of classes.
    #[track_caller]
    pub fn categorical_log_prob(
        &self,
        indices: &[usize],
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let rows = probability_rows("categorical_log_prob", self.array());
        if indices.len() != rows.nrows() {
            shape_mismatch(
                "categorical_log_prob",
                self.shape(),
                &[indices.len()],
                "expected one index per row of probabilities (one for a vector)",
            );
        }
        if let Some((r, &i)) = indices
            .iter()
            .enumerate()
            .find(|&(_, &i)| i >= rows.ncols())
        {
            panic!(
                "categorical_log_prob: index {i} (row {r}) is out of range for {} classes \
                 (shape {:?})",
                rows.ncols(),
                self.shape()
            );
        }
        let chosen: Vec<A> = indices
            .iter()
            .enumerate()
            .map(|(r, &i)| rows[[r, i]])
            .collect();
        let logs = chosen.iter().map(|p| p.ln()).collect();
        // A vector's one log-probability is zero-dimensional.
        let shape: &[usize] = if self.shape().len() == 1 {
            &[]
        } else {
            &[indices.len()]
        };
        let value =
            ArrayD::from_shape_vec(IxDyn(shape), logs).expect("one log-probability per index");
        let probabilities = self.clone();
        let indices = indices.to_vec();
        Pending::new(
            "categorical_log_prob",
            value,
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                // d ln p = 1 / p, at the chosen elements only.
                probabilities.accumulate_with(|mut buffer| {
                    for ((r, &i), (&g, &p)) in
                        indices.iter().enumerate().zip(grad.iter().zip(&chosen))
                    {
                        if buffer.ndim() == 1 {
                            buffer[i] += g / p;
                        } else {
                            buffer[[r, i]] += g / p;
                        }
                    }
                });
                memory::recycle(grad);
            },
        )
    }
}
