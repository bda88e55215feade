//! Stack growth. In continuation-passing style every operation's frame
//! stays live until the backward pass reaches it, so the stack is the tape
//! and its depth grows with the number of operations. Every bind point that
//! can nest without bound (operations, calls between differentiable
//! functions, loop iterations) goes through [`grow`], which moves to another
//! stack segment when the current one runs low.
//!
//! Segments are kept per thread when a computation is done with them, and
//! the next one reuses them: a training loop runs the same deep
//! computation again and again, and a fresh segment costs a page fault for
//! every page it touches (with the kernel zeroing each page), which was
//! more than a third of the time of a chain of small operations. A kept
//! segment keeps the pages it touched: at most [`MAX_IDLE`] segments are
//! kept per thread.
//!
//! The switching itself is `corosensei`'s (a safe interface: its segments
//! have a guard page, and a panic on a segment is carried back to the stack
//! that switched); where that crate does not build, `stacker` switches to a
//! fresh segment each time instead.

/// Below this much remaining stack, a new segment is started. Generous,
/// because unoptimised builds have large frames.
const RED_ZONE: usize = 512 * 1024;

/// Size of each new stack segment. It is reserved, not committed: only the
/// pages actually used cost memory.
const SEGMENT: usize = 64 * 1024 * 1024;

/// The most idle segments a thread keeps for reuse.
pub const MAX_IDLE: usize = 4;

/// Runs `f`, first moving to another stack segment if the current one is
/// nearly exhausted. Cheap (a comparison) when there is room.
#[inline(always)]
pub fn grow<R>(f: impl FnOnce() -> R) -> R {
    if imp::has_room() {
        f()
    } else {
        imp::grow_slow(f)
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use segments as imp;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use segments::{Bounds, bounds, set_bounds};

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
use fresh as imp;

/// Switching through `stacker`, which maps a new segment for every switch.
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), allow(dead_code))]
mod fresh {
    #[inline(always)]
    pub fn has_room() -> bool {
        matches!(stacker::remaining_stack(), Some(left) if left >= super::RED_ZONE)
    }

    /// Out of line: inlined, the bookkeeping of a switch (the callback and
    /// its result) would take room in every bind point's frame.
    #[cold]
    #[inline(never)]
    pub fn grow_slow<R>(f: impl FnOnce() -> R) -> R {
        stacker::grow(super::SEGMENT, f)
    }
}

/// Switching through `corosensei`, with the segments kept for reuse.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod segments {
    use std::cell::{Cell, RefCell};

    use corosensei::stack::{DefaultStack, Stack};

    use super::{MAX_IDLE, RED_ZONE, SEGMENT};

    thread_local! {
        /// `(low, high)`: below `high` on the stack the thread runs on,
        /// there is room down to `low`. On one of our segments it is the
        /// whole segment; on any other stack it is what `stacker` measured
        /// (the thread's own stack, or one `stacker` made), up to the depth
        /// of the measurement. `(0, 0)` until measured.
        static BOUNDS: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
        /// Segments not in use, most recently used last.
        static IDLE: RefCell<Vec<DefaultStack>> = const { RefCell::new(Vec::new()) };
    }

    /// The part of a stack [`grow`](super::grow) measures the room left
    /// against: `(low, high)`.
    pub(crate) type Bounds = (usize, usize);

    /// The bounds of the stack the thread runs on, as last measured: saved
    /// before a switch to a coroutine of [`join`](crate::join), which runs
    /// on a stack of its own, and restored after.
    #[inline]
    pub(crate) fn bounds() -> Bounds {
        BOUNDS.get()
    }

    /// Makes `bounds` the stack the thread runs on (see [`bounds`]).
    #[inline]
    pub(crate) fn set_bounds(bounds: Bounds) {
        BOUNDS.set(bounds);
    }

    /// About where the stack pointer is: the address of a local.
    #[inline(always)]
    fn stack_position() -> usize {
        let marker = 0u8;
        std::hint::black_box(&marker) as *const u8 as usize
    }

    #[inline(always)]
    pub fn has_room() -> bool {
        let here = stack_position();
        let (low, high) = BOUNDS.get();
        here < high && here >= low.saturating_add(RED_ZONE)
    }

    /// Measures the stack again (the bounds may be out of date: the thread
    /// came back above the depth of the last measurement), then runs `f`
    /// here or on another segment. Out of line: inlined, it would take room
    /// in every bind point's frame.
    #[cold]
    #[inline(never)]
    pub fn grow_slow<R>(f: impl FnOnce() -> R) -> R {
        let here = stack_position();
        let (low, high) = BOUNDS.get();
        let on_known_stack = here < high && here >= low;
        if !on_known_stack {
            // Not on a segment of ours (those are measured exactly), so on
            // a stack `stacker` knows the limit of, if any.
            if let Some(left) = stacker::remaining_stack() {
                BOUNDS.set((here.saturating_sub(left), here + 1));
                if has_room() {
                    return f();
                }
            }
        }
        switch(f)
    }

    /// Runs `f` at the top of an idle (or new) segment, and keeps the
    /// segment afterwards.
    fn switch<R>(f: impl FnOnce() -> R) -> R {
        let idle = IDLE
            .try_with(|idle| idle.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten();
        let mut segment = idle.unwrap_or_else(|| match DefaultStack::new(SEGMENT) {
            Ok(segment) => segment,
            Err(error) => panic!("could not map a {SEGMENT}-byte stack segment: {error}"),
        });
        // The lowest address includes the guard page; the red zone keeps
        // every frame well above it.
        let bounds = (segment.limit().get(), segment.base().get());
        // Restores the bounds of the stack we came from and keeps the
        // segment, also when `f` panics (the panic is carried back to this
        // frame by `on_stack`, and unwinds on from here).
        struct Restore(Option<(usize, usize)>);
        impl Drop for Restore {
            fn drop(&mut self) {
                if let Some(outer) = self.0.take() {
                    BOUNDS.set(outer);
                }
            }
        }
        let restore = Restore(Some(BOUNDS.replace(bounds)));
        let result = corosensei::on_stack(&mut segment, f);
        drop(restore);
        // Dropped (unmapped) instead when the thread keeps enough already,
        // or is exiting.
        let _ = IDLE.try_with(|idle| {
            if let Ok(mut idle) = idle.try_borrow_mut()
                && idle.len() < MAX_IDLE
            {
                idle.push(segment);
            }
        });
        result
    }
}
