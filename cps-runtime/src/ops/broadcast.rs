//! Broadcasting by NumPy's rules: the shape two operands make together,
//! reading an operand in that shape, and summing a gradient back to an
//! operand's own shape.
//!
//! Shapes are aligned at their last axis; two sizes agree when they are
//! equal or one of them is 1 (a missing leading axis counts as 1), and the
//! result takes the larger. An operand is read as if repeated along the
//! axes where it has size 1, so its gradient is the result's gradient
//! summed over those axes.

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};

use crate::element::Element;
use crate::ops::shape_mismatch;

/// The shape `left` and `right` broadcast to.
///
/// # Panics
/// When two aligned sizes differ and neither is 1; the message names `op`,
/// both shapes and the axis.
#[track_caller]
pub(crate) fn broadcast_shape(op: &str, left: &[usize], right: &[usize]) -> Vec<usize> {
    let rank = left.len().max(right.len());
    let size = |shape: &[usize], axis: usize| {
        let missing = rank - shape.len();
        if axis < missing {
            1
        } else {
            shape[axis - missing]
        }
    };
    (0..rank)
        .map(|axis| match (size(left, axis), size(right, axis)) {
            (l, r) if l == r || r == 1 => l,
            (1, r) => r,
            (l, r) => shape_mismatch(
                op,
                left,
                right,
                &format!(
                    "not broadcastable: sizes {l} and {r} meet at axis {axis} of the result \
                     (NumPy's rules: aligned at the last axis, equal or one of them 1)"
                ),
            ),
        })
        .collect()
}

/// `operand` read in `shape` (which it broadcasts to).
pub(crate) fn read_as<'a, A: Element>(
    operand: &'a ArrayD<A>,
    shape: &[usize],
) -> ArrayViewD<'a, A> {
    operand
        .broadcast(IxDyn(shape))
        .expect("the operand broadcasts to the result's shape")
}

/// `f(left, right)` over the shape both broadcast to, in standard layout.
pub(crate) fn map_broadcast<A: Element>(
    left: &ArrayD<A>,
    right: &ArrayD<A>,
    shape: &[usize],
    f: impl Fn(A, A) -> A,
) -> ArrayD<A> {
    ndarray::Zip::from(read_as(left, shape))
        .and(read_as(right, shape))
        .map_collect(|&l, &r| f(l, r))
}

/// `terms` (of a result's shape) summed over the axes an operand of
/// `shape` was repeated along: that operand's gradient.
pub(crate) fn sum_to_shape<A: Element>(terms: ArrayViewD<'_, A>, shape: &[usize]) -> ArrayD<A> {
    let leading = terms.ndim() - shape.len();
    let mut sum = terms.to_owned();
    for _ in 0..leading {
        sum = sum.sum_axis(Axis(0));
    }
    for (axis, &size) in shape.iter().enumerate() {
        if size == 1 && sum.shape()[axis] != 1 {
            sum = sum.sum_axis(Axis(axis)).insert_axis(Axis(axis));
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn, array};

    use super::{broadcast_shape, sum_to_shape};

    #[test]
    fn shapes_broadcast_by_numpy_rules() {
        assert_eq!(broadcast_shape("add", &[3, 1], &[1, 4]), [3, 4]);
        assert_eq!(broadcast_shape("add", &[2, 3, 4], &[4]), [2, 3, 4]);
        assert_eq!(broadcast_shape("add", &[], &[2, 2]), [2, 2]);
        assert_eq!(broadcast_shape("add", &[1, 1], &[3]), [1, 3]);
        assert_eq!(broadcast_shape("add", &[5, 1, 3], &[2, 1]), [5, 2, 3]);
    }

    #[test]
    #[should_panic(expected = "mul: shape mismatch between [2, 3] and [2]: not broadcastable")]
    fn incompatible_shapes_name_the_operation_and_both_shapes() {
        broadcast_shape("mul", &[2, 3], &[2]);
    }

    #[test]
    fn a_gradient_sums_back_over_the_repeated_axes() {
        let terms =
            ArrayD::from_shape_fn(IxDyn(&[2, 3, 4]), |i| (i[0] * 12 + i[1] * 4 + i[2]) as f64);
        let summed = sum_to_shape(terms.view(), &[3, 1]);
        let expected = array![
            [0. + 1. + 2. + 3. + 12. + 13. + 14. + 15.],
            [4. + 5. + 6. + 7. + 16. + 17. + 18. + 19.],
            [8. + 9. + 10. + 11. + 20. + 21. + 22. + 23.]
        ];
        assert_eq!(summed, expected.into_dyn());
        assert_eq!(
            sum_to_shape(terms.view(), &[]),
            ArrayD::from_elem(IxDyn(&[]), 276.0)
        );
    }
}
