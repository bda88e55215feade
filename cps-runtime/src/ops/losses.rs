//! Loss functions: each one fused into a single operation, so that its
//! forward pass is numerically stable and its backward step is one pass
//! over the input with no intermediate tensors.

use ndarray::{ArrayD, ArrayView2, Axis, Ix2, Zip};

use crate::memory;
use smallvec::SmallVec;

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::ops::shape_mismatch;
use crate::var::Var;

/// The logits seen as a matrix (a vector is one row), after checking the
/// rank, the number of targets and each target's range.
#[track_caller]
fn logit_rows<'a, A: Element>(
    op: &str,
    logits: &'a ArrayD<A>,
    targets: &[usize],
) -> ArrayView2<'a, A> {
    scores_rows(op, "logits", logits, targets)
}

/// [`logit_rows`] for scores named `what` in the messages (logits,
/// log-probabilities).
#[track_caller]
fn scores_rows<'a, A: Element>(
    op: &str,
    what: &str,
    logits: &'a ArrayD<A>,
    targets: &[usize],
) -> ArrayView2<'a, A> {
    let shape = logits.shape();
    let rows = match shape.len() {
        1 => logits.view().insert_axis(Axis(0)),
        2 => logits.view(),
        _ => panic!(
            "{op}: the {what} must be a vector (one example) or a matrix (one example per row), \
             got shape {shape:?} with {} targets",
            targets.len()
        ),
    }
    .into_dimensionality::<Ix2>()
    .expect("rank checked above");
    let (examples, classes) = rows.dim();
    if targets.len() != examples {
        let detail = if shape.len() == 1 {
            format!(
                "a vector of {what} takes exactly one target, got {}",
                targets.len()
            )
        } else {
            format!(
                "one target per row: {examples} rows but {} targets",
                targets.len()
            )
        };
        shape_mismatch(op, shape, &[targets.len()], &detail);
    }
    if let Some((row, &target)) = targets.iter().enumerate().find(|&(_, &t)| t >= classes) {
        panic!(
            "{op}: target {target} (example {row}) is out of range for {classes} classes \
             ({what} shape {shape:?})"
        );
    }
    rows
}

impl<A: Element> Var<A> {
    /// Cross-entropy of the logits `self` against class indices, summed
    /// over the examples: `sum_i -log_softmax(logits)[i, targets[i]]`, as a
    /// zero-dimensional tensor.
    ///
    /// The logits are a vector (one example, exactly one target) or a
    /// matrix with one example per row (one target per row). The forward
    /// pass uses a max-shifted log-sum-exp, so large logits do not
    /// overflow; the gradient is `softmax(logits) - onehot(targets)`,
    /// times the incoming gradient. For the mean over the examples, use
    /// [`cross_entropy_mean`](Var::cross_entropy_mean).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let logits = Param::new(array![[0.0f64, 0.0], [2.0f64.ln(), 0.0]]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| logits.cross_entropy(&[1, 0]).bind(|l| k(l)));
    /// // -ln(1/2) - ln(2/3)
    /// assert!((loss.backward() - (2.0f64.ln() + 1.5f64.ln())).abs() < 1e-15);
    /// // softmax - onehot, row by row.
    /// assert!((logits.grad()[[0, 1]] - (0.5 - 1.0)).abs() < 1e-15);
    /// assert!((logits.grad()[[1, 1]] - 1.0 / 3.0).abs() < 1e-15);
    /// ```
    ///
    /// # Panics
    /// When the logits are neither a vector nor a matrix, when the number
    /// of targets is not the number of examples, or when a target is not
    /// below the number of classes.
    #[track_caller]
    pub fn cross_entropy(&self, targets: &[usize]) -> Pending<A, impl BackwardStep<A> + use<A>> {
        self.fused_cross_entropy("cross_entropy", targets, false)
    }

    /// Cross-entropy averaged over the examples: [`cross_entropy`](Var::cross_entropy)
    /// divided by the number of rows (1 for a vector of logits). The mean
    /// over zero examples is NaN.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let logits = Var::constant(array![[0.0f64, 0.0], [0.0, 0.0]]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| logits.cross_entropy_mean(&[0, 1]).bind(|l| k(l)));
    /// assert!((loss.eval().item() - 2.0f64.ln()).abs() < 1e-15);
    /// ```
    ///
    /// # Panics
    /// As [`cross_entropy`](Var::cross_entropy).
    #[track_caller]
    pub fn cross_entropy_mean(
        &self,
        targets: &[usize],
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        self.fused_cross_entropy("cross_entropy_mean", targets, true)
    }

    #[track_caller]
    fn fused_cross_entropy(
        &self,
        op: &'static str,
        targets: &[usize],
        mean: bool,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let rows = logit_rows(op, self.array(), targets);
        let scale = if mean {
            A::from_usize(targets.len())
                .expect("a count fits a float")
                .recip()
        } else {
            A::one()
        };
        // Each row's log-sum-exp is kept: the backward step needs
        // softmax = exp(x - lse) and this saves recomputing max and sum.
        let mut log_sum_exps = SmallVec::<[A; 1]>::with_capacity(targets.len());
        let mut total = A::zero();
        for (row, &target) in rows.outer_iter().zip(targets) {
            let max = row.fold(A::neg_infinity(), |m, &v| m.max(v));
            let lse = max + row.fold(A::zero(), |acc, &v| acc + (v - max).exp()).ln();
            log_sum_exps.push(lse);
            total += lse - row[target];
        }
        let requires_grad = self.requires_grad();
        let targets = if requires_grad {
            SmallVec::<[usize; 1]>::from_slice(targets)
        } else {
            SmallVec::new()
        };
        let logits = self.clone();
        let loss = total * scale;
        // SAFETY: a zero-dimensional result has one element, written here.
        let out = unsafe {
            Var::computed_shaped(op, requires_grad, &[], |out| {
                out[0].write(loss);
            })
        };
        Pending::from_var(out, move |_: &ArrayD<A>, grad: ArrayD<A>| {
            let g = grad.first().copied().unwrap_or_else(A::zero) * scale;
            crate::memory::recycle(grad);
            let rank = logits.shape().len();
            logits.accumulate_with(|buffer| {
                let buffer = if rank == 1 {
                    buffer.insert_axis(Axis(0))
                } else {
                    buffer
                };
                let mut buffer = buffer
                    .into_dimensionality::<Ix2>()
                    .expect("rank checked in forward");
                let rows = logits.array().view();
                let rows = if rank == 1 {
                    rows.insert_axis(Axis(0))
                } else {
                    rows
                };
                let rows = rows
                    .into_dimensionality::<Ix2>()
                    .expect("rank checked in forward");
                for (((mut gr, xr), &target), &lse) in buffer
                    .outer_iter_mut()
                    .zip(rows.outer_iter())
                    .zip(&targets)
                    .zip(&log_sum_exps)
                {
                    Zip::from(&mut gr)
                        .and(&xr)
                        .for_each(|gi, &xi| *gi += g * (xi - lse).exp());
                    gr[target] -= g;
                }
            });
        })
    }

    /// Mean squared error between `self` (the prediction) and `target`:
    /// `mean((self - target)^2)` as a zero-dimensional tensor. The gradient
    /// reaches both sides, whichever require it. The mean over an empty
    /// tensor is NaN.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let prediction = Param::new(array![1.0f64, 2.0]);
    /// let target = Var::constant(array![0.0f64, 4.0]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| prediction.mse(&target).bind(|l| k(l)));
    /// assert_eq!(loss.backward(), (1.0 + 4.0) / 2.0);
    /// // 2 (prediction - target) / n
    /// assert_eq!(prediction.grad(), array![1.0, -2.0].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When the shapes differ.
    #[track_caller]
    pub fn mse(&self, target: &Var<A>) -> Pending<A, impl BackwardStep<A> + use<A>> {
        if self.shape() != target.shape() {
            shape_mismatch(
                "mse",
                self.shape(),
                target.shape(),
                "the prediction and the target must have the same shape",
            );
        }
        let count = A::from_usize(self.len()).expect("a count fits a float");
        let squares = Zip::from(self.array())
            .and(target.array())
            .fold(A::zero(), |acc, &a, &b| acc + (a - b) * (a - b));
        let x = self.clone();
        let t = target.clone();
        Pending::new(
            "mse",
            ndarray::arr0(squares / count).into_dyn(),
            self.requires_grad() || target.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                let g = grad.first().copied().unwrap_or_else(A::zero);
                let c = (g + g) / count;
                let mut dx = Zip::from(x.array())
                    .and(t.array())
                    .map_collect(|&a, &b| c * (a - b));
                // The buffer goes by value to the last side that needs it.
                if t.requires_grad() {
                    if x.requires_grad() {
                        t.accumulate_with(|mut gt| gt -= &dx);
                    } else {
                        dx.mapv_inplace(|d| -d);
                        t.accumulate(dx);
                        return;
                    }
                }
                x.accumulate(dx);
            },
        )
    }

    /// Negative log-likelihood of log-probabilities `self` (typically a
    /// [`log_softmax`](Var::log_softmax)) against class indices, averaged
    /// over the examples: `mean_i -self[i, targets[i]]`, as a
    /// zero-dimensional tensor. The log-probabilities are a vector (one
    /// example, one target) or a matrix with one example per row. Its
    /// gradient is `-1 / examples` at each target and 0 elsewhere, times
    /// the incoming gradient; the mean over zero examples is NaN.
    /// `log_softmax` then `nll_loss` is
    /// [`cross_entropy_mean`](Var::cross_entropy_mean), which fuses them.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let log_p = Param::new(array![[-0.5f64, -1.0], [-2.0, -0.25]]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| log_p.nll_loss(&[1, 0]).bind(|l| k(l)));
    /// assert_eq!(loss.backward(), (1.0 + 2.0) / 2.0);
    /// assert_eq!(log_p.grad(), array![[0.0, -0.5], [-0.5, 0.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When the input is neither a vector nor a matrix, when the number of
    /// targets is not the number of examples, or when a target is not
    /// below the number of classes.
    #[track_caller]
    pub fn nll_loss(&self, targets: &[usize]) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let rows = scores_rows("nll_loss", "log-probabilities", self.array(), targets);
        let scale = A::from_usize(targets.len())
            .expect("a count fits a float")
            .recip();
        let total = rows
            .outer_iter()
            .zip(targets)
            .fold(A::zero(), |acc, (row, &t)| acc + row[t]);
        let targets = targets.to_vec();
        let x = self.clone();
        Pending::new(
            "nll_loss",
            ndarray::arr0(-total * scale).into_dyn(),
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                let g = grad.first().copied().unwrap_or_else(A::zero) * scale;
                memory::recycle(grad);
                let vector = x.shape().len() == 1;
                x.accumulate_with(|mut gx| {
                    for (row, &t) in targets.iter().enumerate() {
                        if vector {
                            gx[[t].as_slice()] -= g;
                        } else {
                            gx[[row, t].as_slice()] -= g;
                        }
                    }
                });
            },
        )
    }

    /// Binary cross-entropy of probabilities `self` against targets in
    /// `[0, 1]` of the same shape, averaged over the elements:
    /// `mean(-(t·log p + (1 - t)·log(1 - p)))`, as a zero-dimensional
    /// tensor. As in PyTorch, each logarithm is clamped at -100, so a
    /// probability of exactly 0 or 1 gives a finite loss, and the
    /// gradient's denominator `p·(1 - p)` is at least 1e-12. The gradient
    /// reaches the targets too (`log(1 - p) - log p`, per element), when
    /// they require it. For probabilities that come out of a sigmoid,
    /// [`binary_cross_entropy_with_logits`](Var::binary_cross_entropy_with_logits)
    /// is stabler.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let p = Param::new(array![0.5f64, 0.8]);
    /// let t = Var::constant(array![1.0f64, 0.0]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| p.binary_cross_entropy(&t).bind(|l| k(l)));
    /// assert!((loss.backward() - (2.0f64.ln() + 5.0f64.ln()) / 2.0).abs() < 1e-15);
    /// // (p - t) / (p (1 - p)) / n
    /// assert!((p.grad()[1] - 0.8 / (0.8 * 0.2) / 2.0).abs() < 1e-12);
    /// ```
    ///
    /// # Panics
    /// When the shapes differ, or when a prediction is not in `[0, 1]`.
    #[track_caller]
    pub fn binary_cross_entropy(
        &self,
        target: &Var<A>,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let op = "binary_cross_entropy";
        if let Some(p) = self
            .array()
            .iter()
            .find(|p| !(A::zero()..=A::one()).contains(*p))
        {
            panic!(
                "{op}: the predictions must be probabilities in [0, 1], got {p} (shape {:?})",
                self.shape()
            );
        }
        self.mean_pointwise(op, target, A::zero(), |p, t, _| {
            let floor = A::from_f64_lossy(-100.0);
            let (log_p, log_q) = (p.ln().max(floor), (A::one() - p).ln().max(floor));
            let denominator = (p * (A::one() - p)).max(A::from_f64_lossy(1e-12));
            (
                -(t * log_p + (A::one() - t) * log_q),
                (p - t) / denominator,
                log_q - log_p,
            )
        })
    }

    /// Binary cross-entropy of logits `self` (the sigmoid is applied
    /// inside) against targets in `[0, 1]` of the same shape, averaged
    /// over the elements: `mean(max(x, 0) - x·t + log(1 + exp(-|x|)))`,
    /// which is `-(t·log σ(x) + (1 - t)·log(1 - σ(x)))` without ever
    /// taking the logarithm of an underflowed probability. The gradient is
    /// `σ(x) - t` for the logits and `-x` for the targets, over the number
    /// of elements.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![0.0f64, 1000.0]);
    /// let t = Var::constant(array![1.0f64, 0.0]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| x.binary_cross_entropy_with_logits(&t).bind(|l| k(l)));
    /// // ln 2 for the first; the second is 1000 (not infinite), halved by the mean.
    /// assert!((loss.backward() - (2.0f64.ln() + 1000.0) / 2.0).abs() < 1e-12);
    /// assert_eq!(x.grad(), array![-0.25, 0.5].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When the shapes differ.
    #[track_caller]
    pub fn binary_cross_entropy_with_logits(
        &self,
        target: &Var<A>,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        self.mean_pointwise(
            "binary_cross_entropy_with_logits",
            target,
            A::zero(),
            |x, t, _| {
                let e = (-x.abs()).exp();
                // σ(x) from exp(-|x|), which never overflows.
                let sigmoid = if x >= A::zero() {
                    (A::one() + e).recip()
                } else {
                    e / (A::one() + e)
                };
                (x.max(A::zero()) - x * t + e.ln_1p(), sigmoid - t, -x)
            },
        )
    }

    /// The Huber loss between `self` (the prediction) and `target`,
    /// averaged over the elements: with `d = self - target`, `d²/2` where
    /// `|d| <= delta` and `delta·(|d| - delta/2)` beyond, so quadratic near
    /// zero and linear (with slope `delta`) for outliers. The gradient
    /// reaches both sides, whichever require it.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![0.5f64, 3.0]);
    /// let t = Var::constant(array![0.0f64, 0.0]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| x.huber(&t, 1.0).bind(|l| k(l)));
    /// assert_eq!(loss.backward(), (0.125 + 2.5) / 2.0);
    /// assert_eq!(x.grad(), array![0.25, 0.5].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When the shapes differ, or when `delta` is not positive.
    #[track_caller]
    pub fn huber(&self, target: &Var<A>, delta: A) -> Pending<A, impl BackwardStep<A> + use<A>> {
        assert!(
            delta > A::zero(),
            "huber: delta must be positive, got {delta} (shape {:?})",
            self.shape()
        );
        self.mean_pointwise("huber", target, delta, |x, t, delta| {
            let d = x - t;
            let half = A::from_f64_lossy(0.5);
            let (loss, slope) = if d.abs() <= delta {
                (half * d * d, d)
            } else {
                (delta * (d.abs() - half * delta), delta * d.signum())
            };
            (loss, slope, -slope)
        })
    }

    /// The smooth L1 loss between `self` (the prediction) and `target`,
    /// averaged over the elements: with `d = self - target`, `d²/(2·beta)`
    /// where `|d| < beta` and `|d| - beta/2` beyond. It is the
    /// [`huber`](Var::huber) loss with `delta = beta`, divided by `beta`;
    /// `beta = 0` is the plain L1 loss (whose gradient at `d = 0` is 0).
    /// The gradient reaches both sides, whichever require it.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![0.5f64, 3.0]);
    /// let t = Var::constant(array![0.0f64, 0.0]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| x.smooth_l1(&t, 2.0).bind(|l| k(l)));
    /// assert_eq!(loss.backward(), (0.0625 + 2.0) / 2.0);
    /// assert_eq!(x.grad(), array![0.125, 0.5].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When the shapes differ, or when `beta` is negative.
    #[track_caller]
    pub fn smooth_l1(&self, target: &Var<A>, beta: A) -> Pending<A, impl BackwardStep<A> + use<A>> {
        assert!(
            beta >= A::zero(),
            "smooth_l1: beta must not be negative, got {beta} (shape {:?})",
            self.shape()
        );
        self.mean_pointwise("smooth_l1", target, beta, |x, t, beta| {
            let d = x - t;
            let half = A::from_f64_lossy(0.5);
            let (loss, slope) = if d.abs() < beta {
                (half * d * d / beta, d / beta)
            } else if d == A::zero() {
                (A::zero(), A::zero())
            } else {
                (d.abs() - half * beta, d.signum())
            };
            (loss, slope, -slope)
        })
    }

    /// The mean over the elements of a loss computed element by element
    /// from `self` and `target` (same shape): `rule(x, t, parameter)` gives
    /// the element's loss and its derivatives by `x` and by `t`. The rule
    /// runs again in the backward step, for the derivatives, rather than
    /// keeping them.
    #[track_caller]
    fn mean_pointwise(
        &self,
        op: &'static str,
        target: &Var<A>,
        parameter: A,
        rule: fn(A, A, A) -> (A, A, A),
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        if self.shape() != target.shape() {
            shape_mismatch(
                op,
                self.shape(),
                target.shape(),
                "the prediction and the target must have the same shape",
            );
        }
        let count = A::from_usize(self.len()).expect("a count fits a float");
        let total = Zip::from(self.array())
            .and(target.array())
            .fold(A::zero(), |acc, &x, &t| acc + rule(x, t, parameter).0);
        let (x, t) = (self.clone(), target.clone());
        Pending::new(
            op,
            ndarray::arr0(total / count).into_dyn(),
            self.requires_grad() || target.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                let g = grad.first().copied().unwrap_or_else(A::zero) / count;
                memory::recycle(grad);
                if x.requires_grad() {
                    x.accumulate(
                        Zip::from(x.array())
                            .and(t.array())
                            .map_collect(|&a, &b| g * rule(a, b, parameter).1),
                    );
                }
                if t.requires_grad() {
                    t.accumulate(
                        Zip::from(x.array())
                            .and(t.array())
                            .map_collect(|&a, &b| g * rule(a, b, parameter).2),
                    );
                }
            },
        )
    }
}
