//! Memory: the thread's pool of free buffers, behind [`take`] and
//! [`give`].
//!
//! In continuation-passing style every value and gradient lives until
//! its operation's backward step has run, and is then usually dropped. A
//! training loop runs the same computation again and again, so the same
//! few lengths come and go: a buffer given back serves the next request of
//! its length instead of going back to the allocator, which costs more
//! than the arithmetic on small tensors and, for buffers of many sizes,
//! fragments its heap. Values, gradients, stacked rows and kernel scratch
//! all come from here and return here.
//!
//! The policy (which lengths, how many of each, how much memory) is
//! [`Shelves`], and is the only one: the nodes of finished results that
//! keep their value for the next result of its length (`var/pool.rs`) are
//! kept by it too. The boxes that gradients travel in between nodes
//! ([`boxed`]) are the one other thing kept, since a box is an allocation
//! of one fixed size.

mod boxes;
mod buffers;
mod shelves;

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::thread::LocalKey;

use ndarray::ArrayD;

pub(crate) use boxes::{boxed, unboxed};
use buffers::Buffers;
pub(crate) use shelves::Shelves;

use crate::element::Element;

thread_local! {
    static F32: RefCell<Buffers<f32>> = const { RefCell::new(Buffers::new()) };
    static F64: RefCell<Buffers<f64>> = const { RefCell::new(Buffers::new()) };
}

/// Runs `f` on this thread's buffers for `A`; `None` while they are in
/// use or already destroyed (at thread exit).
#[inline]
fn with<A: Element, R>(f: impl FnOnce(&mut Buffers<A>) -> R) -> Option<R> {
    per_element::<A, _, _, _, R>(&F32, &F64, f)
}

/// Runs `f` on the thread-local state of `A`, kept in `for_f32` for `f32`
/// and in `for_f64` for `f64` (each a `RefCell` of the state of its own
/// element type, `Want` for `A`); `None` while that state is in use or
/// already destroyed (at thread exit), and for the other element types
/// ([`Dual`](crate::element::Dual) numbers), which keep no state: their
/// buffers come from the allocator. The check on the type folds away at
/// compile time. Every per-thread, per-element-type store of the runtime
/// is reached this way.
#[inline]
pub(crate) fn per_element<A: Element, T32: 'static, T64: 'static, Want: 'static, R>(
    for_f32: &'static LocalKey<RefCell<T32>>,
    for_f64: &'static LocalKey<RefCell<T64>>,
    f: impl FnOnce(&mut Want) -> R,
) -> Option<R> {
    #[inline]
    fn on<T: 'static, Want: 'static, R>(
        key: &'static LocalKey<RefCell<T>>,
        f: impl FnOnce(&mut Want) -> R,
    ) -> Option<R> {
        key.try_with(|cell| {
            let mut state = cell.try_borrow_mut().ok()?;
            let state = (&mut *state as &mut dyn Any).downcast_mut::<Want>()?;
            Some(f(state))
        })
        .ok()
        .flatten()
    }
    if TypeId::of::<A>() == TypeId::of::<f32>() {
        on(for_f32, f)
    } else if TypeId::of::<A>() == TypeId::of::<f64>() {
        on(for_f64, f)
    } else {
        None
    }
}

/// Whether `A` has per-thread stores (see [`per_element`]).
#[inline]
pub(crate) fn keeps_state<A: Element>() -> bool {
    TypeId::of::<A>() == TypeId::of::<f32>() || TypeId::of::<A>() == TypeId::of::<f64>()
}

/// An empty buffer with room for `len` elements: one given back earlier,
/// or a new allocation of its class's capacity.
#[inline]
pub(crate) fn take<A: Element>(len: usize) -> Vec<A> {
    let mut data = kept(len).unwrap_or_else(|| Vec::with_capacity(buffers::room_for(len)));
    data.clear();
    data
}

/// Gives `data` back for the next request of its length when the policy
/// keeps it; frees it otherwise.
#[inline]
pub(crate) fn give<A: Element>(data: Vec<A>) {
    if data.capacity() == 0 {
        return;
    }
    // Freed outside the pool's borrow when not kept.
    let _rejected = with(move |pool: &mut Buffers<A>| pool.keep(data));
}

/// A kept buffer with room for `len` elements, with the elements it was
/// kept with.
#[inline]
fn kept<A: Element>(len: usize) -> Option<Vec<A>> {
    with(|pool: &mut Buffers<A>| pool.take(len)).flatten()
}

/// Gives back the buffer of `array`.
#[inline]
pub(crate) fn recycle<A: Element>(array: ArrayD<A>) {
    give(array.into_raw_vec_and_offset().0);
}

/// A new array of zeros of `shape`, in a kept buffer when there is one.
pub(crate) fn zeros<A: Element, D: ndarray::Dimension>(shape: D) -> ndarray::Array<A, D> {
    let len = shape.size();
    let mut data = take(len);
    data.resize(len, A::zero());
    // SAFETY: `data` has exactly as many elements as the shape, taken with
    // standard strides.
    unsafe { ndarray::Array::from_shape_vec_unchecked(shape, data) }
}

/// A new array of `shape` whose elements are unspecified: a kept buffer's
/// old values when one is free, zeros otherwise. For results written in
/// full before they are read, such as a matrix product with `beta = 0`,
/// which then costs no pass to clear its output first.
pub(crate) fn scratch<A: Element, D: ndarray::Dimension>(shape: D) -> ndarray::Array<A, D> {
    let data = stale(shape.size());
    // SAFETY: `data` has exactly as many elements as the shape, taken with
    // standard strides.
    unsafe { ndarray::Array::from_shape_vec_unchecked(shape, data) }
}

/// A buffer of `len` elements whose values are unspecified (see
/// [`scratch`]).
pub(crate) fn stale<A: Element>(len: usize) -> Vec<A> {
    let mut data = kept(len).unwrap_or_else(|| Vec::with_capacity(buffers::room_for(len)));
    // Only what the kept buffer lacks is written: its own elements stay.
    data.resize(len, A::zero());
    data
}

/// An owned copy of `view` in standard layout, in a kept buffer when
/// there is one.
pub(crate) fn copy_of<A: Element>(view: ndarray::ArrayViewD<'_, A>) -> ArrayD<A> {
    let Some(values) = view.as_slice() else {
        // A strided view (a block of columns, say) is copied by ndarray's
        // assignment, which walks contiguous rows as slices; an element
        // iterator would cost several times more.
        let mut copy = scratch(view.raw_dim());
        copy.assign(&view);
        return copy;
    };
    let mut data = take(values.len());
    data.extend_from_slice(values);
    // SAFETY: `data` has as many elements as the view's shape, in
    // standard layout.
    unsafe { ArrayD::from_shape_vec_unchecked(view.raw_dim(), data) }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};

    /// A buffer given back serves the next request of its length, with
    /// room for it.
    #[test]
    fn a_buffer_given_back_serves_the_next_request_of_its_length() {
        // Asked for once and missed: one buffer of this length is kept.
        let first = super::take::<f32>(300);
        let address = first.as_ptr();
        super::give(first);
        let second = super::take::<f32>(300);
        assert_eq!(second.as_ptr(), address);
        assert!(second.is_empty() && second.capacity() >= 300);
    }

    /// A copy of a contiguous or a strided view has the view's elements
    /// in standard layout.
    #[test]
    fn a_copy_of_a_view_is_in_standard_layout() {
        let whole = ArrayD::from_shape_fn(IxDyn(&[3, 5]), |i| (i[0] * 10 + i[1]) as f32);
        let columns = whole.slice(ndarray::s![.., 1..4]).into_dyn();
        let transposed = whole.t().into_dyn();
        for view in [whole.view(), columns, transposed] {
            let copy = super::copy_of(view.clone());
            assert_eq!(copy, view);
            assert!(copy.is_standard_layout());
        }
    }
}
