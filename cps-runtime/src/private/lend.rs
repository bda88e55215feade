//! `&x` written as an argument of a call. In continuation-passing style the
//! call is still running while the rest of the caller runs, so what it
//! borrows stays borrowed until its backward step has run. A cheap shared
//! handle is lent as a copy of the handle instead, which nothing can tell
//! apart and which leaves `x` free to be moved; anything with state of its
//! own (a `RefCell`, a `Vec`, a user's struct) is lent itself. The type
//! decides, by method resolution:
//!
//! 1. `Copy` values (references among them): a copy ([`LendCopy`]);
//! 2. [`SharedHandle`]s (`Var`, `Rc`, `Arc`): a clone of the handle
//!    ([`LendHandle`]);
//! 3. anything else: the reference itself ([`LendItself`]).

use std::rc::Rc;
use std::sync::Arc;

use crate::element::Element;
use crate::var::Var;

/// A value written as `&x` in a call's arguments.
pub struct Lend<'a, T>(pub &'a T);

/// A lent copy, kept by the caller while the call runs.
pub struct Kept<T>(T);

impl<T> Kept<T> {
    /// The reference the call receives.
    #[inline(always)]
    pub fn __cps_get(&self) -> &T {
        &self.0
    }
}

/// A lent value itself.
pub struct Borrowed<'a, T>(&'a T);

impl<'a, T> Borrowed<'a, T> {
    /// The reference the call receives.
    #[inline(always)]
    pub fn __cps_get(&self) -> &'a T {
        self.0
    }
}

/// Handles whose clone shares everything with the original: lending a
/// clone is lending the same thing.
pub trait SharedHandle: Clone {}

impl<A: Element> SharedHandle for Var<A> {}
impl<T: ?Sized> SharedHandle for Rc<T> {}
impl<T: ?Sized> SharedHandle for Arc<T> {}

/// Tier 1 (no auto-reference): a `Copy` value is lent as a copy.
pub trait LendCopy {
    /// What the caller keeps.
    type Lent;
    /// Lends the value.
    fn __cps_lend(self) -> Self::Lent;
}

impl<T: Copy> LendCopy for Lend<'_, T> {
    type Lent = Kept<T>;
    #[inline(always)]
    fn __cps_lend(self) -> Kept<T> {
        Kept(*self.0)
    }
}

/// Tier 2 (one auto-reference): a shared handle is lent as a clone.
pub trait LendHandle {
    /// What the caller keeps.
    type Lent;
    /// Lends the value.
    fn __cps_lend(self) -> Self::Lent;
}

impl<T: SharedHandle> LendHandle for &Lend<'_, T> {
    type Lent = Kept<T>;
    #[inline(always)]
    fn __cps_lend(self) -> Kept<T> {
        Kept(self.0.clone())
    }
}

/// Tier 3 (one mutable auto-reference): anything else is lent itself.
pub trait LendItself<'a> {
    /// What the caller keeps.
    type Lent;
    /// Lends the value.
    fn __cps_lend(self) -> Self::Lent;
}

impl<'a, T> LendItself<'a> for &mut Lend<'a, T> {
    type Lent = Borrowed<'a, T>;
    #[inline(always)]
    fn __cps_lend(self) -> Borrowed<'a, T> {
        Borrowed(self.0)
    }
}
