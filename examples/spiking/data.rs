//! The images and their rate coding: a pixel of intensity `p` (scaled to
//! 0..=1) fires with probability `p · rate` at every tick, independently
//! (Bernoulli trains; `rate` is the flag `--rate`).

use std::path::Path;

use cps::data::{Digits, read_digits, read_mnist};
use ndarray::{Array2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::neuron::{Trains, TrainsBuilder};

/// The seed of the digits' train/test split (the `layers` example's).
const SPLIT_SEED: u64 = 0;

/// Images, one per row with pixels in 0..=1, and their labels.
pub struct Examples {
    /// (N, pixels).
    pub images: Array2<f32>,
    /// Each image's class.
    pub labels: Vec<usize>,
}

impl Examples {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The first `n` images only.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.images = self.images.slice(ndarray::s![..n, ..]).to_owned();
        self.labels.truncate(n);
    }

    /// The images at `indices`, rate-coded over `ticks` ticks with draws
    /// from `seed`.
    pub fn encode(&self, indices: &[usize], ticks: usize, rate: f32, seed: u64) -> Trains {
        let mut rng = StdRng::seed_from_u64(seed);
        let pixels = self.images.ncols();
        let mut builder = TrainsBuilder::new(pixels, ticks);
        let mut train = Vec::with_capacity(ticks);
        for &i in indices {
            for &p in self.images.index_axis(Axis(0), i) {
                train.clear();
                let chance = p * rate;
                if chance > 0.0 {
                    for t in 0..ticks {
                        if rng.random::<f32>() < chance {
                            train.push(t as u16);
                        }
                    }
                }
                builder.push_train(&train);
            }
        }
        builder.finish()
    }
}

/// A data set, split.
pub struct DataSet {
    /// Where it came from.
    pub name: String,
    /// Classes (10 for both).
    pub classes: usize,
    /// The images to train on.
    pub train: Examples,
    /// The images to test on.
    pub test: Examples,
}

/// scikit-learn's digits (a folder with `digits.csv.gz`, or the file):
/// 8×8 pixels scaled from 0..=16 to 0..=1, split 1437/360 by a fixed seed.
pub fn digits(path: &Path) -> Result<DataSet, String> {
    let digits = read_digits(path).map_err(|e| e.to_string())?;
    let (train, test) = digits.train_test_split(SPLIT_SEED);
    let scaled = |d: Digits| Examples {
        images: d.scaled_images(),
        labels: d.labels,
    };
    Ok(DataSet {
        name: format!("digits ({})", path.display()),
        classes: Digits::CLASSES,
        train: scaled(train),
        test: scaled(test),
    })
}

/// MNIST's IDX files in `dir`, pixels scaled from 0..=255 to 0..=1.
pub fn mnist(dir: &Path) -> Result<DataSet, String> {
    let mnist = read_mnist(dir).map_err(|e| e.to_string())?;
    let examples = |set: &cps::data::LabelledImages| Examples {
        images: Array2::from_shape_vec(
            (set.len(), set.images.rows * set.images.cols),
            set.images
                .pixels
                .iter()
                .map(|&p| f32::from(p) / 255.0)
                .collect(),
        )
        .expect("the reader checked the sizes"),
        labels: set.labels.iter().map(|&l| usize::from(l)).collect(),
    };
    Ok(DataSet {
        name: format!("MNIST ({})", dir.display()),
        classes: 10,
        train: examples(&mnist.train),
        test: examples(&mnist.test),
    })
}
