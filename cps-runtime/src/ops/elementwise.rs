//! Elementwise operations: the arithmetic operators `+ - * /` and unary
//! `-`, and unary functions (`exp`, `log`, `tanh`, `sigmoid`, ...).
//!
//! # Operators
//!
//! The left side of `+ - * /` may be a [`Var`] (by value or by reference),
//! a `&`[`Param`], or an `f32`/`f64` scalar; the right side anything that is
//! [`IntoOperand`]: the same tensor forms or a scalar of the element type.
//! The result is a [`Pending`] to bind, like every other operation.
//!
//! # Broadcasting
//!
//! By NumPy's rules: the shapes are aligned at their last axis, two sizes
//! agree when they are equal or one of them is 1 (a missing leading axis
//! counts as 1), and the result takes the larger; each side is read as if
//! repeated along the axes where it has size 1, and its gradient is the
//! result's gradient summed back over them. A scalar (`f32`/`f64`) on
//! either side is a one-element tensor. Shapes that do not broadcast panic
//! with a message naming the operator (`add`, `sub`, `mul`, `div`), both
//! shapes and the axis where they disagree.
//!
//! The common forms run on paths of their own, with the same results:
//! equal shapes, a one-element side, and a vector along the other side's
//! last axis (a bias).
//!
//! ```
//! use cps_runtime::*;
//! use ndarray::array;
//!
//! let x = Param::new(array![[1.0f64, 2.0], [3.0, 4.0]]);
//! let b = Param::new(array![10.0f64, 20.0]);
//! let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
//!     // 2x + b, with the bias broadcast along the rows, then summed.
//!     (2.0 * &x).bind(|y| (y + &b).bind(|z| z.sum().bind(|s| k(s))))
//! });
//! assert_eq!(loss.backward(), 2.0 * 10.0 + 2.0 * 30.0);
//! assert_eq!(x.grad(), array![[2.0, 2.0], [2.0, 2.0]].into_dyn());
//! // Each bias element was added to both rows.
//! assert_eq!(b.grad(), array![2.0, 2.0].into_dyn());
//! ```

use std::mem::MaybeUninit;
use std::ops::{Add, Div, Mul, Neg, Sub};

use ndarray::{ArrayD, Zip};

use crate::computation::{BackwardStep, BoxedGrad, BoxedStep, Pending};
use crate::element::Element;
use crate::flat::{slice, slice_mut};
use crate::kernels::vector_math::map_with;
use crate::memory::{self, boxed, unboxed};
use crate::ops::broadcast::{broadcast_shape, map_broadcast, read_as, sum_to_shape};
use crate::ops::operand::{IntoOperand, Operand};
use crate::param::Param;
use crate::var::{NOT_FLAT, Var, flat_len_for, same_shape};

// ---------------------------------------------------------------------------
// Arithmetic operators
// ---------------------------------------------------------------------------

/// The backward step of an arithmetic operator (`+ - * /`): the operands
/// and how their shapes were broadcast. It is the `B` in the operators'
/// output type, `Pending<A, Arithmetic<A>>`, which is named (not an `impl
/// Trait`) so that the operator traits' `Output` can be written down.
pub struct Arithmetic<A: Element> {
    op: Op,
    left: Operand<A>,
    right: Operand<A>,
    broadcast: Broadcast,
    /// With [`Broadcast::Same`], when the forward pass found both operands
    /// in standard layout: their number of elements (and the result's,
    /// which it wrote in standard layout). [`NOT_FLAT`] otherwise. Values
    /// never change while an operation holds them (a shared parameter is
    /// copied on write), so the backward step reads them as slices without
    /// checking their layout again.
    flat_len: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
        }
    }
}

/// How the operands' shapes relate (see the module documentation): the
/// common forms first, each with a fast path, then any other pair of
/// shapes NumPy's rules broadcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Broadcast {
    Same,
    LeftOne,
    RightOne,
    LeftBias,
    RightBias,
    /// Any other: the result's shape is NumPy's (see `broadcast.rs`).
    General,
}

/// What one operand contributes to the result, from its gradient's point
/// of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Has the result's shape.
    Full,
    /// Has one element, applied everywhere.
    One,
    /// A vector applied along the result's last axis.
    Bias,
    /// Repeated along some axes of the result (NumPy's rules).
    Spread,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Left,
    Right,
}

/// An input of a backward step, with its `Var` when it needs a gradient.
type Recipient<'a, A> = (Which, Option<&'a Var<A>>);

impl Broadcast {
    /// How `left` and `right` relate. The common forms are recognised
    /// without building the result's shape (a one-element side of no
    /// higher rank, a vector along the other side's last axis); anything
    /// else is `General`, checked by NumPy's rules in `apply_general`.
    fn of(left: &[usize], right: &[usize]) -> Self {
        if same_shape(left, right) {
            return Broadcast::Same;
        }
        let one = |shape: &[usize]| shape.iter().all(|&d| d == 1);
        if one(right) && right.len() <= left.len() {
            Broadcast::RightOne
        } else if one(left) && left.len() <= right.len() {
            Broadcast::LeftOne
        } else if right.len() == 1 && left.last() == Some(&right[0]) {
            Broadcast::RightBias
        } else if left.len() == 1 && right.last() == Some(&left[0]) {
            Broadcast::LeftBias
        } else {
            Broadcast::General
        }
    }

    fn kind(self, which: Which) -> Kind {
        match (self, which) {
            (Broadcast::LeftOne, Which::Left) | (Broadcast::RightOne, Which::Right) => Kind::One,
            (Broadcast::LeftBias, Which::Left) | (Broadcast::RightBias, Which::Right) => Kind::Bias,
            (Broadcast::General, _) => Kind::Spread,
            _ => Kind::Full,
        }
    }
}

/// An operand as the kernels read it: a tensor (of the result's shape, or
/// a bias vector broadcast along the last axis) or a single value.
#[derive(Clone, Copy)]
enum Side<'a, A> {
    Full(&'a ArrayD<A>),
    Scalar(A),
}

fn operand_shape<A: Element>(operand: &Operand<A>) -> &[usize] {
    match operand {
        Operand::Tensor(var) => var.shape(),
        Operand::Scalar(_) => &[],
    }
}

fn side<A: Element>(operand: &Operand<A>, kind: Kind) -> Side<'_, A> {
    match operand {
        Operand::Scalar(value) => Side::Scalar(*value),
        Operand::Tensor(var) if kind == Kind::One => Side::Scalar(var.item()),
        Operand::Tensor(var) => Side::Full(var.array()),
    }
}

/// The elements of an operand read as a tensor of its own shape, when it is
/// in standard layout.
fn flat_elements<'a, A: Element>(operand: &'a Operand<A>, side: Side<'_, A>) -> Option<&'a [A]> {
    match (operand, side) {
        (Operand::Tensor(var), Side::Full(_)) => var.flat(),
        _ => None,
    }
}

/// The operand's `Var` when a gradient must be computed for it.
fn needs_grad<A: Element>(operand: &Operand<A>) -> Option<&Var<A>> {
    match operand {
        Operand::Tensor(var) if var.requires_grad() => Some(var),
        _ => None,
    }
}

/// The result `f(left, right)` over the broadcast shape (`broadcast` says
/// how the sides' shapes relate). At least one side is a tensor of the
/// result's shape; `flat` holds each side's elements
/// when it is a tensor in standard layout ([`Var::flat`]). With the result,
/// when both sides were tensors walked as flat slices: their length.
fn combine<A: Element>(
    op: &'static str,
    requires_grad: bool,
    broadcast: Broadcast,
    (left, right): (Side<'_, A>, Side<'_, A>),
    flat: (Option<&[A]>, Option<&[A]>),
    f: impl Fn(A, A) -> A,
) -> (Var<A>, Option<usize>) {
    // Standard-layout operands are walked as slices, into a pooled buffer:
    // the broadcasting iterator's set-up and a fresh allocation cost more
    // than the arithmetic on small tensors.
    match (left, right) {
        (Side::Full(l), Side::Full(r)) => {
            if let (Some(ls), Some(rs)) = flat
                && ls.len() == rs.len()
            {
                // Whether the shapes are equal or one is a bias vector as
                // long as the other's only row, element i meets element i.
                let like = if broadcast == Broadcast::Same || l.ndim() >= r.ndim() {
                    l
                } else {
                    r
                };
                // SAFETY: `like` has the slices' length, and the loop
                // writes every element.
                let out = unsafe {
                    Var::computed_like(op, requires_grad, like, ls.len(), |out| {
                        // One element (a chain of scalar operations) skips
                        // the set-up of a loop the compiler vectorised.
                        if let ([o], [l], [r]) = (&mut *out, ls, rs) {
                            o.write(f(*l, *r));
                            return;
                        }
                        for ((o, &l), &r) in out.iter_mut().zip(ls).zip(rs) {
                            o.write(f(l, r));
                        }
                    })
                };
                return (out, Some(ls.len()));
            }
            // A bias vector along the last axis of a standard-layout
            // tensor: the tensor's rows in turn meet the vector.
            if let (Some(ls), Some(rs)) = flat
                && let Some((full, rows, bias)) = match broadcast {
                    Broadcast::RightBias => Some((l, ls, rs)),
                    Broadcast::LeftBias => Some((r, rs, ls)),
                    _ => None,
                }
                && !bias.is_empty()
                && rows.len() % bias.len() == 0
            {
                // SAFETY: `full` has `rows.len()` elements, and the loop
                // writes every one, row by row.
                let out = unsafe {
                    Var::computed_like(op, requires_grad, full, rows.len(), |out| {
                        if broadcast == Broadcast::RightBias {
                            each_row(out, rows, bias, &f);
                        } else {
                            each_row(out, rows, bias, |x, b| f(b, x));
                        }
                    })
                };
                return (out, None);
            }
        }
        (Side::Full(l), Side::Scalar(r)) => {
            if let Some(ls) = flat.0 {
                // SAFETY: `ls` is all of `l`, and the loop writes every
                // element.
                let out = unsafe {
                    Var::computed_like(op, requires_grad, l, ls.len(), |out| {
                        for (o, &l) in out.iter_mut().zip(ls) {
                            o.write(f(l, r));
                        }
                    })
                };
                return (out, None);
            }
        }
        (Side::Scalar(l), Side::Full(r)) => {
            if let Some(rs) = flat.1 {
                // SAFETY: `rs` is all of `r`, and the loop writes every
                // element.
                let out = unsafe {
                    Var::computed_like(op, requires_grad, r, rs.len(), |out| {
                        for (o, &r) in out.iter_mut().zip(rs) {
                            o.write(f(l, r));
                        }
                    })
                };
                return (out, None);
            }
        }
        (Side::Scalar(_), Side::Scalar(_)) => {
            unreachable!("one side of an arithmetic operator is a tensor")
        }
    }
    let value = match (left, right) {
        (Side::Full(l), Side::Full(r)) if l.ndim() >= r.ndim() => {
            Zip::from(l).and_broadcast(r).map_collect(|&l, &r| f(l, r))
        }
        (Side::Full(l), Side::Full(r)) => {
            Zip::from(r).and_broadcast(l).map_collect(|&r, &l| f(l, r))
        }
        (Side::Full(l), Side::Scalar(r)) => l.mapv(|l| f(l, r)),
        (Side::Scalar(l), Side::Full(r)) => r.mapv(|r| f(l, r)),
        (Side::Scalar(_), Side::Scalar(_)) => {
            unreachable!("one side of an arithmetic operator is a tensor")
        }
    };
    (Var::computed(value, op, requires_grad), None)
}

/// `out = g(row, bias)` for each row of `rows` (whose length is a
/// multiple of the bias's) in turn.
#[inline(always)]
fn each_row<A: Element>(out: &mut [MaybeUninit<A>], rows: &[A], bias: &[A], g: impl Fn(A, A) -> A) {
    for (out, row) in out
        .chunks_exact_mut(bias.len())
        .zip(rows.chunks_exact(bias.len()))
    {
        for ((o, &x), &b) in out.iter_mut().zip(row).zip(bias) {
            o.write(g(x, b));
        }
    }
}

impl<A: Element> Arithmetic<A> {
    #[track_caller]
    fn apply(op: Op, left: Operand<A>, right: Operand<A>) -> Pending<A, Self> {
        let broadcast = Broadcast::of(operand_shape(&left), operand_shape(&right));
        if broadcast == Broadcast::General {
            let shape = broadcast_shape(op.name(), operand_shape(&left), operand_shape(&right));
            return Self::apply_general(op, left, right, &shape);
        }
        let l = side(&left, broadcast.kind(Which::Left));
        let r = side(&right, broadcast.kind(Which::Right));
        let requires_grad = needs_grad(&left).is_some() || needs_grad(&right).is_some();
        let name = op.name();
        let sides = (l, r);
        let flats = (
            flat_elements(&left, sides.0),
            flat_elements(&right, sides.1),
        );
        let (out, flat) = match op {
            Op::Add => combine(name, requires_grad, broadcast, sides, flats, |l, r| l + r),
            Op::Sub => combine(name, requires_grad, broadcast, sides, flats, |l, r| l - r),
            Op::Mul => combine(name, requires_grad, broadcast, sides, flats, |l, r| l * r),
            Op::Div => combine(name, requires_grad, broadcast, sides, flats, |l, r| l / r),
        };
        let flat_len = match flat {
            Some(len) if broadcast == Broadcast::Same => flat_len_for(len),
            _ => NOT_FLAT,
        };
        Pending::from_var(
            out,
            Arithmetic {
                op,
                left,
                right,
                broadcast,
                flat_len,
            },
        )
    }

    /// The derivative of the result with respect to one operand, as a
    /// factor in the form `operand` gives the operands and `output` the
    /// result: the one table both forms of the backward step read.
    /// [`Arithmetic::apply`] for operands that broadcast to `shape` by
    /// NumPy's rules in none of the common forms: both read in that shape.
    fn apply_general(
        op: Op,
        left: Operand<A>,
        right: Operand<A>,
        shape: &[usize],
    ) -> Pending<A, Self> {
        let (Operand::Tensor(l), Operand::Tensor(r)) = (&left, &right) else {
            unreachable!("a scalar operand is a one-element side")
        };
        let (l, r) = (l.array(), r.array());
        let value = match op {
            Op::Add => map_broadcast(l, r, shape, |l, r| l + r),
            Op::Sub => map_broadcast(l, r, shape, |l, r| l - r),
            Op::Mul => map_broadcast(l, r, shape, |l, r| l * r),
            Op::Div => map_broadcast(l, r, shape, |l, r| l / r),
        };
        let requires_grad = needs_grad(&left).is_some() || needs_grad(&right).is_some();
        Pending::from_var(
            Var::computed(value, op.name(), requires_grad),
            Arithmetic {
                op,
                left,
                right,
                broadcast: Broadcast::General,
                flat_len: NOT_FLAT,
            },
        )
    }

    fn factor<S, Y>(&self, which: Which, operand: impl Fn(Which) -> S, output: Y) -> Factor<S, Y> {
        match (self.op, which) {
            (Op::Add, _) | (Op::Sub, Which::Left) => Factor::Identity,
            (Op::Sub, Which::Right) => Factor::Negate,
            (Op::Mul, Which::Left) => Factor::Times(operand(Which::Right)),
            (Op::Mul, Which::Right) => Factor::Times(operand(Which::Left)),
            (Op::Div, Which::Left) => Factor::Over(operand(Which::Right)),
            // d(l/r)/dr = -l/r^2 = -y/r: reuses the output instead of squaring.
            (Op::Div, Which::Right) => Factor::NegTimesOver(output, operand(Which::Right)),
        }
    }
}

impl<A: Element> Arithmetic<A> {
    /// An operand's elements, from the layout the forward pass found
    /// ([`Arithmetic::flat_len`]).
    fn flat_operand(&self, which: Which) -> Flat<'_, A> {
        let operand = match which {
            Which::Left => &self.left,
            Which::Right => &self.right,
        };
        match operand {
            Operand::Scalar(value) => Flat::Scalar(*value),
            // SAFETY: the forward pass found this value in standard layout
            // with `flat_len` elements (`Arithmetic::apply`), and values do
            // not change while an operation holds them, so its elements are
            // the `flat_len` initialised values from its pointer; they stay
            // borrowed as long as `self`, which holds the `Var`.
            Operand::Tensor(var) => Flat::Slice(unsafe {
                std::slice::from_raw_parts(var.array().as_ptr(), self.flat_len as usize)
            }),
        }
    }

    /// [`Arithmetic::local`] from the layout the forward pass found; the
    /// output is the result it wrote (standard layout, `flat_len` elements).
    fn flat_local<'a>(&'a self, which: Which, output: &'a ArrayD<A>) -> FlatLocal<'a, A> {
        // SAFETY: the output was written by the forward pass in standard
        // layout with `flat_len` elements, and is borrowed for as long as
        // the slice.
        let output = unsafe { std::slice::from_raw_parts(output.as_ptr(), self.flat_len as usize) };
        self.factor(which, |operand| self.flat_operand(operand), output)
    }

    /// The order in which same-shape inputs receive their gradients, each
    /// with its `Var` when it needs one: the first adds its contribution
    /// into its own buffer while `grad` is unchanged, the last takes `grad`
    /// over (transformed in place) unless it has a buffer too. The right
    /// input is last unless it has a buffer already and the left one has
    /// none (as in the general case).
    fn same_shape_order(&self) -> (Recipient<'_, A>, Recipient<'_, A>) {
        let (left, right) = (needs_grad(&self.left), needs_grad(&self.right));
        let right_takes = match (left, right) {
            (Some(left), Some(right)) => !right.has_grad() || left.has_grad(),
            (left, _) => left.is_none(),
        };
        if right_takes {
            ((Which::Left, left), (Which::Right, right))
        } else {
            ((Which::Right, right), (Which::Left, left))
        }
    }

    /// [`Arithmetic::backward_same`] when the forward pass found both
    /// operands flat and `grad` is flat too: no layout is checked again,
    /// except that of an input's existing gradient. Hands `grad` back
    /// untouched otherwise.
    fn backward_flat(
        &self,
        output: &ArrayD<A>,
        mut grad: Box<ArrayD<A>>,
    ) -> Result<(), Box<ArrayD<A>>> {
        if self.flat_len == NOT_FLAT {
            return Err(grad);
        }
        let Some(g) = slice_mut(&mut grad).filter(|g| g.len() == self.flat_len as usize) else {
            return Err(grad);
        };
        let (first, last) = self.same_shape_order();
        if let (which, Some(var)) = first {
            let local = self.flat_local(which, output);
            var.accumulate_into(|buffer| add_flat(buffer, g, local));
        }
        if let (which, Some(var)) = last {
            let local = self.flat_local(which, output);
            if var.has_grad() {
                var.accumulate_into(|buffer| add_flat(buffer, g, local));
            } else {
                local.transform(g);
                var.accumulate_boxed(grad);
                return Ok(());
            }
        }
        memory::recycle(unboxed(grad));
        Ok(())
    }
}

/// `buffer += grad * local`, for the elements `grad` of a standard-layout
/// gradient of the buffer's shape. An input's existing buffer is usually
/// flat too; otherwise the contribution is formed flat, then added.
#[inline(always)]
fn add_flat<A: Element>(buffer: &mut ArrayD<A>, grad: &[A], local: FlatLocal<'_, A>) {
    match slice_mut(buffer) {
        Some(b) if b.len() == grad.len() => local.add_into(b, grad),
        _ => add_strided(buffer, grad, local),
    }
}

/// [`add_flat`] into a gradient buffer in another layout (a custom
/// operation put it there): the contribution is formed flat, then added.
/// Out of line, so that the usual way keeps a small frame.
#[cold]
#[inline(never)]
fn add_strided<A: Element>(buffer: &mut ArrayD<A>, grad: &[A], local: FlatLocal<'_, A>) {
    let mut contribution = grad.to_vec();
    local.transform(&mut contribution);
    let contribution = ndarray::ArrayViewD::from_shape(buffer.raw_dim(), &contribution)
        .expect("as many elements as the gradient");
    *buffer += &contribution;
}

impl<A: Element> BackwardStep<A> for Arithmetic<A> {
    fn backward(self, output: &ArrayD<A>, grad: ArrayD<A>) {
        self.backward_boxed(output, BoxedGrad(boxed(grad)));
    }

    fn backward_boxed(self, output: &ArrayD<A>, BoxedGrad(grad): BoxedGrad<A>) {
        if let Err(grad) = self.backward_flat(output, grad) {
            self.backward_general(output, unboxed(grad));
        }
    }
}

impl<A: Element> Arithmetic<A> {
    /// The backward step in any layout and broadcast: every array is read
    /// in standard layout (copied when it is not), each operand's factor
    /// over the result's elements ([`Flat::Cycle`] for a bias vector),
    /// and a broadcast operand's contribution summed back to its shape.
    /// The input of the result's shape that takes its gradient last, with
    /// no buffer of its own, takes `grad` over, transformed in place.
    fn backward_general(self, output: &ArrayD<A>, grad: ArrayD<A>) {
        let mut grad = match grad.is_standard_layout() {
            true => grad,
            false => grad.as_standard_layout().into_owned(),
        };
        let output = output.as_standard_layout();
        let values = [Which::Left, Which::Right].map(|which| match self.operand(which) {
            Operand::Tensor(var) if self.broadcast.kind(which) == Kind::Spread => Some(
                read_as(var.array(), output.shape())
                    .as_standard_layout()
                    .into_owned()
                    .into(),
            ),
            Operand::Tensor(var) => Some(var.array().as_standard_layout()),
            Operand::Scalar(_) => None,
        });
        let flat = |which: Which| -> Flat<'_, A> {
            let at = which as usize;
            match (self.operand(which), self.broadcast.kind(which)) {
                (Operand::Scalar(value), _) => Flat::Scalar(*value),
                (Operand::Tensor(var), Kind::One) => Flat::Scalar(var.item()),
                (Operand::Tensor(_), Kind::Bias) => Flat::Cycle(
                    values[at]
                        .as_ref()
                        .and_then(|v| v.as_slice())
                        .expect("standard"),
                ),
                (Operand::Tensor(_), Kind::Full | Kind::Spread) => Flat::Slice(
                    values[at]
                        .as_ref()
                        .and_then(|v| v.as_slice())
                        .expect("standard"),
                ),
            }
        };
        let y = output.as_slice().expect("a standard-layout output");
        let (first, last) = self.same_shape_order();
        // A full-shape input last in line without a buffer takes `grad`.
        let takes_over = |which: Which, var: &Var<A>| {
            which == last.0 && self.broadcast.kind(which) == Kind::Full && !var.has_grad()
        };
        for (which, var) in [first, last] {
            let Some(var) = var else { continue };
            if takes_over(which, var) {
                continue;
            }
            let local = self.factor(which, flat, y);
            let g = grad.as_slice().expect("standard layout");
            match self.broadcast.kind(which) {
                Kind::Full => var.accumulate_into(|buffer| add_flat(buffer, g, local)),
                Kind::Spread => {
                    let mut terms = memory::take(g.len());
                    terms.extend_from_slice(g);
                    local.transform(&mut terms);
                    let sum = {
                        let terms = ndarray::ArrayViewD::from_shape(output.raw_dim(), &terms)
                            .expect("as many terms as the result's elements");
                        sum_to_shape(terms, var.shape())
                    };
                    memory::give(terms);
                    var.accumulate(sum);
                }
                Kind::One => {
                    let total = local.sum(g);
                    var.accumulate_into(|buffer| buffer.mapv_inplace(|b| b + total));
                }
                Kind::Bias => var.accumulate_into(|buffer| match slice_mut(buffer) {
                    Some(columns) => local.add_rows_into(columns, g),
                    None => {
                        let mut columns = memory::zeros(buffer.raw_dim());
                        let sums = columns.as_slice_mut().expect("a new array is standard");
                        local.add_rows_into(sums, g);
                        *buffer += &columns;
                        memory::recycle(columns);
                    }
                }),
            }
        }
        if let (which, Some(var)) = last
            && takes_over(which, var)
        {
            let local = self.factor(which, flat, y);
            local.transform(grad.as_slice_mut().expect("standard layout"));
            var.accumulate_same_shape(grad);
        }
    }

    fn operand(&self, which: Which) -> &Operand<A> {
        match which {
            Which::Left => &self.left,
            Which::Right => &self.right,
        }
    }
}

/// A factor read by index over flat, standard-layout data.
#[derive(Clone, Copy)]
enum Flat<'a, A> {
    Scalar(A),
    /// One element per element of the gradient.
    Slice(&'a [A]),
    /// A bias vector: element `i` of the gradient reads element
    /// `i % len`.
    Cycle(&'a [A]),
}

/// The factor an operand's gradient is the result's gradient times, with
/// `S` the form of an operand and `Y` that of the output (over flat,
/// standard-layout data: [`FlatLocal`]).
#[derive(Clone, Copy)]
enum Factor<S, Y> {
    Identity,
    Negate,
    Times(S),
    Over(S),
    /// `-output / side`.
    NegTimesOver(Y, S),
}

/// The factor over flat, standard-layout data: every factor is a slice as
/// long as the gradient, or a scalar.
type FlatLocal<'a, A> = Factor<Flat<'a, A>, &'a [A]>;

impl<A: Element> FlatLocal<'_, A> {
    /// `grad <- grad * factor`, in place.
    #[inline(always)]
    fn transform(self, grad: &mut [A]) {
        match self {
            FlatLocal::Identity => {}
            FlatLocal::Negate => grad.iter_mut().for_each(|g| *g = -*g),
            FlatLocal::Times(f) => each_with(grad.iter_mut(), f, |g, f| *g *= f),
            FlatLocal::Over(f) => each_with(grad.iter_mut(), f, |g, f| *g /= f),
            FlatLocal::NegTimesOver(ys, f) => {
                each_with(grad.iter_mut().zip(ys), f, |(g, &y), f| *g = -(*g * y) / f)
            }
        }
    }

    /// `sum(grad * factor)`: the gradient of a one-element operand.
    fn sum(self, grad: &[A]) -> A {
        let mut total = A::zero();
        self.with_terms(grad, |terms| {
            total = terms.iter().fold(A::zero(), |t, &x| t + x)
        });
        total
    }

    /// `columns += Σ_rows grad * factor`, the rows of `grad` as long as
    /// `columns`: the gradient of a bias vector.
    fn add_rows_into(self, columns: &mut [A], grad: &[A]) {
        self.with_terms(grad, |terms| {
            for row in terms.chunks_exact(columns.len()) {
                columns.iter_mut().zip(row).for_each(|(c, &t)| *c += t);
            }
        });
    }

    /// Runs `each` on `grad * factor`: `grad` itself when the factor is one
    /// (a sum's operand), else a copy transformed.
    fn with_terms(self, grad: &[A], each: impl FnOnce(&[A])) {
        if let FlatLocal::Identity = self {
            return each(grad);
        }
        let mut terms = memory::take(grad.len());
        terms.extend_from_slice(grad);
        self.transform(&mut terms);
        each(&terms);
        memory::give(terms);
    }

    /// `buffer += grad * factor`, over buffers of equal length.
    #[inline(always)]
    fn add_into(self, buffer: &mut [A], grad: &[A]) {
        let pairs = buffer.iter_mut().zip(grad);
        match self {
            FlatLocal::Identity => pairs.for_each(|(b, &g)| *b += g),
            FlatLocal::Negate => pairs.for_each(|(b, &g)| *b += -g),
            FlatLocal::Times(f) => each_with(pairs, f, |(b, &g), f| *b += g * f),
            FlatLocal::Over(f) => each_with(pairs, f, |(b, &g), f| *b += g / f),
            FlatLocal::NegTimesOver(ys, f) => {
                each_with(pairs.zip(ys), f, |((b, &g), &y), f| *b += -(g * y) / f)
            }
        }
    }
}

/// Calls `each(item, factor)` for every item with the factor's element at
/// its position: one loop per form of the factor, so that the loop neither
/// matches the form nor checks an index.
#[inline(always)]
fn each_with<A: Copy, T>(
    items: impl Iterator<Item = T>,
    factor: Flat<'_, A>,
    mut each: impl FnMut(T, A),
) {
    match factor {
        Flat::Scalar(f) => items.for_each(|item| each(item, f)),
        Flat::Slice(fs) => items.zip(fs).for_each(|(item, &f)| each(item, f)),
        Flat::Cycle(fs) => items
            .zip(fs.iter().cycle())
            .for_each(|(item, &f)| each(item, f)),
    }
}

macro_rules! arithmetic_operator {
    ($Trait:ident, $method:ident, $op:expr) => {
        impl<A: Element, R: IntoOperand<A>> $Trait<R> for Var<A> {
            type Output = Pending<A, Arithmetic<A>>;
            fn $method(self, right: R) -> Self::Output {
                Arithmetic::apply($op, Operand::Tensor(self), right.into_operand())
            }
        }

        impl<A: Element, R: IntoOperand<A>> $Trait<R> for &Var<A> {
            type Output = Pending<A, Arithmetic<A>>;
            fn $method(self, right: R) -> Self::Output {
                Arithmetic::apply($op, Operand::Tensor(self.clone()), right.into_operand())
            }
        }

        impl<A: Element, R: IntoOperand<A>> $Trait<R> for &Param<A> {
            type Output = Pending<A, Arithmetic<A>>;
            fn $method(self, right: R) -> Self::Output {
                Arithmetic::apply($op, Operand::Tensor(self.var().clone()), right.into_operand())
            }
        }

        arithmetic_operator!(@scalar_left $Trait, $method, $op, f32);
        arithmetic_operator!(@scalar_left $Trait, $method, $op, f64);
    };
    (@scalar_left $Trait:ident, $method:ident, $op:expr, $scalar:ty) => {
        // A scalar on the left must be of the tensor's own element type:
        // with one implementation per left type, a literal (`2.0 * &x`)
        // takes its type from the tensor.
        impl $Trait<Var<$scalar>> for $scalar {
            type Output = Pending<$scalar, Arithmetic<$scalar>>;
            fn $method(self, right: Var<$scalar>) -> Self::Output {
                Arithmetic::apply($op, Operand::Scalar(self), Operand::Tensor(right))
            }
        }

        impl $Trait<&Var<$scalar>> for $scalar {
            type Output = Pending<$scalar, Arithmetic<$scalar>>;
            fn $method(self, right: &Var<$scalar>) -> Self::Output {
                Arithmetic::apply($op, Operand::Scalar(self), Operand::Tensor(right.clone()))
            }
        }

        impl $Trait<&Param<$scalar>> for $scalar {
            type Output = Pending<$scalar, Arithmetic<$scalar>>;
            fn $method(self, right: &Param<$scalar>) -> Self::Output {
                Arithmetic::apply($op, Operand::Scalar(self), Operand::Tensor(right.var().clone()))
            }
        }
    };
}

arithmetic_operator!(Add, add, Op::Add);
arithmetic_operator!(Sub, sub, Op::Sub);
arithmetic_operator!(Mul, mul, Op::Mul);
arithmetic_operator!(Div, div, Op::Div);

// ---------------------------------------------------------------------------
// Negation
// ---------------------------------------------------------------------------

/// The backward step of negation (`-x` or `x.neg()`), named so that the
/// `Neg` trait's `Output` can be written down.
pub struct Negation<A: Element> {
    input: Var<A>,
}

impl<A: Element> Negation<A> {
    fn apply(input: Var<A>) -> Pending<A, Self> {
        let x = input.clone();
        unary(&x, "neg", |x| -x, Negation { input })
    }
}

impl<A: Element> BackwardStep<A> for Negation<A> {
    fn backward(self, _output: &ArrayD<A>, mut grad: ArrayD<A>) {
        if self.input.has_grad() {
            self.input.accumulate_into(|buffer| *buffer -= &grad);
        } else {
            grad.mapv_inplace(|g| -g);
            self.input.accumulate_same_shape(grad);
        }
    }
}

impl<A: Element> Neg for Var<A> {
    type Output = Pending<A, Negation<A>>;
    fn neg(self) -> Self::Output {
        Negation::apply(self)
    }
}

impl<A: Element> Neg for &Var<A> {
    type Output = Pending<A, Negation<A>>;
    fn neg(self) -> Self::Output {
        Negation::apply(self.clone())
    }
}

impl<A: Element> Neg for &Param<A> {
    type Output = Pending<A, Negation<A>>;
    fn neg(self) -> Self::Output {
        Negation::apply(self.var().clone())
    }
}

// ---------------------------------------------------------------------------
// Unary functions
// ---------------------------------------------------------------------------

/// Adds `derivative(grad, reference)` elementwise into `input`'s gradient,
/// where `reference` is whatever the derivative is cheapest from (the
/// input or the output). Reuses `grad`'s buffer when the input has no
/// gradient yet, so a chain of unary operations allocates nothing backward.
fn add_unary_gradient<A: Element>(
    input: &Var<A>,
    mut grad: Box<ArrayD<A>>,
    reference: &ArrayD<A>,
    derivative: impl Fn(A, A) -> A,
) {
    // Standard-layout operands (the usual case) are walked as slices: the
    // general iterator's set-up dominates on small tensors.
    if !input.has_grad() {
        match (slice_mut(&mut grad), slice(reference)) {
            (Some(g), Some(r)) if g.len() == r.len() => g
                .iter_mut()
                .zip(r)
                .for_each(|(g, &r)| *g = derivative(*g, r)),
            _ => Zip::from(&mut *grad)
                .and(reference)
                .for_each(|g, &r| *g = derivative(*g, r)),
        }
        input.accumulate_boxed(grad);
    } else {
        input.accumulate_into(
            |buffer| match (slice_mut(buffer), slice(&grad), slice(reference)) {
                (Some(b), Some(g), Some(r)) if b.len() == g.len() && g.len() == r.len() => b
                    .iter_mut()
                    .zip(g.iter().zip(r))
                    .for_each(|(b, (&g, &r))| *b += derivative(g, r)),
                _ => Zip::from(buffer)
                    .and(&*grad)
                    .and(reference)
                    .for_each(|b, &g, &r| *b += derivative(g, r)),
            },
        );
        memory::recycle(unboxed(grad));
    }
}

/// The result of a unary elementwise operation `f`, with its backward step.
fn unary<A: Element, B: BackwardStep<A>>(
    x: &Var<A>,
    op: &'static str,
    f: impl Fn(A) -> A,
    backward: B,
) -> Pending<A, B> {
    let out = match x.flat() {
        // SAFETY: `xs` is all of `x`, and the loop writes every element.
        Some(xs) => unsafe {
            Var::computed_like(op, x.requires_grad(), x.array(), xs.len(), |out| {
                for (o, &x) in out.iter_mut().zip(xs) {
                    o.write(f(x));
                }
            })
        },
        None => Var::computed(x.array().mapv(f), op, x.requires_grad()),
    };
    Pending::from_var(out, backward)
}

/// The whole-slice forms of an elementwise function, which the element
/// types vectorise: `to` writes `f` of a slice into another, `in_place`
/// overwrites one.
struct SliceForms<A> {
    to: fn(&[A], &mut [MaybeUninit<A>]),
    in_place: fn(&mut [A]),
}

/// [`unary`] for functions with whole-slice forms, `f` being the same
/// function per element.
fn unary_vectorized<A: Element, B: BackwardStep<A>>(
    x: &Var<A>,
    op: &'static str,
    forms: SliceForms<A>,
    f: impl Fn(A) -> A,
    backward: B,
) -> Pending<A, B> {
    let out = match x.flat() {
        // SAFETY: `xs` is all of `x`, and the slice forms write every
        // element of an output as long as their input (or panic).
        Some(xs) => unsafe {
            Var::computed_like(op, x.requires_grad(), x.array(), xs.len(), |out| {
                (forms.to)(xs, out)
            })
        },
        None => Var::computed(
            map_with(x.array(), forms.in_place, f),
            op,
            x.requires_grad(),
        ),
    };
    Pending::from_var(out, backward)
}

impl<A: Element> Var<A> {
    /// Negation, elementwise; the same as the operator `-x`.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![1.0f32, -2.0]);
    /// x.neg().bind(|y| assert_eq!(y.array(), &array![-1.0, 2.0].into_dyn()));
    /// ```
    pub fn neg(&self) -> Pending<A, Negation<A>> {
        Negation::apply(self.clone())
    }

    /// Hyperbolic tangent, elementwise.
    pub fn tanh(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        unary_vectorized(
            self,
            "tanh",
            SliceForms {
                to: A::tanh_to,
                in_place: A::tanh_in_place,
            },
            A::tanh,
            BoxedStep(move |y: &ArrayD<A>, grad: Box<ArrayD<A>>| {
                // d tanh(x) = 1 - tanh(x)^2
                add_unary_gradient(&x, grad, y, |g, y| g * (A::one() - y * y));
            }),
        )
    }

    /// The exponential `e^x`, elementwise.
    pub fn exp(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        unary(
            self,
            "exp",
            A::exp,
            BoxedStep(move |y: &ArrayD<A>, grad: Box<ArrayD<A>>| {
                // d e^x = e^x: the output itself.
                add_unary_gradient(&x, grad, y, |g, y| g * y);
            }),
        )
    }

    /// The natural logarithm, elementwise. Non-positive elements give NaN
    /// or -inf, as in `f64::ln`.
    pub fn log(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        let backward = BoxedStep(move |_: &ArrayD<A>, grad: Box<ArrayD<A>>| {
            add_unary_gradient(&x, grad, x.array(), |g, x| g / x);
        });
        unary(self, "log", A::ln, backward)
    }

    /// The logistic function `1 / (1 + e^-x)`, elementwise.
    pub fn sigmoid(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        unary_vectorized(
            self,
            "sigmoid",
            SliceForms {
                to: A::sigmoid_to,
                in_place: A::sigmoid_in_place,
            },
            sigmoid,
            BoxedStep(move |y: &ArrayD<A>, grad: Box<ArrayD<A>>| {
                add_unary_gradient(&x, grad, y, |g, y| g * y * (A::one() - y));
            }),
        )
    }

    /// The rectifier `max(x, 0)`, elementwise. Its derivative at 0 is taken
    /// to be 0.
    pub fn relu(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        unary(
            self,
            "relu",
            |x| if x > A::zero() { x } else { A::zero() },
            BoxedStep(move |_: &ArrayD<A>, grad: Box<ArrayD<A>>| {
                add_unary_gradient(&x, grad, x.array(), |g, x| {
                    if x > A::zero() { g } else { A::zero() }
                });
            }),
        )
    }

    /// The square root, elementwise. Its gradient is infinite at 0.
    pub fn sqrt(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        unary(
            self,
            "sqrt",
            A::sqrt,
            BoxedStep(move |y: &ArrayD<A>, grad: Box<ArrayD<A>>| {
                // d sqrt(x) = 1 / (2 sqrt(x)): from the output, no second root.
                add_unary_gradient(&x, grad, y, |g, y| g / (y + y));
            }),
        )
    }

    /// The square `x * x`, elementwise.
    pub fn square(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        unary(
            self,
            "square",
            |x| x * x,
            BoxedStep(move |_: &ArrayD<A>, grad: Box<ArrayD<A>>| {
                add_unary_gradient(&x, grad, x.array(), |g, x| g * (x + x));
            }),
        )
    }

    /// The integer power `x^n`, elementwise.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![2.0f64, -3.0]);
    /// x.powi(3).bind(|y| assert_eq!(y.array(), &array![8.0, -27.0].into_dyn()));
    /// ```
    pub fn powi(&self, n: i32) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        unary(
            self,
            "powi",
            |x| x.powi(n),
            BoxedStep(move |_: &ArrayD<A>, grad: Box<ArrayD<A>>| {
                // n x^(n-1), computed directly rather than as n y / x, which
                // would be 0/0 at x = 0.
                let factor = A::from_f64_lossy(f64::from(n));
                add_unary_gradient(&x, grad, x.array(), |g, x| {
                    if n == 0 {
                        A::zero()
                    } else {
                        g * factor * x.powi(n - 1)
                    }
                });
            }),
        )
    }

    /// The absolute value, elementwise. Its derivative at 0 is taken to be 0.
    pub fn abs(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        unary(
            self,
            "abs",
            A::abs,
            BoxedStep(move |_: &ArrayD<A>, grad: Box<ArrayD<A>>| {
                add_unary_gradient(&x, grad, x.array(), |g, x| {
                    if x > A::zero() {
                        g
                    } else if x < A::zero() {
                        -g
                    } else {
                        A::zero()
                    }
                });
            }),
        )
    }
}

/// The logistic function, written so that neither branch can overflow:
/// `e^-x` is only computed for `x >= 0`, `e^x` only for `x < 0`.
fn sigmoid<A: Element>(x: A) -> A {
    if x >= A::zero() {
        A::one() / (A::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (A::one() + e)
    }
}
