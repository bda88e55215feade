//! Shape operations: reshaping, joining, slicing, and gathering rows (an
//! embedding lookup) here; permuting, inserting, removing and merging
//! axes and broadcasting in `axes.rs`; stacking and splitting in
//! `parts.rs`; strided slices and padding in `strided.rs`; picking
//! elements by index in `gather.rs`.
//!
//! None of them computes anything; their backward steps route each
//! element's gradient back to the element it was copied from (adding up
//! where one element was copied several times).
//!
//! Axes are [`AxisIndex`]es (negative ones count from the end), except in
//! [`concat`](fn@concat), whose axis is a `usize`.

use std::mem::MaybeUninit;

use ndarray::{Array2, ArrayD, Axis, Dimension, Ix2, IxDyn, Slice};
use smallvec::SmallVec;

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::flat::{slice, slice_mut, write_copy};
use crate::memory;
use crate::ops::reductions::{AxisIndex, accumulate_view, check_axis, resolve_axis};
use crate::ops::shape_mismatch;
use crate::var::Var;

mod axes;
mod gather;
mod parts;
mod strided;

pub use parts::{Split, stack};

/// How many tables, and gathered rows, [`Var::rows_of`] keeps inline (its
/// backward step holds both lists): a level of a tree gathering from the
/// levels below it allocates nothing unless it is deeper or wider.
const INLINE_PARTS: usize = 16;

/// Joins tensors along an existing `axis` (see [`Var::concat`]).
///
/// ```
/// use cps_runtime::*;
/// use ndarray::array;
///
/// let a = Var::constant(array![[1.0f32, 2.0]]);
/// let b = Var::constant(array![[3.0f32, 4.0], [5.0, 6.0]]);
/// let joined = concat(&[&a, &b], 0);
/// assert_eq!(joined.array(), &array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]].into_dyn());
/// // A `Vec` of states is joined as it is.
/// let states = vec![a.clone(), b.clone()];
/// assert_eq!(concat(&states, 0).array(), joined.array());
/// ```
///
/// # Panics
/// When `parts` is empty, when `axis` is not an axis of the parts, or when
/// the parts' shapes differ outside `axis`.
#[track_caller]
pub fn concat<A: Element, P: AsRef<Var<A>>>(
    parts: &[P],
    axis: usize,
) -> Pending<A, impl BackwardStep<A> + use<A, P>> {
    let parts: SmallVec<[&Var<A>; INLINE_PARTS]> = parts.iter().map(AsRef::as_ref).collect();
    Var::concat(&parts, axis)
}

/// Rows of several tables stacked on top of each other (see
/// [`Var::rows_of`]).
///
/// ```
/// use cps_runtime::*;
/// use ndarray::array;
///
/// let first = Var::constant(array![[0.0f32, 0.5], [1.0, 1.5]]);
/// let second = Var::constant(array![[2.0f32, 2.5]]);
/// // Row 2 of the stack is row 0 of `second`.
/// let picked = rows_of(&[&first, &second], &[2, 0]);
/// assert_eq!(picked.array(), &array![[2.0, 2.5], [0.0, 0.5]].into_dyn());
/// // The tables may be held in a `Vec` as they are.
/// let tables = vec![first.clone(), second.clone()];
/// assert_eq!(rows_of(&tables, &[2, 0]).array(), picked.array());
/// ```
///
/// # Panics
/// As [`Var::rows_of`].
#[track_caller]
pub fn rows_of<A: Element, P: AsRef<Var<A>>>(
    parts: &[P],
    indices: &[usize],
) -> Pending<A, impl BackwardStep<A> + use<A, P>> {
    let parts: SmallVec<[&Var<A>; INLINE_PARTS]> = parts.iter().map(AsRef::as_ref).collect();
    Var::rows_of(&parts, indices)
}

/// The parts joined along `axis` into a result of `shape` (checked by the
/// caller). Parts in standard layout are copied chunk by chunk into the
/// result's buffer, which is not zero-filled first: in row-major order the
/// result is, for each index of the axes before `axis`, each part's
/// contiguous block of `length along axis × elements after axis` values
/// in turn. Other layouts take ndarray's general assignment.
fn joined<A: Element>(
    parts: &[&Var<A>],
    axis: usize,
    shape: &[usize],
    requires_grad: bool,
) -> Var<A> {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    if parts.iter().all(|p| slice(p.array()).is_some()) {
        let fill = |out: &mut [MaybeUninit<A>]| {
            let mut at = 0;
            for o in 0..outer {
                for part in parts {
                    let values = slice(part.array()).expect("checked to be in standard layout");
                    let block = part.shape()[axis] * inner;
                    write_copy(
                        &mut out[at..at + block],
                        &values[o * block..(o + 1) * block],
                    );
                    at += block;
                }
            }
            debug_assert_eq!(at, out.len());
        };
        // SAFETY: the parts' blocks fill the shape (they agree with it
        // outside `axis`, and their lengths along it sum to its), so
        // `fill` writes every element.
        return unsafe { Var::computed_shaped("concat", requires_grad, shape, fill) };
    }
    let mut value = ArrayD::zeros(IxDyn(shape));
    let mut start = 0;
    for part in parts {
        let end = start + part.shape()[axis];
        value
            .slice_axis_mut(Axis(axis), Slice::from(start..end))
            .assign(part.array());
        start = end;
    }
    Var::computed(value, "concat", requires_grad)
}

/// The first elements of a standard-layout `array`, as many as `shape`
/// holds, arranged in `shape`: its buffer, cut short, with no copy.
fn leading_part<A: Element>(array: ArrayD<A>, shape: &[usize]) -> ArrayD<A> {
    debug_assert!(array.is_standard_layout());
    let (mut data, offset) = array.into_raw_vec_and_offset();
    // A standard-layout array that owns its buffer starts at its start
    // (or is empty).
    let offset = offset.unwrap_or(0);
    let len: usize = shape.iter().product();
    data.truncate(offset + len);
    data.drain(..offset);
    ArrayD::from_shape_vec(IxDyn(shape), data).expect("the leading elements fill the shape")
}

/// Where a slice `start..end` along `axis` lies in a standard-layout
/// array: `outer` blocks of `length` elements (one per index of the axes
/// before `axis`), each holding the slice's `width` elements from `skip`.
pub(crate) struct Region {
    outer: usize,
    length: usize,
    skip: usize,
    width: usize,
}

impl Region {
    fn of(shape: &[usize], axis: usize, start: usize, end: usize) -> Region {
        let inner: usize = shape[axis + 1..].iter().product();
        Region {
            outer: shape[..axis].iter().product(),
            length: shape[axis] * inner,
            skip: start * inner,
            width: (end - start) * inner,
        }
    }

    /// Writes the region's elements of `values` (a whole array), in
    /// order, into `out` (all of it: `outer · width` elements).
    fn gather_into<A: Element>(&self, values: &[A], out: &mut [MaybeUninit<A>]) {
        debug_assert_eq!(out.len(), self.outer * self.width);
        if self.width == 0 {
            return;
        }
        for (block, part) in values
            .chunks_exact(self.length)
            .zip(out.chunks_exact_mut(self.width))
        {
            write_copy(part, &block[self.skip..self.skip + self.width]);
        }
    }

    /// `buffer`'s region `+= values` (the region's elements in order).
    fn add<A: Element>(&self, buffer: &mut [A], values: &[A]) {
        if self.width == 0 {
            return;
        }
        for (block, part) in buffer
            .chunks_exact_mut(self.length)
            .zip(values.chunks_exact(self.width))
        {
            for (b, &v) in block[self.skip..self.skip + self.width]
                .iter_mut()
                .zip(part)
            {
                *b += v;
            }
        }
    }

    /// An array of `shape` holding `values` in the region and zeros
    /// elsewhere, each element written once.
    fn spread<A: Element>(&self, values: &[A], shape: &[usize]) -> ArrayD<A> {
        let mut data = memory::take(self.outer * self.length);
        let after = self.length - self.skip - self.width;
        for o in 0..self.outer {
            data.resize(data.len() + self.skip, A::zero());
            data.extend_from_slice(&values[o * self.width..(o + 1) * self.width]);
            data.resize(data.len() + after, A::zero());
        }
        ArrayD::from_shape_vec(IxDyn(shape), data).expect("the blocks fill the shape")
    }
}

/// `x`'s elements, read in row-major order, arranged in `shape`: the
/// operation `op` (a reshape, or an operation that only adds, removes or
/// merges axes).
///
/// # Panics
/// When `shape` holds a different number of elements; the message names
/// `op` and both shapes.
#[track_caller]
pub(crate) fn reshaped<A: Element>(
    x: &Var<A>,
    op: &'static str,
    shape: &[usize],
) -> Pending<A, impl BackwardStep<A> + use<A>> {
    let wanted: usize = shape.iter().product();
    if wanted != x.len() {
        shape_mismatch(
            op,
            x.shape(),
            shape,
            &format!("{} elements cannot be arranged as {wanted}", x.len()),
        );
    }
    let requires_grad = x.requires_grad();
    let out = match x.flat() {
        // In standard layout, the elements in order are the result's.
        // SAFETY: `values` has `wanted` elements, all written.
        Some(values) => unsafe {
            Var::computed_shaped(op, requires_grad, shape, |out| write_copy(out, values))
        },
        None => Var::computed(
            x.array()
                .to_shape(IxDyn(shape))
                .expect("the element counts agree")
                .into_owned(),
            op,
            requires_grad,
        ),
    };
    let x = x.clone();
    Pending::from_var(out, move |_: &ArrayD<A>, grad: ArrayD<A>| {
        // Reuses the gradient's buffer when its layout allows.
        let grad = grad
            .into_shape_clone(IxDyn(x.shape()))
            .expect("the element counts agree");
        x.accumulate(grad);
    })
}

/// The elements of `x` at `start..end` along `axis` (checked by the
/// caller), as the result of `op`, with where they lie in `x`.
#[inline]
pub(crate) fn sliced<A: Element>(
    x: &Var<A>,
    op: &'static str,
    axis: usize,
    start: usize,
    end: usize,
) -> (Var<A>, Region) {
    let region = Region::of(x.shape(), axis, start, end);
    let requires_grad = x.requires_grad();
    let out = match slice(x.array()) {
        Some(values) => {
            let mut shape = x.array().raw_dim();
            shape[axis] = end - start;
            // SAFETY: `gather_into` writes every element of the region,
            // which has the result's shape.
            unsafe {
                Var::computed_shaped(op, requires_grad, shape.slice(), |out| {
                    region.gather_into(values, out)
                })
            }
        }
        None => Var::computed(
            x.array()
                .slice_axis(Axis(axis), Slice::from(start..end))
                .to_owned(),
            op,
            requires_grad,
        ),
    };
    (out, region)
}

/// Adds the gradient of a slice `start..end` along `axis` (lying at
/// `region`) into `x`'s gradient, and gives its buffer back.
#[inline]
pub(crate) fn add_slice_grad<A: Element>(
    x: &Var<A>,
    region: &Region,
    axis: usize,
    start: usize,
    end: usize,
    grad: ArrayD<A>,
) {
    if !x.has_grad()
        && let Some(g) = slice(&grad)
    {
        // The first gradient: the region's values, zeros around them,
        // written once.
        x.accumulate(region.spread(g, x.shape()));
    } else {
        x.accumulate_into(|gx| match (slice_mut(gx), slice(&grad)) {
            (Some(buffer), Some(g)) => region.add(buffer, g),
            _ => {
                let mut part = gx.slice_axis_mut(Axis(axis), Slice::from(start..end));
                part += &grad;
            }
        });
    }
    memory::recycle(grad);
}

impl<A: Element> Var<A> {
    /// The same elements, read in row-major order, arranged in `shape`.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let v = Var::constant(array![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
    /// assert_eq!(v.reshape(&[2, 3]).array(), &array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `shape` holds a different number of elements; the message names
    /// both shapes.
    #[track_caller]
    pub fn reshape(&self, shape: &[usize]) -> Pending<A, impl BackwardStep<A> + use<A>> {
        reshaped(self, "reshape", shape)
    }

    /// Joins `parts` along an existing `axis`; their shapes must agree on
    /// every other axis. Each part receives its own slice of the gradient.
    ///
    /// Also available as the free function [`concat`](fn@concat). A [`Param`](crate::Param)
    /// is passed as `&*param` (or through [`Param::var`](crate::Param::var)).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let h = Var::constant(array![1.0f64, 2.0]);
    /// let x = Var::constant(array![3.0f64]);
    /// assert_eq!(Var::concat(&[&h, &x], 0).array(), &array![1.0, 2.0, 3.0].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `parts` is empty, when `axis` is not an axis of the parts, or when
    /// the parts' shapes differ outside `axis` (the message names the first
    /// part's shape and the offending one).
    #[track_caller]
    pub fn concat(parts: &[&Var<A>], axis: usize) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let Some(first) = parts.first() else {
            panic!("concat: needs at least one part, got none");
        };
        let first_shape = first.shape();
        check_axis("concat", first_shape, axis);
        for (i, part) in parts.iter().enumerate().skip(1) {
            let shape = part.shape();
            let agrees = shape.len() == first_shape.len()
                && shape
                    .iter()
                    .zip(first_shape)
                    .enumerate()
                    .all(|(d, (a, b))| d == axis || a == b);
            if !agrees {
                shape_mismatch(
                    "concat",
                    first_shape,
                    shape,
                    &format!("part {i} differs from part 0 outside axis {axis}"),
                );
            }
        }

        let mut out_shape = SmallVec::<[usize; 4]>::from_slice(first_shape);
        out_shape[axis] = parts.iter().map(|p| p.shape()[axis]).sum();
        let requires_grad = parts.iter().any(|p| p.requires_grad());
        let out = joined(parts, axis, &out_shape, requires_grad);

        // Only the parts that need a gradient are kept, with their offsets
        // (inline for the usual two, as `[h_l; h_r]`).
        let inputs: SmallVec<[(Var<A>, usize); 2]> = if requires_grad {
            let mut start = 0;
            parts
                .iter()
                .filter_map(|p| {
                    let offset = start;
                    start += p.shape()[axis];
                    p.requires_grad().then(|| ((*p).clone(), offset))
                })
                .collect()
        } else {
            SmallVec::new()
        };
        Pending::from_var(out, move |_: &ArrayD<A>, grad: ArrayD<A>| {
            // Joined along the first axis, the first part's gradient is
            // the start of `grad`'s buffer: when that part has no
            // gradient yet, the buffer itself becomes it, cut short,
            // after the other parts have read theirs. (A state matrix
            // grown by one block per step would otherwise copy its
            // whole gradient back at every step.)
            let takes_buffer = match inputs.first() {
                Some((first, 0)) => axis == 0 && !first.has_grad() && slice(&grad).is_some(),
                _ => false,
            };
            let rest = if takes_buffer {
                &inputs[1..]
            } else {
                &inputs[..]
            };
            for (part, start) in rest {
                let end = start + part.shape()[axis];
                accumulate_view(part, grad.slice_axis(Axis(axis), Slice::from(*start..end)));
            }
            if takes_buffer {
                let first = &inputs[0].0;
                first.accumulate(leading_part(grad, first.shape()));
            } else {
                memory::recycle(grad);
            }
        })
    }

    /// The elements at positions `start..end` (half-open, as a Rust range)
    /// along `axis` (a negative axis counts from the end); the other axes
    /// are kept whole. `start == end` gives an empty tensor. See
    /// [`narrow`](Var::narrow) for a start and a length,
    /// [`split`](Var::split) for all the parts at once, and
    /// [`slice_with`](Var::slice_with) for steps and several axes.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// // Split a vector of gates into its parts.
    /// let gates = Var::constant(array![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
    /// assert_eq!(gates.slice(0, 2, 4).array(), &array![3.0, 4.0].into_dyn());
    /// let m = Var::constant(array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(m.slice(1, 1, 3).array(), &array![[2.0, 3.0], [5.0, 6.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor or when `start..end` is not
    /// within it (`start > end` or `end` past its length); the message names
    /// the shape, the axis and the range.
    #[track_caller]
    pub fn slice<X: AxisIndex>(
        &self,
        axis: X,
        start: usize,
        end: usize,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let axis = resolve_axis("slice", self.shape(), axis);
        let length = self.shape()[axis];
        assert!(
            start <= end && end <= length,
            "slice: range {start}..{end} is out of bounds for axis {axis} of length {length} (shape {:?})",
            self.shape()
        );
        let (out, region) = sliced(self, "slice", axis, start, end);
        let x = self.clone();
        Pending::from_var(out, move |_: &ArrayD<A>, grad: ArrayD<A>| {
            add_slice_grad(&x, &region, axis, start, end, grad);
        })
    }

    /// Gathers rows of a matrix: row `i` of the result is row `indices[i]`
    /// of `self`, so the result is `indices.len() × cols`. This is an
    /// embedding lookup; indices may repeat.
    ///
    /// The backward step adds each result row's gradient into the row it
    /// came from (repeated indices add up). When the table needs no
    /// gradient (data, or a frozen parameter) no gradient work is done at
    /// all, however large the table.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let table = Var::constant(array![[0.0f32, 0.5], [1.0, 1.5], [2.0, 2.5]]);
    /// assert_eq!(table.rows(&[2, 0, 2]).array(), &array![[2.0, 2.5], [0.0, 0.5], [2.0, 2.5]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `self` is not 2-D, or when an index is not below the number of
    /// rows (the message names `rows`, the index and the row count).
    #[track_caller]
    pub fn rows(&self, indices: &[usize]) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let table = self
            .array()
            .view()
            .into_dimensionality::<Ix2>()
            .unwrap_or_else(|_| {
                panic!(
                    "rows: gathers rows of a 2-D table, got shape {:?}",
                    self.shape()
                )
            });
        let (count, cols) = table.dim();
        let check = |i: usize| {
            assert!(
                i < count,
                "rows: index {i} is out of range for a table of {count} rows (shape {:?})",
                self.shape()
            );
        };
        // A row-major table's rows are copied as slices into a buffer that
        // is never zero-filled; other layouts go row by row.
        let value = match table.as_slice() {
            Some(all) => {
                let mut data = crate::memory::take(indices.len() * cols);
                for &i in indices {
                    check(i);
                    data.extend_from_slice(&all[i * cols..(i + 1) * cols]);
                }
                Array2::from_shape_vec((indices.len(), cols), data).expect("whole rows")
            }
            None => {
                let mut value = Array2::zeros((indices.len(), cols));
                for (mut out, &i) in value.rows_mut().into_iter().zip(indices) {
                    check(i);
                    out.assign(&table.row(i));
                }
                value
            }
        };

        let requires_grad = self.requires_grad();
        // The indices are copied only when a gradient will be scattered.
        let (x, indices) = if requires_grad {
            (Some(self.clone()), indices.to_vec())
        } else {
            (None, Vec::new())
        };
        Pending::new(
            "rows",
            value.into_dyn(),
            requires_grad,
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                let Some(x) = x else { return };
                let grad = grad
                    .into_dimensionality::<Ix2>()
                    .expect("rows produces a matrix");
                x.accumulate_with(|gx| {
                    let mut gx = gx
                        .into_dimensionality::<Ix2>()
                        .expect("the table is a matrix");
                    for (g, &i) in grad.rows().into_iter().zip(&indices) {
                        gx.row_mut(i).zip_mut_with(&g, |a, &b| *a += b);
                    }
                });
                memory::recycle(grad.into_dyn());
            },
        )
    }

    /// Rows of several 2-D tables with the same number of columns, as if
    /// they were stacked on top of each other: index `i` is row `i` of the
    /// stack `concat(parts, 0)`, and the result is that stack's
    /// [`rows`](Var::rows)`(indices)`. The stack itself is never formed,
    /// so a model that adds a block of rows per step (the states of a
    /// tree's nodes, level by level) can keep its blocks apart and gather
    /// from all of them, instead of copying a growing matrix at every
    /// step. Gradients go back to the parts the rows came from (repeated
    /// indices add up).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let leaves = Var::constant(array![[1.0f32, 1.0], [2.0, 2.0]]);
    /// let level = Var::constant(array![[3.0f32, 3.0]]);
    /// let children = Var::rows_of(&[&leaves, &level], &[2, 1]);
    /// assert_eq!(children.array(), &array![[3.0, 3.0], [2.0, 2.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `parts` is empty, when a part is not 2-D or has another number
    /// of columns than the first (the message names both shapes), or when
    /// an index is not below the parts' total number of rows (the message
    /// names the index and that total).
    #[track_caller]
    pub fn rows_of(
        parts: &[&Var<A>],
        indices: &[usize],
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let Some(first) = parts.first() else {
            panic!("rows_of: needs at least one table, got none");
        };
        let cols = match first.shape() {
            &[_, cols] => cols,
            shape => panic!("rows_of: gathers rows of 2-D tables, got shape {shape:?}"),
        };
        // Where each part's rows start in the stack, and the total.
        let mut starts = SmallVec::<[usize; INLINE_PARTS]>::new();
        let mut total = 0;
        for (i, part) in parts.iter().enumerate() {
            match part.shape() {
                &[rows, c] if c == cols => {
                    starts.push(total);
                    total += rows;
                }
                shape => shape_mismatch(
                    "rows_of",
                    first.shape(),
                    shape,
                    &format!("table {i} must be 2-D with the {cols} columns of table 0"),
                ),
            }
        }
        // The part holding stack row `i`, and the row within it.
        let locate = |i: usize| {
            assert!(
                i < total,
                "rows_of: index {i} is out of range for tables of {total} rows in all"
            );
            let part = starts.partition_point(|&start| start <= i) - 1;
            (part, i - starts[part])
        };
        // Each gathered row's part and row within it.
        let sources: SmallVec<[(usize, usize); INLINE_PARTS]> =
            indices.iter().map(|&i| locate(i)).collect();
        let mut data = crate::memory::take(indices.len() * cols);
        for &(part, row) in &sources {
            let values = parts[part].array();
            match slice(values) {
                Some(all) => data.extend_from_slice(&all[row * cols..(row + 1) * cols]),
                None => data.extend(values.index_axis(Axis(0), row).iter().copied()),
            }
        }
        let value = Array2::from_shape_vec((indices.len(), cols), data).expect("whole rows");

        let requires_grad = parts.iter().any(|p| p.requires_grad());
        // The parts that take a gradient, kept (with `sources`) only when
        // one will be scattered.
        let sources = if requires_grad {
            sources
        } else {
            SmallVec::new()
        };
        let targets: SmallVec<[Option<Var<A>>; INLINE_PARTS]> = if requires_grad {
            parts
                .iter()
                .map(|p| p.requires_grad().then(|| (*p).clone()))
                .collect()
        } else {
            SmallVec::new()
        };
        Pending::new(
            "rows_of",
            value.into_dyn(),
            requires_grad,
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                let grad = grad
                    .into_dimensionality::<Ix2>()
                    .expect("rows_of produces a matrix");
                for (p, target) in targets.iter().enumerate() {
                    let Some(target) = target else { continue };
                    target.accumulate_with(|gx| {
                        let mut gx = gx
                            .into_dimensionality::<Ix2>()
                            .expect("the tables are matrices");
                        for (g, &(part, row)) in grad.rows().into_iter().zip(&sources) {
                            if part == p {
                                gx.row_mut(row).zip_mut_with(&g, |a, &b| *a += b);
                            }
                        }
                    });
                }
                memory::recycle(grad.into_dyn());
            },
        )
    }
}
