//! Report 2's cost: the time of a training step of each model, measured
//! with the two models' steps interleaved batch by batch, so that a
//! change in the machine's load falls on both alike; medians, so that a
//! step slowed down by another process does not count. Where Linux tells
//! a thread's own CPU time (`/proc/thread-self/schedstat`), that is what
//! is timed, so that waiting for a core shared with others is not.

use std::time::Instant;

use cps::prelude::*;

use crate::data::Examples;
use crate::model::{Architecture, Net, loss_and_gradients};

/// Each model's median seconds per step (forward and backward, no
/// optimizer step) over `steps` batches of `batch` training images.
pub struct StepTimes {
    /// The RevNet's median seconds per step.
    pub revnet: f64,
    /// The ResNet's.
    pub resnet: f64,
    /// The steps timed of each.
    pub steps: usize,
    /// Whether the times are the thread's CPU time (else wall-clock time).
    pub cpu_time: bool,
}

/// Seconds on the CPU of the calling thread, when the system tells them.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(nanoseconds as f64 * 1e-9)
}

/// A clock: the thread's CPU time where there is one, else wall time.
fn clock(start: Instant) -> f64 {
    thread_cpu_seconds().unwrap_or_else(|| start.elapsed().as_secs_f64())
}

/// Times `steps` steps of each model at `depth` and half-width `half`.
pub fn step_times(
    train: &Examples,
    depth: usize,
    half: usize,
    batch: usize,
    steps: usize,
    seed: u64,
) -> StepTimes {
    let net = Net::<f32>::new(depth, half, 10, seed);
    let origin = Instant::now();
    let mut times = [Vec::new(), Vec::new()];
    let order: Vec<usize> = (0..train.len()).collect();
    for indices in order.chunks(batch).cycle().take(steps) {
        let (images, labels) = train.batch(indices);
        for (slot, architecture) in [Architecture::RevNet, Architecture::ResNet]
            .into_iter()
            .enumerate()
        {
            let start = clock(origin);
            loss_and_gradients(&net, &images, &labels, architecture);
            times[slot].push(clock(origin) - start);
            net.zero_grad();
        }
    }
    let [revnet, resnet] = times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    });
    StepTimes {
        revnet,
        resnet,
        steps,
        cpu_time: thread_cpu_seconds().is_some(),
    }
}
