//! Corrupted calls, for measuring how a strategy copes with a black box
//! that sometimes returns garbage (a flaky simulator, a failed remote
//! call, a sensor glitch).

use std::cell::{Cell, RefCell};

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::JacobianEstimator;
use crate::element::Element;

/// A [`JacobianEstimator`] that hands the estimator it wraps a function
/// whose calls return garbage with probability `fraction`, each
/// independently: every output element replaced by a value drawn
/// uniformly from `[-magnitude, magnitude]` (`1e3` unless set). The
/// forward pass's call, and so its output `f(x)`, is not corrupted.
///
/// ```
/// use cps_runtime::ops::blackbox::{CorruptedCalls, ForwardDifferences, JacobianEstimator};
/// use ndarray::{array, ArrayD};
///
/// let f = |x: &ArrayD<f64>| x.mapv(|v| v * v);
/// let x = array![1.0, 2.0, 3.0].into_dyn();
/// let mut faulty = CorruptedCalls::new(ForwardDifferences::default(), 1.0, 0);
/// let estimate = faulty.vjp(&f, &x, &f(&x), &array![1.0, 1.0, 1.0].into_dyn());
/// assert_eq!((faulty.calls(), faulty.corrupted()), (3, 3));
/// assert!((estimate[0] - 2.0).abs() > 1.0); // garbage in, garbage out
/// ```
#[derive(Clone, Debug)]
pub struct CorruptedCalls<E> {
    inner: E,
    faults: Faults,
}

/// The fault model and its record, apart from the estimator, so that a
/// function can be corrupted while the estimator is borrowed mutably.
#[derive(Clone, Debug)]
struct Faults {
    fraction: f64,
    magnitude: f64,
    rng: RefCell<StdRng>,
    calls: Cell<usize>,
    corrupted: Cell<usize>,
}

impl Faults {
    fn corrupt<'a, A: Element>(
        &'a self,
        f: &'a dyn Fn(&ArrayD<A>) -> ArrayD<A>,
    ) -> impl Fn(&ArrayD<A>) -> ArrayD<A> + 'a {
        move |x| {
            let out = f(x);
            self.calls.set(self.calls.get() + 1);
            let mut rng = self.rng.borrow_mut();
            if rng.random::<f64>() < self.fraction {
                self.corrupted.set(self.corrupted.get() + 1);
                let magnitude = self.magnitude;
                out.mapv(|_| A::from_f64_lossy(rng.random_range(-magnitude..=magnitude)))
            } else {
                out
            }
        }
    }
}

impl<E> CorruptedCalls<E> {
    /// `inner`, with each of its calls corrupted with probability
    /// `fraction`, the draws made by a generator seeded with `seed`.
    ///
    /// # Panics
    /// When `fraction` is not in `[0, 1]`.
    #[track_caller]
    pub fn new(inner: E, fraction: f64, seed: u64) -> Self {
        assert!(
            (0.0..=1.0).contains(&fraction),
            "CorruptedCalls: the fraction of corrupted calls must be in [0, 1], got {fraction}"
        );
        CorruptedCalls {
            inner,
            faults: Faults {
                fraction,
                magnitude: 1e3,
                rng: RefCell::new(StdRng::seed_from_u64(seed)),
                calls: Cell::new(0),
                corrupted: Cell::new(0),
            },
        }
    }

    /// The same, with garbage of magnitude up to `magnitude`.
    pub fn with_magnitude(mut self, magnitude: f64) -> Self {
        self.faults.magnitude = magnitude;
        self
    }

    /// `f` with this fault model, counted here: for calling the wrapped
    /// estimator's own methods (a whole Jacobian, say) on a faulty
    /// function.
    pub fn corrupt<'a, A: Element>(
        &'a self,
        f: &'a dyn Fn(&ArrayD<A>) -> ArrayD<A>,
    ) -> impl Fn(&ArrayD<A>) -> ArrayD<A> + 'a {
        self.faults.corrupt(f)
    }

    /// The calls made through this fault model.
    pub fn calls(&self) -> usize {
        self.faults.calls.get()
    }

    /// How many of them returned garbage.
    pub fn corrupted(&self) -> usize {
        self.faults.corrupted.get()
    }

    /// The wrapped estimator.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// The wrapped estimator, mutably.
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }
}

impl<A: Element, E: JacobianEstimator<A>> JacobianEstimator<A> for CorruptedCalls<E> {
    fn vjp(
        &mut self,
        f: &dyn Fn(&ArrayD<A>) -> ArrayD<A>,
        x: &ArrayD<A>,
        y: &ArrayD<A>,
        g: &ArrayD<A>,
    ) -> ArrayD<A> {
        let faulty = self.faults.corrupt(f);
        self.inner.vjp(&faulty, x, y, g)
    }
}
