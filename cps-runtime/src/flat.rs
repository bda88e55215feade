//! The elements of a standard-layout (row-major, contiguous) dynamic-rank
//! array as a slice, found with less work than `ArrayD::as_slice`.
//!
//! For a dynamic-rank array, `as_slice` reads the shape three times and
//! the strides once, each through the enum of `IxDyn`'s inline or heap
//! storage, before it even computes the length: on the one-element tensors
//! of a chain of small operations, that was a fifth of the work of an
//! operation (it is asked for every operand, result and gradient). These
//! read the shape and the strides once each, in a single pass.

use ndarray::ArrayD;

/// The number of elements, when `shape` and `strides` describe a
/// standard-layout array: every axis longer than one has the stride of
/// the axes after it times their lengths (axes of length one may have any
/// stride, and an empty array is laid out trivially). The same rule as
/// `ndarray`'s own standard-layout test.
#[inline(always)]
fn standard_len(shape: &[usize], strides: &[isize]) -> Option<usize> {
    let mut len = 1usize;
    let mut contiguous = true;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s as usize != len {
            contiguous = false;
        }
        len = len.wrapping_mul(d);
    }
    if contiguous || len == 0 {
        Some(len)
    } else {
        None
    }
}

/// `a.as_slice()`, cheaper for the small arrays where it matters.
#[inline(always)]
pub(crate) fn slice<A>(a: &ArrayD<A>) -> Option<&[A]> {
    let len = standard_len(a.shape(), a.strides())?;
    // SAFETY: the array is in standard layout (`standard_len`, the rule of
    // `ndarray`'s `is_standard_layout`), so its `len` elements are the
    // `len` consecutive, initialised values from `as_ptr()`, which is
    // non-null and aligned even when `len` is 0; they stay borrowed as
    // long as `a`. This is how `ArrayBase::as_slice` builds its slice.
    Some(unsafe { std::slice::from_raw_parts(a.as_ptr(), len) })
}

/// `a.as_slice_mut()`, cheaper for the small arrays where it matters.
#[inline(always)]
pub(crate) fn slice_mut<A>(a: &mut ArrayD<A>) -> Option<&mut [A]> {
    let len = standard_len(a.shape(), a.strides())?;
    // SAFETY: as in `slice`; the array owns its elements (no other array
    // shares them), and `a` stays mutably borrowed as long as the slice.
    Some(unsafe { std::slice::from_raw_parts_mut(a.as_mut_ptr(), len) })
}

/// Writes `source` into `out`, element by element (as
/// `<[MaybeUninit<A>]>::write_copy_of_slice` does in newer Rust than the
/// crate's minimum).
///
/// # Panics
/// When the lengths differ.
#[inline]
pub(crate) fn write_copy<A: Copy>(out: &mut [std::mem::MaybeUninit<A>], source: &[A]) {
    assert_eq!(out.len(), source.len(), "write_copy: lengths differ");
    for (o, &v) in out.iter_mut().zip(source) {
        o.write(v);
    }
}

/// An initialised slice viewed as one that may not be: for code that
/// writes either a new buffer or an old one through the same function.
/// Whoever writes through it must write initialised values only (writing
/// `MaybeUninit::uninit()` would leave `values` uninitialised).
#[inline(always)]
pub(crate) fn as_uninit<A>(values: &mut [A]) -> &mut [std::mem::MaybeUninit<A>] {
    // SAFETY: `MaybeUninit<A>` has the layout of `A`, and every `A` is a
    // valid `MaybeUninit<A>`; the crate writes only initialised values
    // through the result (see above).
    unsafe {
        std::slice::from_raw_parts_mut(
            values.as_mut_ptr().cast::<std::mem::MaybeUninit<A>>(),
            values.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array, ArrayD, IxDyn, s};

    use super::*;

    /// Arrays of many layouts: standard, transposed, sliced with steps,
    /// reversed, with axes of length one or zero, zero-dimensional.
    fn layouts() -> Vec<ArrayD<f32>> {
        let base = Array::from_iter((0..24).map(|v| v as f32))
            .into_shape_with_order(IxDyn(&[2, 3, 4]))
            .expect("24 elements");
        let mut arrays = vec![
            base.clone(),
            base.t().to_owned(),
            ArrayD::from_elem(IxDyn(&[]), 7.0),
            ArrayD::from_elem(IxDyn(&[1]), 7.0),
            ArrayD::from_elem(IxDyn(&[1, 1, 5]), 7.0),
            ArrayD::zeros(IxDyn(&[0, 3])),
            ArrayD::zeros(IxDyn(&[3, 0])),
            ArrayD::zeros(IxDyn(&[1, 2, 3, 4, 5, 1])),
        ];
        // Non-standard layouts, kept as owned arrays with their strides.
        let mut t = base.clone();
        t.swap_axes(0, 2);
        arrays.push(t);
        let mut stepped = base.clone();
        stepped.slice_collapse(s![.., ..;2, ..]);
        arrays.push(stepped);
        let mut reversed = base.clone();
        reversed.invert_axis(ndarray::Axis(2));
        arrays.push(reversed);
        let mut row = base.clone();
        row.slice_collapse(s![1..2, .., ..]);
        arrays.push(row);
        let mut column = base;
        column.slice_collapse(s![.., 1..2, 1..2]);
        arrays.push(column);
        arrays
    }

    #[test]
    fn agrees_with_ndarray() {
        for mut a in layouts() {
            let expected = a.as_slice().map(<[f32]>::to_vec);
            assert_eq!(
                slice(&a).map(<[f32]>::to_vec),
                expected,
                "{:?}",
                a.strides()
            );
            let expected = a.as_slice_mut().map(|v| v.to_vec());
            assert_eq!(slice_mut(&mut a).map(|v| v.to_vec()), expected);
        }
    }

    #[test]
    fn writes_through_the_mutable_slice() {
        let mut a = ArrayD::<f32>::zeros(IxDyn(&[2, 2]));
        slice_mut(&mut a).expect("standard")[3] = 1.0;
        assert_eq!(a[[1, 1]], 1.0);
    }
}
