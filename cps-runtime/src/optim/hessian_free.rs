//! Hessian-free (truncated Newton) steps: the damped Newton system
//! `(H + λI)·Δ = −g` solved by conjugate gradients that see `H` only
//! through Hessian-vector products (Martens, "Deep learning via
//! Hessian-free optimization", ICML 2010).
//!
//! [`conjugate_gradient`] is the solver; it stops at an iteration cap, at
//! a small relative residual, or on a direction of non-positive curvature.
//! [`HessianFree`] wraps it into an optimizer's step: it keeps the damping
//! `λ`, proposes the step [`direction`](HessianFree::direction) from a
//! gradient and a product closure, and [`adapt`](HessianFree::adapt)s `λ`
//! by the Levenberg–Marquardt rule from how well the quadratic model
//! predicted the objective's change. The products come from
//! [`hvp`](crate::higher_order::hvp) (forward over reverse), which costs a
//! few gradients each.
//!
//! Vectors are flat [`Array1`]s: the caller lays its parameters out in
//! one vector (and back) in whatever order it likes.
//!
//! ```
//! use cps_runtime::optim::hessian_free::HessianFree;
//! use ndarray::{Array1, array};
//!
//! // f(x) = ½xᵀQx − cᵀx: the gradient is Qx − c and the Hessian Q.
//! let q = array![[4.0f64, 1.0], [1.0, 3.0]];
//! let c = array![1.0, 2.0];
//! let f = |x: &Array1<f64>| 0.5 * x.dot(&q.dot(x)) - c.dot(x);
//! let mut hf = HessianFree::new(1e-3);
//! let mut x = array![0.0, 0.0];
//! for _ in 0..5 {
//!     let gradient = q.dot(&x) - &c;
//!     let step = hf.direction(&gradient, |v: &Array1<f64>| q.dot(v));
//!     let next = &x + &step.delta;
//!     let rho = hf.adapt(&step, f(&next) - f(&x));
//!     if rho > 0.0 {
//!         x = next; // accept steps that lower the objective
//!     }
//! }
//! // The minimiser solves Qx = c: x = (1/11, 7/11).
//! assert!((x[0] - 1.0 / 11.0).abs() < 1e-9 && (x[1] - 7.0 / 11.0).abs() < 1e-9);
//! ```

use ndarray::Array1;

use crate::element::Element;

/// Why [`conjugate_gradient`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgStop {
    /// The residual fell to the tolerance times `‖b‖`.
    Converged,
    /// The iteration cap was reached first.
    MaxIterations,
    /// A search direction had non-positive curvature `pᵀ(H + λI)p ≤ 0`:
    /// the damped matrix is not positive definite, and the iterate so far
    /// is returned (Nocedal & Wright, Algorithm 7.1).
    NegativeCurvature,
}

/// The stopping rules of [`conjugate_gradient`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CgOptions<A> {
    /// The most iterations (one Hessian-vector product each).
    pub max_iterations: usize,
    /// Stop once `‖b − (H + λI)x‖ ≤ tolerance·‖b‖`.
    pub tolerance: A,
}

impl<A: Element> CgOptions<A> {
    /// At most `max_iterations` iterations, stopping at a relative
    /// residual of `tolerance`.
    ///
    /// # Panics
    /// When `tolerance` is negative or NaN.
    pub fn new(max_iterations: usize, tolerance: A) -> Self {
        assert!(
            tolerance >= A::zero(),
            "conjugate_gradient: the tolerance must be non-negative, got {tolerance}"
        );
        CgOptions {
            max_iterations,
            tolerance,
        }
    }
}

impl<A: Element> Default for CgOptions<A> {
    /// 250 iterations, relative residual `1e-6`.
    fn default() -> Self {
        CgOptions::new(250, A::from_f64_lossy(1e-6))
    }
}

/// What [`conjugate_gradient`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct CgSolution<A> {
    /// The approximate solution `x` of `(H + λI)x = b`.
    pub x: Array1<A>,
    /// The value of the damped quadratic `½xᵀ(H + λI)x − bᵀx` at `x`,
    /// which conjugate gradients minimises (zero at the start, `x = 0`).
    pub model: A,
    /// The relative residual `‖b − (H + λI)x‖ / ‖b‖`, as conjugate
    /// gradients' recurrence tracks it (zero when `b = 0`).
    pub residual: A,
    /// Iterations run.
    pub iterations: usize,
    /// Hessian-vector products made (one per iteration).
    pub products: usize,
    /// Why it stopped.
    pub stop: CgStop,
}

/// Solves `(H + damping·I)x = b` by conjugate gradients from `x = 0`,
/// given `hvp(v) = H·v`, under the stopping rules of `options`.
///
/// `H` must be symmetric. It stops when the residual falls to
/// `options.tolerance·‖b‖`, after `options.max_iterations` iterations, or
/// when a search direction `p` has `pᵀ(H + λI)p ≤ 0` (or NaN): the
/// iterate reached so far is then returned, or `b` itself when the very
/// first direction (`b`) already has non-positive curvature, as in
/// truncated Newton methods (a step along the negative gradient when `b`
/// is one). In exact arithmetic it solves an `n × n` positive definite
/// system in at most `n` iterations.
///
/// ```
/// use cps_runtime::optim::hessian_free::{conjugate_gradient, CgOptions, CgStop};
/// use ndarray::array;
///
/// let h = array![[2.0f64, 0.5], [0.5, 1.0]];
/// let b = array![1.0, -1.0];
/// let solution = conjugate_gradient(|v| h.dot(v), 0.0, &b, CgOptions::new(10, 1e-12));
/// assert_eq!(solution.stop, CgStop::Converged);
/// assert!(solution.iterations <= 2);
/// assert!((h.dot(&solution.x) - &b).iter().all(|r| r.abs() < 1e-12));
/// ```
///
/// # Panics
/// When `hvp` returns a vector of another length than its argument's.
pub fn conjugate_gradient<A: Element>(
    mut hvp: impl FnMut(&Array1<A>) -> Array1<A>,
    damping: A,
    b: &Array1<A>,
    options: CgOptions<A>,
) -> CgSolution<A> {
    let half = A::from_f64_lossy(0.5);
    let b_norm = b.dot(b).sqrt();
    let mut x = Array1::zeros(b.len());
    let mut r = b.clone();
    let mut p = b.clone();
    let mut rr = b_norm * b_norm;
    let mut model = A::zero();
    let mut iterations = 0;
    let relative = |rr: A| {
        if b_norm > A::zero() {
            rr.sqrt() / b_norm
        } else {
            A::zero()
        }
    };
    let finish = |x, model, rr, iterations, stop| CgSolution {
        x,
        model,
        residual: relative(rr),
        iterations,
        products: iterations,
        stop,
    };
    loop {
        if rr.sqrt() <= options.tolerance * b_norm {
            return finish(x, model, rr, iterations, CgStop::Converged);
        }
        if iterations == options.max_iterations {
            return finish(x, model, rr, iterations, CgStop::MaxIterations);
        }
        let hp = hvp(&p);
        assert_eq!(
            hp.len(),
            p.len(),
            "conjugate_gradient: the Hessian-vector product has length {}, its vector {}",
            hp.len(),
            p.len()
        );
        let ap = hp + &(&p * damping);
        let curvature = p.dot(&ap);
        iterations += 1;
        // A NaN curvature counts as non-positive.
        if curvature <= A::zero() || curvature.is_nan() {
            if iterations == 1 {
                // x = p = b: ½bᵀ(H + λI)b − bᵀb.
                let model = half * curvature - rr;
                return CgSolution {
                    x: b.clone(),
                    model,
                    residual: relative(rr),
                    iterations,
                    products: iterations,
                    stop: CgStop::NegativeCurvature,
                };
            }
            return finish(x, model, rr, iterations, CgStop::NegativeCurvature);
        }
        let alpha = rr / curvature;
        x.scaled_add(alpha, &p);
        r.scaled_add(-alpha, &ap);
        // Each step lowers the quadratic by ½α·rᵀr (its exact minimum
        // along p), so the model's value needs no extra product.
        model -= half * alpha * rr;
        let rr_next = r.dot(&r);
        let beta = rr_next / rr;
        rr = rr_next;
        p = &r + &(&p * beta);
    }
}

/// A proposed Hessian-free step, from [`HessianFree::direction`].
#[derive(Clone, Debug, PartialEq)]
pub struct Step<A> {
    /// The step `Δ` to add to the parameters.
    pub delta: Array1<A>,
    /// The change of the objective the undamped quadratic model predicts,
    /// `gᵀΔ + ½ΔᵀHΔ` (negative for a descent step).
    pub predicted_change: A,
    /// The damping `λ` the step was solved with.
    pub damping: A,
    /// Conjugate-gradient iterations run.
    pub iterations: usize,
    /// Hessian-vector products made.
    pub products: usize,
    /// Why conjugate gradients stopped.
    pub stop: CgStop,
}

/// Hessian-free optimization's step and its Levenberg–Marquardt damping.
///
/// Each step solves `(H + λI)Δ = −g` by truncated [`conjugate_gradient`]
/// for the objective's gradient `g` and Hessian `H` at the current point
/// (of an objective to *minimise*). After trying the step, the caller
/// reports the objective's actual change to [`adapt`](Self::adapt), which
/// compares it with the model's prediction, `ρ = actual / predicted`: a
/// good prediction (`ρ > ¾`) lowers `λ` by the factor ⅔, towards Newton's
/// step; a poor one (`ρ < ¼`) raises it by 3/2, towards a short gradient
/// step (Martens 2010). See the [module](self) for an example.
#[derive(Clone, Debug, PartialEq)]
pub struct HessianFree<A> {
    damping: A,
    options: CgOptions<A>,
}

impl<A: Element> HessianFree<A> {
    /// Starting with damping `λ = damping`, and conjugate gradients'
    /// default stopping rules ([`CgOptions::default`]).
    ///
    /// # Panics
    /// When `damping` is negative or NaN.
    pub fn new(damping: A) -> Self {
        Self::check_damping(damping);
        HessianFree {
            damping,
            options: CgOptions::default(),
        }
    }

    /// The most conjugate-gradient iterations per step.
    pub fn max_cg_iterations(mut self, max_iterations: usize) -> Self {
        self.options.max_iterations = max_iterations;
        self
    }

    /// Conjugate gradients' relative residual tolerance.
    ///
    /// # Panics
    /// When `tolerance` is negative or NaN.
    pub fn cg_tolerance(mut self, tolerance: A) -> Self {
        self.options = CgOptions::new(self.options.max_iterations, tolerance);
        self
    }

    /// The current damping `λ`.
    pub fn damping(&self) -> A {
        self.damping
    }

    /// Sets the damping `λ` for the following steps.
    ///
    /// # Panics
    /// When `damping` is negative or NaN.
    pub fn set_damping(&mut self, damping: A) {
        Self::check_damping(damping);
        self.damping = damping;
    }

    /// The step for `gradient`, with `hvp(v) = H·v` at the same point:
    /// truncated conjugate gradients on `(H + λI)Δ = −gradient`.
    ///
    /// # Panics
    /// When `hvp` returns a vector of another length than its argument's.
    pub fn direction(
        &self,
        gradient: &Array1<A>,
        hvp: impl FnMut(&Array1<A>) -> Array1<A>,
    ) -> Step<A> {
        let b = gradient.mapv(|g| -g);
        let solution = conjugate_gradient(hvp, self.damping, &b, self.options);
        // The damped model ½Δᵀ(H + λI)Δ + gᵀΔ less its damping term.
        let half = A::from_f64_lossy(0.5);
        let damping_term = half * self.damping * solution.x.dot(&solution.x);
        Step {
            predicted_change: solution.model - damping_term,
            delta: solution.x,
            damping: self.damping,
            iterations: solution.iterations,
            products: solution.products,
            stop: solution.stop,
        }
    }

    /// Adapts `λ` to how well `step` predicted the objective's change:
    /// `actual_change` is `f(x + Δ) − f(x)`, measured the way the gradient
    /// and products were (for a stochastic objective, on the same
    /// samples). Returns `ρ = actual / predicted`; a step with `ρ ≤ 0` did
    /// not lower the objective, and a caller usually rejects it. A
    /// prediction that is not a decrease counts as `ρ = −∞`.
    pub fn adapt(&mut self, step: &Step<A>, actual_change: A) -> A {
        let rho = if step.predicted_change < A::zero() {
            actual_change / step.predicted_change
        } else {
            A::neg_infinity()
        };
        // NaN (a non-finite objective) counts as a poor prediction.
        if rho < A::from_f64_lossy(0.25) || rho.is_nan() {
            self.damping *= A::from_f64_lossy(1.5);
        } else if rho > A::from_f64_lossy(0.75) {
            self.damping *= A::from_f64_lossy(2.0 / 3.0);
        }
        rho
    }

    #[track_caller]
    fn check_damping(damping: A) {
        assert!(
            damping >= A::zero(),
            "HessianFree: the damping must be non-negative, got {damping}"
        );
    }
}
