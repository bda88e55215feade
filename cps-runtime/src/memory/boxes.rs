//! Boxed gradients: a node keeps its gradient in a box (16 bytes in the
//! node instead of the array's 120), and the boxes emptied when a gradient
//! moves on are kept per thread for the next gradients.

use std::cell::{Cell, RefCell};
use std::mem::MaybeUninit;

use ndarray::ArrayD;

use crate::element::Element;

/// A gradient moved into a box for a node's gradient slot, reusing an
/// empty box when the thread keeps one: a gradient passes from node to
/// node along a computation, and a fresh allocation for each would cost
/// more than the arithmetic on small tensors.
#[inline(always)]
pub(crate) fn boxed<A: Element>(grad: ArrayD<A>) -> Box<ArrayD<A>> {
    match shells::take::<A>() {
        Some(shell) => Box::write(shell, grad),
        None => Box::new(grad),
    }
}

/// The gradient out of its box, the empty box kept for the next one.
#[inline(always)]
pub(crate) fn unboxed<A: Element>(grad: Box<ArrayD<A>>) -> ArrayD<A> {
    #[cfg(test)]
    tests::UNBOXED.with(|count| count.set(count.get() + 1));
    let raw = Box::into_raw(grad);
    // SAFETY: `raw` comes from a `Box` of an initialised array, so it is
    // valid for reads and aligned; the array is read out exactly once, and
    // the allocation is then owned again as a box of uninitialised memory
    // of the same layout (`MaybeUninit<T>` has `T`'s), which never drops
    // its contents, so the array is not dropped twice.
    let (value, shell) = unsafe {
        (
            raw.read(),
            Box::from_raw(raw.cast::<MaybeUninit<ArrayD<A>>>()),
        )
    };
    shells::give(shell);
    value
}

mod shells {
    //! Empty boxes of gradients, kept per thread for the next gradients.
    //! An `ArrayD<f32>` and an `ArrayD<f64>` have the same layout (checked
    //! below: a pointer, a length, a capacity, a pointer, two shapes), so
    //! one stack of empty boxes serves both, and reaching it needs no
    //! dispatch on the element type.

    use super::*;

    type Shell = MaybeUninit<ArrayD<f32>>;

    const _: () = assert!(
        size_of::<ArrayD<f32>>() == size_of::<ArrayD<f64>>()
            && align_of::<ArrayD<f32>>() == align_of::<ArrayD<f64>>()
    );

    /// The most empty boxes a thread keeps besides the one at hand: a
    /// computation has few gradients in flight at once.
    const MAX_KEPT: usize = 1024;

    thread_local! {
        /// The box emptied last: a gradient taken out of one node usually
        /// goes into another right away (a chain of operations does
        /// nothing else), so one slot, reached without a borrow flag,
        /// serves most of them.
        static AT_HAND: Cell<Option<Box<Shell>>> = const { Cell::new(None) };
        /// Further empty boxes. The boxes are what is kept (allocations to
        /// move gradients into), so a `Vec` of them is the point.
        #[allow(clippy::vec_box)]
        static KEPT: RefCell<Vec<Box<Shell>>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty box, as a box for a gradient of `A`.
    #[inline(always)]
    fn cast<T, U>(shell: Box<MaybeUninit<T>>) -> Box<MaybeUninit<U>> {
        const {
            assert!(size_of::<T>() == size_of::<U>() && align_of::<T>() == align_of::<U>());
        }
        // SAFETY: `T` and `U` have the same size and alignment (checked at
        // compile time), so the allocation has the layout a box of
        // `MaybeUninit<U>` frees with; its contents are uninitialised
        // either way, so nothing is read or dropped as the wrong type.
        unsafe { Box::from_raw(Box::into_raw(shell).cast::<MaybeUninit<U>>()) }
    }

    /// An empty box for a gradient, if the thread keeps one.
    #[inline(always)]
    pub(super) fn take<A: Element>() -> Option<Box<MaybeUninit<ArrayD<A>>>> {
        match AT_HAND.try_with(Cell::take) {
            Ok(Some(shell)) => Some(cast(shell)),
            _ => take_kept().map(cast),
        }
    }

    #[inline(never)]
    fn take_kept() -> Option<Box<Shell>> {
        KEPT.try_with(|kept| kept.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten()
    }

    /// Keeps an empty box for the next gradient, if there is room (it is
    /// freed otherwise).
    #[inline(always)]
    pub(super) fn give<A: Element>(shell: Box<MaybeUninit<ArrayD<A>>>) {
        let shell = cast::<ArrayD<A>, ArrayD<f32>>(shell);
        if let Ok(Some(previous)) = AT_HAND.try_with(|at_hand| at_hand.replace(Some(shell))) {
            keep(previous);
        }
    }

    #[inline(never)]
    fn keep(shell: Box<Shell>) {
        let _rejected = KEPT.try_with(|kept| match kept.try_borrow_mut() {
            Ok(mut kept) if kept.len() < MAX_KEPT => {
                kept.push(shell);
                None
            }
            _ => Some(shell),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use ndarray::{ArrayD, IxDyn, array};

    use super::{boxed, unboxed};
    use crate::computation::Computation;
    use crate::param::Param;
    use crate::var::Var;

    thread_local! {
        /// How many gradients this thread has taken out of their box.
        pub(super) static UNBOXED: Cell<usize> = const { Cell::new(0) };
    }

    /// A gradient that reaches an elementwise function, or an operator
    /// on operands of one shape, goes on to an input with no gradient yet
    /// in the box it arrived in: it is never taken out of one box to be
    /// put into another.
    #[test]
    fn a_gradient_travels_down_a_chain_of_elementwise_steps_in_its_box() {
        let p = Param::new(array![1.0f32, 2.0]);
        let (c, d) = (
            Var::constant(array![3.0f32, 4.0]),
            Var::constant(array![2.0f32, 2.0]),
        );
        let before = UNBOXED.with(Cell::get);
        (p.var() * &c).bind(|y| {
            y.tanh().bind(|t| {
                (&t * &d).bind(|u| u.accumulate(ArrayD::ones(IxDyn(&[2]))));
            });
        });
        assert_eq!(UNBOXED.with(Cell::get) - before, 0);
        // And it carries the right values: d/dp sum(2 tanh(p c)).
        for ((g, p), c) in p.grad().iter().zip([1.0f32, 2.0]).zip([3.0f32, 4.0]) {
            let expected = 2.0 * (1.0 - (p * c).tanh().powi(2)) * c;
            assert!((g - expected).abs() <= 1e-6, "{g} vs {expected}");
        }
    }

    /// Gradients move in and out of boxes, and a box emptied by one element
    /// type carries the next gradient of the other one intact.
    #[test]
    fn gradient_boxes_are_reused_across_element_types() {
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 3]), (0..6).map(|v| v as f32).collect())
            .expect("six elements");
        let first = boxed(a.clone());
        let address = &*first as *const ArrayD<f32> as usize;
        assert_eq!(unboxed(first), a);
        let b = ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.5f64, -2.0, 0.25]).expect("three");
        let second = boxed(b.clone());
        // The emptied box is the one at hand, so the next gradient goes
        // into it, whatever its element type.
        assert_eq!(&*second as *const ArrayD<f64> as usize, address);
        assert_eq!(*second, b);
        // More boxes than the one at hand: all come back with their values.
        let many: Vec<_> = (0..5)
            .map(|i| boxed(ArrayD::from_elem(IxDyn(&[i + 1]), i as f32)))
            .collect();
        drop(unboxed(second));
        for (i, grad) in many.into_iter().enumerate() {
            assert_eq!(unboxed(grad), ArrayD::from_elem(IxDyn(&[i + 1]), i as f32));
        }
    }
}
