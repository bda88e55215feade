//! Differentiable operations, one module per family. Each operation is a
//! method on [`Var`](crate::Var) (or an operator) returning a
//! [`Pending`](crate::Pending): its forward computation, with its backward
//! step written right beside it as the closure that adds into the inputs'
//! gradients. Binary operations broadcast by NumPy's rules; axes may be
//! negative (counted from the end).
//!
//! | `cps` | PyTorch | module |
//! |---|---|---|
//! | `a + b`, `a - b`, `a * b`, `a / b`, `-a` | same | [`elementwise`] |
//! | `gt` `ge` `lt` `le` `eq` `ne` (masks of 0 and 1) | `gt` `ge` `lt` `le` `eq` `ne` | [`compare`] |
//! | `maximum`, `minimum` | `maximum`, `minimum` | [`compare`] |
//! | `exp` `log` `sqrt` `square` `powi` `abs` `neg` | `exp` `log` `sqrt` `square` `pow` (integer) `abs` `neg` | [`elementwise`] |
//! | `tanh` `sigmoid` `relu` | `tanh` `sigmoid` `relu` | [`elementwise`] |
//! | `sin` `cos` `pow` `pow_var` `log1p` `expm1` | `sin` `cos` `pow` `pow` (tensor exponent) `log1p` `expm1` | [`unary`] |
//! | `softplus` `leaky_relu` `elu` `gelu` | `F.softplus` `F.leaky_relu` `F.elu` `F.gelu` | [`unary`] |
//! | `erf` `normal_cdf` | `erf`, `distributions.Normal(0, 1).cdf` | [`unary`] |
//! | `clamp` `sign` `where_` | `clamp` `sign` `where` | [`unary`] |
//! | `softmax` `log_softmax` `dropout` | `softmax` `log_softmax` `F.dropout` | [`activations`] |
//! | `sum` `mean` `max` `min` `logsumexp` `var` `norm` (and `_axis`, `_axis_keepdim`) | `sum` `mean` `amax` `amin` `logsumexp` `var` `norm` (`dim`, `keepdim`) | [`reductions`] |
//! | `argmax` `argmin` (plain indices) | `argmax` `argmin` | [`reductions`] |
//! | `reshape` `flatten` `squeeze` `unsqueeze` `permute` `transpose` `t` `broadcast_to` | same (`t` for matrices) | [`shape`], [`linalg`] |
//! | `concat`, `stack`, `split`, `chunk`, `narrow` | `cat`, `stack`, `split`, `chunk`, `narrow` | [`shape`] |
//! | `slice`, `slice_with` (steps), `pad` | indexing, `F.pad` (constant) | [`shape`] |
//! | `rows`, `index_select`, `gather`, `one_hot` | `embedding`/`index_select`, `index_select`, `gather`, `F.one_hot` | [`shape`] |
//! | `matmul` (with stacks of matrices) `linear` `outer` `dot` | `matmul` `F.linear` `outer` `dot` | [`linalg`] |
//! | `cholesky` `solve_spd` `inverse` | `linalg.cholesky` `cholesky_solve` `linalg.inv` | [`solve`] |
//! | `conv1d` `conv2d` | `F.conv1d` `F.conv2d` | [`conv`] |
//! | `max_pool2d` `avg_pool2d` | `F.max_pool2d` `F.avg_pool2d` | [`pool`] |
//! | `layer_norm` `batch_norm` `batch_norm_eval` `dropout2d` | `F.layer_norm` `F.batch_norm` (training / eval) `F.dropout2d` | [`norm`] |
//! | `cross_entropy` `cross_entropy_mean` `nll_loss` `mse` | `F.cross_entropy` (sum / mean) `F.nll_loss` `F.mse_loss` | [`losses`] |
//! | `binary_cross_entropy` `binary_cross_entropy_with_logits` `huber` `smooth_l1` | same names in `F` | [`losses`] |
//! | `Var::normal` `uniform` `randn_like` `bernoulli` `categorical` `categorical_log_prob` | `normal` `rand` `randn_like` `bernoulli` `multinomial`, `Categorical.log_prob` | [`random`] |
//! | `black_box` (Jᵀg estimated) | — (no PyTorch equivalent) | [`blackbox`] |

pub mod activations;
pub mod blackbox;
pub(crate) mod broadcast;
pub mod compare;
pub mod conv;
pub mod elementwise;
pub mod linalg;
pub mod losses;
pub mod norm;
pub mod operand;
pub mod pool;
pub mod random;
pub mod reductions;
pub mod shape;
pub mod solve;
pub mod unary;

/// Panics with a message naming the operation and both shapes.
#[track_caller]
pub(crate) fn shape_mismatch(op: &str, left: &[usize], right: &[usize], detail: &str) -> ! {
    panic!("{op}: shape mismatch between {left:?} and {right:?}: {detail}")
}
