//! Loss functions: each one fused into a single operation, so that its
//! forward pass is numerically stable and its backward step is one pass
//! over the input with no intermediate tensors.

use ndarray::{ArrayD, ArrayView2, Axis, Ix2, Zip};
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
    let shape = logits.shape();
    let rows = match shape.len() {
        1 => logits.view().insert_axis(Axis(0)),
        2 => logits.view(),
        _ => panic!(
            "{op}: the logits must be a vector (one example) or a matrix (one example per row), \
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
                "a vector of logits takes exactly one target, got {}",
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
             (logits shape {shape:?})"
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
}
