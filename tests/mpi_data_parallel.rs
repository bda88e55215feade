//! Data-parallel training across processes (feature `mpi`): two MPI
//! processes training the Tree-LSTM of the example on batches of trees
//! end with the same parameters, bit for bit, and with the parameters one
//! process reaches on the same batches; an f64 model agrees to 1e-12.
//!
//! Run by `cargo test --features mpi`, this program starts itself under
//! `mpirun -np 2` (Open MPI: `scripts/install-mpi.sh`) and passes when
//! both processes do. Each process starts from its own random parameters:
//! only the broadcast from rank 0 makes them equal.

#[allow(dead_code)]
#[path = "../examples/treelstm/model.rs"]
mod model;

use std::process::Command;

use cps::data::synthetic::{SyntheticConfig, generate};
use cps::data::{Tree, Vocab};
use cps::parallel::Worker;
use cps::prelude::*;
use cps::workers::{Alone, Communicator, MpiWorld};
use model::TreeLstm;
use ndarray::{Array2, ArrayD, IxDyn};

/// How many processes the check runs on.
const PROCESSES: usize = 2;

fn main() {
    let under_mpi = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if under_mpi {
        worker();
    } else {
        launch();
    }
}

/// Starts this program under `mpirun` and checks that every process
/// passed.
fn launch() {
    let program = std::env::current_exe().expect("the test's own path");
    let mut mpirun = Command::new("mpirun");
    // CI runs as root; Open MPI refuses that without these.
    mpirun
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["--oversubscribe", "-np", &PROCESSES.to_string()])
        .arg(&program);
    let status = mpirun.status().unwrap_or_else(|e| {
        panic!("mpirun could not start ({e}): scripts/install-mpi.sh installs Open MPI")
    });
    assert!(
        status.success(),
        "a process of the MPI check failed: {status}"
    );
    println!("mpi_data_parallel: {PROCESSES} processes agree with one");
}

/// One process of the check.
fn worker() {
    let mut world = MpiWorld::init().expect("MPI starts");
    let rank = Communicator::<f32>::rank(&world);
    assert_eq!(Communicator::<f32>::size(&world), PROCESSES);
    tree_lstm_agrees(&mut world, rank);
    f64_model_agrees(&mut world, rank);
    if rank == 0 {
        println!("rank 0: the Tree-LSTM and the f64 model agree with one process");
    }
}

/// Every parameter of `model`, end to end.
fn flat<A: Element>(model: &dyn Parameters<A>) -> Vec<A> {
    let mut values = Vec::new();
    model.visit(&mut |_, p| values.extend(p.array().iter().copied()));
    values
}

/// The largest difference between `a` and `b`, relative to the largest
/// value.
fn relative_difference<A: Element>(a: &[A], b: &[A]) -> f64 {
    let largest = a
        .iter()
        .fold(0.0f64, |m, x| m.max(x.to_f64_lossless().abs()));
    let difference = a.iter().zip(b).fold(0.0f64, |m, (x, y)| {
        m.max((x.to_f64_lossless() - y.to_f64_lossless()).abs())
    });
    difference / largest
}

/// Checks that worker 0's `values` are every worker's, bit for bit.
fn assert_same_on_every_process<A: Element>(world: &mut MpiWorld, values: &[A], what: &str)
where
    MpiWorld: Communicator<A>,
{
    let mut root = values.to_vec();
    world.broadcast(&mut root);
    let bits = |v: &[A]| {
        v.iter()
            .map(|x| x.to_f64_lossless().to_bits())
            .collect::<Vec<_>>()
    };
    assert!(
        bits(&root) == bits(values),
        "{what}: process {} ended with other parameters than process 0",
        world.rank()
    );
}

/// The trees of the check, with their words' indices.
fn trees() -> (Vec<(Tree, Vec<usize>)>, usize) {
    let bank = generate(&SyntheticConfig {
        seed: 5,
        train: 40,
        dev: 0,
        test: 0,
        max_depth: 5,
    });
    let vocab = Vocab::from_trees(&bank.train);
    let count = vocab.len();
    (model::encode(&vocab, bank.train), count)
}

/// Two epochs in batches of 8 trees: each worker back-propagates its
/// share's losses over the batch size, then the gradients are summed and
/// every worker takes the Adagrad step. Returns the first batch's summed
/// gradient.
fn train_tree_lstm<C: Communicator<f32>>(
    worker: &mut Worker<C>,
    model: &mut TreeLstm,
    trees: &[(Tree, Vec<usize>)],
) -> Vec<f32> {
    let mut optimizer = Adagrad::new(0.05);
    let mut first_gradient = None;
    for _ in 0..2 {
        for batch in trees.chunks(8) {
            let scale = 1.0 / batch.len() as f32;
            for (tree, words) in worker.share(batch) {
                let loss = model::tree_loss(model, tree, words);
                lazy(|k: &mut dyn FnMut(Var)| loss.bind(|l| (&l * scale).bind(&mut *k))).backward();
            }
            worker.all_reduce_gradients(&*model);
            first_gradient.get_or_insert_with(|| {
                let mut grads = Vec::new();
                model.visit(&mut |_, p| grads.extend(p.grad().iter().copied()));
                grads
            });
            optimizer.step(model);
        }
    }
    first_gradient.expect("a batch")
}

fn tree_lstm_agrees(world: &mut MpiWorld, rank: usize) {
    let (trees, vocabulary) = trees();
    let fresh = |seed| TreeLstm::new(vocabulary, 8, 12, 0.3, seed);
    let mut model = fresh(21 + rank as u64);
    let mut group = Worker::new(&mut *world);
    group.broadcast_parameters(&mut model);
    let gradient = train_tree_lstm(&mut group, &mut model, &trees);
    let values = flat(&model);
    assert_same_on_every_process(world, &values, "Tree-LSTM");
    if rank == 0 {
        let mut alone = fresh(21);
        let alone_gradient = train_tree_lstm(&mut Worker::new(Alone), &mut alone, &trees);
        let gradients = relative_difference(&alone_gradient, &gradient);
        assert!(
            gradients < 1e-5,
            "Tree-LSTM: the first gradients differ by {gradients:e}"
        );
        // Adagrad's first step moves each element by about lr·g/|g|: a
        // gradient element that is a nearly cancelling sum carries its
        // rounding into a full step (see the example's model tests).
        let parameters = relative_difference(&flat(&alone), &values);
        assert!(
            parameters < 1e-4,
            "Tree-LSTM: the parameters differ by {parameters:e}"
        );
        assert!(parameters > 0.0 || gradients == 0.0);
        println!("Tree-LSTM: gradients {gradients:e}, parameters {parameters:e} from one process");
    }
}

/// A two-layer network in f64, trained with SGD on batches of 6 split
/// across the workers.
fn train_f64<C: Communicator<f64>>(worker: &mut Worker<C, f64>, net: &mut Vec<Param<f64>>) {
    let mut sgd = Sgd::new(0.1);
    let data: Vec<(Array2<f64>, f64)> = (0..30)
        .map(|i| {
            let x = Array2::from_shape_fn((1, 3), |(_, j)| ((i * 3 + j) as f64 * 0.7).sin());
            (x, (i as f64 * 0.3).cos())
        })
        .collect();
    for batch in data.chunks(6) {
        let scale = Var::constant(Array2::from_elem((1, 1), 1.0 / batch.len() as f64));
        for (x, y) in worker.share(batch) {
            let (x, y) = (
                Var::constant(x.clone()),
                Var::constant(Array2::from_elem((1, 1), *y)),
            );
            let net = &*net;
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.matmul(&net[0]).bind(|a| {
                    a.tanh().bind(|h| {
                        h.matmul(&net[1]).bind(|o| {
                            (&o - &y).bind(|e| {
                                e.square()
                                    .bind(|s| (&s * &scale).bind(|l| l.sum().bind(&mut *k)))
                            })
                        })
                    })
                })
            })
            .backward();
        }
        worker.all_reduce_gradients(&*net);
        sgd.step(net);
    }
}

fn f64_model_agrees(world: &mut MpiWorld, rank: usize) {
    let fresh = |seed: u64| {
        let value = |k: usize| ((k as u64 * 7 + seed) as f64 * 0.37).sin() * 0.5;
        vec![
            Param::new(ArrayD::from_shape_fn(IxDyn(&[3, 4]), |i| {
                value(i[0] * 4 + i[1])
            })),
            Param::new(ArrayD::from_shape_fn(IxDyn(&[4, 1]), |i| value(20 + i[0]))),
        ]
    };
    let mut net = fresh(rank as u64);
    let mut group = Worker::new(&mut *world);
    group.broadcast_parameters(&mut net);
    train_f64(&mut group, &mut net);
    let values = flat(&net);
    assert_same_on_every_process(world, &values, "f64 network");
    if rank == 0 {
        let mut alone = fresh(0);
        train_f64(&mut Worker::new(Alone), &mut alone);
        let difference = relative_difference(&flat(&alone), &values);
        assert!(
            difference < 1e-12,
            "f64 network: the parameters differ by {difference:e}"
        );
        println!("f64 network: parameters {difference:e} from one process");
    }
}
