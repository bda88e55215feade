//! Data-parallel training on several cores (`--threads N`): each step
//! trains on N consecutive trees at once, one per thread, and applies the
//! sum of their gradients in one optimizer step. Values are not shared
//! between threads (a `Var` is a single-threaded handle): every helper
//! thread keeps its own replica of the model, refreshed from the master's
//! trainable parameters at each step.

use std::sync::Arc;
use std::sync::mpsc;

use cps::data::Tree;
use cps::prelude::*;
use ndarray::ArrayD;

use crate::model::{self, TreeLstm};

/// A tree with its words' vocabulary indices.
pub type Example = (Tree, Vec<usize>);

/// What a helper thread is asked to do: load these trainable values, then
/// train on this tree.
struct Job {
    values: Arc<Vec<ArrayD<f32>>>,
    tree: usize,
}

/// The helper's answer: the tree's loss and the gradient of every
/// trainable parameter.
struct Done {
    loss: f32,
    grads: Vec<Option<ArrayD<f32>>>,
}

fn trainable_values(model: &TreeLstm) -> Vec<ArrayD<f32>> {
    let mut values = Vec::new();
    model.visit(&mut |_, p| {
        if p.is_trainable() {
            values.push(p.array().clone());
        }
    });
    values
}

/// One epoch over `train`, `threads` trees per step; `on_loss` receives
/// each tree's loss in order.
pub fn train_epoch(
    model: &mut TreeLstm,
    optimizer: &mut Adagrad,
    train: &[Example],
    threads: usize,
    replica: &(dyn Fn() -> TreeLstm + Sync),
    mut on_loss: impl FnMut(f32),
) {
    std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for _ in 1..threads {
            let (job_tx, job_rx) = mpsc::channel::<Job>();
            let (done_tx, done_rx) = mpsc::channel::<Done>();
            scope.spawn(move || {
                let mut local = replica();
                for job in job_rx {
                    let mut next = job.values.iter();
                    local.visit_mut(&mut |_, p| {
                        if p.is_trainable() {
                            p.value_mut()
                                .assign(next.next().expect("one value per trainable parameter"));
                        }
                    });
                    let (tree, words) = &train[job.tree];
                    let loss = model::tree_loss(&local, tree, words).backward();
                    let mut grads = Vec::new();
                    local.visit(&mut |_, p| {
                        if p.is_trainable() {
                            grads.push(p.take_grad());
                        }
                    });
                    if done_tx.send(Done { loss, grads }).is_err() {
                        break;
                    }
                }
            });
            workers.push((job_tx, done_rx));
        }
        for step in train.chunks(threads).enumerate().map(|(i, _)| i * threads) {
            let count = threads.min(train.len() - step);
            let values = Arc::new(trainable_values(model));
            for (offset, (jobs, _)) in workers.iter().enumerate().take(count - 1) {
                jobs.send(Job {
                    values: Arc::clone(&values),
                    tree: step + 1 + offset,
                })
                .expect("a helper thread is running");
            }
            let (tree, words) = &train[step];
            on_loss(model::tree_loss(model, tree, words).backward());
            for (_, done) in workers.iter().take(count - 1) {
                let done = done.recv().expect("a helper thread answers");
                let mut grads = done.grads.into_iter();
                model.visit(&mut |_, p| {
                    if p.is_trainable() {
                        let grad = grads
                            .next()
                            .expect("one gradient slot per trainable parameter");
                        // Added into this thread's gradient, flushed first.
                        if let Some(grad) = &grad {
                            let sum = match p.take_grad() {
                                Some(mut mine) => {
                                    mine += grad;
                                    mine
                                }
                                None => grad.clone(),
                            };
                            p.var().accumulate(sum);
                        }
                    }
                });
                on_loss(done.loss);
            }
            optimizer.step(model);
        }
    });
}
