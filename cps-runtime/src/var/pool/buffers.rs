//! Free value and gradient buffers, kept by length.

/// The buffers a thread's finished values and gradients leave behind,
/// kept for the next ones of the same length.
///
/// A Tree-LSTM node makes a few dozen arrays of a handful of lengths (the
/// hidden size, the gates' size, ...), and drops them again in its
/// backward step. The allocator serves them too, but each allocation and
/// free costs it about as much as an elementwise operation on 150
/// elements; a buffer of the right length freed last is also the one most
/// likely still in cache.
pub(super) struct Buffers<A> {
    /// Each length asked for, with its free buffers.
    by_len: Vec<Free<A>>,
    /// The memory the free buffers hold.
    bytes: usize,
}

/// The free buffers of one length.
struct Free<A> {
    len: usize,
    /// The one freed last on top.
    buffers: Vec<Vec<A>>,
    /// How many are kept at most: the number of requests that found none.
    /// A computation that needs `n` buffers of a length at once misses `n`
    /// times the first time, and never again; buffers of that length freed
    /// by other code (say, gradients of values it made itself) are not
    /// hoarded beyond that.
    most: usize,
}

/// The most memory the free buffers of one thread and element type hold.
const MAX_BYTES: usize = 16 << 20;

/// The most distinct lengths kept: a computation uses a few, so a long
/// list would only mean a program of changing shapes, for which keeping
/// buffers would not pay.
const MAX_LENGTHS: usize = 32;

impl<A: Copy> Buffers<A> {
    pub(super) const fn new() -> Self {
        Buffers {
            by_len: Vec::new(),
            bytes: 0,
        }
    }

    /// A buffer with room for exactly `len` elements, if one is kept,
    /// holding the elements it was kept with (at most `len`, all
    /// initialised: a finished value's or gradient's, never read by the
    /// next owner unless it asks for them as stale values).
    #[inline]
    pub(super) fn take(&mut self, len: usize) -> Option<Vec<A>> {
        let free = match self.by_len.iter().position(|free| free.len == len) {
            Some(at) => &mut self.by_len[at],
            None if self.by_len.len() < MAX_LENGTHS => {
                self.by_len.push(Free {
                    len,
                    buffers: Vec::new(),
                    most: 0,
                });
                self.by_len.last_mut()?
            }
            None => return None,
        };
        let Some(buffer) = free.buffers.pop() else {
            free.most += 1;
            return None;
        };
        self.bytes -= len * size_of::<A>();
        Some(buffer)
    }

    /// Keeps `buffer`, elements and all, for a request of its capacity;
    /// hands it back when its length is not asked for, or there is no
    /// room.
    #[inline]
    pub(super) fn keep(&mut self, buffer: Vec<A>) -> Result<(), Vec<A>> {
        let len = buffer.capacity();
        let size = len * size_of::<A>();
        match self.by_len.iter_mut().find(|free| free.len == len) {
            Some(free) if free.buffers.len() < free.most && self.bytes + size <= MAX_BYTES => {
                free.buffers.push(buffer);
                self.bytes += size;
                Ok(())
            }
            _ => Err(buffer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Buffers, MAX_BYTES, MAX_LENGTHS};

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
        assert_eq!(buffers.bytes, 0);

        // The memory kept is bounded.
        let big = MAX_BYTES / size_of::<f32>() / 2;
        for _ in 0..3 {
            assert!(buffers.take(big).is_none());
        }
        buffers.keep(Vec::with_capacity(big)).expect("room");
        buffers.keep(Vec::with_capacity(big)).expect("room");
        assert!(buffers.keep(Vec::with_capacity(big)).is_err());
        assert!(buffers.keep(Vec::with_capacity(4)).is_err());

        // So is the number of distinct lengths.
        let mut buffers = Buffers::<f64>::new();
        for len in 1..=MAX_LENGTHS + 1 {
            assert!(buffers.take(len).is_none());
        }
        assert!(buffers.keep(Vec::with_capacity(MAX_LENGTHS + 1)).is_err());
        assert!(buffers.keep(Vec::with_capacity(1)).is_ok());
    }
}
