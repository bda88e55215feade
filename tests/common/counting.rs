//! A global allocator that counts live heap bytes and their peak, for the
//! memory tests: a test binary installs it with
//! `#[global_allocator] static ALLOCATOR: Counting = Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting.
pub struct Counting;

/// Heap bytes allocated and not yet freed.
pub static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most [`LIVE`] has been since it was last reset.
pub static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// The peak of live heap bytes while `run` runs on a thread of its own
/// (whose buffer pools start empty, so that what it keeps alive is all
/// counted), above what was live before; and what `run` returned.
pub fn peak_bytes_of<R: Send + 'static>(run: impl FnOnce() -> R + Send + 'static) -> (usize, R) {
    std::thread::spawn(move || {
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let result = run();
        (PEAK.load(Ordering::Relaxed) - before, result)
    })
    .join()
    .expect("the measured run finishes")
}
