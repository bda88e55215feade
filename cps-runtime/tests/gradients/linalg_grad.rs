//! Products of stacks of matrices, `outer`, `dot`, the Cholesky factor,
//! symmetric positive-definite solves and inverses: forward values against
//! direct loops and defining identities (`L·Lᵀ = A`, `A·x = b`,
//! `A·A⁻¹ = I`), gradients against central finite differences
//! (`gradcheck`) on random shapes and values, negative controls with
//! plausible wrong rules, and the messages of the errors.

use cps_runtime::*;
use ndarray::{Array2, ArrayD, Axis, Dimension, Ix2, IxDyn, array};
use proptest::prelude::*;

use crate::support::{random_values, weighted_loss};

const TOLERANCE: f64 = 1e-6;

/// The output of `op`, run forward only.
fn forward<A: Element>(op: impl FnOnce(&mut dyn FnMut(Var<A>))) -> ArrayD<A> {
    let mut out = None;
    op(&mut |y: Var<A>| out = Some(y.array().clone()));
    out.expect("the operation called its continuation")
}

fn matrix(rows: usize, cols: usize) -> impl Strategy<Value = Array2<f64>> {
    random_values(vec![rows, cols]).prop_map(|m| m.into_dimensionality::<Ix2>().expect("a matrix"))
}

/// `M·Mᵀ + n·I`: symmetric positive definite, its eigenvalues at least `n`.
fn spd_from(m: &Array2<f64>) -> Array2<f64> {
    m.dot(&m.t()) + Array2::<f64>::eye(m.nrows()) * m.nrows() as f64
}

/// A random symmetric positive-definite matrix of size 1 to 6.
fn spd() -> impl Strategy<Value = Array2<f64>> {
    (1usize..=6)
        .prop_flat_map(|n| matrix(n, n))
        .prop_map(|m| spd_from(&m))
}

/// An SPD matrix with a right-hand side: a vector or a matrix of 1 to 3
/// columns.
fn spd_and_rhs() -> impl Strategy<Value = (Array2<f64>, ArrayD<f64>)> {
    (spd(), 0usize..=3).prop_flat_map(|(a, columns)| {
        let n = a.nrows();
        let shape = if columns == 0 {
            vec![n]
        } else {
            vec![n, columns]
        };
        (Just(a), random_values(shape))
    })
}

/// A random invertible matrix of size 1 to 6 whose rows are permuted, so
/// that elimination has to pivot: `P·(M + (2n+1)·I)` with the entries of
/// `M` in (−2, 2), diagonally dominant before the permutation.
fn invertible() -> impl Strategy<Value = Array2<f64>> {
    (1usize..=6)
        .prop_flat_map(|n| {
            (
                matrix(n, n),
                Just(n).prop_perturb(|n, mut rng| {
                    let mut order: Vec<usize> = (0..n).collect();
                    for i in (1..n).rev() {
                        order.swap(i, rng.random_range(0..=i));
                    }
                    order
                }),
            )
        })
        .prop_map(|(m, order)| {
            let n = m.nrows();
            let dominant = m + Array2::<f64>::eye(n) * (2.0 * n as f64 + 1.0);
            dominant.select(Axis(0), &order)
        })
}

fn assert_all_close(actual: &ArrayD<f64>, expected: &ArrayD<f64>, tolerance: f64, what: &str) {
    assert_eq!(actual.shape(), expected.shape(), "{what}: shapes differ");
    for ((index, &a), &e) in actual.indexed_iter().zip(expected.iter()) {
        assert!(
            (a - e).abs() <= tolerance * e.abs().max(1.0),
            "{what} at {index:?}: got {a}, expected {e}"
        );
    }
}

// ---------------------------------------------------------------------------
// Products of stacks of matrices
// ---------------------------------------------------------------------------

/// `left · right` by direct loops, `torch.matmul`'s rules written out: a
/// vector is a one-row (left) or one-column (right) matrix whose axis the
/// result drops, and the stack axes broadcast.
fn reference_matmul(left: &ArrayD<f64>, right: &ArrayD<f64>) -> ArrayD<f64> {
    let (lv, rv) = (left.ndim() == 1, right.ndim() == 1);
    let l = if lv {
        left.view().insert_axis(Axis(0))
    } else {
        left.view()
    };
    let r = if rv {
        right.view().insert_axis(Axis(1))
    } else {
        right.view()
    };
    let (ls, rs) = (&l.shape()[..l.ndim() - 2], &r.shape()[..r.ndim() - 2]);
    let rank = ls.len().max(rs.len());
    let pad = |s: &[usize]| {
        let mut p = vec![1; rank - s.len()];
        p.extend_from_slice(s);
        p
    };
    let (lp, rp) = (pad(ls), pad(rs));
    let stack: Vec<usize> = lp.iter().zip(&rp).map(|(&a, &b)| a.max(b)).collect();
    let (m, k, n) = (
        l.shape()[l.ndim() - 2],
        l.shape()[l.ndim() - 1],
        r.shape()[r.ndim() - 1],
    );
    let mut shape = stack.clone();
    shape.extend([m, n]);
    let l = l
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order([lp.clone(), vec![m, k]].concat())
        .expect("pad");
    let r = r
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order([rp.clone(), vec![k, n]].concat())
        .expect("pad");
    let out = ArrayD::from_shape_fn(IxDyn(&shape), |index| {
        let index = index.slice();
        let pick = |padded: &[usize], i: usize| if padded[i] == 1 { 0 } else { index[i] };
        let mut li: Vec<usize> = (0..rank).map(|i| pick(&lp, i)).collect();
        let mut ri: Vec<usize> = (0..rank).map(|i| pick(&rp, i)).collect();
        let (row, col) = (index[rank], index[rank + 1]);
        (0..k)
            .map(|j| {
                li.extend([row, j]);
                ri.extend([j, col]);
                let term = l[li.as_slice()] * r[ri.as_slice()];
                li.truncate(rank);
                ri.truncate(rank);
                term
            })
            .sum()
    });
    let out = if rv {
        out.index_axis_move(Axis(rank + 1), 0)
    } else {
        out
    };
    if lv {
        out.index_axis_move(Axis(rank), 0)
    } else {
        out
    }
}

/// Two operands of which one has rank 3 or more, with stack axes of sizes
/// 1 to 3 that broadcast (some set to 1 on one side, some missing), and
/// now and then a vector or a plain matrix on one side.
fn stacked_operands() -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>)> {
    (
        prop::collection::vec(1usize..=3, 1..=3),
        prop::collection::vec(0usize..4, 3),
        1usize..=3,
        1usize..=4,
        1usize..=3,
        0usize..=5,
        any::<bool>(),
    )
        .prop_flat_map(|(stack, ones, m, k, n, form, left_is_stack)| {
            // Each side keeps a suffix of the stack, with some axes set to 1.
            let side = |keep: usize, ones_at: usize| -> Vec<usize> {
                let start = stack.len() - keep.min(stack.len());
                stack[start..]
                    .iter()
                    .enumerate()
                    .map(|(i, &s)| if i == ones_at { 1 } else { s })
                    .collect()
            };
            let full = side(stack.len(), ones[0]);
            let other = side(ones[1] % (stack.len() + 1), ones[2]);
            let (ls, rs) = if left_is_stack {
                (full, other)
            } else {
                (other, full)
            };
            let with = |mut s: Vec<usize>, a: usize, b: usize| {
                s.extend([a, b]);
                s
            };
            // form 0: the other side a vector; 1: a matrix; else stacks.
            let (left, right) = match (form, left_is_stack) {
                (0, true) => (with(ls, m, k), vec![k]),
                (0, false) => (vec![k], with(rs, k, n)),
                (1, true) => (with(ls, m, k), vec![k, n]),
                (1, false) => (vec![m, k], with(rs, k, n)),
                _ => (with(ls, m, k), with(rs, k, n)),
            };
            (random_values(left), random_values(right))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn stacked_matmul_matches_direct_loops((a, b) in stacked_operands()) {
        let expected = reference_matmul(&a, &b);
        let (a, b) = (Var::constant(a), Var::constant(b));
        let got = forward(|k| a.matmul(&b).bind(k));
        assert_all_close(&got, &expected, 1e-12, "matmul");
    }

    #[test]
    fn stacked_matmul_gradient((a, b) in stacked_operands()) {
        let weights = reference_matmul(&a, &b).mapv(|x| x.sin() + 0.5);
        let mut model = (Param::new(a), Param::new(b));
        let report = gradcheck(&mut model, |(a, b)| {
            weighted_loss(&(a, b), &weights, |(a, b), k| a.matmul(b).bind(k))
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }
}

#[test]
fn stacks_broadcast_as_in_torch() {
    // [2, 1, 3, 4] · [5, 4, 2] → [2, 5, 3, 2]: the left matrices serve all
    // five right ones, the right ones both left ones.
    let a = ArrayD::from_shape_fn(IxDyn(&[2, 1, 3, 4]), |i| {
        (i[0] * 12 + i[2] * 4 + i[3]) as f64 * 0.1 - 1.0
    });
    let b = ArrayD::from_shape_fn(IxDyn(&[5, 4, 2]), |i| {
        (i[0] * 8 + i[1] * 2 + i[2]) as f64 * 0.05
    });
    let (va, vb) = (Param::new(a.clone()), Param::new(b.clone()));
    let out = forward(|k| va.matmul(&vb).bind(k));
    assert_eq!(out.shape(), &[2, 5, 3, 2]);
    // One element by hand: batch (1, 3), row 2, column 1.
    let by_hand: f64 = (0..4).map(|j| a[[1, 0, 2, j]] * b[[3, j, 1]]).sum();
    assert!((out[[1, 3, 2, 1]] - by_hand).abs() < 1e-12);

    // With the loss sum(C), dA[i, 0] = Σ over the five right matrices of
    // 1·Bᵀ, i.e. row sums of Σ_b B[b]; dB[b] = Σ over the two left ones of
    // Aᵀ·1.
    lazy(|k: &mut dyn FnMut(Var<f64>)| va.matmul(&vb).bind(|c| c.sum().bind(k))).backward();
    let b_row_sums = b.sum_axis(Axis(0)).sum_axis(Axis(1)); // [4]
    let a_col_sums = a.sum_axis(Axis(0)).index_axis(Axis(0), 0).sum_axis(Axis(0)); // [4]
    let da = va.grad();
    let db = vb.grad();
    assert_eq!(da.shape(), &[2, 1, 3, 4]);
    assert_eq!(db.shape(), &[5, 4, 2]);
    for ((index, &g), expected) in da
        .indexed_iter()
        .map(|(i, g)| ((i.clone(), g), b_row_sums[i[3]]))
    {
        assert!((g - expected).abs() < 1e-12, "dA at {index:?}");
    }
    for (index, &g) in db.indexed_iter() {
        assert!((g - a_col_sums[index[1]]).abs() < 1e-12, "dB at {index:?}");
    }
}

#[test]
fn vectors_against_stacks_drop_their_axis() {
    let stack = ArrayD::from_shape_fn(IxDyn(&[2, 3, 2]), |i| (i[0] * 6 + i[1] * 2 + i[2]) as f64);
    let s = Var::constant(stack);
    let v3 = Var::constant(array![1.0f64, 0.0, -1.0]);
    let v2 = Var::constant(array![1.0f64, 2.0]);
    // v·S[b] (a row times each matrix) and S[b]·v.
    let left = forward(|k| v3.matmul(&s).bind(k));
    assert_eq!(left, array![[-4.0, -4.0], [-4.0, -4.0]].into_dyn());
    let right = forward(|k| s.matmul(&v2).bind(k));
    assert_eq!(
        right,
        array![[2.0, 8.0, 14.0], [20.0, 26.0, 32.0]].into_dyn()
    );
}

/// `a · b` for stacks with a deliberately wrong backward step: the left
/// gradient takes only the first use of each left matrix, forgetting to
/// sum over the stack axes it was broadcast along.
fn matmul_without_broadcast_sum(
    a: &Var<f64>,
    b: &Var<f64>,
) -> Pending<f64, impl BackwardStep<f64> + use<>> {
    let (left, right) = (a.clone(), b.clone());
    let value = reference_matmul(a.array(), b.array());
    Pending::new(
        "wrong_matmul",
        value,
        true,
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
            // Shapes [2, 1, m, k] · [3, k, n]: the left gradient is
            // G[:, 0]·Bᵀ[0] instead of Σ_b G[:, b]·B[b]ᵀ.
            let b0 = right
                .array()
                .index_axis(Axis(0), 0)
                .into_dimensionality::<Ix2>()
                .unwrap();
            let da = ArrayD::from_shape_fn(IxDyn(left.shape()), |i| {
                let g = grad.index_axis(Axis(0), i[0]).index_axis_move(Axis(0), 0);
                let g = g.into_dimensionality::<Ix2>().unwrap();
                g.row(i[2]).dot(&b0.row(i[3]))
            });
            left.accumulate(da);
        },
    )
}

#[test]
fn a_product_that_forgets_the_broadcast_sum_fails_gradcheck() {
    let a = ArrayD::from_shape_fn(IxDyn(&[2, 1, 2, 3]), |i| {
        ((i[0] * 6 + i[2] * 3 + i[3]) as f64 * 0.7).sin()
    });
    let b = ArrayD::from_shape_fn(IxDyn(&[3, 3, 2]), |i| {
        ((i[0] * 6 + i[1] * 2 + i[2]) as f64).cos()
    });
    let weights = ArrayD::from_shape_fn(IxDyn(&[2, 3, 2, 2]), |i| 1.0 + 0.1 * i[1] as f64);
    let b = Var::constant(b);
    let mut a = Param::new(a);
    let wrong = gradcheck(&mut a, |a| {
        weighted_loss(a, &weights, |a, k| {
            matmul_without_broadcast_sum(a, &b).bind(k)
        })
    });
    assert!(!wrong.passes(1e-3), "{wrong}");
    let right = gradcheck(&mut a, |a| {
        weighted_loss(a, &weights, |a, k| a.matmul(&b).bind(k))
    });
    assert!(right.passes(TOLERANCE), "{right}");
}

#[test]
fn stacked_matmul_in_f32_matches_f64() {
    let a64 = ArrayD::from_shape_fn(IxDyn(&[3, 2, 4]), |i| {
        ((i[0] * 8 + i[1] * 4 + i[2]) as f64).sin()
    });
    let b64 = ArrayD::from_shape_fn(IxDyn(&[4, 5]), |i| ((i[0] * 5 + i[1]) as f64).cos());
    let expected = reference_matmul(&a64, &b64);
    let (a, b) = (
        Param::new(a64.mapv(|x| x as f32)),
        Param::new(b64.mapv(|x| x as f32)),
    );
    let got = forward(|k| a.matmul(&b).bind(k)).mapv(f64::from);
    assert_all_close(&got, &expected, 1e-5, "f32 matmul");
    lazy(|k: &mut dyn FnMut(Var<f32>)| a.matmul(&b).bind(|c| c.sum().bind(k))).backward();
    // d(sum)/dB = Σ_b A[b]ᵀ·1: column sums of the stacked rows of A.
    let a_sums = a64.sum_axis(Axis(0)).sum_axis(Axis(0));
    let db = b.grad();
    for ((i, j), &g) in db.into_dimensionality::<Ix2>().unwrap().indexed_iter() {
        assert!((f64::from(g) - a_sums[i]).abs() < 1e-5, "dB at [{i}, {j}]");
    }
}

#[test]
#[should_panic(
    expected = "matmul: shape mismatch between [2, 3, 4] and [5, 2]: left has 4 columns but right has 5 rows"
)]
fn stacked_inner_dimensions_must_agree() {
    let _ = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 3, 4])))
        .matmul(&Var::constant(Array2::<f64>::zeros((5, 2))));
}

#[test]
#[should_panic(
    expected = "matmul: shape mismatch between [2, 3, 4] and [3, 4, 2]: the stacks of matrices [2] and [3] do not broadcast"
)]
fn stacks_must_broadcast() {
    let _ = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 3, 4])))
        .matmul(&Var::constant(ArrayD::<f64>::zeros(IxDyn(&[3, 4, 2]))));
}

#[test]
#[should_panic(expected = "matmul: shape mismatch between [] and [2, 2, 2]")]
fn a_zero_dimensional_operand_is_refused_by_stacks_too() {
    let _ = Var::scalar(1.0f64).matmul(&Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 2, 2]))));
}

// ---------------------------------------------------------------------------
// outer and dot
// ---------------------------------------------------------------------------

fn vector_pair(same_length: bool) -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>)> {
    (1usize..=6, 1usize..=6).prop_flat_map(move |(m, n)| {
        (
            random_values(vec![m]),
            random_values(vec![if same_length { m } else { n }]),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn outer_gradient((u, v) in vector_pair(false)) {
        let weights = ArrayD::from_shape_fn(IxDyn(&[u.len(), v.len()]), |i| 1.0 + (i[0] * 7 + i[1]) as f64 * 0.3);
        let expected = ArrayD::from_shape_fn(IxDyn(&[u.len(), v.len()]), |i| u[[i[0]]] * v[[i[1]]]);
        let mut model = (Param::new(u), Param::new(v));
        let got = forward(|k| model.0.outer(&model.1).bind(k));
        assert_all_close(&got, &expected, 0.0, "outer");
        let report = gradcheck(&mut model, |(u, v)| {
            weighted_loss(&(u, v), &weights, |(u, v), k| u.outer(v).bind(k))
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn dot_gradient((u, v) in vector_pair(true)) {
        let expected: f64 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
        let mut model = (Param::new(u), Param::new(v));
        let got = forward(|k| model.0.dot(&model.1).bind(k));
        prop_assert!((got[[]] - expected).abs() < 1e-12);
        let weight = ndarray::arr0(1.5).into_dyn();
        let report = gradcheck(&mut model, |(u, v)| {
            weighted_loss(&(u, v), &weight, |(u, v), k| u.dot(v).bind(k))
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }
}

#[test]
#[should_panic(
    expected = "outer: shape mismatch between [2, 2] and [3]: operands must be vectors (1-D)"
)]
fn outer_of_a_matrix() {
    let _ =
        Var::constant(Array2::<f64>::zeros((2, 2))).outer(&Var::constant(array![1.0, 2.0, 3.0]));
}

#[test]
#[should_panic(
    expected = "dot: shape mismatch between [2] and [3]: the vectors' lengths 2 and 3 differ"
)]
fn dot_of_different_lengths() {
    let _ = Var::constant(array![1.0f64, 2.0]).dot(&Var::constant(array![1.0, 2.0, 3.0]));
}

// ---------------------------------------------------------------------------
// Cholesky, solve_spd, inverse: forward identities
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn cholesky_factor_is_lower_triangular_and_reproduces_a(a in spd()) {
        let var = Var::constant(a.clone());
        let l = forward(|k| var.cholesky().bind(k)).into_dimensionality::<Ix2>().unwrap();
        for ((i, j), &x) in l.indexed_iter() {
            if j > i {
                prop_assert_eq!(x, 0.0, "above the diagonal at [{}, {}]", i, j);
            }
            if i == j {
                prop_assert!(x > 0.0);
            }
        }
        let product = l.dot(&l.t());
        assert_all_close(&product.into_dyn(), &a.into_dyn(), 1e-12, "L·Lᵀ");
    }

    #[test]
    fn solve_spd_solves((a, b) in spd_and_rhs()) {
        let (va, vb) = (Var::constant(a.clone()), Var::constant(b.clone()));
        let x = forward(|k| va.solve_spd(&vb).bind(k));
        prop_assert_eq!(x.shape(), b.shape());
        let ax = if x.ndim() == 1 {
            a.dot(&x.clone().into_dimensionality::<ndarray::Ix1>().unwrap()).into_dyn()
        } else {
            a.dot(&x.clone().into_dimensionality::<Ix2>().unwrap()).into_dyn()
        };
        assert_all_close(&ax, &b, 1e-10, "A·x");
    }

    #[test]
    fn inverse_inverts(a in invertible()) {
        let var = Var::constant(a.clone());
        let inv = forward(|k| var.inverse().bind(k)).into_dimensionality::<Ix2>().unwrap();
        let eye = Array2::<f64>::eye(a.nrows()).into_dyn();
        assert_all_close(&a.dot(&inv).into_dyn(), &eye, 1e-12, "A·A⁻¹");
        assert_all_close(&inv.dot(&a).into_dyn(), &eye, 1e-12, "A⁻¹·A");
    }
}

#[test]
fn small_cases_by_hand() {
    // [[4, 2], [2, 5]] = [[2, 0], [1, 2]]·[[2, 1], [0, 2]].
    let a = Var::constant(array![[4.0f64, 2.0], [2.0, 5.0]]);
    assert_eq!(
        forward(|k| a.cholesky().bind(k)),
        array![[2.0, 0.0], [1.0, 2.0]].into_dyn()
    );
    // 1×1: the square root; its inverse the reciprocal.
    let one = Var::constant(array![[9.0f64]]);
    assert_eq!(
        forward(|k| one.cholesky().bind(k)),
        array![[3.0]].into_dyn()
    );
    assert_eq!(
        forward(|k| one.inverse().bind(k)),
        array![[1.0 / 9.0]].into_dyn()
    );
    // A permutation needs pivoting: its inverse is its transpose.
    let p = Var::constant(array![[0.0f64, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]);
    let expected = array![[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]].into_dyn();
    assert_eq!(forward(|k| p.inverse().bind(k)), expected);
    // Two right-hand sides at once: A·[x1 x2] = [b1 b2].
    let b = Var::constant(array![[8.0f64, 4.0], [12.0, 2.0]]);
    let x = forward(|k| a.solve_spd(&b).bind(k));
    assert_all_close(&x, &array![[1.0, 1.0], [2.0, 0.0]].into_dyn(), 1e-15, "X");
}

#[test]
fn f32_forward_and_backward_match_f64() {
    let a64 = spd_from(&array![[0.5, -1.0, 0.3], [1.2, 0.1, -0.4], [0.0, 0.7, 0.9]]);
    let b64 = array![1.0, -2.0, 0.5];
    let run = |a: &Param<f32>, b: &Param<f32>| {
        let loss = lazy(|k: &mut dyn FnMut(Var<f32>)| {
            a.cholesky().bind(|l| {
                a.inverse().bind(|inv| {
                    a.solve_spd(b).bind(|x| {
                        l.sum().bind(|s1| {
                            inv.sum().bind(|s2| {
                                x.sum().bind(|s3| (&s1 + &s2).bind(|s| (&s + &s3).bind(k)))
                            })
                        })
                    })
                })
            })
        })
        .backward();
        (
            f64::from(loss),
            a.grad().mapv(f64::from),
            b.grad().mapv(f64::from),
        )
    };
    let (a32, b32) = (
        Param::new(a64.mapv(|x| x as f32)),
        Param::new(b64.mapv(|x| x as f32)),
    );
    let (loss32, da32, db32) = run(&a32, &b32);
    // The same in f64, through the same code.
    let (a, b) = (Param::new(a64.clone()), Param::new(b64.clone()));
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        a.cholesky().bind(|l| {
            a.inverse().bind(|inv| {
                a.solve_spd(&b).bind(|x| {
                    l.sum().bind(|s1| {
                        inv.sum()
                            .bind(|s2| x.sum().bind(|s3| (&s1 + &s2).bind(|s| (&s + &s3).bind(k))))
                    })
                })
            })
        })
    })
    .backward();
    assert!((loss32 - loss).abs() < 1e-5 * loss.abs().max(1.0));
    assert_all_close(&da32, &a.grad(), 1e-4, "dA in f32");
    assert_all_close(&db32, &b.grad(), 1e-4, "db in f32");
}

// ---------------------------------------------------------------------------
// Cholesky, solve_spd, inverse: gradients
// ---------------------------------------------------------------------------

/// Weights for an `n × n` output: all different, so that every element
/// of the output has its own gradient.
fn square_weights(n: usize) -> ArrayD<f64> {
    ArrayD::from_shape_fn(IxDyn(&[n, n]), |i| {
        ((i[0] * n + i[1]) as f64 * 0.9).cos() + 0.2
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Perturbing one element of `A` perturbs its symmetric part, which is
    /// what is factorised: the symmetric gradient is the exact one.
    #[test]
    fn cholesky_gradient(a in spd()) {
        let weights = square_weights(a.nrows());
        let mut a = Param::new(a);
        let report = gradcheck(&mut a, |a| {
            weighted_loss(a, &weights, |a, k| a.cholesky().bind(k))
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    /// Through `A = M·Mᵀ + n·I`, the way an SPD matrix is usually made.
    #[test]
    fn cholesky_gradient_through_m_m_transposed(m in (1usize..=6).prop_flat_map(|n| matrix(n, n))) {
        let n = m.nrows();
        let weights = square_weights(n);
        let shift = Var::constant(Array2::<f64>::eye(n) * n as f64);
        let mut m = Param::new(m);
        let report = gradcheck(&mut m, |m| {
            weighted_loss(m, &weights, |m, k| {
                m.t().bind(|mt| {
                    m.matmul(&mt).bind(|mmt| (&mmt + &shift).bind(|a| a.cholesky().bind(&mut *k)))
                })
            })
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn solve_spd_gradient((a, b) in spd_and_rhs()) {
        let weights = b.mapv(|x| x.cos() + 0.5);
        let mut model = (Param::new(a), Param::new(b));
        let report = gradcheck(&mut model, |(a, b)| {
            weighted_loss(&(a, b), &weights, |(a, b), k| a.solve_spd(b).bind(k))
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn inverse_gradient(a in invertible()) {
        let weights = square_weights(a.nrows());
        let mut a = Param::new(a);
        let report = gradcheck(&mut a, |a| {
            weighted_loss(a, &weights, |a, k| a.inverse().bind(k))
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }
}

/// `L⁻¹` of a lower-triangular `L`, by forward substitution on `I`.
fn lower_inverse(l: &Array2<f64>) -> Array2<f64> {
    let n = l.nrows();
    let mut inv = Array2::<f64>::eye(n);
    for c in 0..n {
        for i in 0..n {
            let sum: f64 = (0..i).map(|k| l[[i, k]] * inv[[k, c]]).sum();
            inv[[i, c]] = (inv[[i, c]] - sum) / l[[i, i]];
        }
    }
    inv
}

/// The Cholesky factor with a plausible wrong backward step: `Φ` keeps
/// the lower triangle but forgets to halve the diagonal.
fn cholesky_without_halving(a: &Var<f64>) -> Pending<f64, impl BackwardStep<f64> + use<>> {
    let l = forward(|k| Var::constant(a.array().clone()).cholesky().bind(k));
    let input = a.clone();
    Pending::new(
        "wrong_cholesky",
        l,
        true,
        move |l: &ArrayD<f64>, grad: ArrayD<f64>| {
            let l = l.clone().into_dimensionality::<Ix2>().unwrap();
            let g = grad.into_dimensionality::<Ix2>().unwrap();
            let mut p = l.t().dot(&g);
            for ((i, j), x) in p.indexed_iter_mut() {
                if j > i {
                    *x = 0.0;
                }
            }
            let inv = lower_inverse(&l);
            let s = inv.t().dot(&p).dot(&inv);
            input.accumulate(((&s + &s.t()) * 0.5).into_dyn());
        },
    )
}

#[test]
fn a_cholesky_rule_that_forgets_to_halve_the_diagonal_fails_gradcheck() {
    let a = spd_from(&array![[0.5, -1.0, 0.3], [1.2, 0.1, -0.4], [0.0, 0.7, 0.9]]);
    let weights = square_weights(3);
    let mut a = Param::new(a);
    let wrong = gradcheck(&mut a, |a| {
        weighted_loss(a, &weights, |a, k| cholesky_without_halving(a).bind(k))
    });
    assert!(!wrong.passes(1e-3), "{wrong}");
    let right = gradcheck(&mut a, |a| {
        weighted_loss(a, &weights, |a, k| a.cholesky().bind(k))
    });
    assert!(right.passes(TOLERANCE), "{right}");
}

/// `S⁻¹·b` for the symmetric part `S` of a 2×2 `A`, as `solve_spd` reads
/// it, with the general solve's rule `Ā = −b̄·xᵀ`, which is wrong for it.
fn solve_unsymmetrised(a: &Var<f64>, b: &Var<f64>) -> Pending<f64, impl BackwardStep<f64> + use<>> {
    let a2 = a.array().clone().into_dimensionality::<Ix2>().unwrap();
    let a_inv = inverse_2x2(&((&a2 + &a2.t()) * 0.5));
    let b1 = b
        .array()
        .clone()
        .into_dimensionality::<ndarray::Ix1>()
        .unwrap();
    let x = a_inv.dot(&b1);
    let (input, solution) = (a.clone(), x.clone());
    Pending::new(
        "wrong_solve",
        x.into_dyn(),
        true,
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
            let g = grad.into_dimensionality::<ndarray::Ix1>().unwrap();
            let bg = a_inv.t().dot(&g);
            let outer = Array2::from_shape_fn((2, 2), |(i, j)| -bg[i] * solution[j]);
            input.accumulate(outer.into_dyn());
        },
    )
}

#[test]
fn an_unsymmetrised_solve_gradient_fails_gradcheck() {
    let a = spd_from(&array![[0.5, -1.0], [1.2, 0.1]]);
    let b = Var::constant(array![1.0, -2.0]);
    let weights = array![1.0, 0.5].into_dyn();
    let mut a = Param::new(a);
    let wrong = gradcheck(&mut a, |a| {
        weighted_loss(a, &weights, |a, k| solve_unsymmetrised(a, &b).bind(k))
    });
    assert!(!wrong.passes(1e-3), "{wrong}");
    let right = gradcheck(&mut a, |a| {
        weighted_loss(a, &weights, |a, k| a.solve_spd(&b).bind(k))
    });
    assert!(right.passes(TOLERANCE), "{right}");
}

fn inverse_2x2(a: &Array2<f64>) -> Array2<f64> {
    let det = a[[0, 0]] * a[[1, 1]] - a[[0, 1]] * a[[1, 0]];
    array![[a[[1, 1]], -a[[0, 1]]], [-a[[1, 0]], a[[0, 0]]]] / det
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[test]
#[should_panic(expected = "cholesky: expected a square matrix, got shape [2, 3]")]
fn cholesky_of_a_non_square_matrix() {
    let _ = Var::constant(Array2::<f64>::zeros((2, 3))).cholesky();
}

#[test]
#[should_panic(
    expected = "cholesky: the matrix of shape [2, 2] is not positive definite: pivot 1 is -3"
)]
fn cholesky_of_an_indefinite_matrix() {
    // 1 − 2² = −3 is left at the second pivot.
    let _ = Var::constant(array![[1.0f64, 2.0], [2.0, 1.0]]).cholesky();
}

#[test]
#[should_panic(
    expected = "solve_spd: the matrix of shape [2, 2] is not positive definite: pivot 0 is 0"
)]
fn solve_spd_with_a_singular_matrix() {
    let _ = Var::constant(array![[0.0f64, 0.0], [0.0, 1.0]])
        .solve_spd(&Var::constant(array![1.0, 1.0]));
}

#[test]
#[should_panic(
    expected = "solve_spd: shape mismatch between [2, 2] and [3]: the right-hand side must be a vector of 2 or a matrix of 2 rows"
)]
fn solve_spd_with_a_mismatched_right_hand_side() {
    let _ = Var::constant(Array2::<f64>::eye(2)).solve_spd(&Var::constant(array![1.0, 2.0, 3.0]));
}

#[test]
#[should_panic(
    expected = "inverse: the matrix of shape [2, 2] is singular: column 1 has no nonzero pivot"
)]
fn inverse_of_a_singular_matrix() {
    let _ = Var::constant(array![[1.0f64, 2.0], [2.0, 4.0]]).inverse();
}

#[test]
#[should_panic(expected = "inverse: expected a square matrix, got shape [3]")]
fn inverse_of_a_vector() {
    let _ = Var::constant(array![1.0f64, 2.0, 3.0]).inverse();
}

// ---------------------------------------------------------------------------
// Empty dimensions and other layouts
// ---------------------------------------------------------------------------

#[test]
fn empty_dimensions_give_empty_or_zero_results() {
    // An empty inner dimension: sums of nothing, so zeros.
    let a = Param::new(ArrayD::<f64>::zeros(IxDyn(&[2, 3, 0])));
    let b = Param::new(ArrayD::<f64>::zeros(IxDyn(&[0, 2])));
    let out = forward(|k| a.matmul(&b).bind(k));
    assert_eq!(out, ArrayD::<f64>::zeros(IxDyn(&[2, 3, 2])));
    lazy(|k: &mut dyn FnMut(Var<f64>)| a.matmul(&b).bind(|c| c.sum().bind(k))).backward();
    assert_eq!(a.grad().shape(), &[2, 3, 0]);
    // An empty stack: no products at all.
    let a = Param::new(ArrayD::<f64>::ones(IxDyn(&[0, 2, 3])));
    let b = Param::new(ArrayD::<f64>::ones(IxDyn(&[3, 2])));
    let out = forward(|k| a.matmul(&b).bind(k));
    assert_eq!(out.shape(), &[0, 2, 2]);
    lazy(|k: &mut dyn FnMut(Var<f64>)| a.matmul(&b).bind(|c| c.sum().bind(k))).backward();
    assert_eq!(b.grad(), ArrayD::<f64>::zeros(IxDyn(&[3, 2])));
    // A 0×0 matrix factorises, solves and inverts to 0×0.
    let empty = Var::constant(Array2::<f64>::zeros((0, 0)));
    assert_eq!(forward(|k| empty.cholesky().bind(k)).shape(), &[0, 0]);
    assert_eq!(forward(|k| empty.inverse().bind(k)).shape(), &[0, 0]);
    let rhs = Var::constant(ndarray::Array1::<f64>::zeros(0));
    assert_eq!(forward(|k| empty.solve_spd(&rhs).bind(k)).shape(), &[0]);
}

#[test]
fn stacks_in_other_layouts_give_the_same_values_and_gradients() {
    // Operands whose axes are permuted (not in standard layout): values
    // and gradients as for their standard-layout copies.
    let a = ArrayD::from_shape_fn(IxDyn(&[3, 2, 4]), |i| {
        ((i[0] * 8 + i[1] * 4 + i[2]) as f64).sin()
    })
    .permuted_axes(IxDyn(&[1, 0, 2]));
    let b = ArrayD::from_shape_fn(IxDyn(&[2, 4]), |i| ((i[0] * 4 + i[1]) as f64).cos() + 0.5)
        .reversed_axes();
    assert!(!a.is_standard_layout() && !b.is_standard_layout());
    let expected = reference_matmul(&a, &b);
    let weights = expected.mapv(|x| x.cos());
    let (va, vb) = (Var::constant(a.clone()), Var::constant(b.clone()));
    assert_all_close(
        &forward(|k| va.matmul(&vb).bind(k)),
        &expected,
        1e-12,
        "matmul",
    );
    let mut model = (Param::new(a), Param::new(b));
    let report = gradcheck(&mut model, |(a, b)| {
        weighted_loss(&(a, b), &weights, |(a, b), k| a.matmul(b).bind(k))
    });
    assert!(report.passes(TOLERANCE), "{report}");
}
