//! Slicing several axes at once, with steps, and padding.
//!
//! Both copy a region of one tensor into another: a slice reads the
//! region, a pad writes the input into it. Their backward steps are the
//! same copy the other way.

use ndarray::{ArrayD, IxDyn, Slice, SliceInfoElem};

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::memory;
use crate::ops::reductions::accumulate_view;
use crate::ops::shape_mismatch;
use crate::var::Var;

/// `index` (negative: counting from the end) as a position in an axis of
/// `length`, if it is within `0..=length`.
fn position(index: isize, length: usize) -> Option<usize> {
    if index < 0 {
        length.checked_sub(index.unsigned_abs())
    } else {
        Some(index.unsigned_abs()).filter(|&i| i <= length)
    }
}

/// Panics unless `elems` slice `shape` (the rules of ndarray's `slice`).
#[track_caller]
fn check_slice(shape: &[usize], elems: &[SliceInfoElem]) {
    let named = elems
        .iter()
        .filter(|e| !matches!(e, SliceInfoElem::NewAxis))
        .count();
    assert!(
        named == shape.len(),
        "slice_with: {named} axes sliced, expected one entry per axis of shape {shape:?} \
         ({} axes; `NewAxis` entries not counted)",
        shape.len()
    );
    let mut axis = 0;
    for elem in elems {
        match *elem {
            SliceInfoElem::NewAxis => continue,
            SliceInfoElem::Index(index) => {
                let length = shape[axis];
                assert!(
                    position(index, length).is_some_and(|i| i < length),
                    "slice_with: index {index} is out of range for axis {axis} of length \
                     {length} (shape {shape:?})"
                );
            }
            SliceInfoElem::Slice { start, end, step } => {
                let length = shape[axis];
                let end_text = end.map_or(String::new(), |e| e.to_string());
                assert!(
                    step != 0,
                    "slice_with: step 0 along axis {axis} (shape {shape:?}); expected a \
                     positive or negative step"
                );
                assert!(
                    position(start, length).is_some()
                        && end.is_none_or(|e| position(e, length).is_some()),
                    "slice_with: range {start}..{end_text} is out of bounds for axis {axis} of \
                     length {length} (shape {shape:?})"
                );
            }
        }
        axis += 1;
    }
}

impl<A: Element> Var<A> {
    /// A slice of several axes at once, written with ndarray's `s!` macro
    /// (or any list of [`SliceInfoElem`]), one entry per axis:
    ///
    /// - `a..b;step` takes positions `a`, `a + step`, ... before `b`
    ///   (`..` is the whole axis, `a..` runs to its end); negative `a` and
    ///   `b` count from the end; a negative step reads the range `a..b`
    ///   backwards from its last element (ndarray's convention: `..;-1`
    ///   reverses the axis, `1..4;-2` takes positions 3 and 1);
    /// - a single index `i` takes that position and removes the axis;
    /// - `NewAxis` inserts an axis of length 1 (and slices nothing).
    ///
    /// Each element of the result is a distinct element of the input, and
    /// its gradient goes back there; the other elements get none.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::{array, s};
    ///
    /// let x = Var::constant(array![[1.0f32, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]);
    /// assert_eq!(x.slice_with(s![.., ..;2]).array(), &array![[1.0, 3.0], [5.0, 7.0]].into_dyn());
    /// assert_eq!(x.slice_with(s![-1, ..;-1]).array(), &array![8.0, 7.0, 6.0, 5.0].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When the entries do not name each axis once, an index or range is
    /// out of bounds, or a step is 0; the message names the axis and the
    /// shape.
    #[track_caller]
    pub fn slice_with<S: AsRef<[SliceInfoElem]>>(
        &self,
        info: S,
    ) -> Pending<A, impl BackwardStep<A> + use<A, S>> {
        let elems: Vec<SliceInfoElem> = info.as_ref().to_vec();
        check_slice(self.shape(), &elems);
        let value = memory::copy_of(self.array().slice(elems.as_slice()));
        let x = self.clone();
        Pending::new(
            "slice_with",
            value,
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                x.accumulate_with(|mut gx| {
                    let mut region = gx.slice_mut(elems.as_slice());
                    region += &grad;
                });
                memory::recycle(grad);
            },
        )
    }

    /// The tensor surrounded by `value`: `widths[axis] = (before, after)`
    /// elements are added before and after it along each axis, one pair
    /// per axis (PyTorch's constant `pad`, with the pairs in axis order).
    /// The gradient of the padding is dropped.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f64, 2.0]]);
    /// let padded = x.pad(&[(1, 0), (0, 2)], 0.0);
    /// assert_eq!(padded.array(), &array![[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 0.0, 0.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `widths` does not have one pair per axis of the tensor.
    #[track_caller]
    pub fn pad(
        &self,
        widths: &[(usize, usize)],
        value: A,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let shape = self.shape();
        if widths.len() != shape.len() {
            shape_mismatch(
                "pad",
                shape,
                &[widths.len()],
                &format!(
                    "expected one (before, after) pair per axis, {} pairs, got {}",
                    shape.len(),
                    widths.len()
                ),
            );
        }
        let padded: Vec<usize> = shape
            .iter()
            .zip(widths)
            .map(|(&n, &(before, after))| before + n + after)
            .collect();
        let inner = move |axis: usize, length: usize| {
            let before = widths[axis].0;
            Slice::from(before..before + length)
        };
        let mut out = memory::scratch(IxDyn(&padded));
        out.fill(value);
        out.slice_each_axis_mut(|d| inner(d.axis.index(), shape[d.axis.index()]))
            .assign(self.array());
        let widths = widths.to_vec();
        let x = self.clone();
        Pending::new(
            "pad",
            out,
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                let shape = x.shape();
                let centre = grad.slice_each_axis(|d| {
                    let axis = d.axis.index();
                    let before = widths[axis].0;
                    Slice::from(before..before + shape[axis])
                });
                accumulate_view(&x, centre);
                memory::recycle(grad);
            },
        )
    }
}
