//! The report: the network's cores, the expected network's accuracy, and
//! the sampled copies' accuracy alone and in ensembles with their
//! synaptic events per image.

use std::time::Instant;

use crate::cores::CLASSES;
use crate::data::Examples;
use crate::deploy::Deployment;
use crate::model::{Net, predict_scores};

/// The ensemble sizes reported.
const ENSEMBLES: [usize; 4] = [1, 4, 16, 64];

/// The network's layers of cores, in one line.
pub fn describe(net: &Net) -> String {
    let layers: Vec<String> = net
        .layers
        .iter()
        .map(|l| {
            let s = &l.shape;
            format!(
                "{} cores × ({} inputs → {} neurons)",
                s.cores, s.inputs, s.neurons
            )
        })
        .collect();
    let cores: usize = net.layers.iter().map(|l| l.shape.cores).sum();
    let synapses: usize = net.layers.iter().map(|l| l.shape.synapses()).sum();
    let output = &net.layers.last().expect("a network has layers").shape;
    format!(
        "{cores} cores: {}; {} output neurons per class; {synapses} synapses",
        layers.join(", then "),
        output.outputs() / CLASSES
    )
}

/// The expected network's accuracy on `examples`: the class with the
/// largest mean firing probability, forward only, in batches of 500.
pub fn expected_accuracy(net: &Net, examples: &Examples) -> f64 {
    let all: Vec<usize> = (0..examples.len()).collect();
    let correct: usize = all
        .chunks(500)
        .map(|indices| {
            let (images, labels) = examples.batch(indices);
            let scores = predict_scores(net, &images);
            scores
                .outer_iter()
                .zip(&labels)
                .filter(|(s, l)| {
                    let best = s
                        .iter()
                        .enumerate()
                        .fold(0, |b, (i, &v)| if v > s[b] { i } else { b });
                    best == **l
                })
                .count()
        })
        .sum();
    correct as f64 / examples.len().max(1) as f64
}

/// Prints the expected network's test accuracy, then samples `copies`
/// binary copies and prints each ensemble size's accuracy and the
/// synaptic events per image.
pub fn report(net: &Net, test: &Examples, copies: usize, seed: u64) {
    report!(
        "expected network (probabilities): test accuracy {:.2}%",
        100.0 * expected_accuracy(net, test)
    );
    let start = Instant::now();
    let deployment = Deployment::run(net, &test.images, copies, seed);
    report!(
        "{copies} binary copies sampled and run on {} test images in {:.1} s (integer arithmetic)",
        test.len(),
        start.elapsed().as_secs_f64()
    );
    for size in ENSEMBLES.into_iter().filter(|&s| s <= copies) {
        let a = deployment.accuracy(&test.labels, size);
        let spread = if a.ensembles > 1 {
            format!(
                " (mean of {} disjoint ensembles, {:.2}%..{:.2}%)",
                a.ensembles,
                100.0 * a.min,
                100.0 * a.max
            )
        } else {
            String::new()
        };
        report!(
            "ensemble of {size:>2}: test accuracy {:.2}%{spread}",
            100.0 * a.mean
        );
    }
    let events = &deployment.events_per_image;
    let mean = events.iter().sum::<f64>() / events.len().max(1) as f64;
    report!(
        "synaptic events per image and copy: {mean:.0} (an ensemble of N copies: N times as many)"
    );
}
