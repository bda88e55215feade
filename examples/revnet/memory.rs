//! Report 1: the memory of one training step at several depths, measured
//! two ways: the bytes of results alive when the forward pass reaches the
//! loss (`live_result_bytes`), and the peak of all heap bytes during the
//! whole step (forward and backward), from a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use cps::prelude::*;

use crate::data::Examples;
use crate::model::{Architecture, Net, loss_and_gradients};

/// The system allocator, counting live heap bytes and their peak.
pub struct Counting;

/// Heap bytes allocated and not yet freed.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most [`LIVE`] has been since it was last reset.
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

/// One row of the table.
pub struct Row {
    /// The number of reversible blocks.
    pub depth: usize,
    /// The model measured.
    pub architecture: Architecture,
    /// Result bytes alive at the end of the forward pass.
    pub forward_bytes: usize,
    /// The peak heap bytes of the step, above what was live before it
    /// (the network, its data): activations, temporaries, buffer pools,
    /// and the parameters' gradients.
    pub peak_bytes: usize,
    /// The parameters' bytes; their gradients, allocated during the step,
    /// are as many and are part of the peak.
    pub parameter_bytes: usize,
}

/// Measures one training step of each architecture at each depth on
/// `batch` images. Each step runs on a thread of its own, whose buffer
/// pools start empty, so that everything it keeps alive is counted; the
/// network is built there too (its values are not `Send`), before the
/// count starts.
pub fn table(depths: &[usize], half: usize, batch: &Examples, seed: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    for &depth in depths {
        for architecture in [Architecture::RevNet, Architecture::ResNet] {
            let images = batch.images.clone();
            let labels = batch.labels.clone();
            let row = std::thread::Builder::new()
                // The ResNet's continuations nest a few frames per operation.
                .stack_size(256 << 20)
                .spawn(move || {
                    let net = Net::<f32>::new(depth, half, 10, seed);
                    let images = Var::constant(images);
                    let before = LIVE.load(Ordering::Relaxed);
                    PEAK.store(before, Ordering::Relaxed);
                    let measured = loss_and_gradients(&net, &images, &labels, architecture);
                    let peak_bytes = PEAK.load(Ordering::Relaxed) - before;
                    Row {
                        depth,
                        architecture,
                        forward_bytes: measured.forward_bytes,
                        peak_bytes,
                        parameter_bytes: net.parameter_count() * std::mem::size_of::<f32>(),
                    }
                })
                .expect("a thread for the measurement")
                .join()
                .expect("the measured step finishes");
            rows.push(row);
        }
    }
    rows
}

/// Megabytes, for the table and the plot.
pub fn megabytes(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}
