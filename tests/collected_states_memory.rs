//! Memory of a loop that collects its states in a `Vec`: linear in the
//! number of steps (the state is moved from iteration to iteration, not
//! copied). Peak bytes are counted by a global allocator of this test
//! binary's own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use cps::prelude::*;
use ndarray::array;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

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

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Parameters)]
struct Scalar {
    w: Param<f64>,
}

#[differentiable]
fn collected(m: &Scalar, x: &Var<f64>, steps: usize) -> Var<f64> {
    let mut states = Vec::new();
    let mut h = x.clone();
    for _ in 0..steps {
        h = (h * &m.w).tanh();
        states.push(h.clone());
    }
    let parts: Vec<&Var<f64>> = states.iter().collect();
    concat(&parts, 0).sum()
}

/// The peak of live heap bytes during one forward and backward pass, above
/// what was live before it, on a thread of its own (whose buffer pools
/// start empty, so that what the pass keeps alive is all counted).
fn peak_bytes(steps: usize) -> usize {
    std::thread::spawn(move || {
        let m = Scalar {
            w: Param::new(array![0.9f64].into_dyn()),
        };
        let x = Var::constant(array![0.5f64].into_dyn());
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        collected(&m, &x, steps).backward();
        PEAK.load(Ordering::Relaxed) - before
    })
    .join()
    .expect("the measured run finishes")
}

#[test]
fn a_loop_collecting_its_states_takes_memory_linear_in_its_steps() {
    let small = peak_bytes(1_000);
    let large = peak_bytes(8_000);
    println!("peak bytes: {small} at 1,000 steps, {large} at 8,000 steps");
    // Linear is 8x; a copy of the Vec at every step would be 64x.
    assert!(
        large <= 10 * small,
        "peak bytes grew {:.1}x from 1,000 to 8,000 steps ({small} -> {large})",
        large as f64 / small as f64
    );
}
