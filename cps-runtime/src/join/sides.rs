//! The two sides of a [`join`](fn@crate::join), as coroutines.
//!
//! A side runs its computation on a stack of its own until it finishes its
//! forward pass (its continuation is called: it is *ready*) or waits for a
//! batch (it is *blocked*). The join resumes whichever sides can run; when
//! some are blocked, it waits for their batch itself: a join inside another
//! join's side blocks its own side, so that the waiting products of the
//! whole computation meet at the outermost join, which runs them all
//! (`execution/batch.rs`) and resumes its sides, which resume theirs. Once
//! both sides are ready, the join's continuation runs with both results;
//! when it returns, the sides are resumed to run their backward steps, the
//! second side first, with the same waiting, until both are done.

use std::cell::{Cell, RefCell};

use corosensei::stack::{DefaultStack, Stack};
use corosensei::{Coroutine, CoroutineResult};

use crate::computation::Computation;
use crate::execution::batch::{self, Event, Running, SideYielder, block, inside, suspend};

type Side = Coroutine<(), Event, (), DefaultStack>;

/// The stack of a side. Larger than the room [`stack::grow`] keeps free
/// (it moves to a segment below that), and reserved, not committed: a
/// side of a Tree-LSTM touches a few pages of it.
const SIDE_STACK: usize = 2 << 20;

/// The most side stacks a thread keeps for the next joins: a new one is
/// mapped by a system call and faults in the pages it touches, which
/// costs far more than taking a kept one, whose pages stay touched (see
/// `docs/performance.md`).
const MAX_KEPT_STACKS: usize = 256;

thread_local! {
    /// Stacks of finished sides.
    static STACKS: RefCell<Vec<DefaultStack>> = const { RefCell::new(Vec::new()) };
}

/// Restores what was running when dropped, also when a resumed side
/// panics (the panic comes out of `resume` and unwinds on from here).
struct Restore(Running);

impl Drop for Restore {
    fn drop(&mut self) {
        self.0.restore();
    }
}

/// A side running `f`, on a kept stack when there is one.
///
/// # Safety
/// The side must be driven to its end or dropped while everything `f`
/// borrows is alive.
unsafe fn spawn<'a>(f: impl FnOnce() + 'a) -> Side {
    let kept = STACKS
        .try_with(|stacks| stacks.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten();
    let stack = kept.unwrap_or_else(|| match DefaultStack::new(SIDE_STACK) {
        Ok(stack) => stack,
        Err(error) => {
            panic!("could not map a {SIDE_STACK}-byte stack for a side of `join`: {error}")
        }
    });
    // The lowest address includes the guard page; `grow` keeps frames well
    // above it.
    let bounds = (stack.limit().get(), stack.base().get());
    let body = move |yielder: &SideYielder, ()| {
        Running::side(yielder, bounds).restore();
        f();
    };
    // SAFETY: the caller keeps what `f` borrows alive until the side is
    // done or dropped.
    unsafe { Coroutine::with_stack_unchecked(stack, body) }
}

/// Keeps the stack of a finished side for the next one.
fn keep_stack(side: Side) {
    if !side.done() {
        return;
    }
    let stack = side.into_stack();
    let _ = STACKS.try_with(|stacks| {
        if let Ok(mut stacks) = stacks.try_borrow_mut()
            && stacks.len() < MAX_KEPT_STACKS
        {
            stacks.push(stack);
        }
    });
}

/// Where a side stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Runnable,
    Blocked,
    Ready,
    Done,
}

/// Resumes `side` until it blocks, is ready or is done.
fn resume(side: &mut Side) -> State {
    let restore = Restore(Running::now());
    let result = side.resume(());
    drop(restore);
    match result {
        CoroutineResult::Yield(Event::Blocked) => State::Blocked,
        CoroutineResult::Yield(Event::Ready) => State::Ready,
        CoroutineResult::Return(()) => State::Done,
    }
}

/// Runs the sides, in `order`, until both reach `goal`, waiting for the
/// batches of blocked sides in between.
fn drive(sides: &mut [Side; 2], order: [usize; 2], goal: State) {
    let mut states = [State::Runnable; 2];
    loop {
        for i in order {
            if states[i] == State::Runnable {
                states[i] = resume(&mut sides[i]);
            }
        }
        if states == [goal; 2] {
            return;
        }
        if !states.contains(&State::Blocked) {
            // Done before ready: the computation returned without calling
            // its continuation.
            panic!("a side of `join` never called its continuation");
        }
        // Inside another join's side, the batch is that join's to run.
        if inside() {
            block();
        } else {
            batch::run_all();
        }
        for state in &mut states {
            if *state == State::Blocked {
                *state = State::Runnable;
            }
        }
    }
}

/// Binds `a()` and `b()` as two sides, then `k` with both results (see
/// the module documentation).
pub(super) fn run<FA, FB, CA, CB, K>(a: FA, b: FB, k: K)
where
    FA: FnOnce() -> CA,
    FB: FnOnce() -> CB,
    CA: Computation,
    CB: Computation,
    K: FnOnce((CA::Output, CB::Output)),
{
    let (out_a, out_b) = (Cell::new(None), Cell::new(None));
    // Each side's continuation: leave the result, wait for the backward
    // pass, then return (running the side's backward steps).
    let ready_a = |out| {
        out_a.set(Some(out));
        suspend(Event::Ready);
    };
    let ready_b = |out| {
        out_b.set(Some(out));
        suspend(Event::Ready);
    };
    // SAFETY: both sides are driven to their end below, or dropped when
    // this frame unwinds, while `a`, `b`, the slots and what they borrow
    // are alive (all outlive this frame's locals).
    let mut sides = unsafe {
        [
            spawn(move || a().bind(ready_a)),
            spawn(move || b().bind(ready_b)),
        ]
    };
    drive(&mut sides, [0, 1], State::Ready);
    let (Some(a), Some(b)) = (out_a.take(), out_b.take()) else {
        unreachable!("both sides are ready, with their results");
    };
    k((a, b));
    // Backward: the second side's steps first, as sequential code would.
    drive(&mut sides, [1, 0], State::Done);
    let [side_a, side_b] = sides;
    keep_stack(side_a);
    keep_stack(side_b);
}
