//! The network as it is deployed, with no differentiation: binary
//! synapses sampled from the trained probabilities, binary spikes and
//! integer sums, as a TrueNorth core computes them in one tick.
//!
//! A copy of the network draws each synapse once, present with
//! probability `p`; its weight is then the synapse's sign (±1), else 0.
//! Each input pixel spikes with probability equal to its value (drawn
//! afresh for every image and copy). A neuron fires when
//! `Σ (weight · input spike) + ⌈b⌉ > 0`: for an integer sum `S`,
//! `S + ⌈b⌉ > 0` holds exactly when `S + b > 0`, so this is the event
//! whose probability training approximates by `Φ(μ/σ)`. (On TrueNorth:
//! leak `⌈b⌉`, threshold 1, reset every tick.) A copy's class scores are
//! the counts of firing output neurons per class; an ensemble adds the
//! counts of its copies and predicts the largest (ties to the lower digit).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::training::step_seed;
use crate::cores::{CLASSES, LayerShape};
use crate::model::Net;

/// One layer of a sampled copy.
struct SampledLayer {
    shape: LayerShape,
    /// (cores, inputs, neurons): the sign where the synapse is present, else 0.
    weights: Vec<i8>,
    /// (cores, inputs): the synapses present on each axon, the events
    /// one input spike delivers.
    present: Vec<u32>,
    /// (cores, neurons): `⌈b⌉`.
    leak: Vec<i32>,
}

/// One copy: a binary network drawn from the trained probabilities.
pub struct BinaryNetwork {
    layers: Vec<SampledLayer>,
}

impl BinaryNetwork {
    /// Draws every synapse of `net` from a generator seeded with `seed`.
    pub fn sample(net: &Net, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let layers = net
            .layers
            .iter()
            .map(|layer| {
                let shape = layer.shape.clone();
                let probability = layer.probability.value();
                let sign = layer.sign.value();
                let weights: Vec<i8> = probability
                    .iter()
                    .zip(sign.iter())
                    .map(|(&p, &s)| {
                        // p = 1 is always present, p = 0 never.
                        if rng.random::<f32>() < p {
                            if s > 0.0 { 1 } else { -1 }
                        } else {
                            0
                        }
                    })
                    .collect();
                let present = weights
                    .chunks(shape.neurons)
                    .map(|row| row.iter().filter(|&&w| w != 0).count() as u32)
                    .collect();
                let leak = layer
                    .bias
                    .value()
                    .iter()
                    .map(|&b| b.ceil() as i32)
                    .collect();
                SampledLayer {
                    shape,
                    weights,
                    present,
                    leak,
                }
            })
            .collect();
        BinaryNetwork { layers }
    }

    /// The copy's counts of firing output neurons per class for input
    /// spikes `spikes` (one per pixel), and the synaptic events delivered
    /// (pairs of an input spike and a present synapse, over all layers).
    pub fn classify(&self, spikes: &[bool]) -> ([u32; CLASSES], u64) {
        let mut events = 0;
        let mut input = spikes.to_vec();
        let mut output = Vec::new();
        for layer in &self.layers {
            layer.fire(&input, &mut output, &mut events);
            std::mem::swap(&mut input, &mut output);
        }
        let neurons = self
            .layers
            .last()
            .expect("a network has layers")
            .shape
            .neurons;
        let mut counts = [0; CLASSES];
        for (o, &spike) in input.iter().enumerate() {
            counts[(o % neurons) % CLASSES] += u32::from(spike);
        }
        (counts, events)
    }

    /// Each layer's output spikes for input spikes `spikes`.
    #[cfg(test)]
    pub fn layer_spikes(&self, spikes: &[bool]) -> Vec<Vec<bool>> {
        let mut events = 0;
        let mut input = spikes.to_vec();
        let mut all = Vec::new();
        for layer in &self.layers {
            let mut output = Vec::new();
            layer.fire(&input, &mut output, &mut events);
            all.push(output.clone());
            input = output;
        }
        all
    }
}

impl SampledLayer {
    /// The layer's output spikes for `input`, core after core; adds the
    /// synaptic events delivered to `events`.
    fn fire(&self, input: &[bool], output: &mut Vec<bool>, events: &mut u64) {
        let LayerShape {
            cores,
            inputs,
            neurons,
            ref sources,
        } = self.shape;
        output.clear();
        output.resize(cores * neurons, false);
        let mut sum = vec![0i32; neurons];
        for core in 0..cores {
            sum.copy_from_slice(&self.leak[core * neurons..(core + 1) * neurons]);
            for axon in core * inputs..(core + 1) * inputs {
                if input[sources[axon]] {
                    let row = &self.weights[axon * neurons..(axon + 1) * neurons];
                    sum.iter_mut()
                        .zip(row)
                        .for_each(|(s, &w)| *s += i32::from(w));
                    *events += u64::from(self.present[axon]);
                }
            }
            let fired = &mut output[core * neurons..(core + 1) * neurons];
            fired.iter_mut().zip(&sum).for_each(|(f, &s)| *f = s > 0);
        }
    }
}

/// Input spikes for one image: pixel `i` spikes with probability
/// `pixels[i]` (no draw for pixels of exactly 0 or 1).
pub fn input_spikes(pixels: &[f32], rng: &mut StdRng, spikes: &mut Vec<bool>) {
    spikes.clear();
    spikes.extend(pixels.iter().map(|&x| match x {
        x if x <= 0.0 => false,
        x if x >= 1.0 => true,
        x => rng.random::<f32>() < x,
    }));
}

/// What `copies` sampled copies of a network do on a test set.
pub struct Deployment {
    /// `counts[k][n]`: copy `k`'s firing output neurons per class on image `n`.
    counts: Vec<Vec<[u32; CLASSES]>>,
    /// Each copy's synaptic events per image, averaged over the images.
    pub events_per_image: Vec<f64>,
}

/// The accuracy of ensembles of one size.
pub struct EnsembleAccuracy {
    /// How many disjoint ensembles of that size the copies make.
    pub ensembles: usize,
    /// Their mean, lowest and highest accuracy.
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Deployment {
    /// Samples `copies` copies of `net` (copy `k` from seed
    /// `step_seed(seed, k, 0)`) and runs each on every image of `images`
    /// (one per row), with input spikes drawn from `step_seed(seed, k, 1)`.
    pub fn run(net: &Net, images: &ndarray::Array2<f32>, copies: usize, seed: u64) -> Self {
        let mut counts = Vec::with_capacity(copies);
        let mut events_per_image = Vec::with_capacity(copies);
        let mut spikes = Vec::new();
        for k in 0..copies {
            let copy = BinaryNetwork::sample(net, step_seed(seed, k, 0));
            let mut rng = StdRng::seed_from_u64(step_seed(seed, k, 1));
            let mut events = 0;
            let mut per_image = Vec::with_capacity(images.nrows());
            for image in images.rows() {
                let pixels = image.as_slice().expect("rows of an owned matrix");
                input_spikes(pixels, &mut rng, &mut spikes);
                let (c, e) = copy.classify(&spikes);
                per_image.push(c);
                events += e;
            }
            counts.push(per_image);
            events_per_image.push(events as f64 / images.nrows().max(1) as f64);
        }
        Deployment {
            counts,
            events_per_image,
        }
    }

    /// The accuracy on `labels` of the disjoint ensembles of `size`
    /// consecutive copies (copies 0..size, size..2·size, …).
    pub fn accuracy(&self, labels: &[usize], size: usize) -> EnsembleAccuracy {
        let ensembles = self.counts.len() / size;
        let accuracies: Vec<f64> = (0..ensembles)
            .map(|e| {
                let members = &self.counts[e * size..(e + 1) * size];
                let correct = labels
                    .iter()
                    .enumerate()
                    .filter(|&(n, &label)| {
                        let mut total = [0; CLASSES];
                        for member in members {
                            total.iter_mut().zip(&member[n]).for_each(|(t, c)| *t += c);
                        }
                        argmax(&total) == label
                    })
                    .count();
                correct as f64 / labels.len().max(1) as f64
            })
            .collect();
        EnsembleAccuracy {
            ensembles,
            mean: accuracies.iter().sum::<f64>() / ensembles.max(1) as f64,
            min: accuracies.iter().copied().fold(f64::INFINITY, f64::min),
            max: accuracies.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// The first position of the largest count.
fn argmax(counts: &[u32]) -> usize {
    let mut best = 0;
    for (i, &c) in counts.iter().enumerate() {
        if c > counts[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cores::Architecture;
    use crate::model::{core_inputs, firing_probabilities};
    use cps::prelude::*;
    use ndarray::{Array2, Axis};

    /// A network whose probabilities are all 0 or 1, with biases from `bias`.
    fn certain_net(architecture: &Architecture, bias: impl Fn(usize) -> f32) -> Net {
        let mut net = Net::new(architecture, 11).unwrap();
        let mut rng = StdRng::seed_from_u64(12);
        for layer in &mut net.layers {
            layer
                .probability
                .value_mut()
                .mapv_inplace(|_| if rng.random_bool(0.5) { 1.0 } else { 0.0 });
            let mut n = 0;
            layer.bias.value_mut().mapv_inplace(|_| {
                n += 1;
                bias(n)
            });
        }
        net
    }

    fn architecture() -> Architecture {
        Architecture {
            side: 6,
            patch: 4,
            stride: 2,
            first_neurons: 20,
            hidden: vec![(2, 30)],
            output_cores: 2,
            per_class: 3,
        }
    }

    fn binary_images(count: usize, seed: u64) -> Array2<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        Array2::from_shape_simple_fn((count, 36), || f32::from(u8::from(rng.random_bool(0.4))))
    }

    #[test]
    fn each_integer_layer_equals_the_expected_layer_thresholded() {
        // Biases with fractions, whole numbers and zero, so that ⌈b⌉ and
        // currents of exactly 0 are both exercised.
        let biases = [-2.3, -1.0, 0.0, 0.4, 1.7, 3.0, -4.5];
        let net = certain_net(&architecture(), |n| biases[n % biases.len()]);
        let copy = BinaryNetwork::sample(&net, 1);
        let images = binary_images(50, 2);
        let mut checked = 0;
        for image in images.rows() {
            let spikes: Vec<bool> = image.iter().map(|&x| x == 1.0).collect();
            let deployed = copy.layer_spikes(&spikes);
            // Each expected layer gets the same binary input as its deployed one.
            let mut input: Vec<bool> = spikes.clone();
            for (layer, deployed) in net.layers.iter().zip(&deployed) {
                let x = Array2::from_shape_vec(
                    (1, input.len()),
                    input.iter().map(|&s| f32::from(u8::from(s))).collect(),
                )
                .unwrap();
                let x = Var::constant(x);
                let y = lazy(|k: &mut dyn FnMut(Var)| {
                    core_inputs(&x, &layer.shape)
                        .bind(|inputs| firing_probabilities(layer, &inputs).bind(k))
                })
                .eval();
                let expected: Vec<bool> = y
                    .array()
                    .index_axis(Axis(1), 0)
                    .iter()
                    .map(|&p| p > 0.5)
                    .collect();
                assert_eq!(&expected, deployed);
                checked += expected.len();
                input = deployed.clone();
            }
        }
        assert_eq!(checked, 50 * (4 * 20 + 2 * 30 + 2 * 30));
    }

    #[test]
    fn the_integer_network_equals_the_expected_network_thresholded() {
        // Biases of a half: |μ| ≥ 1/2, so the expected network's firing
        // probabilities are within 3e-7 of 0 or 1 and its class scores
        // count the same neurons as the integer network's.
        let net = certain_net(&architecture(), |n| (n % 7) as f32 - 3.5);
        let images = binary_images(40, 3);
        let scores = crate::model::predict_scores(&net, &Var::constant(images.clone()));
        let copy = BinaryNetwork::sample(&net, 5);
        let mut fired = 0;
        for (n, image) in images.rows().into_iter().enumerate() {
            let spikes: Vec<bool> = image.iter().map(|&x| x == 1.0).collect();
            let (counts, _) = copy.classify(&spikes);
            for class in 0..CLASSES {
                // A class's score is its mean over 2 cores × 3 neurons.
                let expected = (scores[[n, class]] * 6.0).round() as u32;
                assert_eq!(counts[class], expected, "image {n} class {class}");
                fired += counts[class];
            }
        }
        assert!(
            fired > 100,
            "{fired} output spikes: the test sees firing neurons"
        );
    }

    #[test]
    fn events_count_present_synapses_of_active_inputs() {
        let architecture = Architecture {
            side: 2,
            patch: 2,
            stride: 1,
            first_neurons: 10,
            hidden: Vec::new(),
            output_cores: 1,
            per_class: 1,
        };
        let mut net = Net::new(&architecture, 1).unwrap();
        // Axon 0: 3 synapses of the first layer present; axon 2: 10.
        for ((_, i, j), p) in net.layers[0]
            .probability
            .value_mut()
            .view_mut()
            .into_dimensionality::<ndarray::Ix3>()
            .unwrap()
            .indexed_iter_mut()
        {
            *p = if (i == 0 && j < 3) || i == 2 {
                1.0
            } else {
                0.0
            };
        }
        net.layers[1].probability.value_mut().fill(0.0);
        let copy = BinaryNetwork::sample(&net, 1);
        let (_, events) = copy.classify(&[true, true, true, false]);
        assert_eq!(events, 13);
        let (_, events) = copy.classify(&[false, true, true, false]);
        assert_eq!(events, 10);
    }

    #[test]
    fn ensembles_add_counts() {
        let deployment = Deployment {
            counts: vec![
                vec![[3, 1, 0, 0, 0, 0, 0, 0, 0, 0]],
                vec![[0, 2, 0, 0, 0, 0, 0, 0, 0, 0]],
            ],
            events_per_image: vec![0.0, 0.0],
        };
        let single = deployment.accuracy(&[1], 1);
        assert_eq!(
            (single.ensembles, single.mean, single.min, single.max),
            (2, 0.5, 0.0, 1.0)
        );
        // 3 + 0 against 1 + 2: a tie goes to the lower digit.
        assert_eq!(deployment.accuracy(&[0], 2).mean, 1.0);
        assert_eq!(argmax(&[1, 4, 4, 0]), 1);
    }
}
