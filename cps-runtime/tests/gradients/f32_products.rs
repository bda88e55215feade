//! `f32` matrix products through the public operations give ndarray's
//! general product bit for bit, whichever kernel the runtime picks for the
//! shape: a batch through `linear` (a few rows run on the kernel that
//! reads the weight in place, more on the GEMM) and a parameter's gradient
//! gathered from deferred rows (a short inner dimension runs on its own
//! kernel, a long one on the GEMM).

use cps_runtime::*;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayD, s};

/// A `rows × cols` matrix of values in [-2, 2) from `seed`.
fn matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(7);
    Array2::from_shape_fn((rows, cols), |_| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) % 40_000) as f32 / 10_000.0 - 2.0
    })
}

/// `sum(y ⊙ weights)`, whose backward step hands `y` exactly `weights` as
/// its gradient (the loss's own gradient is 1).
fn weighted_sum(y: &Var<f32>, weights: ArrayD<f32>) -> Pending<f32, impl BackwardStep<f32>> {
    let input = y.clone();
    let value = (y.array() * &weights).sum();
    Pending::new(
        "weighted_sum",
        ndarray::arr0(value).into_dyn(),
        y.requires_grad(),
        move |_: &ArrayD<f32>, grad: ArrayD<f32>| input.accumulate(&weights * grad[[]]),
    )
}

fn same_bits(a: &ArrayD<f32>, b: &ArrayD<f32>) -> bool {
    a.shape() == b.shape() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// A batch of `rows` inputs through a `450 × 300` weight: the result is
/// `x·wᵀ` and the weight's gradient `rᵀ·x` for the result's gradient `r`,
/// both as `general_mat_mul` makes them.
fn check_linear(rows: usize) {
    let (x, w) = (matrix(rows, 300, 1), matrix(450, 300, 2));
    let r = matrix(rows, 450, 3);
    let mut expected_y = Array2::zeros((rows, 450));
    general_mat_mul(1.0, &x, &w.t(), 0.0, &mut expected_y);
    let mut expected_dw = Array2::zeros((450, 300));
    general_mat_mul(1.0, &r.t(), &x, 0.0, &mut expected_dw);

    let weight = Param::new(w);
    let input = Var::constant(x);
    let mut y = None;
    lazy(|k: &mut dyn FnMut(Var<f32>)| {
        input.linear(&weight).bind(|out| {
            y = Some(out.array().clone());
            weighted_sum(&out, r.clone().into_dyn()).bind(k)
        })
    })
    .backward();
    let y = y.expect("the continuation ran");
    assert!(same_bits(&y, &expected_y.into_dyn()), "{rows} rows: values");
    assert!(
        same_bits(&weight.grad(), &expected_dw.into_dyn()),
        "{rows} rows: gradient"
    );
}

#[test]
fn a_batch_through_linear_gives_the_general_products_bits() {
    // The kernel that reads the weight in place (9–40 rows, in one block
    // of up to 24 rows or two) and the GEMM beyond. (Up to 8 rows run on
    // the matrix-vector kernels, which sum in another order: their tests
    // are with the kernels.)
    for rows in [9, 19, 24, 25, 40, 41, 64] {
        check_linear(rows);
    }
}

/// `count` products of a `rows × cols` weight with vectors, each result
/// weighted by its own vector: the weight's gradient is the sum of `count`
/// outer products, gathered and added as one product when read.
fn check_deferred_gradient(count: usize, rows: usize, cols: usize) {
    let xs = matrix(count, cols, 4);
    let rs = matrix(count, rows, 5);
    // The backward pass reaches the products last first, and the rows are
    // gathered in that order.
    let (xs_reached, rs_reached) = (xs.slice(s![..;-1, ..]), rs.slice(s![..;-1, ..]));
    let mut expected = Array2::zeros((rows, cols));
    general_mat_mul(1.0, &rs_reached.t(), &xs_reached, 0.0, &mut expected);

    let weight = Param::new(matrix(rows, cols, 6));
    // The loss is the sum of the weighted sums, so each gets gradient 1.
    fn products(
        weight: &Param<f32>,
        pairs: &[(Array1<f32>, Array1<f32>)],
        total: Var<f32>,
        k: &mut dyn FnMut(Var<f32>),
    ) {
        match pairs.split_first() {
            None => k(total),
            Some(((x, r), rest)) => weight.matmul(&Var::constant(x.clone())).bind(|y| {
                weighted_sum(&y, r.clone().into_dyn())
                    .bind(|s| (total + s).bind(|total| products(weight, rest, total, k)))
            }),
        }
    }
    let pairs: Vec<_> = xs
        .rows()
        .into_iter()
        .zip(rs.rows())
        .map(|(x, r)| (x.to_owned(), r.to_owned()))
        .collect();
    lazy(|k: &mut dyn FnMut(Var<f32>)| {
        products(&weight, &pairs, Var::constant(ndarray::arr0(0.0f32)), k)
    })
    .backward();
    assert!(
        same_bits(&weight.grad(), &expected.into_dyn()),
        "{count} products with a {rows}×{cols} weight"
    );
}

#[test]
fn a_gradient_gathered_from_deferred_rows_gives_the_general_products_bits() {
    // Short inner dimensions (the runtime's kernel) and a long one (the
    // GEMM), on shapes with and without edges.
    for (count, rows, cols) in [(1, 37, 29), (18, 750, 300), (19, 450, 300), (48, 13, 70)] {
        check_deferred_gradient(count, rows, cols);
    }
    check_deferred_gradient(60, 40, 33);
}
