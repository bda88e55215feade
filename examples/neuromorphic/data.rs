//! The images as the network reads them: each pixel scaled to 0..=1 and
//! taken as the probability that its input axon receives a spike.

use std::path::Path;

use cps::data::{Digits, read_digits, read_mnist};
use cps::prelude::*;
use ndarray::{Array2, Axis};

/// The seed of the digits' train/test split: fixed, so that every run is
/// tested on the same 360 images (the `layers` example's split).
const SPLIT_SEED: u64 = 0;

/// Images with their labels.
pub struct Examples {
    /// One image per row, row-major, pixels in 0..=1.
    pub images: Array2<f32>,
    /// Each image's digit.
    pub labels: Vec<usize>,
}

impl Examples {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The images at `indices` as a constant (one per row) and their labels.
    pub fn batch(&self, indices: &[usize]) -> (Var, Vec<usize>) {
        let images = self.images.select(Axis(0), indices);
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        (Var::constant(images), labels)
    }
}

/// MNIST's training set (its first `limit` images, when given) and test
/// set from the IDX files in `dir`.
pub fn mnist(dir: &Path, limit: Option<usize>) -> Result<(Examples, Examples), String> {
    let mut mnist = read_mnist(dir).map_err(|e| e.to_string())?;
    if let Some(limit) = limit {
        mnist.train.truncate(limit);
    }
    let examples = |set: &cps::data::LabelledImages| {
        let pixels = set.images.pixels_per_image();
        let scaled = set.images.pixels.iter().map(|&p| f32::from(p) / 255.0);
        Examples {
            images: Array2::from_shape_vec((set.len(), pixels), scaled.collect())
                .expect("the reader checked the sizes"),
            labels: set.labels.iter().map(|&l| usize::from(l)).collect(),
        }
    };
    Ok((examples(&mnist.train), examples(&mnist.test)))
}

/// scikit-learn's digits from `path` (the `digits.csv.gz` file or its
/// folder), split 1437/360 by a fixed seed.
pub fn digits(path: &Path, limit: Option<usize>) -> Result<(Examples, Examples), String> {
    let digits = read_digits(path).map_err(|e| e.to_string())?;
    let (mut train, test) = digits.train_test_split(SPLIT_SEED);
    if let Some(limit) = limit.filter(|&l| l < train.len()) {
        train = train.select(&(0..limit).collect::<Vec<_>>());
    }
    let scaled = |d: Digits| Examples {
        images: d.scaled_images(),
        labels: d.labels,
    };
    Ok((scaled(train), scaled(test)))
}
