//! Drivers of lowered control flow: branches, loops, and continuations
//! called from several places.

use std::cell::Cell;

use crate::execution::stack;

/// Runs a lowered `if`, `match` or block: `run` hands its value to the
/// continuation it is given (from whichever branch ran), which runs `k`.
///
/// Unlike binding a [`lazy`](crate::lazy) computation, this does not check the stack:
/// a branch only nests without bound through the calls and loop iterations
/// inside it, which check it themselves, and the macro counts the
/// operations on each way through it (see `Lowerer::bind_point`). Every frame here
/// is paid per use (the stack is the tape), so there is as little as can be.
#[inline(always)]
pub fn branch<T, R: FnOnce(&mut dyn FnMut(T)), K: FnOnce(T)>(run: R, k: K) {
    let mut k = Some(k);
    run(&mut |value| match k.take() {
        Some(k) => k(value),
        None => panic!("a branch handed on its value twice"),
    })
}

/// A continuation that may be referred to from several places (every
/// `return` of a function, every `break` of a loop) but is called once.
pub struct Once<'k, T>(Cell<Option<&'k mut dyn FnMut(T)>>);

impl<'k, T> Once<'k, T> {
    /// Wraps the continuation.
    #[inline(always)]
    pub fn new(k: &'k mut dyn FnMut(T)) -> Self {
        Once(Cell::new(Some(k)))
    }

    /// Calls the continuation.
    ///
    /// # Panics
    /// On a second call: a continuation runs the rest of the program once.
    #[inline(always)]
    pub fn call(&self, value: T) {
        match self.0.take() {
            Some(k) => k(value),
            None => panic!("a continuation was called twice"),
        }
    }
}

/// How one iteration of a lowered loop ends.
pub enum Step<S, B, R> {
    /// Run the next iteration with this state.
    Continue(S),
    /// Leave the loop with this state and value.
    Break(S, B),
    /// Return from the function with this value.
    Return(R),
}

/// How a lowered loop ends.
pub enum Exit<S, B, R> {
    /// The loop was left with this state and value.
    Break(S, B),
    /// The function returns this value.
    Return(R),
}

/// Runs a loop in continuation-passing style: `body(state, next)` runs one
/// iteration and calls `next` with how it ended; the following iteration
/// runs inside that call, so every iteration's backward step runs after all
/// later iterations' (the stack is the tape). `exit` runs the rest of the
/// function once the loop is left.
pub fn run_loop<S, B, R, F, E>(state: S, body: F, exit: E)
where
    F: Fn(S, &mut dyn FnMut(Step<S, B, R>)),
    E: FnOnce(Exit<S, B, R>),
{
    if crate::computation::forward_only() {
        return exit(iterate_forward_only(state, &body));
    }
    let mut exit = Some(exit);
    let mut leave = |how: Exit<S, B, R>| match exit.take() {
        Some(exit) => exit(how),
        None => panic!("a loop was left twice"),
    };
    iterate(state, &body, &mut leave);
}

/// A loop run forward only (see [`forward_only`](crate::computation::forward_only)):
/// each iteration ends, its frames gone, before the next one starts, as
/// in a plain loop; no backward step will need them.
fn iterate_forward_only<S, B, R>(mut state: S, body: LoopBody<'_, S, B, R>) -> Exit<S, B, R> {
    loop {
        let mut step = None;
        stack::grow(|| body(state, &mut |how| step = Some(how)));
        match step.expect("an iteration ends once") {
            Step::Continue(next) => state = next,
            Step::Break(state, value) => return Exit::Break(state, value),
            Step::Return(value) => return Exit::Return(value),
        }
    }
}

/// One iteration of a loop: the state, and where the iteration ends.
type LoopBody<'a, S, B, R> = &'a dyn Fn(S, &mut dyn FnMut(Step<S, B, R>));

fn iterate<S, B, R>(state: S, body: LoopBody<'_, S, B, R>, leave: &mut dyn FnMut(Exit<S, B, R>)) {
    stack::grow(|| {
        body(state, &mut |step| match step {
            Step::Continue(state) => iterate(state, body, leave),
            Step::Break(state, value) => leave(Exit::Break(state, value)),
            Step::Return(value) => leave(Exit::Return(value)),
        })
    })
}
