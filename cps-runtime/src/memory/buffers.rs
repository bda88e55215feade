//! Free value and gradient buffers, kept by length.

use super::shelves::Shelves;

/// The buffers a thread's finished values and gradients leave behind,
/// kept for the next ones of the same length.
///
/// A Tree-LSTM node makes a few dozen arrays of a handful of lengths (the
/// hidden size, the gates' size, ...), and drops them again in its
/// backward step. The allocator serves them too, but each allocation and
/// free costs it about as much as a small elementwise operation (see
/// `docs/performance.md`); a buffer of the right length freed last is
/// also the one most likely still in cache.
///
/// Lengths up to [`EXACT_UP_TO`] are kept apart; longer ones by *class*,
/// a quarter of their power of two ([`room_for`]), and the buffers the
/// pool allocates for them get their class's capacity. A computation
/// whose batch sizes change from step to step (a Tree-LSTM computed level
/// by level makes matrices of as many rows as a level has nodes) then
/// meets a few dozen classes instead of hundreds of lengths, so its
/// buffers serve again, and the allocator sees the same few sizes come
/// and go rather than many, which would fragment its heap.
pub(crate) struct Buffers<A> {
    /// By the class of their length ([`room_for`]).
    shelves: Shelves<Vec<A>>,
}

/// The most memory the free buffers of one thread and element type hold.
const MAX_BYTES: usize = 64 << 20;

impl<A: Copy> Buffers<A> {
    pub(super) const fn new() -> Self {
        Buffers {
            shelves: Shelves::new(MAX_BYTES),
        }
    }

    /// A buffer with room for `len` elements (exactly that up to
    /// [`EXACT_UP_TO`], else at least its class's [`room_for`]), if one is
    /// kept, holding the elements it was kept with (all initialised: a
    /// finished value's or gradient's, never read by the next owner unless
    /// it asks for them as stale values).
    #[inline]
    pub(super) fn take(&mut self, len: usize) -> Option<Vec<A>> {
        self.shelves.take(room_for(len))
    }

    /// Keeps `buffer`, elements and all, for requests of the largest class
    /// its capacity holds (its capacity itself up to [`EXACT_UP_TO`]);
    /// hands it back when that class is not asked for, or there is no
    /// room.
    #[inline]
    pub(super) fn keep(&mut self, buffer: Vec<A>) -> Result<(), Vec<A>> {
        let bytes = buffer.capacity() * size_of::<A>();
        self.shelves
            .keep(class_below(buffer.capacity()), buffer, bytes)
    }
}

/// Lengths up to this are kept and served exactly. Longer ones share
/// classes: a batch of a length that changes from step to step (a
/// classifier's logits, five per node of a tree, say) would otherwise
/// take a table entry per length, and once the table is full, lengths
/// first seen later would never be kept: on the Tree-LSTM level by level,
/// with exact lengths up to 1,024, buffers go back to the allocator every
/// epoch; with these classes, none do (see `docs/performance.md`).
const EXACT_UP_TO: usize = 64;

/// Lengths above this are exact too: their buffers (as large as all the
/// more) are never kept, so rounding them up would only waste memory.
const CLASSES_UP_TO: usize = MAX_BYTES / 4;

/// The capacity a buffer for `len` elements is given: `len` itself up to
/// [`EXACT_UP_TO`] and above [`CLASSES_UP_TO`], between them rounded up to
/// a quarter of its power of two.
#[inline]
pub(super) fn room_for(len: usize) -> usize {
    class_step(len).map_or(len, |step| len.div_ceil(step) * step)
}

/// The largest [`room_for`] class a buffer of `capacity` serves: its
/// capacity itself when the pool allocated it.
#[inline]
fn class_below(capacity: usize) -> usize {
    class_step(capacity).map_or(capacity, |step| capacity / step * step)
}

/// The width of the classes around `len` (a quarter of its power of two),
/// or `None` where lengths are their own class.
#[inline]
fn class_step(len: usize) -> Option<usize> {
    (EXACT_UP_TO < len && len <= CLASSES_UP_TO).then(|| (1usize << len.ilog2()) / 4)
}

#[cfg(test)]
mod tests {
    use super::{Buffers, CLASSES_UP_TO, EXACT_UP_TO, MAX_BYTES, class_below, room_for};
    use crate::memory::shelves::MAX_SHELVES as MAX_LENGTHS;

    /// Short lengths are their own class; longer ones round up by less
    /// than a quarter, to a capacity that is its own class, and a buffer
    /// serves every request of the classes it holds.
    #[test]
    fn long_lengths_share_classes_a_quarter_octave_wide() {
        for len in 1..=EXACT_UP_TO {
            assert_eq!((room_for(len), class_below(len)), (len, len));
        }
        assert_eq!(room_for(EXACT_UP_TO + 1), 80);
        assert_eq!(room_for(150), 160);
        assert_eq!(room_for(1025), 1280);
        assert_eq!(room_for(1280), 1280);
        assert_eq!(room_for(1281), 1536);
        assert_eq!(room_for(40_001), 40_960);
        let mut classes = std::collections::BTreeSet::new();
        for len in EXACT_UP_TO + 1..=1 << 16 {
            let room = room_for(len);
            assert!(len <= room && room < len + len / 4 + 1, "{len} -> {room}");
            assert_eq!(class_below(room), room, "{len} -> {room}");
            classes.insert(room);
        }
        // 65..=65536: ten octaves, four classes each.
        assert_eq!(classes.len(), 40);
        // Lengths too long to be kept are not rounded.
        let huge = CLASSES_UP_TO + 1;
        assert_eq!((room_for(huge), class_below(huge)), (huge, huge));
        assert_eq!(room_for(CLASSES_UP_TO), CLASSES_UP_TO);

        let mut buffers = Buffers::<f32>::new();
        // A request of 3000 elements misses, and so lets its class
        // (3072) keep one buffer.
        assert!(buffers.take(3000).is_none());
        // A buffer allocated elsewhere with 3100 elements' room holds
        // class 3072: it serves any length of that class.
        let odd = Vec::<f32>::with_capacity(3100);
        let at = odd.as_ptr();
        buffers.keep(odd).expect("its class was asked for");
        let taken = buffers.take(2900).expect("same class");
        assert_eq!(taken.as_ptr(), at);
        assert!(taken.capacity() >= 2900);
        // Room for 3000 is not room for the next class.
        buffers.keep(taken).expect("room");
        assert!(buffers.take(3073).is_none());
        assert!(buffers.take(3072).is_some());
        assert_eq!(buffers.shelves.bytes(), 0);
    }

    /// A kept buffer serves the next request of its length only, the one
    /// kept last first; no more are kept than requests have missed, and
    /// the memory kept stays bounded.
    #[test]
    fn buffers_serve_their_own_length_last_in_first_out() {
        let mut buffers = Buffers::<f32>::new();
        // Not asked for yet: not kept.
        assert!(buffers.keep(Vec::with_capacity(3)).is_err());
        assert!(buffers.take(3).is_none());
        assert!(buffers.take(3).is_none());
        let first = Vec::<f32>::with_capacity(3);
        let second = vec![1.0f32, 2.0, 3.0];
        let (first_at, second_at) = (first.as_ptr(), second.as_ptr());
        buffers.keep(first).expect("room");
        buffers.keep(second).expect("room");
        // Two requests missed, so two are kept at most.
        assert!(buffers.keep(Vec::with_capacity(3)).is_err());
        assert!(buffers.take(4).is_none());
        let taken = buffers.take(3).expect("kept");
        // With the elements it was kept with.
        assert_eq!(
            (taken.as_ptr(), &taken[..]),
            (second_at, &[1.0, 2.0, 3.0][..])
        );
        let taken_next = buffers.take(3).expect("kept");
        assert_eq!(taken_next.as_ptr(), first_at);
        assert_eq!(buffers.shelves.bytes(), 0);

        // The memory kept is bounded.
        let big = MAX_BYTES / size_of::<f32>() / 2;
        for _ in 0..3 {
            assert!(buffers.take(big).is_none());
        }
        buffers.keep(Vec::with_capacity(big)).expect("room");
        buffers.keep(Vec::with_capacity(big)).expect("room");
        assert!(buffers.keep(Vec::with_capacity(big)).is_err());
        assert!(buffers.keep(Vec::with_capacity(4)).is_err());

        // So is the number of distinct lengths: once the table is full, a
        // new one is not taken in.
        let mut buffers = Buffers::<f64>::new();
        for len in 1..=MAX_LENGTHS {
            assert!(buffers.take(len).is_none());
        }
        let new = EXACT_UP_TO * 3 / 2;
        assert!(buffers.take(new).is_none());
        assert!(buffers.keep(Vec::with_capacity(room_for(new))).is_err());
        assert!(buffers.keep(Vec::with_capacity(1)).is_ok());
    }
}
