//! Bayesian logistic regression with a Gaussian variational posterior,
//! and the negative ELBO that every optimizer of the example minimises.
//!
//! Model: weights `z ∈ ℝᵈ` (an intercept and one weight per feature) with
//! prior `N(0, I)`, and `p(yₙ = 1 | z) = σ(xₙ·z)`. Posterior
//! approximation: `q(z) = N(μ, RRᵀ)` with `R` lower triangular, sampled
//! by reparameterisation, `z = μ + Rε` with `ε ~ N(0, I)`. `R`'s diagonal
//! is `exp(s)`, so that it stays positive whatever the optimizer does;
//! the diagonal family keeps only that diagonal, the full family also the
//! strictly lower entries `L`. All of it is one flat vector
//! `θ = (μ, s, L)` (`L` row by row), which is what the optimizers see.
//!
//! The negative ELBO, estimated with `S` draws `ε₁..ε_S`:
//!
//! ```text
//! −ELBO(θ) ≈ (1/S) Σₛ Σₙ softplus(−yₙ·xₙ·(μ + Rεₛ)) + KL(q ‖ N(0, I))
//! KL = ½ (‖R‖²_F + ‖μ‖² − d − 2 Σᵢ sᵢ)
//! ```
//!
//! with `yₙ = ±1`. The KL term (the prior's expectation and the entropy)
//! is exact; only the likelihood is estimated. With the draws held fixed
//! the estimate is a smooth function of `θ`, so its gradient comes from
//! a backward pass and its Hessian-vector products from `hvp` (forward
//! over reverse), on the same code: [`negative_elbo`] is generic over the
//! element type.
//!
//! The file stands alone (the integration test includes it by path).

use cps::element::Dual;
use cps::prelude::*;
use ndarray::{Array1, Array2, ArrayD, Ix1};

/// Which covariances `q` may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `R` diagonal: independent weights (`2d` parameters).
    Diagonal,
    /// `R` lower triangular: any covariance (`2d + d(d−1)/2` parameters).
    Full,
}

impl Family {
    /// The family's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::Diagonal => "diagonal",
            Family::Full => "full",
        }
    }
}

/// Where `μ`, `s` and `L` sit in `θ`, and how `L` and `exp(s)` fill `R`.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Which covariances.
    pub family: Family,
    /// The number of weights `d`.
    pub dim: usize,
    /// For each entry of `R` (row by row), its place in `(exp(s), L, 0)`:
    /// the diagonal from `exp(s)`, the strict lower triangle from `L`, the
    /// rest from the trailing zero. Empty for the diagonal family.
    gather: Vec<usize>,
}

impl Layout {
    /// The layout of `d` weights' posterior in `family`.
    pub fn new(family: Family, dim: usize) -> Self {
        let lower = dim * dim.saturating_sub(1) / 2;
        let gather = match family {
            Family::Diagonal => Vec::new(),
            Family::Full => (0..dim * dim)
                .map(|k| {
                    let (i, j) = (k / dim, k % dim);
                    match i.cmp(&j) {
                        std::cmp::Ordering::Equal => i,
                        std::cmp::Ordering::Greater => dim + i * (i - 1) / 2 + j,
                        std::cmp::Ordering::Less => dim + lower,
                    }
                })
                .collect(),
        };
        Layout {
            family,
            dim,
            gather,
        }
    }

    /// The number of strictly lower entries of `R` in `θ`.
    pub fn lower_count(&self) -> usize {
        match self.family {
            Family::Diagonal => 0,
            Family::Full => self.dim * (self.dim - 1) / 2,
        }
    }

    /// The length of `θ`.
    pub fn parameter_count(&self) -> usize {
        2 * self.dim + self.lower_count()
    }

    /// `R` as a matrix, from `θ` (written out entry by entry, apart from
    /// the gather the differentiable estimate uses, so that the test
    /// comparing the two checks the gather too).
    pub fn scale(&self, theta: &Array1<f64>) -> Array2<f64> {
        let d = self.dim;
        let mut r = Array2::from_diag(&theta.slice(ndarray::s![d..2 * d]).mapv(f64::exp));
        if self.family == Family::Full {
            let mut lower = theta.slice(ndarray::s![2 * d..]).into_iter();
            for i in 0..d {
                for j in 0..i {
                    r[[i, j]] = *lower.next().expect("θ holds the strict lower triangle");
                }
            }
        }
        r
    }
}

/// The data, as constants of one element type.
struct Data<A: Element> {
    /// `xᵀ`, `d × N`.
    xt: Var<A>,
    /// `yₙ = ±1`, a row of `N`.
    signs: Var<A>,
}

impl<A: Element> Data<A> {
    fn new(x: &Array2<f64>, labels: &[bool]) -> Self {
        let signs = Array1::from_iter(labels.iter().map(|&y| if y { 1.0 } else { -1.0 }));
        Data {
            xt: Var::constant(x.t().mapv(A::from_f64_lossy)),
            signs: Var::constant(signs.mapv(A::from_f64_lossy)),
        }
    }
}

/// The estimate of the negative ELBO at `theta` (laid out by `layout`)
/// from the draws `eps` (`S × d`, one draw per row).
#[differentiable]
fn negative_elbo<A: Element>(
    theta: &Var<A>,
    eps: &Var<A>,
    data: &Data<A>,
    layout: &Layout,
    zero: &Var<A>,
) -> Var<A> {
    let d = layout.dim;
    let samples = eps.shape()[0] as f64;
    let mu = theta.narrow(0, 0, d);
    let log_diag = theta.narrow(0, d, d);
    let diag = log_diag.exp();
    // z = μ + Rε for every draw, as the rows of an S × d matrix, and
    // ‖R‖²_F for the KL term.
    let (z, frobenius) = match layout.family {
        Family::Diagonal => (eps * &diag + &mu, diag.square().sum()),
        Family::Full => {
            let lower = theta.narrow(0, 2 * d, layout.lower_count());
            let entries = concat(&[&diag, &lower, zero], 0);
            let r = entries.index_select(0, &layout.gather).reshape(&[d, d]);
            (
                eps.matmul(&r.t()) + &mu,
                diag.square().sum() + lower.square().sum(),
            )
        }
    };
    let margins = z.matmul(&data.xt) * &data.signs;
    let likelihood = (-margins).softplus().sum() * (1.0 / samples);
    let kl = (frobenius + mu.square().sum() - log_diag.sum() * 2.0 - d as f64) * 0.5;
    likelihood + kl
}

/// The negative ELBO of one data set and posterior family, with its
/// gradient and Hessian-vector products, for `θ` and draws given as plain
/// `f64` arrays.
pub struct Objective {
    layout: Layout,
    plain: Data<f64>,
    dual: Data<Dual<f64>>,
}

impl Objective {
    /// The objective of logistic regression on inputs `x` (`N × d`, one
    /// row per example) and classes `labels`, for posteriors in `family`.
    pub fn new(family: Family, x: &Array2<f64>, labels: &[bool]) -> Self {
        assert_eq!(x.nrows(), labels.len(), "one class per row of inputs");
        Objective {
            layout: Layout::new(family, x.ncols()),
            plain: Data::new(x, labels),
            dual: Data::new(x, labels),
        }
    }

    /// How `θ` is laid out.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The number of weights `d`.
    pub fn dim(&self) -> usize {
        self.layout.dim
    }

    /// The starting point: `q` equal to the prior (`μ = 0`, `R = I`),
    /// which is `θ = 0`.
    pub fn prior(&self) -> Array1<f64> {
        Array1::zeros(self.layout.parameter_count())
    }

    /// The estimate of the negative ELBO at `theta` from the draws `eps`
    /// (`S × d`), forward only.
    pub fn value(&self, theta: &Array1<f64>, eps: &Array2<f64>) -> f64 {
        let (theta, eps) = (Var::constant(theta.clone()), Var::constant(eps.clone()));
        let zero = Var::constant(Array1::zeros(1));
        let out = negative_elbo(&theta, &eps, &self.plain, &self.layout, &zero).eval();
        out.array().sum()
    }

    /// The estimate and its gradient with respect to `theta`.
    pub fn gradient(&self, theta: &Array1<f64>, eps: &Array2<f64>) -> (f64, Array1<f64>) {
        let param = Param::new(theta.clone());
        let (eps, zero) = (Var::constant(eps.clone()), Var::constant(Array1::zeros(1)));
        let value = negative_elbo(param.var(), &eps, &self.plain, &self.layout, &zero).backward();
        (value, flat(param.grad()))
    }

    /// The estimate's Hessian at `theta` times `direction`: a
    /// Hessian-vector product on dual numbers (forward over reverse).
    pub fn hessian_vector_product(
        &self,
        theta: &Array1<f64>,
        eps: &Array2<f64>,
        direction: &Array1<f64>,
    ) -> Array1<f64> {
        let eps = Var::constant(eps.mapv(Dual::constant));
        let zero = Var::constant(Array1::from_elem(1, Dual::constant(0.0)));
        let result = hvp(
            |[theta]: [Var<Dual<f64>>; 1]| {
                lazy(move |k: &mut dyn FnMut(Var<Dual<f64>>)| {
                    negative_elbo(&theta, &eps, &self.dual, &self.layout, &zero).bind(k)
                })
            },
            [theta.clone().into_dyn()],
            [direction.clone().into_dyn()],
        );
        let [product] = result.product;
        flat(product)
    }
}

/// A gradient of `θ`'s shape as a vector.
fn flat(array: ArrayD<f64>) -> Array1<f64> {
    array
        .into_dimensionality::<Ix1>()
        .expect("θ is a vector, and so is its gradient")
}
