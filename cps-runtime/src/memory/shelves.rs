//! The one keeping policy of the runtime's memory: things of a few sizes
//! come and go, and a thing given back serves the next request of its size.
//!
//! A [`Shelves`] keeps things by a key (a length) on one shelf per key,
//! the one given back last on top. A shelf keeps no more things than its
//! requests found it empty: a computation that needs `n` things of a size
//! at once misses `n` times the first time it runs, and never again, and
//! things of that size given back beyond that (by other code) are not
//! hoarded. There are at most [`MAX_SHELVES`] keys and `max_bytes` of
//! things in all.
//!
//! The thread's free buffers ([`super::Buffers`]) are kept this way, and
//! so are the nodes of finished results that keep their value (see
//! `var/pool.rs`).

/// The most distinct keys kept: a computation uses a few, plus a few
/// dozen classes when its batch sizes change, so a longer list would only
/// mean a program of changing shapes, for which keeping things would not
/// pay.
pub(crate) const MAX_SHELVES: usize = 64;

/// Things kept by key, with the policy above.
pub(crate) struct Shelves<T> {
    shelves: Vec<Shelf<T>>,
    /// The memory the kept things hold.
    bytes: usize,
    max_bytes: usize,
}

/// The things kept under one key.
struct Shelf<T> {
    key: usize,
    /// Each thing with the memory it holds, the one given back last on top.
    things: Vec<(T, usize)>,
    /// How many are kept at most: the requests that found none.
    most: usize,
}

impl<T> Shelves<T> {
    /// Empty shelves holding at most `max_bytes`.
    pub(crate) const fn new(max_bytes: usize) -> Self {
        Shelves {
            shelves: Vec::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// A thing kept under `key`, if there is one; a miss lets the shelf
    /// keep one more.
    #[inline]
    pub(crate) fn take(&mut self, key: usize) -> Option<T> {
        let shelf = match self.shelves.iter().position(|shelf| shelf.key == key) {
            Some(at) => &mut self.shelves[at],
            None => return self.first_miss(key),
        };
        let Some((thing, bytes)) = shelf.things.pop() else {
            shelf.most += 1;
            return None;
        };
        self.bytes -= bytes;
        Some(thing)
    }

    /// [`Shelves::take`] of a key never asked for: it gets a shelf, if
    /// there is room for another.
    #[cold]
    fn first_miss(&mut self, key: usize) -> Option<T> {
        if self.shelves.len() < MAX_SHELVES {
            self.shelves.push(Shelf {
                key,
                things: Vec::new(),
                most: 1,
            });
        }
        None
    }

    /// Keeps `thing` (holding `bytes` of memory) under `key`; hands it
    /// back when that key is not asked for, its shelf is full or the
    /// memory bound is reached.
    #[inline]
    pub(crate) fn keep(&mut self, key: usize, thing: T, bytes: usize) -> Result<(), T> {
        match self.shelves.iter_mut().find(|shelf| shelf.key == key) {
            Some(shelf)
                if shelf.things.len() < shelf.most && self.bytes + bytes <= self.max_bytes =>
            {
                shelf.things.push((thing, bytes));
                self.bytes += bytes;
                Ok(())
            }
            _ => Err(thing),
        }
    }

    /// The memory the kept things hold.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many things are kept under `key`.
    #[cfg(test)]
    pub(crate) fn count(&self, key: usize) -> usize {
        self.shelves
            .iter()
            .find(|shelf| shelf.key == key)
            .map_or(0, |shelf| shelf.things.len())
    }
}
