//! MNIST as the network reads it: the pixels scaled to 0..=1 and then
//! standardised with the training set's mean and deviation, as the
//! reference does (`/ 255`, then `(x - 0.1307) / 0.3081`), in batches taken
//! in file order.

use std::path::Path;

use cps::data::{LabelledImages, read_mnist};
use cps::prelude::*;
use ndarray::{Array4, s};

/// The training set's mean pixel (of pixels scaled to 0..=1).
const MEAN: f32 = 0.1307;
/// The training set's standard deviation of a pixel.
const DEVIATION: f32 = 0.3081;

/// Images as the network's input, with their labels.
pub struct Examples {
    /// (N, 1, rows, cols), standardised.
    pub images: Array4<f32>,
    /// Each image's digit.
    pub labels: Vec<usize>,
}

impl Examples {
    /// Standardises `set`'s pixels: `(p / 255 - 0.1307) / 0.3081`, each
    /// step rounded to `f32` as PyTorch's in-place operations round it.
    pub fn new(set: &LabelledImages) -> Self {
        let value: Vec<f32> = (0..=255u8)
            .map(|p| (f32::from(p) / 255.0 - MEAN) / DEVIATION)
            .collect();
        let (rows, cols) = (set.images.rows, set.images.cols);
        let pixels = set
            .images
            .pixels
            .iter()
            .map(|&p| value[usize::from(p)])
            .collect();
        Examples {
            images: Array4::from_shape_vec((set.len(), 1, rows, cols), pixels)
                .expect("the reader checked the sizes"),
            labels: set.labels.iter().map(|&l| usize::from(l)).collect(),
        }
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The images `start..end` as a constant and their labels.
    pub fn batch(&self, start: usize, end: usize) -> (Var, &[usize]) {
        let images = self.images.slice(s![start..end, .., .., ..]).to_owned();
        (Var::constant(images), &self.labels[start..end])
    }

    /// The batches of `size` in order (the last one shorter when `size`
    /// does not divide the number of images): `(start, end)`.
    pub fn batches(&self, size: usize) -> impl Iterator<Item = (usize, usize)> + use<> {
        let len = self.len();
        (0..len)
            .step_by(size)
            .map(move |start| (start, (start + size).min(len)))
    }
}

/// MNIST's training set (its first `limit` images, when given) and test
/// set from `dir`.
pub fn load(dir: &Path, limit: Option<usize>) -> Result<(Examples, Examples), String> {
    let mut mnist = read_mnist(dir).map_err(|e| e.to_string())?;
    if let Some(limit) = limit {
        mnist.train.truncate(limit);
    }
    Ok((Examples::new(&mnist.train), Examples::new(&mnist.test)))
}
