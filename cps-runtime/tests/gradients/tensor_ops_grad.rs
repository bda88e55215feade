//! Reductions, matrix products and shape operations: forward values against
//! direct ndarray computations, gradients against central finite
//! differences (`gradcheck`, relative error under 1e-6) over random shapes
//! and values, and the messages of every shape error.

use cps_runtime::*;
use ndarray::{Array2, ArrayD, Axis, Ix2, IxDyn, Slice, array};
use proptest::prelude::*;

use crate::support::{random_values, weighted_loss};

const TOLERANCE: f64 = 1e-6;

/// The output of `op` on the model, run forward only.
fn forward<M>(model: &M, op: impl Fn(&M, &mut dyn FnMut(Var<f64>))) -> ArrayD<f64> {
    let mut out = None;
    lazy(|k: &mut dyn FnMut(Var<f64>)| op(model, k))
        .bind(|y: Var<f64>| out = Some(y.array().clone()));
    out.expect("the operation called its continuation")
}

fn shape(ranks: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<usize>> {
    ranks.prop_flat_map(|rank| prop::collection::vec(1usize..=5, rank))
}

/// A tensor of random shape with the given ranks.
fn tensor(ranks: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = ArrayD<f64>> {
    shape(ranks).prop_flat_map(random_values)
}

/// A tensor with a valid axis of it.
fn tensor_and_axis() -> impl Strategy<Value = (ArrayD<f64>, usize)> {
    tensor(1..=3).prop_flat_map(|x| {
        let rank = x.ndim();
        (Just(x), 0..rank)
    })
}

/// Weights of the same shape as `shape`, for `weighted_sum`.
fn weights_like(shape: &[usize], seed: u64) -> ArrayD<f64> {
    // A fixed, irregular pattern: distinct weights, no randomness needed.
    let len: usize = shape.iter().product();
    let v = (0..len)
        .map(|i| ((i as f64 + 1.0) * 0.754_877_666 + seed as f64 * 0.31).sin() * 1.5 + 0.1)
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("length matches")
}

fn assert_close(actual: &ArrayD<f64>, expected: &ArrayD<f64>) {
    assert_eq!(actual.shape(), expected.shape());
    for (a, e) in actual.iter().zip(expected) {
        assert!(
            (a - e).abs() <= 1e-12 * e.abs().max(1.0),
            "{actual} != {expected}"
        );
    }
}

/// Shapes of a matrix product's operands: `m × k · k × n`.
fn product_dims() -> impl Strategy<Value = (usize, usize, usize)> {
    (1usize..=5, 1usize..=5, 1usize..=5)
}

fn product_operands(
    left_vector: bool,
    right_vector: bool,
) -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>)> {
    product_dims().prop_flat_map(move |(m, k, n)| {
        let left = if left_vector { vec![k] } else { vec![m, k] };
        let right = if right_vector { vec![k] } else { vec![k, n] };
        (random_values(left), random_values(right))
    })
}

/// ndarray's own product of two 1-D or 2-D arrays.
fn reference_matmul(a: &ArrayD<f64>, b: &ArrayD<f64>) -> ArrayD<f64> {
    ndarray::linalg::Dot::dot(&**a, &**b)
}

/// Checks one form of `matmul`: forward against ndarray, and the gradients
/// of both operands at once.
fn check_matmul_form(a: ArrayD<f64>, b: ArrayD<f64>) -> Result<(), TestCaseError> {
    let expected = reference_matmul(&a, &b);
    let weights = weights_like(expected.shape(), 1);
    let mut model = (Param::new(a), Param::new(b));
    let product =
        |(a, b): &(Param<f64>, Param<f64>), k: &mut dyn FnMut(Var<f64>)| a.matmul(b).bind(k);
    assert_close(&forward(&model, product), &expected);
    let report = gradcheck(&mut model, |m| weighted_loss(m, &weights, product));
    prop_assert!(report.passes(TOLERANCE), "{}", report);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn sum_and_mean_of_all_elements(x in tensor(0..=3)) {
        let expected_sum = x.sum();
        let expected_mean = expected_sum / x.len() as f64;
        let mut p = Param::new(x);
        let total = |p: &Param<f64>| lazy(|k: &mut dyn FnMut(Var<f64>)| p.sum().bind(&mut *k)).backward();
        let mean = |p: &Param<f64>| lazy(|k: &mut dyn FnMut(Var<f64>)| p.mean().bind(&mut *k)).backward();
        prop_assert!((total(&p) - expected_sum).abs() < 1e-12);
        prop_assert!((mean(&p) - expected_mean).abs() < 1e-12);
        let report = gradcheck(&mut p, total);
        prop_assert!(report.passes(TOLERANCE), "{}", report);
        let report = gradcheck(&mut p, mean);
        prop_assert!(report.passes(TOLERANCE), "{}", report);
        // The gradients themselves: ones, and 1/n.
        total(&p);
        prop_assert!(p.grad().iter().all(|&g| g == 1.0));
        p.zero_grad();
        mean(&p);
        prop_assert!(p.grad().iter().all(|&g| (g - 1.0 / p.len() as f64).abs() < 1e-15));
    }

    #[test]
    fn sum_and_mean_along_an_axis((x, axis) in tensor_and_axis()) {
        let expected_sum = x.sum_axis(Axis(axis));
        let expected_mean = x.mean_axis(Axis(axis)).expect("no empty axis");
        let weights = weights_like(expected_sum.shape(), 2);
        let mut p = Param::new(x);
        let sum_op = |p: &Param<f64>, k: &mut dyn FnMut(Var<f64>)| p.sum_axis(axis).bind(k);
        let mean_op = |p: &Param<f64>, k: &mut dyn FnMut(Var<f64>)| p.mean_axis(axis).bind(k);
        assert_close(&forward(&p, sum_op), &expected_sum);
        assert_close(&forward(&p, mean_op), &expected_mean);
        let report = gradcheck(&mut p, |p| weighted_loss(p, &weights, sum_op));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
        let report = gradcheck(&mut p, |p| weighted_loss(p, &weights, mean_op));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    #[test]
    fn matmul_matrix_matrix((a, b) in product_operands(false, false)) {
        check_matmul_form(a, b)?;
    }

    #[test]
    fn matmul_matrix_vector((a, b) in product_operands(false, true)) {
        check_matmul_form(a, b)?;
    }

    #[test]
    fn matmul_vector_matrix((a, b) in product_operands(true, false)) {
        check_matmul_form(a, b)?;
    }

    #[test]
    fn matmul_vector_vector((a, b) in product_operands(true, true)) {
        check_matmul_form(a, b)?;
    }

    /// The same parameter on both sides: both gradients add into one buffer.
    #[test]
    fn matmul_of_a_matrix_with_itself(x in (1usize..=5).prop_flat_map(|n| random_values(vec![n, n]))) {
        let expected = reference_matmul(&x, &x);
        let weights = weights_like(expected.shape(), 3);
        let mut p = Param::new(x);
        let square = |p: &Param<f64>, k: &mut dyn FnMut(Var<f64>)| p.matmul(p).bind(k);
        assert_close(&forward(&p, square), &expected);
        let report = gradcheck(&mut p, |p| weighted_loss(p, &weights, square));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    /// Only one side is trainable; the other is data.
    #[test]
    fn matmul_with_a_constant_operand((a, b) in product_operands(false, false)) {
        let weights = weights_like(reference_matmul(&a, &b).shape(), 4);
        let data = Var::constant(a);
        let mut w = Param::new(b);
        let report = gradcheck(&mut w, |w| {
            weighted_loss(w, &weights, |w, k| data.matmul(w).bind(k))
        });
        prop_assert!(report.passes(TOLERANCE), "{}", report);
        prop_assert!(data.grad().is_none());
    }

    /// `x·wᵀ` for one example (a vector) and for a batch, against
    /// ndarray; the weight's gradient is a deferred one for a parameter,
    /// an immediate one for a computed value (`w·1`, a scaled copy).
    #[test]
    fn linear_for_one_example_and_a_batch(
        (x, w, batch) in (product_dims(), any::<bool>()).prop_flat_map(|((n, k, m), batch)| {
            let x = if batch { vec![n, k] } else { vec![k] };
            (random_values(x), random_values(vec![m, k]), Just(batch))
        })
    ) {
        let w2 = w.view().into_dimensionality::<Ix2>().unwrap();
        let expected = if batch {
            x.view().into_dimensionality::<Ix2>().unwrap().dot(&w2.t()).into_dyn()
        } else {
            w2.dot(&x.view().into_dimensionality::<ndarray::Ix1>().unwrap()).into_dyn()
        };
        let weights = weights_like(expected.shape(), 9);
        let mut model = (Param::new(x), Param::new(w));
        let op = |(x, w): &(Param<f64>, Param<f64>), k: &mut dyn FnMut(Var<f64>)| x.linear(w).bind(k);
        assert_close(&forward(&model, op), &expected);
        let report = gradcheck(&mut model, |m| weighted_loss(m, &weights, op));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
        // Through a computed weight (not deferred).
        let through_copy = |(x, w): &(Param<f64>, Param<f64>), k: &mut dyn FnMut(Var<f64>)| {
            (w * 2.0).bind(|w2| x.linear(&w2).bind(&mut *k))
        };
        let report = gradcheck(&mut model, |m| weighted_loss(m, &weights, through_copy));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    #[test]
    fn transpose_of_a_matrix(x in tensor(2..=2)) {
        let expected = x.t().to_owned();
        let weights = weights_like(expected.shape(), 5);
        let mut p = Param::new(x);
        let transpose = |p: &Param<f64>, k: &mut dyn FnMut(Var<f64>)| p.t().bind(k);
        assert_close(&forward(&p, transpose), &expected);
        let report = gradcheck(&mut p, |p| weighted_loss(p, &weights, transpose));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    /// `(a·bᵀ)ᵀ·c`: products of transposes, and a transpose's gradient
    /// flowing into a product's.
    #[test]
    fn products_of_transposes(
        (a, b, c) in product_dims().prop_flat_map(|(m, k, n)| (random_values(vec![m, k]), random_values(vec![n, k]), random_values(vec![m, n])))
    ) {
        let expected = a.view().into_dimensionality::<Ix2>().unwrap()
            .dot(&b.view().into_dimensionality::<Ix2>().unwrap().t())
            .t()
            .dot(&c.view().into_dimensionality::<Ix2>().unwrap())
            .into_dyn();
        let weights = weights_like(expected.shape(), 6);
        let mut model = vec![Param::new(a), Param::new(b), Param::new(c)];
        let op = |m: &Vec<Param<f64>>, k: &mut dyn FnMut(Var<f64>)| {
            m[1].t().bind(|bt| m[0].matmul(&bt).bind(|abt| abt.t().bind(|x| x.matmul(&m[2]).bind(k))))
        };
        assert_close(&forward(&model, op), &expected);
        let report = gradcheck(&mut model, |m| weighted_loss(m, &weights, op));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    #[test]
    fn reshape_to_another_arrangement(x in tensor(1..=3)) {
        // Reversing the shape is always valid and, for rank > 1 with
        // distinct dims, a genuinely different arrangement.
        let target: Vec<usize> = x.shape().iter().rev().copied().collect();
        let expected = x.to_shape(IxDyn(&target)).unwrap().into_owned();
        let weights = weights_like(&target, 7);
        let mut p = Param::new(x);
        let op = |p: &Param<f64>, k: &mut dyn FnMut(Var<f64>)| p.reshape(&target).bind(k);
        assert_close(&forward(&p, op), &expected);
        let report = gradcheck(&mut p, |p| weighted_loss(p, &weights, op));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    /// Reshaping a transpose: the gradient arriving at the reshape is in
    /// standard layout, the one leaving the transpose is not.
    #[test]
    fn reshape_after_transpose(x in tensor(2..=2)) {
        let n = x.len();
        let expected = x.t().iter().copied().collect::<Vec<_>>();
        let weights = weights_like(&[n], 8);
        let mut p = Param::new(x);
        let op = |p: &Param<f64>, k: &mut dyn FnMut(Var<f64>)| p.t().bind(|t| t.reshape(&[n]).bind(k));
        prop_assert_eq!(forward(&p, op).iter().copied().collect::<Vec<_>>(), expected);
        let report = gradcheck(&mut p, |p| weighted_loss(p, &weights, op));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    #[test]
    fn concat_along_each_axis(
        (parts, axis) in (shape(1..=3), 2usize..=3)
            .prop_flat_map(|(base, count)| {
                let rank = base.len();
                (Just(base), Just(count), 0..rank)
            })
            .prop_flat_map(|(base, count, axis)| {
                let parts = prop::collection::vec(1usize..=4, count).prop_flat_map(move |lengths| {
                    lengths
                        .into_iter()
                        .map(|len| {
                            let mut s = base.clone();
                            s[axis] = len;
                            random_values(s)
                        })
                        .collect::<Vec<_>>()
                });
                (parts, Just(axis))
            })
    ) {
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        let expected = ndarray::concatenate(Axis(axis), &views).unwrap();
        let weights = weights_like(expected.shape(), 9);
        let mut model: Vec<Param<f64>> = parts.into_iter().map(Param::new).collect();
        let op = |m: &Vec<Param<f64>>, k: &mut dyn FnMut(Var<f64>)| {
            let vars: Vec<&Var<f64>> = m.iter().map(|p| p.var()).collect();
            concat(&vars, axis).bind(k)
        };
        assert_close(&forward(&model, op), &expected);
        let report = gradcheck(&mut model, |m| weighted_loss(m, &weights, op));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    /// A constant part between trainable ones: the offsets of the others
    /// still line up.
    #[test]
    fn concat_with_a_constant_part(
        (a, b, c) in (1usize..=5).prop_flat_map(|rows| (random_values(vec![rows, 2]), random_values(vec![rows, 3]), random_values(vec![rows, 1])))
    ) {
        let expected = ndarray::concatenate(Axis(1), &[a.view(), b.view(), c.view()]).unwrap();
        let weights = weights_like(expected.shape(), 10);
        let middle = Var::constant(b);
        let mut model = (Param::new(a), Param::new(c));
        let op = |(a, c): &(Param<f64>, Param<f64>), k: &mut dyn FnMut(Var<f64>)| {
            Var::concat(&[a.var(), &middle, c.var()], 1).bind(k)
        };
        assert_close(&forward(&model, op), &expected);
        let report = gradcheck(&mut model, |m| weighted_loss(m, &weights, op));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    /// A part that is not in standard layout (a column-major parameter)
    /// takes the general path, along either axis, values and gradients.
    #[test]
    fn concat_with_a_column_major_part(
        (a, b, axis) in (1usize..=4, 1usize..=4, 0usize..=1).prop_flat_map(|(rows, cols, axis)| {
            (random_values(vec![rows, cols]), random_values(vec![cols, rows]), Just(axis))
        })
    ) {
        // `b` transposed in place: the same shape as `a`, column-major.
        let b = b.reversed_axes();
        prop_assert!(!b.is_standard_layout() || b.len() <= 1 || b.shape().contains(&1));
        let expected = ndarray::concatenate(Axis(axis), &[a.view(), b.view()]).unwrap();
        let weights = weights_like(expected.shape(), 11);
        let mut model = (Param::new(a), Param::new(b));
        let op = |(a, b): &(Param<f64>, Param<f64>), k: &mut dyn FnMut(Var<f64>)| {
            Var::concat(&[a.var(), b.var()], axis).bind(k)
        };
        assert_close(&forward(&model, op), &expected);
        let report = gradcheck(&mut model, |m| weighted_loss(m, &weights, op));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    #[test]
    fn slice_along_an_axis(
        (x, axis, start, end) in tensor_and_axis().prop_flat_map(|(x, axis)| {
            let len = x.shape()[axis];
            (Just(x), Just(axis), 0..=len).prop_flat_map(move |(x, axis, start)| {
                (Just(x), Just(axis), Just(start), start..=len)
            })
        })
    ) {
        let expected = x.slice_axis(Axis(axis), Slice::from(start..end)).to_owned();
        let weights = weights_like(expected.shape(), 11);
        let mut p = Param::new(x);
        let op = |p: &Param<f64>, k: &mut dyn FnMut(Var<f64>)| p.slice(axis, start, end).bind(k);
        assert_close(&forward(&p, op), &expected);
        if !expected.is_empty() {
            let report = gradcheck(&mut p, |p| weighted_loss(p, &weights, op));
            prop_assert!(report.passes(TOLERANCE), "{}", report);
        }
    }

    /// Two slices of one tensor along one axis (overlapping or not): the
    /// first gradient to arrive makes the buffer, the second adds into it.
    #[test]
    fn two_slices_of_one_tensor(
        (x, axis, a, b) in tensor_and_axis().prop_flat_map(|(x, axis)| {
            let len = x.shape()[axis];
            let range = (0..=len).prop_flat_map(move |start| (Just(start), start..=len));
            (Just(x), Just(axis), range.clone(), range)
        })
    ) {
        let part = |(start, end): (usize, usize)| x.slice_axis(Axis(axis), Slice::from(start..end)).to_owned();
        let (first, second) = (part(a), part(b));
        let expected = ndarray::concatenate(Axis(axis), &[first.view(), second.view()]).unwrap();
        let weights = weights_like(expected.shape(), 15);
        let mut p = Param::new(x.clone());
        let op = |p: &Param<f64>, k: &mut dyn FnMut(Var<f64>)| {
            p.slice(axis, a.0, a.1).bind(|s1| {
                p.slice(axis, b.0, b.1).bind(|s2| concat(&[&s1, &s2], axis).bind(k))
            })
        };
        assert_close(&forward(&p, op), &expected);
        if !expected.is_empty() {
            let report = gradcheck(&mut p, |p| weighted_loss(p, &weights, op));
            prop_assert!(report.passes(TOLERANCE), "{}", report);
        }
    }

    #[test]
    fn rows_gather_and_scatter(
        (table, indices) in (1usize..=5, 1usize..=5).prop_flat_map(|(rows, cols)| {
            (random_values(vec![rows, cols]), prop::collection::vec(0..rows, 1..=6))
        })
    ) {
        let expected = table.select(Axis(0), &indices);
        let weights = weights_like(expected.shape(), 12);
        let mut p = Param::new(table);
        let op = |p: &Param<f64>, k: &mut dyn FnMut(Var<f64>)| p.rows(&indices).bind(k);
        assert_close(&forward(&p, op), &expected);
        let report = gradcheck(&mut p, |p| weighted_loss(p, &weights, op));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    /// Rows of several tables, some trainable and one constant, some
    /// column-major: the rows of their stack, and each part's gradient.
    #[test]
    fn rows_of_several_tables(
        (tables, indices, constant, column_major) in (1usize..=4, 1usize..=4)
            .prop_flat_map(|(count, cols)| {
                (
                    prop::collection::vec((1usize..=3).prop_flat_map(move |rows| random_values(vec![rows, cols])), count),
                    Just(count),
                )
            })
            .prop_flat_map(|(tables, count)| {
                let total: usize = tables.iter().map(|t| t.shape()[0]).sum();
                (Just(tables), prop::collection::vec(0..total, 1..=7), 0..count, 0..count)
            })
    ) {
        let views: Vec<_> = tables.iter().map(|t| t.view()).collect();
        let expected = ndarray::concatenate(Axis(0), &views).unwrap().select(Axis(0), &indices);
        let weights = weights_like(expected.shape(), 14);
        let fixed = Var::constant(tables[constant].clone());
        let mut model: Vec<Param<f64>> = tables
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                if i == column_major {
                    // The same values, stored column-major.
                    let mut c = Array2::zeros((t.shape()[1], t.shape()[0])).reversed_axes();
                    c.assign(&t.view().into_dimensionality::<Ix2>().unwrap());
                    Param::new(c)
                } else {
                    Param::new(t)
                }
            })
            .collect();
        let op = |m: &Vec<Param<f64>>, k: &mut dyn FnMut(Var<f64>)| {
            let parts: Vec<&Var<f64>> = m
                .iter()
                .enumerate()
                .map(|(i, p)| if i == constant { &fixed } else { p.var() })
                .collect();
            rows_of(&parts, &indices).bind(k)
        };
        assert_close(&forward(&model, op), &expected);
        let report = gradcheck(&mut model, |m| weighted_loss(m, &weights, op));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    /// A column-major table takes the row-by-row path: the same rows and
    /// gradients.
    #[test]
    fn rows_of_a_column_major_table(
        (table, indices) in (1usize..=5, 1usize..=5).prop_flat_map(|(rows, cols)| {
            (random_values(vec![cols, rows]), prop::collection::vec(0..rows, 1..=6))
        })
    ) {
        let table = table.reversed_axes();
        let expected = table.select(Axis(0), &indices);
        let weights = weights_like(expected.shape(), 13);
        let mut p = Param::new(table);
        let op = |p: &Param<f64>, k: &mut dyn FnMut(Var<f64>)| p.rows(&indices).bind(k);
        assert_close(&forward(&p, op), &expected);
        let report = gradcheck(&mut p, |p| weighted_loss(p, &weights, op));
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    /// Every operation of this file in one computation: the gradients of
    /// each must compose with the others'.
    #[test]
    fn a_chain_of_all_operations(
        (table, w, indices) in (2usize..=5, 1usize..=4, 1usize..=4).prop_flat_map(|(rows, cols, out)| {
            (random_values(vec![rows, cols]), random_values(vec![cols, out]), prop::collection::vec(0..rows, 2..=5))
        })
    ) {
        let mut model = (Param::new(table), Param::new(w));
        let loss = |(table, w): &(Param<f64>, Param<f64>)| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                table.rows(&indices).bind(|x| {
                    x.matmul(w).bind(|h| {
                        h.t().bind(|ht| {
                            ht.matmul(&h).bind(|gram| {
                                let n = gram.len();
                                gram.reshape(&[n]).bind(|flat| {
                                    flat.slice(0, 1, n).bind(|tail| {
                                        concat(&[&tail, &flat], 0).bind(|joined| {
                                            joined.matmul(&joined).bind(|s| {
                                                h.mean_axis(0).bind(|m| {
                                                    m.sum().bind(|ms| {
                                                        s.reshape(&[1]).bind(|s1| {
                                                            ms.reshape(&[1]).bind(|m1| {
                                                                concat(&[&s1, &m1], 0).bind(|pair| {
                                                                    pair.sum_axis(0).bind(k)
                                                                })
                                                            })
                                                        })
                                                    })
                                                })
                                            })
                                        })
                                    })
                                })
                            })
                        })
                    })
                })
            })
            .backward()
        };
        let report = gradcheck(&mut model, loss);
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }
}

#[test]
fn matmul_forms_on_larger_shapes_match_ndarray() {
    // Shapes that take each kernel path: single output row, single output
    // column, a single element, and a general product.
    let pattern = |r: usize, c: usize, seed: u64| {
        weights_like(&[r, c], seed)
            .into_dimensionality::<Ix2>()
            .unwrap()
    };
    for (m, k, n) in [(1, 17, 9), (9, 17, 1), (1, 17, 1), (7, 13, 11), (16, 1, 16)] {
        let a = pattern(m, k, 20);
        let b = pattern(k, n, 21);
        let c = Var::constant(a.clone()).matmul(&Var::constant(b.clone()));
        assert_close(c.array(), &a.dot(&b).into_dyn());
    }
}

#[test]
fn matmul_gradients_have_the_expected_values() {
    // y = x·W with x = [1, 2], W = [[1, 2, 3], [4, 5, 6]], loss = sum(y):
    // dW[i][j] = x[i] (every column gets the same row), dx[i] = sum_j W[i][j].
    let x = Param::new(array![1.0f64, 2.0]);
    let w = Param::new(array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let loss =
        lazy(|k: &mut dyn FnMut(Var<f64>)| x.matmul(&w).bind(|y| y.sum().bind(&mut *k))).backward();
    assert_eq!(loss, 9.0 + 12.0 + 15.0);
    assert_eq!(
        w.grad(),
        array![[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]].into_dyn()
    );
    assert_eq!(x.grad(), array![6.0, 15.0].into_dyn());
}

#[test]
fn gradients_accumulate_across_uses() {
    // Two uses of the same weight in one computation and across two runs.
    let w = Param::new(array![[1.0f64, 2.0], [3.0, 4.0]]);
    let x = Var::constant(array![1.0f64, 1.0]);
    let run = || {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            x.matmul(&w)
                .bind(|a| a.matmul(&w).bind(|b| b.sum().bind(&mut *k)))
        })
        .backward()
    };
    run();
    let once = w.grad();
    run();
    assert_close(&w.grad(), &(&once * 2.0));
}

#[test]
fn transpose_of_a_vector_is_the_vector() {
    let v = Param::new(array![1.0f64, -2.0, 3.0]);
    let weights = array![0.5, 0.25, -1.0].into_dyn();
    let loss = weighted_loss(&v, &weights, |v, k| v.t().bind(k));
    assert_eq!(loss, 0.5 - 0.5 - 3.0);
    assert_eq!(v.grad(), weights);
}

#[test]
fn rows_with_repeated_indices_add_up() {
    let table = Param::new(array![[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    let weights = array![[1.0, 10.0], [100.0, 1000.0], [0.5, 0.25], [2.0, 3.0]].into_dyn();
    weighted_loss(&table, &weights, |t, k| t.rows(&[2, 0, 2, 2]).bind(k));
    // Row 2 collects result rows 0, 2 and 3; row 1 is never read.
    assert_eq!(
        table.grad(),
        array![[100.0, 1000.0], [0.0, 0.0], [3.5, 13.25]].into_dyn()
    );
}

#[test]
fn rows_of_a_frozen_table_do_no_gradient_work() {
    let mut table = Param::new(Array2::<f64>::ones((1000, 8)));
    table.set_trainable(false);
    let w = Param::new(Array2::<f64>::eye(8));
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        table.rows(&[3, 999, 3]).bind(|x| {
            assert!(
                !x.requires_grad(),
                "a lookup in a frozen table needs no gradient"
            );
            x.matmul(&w).bind(|y| y.sum().bind(&mut *k))
        })
    })
    .backward();
    assert_eq!(loss, 24.0);
    assert!(
        table.var().grad().is_none(),
        "no gradient buffer was made for the table"
    );
    assert_eq!(w.grad(), ArrayD::from_elem(IxDyn(&[8, 8]), 3.0));
}

/// A part joined more than once (first and again later, along the first
/// axis, where the first part may take the gradient's buffer over): every
/// use adds its share.
#[test]
fn concat_of_a_part_with_itself_adds_both_gradients() {
    let a = Param::new(array![[1.0f64, 2.0], [3.0, 4.0]]);
    let b = Param::new(array![[5.0f64, 6.0]]);
    let weights = array![
        [1.0f64, 2.0],
        [3.0, 4.0],
        [5.0, 6.0],
        [7.0, 8.0],
        [9.0, 10.0]
    ];
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        concat(&[a.var(), b.var(), a.var()], 0)
            .bind(|y| (&y * &Var::constant(weights.clone())).bind(|w| w.sum().bind(&mut *k)))
    })
    .backward();
    assert_eq!(
        a.grad(),
        array![[1.0 + 7.0, 2.0 + 8.0], [3.0 + 9.0, 4.0 + 10.0]].into_dyn()
    );
    assert_eq!(b.grad(), array![[5.0, 6.0]].into_dyn());
}

#[test]
fn results_of_constant_inputs_need_no_gradient() {
    let a = Var::constant(array![[1.0f64, 2.0], [3.0, 4.0]]);
    let v = Var::constant(array![1.0f64, 2.0]);
    assert!(!a.matmul(&a).array().is_empty());
    let mut flags = Vec::new();
    a.matmul(&v).bind(|y| flags.push(y.requires_grad()));
    a.t().bind(|y| flags.push(y.requires_grad()));
    a.reshape(&[4]).bind(|y| flags.push(y.requires_grad()));
    a.slice(0, 0, 1).bind(|y| flags.push(y.requires_grad()));
    concat(&[&a, &a], 1).bind(|y| flags.push(y.requires_grad()));
    a.sum_axis(1).bind(|y| flags.push(y.requires_grad()));
    a.mean().bind(|y| flags.push(y.requires_grad()));
    assert_eq!(flags, vec![false; 7]);
}

#[test]
fn sum_axis_of_a_matrix_has_the_expected_values() {
    let x = Param::new(array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let weights = array![1.0, 2.0].into_dyn();
    let loss = weighted_loss(&x, &weights, |x, k| x.mean_axis(1).bind(k));
    // Row means 2 and 5; each element of row i gets weight_i / 3.
    assert!((loss - (2.0 + 10.0)).abs() < 1e-12);
    let third = 1.0 / 3.0;
    assert_close(
        &x.grad(),
        &array![
            [third, third, third],
            [2.0 * third, 2.0 * third, 2.0 * third]
        ]
        .into_dyn(),
    );
}

// ---- shape errors ----

fn m(rows: usize, cols: usize) -> Var<f64> {
    Var::constant(Array2::zeros((rows, cols)))
}

fn v(len: usize) -> Var<f64> {
    Var::constant(ndarray::Array1::zeros(len))
}

#[test]
#[should_panic(
    expected = "matmul: shape mismatch between [2, 3] and [4, 5]: left has 3 columns but right has 4 rows"
)]
fn matmul_matrix_matrix_mismatch() {
    let _ = m(2, 3).matmul(&m(4, 5));
}

#[test]
#[should_panic(
    expected = "matmul: shape mismatch between [2, 3] and [4]: left has 3 columns but right vector has 4 elements"
)]
fn matmul_matrix_vector_mismatch() {
    let _ = m(2, 3).matmul(&v(4));
}

#[test]
#[should_panic(
    expected = "matmul: shape mismatch between [3] and [4, 5]: left vector has 3 elements but right has 4 rows"
)]
fn matmul_vector_matrix_mismatch() {
    let _ = v(3).matmul(&m(4, 5));
}

#[test]
#[should_panic(
    expected = "matmul: shape mismatch between [3] and [4]: left vector has 3 elements but right vector has 4 elements"
)]
fn matmul_vector_vector_mismatch() {
    let _ = v(3).matmul(&v(4));
}

#[test]
#[should_panic(
    expected = "matmul: shape mismatch between [2, 3, 4] and [3, 4, 2]: the stacks of matrices [2] and [3] do not broadcast"
)]
fn matmul_of_stacks_that_do_not_broadcast() {
    let _ = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 3, 4])))
        .matmul(&Var::constant(ArrayD::<f64>::zeros(IxDyn(&[3, 4, 2]))));
}

#[test]
#[should_panic(
    expected = "linear: shape mismatch between [2, 3] and [5, 4]: the input has 3 features but the weight has 4 columns"
)]
fn linear_with_mismatched_features() {
    let _ = m(2, 3).linear(&m(5, 4));
}

#[test]
#[should_panic(
    expected = "linear: shape mismatch between [3] and [3]: the input must be a vector or a matrix and the weight a matrix"
)]
fn linear_with_a_vector_weight() {
    let _ = v(3).linear(&v(3));
}

#[test]
#[should_panic(
    expected = "matmul: shape mismatch between [] and [1]: operands must be vectors (1-D) or matrices (2-D)"
)]
fn matmul_of_a_scalar() {
    let _ = Var::scalar(1.0f64).matmul(&v(1));
}

#[test]
#[should_panic(expected = "t: transposes matrices (2-D) and vectors (1-D), got shape [2, 3, 4]")]
fn transpose_of_a_3d_tensor() {
    let _ = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 3, 4]))).t();
}

#[test]
#[should_panic(
    expected = "reshape: shape mismatch between [2, 3] and [4, 2]: 6 elements cannot be arranged as 8"
)]
fn reshape_to_a_different_count() {
    let _ = m(2, 3).reshape(&[4, 2]);
}

#[test]
#[should_panic(
    expected = "concat: shape mismatch between [2, 3] and [3, 4]: part 1 differs from part 0 outside axis 1"
)]
fn concat_with_mismatched_shapes() {
    let _ = concat(&[&m(2, 3), &m(3, 4)], 1);
}

#[test]
#[should_panic(
    expected = "concat: shape mismatch between [2, 3] and [6]: part 2 differs from part 0 outside axis 0"
)]
fn concat_with_mismatched_ranks() {
    let _ = Var::concat(&[&m(2, 3), &m(1, 3), &v(6)], 0);
}

#[test]
#[should_panic(expected = "concat: axis 2 is out of range for shape [2, 3] (rank 2)")]
fn concat_along_a_missing_axis() {
    let _ = concat(&[&m(2, 3), &m(2, 3)], 2);
}

#[test]
#[should_panic(expected = "concat: needs at least one part, got none")]
fn concat_of_nothing() {
    let _ = concat::<f64, &Var<f64>>(&[], 0);
}

#[test]
#[should_panic(
    expected = "slice: range 2..5 is out of bounds for axis 1 of length 4 (shape [3, 4])"
)]
fn slice_past_the_end() {
    let _ = m(3, 4).slice(1, 2, 5);
}

#[test]
#[should_panic(
    expected = "slice: range 3..2 is out of bounds for axis 0 of length 3 (shape [3, 4])"
)]
fn slice_with_start_after_end() {
    let _ = m(3, 4).slice(0, 3, 2);
}

#[test]
#[should_panic(expected = "slice: axis 2 is out of range for shape [3, 4] (rank 2)")]
fn slice_along_a_missing_axis() {
    let _ = m(3, 4).slice(2, 0, 1);
}

#[test]
#[should_panic(expected = "rows: index 5 is out of range for a table of 5 rows (shape [5, 3])")]
fn rows_index_out_of_range() {
    let _ = m(5, 3).rows(&[0, 5]);
}

#[test]
#[should_panic(expected = "rows: gathers rows of a 2-D table, got shape [5]")]
fn rows_of_a_vector() {
    let _ = v(5).rows(&[0]);
}

#[test]
#[should_panic(expected = "rows_of: index 5 is out of range for tables of 5 rows in all")]
fn rows_of_index_out_of_range() {
    let _ = rows_of(&[&m(2, 3), &m(3, 3)], &[4, 5]);
}

#[test]
#[should_panic(
    expected = "rows_of: shape mismatch between [2, 3] and [3, 4]: table 1 must be 2-D \
                           with the 3 columns of table 0"
)]
fn rows_of_tables_of_different_widths() {
    let _ = rows_of(&[&m(2, 3), &m(3, 4)], &[0]);
}

#[test]
#[should_panic(expected = "rows_of: gathers rows of 2-D tables, got shape [5]")]
fn rows_of_a_vector_table() {
    let _ = rows_of(&[&v(5)], &[0]);
}

#[test]
#[should_panic(expected = "rows_of: needs at least one table, got none")]
fn rows_of_no_tables() {
    let _ = rows_of::<f64, &Var<f64>>(&[], &[0]);
}

#[test]
#[should_panic(expected = "sum_axis: axis 2 is out of range for shape [3, 4] (rank 2)")]
fn sum_along_a_missing_axis() {
    let _ = m(3, 4).sum_axis(2);
}

#[test]
#[should_panic(expected = "mean_axis: axis 1 is out of range for shape [3] (rank 1)")]
fn mean_along_a_missing_axis() {
    let _ = v(3).mean_axis(1);
}

/// A matrix-vector product's matrix gradient is deferred for parameters
/// and added at once for computed matrices: both paths, and a parameter
/// used several times before its gradient is read.
#[test]
fn matrix_vector_gradients_deferred_or_not() {
    let w = Param::new(ndarray::array![[0.5f64, -0.3, 0.2], [0.1, 0.4, -0.6]]);
    let v = Param::new(ndarray::array![0.7f64, -0.2, 0.9]);
    let mut model = vec![w, v];
    let report = gradcheck(&mut model, |m| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            // `w·v` and `w·tanh(v)` defer `w`'s gradient; `tanh(w)·v` is a
            // computed matrix, whose gradient is added at once.
            m[0].matmul(&m[1]).bind(|a| {
                m[1].tanh().bind(|tv| {
                    m[0].matmul(&tv).bind(|b| {
                        m[0].tanh().bind(|tw| {
                            tw.matmul(&m[1])
                                .bind(|c| (&a * &b).bind(|ab| (ab + c).bind(|s| s.sum().bind(k))))
                        })
                    })
                })
            })
        })
        .backward()
    });
    assert!(report.passes(1e-6), "{report}");
}
