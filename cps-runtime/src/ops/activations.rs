//! Activations that act along an axis or at random: softmax, log-softmax
//! and dropout.
//!
//! Softmax and log-softmax normalise along the last axis (a vector as a
//! whole, each row of a matrix). Their backward steps are the
//! Jacobian-vector products, computed row by row in the incoming gradient's
//! own buffer: no Jacobian is ever formed.

use ndarray::{ArrayD, Axis, Zip};
use rand::Rng;
use rand::distr::{Bernoulli, Distribution};

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::var::Var;

/// The last axis, along which softmax and log-softmax normalise.
#[track_caller]
fn last_axis<A: Element>(op: &str, x: &Var<A>) -> Axis {
    match x.shape().len() {
        0 => panic!(
            "{op}: expected a tensor of rank at least 1 (it normalises along the last axis), got shape {:?}",
            x.shape()
        ),
        rank => Axis(rank - 1),
    }
}

impl<A: Element> Var<A> {
    /// Softmax along the last axis: `exp(x_i) / sum_j exp(x_j)`, so that
    /// every row (every lane along the last axis) sums to one.
    ///
    /// Each row's maximum is subtracted before exponentiating, so large
    /// logits do not overflow.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1000.0f64, 1000.0], [0.0, 2.0f64.ln()]]);
    /// let p = lazy(|k: &mut dyn FnMut(Var<f64>)| x.softmax().bind(|p| k(p))).eval();
    /// assert_eq!(p.array()[[0, 0]], 0.5);
    /// assert!((p.array()[[1, 1]] - 2.0 / 3.0).abs() < 1e-15);
    /// ```
    ///
    /// # Panics
    /// When the tensor is zero-dimensional.
    #[track_caller]
    pub fn softmax(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let axis = last_axis("softmax", self);
        let mut y = self.array().clone();
        for mut row in y.lanes_mut(axis) {
            let max = row.fold(A::neg_infinity(), |m, &v| m.max(v));
            let mut total = A::zero();
            row.mapv_inplace(|v| {
                let e = (v - max).exp();
                total += e;
                e
            });
            row.mapv_inplace(|e| e / total);
        }
        let x = self.clone();
        Pending::new(
            "softmax",
            y,
            self.requires_grad(),
            move |y: &ArrayD<A>, mut grad: ArrayD<A>| {
                // Per row: dx = y * (g - <g, y>).
                Zip::from(grad.lanes_mut(axis))
                    .and(y.lanes(axis))
                    .for_each(|mut g, y| {
                        let dot = Zip::from(&g)
                            .and(&y)
                            .fold(A::zero(), |acc, &g, &y| acc + g * y);
                        Zip::from(&mut g)
                            .and(&y)
                            .for_each(|g, &y| *g = y * (*g - dot));
                    });
                x.accumulate(grad);
            },
        )
    }

    /// Log-softmax along the last axis: `x_i - log(sum_j exp(x_j))`, the
    /// logarithm of [`softmax`](Var::softmax) computed without ever taking
    /// the logarithm of an underflowed probability.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![0.0f64, 0.0]);
    /// let y = lazy(|k: &mut dyn FnMut(Var<f64>)| x.log_softmax().bind(|y| k(y))).eval();
    /// assert!((y.array()[0] - 0.5f64.ln()).abs() < 1e-15);
    /// ```
    ///
    /// # Panics
    /// When the tensor is zero-dimensional.
    #[track_caller]
    pub fn log_softmax(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let axis = last_axis("log_softmax", self);
        let mut y = self.array().clone();
        for mut row in y.lanes_mut(axis) {
            let max = row.fold(A::neg_infinity(), |m, &v| m.max(v));
            let log_sum_exp = max + row.fold(A::zero(), |acc, &v| acc + (v - max).exp()).ln();
            row.mapv_inplace(|v| v - log_sum_exp);
        }
        let x = self.clone();
        Pending::new(
            "log_softmax",
            y,
            self.requires_grad(),
            move |y: &ArrayD<A>, mut grad: ArrayD<A>| {
                // Per row: dx = g - softmax(x) * sum(g), and softmax(x) = exp(y).
                Zip::from(grad.lanes_mut(axis))
                    .and(y.lanes(axis))
                    .for_each(|mut g, y| {
                        let total = g.sum();
                        Zip::from(&mut g)
                            .and(&y)
                            .for_each(|g, &y| *g -= y.exp() * total);
                    });
                x.accumulate(grad);
            },
        )
    }

    /// Inverted dropout: each element is zeroed with probability `p` and
    /// the kept ones are scaled by `1 / (1 - p)`, so the expected value of
    /// every element is unchanged.
    ///
    /// The mask is drawn from `rng` when the operation runs (one draw per
    /// element, in row-major order), so a seeded generator reproduces it;
    /// the backward step multiplies by the same mask. `p = 0` is the
    /// identity and draws nothing. Dropout is for training: at evaluation
    /// time, skip the call (or pass `p = 0`).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::{ArrayD, IxDyn};
    /// use rand::SeedableRng;
    ///
    /// let x = Var::constant(ArrayD::<f64>::ones(IxDyn(&[4, 5])));
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    /// let y = lazy(|k: &mut dyn FnMut(Var<f64>)| x.dropout(0.5, &mut rng).bind(|y| k(y))).eval();
    /// // Every element was either dropped or doubled.
    /// assert!(y.array().iter().all(|&v| v == 0.0 || v == 2.0));
    /// ```
    ///
    /// # Panics
    /// When `p` is not in `[0, 1)`.
    #[track_caller]
    pub fn dropout<R: Rng + ?Sized>(
        &self,
        p: A,
        rng: &mut R,
    ) -> Pending<A, impl BackwardStep<A> + use<A, R>> {
        let drop = p.to_f64_lossless();
        if !(0.0..1.0).contains(&drop) {
            panic!(
                "dropout: the drop probability p must be in [0, 1), got {p} (input shape {:?})",
                self.shape()
            );
        }
        // `None` when p = 0: nothing is dropped, so no mask is drawn or kept.
        let mask: Option<ArrayD<bool>> = (drop > 0.0).then(|| {
            let keep = Bernoulli::new(1.0 - drop).expect("1 - p is a probability");
            ArrayD::from_shape_simple_fn(self.array().raw_dim(), || keep.sample(rng))
        });
        let scale = (A::one() - p).recip();
        let value = match &mask {
            Some(mask) => Zip::from(self.array())
                .and(mask)
                .map_collect(|&v, &kept| if kept { v * scale } else { A::zero() }),
            None => self.array().clone(),
        };
        let x = self.clone();
        Pending::new(
            "dropout",
            value,
            self.requires_grad(),
            move |_: &ArrayD<A>, mut grad: ArrayD<A>| {
                if let Some(mask) = mask {
                    Zip::from(&mut grad)
                        .and(&mask)
                        .for_each(|g, &kept| *g = if kept { *g * scale } else { A::zero() });
                }
                x.accumulate(grad);
            },
        )
    }
}
