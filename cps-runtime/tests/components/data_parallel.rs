//! Data-parallel training (`parallel`, `workers`): a group of threads sums
//! exactly what each member gave, in rank order, identically on every
//! member; N workers on a batch take the steps one worker takes on the
//! whole batch, up to the order of the sums; a broken group panics rather
//! than waits.

use cps_runtime::optim::{Adam, Optimizer};
use cps_runtime::parallel::{Snapshot, ThreadWorker, Worker, on_threads};
use cps_runtime::workers::{Alone, Communicator, ThreadGroup, share_of};
use cps_runtime::*;
use ndarray::{Array2, ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Runs `work` on every member of a group of `size` threads; the results
/// in rank order.
fn on_group<A: Element, R: Send>(size: usize, work: impl Fn(ThreadGroup<A>) -> R + Sync) -> Vec<R> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = ThreadGroup::new(size)
            .into_iter()
            .map(|member| scope.spawn(|| work(member)))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a member finishes"))
            .collect()
    })
}

/// Member `rank`'s buffer of `len` numbers in a test.
fn contribution(rank: usize, len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed * 31 + rank as u64);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

#[test]
fn a_group_of_threads_sums_in_rank_order_the_same_on_every_member() {
    for size in 1..=4 {
        for len in [0, 1, 3, 4, 5, 17, 1000] {
            let results = on_group(size, |mut group: ThreadGroup<f32>| {
                let mut values = contribution(group.rank(), len, len as u64);
                group.all_reduce_sum(&mut values);
                values
            });
            let expected: Vec<f32> = (0..len)
                .map(|i| {
                    (1..size).fold(contribution(0, len, len as u64)[i], |sum, rank| {
                        sum + contribution(rank, len, len as u64)[i]
                    })
                })
                .collect();
            for (rank, values) in results.iter().enumerate() {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(values),
                    bits(&expected),
                    "member {rank} of {size}, {len} values"
                );
            }
        }
    }
}

#[test]
fn a_broadcast_gives_every_member_rank_zeros_values_again_and_again() {
    let results = on_group(3, |mut group: ThreadGroup<f64>| {
        (0..5)
            .map(|round| {
                let mut values = vec![(10 * group.rank() + round) as f64; 4];
                group.broadcast(&mut values);
                values[3]
            })
            .collect::<Vec<_>>()
    });
    for values in results {
        assert_eq!(values, [0.0, 1.0, 2.0, 3.0, 4.0]);
    }
}

#[test]
fn shares_cover_a_batch_once_in_order() {
    for size in 1..6 {
        for len in 0..12 {
            let covered: Vec<usize> = (0..size).flat_map(|r| share_of(len, r, size)).collect();
            assert_eq!(covered, (0..len).collect::<Vec<_>>());
            let lengths: Vec<usize> = (0..size).map(|r| share_of(len, r, size).len()).collect();
            assert!(lengths.iter().max().unwrap() - lengths.iter().min().unwrap() <= 1);
        }
    }
}

/// The message of a member's panic.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn members_giving_different_lengths_are_told_both() {
    let outcomes = std::thread::scope(|scope| {
        let threads: Vec<_> = ThreadGroup::<f32>::new(2)
            .into_iter()
            .map(|mut member| {
                scope.spawn(move || {
                    let mut values = vec![1.0; 3 + member.rank()];
                    member.all_reduce_sum(&mut values);
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join()).collect::<Vec<_>>()
    });
    for outcome in outcomes {
        let message = panic_message(outcome.expect_err("a mismatch panics"));
        assert!(
            message.contains("worker 1 gave 4 values, worker 0 gave 3")
                || message.contains("worker 0 gave 3 values, worker 1 gave 4")
                || message.contains("stopped waiting"),
            "{message}"
        );
    }
}

#[test]
fn a_member_that_panics_stops_the_others_instead_of_leaving_them_waiting() {
    let outcomes = std::thread::scope(|scope| {
        let threads: Vec<_> = ThreadGroup::<f32>::new(3)
            .into_iter()
            .map(|mut member| {
                scope.spawn(move || {
                    let mut values = vec![1.0; 8];
                    member.all_reduce_sum(&mut values);
                    if member.rank() == 1 {
                        panic!("worker 1 fails between two sums");
                    }
                    member.all_reduce_sum(&mut values);
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join()).collect::<Vec<_>>()
    });
    for outcome in outcomes {
        let message = panic_message(outcome.expect_err("every member stops"));
        assert!(
            message.contains("worker 1")
                && (message.contains("panicked") || message.contains("fails")),
            "{message}"
        );
    }
}

/// A two-layer network with a parameter no computation uses and a frozen
/// one, in that order: `[w1 (4×3), b1 (1×3), w2 (3×1), unused (2), frozen (1×3)]`.
fn network<A: Element>(seed: u64) -> Vec<Param<A>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut matrix = |rows, cols| {
        Param::new(ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |_| {
            A::from_f64_lossy(rng.random_range(-0.8..0.8))
        }))
    };
    let (w1, b1, w2) = (matrix(4, 3), matrix(1, 3), matrix(3, 1));
    let unused = Param::new(ArrayD::from_elem(IxDyn(&[2]), A::one()));
    let mut frozen = matrix(1, 3);
    frozen.set_trainable(false);
    vec![w1, b1, w2, unused, frozen]
}

/// `scale · (tanh(x·w1 + b1 + frozen)·w2 − y)²`, backward; returns the loss.
fn example_backward<A: Element>(net: &[Param<A>], x: &Array2<A>, y: A, scale: A) -> A {
    let x = Var::constant(x.clone());
    let y = Var::constant(Array2::from_elem((1, 1), y));
    let scale = Var::constant(Array2::from_elem((1, 1), scale));
    lazy(move |k: &mut dyn FnMut(Var<A>)| {
        x.matmul(&net[0]).bind(|a| {
            (&a + &net[1]).bind(|a| {
                (&a + &net[4]).bind(|a| {
                    a.tanh().bind(|h| {
                        h.matmul(&net[2]).bind(|o| {
                            (&o - &y).bind(|e| {
                                e.square()
                                    .bind(|s| (&s * &scale).bind(|l| l.sum().bind(&mut *k)))
                            })
                        })
                    })
                })
            })
        })
    })
    .backward()
}

/// A data set of `n` examples.
fn examples<A: Element>(n: usize) -> Vec<(Array2<A>, A)> {
    let mut rng = StdRng::seed_from_u64(99);
    (0..n)
        .map(|_| {
            let x =
                Array2::from_shape_fn((1, 4), |_| A::from_f64_lossy(rng.random_range(-1.0..1.0)));
            (x, A::from_f64_lossy(rng.random_range(-1.0..1.0)))
        })
        .collect()
}

/// Steps of Adam on batches of 7 (the last one shorter); every worker
/// calls it. Returns the mean losses, as the workers' sum.
fn train<A: Element, C: Communicator<A>>(
    worker: &mut Worker<C, A>,
    net: &mut Vec<Param<A>>,
    adam: &mut Adam<A>,
    data: &[(Array2<A>, A)],
    reduce: bool,
) -> Vec<A> {
    let mut losses = Vec::new();
    for batch in data.chunks(7) {
        let scale = A::one() / A::from_f64_lossy(batch.len() as f64);
        let mut loss = A::zero();
        for (x, y) in worker.share(batch) {
            loss += example_backward(net, x, *y, scale);
        }
        let mut summed = [loss];
        if reduce {
            worker.all_reduce_gradients_with(&*net, &mut summed);
        } else {
            summed[0] = worker.sum(loss);
        }
        adam.step(net);
        losses.push(summed[0]);
    }
    losses
}

/// The largest difference between the two models' values, relative to
/// the largest value.
fn relative_difference<A: Element>(a: &[Param<A>], b: &[Param<A>]) -> f64 {
    let mut largest = 0.0f64;
    let mut difference = 0.0f64;
    for (p, q) in a.iter().zip(b) {
        for (x, y) in p.array().iter().zip(q.array()) {
            largest = largest.max(x.to_f64_lossless().abs());
            difference = difference.max((x.to_f64_lossless() - y.to_f64_lossless()).abs());
        }
    }
    difference / largest
}

/// One worker on the whole batch, and `workers` threads on shares of it:
/// their parameters' relative difference after training, and the
/// replicas' difference from worker 0.
fn one_against_many<A: Element>(workers: usize, reduce: bool) -> (f64, f64) {
    let data = examples::<A>(40);
    let mut alone = network::<A>(5);
    let mut adam = Adam::new(A::from_f64_lossy(0.05));
    let losses_alone = train(&mut Worker::new(Alone), &mut alone, &mut adam, &data, true);

    let mut lead_net = network::<A>(5);
    let mut lead_adam = Adam::new(A::from_f64_lossy(0.05));
    let replicas = std::sync::Mutex::new(Vec::new());
    let losses = on_threads(
        workers,
        &mut lead_net,
        &mut lead_adam,
        || network::<A>(1234),
        |worker: &mut ThreadWorker<A>, net, adam| train(worker, net, adam, &data, reduce),
        |worker, net, adam| {
            train(worker, net, adam, &data, reduce);
            replicas.lock().unwrap().push(Snapshot::of(&*net));
        },
    );
    for (a, b) in losses.iter().zip(&losses_alone) {
        let (a, b) = (a.to_f64_lossless(), b.to_f64_lossless());
        if reduce {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "losses {a} and {b}"
            );
        }
    }
    assert!(
        lead_net[3].grad_ref().is_none(),
        "nobody had a gradient for `unused`"
    );
    assert_eq!(
        adam.param_state(alone[3].id()),
        None,
        "one worker never stepped `unused`"
    );
    assert_eq!(
        lead_adam.param_state(lead_net[3].id()),
        None,
        "neither did the group"
    );
    let mut replica_difference = 0.0f64;
    for snapshot in replicas.into_inner().unwrap() {
        let mut replica = network::<A>(0);
        snapshot.restore(&mut replica);
        replica_difference = replica_difference.max(relative_difference(&lead_net, &replica));
    }
    (relative_difference(&alone, &lead_net), replica_difference)
}

#[test]
fn workers_on_shares_of_a_batch_take_the_steps_of_one_worker_on_all_of_it() {
    for workers in [2, 3] {
        let (difference, replicas) = one_against_many::<f64>(workers, true);
        assert!(difference < 1e-12, "f64, {workers} workers: {difference:e}");
        assert_eq!(
            replicas, 0.0,
            "f64, {workers} workers: the replicas drifted"
        );
        let (difference, replicas) = one_against_many::<f32>(workers, true);
        assert!(difference < 1e-5, "f32, {workers} workers: {difference:e}");
        assert_eq!(
            replicas, 0.0,
            "f32, {workers} workers: the replicas drifted"
        );
    }
}

/// The negative control: without the all-reduce each worker steps on its
/// own share, and the models part.
#[test]
fn without_the_all_reduce_the_workers_train_on_their_shares_alone() {
    let (difference, replicas) = one_against_many::<f64>(2, false);
    assert!(difference > 1e-3, "{difference:e}");
    assert!(replicas > 1e-3, "{replicas:e}");
}

#[test]
fn broadcast_parameters_starts_every_worker_from_worker_zeros_values() {
    let values = on_group(2, |group: ThreadGroup<f32>| {
        let mut worker = Worker::new(group);
        let mut net = network::<f32>(worker.rank() as u64);
        worker.broadcast_parameters(&mut net);
        Snapshot::of(&net)
    });
    let mut first = network::<f32>(100);
    values[0].restore(&mut first);
    let mut second = network::<f32>(100);
    values[1].restore(&mut second);
    assert_eq!(relative_difference(&first, &network::<f32>(0)), 0.0);
    assert_eq!(relative_difference(&second, &network::<f32>(0)), 0.0);
}

#[test]
fn workers_with_different_models_are_told_which_parameter_differs() {
    let outcomes = std::thread::scope(|scope| {
        let threads: Vec<_> = ThreadGroup::<f32>::new(2)
            .into_iter()
            .map(|member| {
                scope.spawn(move || {
                    let mut worker = Worker::new(member);
                    let mut net = network::<f32>(0);
                    if worker.rank() == 1 {
                        net[2] = Param::new(ArrayD::zeros(IxDyn(&[4, 1])));
                    }
                    worker.broadcast_parameters(&mut net);
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join()).collect::<Vec<_>>()
    });
    let message = panic_message(
        outcomes
            .into_iter()
            .nth(1)
            .unwrap()
            .expect_err("worker 1 panics"),
    );
    assert!(
        message.contains("worker 1's parameter `2` (number 2) has 4 numbers, worker 0's has 3"),
        "{message}"
    );
}

#[test]
fn a_replica_built_differently_is_refused_with_the_parameter_named() {
    let snapshot = Snapshot::of(&network::<f32>(0));
    let mut other = network::<f32>(0);
    other[1] = Param::new(ArrayD::zeros(IxDyn(&[3])));
    let message = panic_message(
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            snapshot.restore(&mut other)
        }))
        .expect_err("a different shape is refused"),
    );
    assert!(
        message.contains("parameter `1` [3] is not the original's `1` [1, 3]"),
        "{message}"
    );
}

/// Worker 0 stops early with an error (a bad output path, say): the
/// others stop at their next collective and the error is what returns.
#[test]
fn worker_zero_returning_early_returns_its_result_and_stops_the_others() {
    let mut net = network::<f32>(0);
    let mut adam = Adam::new(0.01f32);
    let data = examples::<f32>(28);
    let result: Result<(), String> = on_threads(
        2,
        &mut net,
        &mut adam,
        || network::<f32>(0),
        |worker, net, adam| {
            train(worker, net, adam, &data[..7], true);
            Err("the checkpoint could not be written".to_string())
        },
        |worker, net, adam| {
            train(worker, net, adam, &data, true);
        },
    );
    assert_eq!(
        result,
        Err("the checkpoint could not be written".to_string())
    );
}

/// A helper that fails makes the call panic with its message.
#[test]
fn a_failing_helper_is_a_panic_of_the_caller() {
    let mut net = network::<f32>(0);
    let mut adam = Adam::new(0.01f32);
    let data = examples::<f32>(28);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        on_threads(
            2,
            &mut net,
            &mut adam,
            || network::<f32>(0),
            |worker, net, adam| {
                train(worker, net, adam, &data, true);
            },
            |worker, net, adam| {
                train(worker, net, adam, &data[..7], true);
                panic!("the helper's data ran out");
            },
        )
    }));
    let message = panic_message(outcome.expect_err("the helper's panic reaches the caller"));
    assert!(
        message.contains("the helper's data ran out") || message.contains("worker 1 panicked"),
        "{message}"
    );
}

/// Balanced shares cover a batch once, each worker's in increasing order,
/// and no worker's load exceeds another's by more than the costliest item.
#[test]
fn balanced_shares_cover_a_batch_once_with_loads_within_one_item() {
    let mut rng = StdRng::seed_from_u64(3);
    for size in 1..5 {
        for len in [0, 1, 3, 8, 33] {
            let costs: Vec<usize> = (0..len).map(|_| rng.random_range(1..60)).collect();
            let shares = on_group(size, |group: ThreadGroup<f32>| {
                Worker::new(group).balanced_share(&costs)
            });
            let mut covered: Vec<usize> = shares.iter().flatten().copied().collect();
            covered.sort_unstable();
            assert_eq!(covered, (0..len).collect::<Vec<_>>());
            assert!(shares.iter().all(|s| s.windows(2).all(|w| w[0] < w[1])));
            let loads: Vec<usize> = shares
                .iter()
                .map(|s| s.iter().map(|&i| costs[i]).sum())
                .collect();
            let spread = loads.iter().max().unwrap() - loads.iter().min().unwrap();
            assert!(
                spread <= costs.iter().copied().max().unwrap_or(0),
                "{loads:?} for {costs:?}"
            );
        }
    }
}
