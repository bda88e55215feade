//! The two data sets as rows of features in 0..=1 with their labels:
//! MNIST (the bundled 5k/1k subset by default, or a folder of the four
//! IDX files) and scikit-learn's digits, split 1437/360 by a fixed seed.

use std::path::Path;

use cps::data::{Digits, read_digits, read_mnist};
use cps::prelude::*;
use ndarray::{Array2, Axis};

/// The seed of the digits' train/test split: fixed, so that every run,
/// whatever its own seed, is tested on the same 360 images.
const SPLIT_SEED: u64 = 0;

/// Examples, one per row, and their classes.
pub struct Examples {
    /// One example per row, features in 0..=1.
    pub features: Array2<f32>,
    /// Each example's class.
    pub labels: Vec<usize>,
}

impl Examples {
    /// The number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The examples at `indices` as a constant batch, with their labels.
    pub fn batch(&self, indices: &[usize]) -> (Var, Vec<usize>) {
        let rows = self.features.select(Axis(0), indices);
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        (Var::constant(rows), labels)
    }
}

/// A data set: what it is called, its training and test examples.
pub struct DataSet {
    /// Names the data in reports and file names (`mnist`, `digits`).
    pub name: &'static str,
    /// Where it was read from.
    pub source: String,
    pub train: Examples,
    pub test: Examples,
}

impl DataSet {
    /// The number of input features.
    pub fn inputs(&self) -> usize {
        self.train.features.ncols()
    }
}

/// MNIST from `dir` (its four IDX files), pixels divided by 255.
pub fn mnist(dir: &Path) -> Result<DataSet, String> {
    let mnist = read_mnist(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let examples = |set: &cps::data::LabelledImages| {
        let per_image = set.images.pixels_per_image();
        let pixels = set.images.pixels.iter().map(|&p| f32::from(p) / 255.0);
        Examples {
            features: Array2::from_shape_vec((set.len(), per_image), pixels.collect())
                .expect("the reader checked the sizes"),
            labels: set.labels.iter().map(|&l| usize::from(l)).collect(),
        }
    };
    Ok(DataSet {
        name: "mnist",
        source: dir.display().to_string(),
        train: examples(&mnist.train),
        test: examples(&mnist.test),
    })
}

/// scikit-learn's digits from `path` (a folder holding `digits.csv.gz`,
/// or the file), pixels divided by 16, split 1437/360.
pub fn digits(path: &Path) -> Result<DataSet, String> {
    let digits = read_digits(path).map_err(|e| e.to_string())?;
    let (train, test) = digits.train_test_split(SPLIT_SEED);
    let scaled = |d: Digits| Examples {
        features: d.scaled_images(),
        labels: d.labels,
    };
    Ok(DataSet {
        name: "digits",
        source: path.display().to_string(),
        train: scaled(train),
        test: scaled(test),
    })
}
