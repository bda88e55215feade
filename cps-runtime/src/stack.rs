//! Stack growth. In continuation-passing style every operation's frame
//! stays live until the backward pass reaches it, so the stack is the tape
//! and its depth grows with the number of operations. Every bind point that
//! can nest without bound (operations, calls between differentiable
//! functions, loop iterations) goes through [`grow`], which switches to a
//! fresh heap-allocated stack segment when the current one runs low.

/// Below this much remaining stack, a new segment is started. Generous,
/// because unoptimised builds have large frames.
const RED_ZONE: usize = 512 * 1024;

/// Size of each new stack segment. It is reserved, not committed: only the
/// pages actually used cost memory.
const SEGMENT: usize = 64 * 1024 * 1024;

/// Runs `f`, first moving to a new stack segment if the current one is
/// nearly exhausted. Cheap (a comparison) when there is room.
#[inline]
pub fn grow<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}
