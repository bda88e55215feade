//! [`on_threads`]: a data-parallel group of threads, one of them this one.

use crate::element::Element;
use crate::execution::workers::ThreadGroup;
use crate::parameters::Parameters;

use super::{Snapshot, Worker};

/// A worker of a group of threads.
pub type ThreadWorker<A = f32> = Worker<ThreadGroup<A>, A>;

/// Runs data-parallel training on `workers` threads and returns what
/// `lead` returns.
///
/// This thread is worker 0: `lead` runs here on `model` and `optimizer`
/// themselves, so that what it records, reports and saves stays here, and
/// both hold the trained state afterwards. Each other worker runs `follow`
/// on a thread of its own, with its own stack and buffers, on a replica:
/// a model built by `replica` and made equal to `model` (see [`Snapshot`];
/// identities included), and a clone of `optimizer`. Both closures
/// usually call one training function, `lead` with what only worker 0
/// does.
///
/// Every worker must make the same sequence of collective calls
/// ([`Worker::all_reduce_gradients`], [`Worker::sum`], ...): the same
/// number of steps. A worker that panics makes the others panic at their
/// next collective, and the panic reaches the caller. When `lead` returns
/// early (with an error, say), the others stop at their next collective
/// and its result is returned.
///
/// ```
/// use cps_runtime::optim::{Optimizer, Sgd};
/// use cps_runtime::parallel::{ThreadWorker, on_threads};
/// use cps_runtime::*;
/// use ndarray::array;
///
/// /// Gradient steps on the mean of (w - target)² over a batch of targets.
/// fn train(worker: &mut ThreadWorker<f64>, w: &mut Param<f64>, sgd: &mut Sgd<f64>) {
///     let targets = [1.0, 2.0, 3.0, 6.0];
///     for _ in 0..100 {
///         for &t in worker.share(&targets) {
///             let w = &*w;
///             lazy(move |k: &mut dyn FnMut(Var<f64>)| {
///                 (w.var() - t).bind(|e| e.square().bind(|s| (&s * 0.25).bind(&mut *k)))
///             })
///             .backward();
///         }
///         worker.all_reduce_gradients(&*w);
///         sgd.step(w);
///     }
/// }
///
/// let mut w = Param::new(array![0.0f64]);
/// let mut sgd = Sgd::new(0.1);
/// on_threads(
///     2,
///     &mut w,
///     &mut sgd,
///     || Param::new(array![0.0f64]),
///     |worker, w, sgd| train(worker, w, sgd),
///     |worker, w, sgd| train(worker, w, sgd),
/// );
/// assert!((w.array()[0] - 3.0).abs() < 1e-9);
/// ```
///
/// # Panics
/// When `workers` is zero, when a replica is not built like `model`, or
/// when a worker panics.
pub fn on_threads<A, M, O, R>(
    workers: usize,
    model: &mut M,
    optimizer: &mut O,
    replica: impl Fn() -> M + Sync,
    lead: impl FnOnce(&mut ThreadWorker<A>, &mut M, &mut O) -> R,
    follow: impl Fn(&mut ThreadWorker<A>, &mut M, &mut O) + Sync,
) -> R
where
    A: Element,
    M: Parameters<A>,
    O: Clone + Send,
{
    assert!(workers > 0, "on_threads: at least one worker is needed");
    let mut members = ThreadGroup::new(workers).into_iter();
    let first = members.next().expect("a group of one or more");
    let watcher = first.watcher();
    let mut first = Worker::new(first);
    if workers == 1 {
        return lead(&mut first, model, optimizer);
    }
    let snapshot = Snapshot::of(&*model);
    let (snapshot, replica, follow) = (&snapshot, &replica, &follow);
    std::thread::scope(|scope| {
        let helpers: Vec<_> = members
            .enumerate()
            .map(|(k, member)| {
                let mut optimizer = optimizer.clone();
                std::thread::Builder::new()
                    .name(format!("cps worker {}", k + 1))
                    .spawn_scoped(scope, move || {
                        let mut worker = Worker::new(member);
                        let mut model = replica();
                        snapshot.restore(&mut model);
                        follow(&mut worker, &mut model, &mut optimizer);
                    })
                    .expect("the system starts a worker thread")
            })
            .collect();
        let result = lead(&mut first, model, optimizer);
        // Worker 0 is done: the others stop at their next collective, if
        // they have one left (worker 0 returned early, with an error).
        drop(first);
        for helper in helpers {
            if let Err(panic) = helper.join()
                && !watcher.root_left_first()
            {
                std::panic::resume_unwind(panic);
            }
        }
        result
    })
}
