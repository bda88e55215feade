//! Shape operations: permute, transpose, unsqueeze, squeeze, flatten,
//! broadcast_to, stack, split, chunk, narrow, slice_with (steps, negative
//! steps, indices, new axes), pad, gather, index_select and one_hot.
//! Forward values against direct computations and hand-written numbers,
//! gradients against central finite differences (`gradcheck`) on random
//! shapes and values, the edge cases (size-1 axes, negative axes,
//! repeated indices, steps), the panics, and negative controls that a
//! wrong routing of the gradient fails.

use cps_runtime::ops::shape::{Split, stack};
use cps_runtime::*;
use ndarray::{ArrayD, Axis, Dimension, IxDyn, NewAxis, SliceInfoElem, array, s};
use proptest::prelude::*;

use crate::support::{random_values, weighted_sum};

const TOLERANCE: f64 = 1e-6;

/// Weights of `shape`: a fixed, irregular pattern of distinct values.
fn weights_like(shape: &[usize], seed: usize) -> ArrayD<f64> {
    let len: usize = shape.iter().product();
    let v = (0..len)
        .map(|i| ((i + 7 * seed) as f64 * 0.754_877_666 + 0.3).sin() * 1.5 + 0.1)
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("length matches")
}

/// Checks `op` on one parameter: its forward value is `expected`, and its
/// gradient (under a weighted sum of the output) agrees with finite
/// differences.
fn check<P>(
    x: ArrayD<f64>,
    expected: &ArrayD<f64>,
    op: impl Fn(&Var<f64>) -> P,
) -> Result<(), TestCaseError>
where
    P: Computation<Output = Var<f64>>,
{
    let mut p = Param::new(x);
    let value = lazy(|k: &mut dyn FnMut(Var<f64>)| op(&p).bind(k)).eval();
    prop_assert_eq!(value.array(), expected);
    let weights = weights_like(expected.shape(), 1);
    let report = gradcheck(&mut p, |p| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| op(p).bind(|y| weighted_sum(&y, &weights).bind(&mut *k)))
            .backward()
    });
    prop_assert!(report.passes(TOLERANCE), "{}", report);
    Ok(())
}

/// The gradient `op` sends back to `x` when the loss is the plain sum of
/// its output.
fn grad_through<P>(x: ArrayD<f64>, op: impl Fn(&Var<f64>) -> P) -> ArrayD<f64>
where
    P: Computation<Output = Var<f64>>,
{
    let p = Param::new(x);
    lazy(|k: &mut dyn FnMut(Var<f64>)| op(&p).bind(|y| y.sum().bind(&mut *k))).backward();
    p.grad()
}

/// The output of `op` on a constant `x`.
fn forward<P>(x: &ArrayD<f64>, op: impl FnOnce(&Var<f64>) -> P) -> ArrayD<f64>
where
    P: Computation<Output = Var<f64>>,
{
    let x = Var::constant(x.clone());
    lazy(|k: &mut dyn FnMut(Var<f64>)| op(&x).bind(k))
        .eval()
        .array()
        .clone()
}

/// A tensor of rank in `ranks` with dimensions in `dims`.
fn tensor(
    ranks: std::ops::RangeInclusive<usize>,
    dims: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = ArrayD<f64>> {
    ranks
        .prop_flat_map(move |rank| prop::collection::vec(dims.clone(), rank))
        .prop_flat_map(random_values)
}

/// `axis` (a position among `count`) written either way: as it is, or
/// counted from the end.
fn either_way(axis: usize, count: usize, negative: bool) -> isize {
    if negative {
        axis as isize - count as isize
    } else {
        axis as isize
    }
}

/// The position `axis` names among `count` axes.
fn resolved(axis: isize, count: usize) -> usize {
    if axis < 0 {
        (count as isize + axis) as usize
    } else {
        axis as usize
    }
}

/// A tensor with one of its axes, possibly negative.
fn tensor_and_axis(
    ranks: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = (ArrayD<f64>, isize)> {
    tensor(ranks, 1..=4).prop_flat_map(|x| {
        let rank = x.ndim();
        (Just(x), 0..rank, any::<bool>()).prop_map(move |(x, a, neg)| (x, either_way(a, rank, neg)))
    })
}

/// Random per-axis slicing entries for `shape`: ranges with steps of
/// either sign (bounds possibly negative or open), single indices, and
/// new axes in between.
fn slicing(shape: Vec<usize>) -> impl Strategy<Value = Vec<SliceInfoElem>> {
    let per_axis: Vec<_> = shape
        .iter()
        .map(|&n| {
            let n = n as isize;
            let range = (
                -n..=n,
                prop::option::of(-n..=n),
                prop_oneof![1isize..=3, -3isize..=-1],
            )
                .prop_map(|(start, end, step)| SliceInfoElem::Slice {
                    start,
                    end,
                    step,
                });
            let index = (-n..n).prop_map(SliceInfoElem::Index);
            let new_axis = any::<bool>();
            (prop_oneof![3 => range, 1 => index], new_axis)
        })
        .collect();
    per_axis.prop_map(|entries| {
        let mut elems = Vec::new();
        for (elem, new_axis) in entries {
            if new_axis {
                elems.push(SliceInfoElem::NewAxis);
            }
            elems.push(elem);
        }
        elems
    })
}

/// Concatenated weighted sums of the parts at even positions (the odd
/// ones do not reach the loss), handed to `k`.
fn even_parts_loss(parts: &[Var<f64>], at: usize, k: &mut dyn FnMut(Var<f64>)) {
    match parts {
        [] => k(Var::scalar(0.0)),
        [first, rest @ ..] if at.is_multiple_of(2) => {
            let weights = weights_like(first.shape(), at);
            weighted_sum(first, &weights).bind(|s| {
                even_parts_loss(rest, at + 1, &mut |t| (&s + &t).bind(&mut *k));
            });
        }
        [_, rest @ ..] => even_parts_loss(rest, at + 1, k),
    }
}

/// Checks a split of `x` into parts: their values against slices of `x`
/// along `axis` of the given lengths, and the gradient of a loss that uses
/// only the even parts.
fn check_split(
    x: ArrayD<f64>,
    axis: usize,
    lengths: &[usize],
    split: impl Fn(&Var<f64>) -> Split<f64>,
) -> Result<(), TestCaseError> {
    let mut p = Param::new(x.clone());
    let parts = lazy(|k: &mut dyn FnMut(Vec<Var<f64>>)| split(&p).bind(k)).eval();
    prop_assert_eq!(parts.len(), lengths.len());
    let mut start = 0;
    for (part, &n) in parts.iter().zip(lengths) {
        let expected = x.slice_axis(Axis(axis), (start..start + n).into());
        prop_assert_eq!(part.array(), &expected);
        start += n;
    }
    prop_assert_eq!(start, x.shape()[axis]);
    let report = gradcheck(&mut p, |p| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            split(p).bind(|parts| even_parts_loss(&parts, 0, k));
        })
        .backward()
    });
    prop_assert!(report.passes(TOLERANCE), "{}", report);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn permute_any_axes(
        (x, order, negative) in tensor(1..=4, 1..=4).prop_flat_map(|x| {
            let rank = x.ndim();
            (Just(x), Just((0..rank).collect::<Vec<_>>()).prop_shuffle(), prop::collection::vec(any::<bool>(), rank))
        })
    ) {
        let rank = x.ndim();
        let axes: Vec<isize> = order.iter().zip(&negative).map(|(&a, &n)| either_way(a, rank, n)).collect();
        let expected = x.view().permuted_axes(IxDyn(&order)).to_owned();
        // Element by element: result[p] = x[q] with q[order[i]] = p[i].
        for (p, &v) in expected.indexed_iter() {
            let mut q = vec![0; rank];
            for (i, &a) in order.iter().enumerate() {
                q[a] = p[i];
            }
            prop_assert_eq!(v, x[q.as_slice()]);
        }
        check(x, &expected, |x| x.permute(&axes))?;
    }

    #[test]
    fn transpose_two_axes(
        (x, a, b) in tensor(1..=3, 1..=4).prop_flat_map(|x| {
            let rank = x.ndim() as isize;
            (Just(x), -rank..rank, -rank..rank)
        })
    ) {
        let rank = x.ndim();
        let mut expected = x.view();
        expected.swap_axes(resolved(a, rank), resolved(b, rank));
        let expected = expected.to_owned();
        check(x, &expected, |x| x.transpose(a, b))?;
    }

    #[test]
    fn unsqueeze_at_any_position(
        (x, axis) in tensor(0..=3, 1..=3).prop_flat_map(|x| {
            let count = x.ndim() as isize + 1;
            (Just(x), -count..count)
        })
    ) {
        let at = resolved(axis, x.ndim() + 1);
        let expected = x.clone().insert_axis(Axis(at));
        check(x, &expected, |x| x.unsqueeze(axis))?;
    }

    #[test]
    fn squeeze_a_size_one_axis_and_all_of_them(
        (x, axis) in tensor(1..=4, 1..=2).prop_flat_map(|x| {
            let rank = x.ndim();
            let ones: Vec<usize> = (0..rank).filter(|&a| x.shape()[a] == 1).collect();
            (Just(x), Just(ones), any::<prop::sample::Index>(), any::<bool>())
                .prop_map(move |(x, ones, pick, neg)| {
                    let axis = (!ones.is_empty()).then(|| either_way(ones[pick.index(ones.len())], rank, neg));
                    (x, axis)
                })
        })
    ) {
        let shape: Vec<usize> = x.shape().iter().copied().filter(|&n| n != 1).collect();
        let all = x.to_shape(IxDyn(&shape)).expect("same elements").to_owned();
        check(x.clone(), &all, |x| x.squeeze_all())?;
        if let Some(axis) = axis {
            let expected = x.clone().remove_axis(Axis(resolved(axis, x.ndim())));
            check(x, &expected, |x| x.squeeze(axis))?;
        }
    }

    #[test]
    fn flatten_a_run_of_axes(
        (x, start, end) in tensor(1..=4, 1..=3).prop_flat_map(|x| {
            let rank = x.ndim();
            (Just(x), 0..rank).prop_flat_map(move |(x, start)| {
                (Just(x), Just(start), start..rank, any::<bool>(), any::<bool>())
                    .prop_map(move |(x, s, e, ns, ne)| (x, either_way(s, rank, ns), either_way(e, rank, ne)))
            })
        })
    ) {
        let rank = x.ndim();
        let (s, e) = (resolved(start, rank), resolved(end, rank));
        let mut shape = x.shape()[..s].to_vec();
        shape.push(x.shape()[s..=e].iter().product());
        shape.extend_from_slice(&x.shape()[e + 1..]);
        let expected = x.to_shape(IxDyn(&shape)).expect("same elements").to_owned();
        check(x, &expected, |x| x.flatten(start, end))?;
    }

    #[test]
    fn broadcast_to_a_larger_shape(
        (x, target) in tensor(0..=3, 1..=3).prop_flat_map(|x| {
            let shape = x.shape().to_vec();
            let grown: Vec<BoxedStrategy<usize>> = shape
                .iter()
                .map(|&n| if n == 1 { (1usize..=3).boxed() } else { Just(n).boxed() })
                .collect();
            (Just(x), prop::collection::vec(1usize..=3, 0..=2), grown)
                .prop_map(|(x, mut leading, grown)| {
                    leading.extend(grown);
                    (x, leading)
                })
        })
    ) {
        let expected = x.broadcast(IxDyn(&target)).expect("broadcastable").to_owned();
        check(x, &expected, |x| x.broadcast_to(&target))?;
    }

    #[test]
    fn stack_along_a_new_axis(
        (parts, axis) in (0usize..=2, 1usize..=3).prop_flat_map(|(rank, count)| {
            prop::collection::vec(1usize..=3, rank).prop_flat_map(move |shape| {
                let axes = rank as isize + 1;
                (prop::collection::vec(random_values(shape), count), -axes..axes)
            })
        })
    ) {
        let rank = parts[0].ndim();
        let at = Axis(resolved(axis, rank + 1));
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        let expected = ndarray::stack(at, &views).expect("one shape");
        let mut model: Vec<Param<f64>> = parts.into_iter().map(Param::new).collect();
        let weights = weights_like(expected.shape(), 2);
        let run = |model: &Vec<Param<f64>>, k: &mut dyn FnMut(Var<f64>)| {
            let vars: Vec<&Var<f64>> = model.iter().map(|p| &**p).collect();
            stack(&vars, axis).bind(k)
        };
        let value = lazy(|k: &mut dyn FnMut(Var<f64>)| run(&model, k)).eval();
        prop_assert_eq!(value.array(), &expected);
        let report = gradcheck(&mut model, |m| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| run(m, &mut |y| weighted_sum(&y, &weights).bind(&mut *k)))
                .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{}", report);
    }

    #[test]
    fn split_into_given_sizes(
        ((x, axis), cuts) in tensor_and_axis(1..=3).prop_flat_map(|(x, axis)| {
            let n = x.shape()[resolved(axis, x.ndim())];
            (Just((x, axis)), prop::collection::vec(0..=n, 0..=3))
        })
    ) {
        let a = resolved(axis, x.ndim());
        let n = x.shape()[a];
        let mut cuts = cuts;
        cuts.push(0);
        cuts.push(n);
        cuts.sort_unstable();
        // Repeated cuts make empty parts.
        let sizes: Vec<usize> = cuts.windows(2).map(|w| w[1] - w[0]).collect();
        check_split(x, a, &sizes, |x| x.split(axis, &sizes))?;
    }

    #[test]
    fn chunk_into_equal_parts(((x, axis), chunks) in (tensor_and_axis(1..=3), 1usize..=5)) {
        let a = resolved(axis, x.ndim());
        let n = x.shape()[a];
        let size = n.div_ceil(chunks);
        let mut lengths = vec![size; n / size];
        if n % size != 0 {
            lengths.push(n % size);
        }
        prop_assert!(lengths.len() <= chunks);
        check_split(x, a, &lengths, |x| x.chunk(axis, chunks))?;
    }

    #[test]
    fn narrow_a_range(
        ((x, axis), start, length) in tensor_and_axis(1..=3).prop_flat_map(|(x, axis)| {
            let n = x.shape()[resolved(axis, x.ndim())];
            (Just((x, axis)), 0..=n).prop_flat_map(move |(xa, start)| (Just(xa), Just(start), 0..=n - start))
        })
    ) {
        let a = resolved(axis, x.ndim());
        let expected = x.slice_axis(Axis(a), (start..start + length).into()).to_owned();
        check(x, &expected, |x| x.narrow(axis, start, length))?;
    }

    #[test]
    fn slice_with_steps_indices_and_new_axes(
        (x, elems) in tensor(1..=3, 1..=5).prop_flat_map(|x| {
            let shape = x.shape().to_vec();
            (Just(x), slicing(shape))
        })
    ) {
        let expected = x.slice(elems.as_slice()).to_owned();
        check(x, &expected, |x| x.slice_with(elems.as_slice()))?;
    }

    #[test]
    fn pad_with_a_constant(
        (x, widths, value) in tensor(0..=3, 1..=3).prop_flat_map(|x| {
            let rank = x.ndim();
            (Just(x), prop::collection::vec((0usize..=2, 0usize..=2), rank), -1.0f64..1.0)
        })
    ) {
        let shape: Vec<usize> = x.shape().iter().zip(&widths).map(|(&n, &(b, a))| b + n + a).collect();
        // Element by element: inside the centre, the input; outside, the value.
        let expected = ArrayD::from_shape_fn(IxDyn(&shape), |p| {
            let inner: Option<Vec<usize>> = (0..p.ndim())
                .map(|d| p[d].checked_sub(widths[d].0).filter(|&i| i < x.shape()[d]))
                .collect();
            inner.map_or(value, |i| x[i.as_slice()])
        });
        check(x, &expected, |x| x.pad(&widths, value))?;
    }

    #[test]
    fn gather_along_any_axis(
        ((x, axis), indices) in tensor_and_axis(1..=3).prop_flat_map(|(x, axis)| {
            let rank = x.ndim();
            let a = resolved(axis, rank);
            let n = x.shape()[a];
            let dims: Vec<BoxedStrategy<usize>> = (0..rank)
                .map(|d| if d == a { (1usize..=4).boxed() } else { (1..=x.shape()[d]).boxed() })
                .collect();
            (Just((x, axis)), dims).prop_flat_map(move |(xa, dims)| {
                let len: usize = dims.iter().product();
                (Just(xa), prop::collection::vec(0..n, len).prop_map(move |v| {
                    ArrayD::from_shape_vec(IxDyn(&dims), v).expect("sized")
                }))
            })
        })
    ) {
        let a = resolved(axis, x.ndim());
        let expected = ArrayD::from_shape_fn(indices.raw_dim(), |p| {
            let mut q = p.clone();
            q[a] = indices[&p];
            x[q]
        });
        check(x, &expected, |x| x.gather(axis, &indices))?;
    }

    #[test]
    fn index_select_along_any_axis(
        ((x, axis), indices) in tensor_and_axis(1..=3).prop_flat_map(|(x, axis)| {
            let n = x.shape()[resolved(axis, x.ndim())];
            (Just((x, axis)), prop::collection::vec(0..n, 0..=5))
        })
    ) {
        let a = resolved(axis, x.ndim());
        let mut shape = x.shape().to_vec();
        shape[a] = indices.len();
        let mut expected = ArrayD::zeros(IxDyn(&shape));
        for (i, &j) in indices.iter().enumerate() {
            expected.index_axis_mut(Axis(a), i).assign(&x.index_axis(Axis(a), j));
        }
        check(x, &expected, |x| x.index_select(axis, &indices))?;
    }
}

#[test]
fn shape_operations_by_hand() {
    let m = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn();
    assert_eq!(
        forward(&m, |x| x.transpose(-1, -2)),
        array![[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]].into_dyn()
    );
    assert_eq!(
        forward(&m, |x| x.permute(&[1, 0])),
        forward(&m, |x| x.transpose(0, 1))
    );
    assert_eq!(forward(&m, |x| x.unsqueeze(1)).shape(), &[2, 1, 3]);
    assert_eq!(forward(&m, |x| x.unsqueeze(-1)).shape(), &[2, 3, 1]);
    assert_eq!(forward(&m, |x| x.unsqueeze(-3)).shape(), &[1, 2, 3]);
    assert_eq!(
        forward(&m, |x| x.flatten(0, 1)),
        array![1.0, 2.0, 3.0, 4.0, 5.0, 6.0].into_dyn()
    );
    assert_eq!(
        forward(&m, |x| x.broadcast_to(&[2, 2, 3])).index_axis(Axis(0), 1),
        m.view()
    );
    assert_eq!(
        forward(&array![[1.0], [2.0]].into_dyn(), |x| x
            .broadcast_to(&[2, 3])),
        array![[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]].into_dyn()
    );
    assert_eq!(
        forward(&m, |x| x.pad(&[(0, 1), (2, 0)], -1.0)),
        array![
            [-1.0, -1.0, 1.0, 2.0, 3.0],
            [-1.0, -1.0, 4.0, 5.0, 6.0],
            [-1.0, -1.0, -1.0, -1.0, -1.0]
        ]
        .into_dyn()
    );
    // A scalar stays a scalar under an empty padding.
    assert_eq!(
        forward(&ndarray::arr0(2.5).into_dyn(), |x| x.pad(&[], 0.0)),
        ndarray::arr0(2.5).into_dyn()
    );
}

#[test]
fn slices_with_steps_by_hand() {
    let v = array![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0].into_dyn();
    let slice = |info: &[SliceInfoElem]| forward(&v, |x| x.slice_with(info));
    assert_eq!(slice(s![..;3].as_ref()), array![0.0, 3.0, 6.0].into_dyn());
    assert_eq!(slice(s![1..6;2].as_ref()), array![1.0, 3.0, 5.0].into_dyn());
    // Negative bounds count from the end.
    assert_eq!(slice(s![-3..].as_ref()), array![4.0, 5.0, 6.0].into_dyn());
    // A negative step reads the range from its end: ndarray's convention.
    assert_eq!(
        slice(s![..;-1].as_ref()),
        array![6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0].into_dyn()
    );
    assert_eq!(slice(s![1..4;-2].as_ref()), array![3.0, 1.0].into_dyn());
    // An empty range (start after end, as ndarray allows), an index, a new
    // axis.
    let (start, end) = (5, 2);
    assert_eq!(slice(s![start..end].as_ref()).shape(), &[0]);
    assert_eq!(slice(s![-2].as_ref()), ndarray::arr0(5.0).into_dyn());
    assert_eq!(
        slice(s![NewAxis, 2..4].as_ref()),
        array![[2.0, 3.0]].into_dyn()
    );

    // 1..;-2 reads 6, 4 and 2 (from the end of 1..7, backwards); the
    // gradients land on the elements read, nothing elsewhere.
    assert_eq!(slice(s![1..;-2].as_ref()), array![6.0, 4.0, 2.0].into_dyn());
    let g = grad_through(v.clone(), |x| x.slice_with(s![1..;-2]));
    assert_eq!(g, array![0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0].into_dyn());
}

#[test]
fn repeated_indices_add_their_gradients() {
    let table = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]].into_dyn();
    // Row 2 three times, row 0 once, row 1 never.
    let g = grad_through(table.clone(), |x| x.index_select(0, &[2, 0, 2, 2]));
    assert_eq!(g, array![[1.0, 1.0], [0.0, 0.0], [3.0, 3.0]].into_dyn());
    let g = grad_through(table.clone(), |x| x.index_select(-1, &[1, 1]));
    assert_eq!(g, array![[0.0, 2.0], [0.0, 2.0], [0.0, 2.0]].into_dyn());
    // gather: per row, column 1 twice in row 0, columns 0 and 1 in row 2.
    let indices = array![[1, 1], [0, 0], [0, 1]];
    assert_eq!(
        forward(&table, |x| x.gather(1, &indices)),
        array![[2.0, 2.0], [3.0, 3.0], [5.0, 6.0]].into_dyn()
    );
    let g = grad_through(table.clone(), |x| x.gather(-1, &indices));
    assert_eq!(g, array![[0.0, 2.0], [2.0, 0.0], [1.0, 1.0]].into_dyn());
    // Along the first axis, with fewer columns than the table.
    let indices = array![[2], [2], [0]];
    assert_eq!(
        forward(&table, |x| x.gather(0, &indices)),
        array![[5.0], [5.0], [1.0]].into_dyn()
    );
    let g = grad_through(table, |x| x.gather(0, &indices));
    assert_eq!(g, array![[1.0, 0.0], [0.0, 0.0], [2.0, 0.0]].into_dyn());
}

#[test]
fn split_parts_by_hand_and_unused_parts_take_no_gradient() {
    let x = Param::new(array![
        [1.0, 2.0, 3.0, 4.0, 5.0],
        [6.0, 7.0, 8.0, 9.0, 10.0]
    ]);
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.chunk(-1, 2).bind(|parts| {
            assert_eq!(parts.len(), 2);
            assert_eq!(
                parts[0].array(),
                &array![[1.0, 2.0, 3.0], [6.0, 7.0, 8.0]].into_dyn()
            );
            assert_eq!(
                parts[1].array(),
                &array![[4.0, 5.0], [9.0, 10.0]].into_dyn()
            );
            (&parts[1] * 2.0).bind(|p| p.sum().bind(&mut *k));
        })
    })
    .backward();
    assert_eq!(loss, 56.0);
    assert_eq!(
        x.grad(),
        array![[0.0, 0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 2.0, 2.0]].into_dyn()
    );
    // An axis of length 0 gives one empty part; more chunks than elements
    // give one element each.
    let empty = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 0])));
    empty.chunk(1, 3).bind(|parts| assert_eq!(parts.len(), 1));
    let three = Var::constant(array![1.0, 2.0, 3.0]);
    three.chunk(0, 5).bind(|parts| assert_eq!(parts.len(), 3));
    // `eval` hands out detached parts.
    let parts = three.split(0, &[1, 0, 2]).eval();
    let lengths: Vec<usize> = parts.iter().map(Var::len).collect();
    assert_eq!(lengths, [1, 0, 2]);
}

#[test]
fn one_hot_encodes_indices_of_any_shape() {
    let v = Var::<f64>::one_hot(&[1, 0, 3], 4);
    assert_eq!(
        v.array(),
        &array![
            [0.0, 1.0, 0.0, 0.0],
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0]
        ]
        .into_dyn()
    );
    assert!(!v.requires_grad());
    let m = Var::<f32>::one_hot(&array![[2, 2], [0, 1]], 3);
    assert_eq!(m.array().shape(), &[2, 2, 3]);
    assert_eq!(m.array().slice(s![1, 1, ..]), array![0.0f32, 1.0, 0.0]);
    assert_eq!(m.array().sum(), 4.0);
    let none = Var::<f64>::one_hot(&Vec::<usize>::new(), 5);
    assert_eq!(none.array().shape(), &[0, 5]);
}

#[test]
fn f32_shape_operations_agree_with_f64() {
    let x = array![[0.25f32, -1.5, 2.0], [3.0, 0.5, -0.75]].into_dyn();
    let p = Param::new(x.clone());
    lazy(|k: &mut dyn FnMut(Var<f32>)| {
        p.permute(&[1, 0]).bind(|t| {
            t.slice_with(s![..;-1, NewAxis, ..]).bind(|r| {
                r.pad(&[(1, 0), (0, 0), (0, 1)], 9.0).bind(|padded| {
                    padded
                        .gather(
                            2,
                            &array![[[2, 2, 0]], [[0, 1, 1]], [[1, 1, 1]], [[0, 0, 0]]],
                        )
                        .bind(|g| {
                            g.index_select(0, &[3, 3, 1])
                                .bind(|sel| sel.sum().bind(&mut *k))
                        })
                })
            })
        })
    })
    .backward();
    // Hand-traced: padded[i, 0, j] for i in 0..4 (row 0 padding), j in
    // 0..3 (column 2 padding); rows 1..4 are x's columns reversed:
    // row 1 = column 2 (2.0, -0.75), row 2 = column 1, row 3 = column 0.
    // index_select picks row 3 twice and row 1 once; gather reads
    // columns (0, 0, 0) of row 3 and (0, 1, 1) of row 1: x[0, 0] six times,
    // x[0, 2] once and x[1, 2] twice.
    assert_eq!(
        p.grad(),
        array![[6.0f32, 0.0, 1.0], [0.0, 0.0, 2.0]].into_dyn()
    );
}

/// `index_select` along the first axis with a backward step that assigns
/// instead of adding, so that repeated indices keep only one gradient.
fn overwriting_select(
    x: &Var<f64>,
    indices: &[usize],
) -> Pending<f64, impl BackwardStep<f64> + use<>> {
    let input = x.clone();
    let indices = indices.to_vec();
    let value = x.array().select(Axis(0), &indices);
    Pending::new(
        "overwriting_select",
        value,
        x.requires_grad(),
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
            input.accumulate_with(|mut gx| {
                for (g, &i) in grad.axis_iter(Axis(0)).zip(&indices) {
                    gx.index_axis_mut(Axis(0), i).assign(&g);
                }
            });
        },
    )
}

#[test]
fn negative_control_a_scatter_that_overwrites_fails_on_repeated_indices() {
    let x = array![[0.5, -1.0], [2.0, 0.25], [1.5, -0.5]].into_dyn();
    let check = |indices: &[usize]| {
        let weights = weights_like(&[indices.len(), 2], 3);
        let mut p = Param::new(x.clone());
        gradcheck(&mut p, |p| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                overwriting_select(p, indices).bind(|y| weighted_sum(&y, &weights).bind(&mut *k))
            })
            .backward()
        })
    };
    // Distinct indices: assigning is adding, and the check passes...
    assert!(check(&[2, 0]).passes(TOLERANCE));
    // ...repeated ones lose a gradient, and the check catches it.
    let report = check(&[2, 0, 2]);
    assert!(!report.passes(1e-3), "{report}");
    assert_eq!(report.element[0], 2, "{report}");
}

#[test]
fn negative_control_a_strided_slice_ignoring_its_step_fails() {
    // Forward x[..;2], backward into x[..n] as if the step were 1.
    let x = array![0.5, -1.0, 2.0, 0.25, 1.5].into_dyn();
    let weights = weights_like(&[3], 4);
    let mut p = Param::new(x);
    let report = gradcheck(&mut p, |p| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            let input = Var::clone(p);
            Pending::new(
                "unstrided",
                p.array().slice(s![..;2]).to_owned().into_dyn(),
                true,
                move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
                    input.accumulate_with(|mut gx| {
                        let mut head = gx.slice_mut(s![..3]);
                        head += &grad;
                    });
                },
            )
            .bind(|y| weighted_sum(&y, &weights).bind(&mut *k))
        })
        .backward()
    });
    assert!(!report.passes(1e-3), "{report}");
}

fn m() -> Var<f64> {
    Var::constant(ArrayD::zeros(IxDyn(&[2, 3])))
}

#[test]
#[should_panic(expected = "permute: expected 2 axes for shape [2, 3], got 3 (0, 1, 0)")]
fn permute_with_too_many_axes() {
    let _ = m().permute(&[0, 1, 0]);
}

#[test]
#[should_panic(expected = "permute: axis 1 is named twice in [1, 1] (shape [2, 3])")]
fn permute_naming_an_axis_twice() {
    let _ = m().permute(&[1, -1]);
}

#[test]
#[should_panic(expected = "transpose: axis -3 is out of range for shape [2, 3] (rank 2)")]
fn transpose_of_a_missing_axis() {
    let _ = m().transpose(0, -3);
}

#[test]
#[should_panic(
    expected = "unsqueeze: axis 3 is out of range for shape [2, 3] (rank 2): expected 0..3, or -3..0"
)]
fn unsqueeze_past_the_end() {
    let _ = m().unsqueeze(3);
}

#[test]
#[should_panic(expected = "squeeze: axis 1 has length 3, expected 1 (shape [2, 3])")]
fn squeeze_of_a_long_axis() {
    let _ = m().squeeze(-1);
}

#[test]
#[should_panic(
    expected = "flatten: start axis -1 (axis 1) comes after end axis 0 (axis 0) in shape [2, 3]"
)]
fn flatten_backwards() {
    let _ = m().flatten(-1, 0);
}

#[test]
#[should_panic(
    expected = "broadcast_to: shape mismatch between [2, 3] and [2, 4]: axis 1 has length 3"
)]
fn broadcast_to_an_incompatible_shape() {
    let _ = m().broadcast_to(&[2, 4]);
}

#[test]
#[should_panic(
    expected = "broadcast_to: shape mismatch between [2, 3] and [3]: the target has fewer axes"
)]
fn broadcast_to_fewer_axes() {
    let _ = m().broadcast_to(&[3]);
}

#[test]
#[should_panic(
    expected = "stack: shape mismatch between [2, 3] and [3, 2]: part 1 differs from part 0"
)]
fn stack_of_different_shapes() {
    let other = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[3, 2])));
    let _ = stack(&[m(), other], 0);
}

#[test]
#[should_panic(expected = "stack: needs at least one part, got none")]
fn stack_of_nothing() {
    let _ = stack::<f64, Var<f64>, usize>(&[], 0);
}

#[test]
#[should_panic(
    expected = "split: sizes [1, 1] do not add up to the length 3 of axis 1 (shape [2, 3])"
)]
fn split_into_too_little() {
    let _ = m().split(-1, &[1, 1]);
}

#[test]
#[should_panic(expected = "chunk: expected at least one chunk, got 0 (shape [2, 3])")]
fn chunk_into_nothing() {
    let _ = m().chunk(0, 0);
}

#[test]
#[should_panic(
    expected = "slice: range 2..4 is out of bounds for axis 1 of length 3 (shape [2, 3])"
)]
fn narrow_past_the_end() {
    let _ = m().narrow(1, 2, 2);
}

#[test]
#[should_panic(
    expected = "slice_with: range 0..4 is out of bounds for axis 1 of length 3 (shape [2, 3])"
)]
fn slice_with_past_the_end() {
    let _ = m().slice_with(s![.., 0..4]);
}

#[test]
#[should_panic(
    expected = "slice_with: index -3 is out of range for axis 0 of length 2 (shape [2, 3])"
)]
fn slice_with_an_index_before_the_start() {
    let _ = m().slice_with(s![-3, ..]);
}

#[test]
#[should_panic(expected = "slice_with: 1 axes sliced, expected one entry per axis of shape [2, 3]")]
fn slice_with_too_few_entries() {
    let _ = m().slice_with(s![NewAxis, ..]);
}

#[test]
#[should_panic(expected = "slice_with: step 0 along axis 0 (shape [2, 3])")]
fn slice_with_a_zero_step() {
    let step0 = [
        SliceInfoElem::Slice {
            start: 0,
            end: None,
            step: 0,
        },
        SliceInfoElem::from(..),
    ];
    let _ = m().slice_with(step0);
}

#[test]
#[should_panic(
    expected = "pad: shape mismatch between [2, 3] and [1]: expected one (before, after) pair per axis, 2 pairs, got 1"
)]
fn pad_with_too_few_pairs() {
    let _ = m().pad(&[(1, 1)], 0.0);
}

#[test]
#[should_panic(expected = "gather: index 3 is out of range for axis 1 of length 3 (shape [2, 3])")]
fn gather_past_the_end() {
    let _ = m().gather(1, &array![[0], [3]]);
}

#[test]
#[should_panic(
    expected = "gather: shape mismatch between [2, 3] and [3, 1]: the indices must have the input's rank, and no greater length outside axis 1"
)]
fn gather_with_too_many_rows() {
    let _ = m().gather(-1, &array![[0], [1], [2]]);
}

#[test]
#[should_panic(
    expected = "index_select: index 2 is out of range for axis 0 of length 2 (shape [2, 3])"
)]
fn index_select_past_the_end() {
    let _ = m().index_select(0, &[1, 2]);
}

#[test]
#[should_panic(expected = "one_hot: index 3 is out of range for 3 classes (indices of shape [2])")]
fn one_hot_past_the_classes() {
    let _ = Var::<f64>::one_hot(&[0, 3], 3);
}
