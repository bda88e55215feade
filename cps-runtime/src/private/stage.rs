//! Statements evaluated in stages: as far as their values are plain, now;
//! from their first computation on, when that computation is bound.
//!
//! A statement such as `*counts.entry(w).or_insert(0) += 1` or
//! `log.borrow_mut().push(v)` has temporaries that borrow a variable. In
//! plain Rust they are dropped where the statement ends. If every bind
//! point nested the rest of the function inside its continuation, they
//! would live until the backward pass, and the rest could neither move nor
//! borrow that variable again. So a statement is lowered into a *staged*
//! value first: each bind point becomes
//!
//! ```text
//! Stage::new(value).__cps_stage().__cps_then(|t| <the rest of the statement>)
//! ```
//!
//! A plain value gives [`Now`], whose `__cps_then` calls the closure at
//! once: the temporary is dropped when the closure returns. A computation
//! gives [`Later`], whose `__cps_then` composes it with the closure into
//! one computation ([`Then`]). The statement's staged value is then run
//! with the rest of the function as its continuation ([`Staged`]).

use std::cell::Cell;
use std::marker::PhantomData;

use crate::computation::Computation;
use crate::execution::stack;

/// A value that is already computed.
pub struct Now<T>(pub T);

/// A computation, to be bound with what follows it.
pub struct Later<C>(pub C);

/// The staged value of a statement, run with the rest of the function.
pub trait Staged {
    /// What the rest of the function receives.
    type Output;
    /// Runs the rest of the function `k` with the value.
    fn __cps_run<K: FnOnce(Self::Output)>(self, k: K);
    /// The same, first moving to another stack segment if this one runs low.
    fn __cps_run_checked<K: FnOnce(Self::Output)>(self, k: K);
}

impl<T> Staged for Now<T> {
    type Output = T;
    #[inline(always)]
    fn __cps_run<K: FnOnce(T)>(self, k: K) {
        k(self.0)
    }
    #[inline(always)]
    fn __cps_run_checked<K: FnOnce(T)>(self, k: K) {
        stack::grow(move || k(self.0))
    }
}

impl<C: Computation> Staged for Later<C> {
    type Output = C::Output;
    #[inline(always)]
    fn __cps_run<K: FnOnce(C::Output)>(self, k: K) {
        self.0.bind_in_place(k)
    }
    #[inline(always)]
    fn __cps_run_checked<K: FnOnce(C::Output)>(self, k: K) {
        self.0.bind(k)
    }
}

impl<T> Now<T> {
    /// The rest of the statement, run now: its temporaries end with it.
    #[inline(always)]
    pub fn __cps_then<S, F: FnOnce(T) -> S>(self, rest: F) -> S {
        rest(self.0)
    }
    /// The same, the rest of the function (which the statement's staged
    /// value runs, nested on the stack) first moving to another stack
    /// segment if this one runs low.
    #[inline(always)]
    pub fn __cps_then_checked<S, F: FnOnce(T) -> S>(self, rest: F) -> Checked<S> {
        Checked(rest(self.0))
    }
}

impl<C: Computation> Later<C> {
    /// The rest of the statement, run when the computation hands on its
    /// output.
    #[inline(always)]
    pub fn __cps_then<S: Staged, F: FnOnce(C::Output) -> S>(
        self,
        rest: F,
    ) -> Later<Then<C, F, false>> {
        Later(Then {
            first: self.0,
            rest,
        })
    }
    /// The same, the computation first moving to another stack segment if
    /// this one runs low.
    #[inline(always)]
    pub fn __cps_then_checked<S: Staged, F: FnOnce(C::Output) -> S>(
        self,
        rest: F,
    ) -> Later<Then<C, F, true>> {
        Later(Then {
            first: self.0,
            rest,
        })
    }
}

/// A staged value whose run first makes sure the stack has room for what
/// it nests (see [`Now::__cps_then_checked`]).
pub struct Checked<S>(S);

impl<S: Staged> Staged for Checked<S> {
    type Output = S::Output;
    #[inline(always)]
    fn __cps_run<K: FnOnce(S::Output)>(self, k: K) {
        self.0.__cps_run_checked(k)
    }
    #[inline(always)]
    fn __cps_run_checked<K: FnOnce(S::Output)>(self, k: K) {
        self.0.__cps_run_checked(k)
    }
}

/// A computation followed by the rest of its statement: binding it binds
/// `first`, and inside its continuation runs `rest` on the output and then
/// the staged value `rest` returns. `CHECKED` says whether `first` is bound
/// with a stack check (the macro checks every few bind points).
pub struct Then<C, F, const CHECKED: bool> {
    first: C,
    rest: F,
}

impl<C, S, F, const CHECKED: bool> Computation for Then<C, F, CHECKED>
where
    C: Computation,
    S: Staged,
    F: FnOnce(C::Output) -> S,
{
    type Output = S::Output;

    #[inline]
    fn bind<K: FnOnce(S::Output)>(self, k: K) {
        stack::grow(move || self.bind_in_place(k))
    }

    #[inline(always)]
    fn bind_in_place<K: FnOnce(S::Output)>(self, k: K) {
        let Then { first, rest } = self;
        if CHECKED {
            first.bind(move |output| rest(output).__cps_run(k))
        } else {
            first.bind_in_place(move |output| rest(output).__cps_run(k))
        }
    }
}

/// A bind point that borrows a temporary of its own statement (`f(&t)`, `t`
/// the result of an earlier operation): the temporary must live as long as
/// the call's computation, so `run` owns it and runs the rest inside.
#[inline(always)]
pub fn owning<T, F: FnOnce(&mut dyn FnMut(T))>(run: F) -> Later<Owning<T, F>> {
    Later(Owning {
        run,
        output: PhantomData,
    })
}

/// See [`owning`].
pub struct Owning<T, F> {
    run: F,
    output: PhantomData<fn(T)>,
}

impl<T, F: FnOnce(&mut dyn FnMut(T))> Computation for Owning<T, F> {
    type Output = T;

    #[inline]
    fn bind<K: FnOnce(T)>(self, k: K) {
        stack::grow(move || self.bind_in_place(k))
    }

    #[inline(always)]
    fn bind_in_place<K: FnOnce(T)>(self, k: K) {
        let mut k = Some(k);
        (self.run)(&mut |value| match k.take() {
            Some(k) => k(value),
            None => panic!("a bind point handed on its value twice"),
        })
    }
}

/// Holds the value of a bind point while method resolution picks its
/// stage: a [`Computation`] becomes [`Later`] (by value, no
/// auto-reference), anything else [`Now`] (one mutable auto-reference).
pub struct Stage<T>(Option<T>);

impl<T> Stage<T> {
    /// Wraps the value of a bind point.
    #[inline(always)]
    pub fn new(value: T) -> Self {
        Stage(Some(value))
    }

    #[inline(always)]
    fn take(&mut self) -> T {
        match self.0.take() {
            Some(value) => value,
            None => unreachable!("a bind point is staged once"),
        }
    }
}

/// Chosen first: the value is a computation.
pub trait StageComputation {
    /// The staged value.
    type Staged;
    /// Stages the value.
    fn __cps_stage(self) -> Self::Staged;
}

impl<C: Computation> StageComputation for Stage<C> {
    type Staged = Later<C>;
    #[inline(always)]
    fn __cps_stage(mut self) -> Later<C> {
        Later(self.take())
    }
}

/// Chosen when [`StageComputation`] does not apply: a plain value.
pub trait StagePlain {
    /// The staged value.
    type Staged;
    /// Stages the value.
    fn __cps_stage(self) -> Self::Staged;
}

impl<T> StagePlain for &mut Stage<T> {
    type Staged = Now<T>;
    #[inline(always)]
    fn __cps_stage(self) -> Now<T> {
        Now(self.take())
    }
}

/// Holds the value of a bind point that initialises a `let` of type `T`.
/// Method resolution prefers [`StageAsPlain`] when the value already is a
/// `T` (inferring it, for `collect()`), then [`StageAsComputation`] when it
/// is a computation producing a `T`.
pub struct StageAs<T, V>(Cell<Option<V>>, PhantomData<fn() -> T>);

impl<T, V> StageAs<T, V> {
    /// Wraps the value of a bind point.
    #[inline(always)]
    pub fn new(value: V) -> Self {
        StageAs(Cell::new(Some(value)), PhantomData)
    }

    #[inline(always)]
    fn take(&self) -> V {
        match self.0.take() {
            Some(value) => value,
            None => unreachable!("a bind point is staged once"),
        }
    }
}

/// The value already has the `let`'s type.
pub trait StageAsPlain<T> {
    /// Stages the value.
    fn __cps_stage(&self) -> Now<T>;
}

impl<T> StageAsPlain<T> for StageAs<T, T> {
    #[inline(always)]
    fn __cps_stage(&self) -> Now<T> {
        Now(self.take())
    }
}

/// The value is a computation of the `let`'s type.
pub trait StageAsComputation<T, C> {
    /// Stages the value.
    fn __cps_stage(&self) -> Later<C>;
}

impl<T, C: Computation<Output = T>> StageAsComputation<T, C> for &StageAs<T, C> {
    #[inline(always)]
    fn __cps_stage(&self) -> Later<C> {
        Later(self.take())
    }
}

/// Temporaries moved into an [`owning`] computation. Not `Copy`, so that a
/// closure using it by value takes it by value, `Copy` contents included.
pub struct Owned<T>(pub T);
