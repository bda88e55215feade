//! Bind points: a value handed to the rest of the code, run as a
//! computation or passed on as it is, as its type decides.

use std::cell::Cell;
use std::marker::PhantomData;

use crate::computation::Computation;
use crate::stack;

/// Holds a value at a bind point while method resolution picks how to bind
/// it: a [`Computation`] is run in continuation-passing style, anything else
/// is handed to the continuation as is.
///
/// A computation is taken by value (no auto-reference), so it moves
/// straight into its bind: the frame of the bind point, which is live for
/// the whole rest of the computation (the stack is the tape), holds it
/// once. A plain value is reached through one more (mutable)
/// auto-reference and taken out of the `Option`.
pub struct Bind<T>(Option<T>);

impl<T> Bind<T> {
    /// Wraps the value of a bind point.
    #[inline(always)]
    pub fn new(value: T) -> Self {
        Bind(Some(value))
    }

    #[inline(always)]
    fn into_inner(self) -> T {
        match self.0 {
            Some(value) => value,
            None => unreachable!("a bind point is bound once"),
        }
    }
}

/// Chosen first by method resolution (no auto-reference needed): the value
/// is a computation, so run it with the continuation.
pub trait BindComputation {
    /// What the continuation receives.
    type Output;
    /// Binds the value to the continuation `k`.
    fn __cps_bind<K: FnOnce(Self::Output)>(self, k: K);
    /// The same, first moving to another stack segment if this one runs low.
    fn __cps_bind_checked<K: FnOnce(Self::Output)>(self, k: K);
}

impl<C: Computation> BindComputation for Bind<C> {
    type Output = C::Output;
    #[inline(always)]
    fn __cps_bind<K: FnOnce(C::Output)>(self, k: K) {
        self.into_inner().bind_in_place(k)
    }
    #[inline(always)]
    fn __cps_bind_checked<K: FnOnce(C::Output)>(self, k: K) {
        self.into_inner().bind(k)
    }
}

/// Chosen when [`BindComputation`] does not apply (one more, mutable,
/// auto-reference): an ordinary value goes straight to the continuation.
pub trait BindPlain {
    /// What the continuation receives.
    type Output;
    /// Hands the value to the continuation `k`.
    fn __cps_bind<K: FnOnce(Self::Output)>(self, k: K);
    /// The same, first moving to another stack segment if this one runs low.
    fn __cps_bind_checked<K: FnOnce(Self::Output)>(self, k: K);
}

impl<T> BindPlain for &mut Bind<T> {
    type Output = T;
    #[inline(always)]
    fn __cps_bind<K: FnOnce(T)>(self, k: K) {
        match self.0.take() {
            Some(value) => k(value),
            None => unreachable!("a bind point is bound once"),
        }
    }
    #[inline(always)]
    fn __cps_bind_checked<K: FnOnce(T)>(self, k: K) {
        stack::grow(move || self.__cps_bind(k))
    }
}

/// Holds the value of a bind point that initialises a `let` of type `T`.
/// Method resolution prefers [`BindAsPlain`] when the value already is a
/// `T` (inferring it, for `collect()`), then [`BindAsComputation`] when it
/// is a computation producing a `T`.
pub struct BindAs<T, V>(Cell<Option<V>>, PhantomData<fn() -> T>);

impl<T, V> BindAs<T, V> {
    /// Wraps the value of a bind point.
    #[inline(always)]
    pub fn new(value: V) -> Self {
        BindAs(Cell::new(Some(value)), PhantomData)
    }

    #[inline(always)]
    fn take(&self) -> V {
        match self.0.take() {
            Some(value) => value,
            None => unreachable!("a bind point is bound once"),
        }
    }
}

/// The value already has the `let`'s type: hand it on.
pub trait BindAsPlain<T> {
    /// Hands the value to the continuation `k`.
    fn __cps_bind_as<K: FnOnce(T)>(&self, k: K);
    /// The same, first moving to another stack segment if this one runs low.
    fn __cps_bind_as_checked<K: FnOnce(T)>(&self, k: K);
}

impl<T> BindAsPlain<T> for BindAs<T, T> {
    #[inline(always)]
    fn __cps_bind_as<K: FnOnce(T)>(&self, k: K) {
        k(self.take())
    }
    #[inline(always)]
    fn __cps_bind_as_checked<K: FnOnce(T)>(&self, k: K) {
        stack::grow(move || k(self.take()))
    }
}

/// The value is a computation of the `let`'s type: run it.
pub trait BindAsComputation<T> {
    /// Runs the computation with the continuation `k`.
    fn __cps_bind_as<K: FnOnce(T)>(&self, k: K);
    /// The same, first moving to another stack segment if this one runs low.
    fn __cps_bind_as_checked<K: FnOnce(T)>(&self, k: K);
}

impl<T, C: Computation<Output = T>> BindAsComputation<T> for &BindAs<T, C> {
    #[inline(always)]
    fn __cps_bind_as<K: FnOnce(T)>(&self, k: K) {
        self.take().bind_in_place(k)
    }
    #[inline(always)]
    fn __cps_bind_as_checked<K: FnOnce(T)>(&self, k: K) {
        self.take().bind(k)
    }
}
